// The JSON API, same origin. On 401 the user is asked for a token, which is kept only in
// sessionStorage and sent as "Authorization: Bearer <token>"; nothing else is stored.

const TOKEN_KEY = 'kalad.token';
const BASE = '/api/v1';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function forgetToken() {
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage disabled */ }
  document.dispatchEvent(new Event('kalad:token'));
}

let asking = null;

/** Ask for a token once, however many requests are waiting for it; '' if cancelled. */
function askToken(why) {
  if (asking) return asking;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  document.getElementById('token-why').textContent = why;
  input.value = '';
  asking = new Promise((resolve) => {
    const done = (value) => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      asking = null;
      resolve(value);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* storage disabled */ }
      document.dispatchEvent(new Event('kalad:token'));
      done(value);
    };
    const onCancel = (ev) => { ev.preventDefault(); done(''); };
    const cancel = document.getElementById('token-cancel');
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

/** Call the API; resolves to the decoded JSON (null for 204), rejects with ApiError. */
export async function api(method, path, body) {
  for (;;) {
    const headers = { Accept: 'application/json' };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(BASE + path, init);
    } catch (err) {
      throw new ApiError(0, `cannot reach kalad (${err.message})`);
    }
    if (resp.status === 401) {
      const text = await resp.text();
      let why = 'This kalad needs an API token.';
      try { why = JSON.parse(text).error || why; } catch { /* not JSON */ }
      if (t) forgetToken();
      const got = await askToken(why);
      if (got) continue;
      throw new ApiError(401, why);
    }
    if (resp.status === 204) return null;
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!resp.ok) {
      const message = (data && data.error) || `${resp.status} ${resp.statusText}`;
      throw new ApiError(resp.status, message);
    }
    return data;
  }
}

export const enc = encodeURIComponent;
