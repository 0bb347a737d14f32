// One job: every field, its next runs, its run history with output, and what can be done to it.

import { api, enc } from './api.js';
import { clear, h } from './dom.js';
import { count, duration, timeNode } from './format.js';
import { scheduleWords } from './schedule.js';

const REFRESH_MS = 3000;
const RUN_LIMITS = [20, 50, 200, 1000];

function item(term, ...value) {
  return [h('dt', {}, term), h('dd', {}, ...value)];
}

const text = (v) => (v === '' || v === null || v === undefined
  ? h('span', { class: 'muted' }, '—') : String(v));

function jobLink(id, names) {
  return h('a', { href: `#/job/${enc(id)}` }, names.get(id) || id);
}

function linkList(ids, names) {
  if (!ids || !ids.length) return [h('span', { class: 'muted' }, 'none')];
  return [h('ul', { class: 'inline' }, ids.map((id) => h('li', {}, jobLink(id, names))))];
}

function statusBadge(run) {
  const cls = run.success ? 'good' : ['failed', 'killed'].includes(run.status) ? 'bad' : '';
  return h('span', { class: `badge ${cls}` }, run.status);
}

function runRow(run, open) {
  const out = run.output || '';
  const details = h('details', { dataset: { run: run.id } },
    h('summary', {}, out ? `Output (${count(out.length)} chars)` : 'Output (empty)'),
    h('pre', { class: 'output', tabindex: '0' }, out || '(no output)'),
    run.message ? h('p', { class: 'small' }, run.message) : null);
  details.open = open;
  return h('tr', {},
    h('td', { 'data-label': 'Started' }, timeNode(run.started_at)),
    h('td', { 'data-label': 'Trigger' }, run.trigger),
    h('td', { 'data-label': 'Status' }, statusBadge(run)),
    h('td', { 'data-label': 'Duration', class: 'num' }, duration(run.duration_ns)),
    h('td', { 'data-label': 'Attempts', class: 'num' }, String(run.attempts)),
    h('td', { 'data-label': 'Exit status', class: 'num' }, text(run.exit_status)),
    h('td', { 'data-label': 'Success' }, run.success ? 'yes' : 'no'),
    h('td', { 'data-label': 'Output', class: 'output-cell' }, details));
}

function definition(job, names) {
  const md = job.metadata || {};
  const rp = job.remote_properties || {};
  const remote = job.type === 1;
  const headers = rp.headers
    ? Object.entries(rp.headers).map(([k, vs]) => vs.map((v) => `${k}: ${v}`)).flat().join('\n') : '';
  return h('dl', { class: 'fields' },
    item('Id', h('code', {}, job.id)),
    item('Name', job.name),
    item('Owner', text(job.owner)),
    item('Type', remote ? 'remote (HTTP)' : 'local (command)'),
    remote ? [
      item('URL', h('code', {}, rp.url)),
      item('Method', text(rp.method || 'GET')),
      item('Body', rp.body ? h('pre', { class: 'small' }, rp.body) : text('')),
      item('Headers', headers ? h('pre', { class: 'small' }, headers) : text('')),
      item('Timeout', rp.timeout ? `${rp.timeout} s` : text('')),
      item('Expected response codes', text((rp.expected_response_codes || []).join(', '))),
    ] : item('Command', h('code', {}, job.command)),
    item('Schedule', h('div', {}, scheduleWords(job)), job.schedule ? h('code', {}, job.schedule) : null),
    item('Next run', job.is_done ? 'done' : timeNode(job.next_run_at, { fallback: 'none' })),
    item('Enabled', job.disabled ? 'no (disabled)' : 'yes'),
    item('Done', job.is_done ? 'yes' : 'no'),
    item('Retries', String(job.retries)),
    item('Epsilon', text(job.epsilon)),
    item('Resume at next scheduled time', job.resume_at_next_scheduled_time ? 'yes' : 'no'),
    item('Template delimiters', text(job.TemplateDelimiters)),
    job.env ? item('Environment', h('pre', { class: 'small' }, Object.entries(job.env).map(([k, x]) => `${k}=${x}`).join('\n'))) : null,
    job.secret_env ? item('Secret environment', h('pre', { class: 'small' }, Object.keys(job.secret_env).map((k) => `${k}=***`).join('\n'))) : null,
    item('Parents', ...linkList(job.parent_jobs, names)),
    item('Children', ...linkList(job.dependent_jobs, names)),
    item('On failure, run', job.on_failure_job ? jobLink(job.on_failure_job, names) : text('')),
    item('Successful runs', count(md.success_count)),
    item('Failed attempts', count(md.error_count)),
    item('Finished runs', count(md.number_of_finished_runs)),
    item('Last success', timeNode(md.last_success)),
    item('Last error', timeNode(md.last_error)),
    item('Last attempted run', timeNode(md.last_attempted_run)));
}

