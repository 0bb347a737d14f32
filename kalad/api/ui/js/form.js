// Create and edit a job: local or remote, a schedule helper with the daemon's next five run
// times, and the daemon's error shown beside the field it names.

import { api, ApiError, enc } from './api.js';
import { clear, h } from './dom.js';
import { timeNode } from './format.js';
import { UNITS, buildSchedule, helperValues, zoneChoices } from './schedule.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'];

let uid = 0;

/** A labelled control with an error slot; the control's data-field is the wire field name. */
function field(label, control, { hint, field: name } = {}) {
  const id = control.id || `f${++uid}`;
  control.id = id;
  if (name) control.dataset.field = name;
  const err = h('p', { class: 'error', id: `${id}-error`, hidden: true });
  const describedBy = [];
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: `${id}-hint` }, hint);
    describedBy.push(hintEl.id);
  }
  describedBy.push(err.id);
  control.setAttribute('aria-describedby', describedBy.join(' '));
  const check = control.type === 'checkbox';
  return h('div', { class: check ? 'field check' : 'field' },
    check ? [control, h('label', { for: id }, label)] : [h('label', { for: id }, label), control],
    hintEl, err);
}

function showError(control, message) {
  const err = document.getElementById(`${control.id}-error`);
  if (!err) return;
  err.textContent = message;
  err.hidden = !message;
  if (message) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
}

function headersText(headers) {
  if (!headers) return '';
  return Object.entries(headers).map(([k, vs]) => vs.map((v) => `${k}: ${v}`)).flat().join('\n');
}

class FieldError extends Error {
  constructor(control, message) {
    super(message);
    this.control = control;
  }
}

function envText(env) {
  return env ? Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') : '';
}

function parseEnv(control, name) {
  const out = {};
  const lines = control.value.split('\n').filter((l) => l.trim());
  for (const line of lines) {
    const i = line.indexOf('=');
    if (i <= 0) throw new FieldError(control, `${name}: "${line.trim()}" is not NAME=value`);
    out[line.slice(0, i).trim()] = line.slice(i + 1);
  }
  return lines.length ? out : null;
}

function parseHeaders(control) {
  const out = {};
  const lines = control.value.split('\n').map((l) => l.trim()).filter(Boolean);
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i <= 0) throw new FieldError(control, `remote_properties.headers: "${line}" is not "Name: value"`);
    const name = line.slice(0, i).trim();
    (out[name] = out[name] || []).push(line.slice(i + 1).trim());
  }
  return lines.length ? out : null;
}

function parseCodes(control) {
  const parts = control.value.split(/[\s,]+/).filter(Boolean);
  const codes = parts.map(Number);
  const bad = parts.find((p, i) => !Number.isInteger(codes[i]) || codes[i] < 100 || codes[i] > 599);
  if (bad !== undefined) {
    throw new FieldError(control, `remote_properties.expected_response_codes: "${bad}" is not an HTTP status`);
  }
  return codes.length ? codes : null;
}

