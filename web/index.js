// index.js: the entry page.  Signed out: what the product is, and a tabbed
// panel to sign in or create an account (#register opens the second tab);
// the token goes to sessionStorage, and ?next=/path returns there after
// signing in.  Signed in: where to go, with what waits in the chat.  Kept
// out of the page: the CSP allows no inline scripts.

import { ApiError, api, keepFresh, token } from './api.js';
import { el } from './dom.js';
import { header } from './nav.js';

const $ = (id) => document.getElementById(id);

// where ?next= points, when it is a path of this site (never another origin)
function nextPath() {
  const next = new URLSearchParams(location.search).get('next');
  return next && next.startsWith('/') && !next.startsWith('//') ? next : null;
}

const PLACES = { '/chat.html': 'your conversations', '/store.html': 'the bookstore', '/admin.html': 'the admin pages' };

// --- signed out: the two tabs

const TABS = ['login', 'register'];

function selectTab(name, focus = true) {
  for (const t of TABS) {
    const on = t === name;
    $(`tab-${t}`).setAttribute('aria-selected', String(on));
    $(`tab-${t}`).tabIndex = on ? 0 : -1;
    $(t).classList.toggle('hidden', !on);
  }
  $('message').textContent = '';
  if (focus) $(name).querySelector('input').focus();
}

for (const t of TABS) {
  $(`tab-${t}`).addEventListener('click', () => {
    selectTab(t);
    history.replaceState(null, '', t === 'register' ? '#register' : location.pathname + location.search);
  });
  // the arrow keys move between the tabs (the WAI-ARIA tabs pattern)
  $(`tab-${t}`).addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
    const other = TABS[(TABS.indexOf(t) + 1) % TABS.length];
    selectTab(other, false);
    $(`tab-${other}`).focus();
  });
}

// an API error as a sentence for this page; a taken email offers to sign in
function explain(err, form) {
  const msg = $('message');
  msg.textContent = '';
  if (!(err instanceof ApiError)) { msg.textContent = String(err.message ?? err); return; }
  const text = err.message.charAt(0).toUpperCase() + err.message.slice(1);
  msg.append(text.endsWith('.') ? text : `${text}.`);
  if (err.code === 'email_taken') {
    const email = new FormData(form).get('email');
    msg.append(' ', el('button.link', {
      type: 'button',
      onclick: () => {
        selectTab('login');
        $('login').elements.email.value = email;
        $('login').elements.password.focus();
      },
    }, 'Sign in instead'));
  }
}

function onSubmit(form, path, busyLabel) {
  $(form).addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = e.target.querySelector('button.primary');
    const label = button.textContent;
    $('message').textContent = '';
    button.disabled = true;
    button.textContent = busyLabel;
    try {
      const { user, token: t } = await api('POST', path, Object.fromEntries(new FormData(e.target)));
      sessionStorage.setItem('token', t);
      const next = nextPath();
      if (next) { location.href = next; return; }
      e.target.reset();
      show(user);
    } catch (err) {
      explain(err, e.target);
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  });
}

onSubmit('login', '/api/v1/auth/login', 'Signing in…');
onSubmit('register', '/api/v1/auth/register', 'Creating your account…');

// --- signed in: where to go

function show(user) {
  $('signed-out').classList.toggle('hidden', !!user);
  $('signed-in').classList.toggle('hidden', !user);
  if (!user) return;
  header(user);
  keepFresh();
  $('hello').textContent = `Welcome back, ${user.display_name}`;
  $('who').textContent = `${user.display_name} <${user.email}>`;
  $('role').textContent = user.role;
  $('admin-link').classList.toggle('hidden', user.role !== 'admin');
  summarizeChats();
}

// the chat card says what is waiting: unread messages and requests
async function summarizeChats() {
  try {
    const { conversations } = await api('GET', '/api/v1/conversations');
    const unread = conversations.reduce((n, c) => n + (c.unread ?? 0), 0);
    const requests = conversations.filter((c) => c.status === 'request').length;
    const parts = [];
    if (unread) parts.push(`${unread} unread message${unread === 1 ? '' : 's'}`);
    if (requests) parts.push(`${requests} message request${requests === 1 ? '' : 's'}`);
    $('chat-summary').textContent = parts.length ? parts.join(' · ')
      : conversations.length ? `${conversations.length} conversation${conversations.length === 1 ? '' : 's'}, all read`
        : 'Start a conversation';
  } catch (err) {
    $('chat-summary').textContent = `Conversations could not be loaded: ${err.message}`;
  }
}

// --- start

const next = nextPath();
if (next) {
  const place = PLACES[next.split(/[?#]/)[0]];
  $('next-note').textContent = place ? `Sign in or create an account to continue to ${place}.` : 'Sign in or create an account to continue.';
  $('next-note').classList.remove('hidden');
}
if (location.hash === '#register') selectTab('register', false);

if (token()) {
  api('GET', '/api/v1/users/me').then(({ user }) => show(user))
    .catch(() => { sessionStorage.removeItem('token'); show(null); });
} else {
  show(null);
}
