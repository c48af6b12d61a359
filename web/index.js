// index.js: register and log in; the token goes to sessionStorage, and
// ?next=/path returns there after login (kept out of the page: the CSP
// allows no inline scripts).

const $ = (id) => document.getElementById(id);

async function call(method, path, body) {
  const headers = { 'content-type': 'application/json' };
  const token = sessionStorage.getItem('token');
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`);
  return json;
}

function show(user) {
  $('signed-out').classList.toggle('hidden', !!user);
  $('signed-in').classList.toggle('hidden', !user);
  if (user) {
    $('hello').textContent = `Welcome back, ${user.display_name}`;
    $('who').textContent = `${user.display_name} <${user.email}>`;
    $('role').textContent = user.role;
    $('admin-link').classList.toggle('hidden', user.role !== 'admin');
    summarizeChats();
  }
}

// the chat card says what is waiting: unread messages and requests
async function summarizeChats() {
  try {
    const { conversations } = await call('GET', '/api/v1/conversations');
    const unread = conversations.reduce((n, c) => n + (c.unread ?? 0), 0);
    const requests = conversations.filter((c) => c.status === 'request').length;
    const parts = [];
    if (unread) parts.push(`${unread} unread message${unread === 1 ? '' : 's'}`);
    if (requests) parts.push(`${requests} message request${requests === 1 ? '' : 's'}`);
    $('chat-summary').textContent = parts.length ? parts.join(' · ')
      : conversations.length ? `${conversations.length} conversation${conversations.length === 1 ? '' : 's'}, all read`
        : 'Start a conversation';
  } catch (err) {
    $('chat-summary').textContent = `conversations: ${err.message}`;
  }
}

function onSubmit(form, path) {
  $(form).addEventListener('submit', async (e) => {
    e.preventDefault();
    $('message').textContent = '';
    try {
      const { user, token } = await call('POST', path, Object.fromEntries(new FormData(e.target)));
      sessionStorage.setItem('token', token);
      // back to the page that sent us here (same origin paths only)
      const next = new URLSearchParams(location.search).get('next');
      if (next && next.startsWith('/') && !next.startsWith('//')) { location.href = next; return; }
      show(user);
    } catch (err) {
      $('message').textContent = err.message;
    }
  });
}

onSubmit('login', '/api/v1/auth/login');
onSubmit('register', '/api/v1/auth/register');

// the server ends the sign-in (every copy of the token stops working),
// then it is forgotten here
$('logout').addEventListener('click', async () => {
  try { await call('POST', '/api/v1/auth/logout'); } catch { /* forgotten all the same */ }
  sessionStorage.removeItem('token');
  show(null);
});

if (sessionStorage.getItem('token')) {
  call('GET', '/api/v1/users/me').then(({ user }) => show(user))
    .catch(() => { sessionStorage.removeItem('token'); show(null); });
}
