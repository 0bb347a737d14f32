// ISO 8601 schedules (R[n]/<start>/<interval>): in words, and built from a helper's fields.
// The daemon stays the judge: the form asks it for the next run times and shows its errors.

import { localTime, parseTime } from './format.js';

const DURATION = /^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;
const PARTS = ['year', 'month', 'week', 'day', 'hour', 'minute', 'second'];

export function parseDuration(text) {
  const m = DURATION.exec(text || '');
  if (!m || text === 'P' || text.endsWith('T')) return null;
  const out = {};
  PARTS.forEach((part, i) => { if (m[i + 1] !== undefined) out[part] = Number(m[i + 1]); });
  return out;
}

export function durationWords(text) {
  const d = parseDuration(text);
  if (!d) return text;
  const words = PARTS.filter((p) => d[p]).map((p) => (d[p] === 1 ? `${p}` : `${d[p]} ${p}s`));
  return words.length ? words.join(' ') : 'no time';
}

/** Split a schedule into repeat (null: forever), start text and interval text. */
export function splitSchedule(text) {
  const parts = (text || '').split('/');
  if (parts.length !== 3) return null;
  const m = /^R(-?\d*)$/.exec(parts[0]);
  if (!m) return null;
  let repeat = m[1] === '' ? null : Number(m[1]);
  if (repeat !== null && repeat < 0) repeat = repeat === -1 ? null : 0;
  return { repeat, start: parts[1], interval: parts[2] };
}

/** The schedule in words, e.g. "every 10 minutes from 2030-01-01 00:00:00, forever". */
export function scheduleWords(job) {
  if (job.parent_jobs && job.parent_jobs.length) return 'after its parent job succeeds';
  if (!job.schedule) return 'once, when created';
  const s = splitSchedule(job.schedule);
  if (!s) return job.schedule;
  const start = parseTime(s.start);
  const from = start ? localTime(start) : s.start;
  if (s.repeat === 0) return `once at ${from}`;
  const every = `every ${durationWords(s.interval)}`;
  const times = s.repeat === null ? 'forever' : `${s.repeat + 1} times`;
  return `${every} from ${from}, ${times}`;
}

export const UNITS = [
  ['second', 'Seconds', (n) => `PT${n}S`],
  ['minute', 'Minutes', (n) => `PT${n}M`],
  ['hour', 'Hours', (n) => `PT${n}H`],
  ['day', 'Days', (n) => `P${n}D`],
  ['week', 'Weeks', (n) => `P${n}W`],
  ['month', 'Months', (n) => `P${n}M`],
  ['year', 'Years', (n) => `P${n}Y`],
];

const pad = (n) => String(Math.abs(n)).padStart(2, '0');

/** "+01:00" for a UTC offset in minutes (as Date#getTimezoneOffset's negation). */
export function offsetText(minutes) {
  if (minutes === 0) return 'Z';
  const sign = minutes > 0 ? '+' : '-';
  return `${sign}${pad(Math.trunc(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
}

/** Zones offered by the helper: UTC, the browser's own offset, then every common offset. */
export function zoneChoices() {
  const local = -new Date().getTimezoneOffset();
  let name = '';
  try { name = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch { name = ''; }
  const seen = new Set(['Z']);
  const out = [['Z', 'UTC']];
  if (local !== 0) {
    seen.add(offsetText(local));
    out.push([offsetText(local), `This browser: ${offsetText(local)}${name ? ` (${name})` : ''}`]);
  }
  for (let m = -12 * 60; m <= 14 * 60; m += 30) {
    const t = offsetText(m);
    if (!seen.has(t)) { seen.add(t); out.push([t, `UTC${t}`]); }
  }
  return out;
}

/**
 * The schedule text from the helper's values:
 * {date: 'YYYY-MM-DD', time: 'HH:MM[:SS]', zone: 'Z'|'+01:00', repeat: 'forever'|'times'|'once',
 *  times: total runs, every: n, unit: 'minute'...}. Returns '' when the start is incomplete.
 */
export function buildSchedule(v) {
  if (!v.date || !v.time) return '';
  const time = v.time.length === 5 ? `${v.time}:00` : v.time;
  const start = `${v.date}T${time}${v.zone || 'Z'}`;
  if (v.repeat === 'once') return `R0/${start}/PT0S`;
  const unit = UNITS.find((u) => u[0] === v.unit) || UNITS[1];
  const every = Math.max(1, Math.floor(Number(v.every) || 1));
  const repeat = v.repeat === 'times' ? `R${Math.max(1, Math.floor(Number(v.times) || 1)) - 1}` : 'R';
  return `${repeat}/${start}/${unit[2](every)}`;
}

/** The helper's values for an existing schedule, or null when it does not fit the helper. */
export function helperValues(text) {
  const s = splitSchedule(text);
  if (!s) return null;
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2})?)(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?$/.exec(s.start);
  if (!m) return null;
  const v = { date: m[1], time: m[2], zone: m[3] || 'Z', every: 1, unit: 'hour', times: 2 };
  if (v.zone === '+00:00') v.zone = 'Z';
  if (s.repeat === 0) return { ...v, repeat: 'once' };
  const d = parseDuration(s.interval);
  const set = d ? PARTS.filter((p) => d[p]) : [];
  if (set.length !== 1 || !Number.isInteger(d[set[0]])) return null;
  v.unit = set[0];
  v.every = d[set[0]];
  if (s.repeat === null) return { ...v, repeat: 'forever' };
  return { ...v, repeat: 'times', times: s.repeat + 1 };
}
