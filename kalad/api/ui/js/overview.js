// The daemon's figures and a chart of runs per minute over the last hour, success vs failure.

import { api, enc } from './api.js';
import { clear, h, svg } from './dom.js';
import { count, localTime, parseTime, timeNode } from './format.js';

const REFRESH_MS = 10000;
const MINUTES = 60;
const DETAIL_FETCHES = 20;

/**
 * Runs of the last hour as {at: ms, success: bool}, from the job list's recent stats; a job
 * whose recent stats all fall inside the hour may have more, so its full run list is read
 * (for at most DETAIL_FETCHES jobs, the busiest first).
 */
async function lastHourRuns(jobs, since) {
  const runs = [];
  const saturated = [];
  for (const job of jobs) {
    const stats = job.stats || [];
    for (const s of stats) {
      const at = parseTime(s.ran_at);
      if (at && at.getTime() >= since) runs.push({ at: at.getTime(), success: Boolean(s.success), job: job.id });
    }
    const oldest = stats.length ? parseTime(stats[0].ran_at) : null;
    if (stats.length >= 50 && oldest && oldest.getTime() >= since) saturated.push([stats.length, job.id]);
  }
  saturated.sort((a, b) => b[0] - a[0]);
  const more = saturated.slice(0, DETAIL_FETCHES).map(([, id]) => id);
  const results = await Promise.all(more.map((id) => api('GET', `/job/${enc(id)}/runs/?limit=3600`).catch(() => null)));
  more.forEach((id, i) => {
    if (!results[i]) return;
    for (let k = runs.length - 1; k >= 0; k -= 1) if (runs[k].job === id) runs.splice(k, 1);
    for (const r of results[i].runs || []) {
      if (!['succeeded', 'failed', 'killed'].includes(r.status)) continue;
      const at = parseTime(r.started_at);
      if (at && at.getTime() >= since) runs.push({ at: at.getTime(), success: Boolean(r.success), job: id });
    }
  });
  return runs;
}

function chart(buckets, start) {
  const W = 720;
  const H = 220;
  const left = 36;
  const bottom = 28;
  const top = 10;
  const right = 24;
  const plotW = W - left - right;
  const plotH = H - bottom - top;
  const max = Math.max(1, ...buckets.map((b) => b.ok + b.bad));
  const niceMax = max <= 5 ? max : Math.ceil(max / 5) * 5;
  const barW = plotW / MINUTES;
  const y = (v) => top + plotH - (v / niceMax) * plotH;
  const total = buckets.reduce((a, b) => a + b.ok + b.bad, 0);
  const bad = buckets.reduce((a, b) => a + b.bad, 0);
  const label = `Runs per minute over the last hour: ${total} runs, ${total - bad} succeeded, ${bad} failed.`;
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'chart-title', class: 'chart', id: 'runs-chart',
  }, svg('title', { id: 'chart-title' }, label));
  for (const v of [0, niceMax / 2, niceMax]) {
    root.append(
      svg('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), class: 'grid-line' }),
      svg('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, String(Math.round(v * 10) / 10)));
  }
  buckets.forEach((b, i) => {
    const x = left + i * barW + 1;
    const w = Math.max(1, barW - 2);
    const at = new Date(start + i * 60000);
    const g = svg('g', { class: 'bar' },
      svg('title', {}, `${localTime(at).slice(11, 16)}: ${b.ok} succeeded, ${b.bad} failed`));
    if (b.ok) g.append(svg('rect', { x, width: w, y: y(b.ok), height: y(0) - y(b.ok), class: 'ok' }));
    if (b.bad) g.append(svg('rect', { x, width: w, y: y(b.ok + b.bad), height: y(b.ok) - y(b.ok + b.bad), class: 'fail' }));
    g.append(svg('rect', { x, width: w, y: top, height: plotH, class: 'hit' }));
    root.append(g);
    if (i % 10 === 0 || i === MINUTES - 1) {
      root.append(svg('text', { x: x + w / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis' }, localTime(at).slice(11, 16)));
    }
  });
  return root;
}

export async function render(main, ctx) {
  const heading = h('h1', { tabindex: '-1' }, 'Overview');
  const figures = h('dl', { class: 'figures', id: 'stats' });
  const chartBox = h('div', { class: 'chart-box' });
  const legend = h('p', { class: 'legend' },
    h('span', { class: 'swatch ok', 'aria-hidden': 'true' }), ' succeeded ',
    h('span', { class: 'swatch fail', 'aria-hidden': 'true' }), ' failed');
  const failing = h('ul', { id: 'failing' });
  clear(main).append(heading, figures,
    h('section', { 'aria-labelledby': 'chart-h' }, h('h2', { id: 'chart-h' }, 'Runs per minute, last hour'), legend, chartBox),
    h('section', { 'aria-labelledby': 'failing-h' }, h('h2', { id: 'failing-h' }, 'Failing jobs'), failing));

  async function load() {
    const [statsData, jobsData] = await Promise.all([api('GET', '/stats/'), api('GET', '/job/')]);
    if (!ctx.alive()) return;
    const s = statsData.Stats;
    const fig = (label, value, id) => h('div', { class: 'figure' }, h('dt', {}, label), h('dd', { id }, value));
    clear(figures).append(
      fig('Active jobs', count(s.active_jobs), 'stat-active'),
      fig('Disabled jobs', count(s.disabled_jobs), 'stat-disabled'),
      fig('All jobs', count(s.jobs), 'stat-jobs'),
      fig('Runs succeeded', count(s.success_count), 'stat-success'),
      fig('Failed attempts', count(s.error_count), 'stat-errors'),
      fig('Next run', timeNode(s.next_run_at, { fallback: 'none' }), 'stat-next'),
      fig('Last attempted run', timeNode(s.last_attempted_run), 'stat-last'));
    const jobs = Object.values(jobsData.jobs || {});
    const end = Math.floor(Date.now() / 60000) * 60000 + 60000;
    const start = end - MINUTES * 60000;
    const runs = await lastHourRuns(jobs, start);
    if (!ctx.alive()) return;
    const buckets = Array.from({ length: MINUTES }, () => ({ ok: 0, bad: 0 }));
    for (const r of runs) {
      const i = Math.floor((r.at - start) / 60000);
      if (i >= 0 && i < MINUTES) buckets[i][r.success ? 'ok' : 'bad'] += 1;
    }
    clear(chartBox).append(chart(buckets, start));
    const bad = jobs.filter((j) => {
      const e = parseTime(j.metadata.last_error);
      const ok = parseTime(j.metadata.last_success);
      return e && (!ok || e > ok);
    }).slice(0, 20);
    clear(failing).append(...(bad.length
      ? bad.map((j) => h('li', {}, h('a', { href: `#/job/${enc(j.id)}` }, j.name), ' — last error ', timeNode(j.metadata.last_error)))
      : [h('li', { class: 'muted' }, 'None.')]));
  }

  await load();
  ctx.every(REFRESH_MS, load);
  return heading;
}
