// Times, durations and counts as people read them; "never" is Kala's zero time.

const pad = (n, w = 2) => String(n).padStart(w, '0');

export function parseTime(text) {
  if (!text || text.startsWith('0001-01-01')) return null;
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Local wall-clock time, YYYY-MM-DD HH:MM:SS. */
export function localTime(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function relative(d, now = Date.now()) {
  const diff = (d.getTime() - now) / 1000;
  const abs = Math.abs(diff);
  let text;
  if (abs < 1) return 'now';
  if (abs < 60) text = `${Math.round(abs)} s`;
  else if (abs < 3600) text = `${Math.round(abs / 60)} min`;
  else if (abs < 86400 * 2) text = `${Math.round(abs / 3600)} h`;
  else text = `${Math.round(abs / 86400)} days`;
  return diff > 0 ? `in ${text}` : `${text} ago`;
}

/** A <time> element for a wire timestamp (or "never"), local time with a relative hint. */
export function timeNode(text, { fallback = 'never' } = {}) {
  const d = parseTime(text);
  if (!d) {
    const span = document.createElement('span');
    span.className = 'muted';
    span.textContent = fallback;
    return span;
  }
  const el = document.createElement('time');
  el.dateTime = d.toISOString();
  el.title = `${d.toISOString()} (UTC)`;
  el.textContent = `${localTime(d)} (${relative(d)})`;
  return el;
}

export function duration(ns) {
  if (ns === null || ns === undefined) return '—';
  const s = ns / 1e9;
  if (s < 1) return `${Math.round(ns / 1e6)} ms`;
  if (s < 60) return `${s.toFixed(2)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export const count = (n) => Number(n || 0).toLocaleString('en');
