// The router: one view at a time in <main>, chosen by the URL's hash; each view gets a
// context that ends its timers and late renders when the user moves on.

import { forgetToken, token } from './api.js';
import { clear, h } from './dom.js';
import * as detail from './detail.js';
import * as form from './form.js';
import * as jobs from './jobs.js';
import * as overview from './overview.js';

const main = document.getElementById('main');
const statusBox = document.getElementById('status');
let current = null;
let statusTimer = 0;

function say(message, kind = 'info') {
  clearTimeout(statusTimer);
  statusBox.textContent = message;
  statusBox.className = `status ${kind}`;
  statusTimer = setTimeout(() => { statusBox.textContent = ''; statusBox.className = 'status'; }, kind === 'error' ? 15000 : 5000);
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/jobs';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  return { path, params };
}

function route(path) {
  let m;
  if (path === '/' || path === '/jobs') return ['jobs', (root, ctx) => jobs.render(root, ctx)];
  if (path === '/overview') return ['overview', (root, ctx) => overview.render(root, ctx)];
  if (path === '/new') return ['new', (root, ctx) => form.render(root, ctx, null)];
  if ((m = /^\/job\/([^/]+)\/edit$/.exec(path))) {
    const id = decodeURIComponent(m[1]);
    return ['jobs', (root, ctx) => form.render(root, ctx, id)];
  }
  if ((m = /^\/job\/([^/]+)$/.exec(path))) {
    const id = decodeURIComponent(m[1]);
    return ['jobs', (root, ctx) => detail.render(root, ctx, id)];
  }
  return [null, (root) => {
    const heading = h('h1', { tabindex: '-1' }, 'Not found');
    clear(root).append(heading, h('p', {}, 'Nothing here. ', h('a', { href: '#/jobs' }, 'All jobs')));
    return heading;
  }];
}

function makeContext(path, params) {
  const timers = [];
  const ctx = {
    live: true,
    params,
    alive: () => ctx.live,
    say,
    go: (hash) => { location.hash = hash; },
    fail: (err) => {
      if (!ctx.live) return;
      say(err && err.message ? err.message : String(err), 'error');
    },
    /** Run fn every ms while the view is shown and the tab is visible; one call at a time. */
    every: (ms, fn) => {
      let busy = false;
      timers.push(setInterval(async () => {
        if (!ctx.live || busy || document.hidden) return;
        busy = true;
        try { await fn(); } catch (err) { ctx.fail(err); } finally { busy = false; }
      }, ms));
    },
    /** Update the hash's query without a new history entry or a re-render. */
    setParams: (changes) => {
      for (const [k, v] of Object.entries(changes)) {
        if (v === null || v === undefined || v === '') params.delete(k); else params.set(k, String(v));
      }
      const q = params.toString();
      history.replaceState(null, '', `#${path}${q ? `?${q}` : ''}`);
    },
    end: () => { ctx.live = false; timers.forEach(clearInterval); },
  };
  return ctx;
}

async function show() {
  const { path, params } = parseHash();
  if (current) current.end();
  const [nav, view] = route(path);
  const ctx = makeContext(path, params);
  current = ctx;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.title = `${{ jobs: 'Jobs', overview: 'Overview', new: 'New job' }[nav] || 'kalad'} · kalad`;
  main.setAttribute('aria-busy', 'true');
  try {
    const heading = await view(main, ctx);
    if (ctx.live && heading && heading.isConnected) heading.focus({ preventScroll: true });
  } catch (err) {
    if (!ctx.live) return;
    clear(main).append(h('h1', { tabindex: '-1' }, 'Something went wrong'),
      h('p', { class: 'form-error', role: 'alert' }, err && err.message ? err.message : String(err)),
      h('p', {}, h('a', { href: '#/jobs' }, 'All jobs')));
  } finally {
    if (ctx.live) main.setAttribute('aria-busy', 'false');
  }
}

function syncTokenButton() {
  document.getElementById('forget-token').hidden = !token();
}

document.getElementById('forget-token').addEventListener('click', () => { forgetToken(); say('Token forgotten.'); });
document.addEventListener('kalad:token', syncTokenButton);
window.addEventListener('hashchange', show);
syncTokenButton();
show();
