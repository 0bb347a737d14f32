// The jobs table: search, filters, sorting and paging over the whole list, kept in the URL
// so a refresh (automatic or the browser's) never loses the user's place.

import { api } from './api.js';
import { clear, h } from './dom.js';
import { count, parseTime, timeNode } from './format.js';
import { scheduleWords } from './schedule.js';

const FILTERS = [
  ['all', 'All jobs'],
  ['enabled', 'Enabled'],
  ['disabled', 'Disabled'],
  ['failing', 'Failing (last run failed)'],
  ['done', 'Done'],
];

const COLUMNS = [
  ['name', 'Name'],
  ['schedule', 'Schedule'],
  ['next', 'Next run'],
  ['last', 'Last run'],
  ['counts', 'Succeeded / failed'],
  ['enabled', 'Enabled'],
];

const PAGE_SIZES = [25, 50, 100, 200];
const REFRESH_MS = 5000;

/** The derived fields every filter and sort needs, computed once per fetch. */
function row(job) {
  const md = job.metadata || {};
  const lastSuccess = parseTime(md.last_success);
  const lastError = parseTime(md.last_error);
  const last = parseTime(md.last_attempted_run);
  const next = parseTime(job.next_run_at);
  const failing = Boolean(lastError && (!lastSuccess || lastError > lastSuccess));
  return {
    job,
    search: `${job.name}\u0000${job.owner}\u0000${job.id}`.toLowerCase(),
    name: job.name.toLowerCase(),
    schedule: job.schedule || '',
    next: next && !job.disabled && !job.is_done ? next.getTime() : Infinity,
    last: last ? last.getTime() : -Infinity,
    counts: (md.success_count || 0) - (md.error_count || 0) / 1e9,
    enabled: job.disabled ? 1 : 0,
    failing,
  };
}

const KEEP = {
  all: () => true,
  enabled: (r) => !r.job.disabled,
  disabled: (r) => r.job.disabled,
  failing: (r) => r.failing,
  done: (r) => r.job.is_done,
};

function lastRunCell(r) {
  const md = r.job.metadata || {};
  if (!parseTime(md.last_attempted_run)) return [h('span', { class: 'muted' }, 'never')];
  const result = r.failing
    ? h('span', { class: 'badge bad' }, '✗ failed')
    : parseTime(md.last_success)
      ? h('span', { class: 'badge good' }, '✓ succeeded')
      : h('span', { class: 'badge' }, 'no result');
  return [timeNode(md.last_attempted_run), ' ', result];
}

function nextRunCell(job) {
  if (job.parent_jobs && job.parent_jobs.length) return h('span', { class: 'muted' }, 'after parent');
  if (job.is_done) return h('span', { class: 'badge' }, 'done');
  if (job.disabled) return h('span', { class: 'muted' }, 'disabled');
  return timeNode(job.next_run_at, { fallback: 'none' });
}

function tableRow(r) {
  const { job } = r;
  const md = job.metadata || {};
  return h('tr', { dataset: { id: job.id } },
    h('td', { 'data-label': 'Name' },
      h('a', { href: `#/job/${encodeURIComponent(job.id)}`, dataset: { focus: `a:${job.id}` } },
        job.name || job.id),
      job.owner ? h('div', { class: 'muted small' }, job.owner) : null),
    h('td', { 'data-label': 'Schedule' },
      h('div', {}, scheduleWords(job)),
      job.schedule ? h('code', { class: 'small' }, job.schedule) : null),
    h('td', { 'data-label': 'Next run' }, nextRunCell(job)),
    h('td', { 'data-label': 'Last run' }, lastRunCell(r)),
    h('td', { 'data-label': 'Succeeded / failed', class: 'num' },
      h('span', { class: 'good-text' }, count(md.success_count)), ' / ',
      h('span', { class: md.error_count ? 'bad-text' : '' }, count(md.error_count))),
    h('td', { 'data-label': 'Enabled' },
      job.disabled ? h('span', { class: 'badge off' }, 'No') : h('span', { class: 'badge on' }, 'Yes')));
}