export async function render(main, ctx, jobId) {
  const names = new Map();
  let limit = RUN_LIMITS.includes(Number(ctx.params.get('runs'))) ? Number(ctx.params.get('runs')) : 50;
  let lastSeen = '';

  const heading = h('h1', { tabindex: '-1' }, 'Job');
  const badges = h('span', { class: 'badges' });
  const actions = h('div', { class: 'toolbar actions', role: 'group', 'aria-label': 'Job actions' });
  const defBox = h('section', { 'aria-labelledby': 'def-title' }, h('h2', { id: 'def-title' }, 'Definition'));
  const nextList = h('ol', { id: 'next-runs', class: 'times' });
  const runsBody = h('tbody');
  const runsNote = h('p', { class: 'muted', id: 'runs-note' });
  const limitSel = h('select', { id: 'runs-limit' },
    RUN_LIMITS.map((n) => h('option', { value: n, selected: n === limit }, String(n))));

  clear(main).append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← All jobs')),
    h('div', { class: 'title-row' }, heading, badges),
    actions,
    h('div', { class: 'columns' },
      defBox,
      h('section', { 'aria-labelledby': 'next-title' }, h('h2', { id: 'next-title' }, 'Next runs'), nextList)),
    h('section', { 'aria-labelledby': 'runs-title' },
      h('div', { class: 'title-row' }, h('h2', { id: 'runs-title' }, 'Run history'),
        h('div', { class: 'field inline' }, h('label', { for: 'runs-limit' }, 'Show last'), limitSel)),
      runsNote,
      h('div', { class: 'table-wrap' },
        h('table', { id: 'runs-table', class: 'runs' },
          h('caption', { class: 'visually-hidden' }, 'Runs, newest first'),
          h('thead', {}, h('tr', {}, ['Started', 'Trigger', 'Status', 'Duration', 'Attempts',
            'Exit status', 'Success', 'Output'].map((c) => h('th', { scope: 'col' }, c)))),
          runsBody))));

  limitSel.addEventListener('change', () => {
    limit = Number(limitSel.value);
    ctx.setParams({ runs: limit === 50 ? null : limit });
    lastSeen = '';
    load().catch(ctx.fail);
  });

  const act = (label, fn, cls = '') => h('button', {
    type: 'button', class: cls,
    onclick: async (ev) => {
      const button = ev.currentTarget;
      button.disabled = true;
      try { await fn(); } catch (err) { ctx.fail(err); } finally { button.disabled = false; }
    },
  }, label);

  async function resolveNames(job) {
    const ids = [...(job.parent_jobs || []), ...(job.dependent_jobs || []),
      ...(job.on_failure_job ? [job.on_failure_job] : [])].filter((id) => !names.has(id)).slice(0, 50);
    await Promise.all(ids.map(async (id) => {
      try { names.set(id, (await api('GET', `/job/${enc(id)}/`)).job.name); } catch { names.set(id, id); }
    }));
  }

  function renderActions(job) {
    clear(actions).append(
      act('Run now', async () => {
        await api('POST', `/job/start/${enc(job.id)}/`);
        ctx.say(job.disabled ? `"${job.name}" is disabled: the run was skipped and recorded.`
          : `Started "${job.name}".`);
        await load();
      }, 'primary'),
      job.disabled
        ? act('Enable', async () => { await api('POST', `/job/enable/${enc(job.id)}/`); ctx.say('Enabled.'); await load(); })
        : act('Disable', async () => { await api('POST', `/job/disable/${enc(job.id)}/`); ctx.say('Disabled.'); await load(); }),
      h('a', { class: 'button', href: `#/job/${enc(job.id)}/edit` }, 'Edit'),
      act('Delete…', async () => {
        const kids = (job.dependent_jobs || []).length;
        const extra = kids ? ` Its ${kids} child job(s) without another parent go with it.` : '';
        if (!window.confirm(`Delete job "${job.name}" and its run history?${extra}`)) return;
        await api('DELETE', `/job/${enc(job.id)}/`);
        ctx.say(`Deleted "${job.name}".`);
        ctx.go('#/jobs');
      }, 'danger'));
  }

  async function load() {
    const jobData = await api('GET', `/job/${enc(jobId)}/`);
    const [runData, nextData] = await Promise.all([
      api('GET', `/job/${enc(jobId)}/runs/?limit=${limit}`),
      api('GET', `/job/${enc(jobId)}/next/?n=5`),
    ]);
    if (!ctx.alive()) return;
    const { job } = jobData;
    const runs = (runData.runs || []).slice().reverse();
    const seen = JSON.stringify([job, runs, nextData]);
    if (seen === lastSeen) return;
    lastSeen = seen;
    await resolveNames(job);
    if (!ctx.alive()) return;
    document.title = `${job.name} · kalad`;
    heading.textContent = job.name;
    clear(badges).append(
      job.disabled ? h('span', { class: 'badge off' }, 'disabled') : h('span', { class: 'badge on' }, 'enabled'),
      ...(job.is_done ? [h('span', { class: 'badge' }, 'done')] : []));
    const focusedLabel = actions.contains(document.activeElement) ? document.activeElement.textContent : null;
    renderActions(job);
    if (focusedLabel) {
      const again = [...actions.children].find((b) => b.textContent === focusedLabel);
      if (again) again.focus();
    }
    defBox.replaceChildren(defBox.firstChild, definition(job, names));
    clear(nextList);
    const times = nextData.next || [];
    if (!times.length) nextList.append(h('li', { class: 'muted' }, job.parent_jobs ? 'runs after its parent' : 'none'));
    for (const t of times) nextList.append(h('li', {}, timeNode(t)));
    const open = new Set([...runsBody.querySelectorAll('details[open]')].map((d) => d.dataset.run));
    clear(runsBody);
    if (!runs.length) runsBody.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No runs yet.')));
    for (const run of runs) runsBody.append(runRow(run, open.has(run.id)));
    runsNote.textContent = runs.length ? `${runs.length} most recent run record(s), newest first.` : '';
  }

  let gone = false;
  const showGone = () => {
    gone = true;
    const title = h('h1', { tabindex: '-1' }, 'No such job');
    clear(main).append(title,
      h('p', {}, `Job ${jobId} does not exist (any more). `, h('a', { href: '#/jobs' }, 'Back to all jobs')));
    return title;
  };
  try {
    await load();
  } catch (err) {
    if (err.status === 404) return showGone();
    throw err;
  }
  ctx.every(REFRESH_MS, async () => {
    if (gone) return;
    try {
      await load();
    } catch (err) {
      if (err.status !== 404) throw err;
      showGone().focus();  // deleted elsewhere while shown here
    }
  });
  return heading;
}