export async function render(main, ctx, jobId) {
  const editing = Boolean(jobId);
  let job = null;
  if (editing) job = (await api('GET', `/job/${enc(jobId)}/`)).job;
  if (!ctx.alive()) return null;
  const rp = (job && job.remote_properties) || {};
  const v = (x, d = '') => (x === null || x === undefined ? d : x);

  const name = h('input', { type: 'text', required: true, value: v(job && job.name), autocomplete: 'off' });
  const owner = h('input', { type: 'email', value: v(job && job.owner), autocomplete: 'email' });
  const local = h('input', { type: 'radio', name: 'type', id: 'type-local', value: '0', checked: !job || job.type !== 1 });
  const remote = h('input', { type: 'radio', name: 'type', id: 'type-remote', value: '1', checked: Boolean(job && job.type === 1) });
  const command = h('input', { type: 'text', value: v(job && job.command), autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const url = h('input', { type: 'url', value: v(rp.url), placeholder: 'https://example.com/hook' });
  const method = h('select', {}, METHODS.map((m) => h('option', { value: m, selected: (rp.method || 'GET').toUpperCase() === m }, m)));
  const rbody = h('textarea', { rows: 3, spellcheck: 'false', class: 'mono' });
  rbody.value = v(rp.body);
  const headers = h('textarea', { rows: 3, spellcheck: 'false', class: 'mono', placeholder: 'Content-Type: application/json' });
  headers.value = headersText(rp.headers);
  const timeout = h('input', { type: 'number', min: 0, step: 1, value: v(rp.timeout, 0) });
  const codes = h('input', { type: 'text', value: (rp.expected_response_codes || []).join(', '), placeholder: '200, 204', inputmode: 'numeric' });

  const schedule = h('input', { type: 'text', id: 'schedule', value: v(job && job.schedule), autocomplete: 'off', spellcheck: 'false', class: 'mono', placeholder: 'R/2030-01-01T00:00:00Z/PT1H' });
  const now = new Date(Date.now() + 60_000);
  const pad = (n) => String(n).padStart(2, '0');
  const hv = (job && helperValues(job.schedule)) || {
    date: `${now.getUTCFullYear()}-${pad(now.getUTCMonth() + 1)}-${pad(now.getUTCDate())}`,
    time: `${pad(now.getUTCHours())}:${pad(now.getUTCMinutes())}:00`,
    zone: 'Z', repeat: 'forever', every: 1, unit: 'hour', times: 2,
  };
  const zones = zoneChoices();
  if (!zones.some(([z]) => z === hv.zone)) zones.push([hv.zone, `UTC${hv.zone}`]);
  const hDate = h('input', { type: 'date', id: 'helper-date', value: hv.date });
  const hTime = h('input', { type: 'time', id: 'helper-time', step: 1, value: hv.time.length === 5 ? `${hv.time}:00` : hv.time });
  const hZone = h('select', { id: 'helper-zone' }, zones.map(([z, label]) => h('option', { value: z, selected: z === hv.zone }, label)));
  const hRepeat = h('select', { id: 'helper-repeat' },
    [['forever', 'Repeat forever'], ['times', 'Run a number of times'], ['once', 'Run once']]
      .map(([val, label]) => h('option', { value: val, selected: val === hv.repeat }, label)));
  const hTimes = h('input', { type: 'number', id: 'helper-times', min: 1, step: 1, value: hv.times });
  const hEvery = h('input', { type: 'number', id: 'helper-every', min: 1, step: 1, value: hv.every });
  const hUnit = h('select', { id: 'helper-unit' }, UNITS.map(([u, label]) => h('option', { value: u, selected: u === hv.unit }, label)));
  const preview = h('div', { id: 'schedule-preview', class: 'preview', 'aria-live': 'polite' });

  const retries = h('input', { type: 'number', min: 0, step: 1, value: v(job && job.retries, 0) });
  const epsilon = h('input', { type: 'text', value: v(job && job.epsilon), placeholder: 'PT30S', class: 'mono' });
  const onFailure = h('input', { type: 'text', value: v(job && job.on_failure_job), list: 'job-ids', autocomplete: 'off', class: 'mono' });
  const parents = h('input', {
    type: 'text', value: ((job && job.parent_jobs) || []).join(', '), list: 'job-ids',
    autocomplete: 'off', class: 'mono', readonly: editing,
  });
  const enabled = h('input', { type: 'checkbox', checked: !(job && job.disabled) });
  const resume = h('input', { type: 'checkbox', checked: Boolean(job && job.resume_at_next_scheduled_time) });
  const delims = h('input', { type: 'text', value: v(job && job.TemplateDelimiters), placeholder: '{{ }}', class: 'mono' });
  const envBox = h('textarea', { rows: 2, spellcheck: 'false', class: 'mono', placeholder: 'MODE=full' });
  envBox.value = envText(job && job.env);
  const secretBox = h('textarea', { rows: 2, spellcheck: 'false', class: 'mono', autocomplete: 'off' });
  secretBox.value = envText(job && job.secret_env);
  const datalist = h('datalist', { id: 'job-ids' });
  const formError = h('div', { class: 'form-error', role: 'alert', id: 'form-error', hidden: true });
  const save = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save changes' : 'Create job');

  const localBox = h('div', { id: 'local-fields' },
    field('Command', command, { field: 'command', hint: 'Split into words like a shell does, run without a shell: use sh -c \'…\' for pipes and $VARS.' }));
  const remoteBox = h('fieldset', { id: 'remote-fields' }, h('legend', {}, 'HTTP request'),
    field('URL', url, { field: 'remote_properties.url' }),
    field('Method', method, { field: 'remote_properties.method' }),
    field('Body', rbody, { field: 'remote_properties.body' }),
    field('Headers, one "Name: value" per line', headers, { field: 'remote_properties.headers' }),
    field('Timeout (seconds, 0 for the default)', timeout, { field: 'remote_properties.timeout' }),
    field('Expected response codes', codes, { field: 'remote_properties.expected_response_codes', hint: 'Comma separated; empty means any 2xx.' }));

  const syncType = () => {
    localBox.hidden = remote.checked;
    remoteBox.hidden = !remote.checked;
  };
  local.addEventListener('change', syncType);
  remote.addEventListener('change', syncType);
  syncType();

  const syncRepeat = () => {
    hTimes.closest('.field').hidden = hRepeat.value !== 'times';
    hEvery.closest('.field').hidden = hRepeat.value === 'once';
    hUnit.closest('.field').hidden = hRepeat.value === 'once';
  };

  const form = h('form', { id: 'job-form', novalidate: true },
    formError,
    h('fieldset', {}, h('legend', {}, 'Job'),
      field('Name', name, { field: 'name' }),
      field('Owner (e-mail)', owner, { field: 'owner' }),
      h('fieldset', { class: 'radios' }, h('legend', {}, 'Type'),
        h('div', { class: 'field check' }, local, h('label', { for: 'type-local' }, 'Local command')),
        h('div', { class: 'field check' }, remote, h('label', { for: 'type-remote' }, 'Remote HTTP call'))),
      localBox, remoteBox),
    h('fieldset', {}, h('legend', {}, 'Schedule'),
      field('Schedule (ISO 8601: R[n]/start/interval)', schedule, {
        field: 'schedule', hint: 'Empty: run once, as soon as it is saved. Ignored for a job with parents.',
      }),
      h('details', { class: 'helper', open: !job || Boolean(helperValues(job.schedule)) },
        h('summary', {}, 'Schedule helper'),
        h('div', { class: 'grid' },
          field('Start date', hDate),
          field('Start time', hTime),
          field('Time zone', hZone),
          field('Repeat', hRepeat),
          field('Total runs', hTimes),
          field('Every', hEvery),
          field('Unit', hUnit)),
        h('button', { type: 'button', id: 'helper-apply' , onclick: () => applyHelper() }, 'Use these values')),
      h('h3', { class: 'small-title' }, 'Next five runs'),
      preview),
    h('fieldset', {}, h('legend', {}, 'Behaviour'),
      field('Enabled', enabled, { field: 'disabled' }),
      field('Retries', retries, { field: 'retries', hint: 'Extra attempts after a failed one.' }),
      field('Epsilon', epsilon, { field: 'epsilon', hint: 'ISO 8601 duration; a run later than this is skipped, retries only within it.' }),
      field('Resume at next scheduled time after downtime', resume, { field: 'resume_at_next_scheduled_time' }),
      field('On failure, run job (id)', onFailure, { field: 'on_failure_job' }),
      field('Parent jobs (ids, comma separated)', parents, {
        field: 'parent_jobs',
        hint: editing ? 'Links cannot be changed by an edit.' : 'The job then runs after each successful run of its parents.',
      }),
      field('Environment, one NAME=value per line', envBox, { field: 'env' }),
      field('Secret environment, one NAME=value per line', secretBox, {
        field: 'secret_env', hint: 'Never shown again once saved; *** keeps the stored value.',
      }),
      field('Template delimiters', delims, { field: 'TemplateDelimiters', hint: 'Two delimiters separated by a space, e.g. {{ }}' })),
    datalist,
    h('div', { class: 'actions' }, save,
      h('a', { class: 'button', href: editing ? `#/job/${enc(jobId)}` : '#/jobs' }, 'Cancel')));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); submit().catch(ctx.fail); });

  const heading = h('h1', { tabindex: '-1' }, editing ? `Edit ${job.name}` : 'New job');
  clear(main).append(
    h('p', { class: 'crumbs' }, h('a', { href: editing ? `#/job/${enc(jobId)}` : '#/jobs' }, '← Back')),
    heading, form);
  syncRepeat();

  // ---- schedule helper and preview ------------------------------------------------

  function applyHelper() {
    const text = buildSchedule({
      date: hDate.value, time: hTime.value, zone: hZone.value, repeat: hRepeat.value,
      times: hTimes.value, every: hEvery.value, unit: hUnit.value,
    });
    if (text) {
      schedule.value = text;
      schedulePreview();
    }
  }
  for (const el of [hDate, hTime, hZone, hRepeat, hTimes, hEvery, hUnit]) {
    el.addEventListener('change', () => { syncRepeat(); applyHelper(); });
  }

  let previewTimer = 0;
  let previewSeq = 0;
  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(runPreview, 250);
  }
  async function runPreview() {
    const seq = ++previewSeq;
    const text = schedule.value.trim();
    try {
      const data = await api('GET', `/schedule/next/?n=5&schedule=${enc(text)}`);
      if (seq !== previewSeq || !ctx.alive()) return;
      showError(schedule, '');
      const times = data.next || [];
      clear(preview).append(times.length
        ? h('ol', { class: 'times' }, times.map((t) => h('li', {}, timeNode(t))))
        : h('p', { class: 'muted' }, 'No future run: every occurrence is in the past.'));
      if (!text) preview.prepend(h('p', { class: 'muted' }, 'No schedule: runs once, as soon as it is saved.'));
    } catch (err) {
      if (seq !== previewSeq || !ctx.alive()) return;
      if (err instanceof ApiError && err.status === 400) {
        showError(schedule, err.message);
        clear(preview).append(h('p', { class: 'muted' }, 'Fix the schedule to see its next runs.'));
      } else {
        ctx.fail(err);
      }
    }
  }
  schedule.addEventListener('input', schedulePreview);
  if (!editing && !schedule.value) applyHelper(); else runPreview();

  // Job ids for the on-failure and parent fields (best effort, not needed to save).
  api('GET', '/job/').then((data) => {
    if (!ctx.alive()) return;
    const all = Object.values((data && data.jobs) || {}).filter((j) => j.id !== jobId).slice(0, 2000);
    datalist.append(...all.map((j) => h('option', { value: j.id }, j.name)));
  }).catch(() => {});

  // ---- submit ---------------------------------------------------------------------

  const controls = [...form.querySelectorAll('[data-field]')];

  function clearErrors() {
    formError.hidden = true;
    formError.textContent = '';
    for (const c of controls) showError(c, '');
  }

  /** The control a server message names ("remote_properties.url: ..."), if any. */
  function controlFor(message) {
    let key = message.split(':', 1)[0].replace(/\[\d+\]$/, '').trim();
    while (key) {
      const found = controls.find((c) => c.dataset.field === key && !c.closest('[hidden]'));
      if (found) return found;
      const dot = key.lastIndexOf('.');
      key = dot > 0 ? key.slice(0, dot) : '';
    }
    return null;
  }

  function body() {
    const out = {
      name: name.value,
      owner: owner.value.trim(),
      type: remote.checked ? 1 : 0,
      schedule: schedule.value.trim(),
      retries: Number(retries.value || 0),
      epsilon: epsilon.value.trim(),
      on_failure_job: onFailure.value.trim(),
      disabled: !enabled.checked,
      resume_at_next_scheduled_time: resume.checked,
      TemplateDelimiters: delims.value,
    };
    if (!Number.isInteger(out.retries) || out.retries < 0) throw new FieldError(retries, 'retries: must be a whole number, 0 or more');
    const envs = parseEnv(envBox, 'env');
    if (envs) out.env = envs;
    const secrets = parseEnv(secretBox, 'secret_env');
    if (secrets) out.secret_env = secrets;
    if (!editing) {
      const ids = parents.value.split(/[\s,]+/).filter(Boolean);
      if (ids.length) out.parent_jobs = ids;
    }
    if (remote.checked) {
      const t = Number(timeout.value || 0);
      if (!Number.isInteger(t) || t < 0) throw new FieldError(timeout, 'remote_properties.timeout: must be a whole number of seconds');
      out.remote_properties = {
        url: url.value.trim(),
        method: method.value,
        body: rbody.value,
        headers: parseHeaders(headers),
        timeout: t,
        expected_response_codes: parseCodes(codes),
      };
    } else {
      out.command = command.value;
    }
    return out;
  }

  async function submit() {
    clearErrors();
    save.disabled = true;
    try {
      const payload = body();
      if (editing) {
        await api('PUT', `/job/${enc(jobId)}/`, payload);
        ctx.say(`Saved "${payload.name}".`);
        ctx.go(`#/job/${enc(jobId)}`);
      } else {
        const { id } = await api('POST', '/job/', payload);
        ctx.say(`Created "${payload.name}".`);
        ctx.go(`#/job/${enc(id)}`);
      }
    } catch (err) {
      const control = err instanceof FieldError ? err.control
        : err instanceof ApiError && err.status === 400 ? controlFor(err.message) : null;
      if (control) {
        showError(control, err.message);
        control.focus();
      } else if (err instanceof ApiError && err.status !== 401) {
        formError.textContent = err.message;
        formError.hidden = false;
        formError.focus?.();
      } else {
        throw err;
      }
    } finally {
      save.disabled = false;
    }
  }

  return heading;
}
