// api.js: the pages' one way to call the API.  The token lives in
// sessionStorage (set by index.html); errors carry the API's code and
// message so pages can show them as they are.  Tokens are short-lived
// (half an hour by default): keepFresh() swaps the page's token for a
// fresh one of the same sign-in before it runs out, and signOut() ends
// the sign-in on the server before forgetting it here.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const token = () => sessionStorage.getItem('token');

export async function api(method, path, body, headers = {}) {
  const h = { ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (token()) h.authorization = `Bearer ${token()}`;
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'network', 'the server cannot be reached');
  }
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new ApiError(res.status, json.error?.code ?? 'http_' + res.status,
      json.error?.message ?? `HTTP ${res.status}`);
  }
  return json;
}

// the token's claims ({exp, iat, ...}), or null for anything unreadable
export function claimsOf(t) {
  try {
    return JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  } catch {
    return null;
  }
}

const REFRESH_RETRY_MS = 30000;
let refreshTimer = null;

// refreshes the token when a third of its life is left, and again after
// each refresh; a refused refresh (signed out, session over) leaves the
// token to run out: the next call answers 401 and the page signs in again
export function keepFresh() {
  clearTimeout(refreshTimer);
  const c = token() && claimsOf(token());
  if (!c?.exp || !c?.iat) return;
  const due = (c.iat + (c.exp - c.iat) * 2 / 3) * 1000;
  refreshTimer = setTimeout(async () => {
    try {
      sessionStorage.setItem('token', (await api('POST', '/api/v1/auth/refresh')).token);
      keepFresh();
    } catch (err) {
      if (err.status === 401) return;
      refreshTimer = setTimeout(keepFresh, REFRESH_RETRY_MS);   // offline, busy: again soon
    }
  }, Math.max(0, due - Date.now()));
}

// ends the sign-in everywhere (the server revokes the session: this
// token, and any refreshed from it, stop working on every edge), then
// forgets it here whatever the server said
export async function signOut() {
  clearTimeout(refreshTimer);
  if (token()) {
    try { await api('POST', '/api/v1/auth/logout'); } catch { /* forgotten below all the same */ }
  }
  sessionStorage.removeItem('token');
}

// the signed-in user, or a redirect to the login page
export async function requireUser() {
  if (!token()) {
    location.href = '/index.html?next=' + encodeURIComponent(location.pathname + location.hash);
    return new Promise(() => {});
  }
  try {
    const { user } = await api('GET', '/api/v1/users/me');
    keepFresh();
    return user;
  } catch (err) {
    if (err.status === 401) {
      sessionStorage.removeItem('token');
      location.href = '/index.html';
      return new Promise(() => {});
    }
    throw err;
  }
}

// an API error as a sentence, e.g. "404 no such endpoint (not_found)"
export function describe(err) {
  return err.status ? `${err.message} (${err.status} ${err.code})` : err.message;
}
