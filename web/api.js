// api.js: the pages' one way to call the API.  The token lives in
// sessionStorage (set by index.html); errors carry the API's code and
// message so pages can show them as they are.

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

// the signed-in user, or a redirect to the login page
export async function requireUser() {
  if (!token()) {
    location.href = '/index.html?next=' + encodeURIComponent(location.pathname + location.hash);
    return new Promise(() => {});
  }
  try {
    return (await api('GET', '/api/v1/users/me')).user;
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