export async function render(main, ctx) {
  const p = ctx.params;
  const state = {
    q: p.get('q') || '',
    f: KEEP[p.get('f')] ? p.get('f') : 'all',
    s: COLUMNS.some((c) => c[0] === p.get('s')) ? p.get('s') : 'name',
    d: p.get('d') === 'desc' ? 'desc' : 'asc',
    page: Math.max(1, Number.parseInt(p.get('p'), 10) || 1),
    size: PAGE_SIZES.includes(Number(p.get('n'))) ? Number(p.get('n')) : 50,
  };
  let rows = [];
  let shown = [];

  const save = () => ctx.setParams({
    q: state.q || null, f: state.f === 'all' ? null : state.f, s: state.s === 'name' ? null : state.s,
    d: state.d === 'asc' ? null : state.d, p: state.page === 1 ? null : state.page,
    n: state.size === 50 ? null : state.size,
  });

  const search = h('input', {
    id: 'job-search', type: 'search', value: state.q, autocomplete: 'off',
    placeholder: 'name, owner or id',
  });
  const filter = h('select', { id: 'job-filter' },
    FILTERS.map(([v, label]) => h('option', { value: v, selected: v === state.f }, label)));
  const size = h('select', { id: 'job-page-size' },
    PAGE_SIZES.map((n) => h('option', { value: n, selected: n === state.size }, String(n))));
  const auto = h('input', { id: 'job-auto', type: 'checkbox', checked: true });
  const summary = h('p', { id: 'job-summary', class: 'muted', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const headRow = h('tr');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const table = h('table', { id: 'jobs-table', class: 'jobs' },
    h('caption', { class: 'visually-hidden' }, 'Jobs; column headers sort the table'),
    h('thead', {}, headRow), tbody);

  const heading = h('h1', { tabindex: '-1' }, 'Jobs');
  clear(main).append(
    heading,
    h('div', { class: 'toolbar' },
      h('div', { class: 'field' }, h('label', { for: 'job-search' }, 'Search'), search),
      h('div', { class: 'field' }, h('label', { for: 'job-filter' }, 'Show'), filter),
      h('div', { class: 'field' }, h('label', { for: 'job-page-size' }, 'Per page'), size),
      h('div', { class: 'field check' }, auto, h('label', { for: 'job-auto' }, 'Refresh every 5 s')),
      h('a', { class: 'button primary', href: '#/new' }, 'New job')),
    summary,
    h('div', { class: 'table-wrap' }, table),
    pager);

  function sortHeader() {
    clear(headRow);
    for (const [key, label] of COLUMNS) {
      const active = state.s === key;
      const th = h('th', { scope: 'col', 'aria-sort': active ? (state.d === 'asc' ? 'ascending' : 'descending') : 'none' },
        h('button', {
          type: 'button', class: 'sort', dataset: { focus: `sort:${key}` },
          onclick: () => {
            if (state.s === key) state.d = state.d === 'asc' ? 'desc' : 'asc';
            else { state.s = key; state.d = 'asc'; }
            state.page = 1;
            save(); sortHeader(); apply();
          },
        }, label, h('span', { 'aria-hidden': 'true', class: 'arrow' }, active ? (state.d === 'asc' ? ' ▲' : ' ▼') : '')));
      headRow.append(th);
    }
  }

  function apply() {
    const q = state.q.trim().toLowerCase();
    const keep = KEEP[state.f];
    shown = rows.filter((r) => keep(r) && (!q || r.search.includes(q)));
    const key = state.s;
    const dir = state.d === 'asc' ? 1 : -1;
    shown.sort((a, b) => {
      const x = a[key];
      const y = b[key];
      if (x < y) return -dir;
      if (x > y) return dir;
      return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    });
    const pages = Math.max(1, Math.ceil(shown.length / state.size));
    if (state.page > pages) state.page = pages;
    const from = (state.page - 1) * state.size;
    const slice = shown.slice(from, from + state.size);
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.focus : undefined;
    clear(tbody);
    if (!slice.length) {
      tbody.append(h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'muted' },
        rows.length ? 'No job matches.' : 'No jobs yet.')));
    } else {
      const frag = document.createDocumentFragment();
      for (const r of slice) frag.append(tableRow(r));
      tbody.append(frag);
    }
    summary.textContent = shown.length
      ? `Showing ${count(from + 1)}–${count(from + slice.length)} of ${count(shown.length)} jobs` +
        (shown.length !== rows.length ? ` (${count(rows.length)} in all)` : '')
      : `0 of ${count(rows.length)} jobs`;
    renderPager(pages);
    if (focused) {
      const again = main.querySelector(`[data-focus="${CSS.escape(focused)}"]`);
      if (again && again !== document.activeElement) again.focus();
    }
  }

  function renderPager(pages) {
    clear(pager);
    const go = (n) => () => { state.page = n; save(); apply(); };
    const button = (label, n, disabled, focus) => h('button', {
      type: 'button', disabled, onclick: go(n), dataset: { focus },
    }, label);
    pager.append(
      button('« First', 1, state.page === 1, 'p:first'),
      button('‹ Previous', state.page - 1, state.page === 1, 'p:prev'),
      h('span', { class: 'page-of' }, `Page ${state.page} of ${pages}`),
      button('Next ›', state.page + 1, state.page >= pages, 'p:next'),
      button('Last »', pages, state.page >= pages, 'p:last'));
  }

  let timer = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = search.value; state.page = 1; save(); apply(); }, 150);
  });
  filter.addEventListener('change', () => { state.f = filter.value; state.page = 1; save(); apply(); });
  size.addEventListener('change', () => { state.size = Number(size.value); state.page = 1; save(); apply(); });

  async function load() {
    const started = performance.now();
    const data = await api('GET', '/job/');
    if (!ctx.alive()) return;
    rows = Object.values((data && data.jobs) || {}).map(row);
    apply();
    main.dataset.loadedMs = String(Math.round(performance.now() - started));
    main.dataset.loadedAt = String(Date.now());
  }

  sortHeader();
  await load();
  // A big list takes a while to fetch: refresh at most every five load times.
  ctx.every(REFRESH_MS, async () => {
    const since = Date.now() - Number(main.dataset.loadedAt || 0);
    if (auto.checked && since >= 5 * Number(main.dataset.loadedMs || 0)) await load();
  });
  return heading;
}
