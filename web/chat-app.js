// chat-app.js: the chat page.  The conversation list (names, avatars,
// presence, last message and its time, unread counts, message requests),
// message search, new direct and group chats found by e-mail or name, and
// the open conversation (chat-pane.js), all fed by one ChatClient.  On a
// phone one pane shows at a time (main[data-view] = list | conv).  The
// open conversation is kept in the URL (?c=) and in sessionStorage, so a
// reload reopens it; the tab title carries the unread count.
//
// ?ws=<path or url> overrides the WebSocket URL (tests point it at one
// that refuses the upgrade to exercise the long-poll fallback).

import { ChatClient, newId } from './chat-client.js';
import { api, requireUser, describe, token } from './api.js';
import { $, busy, el, showError } from './dom.js';
import { header } from './nav.js';
import { ChatPane, Composer, timeOf, dayKey } from './chat-pane.js';
import { People, avatar } from './chat-people.js';

const TYPING_EVERY_MS = 2000;
const PRESENCE_LOOKUPS = 50;        // direct conversations asked for presence on load
const TITLE = document.title;
const OPEN_KEY = 'chat.open';

const me = await requireUser();
const stateBadge = el('span.state', { id: 'conn-state', role: 'status' }, 'offline');
header(me, [stateBadge]);

const people = new People(me);
const convs = new Map();       // id -> conversation (with unread)
const online = new Map();      // user id -> 'online' | 'offline'
const lastSeen = new Map();    // user id -> RFC 3339
let active = null;

const params = new URLSearchParams(location.search);
let wsUrl;
if (params.get('ws')) wsUrl = new URL(params.get('ws'), location.href).href.replace(/^http/, 'ws');

let list = [];
try {
  list = (await api('GET', '/api/v1/conversations')).conversations;
} catch (err) {
  showError(`conversations: ${describe(err)}`);
}
$('#list-loading').classList.add('hidden');
const cursors = {};
const editCursors = {};
for (const c of list) {
  convs.set(c.id, c);
  cursors[c.id] = c.last_seq;
  editCursors[c.id] = c.last_edit_seq ?? 0;
  people.want(c.members ?? []);
  if (c.last_message) people.want([c.last_message.sender_id]);
}

// ?ws_retry_ms=: how often a polling page tries WebSocket again (tests)
const retryWsMs = Number(params.get('ws_retry_ms')) || undefined;
// the token as it is now: api.js swaps it for a fresh one as it ages
const client = new ChatClient({ token, wsUrl, cursors, editCursors, retryWsMs });
const pane = new ChatPane(client, me, people, {
  accept, block, addMember, removeMember, back,
  edit: (m) => composer.edit(m),
  remove: removeMessage,
});
let lastTyping = 0;
const composer = new Composer({
  onSend: sendText,
  onEdit: editMessage,
  onTyping: () => {
    if (!active || Date.now() - lastTyping < TYPING_EVERY_MS) return;
    lastTyping = Date.now();
    client.typing(active.id);
  },
});
window.chatClient = client;    // for the browser tests and the console

people.addEventListener('names', () => {
  renderList();
  pane.repaint();
  if (active) pane.renderHead(viewOf(convs.get(active.id) ?? active), presenceLine(active));
});

client.addEventListener('state', (e) => {
  stateBadge.textContent = e.detail.state;
  stateBadge.className = `state ${e.detail.state}`;
});
client.addEventListener('conversation', (e) => { upsert(e.detail); });
client.addEventListener('message', (e) => onMessage(e.detail));
client.addEventListener('message_update', (e) => onUpdate(e.detail));
client.addEventListener('stale', (e) => {
  upsert(e.detail);
  if (e.detail.id === active?.id) openConv(active.id, { keepView: true });
});
client.addEventListener('typing', (e) => { if (e.detail.conversation_id === active?.id) pane.typing(e.detail); });
client.addEventListener('receipt', (e) => { if (e.detail.conversation_id === active?.id) pane.receipt(e.detail); });
client.addEventListener('presence', (e) => {
  online.set(e.detail.user_id, e.detail.status);
  if (e.detail.last_seen) lastSeen.set(e.detail.user_id, e.detail.last_seen);
  renderList();
  if (active) pane.renderHead(viewOf(active), presenceLine(active));
});
client.addEventListener('block', (e) => blocked(e.detail.user_id, e.detail.blocked));
client.addEventListener('error', (e) => {
  if (e.detail.status === 401) {            // the token is no longer good: sign in again
    sessionStorage.removeItem('token');
    location.href = '/index.html?next=/chat.html';
    return;
  }
  showError(`chat: ${e.detail.message ?? e.detail.code}`);
});
client.start();

// --- the list ---------------------------------------------------------------

function onMessage(m) {
  const c = convs.get(m.conversation_id);
  if (c) {
    c.last_seq = Math.max(c.last_seq ?? 0, m.seq);
    if (!c.last_message || c.last_message.seq <= m.seq) c.last_message = m;
    if (m.sender_id !== me.id && (m.conversation_id !== active?.id || document.visibilityState === 'hidden')) {
      c.unread = (c.unread ?? 0) + 1;
    }
  }
  people.want([m.sender_id]);
  if (m.sender_id !== me.id) client.delivered(m.conversation_id, m.seq);
  if (m.conversation_id === active?.id) {
    const list = $('#messages');
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    pane.put(m);
    if (atBottom || m.sender_id === me.id) pane.scrollDown();
    if (m.sender_id !== me.id && document.visibilityState !== 'hidden') client.read(m.conversation_id, m.seq);
  }
  renderList();
}

function onUpdate(m) {
  const c = convs.get(m.conversation_id);
  if (c?.last_message?.seq === m.seq) c.last_message = m;
  if (m.conversation_id === active?.id) pane.update(m);
  renderList();
}

function upsert(c) {
  const old = convs.get(c.id);
  convs.set(c.id, { unread: 0, ...old, ...c });
  people.want(c.members ?? []);
  if (c.id === active?.id) {
    active = convs.get(c.id);
    pane.renderActions(active);
    pane.renderHead(viewOf(active), presenceLine(active));
  }
  renderList();
}

const isRequest = (c) => (c.requests ?? []).map(Number).includes(me.id);

function others(c) {
  return (c.members ?? []).map(Number).filter((id) => id !== me.id);
}

function titleOf(c) {
  if (c.title) return c.title;
  if (c.type === 'direct') return people.name(others(c)[0]) ?? '…';
  return 'Group';
}

// the conversation as the pane shows it: its title, and the other
// person's id as its avatar's colour in a direct one
function viewOf(c) {
  return { ...c, title: titleOf(c), avatarKey: c.type === 'direct' ? others(c)[0] : `g${c.id}` };
}

function presenceLine(c) {
  if (c.type !== 'direct') return '';
  const other = others(c)[0];
  if (online.get(other) === 'online') return 'online';
  const seen = lastSeen.get(other);
  if (!seen) return '';
  const d = new Date(seen);
  return `last seen ${dayKey(seen) === dayKey(new Date().toISOString()) ? 'today' : d.toLocaleDateString()} at ${timeOf(seen)}`;
}

function preview(c) {
  const m = c.last_message;
  if (!m) return isRequest(c) ? 'wants to chat with you' : 'No messages yet';
  const who = m.sender_id === me.id ? 'You: ' : c.type === 'group' ? `${people.label(m.sender_id)}: ` : '';
  if (m.deleted) return `${who}(deleted)`;
  if (m.hidden) return '(from a blocked user)';
  return who + m.text.replace(/\s+/g, ' ').slice(0, 120);
}

// today: the time; this week: the weekday; else the date
function whenShort(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (dayKey(iso) === dayKey(new Date().toISOString())) return timeOf(iso);
  if (Date.now() - d.getTime() < 6 * 86400000) return d.toLocaleDateString(undefined, { weekday: 'short' });
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}

function renderList() {
  // newest activity first
  const at = (c) => Date.parse(c.last_message?.created_at ?? c.created_at ?? 0) || 0;
  const sorted = [...convs.values()].sort((a, b) => at(b) - at(a) || b.id - a.id);
  $('#list-empty').classList.toggle('hidden', sorted.length > 0);
  $('#conversations').replaceChildren(...sorted.map((c) => {
    const isOnline = c.type === 'direct' && others(c).some((id) => online.get(id) === 'online');
    const title = titleOf(c);
    return el('li', {
      class: c.id === active?.id ? 'active' : null,
      dataset: { convId: c.id },
      tabindex: '0',
      role: 'button',
      'aria-current': c.id === active?.id ? 'true' : null,
      onclick: () => openConv(c.id),
      onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openConv(c.id); } },
    },
    avatar(title, c.type === 'direct' ? others(c)[0] : `g${c.id}`, c.type === 'direct' ? { online: isOnline } : {}),
    el('span.conv-main', {},
      el('span.conv-top', {},
        el('span.conv-title', {}, title),
        isRequest(c) ? el('span.muted.request', {}, ' (request)') : null,
        el('time.conv-time.muted', {}, whenShort(c.last_message?.created_at))),
      el('span.conv-bottom', {},
        el('span.preview.muted', {}, preview(c)),
        el('span.badge.unread', { 'aria-label': c.unread ? `${c.unread} unread` : null }, c.unread ? String(c.unread) : ''))));
  }));
  const unread = sorted.reduce((n, c) => n + (c.unread ?? 0), 0);
  document.title = unread ? `(${unread}) ${TITLE}` : TITLE;
}

// presence is asked for on load: events only say what changes afterwards
async function askPresence() {
  // not where the other has not accepted yet (pending): they share nothing
  // with me until then, and the answer would be 404
  const ids = [...new Set([...convs.values()]
    .filter((c) => c.type === 'direct' && c.status !== 'pending' && !c.blocked)
    .map((c) => others(c)[0]))]
    .filter((id) => id != null).slice(0, PRESENCE_LOOKUPS);
  await Promise.all(ids.map(async (id) => {
    try {
      const p = await api('GET', `/api/v1/users/${id}/presence`);
      if (!online.has(id) || p.status === 'online') online.set(id, p.status);
      if (p.last_seen) lastSeen.set(id, p.last_seen);
    } catch { /* 404: not shared with us (a request not accepted yet) */ }
  }));
  renderList();
  if (active) pane.renderHead(viewOf(active), presenceLine(active));
}

// --- the open conversation --------------------------------------------------

function setView(view) {
  $('main.chat').dataset.view = view;
}

function back() {
  setView('list');
  active = null;
  pane.close();
  sessionStorage.removeItem(OPEN_KEY);
  history.replaceState(null, '', location.pathname + keepParams(null));
  renderList();
}

// the page's own parameters, with c= set to id (or dropped)
function keepParams(id) {
  const p = new URLSearchParams(location.search);
  if (id == null) p.delete('c'); else p.set('c', String(id));
  const s = p.toString();
  return s ? `?${s}` : '';
}

async function openConv(id, opts = {}) {
  const c = convs.get(id);
  if (!c) {
    if (opts.fromReload) sessionStorage.removeItem(OPEN_KEY);
    return;
  }
  active = c;
  c.unread = 0;
  setView('conv');
  sessionStorage.setItem(OPEN_KEY, String(id));
  history.replaceState(null, '', location.pathname + keepParams(id));
  renderList();
  showError(null);
  try {
    await pane.open(viewOf(c), opts.at);
    pane.renderHead(viewOf(c), presenceLine(c));
    const last = Math.max(pane.lastSeq(), c.last_seq ?? 0);
    if (last) client.read(c.id, last);
    if (!opts.at && !opts.keepView && matchMedia('(min-width: 701px)').matches) $('#text').focus();
  } catch (err) {
    showError(`history: ${describe(err)}`);
  }
}

function sendText(text) {
  if (!active) return;
  const cmid = newId();
  pane.pending(cmid, text);
  client.send(active.id, text, cmid).catch((err) => showError(`not sent: ${err.message} (${err.code})`));
}

async function editMessage(m, text) {
  showError(null);
  try {
    await client.edit(m.conversation_id, m.seq, text);
  } catch (err) {
    showError(`edit: ${describe(err)}`);
  }
}

async function removeMessage(m) {
  if (!confirm('Delete this message for everyone?')) return;
  showError(null);
  try {
    await client.remove(m.conversation_id, m.seq);
  } catch (err) {
    showError(`delete: ${describe(err)}`);
  }
}

async function accept(c) {
  showError(null);
  try {
    upsert((await api('POST', `/api/v1/conversations/${c.id}/accept`)).conversation);
  } catch (err) {
    showError(`accept: ${describe(err)}`);
  }
}

async function block(userId, on) {
  showError(null);
  try {
    await api(on ? 'POST' : 'DELETE', `/api/v1/users/${userId}/block`);
    blocked(userId, on);
  } catch (err) {
    showError(`block: ${describe(err)}`);
  }
}

// a block (from here or another of my devices): their requests go away,
// their direct conversation says Unblock
function blocked(userId, on) {
  for (const c of [...convs.values()]) {
    if (c.type !== 'direct' || !others(c).includes(userId)) continue;
    if (on && isRequest(c)) {
      convs.delete(c.id);
      if (active?.id === c.id) back();
      renderList();
      continue;
    }
    upsert({ ...c, blocked: on });
  }
}

// --- people: new chats and members -------------------------------------------

// the one person meant by text (an e-mail, or a name among people I share
// a conversation with); several matches are offered as choices instead
async function pickPerson(text, then) {
  const box = $('#choices');
  box.replaceChildren(busy(`Looking for “${text.trim()}”…`));
  box.classList.remove('hidden');
  let found;
  try {
    found = await people.find(text);
  } catch (err) {
    box.classList.add('hidden');
    showError(`find "${text}": ${describe(err)}`);
    return null;
  }
  box.classList.add('hidden');
  if (found.length === 1) return found[0];
  if (!found.length) {
    showError(text.includes('@')
      ? `nobody here has the address ${text.trim()}`
      : `nobody you share a chat with is called "${text.trim()}": try their e-mail address`);
    return null;
  }
  box.replaceChildren(el('p.muted', {}, `Which "${text.trim()}"?`),
    ...found.map((u) => el('button', { type: 'button', onclick: () => { box.classList.add('hidden'); then(u); } },
      avatar(u.display_name, u.id), ` ${u.display_name}`)));
  box.classList.remove('hidden');
  return null;
}

async function create(body) {
  showError(null);
  try {
    const { conversation } = await api('POST', '/api/v1/conversations', body);
    client.track(conversation.id, 0);
    upsert(conversation);
    $('#new-chat').open = false;
    openConv(conversation.id);
    return true;
  } catch (err) {
    showError(`new chat: ${describe(err)}`);
    return false;
  }
}

$('#new-direct').addEventListener('submit', async (e) => {
  e.preventDefault();
  showError(null);
  const form = e.target;
  const start = async (u) => { if (await create({ type: 'direct', user_id: u.id })) form.reset(); };
  const u = await pickPerson(form.elements.who.value, start);
  if (u) await start(u);
});

$('#new-group').addEventListener('submit', async (e) => {
  e.preventDefault();
  showError(null);
  const form = e.target;
  const ids = [];
  const box = $('#choices');
  box.replaceChildren(busy('Looking up the members…'));
  box.classList.remove('hidden');
  try {
    for (const who of String(form.elements.who.value).split(',').map((s) => s.trim()).filter(Boolean)) {
      const found = await people.find(who).catch(() => []);
      if (found.length !== 1) {
        showError(found.length ? `"${who}" matches several people: use their e-mail address` : `nobody found for "${who}"`);
        return;
      }
      ids.push(found[0].id);
    }
  } finally {
    box.classList.add('hidden');
  }
  if (await create({ type: 'group', title: form.elements.title.value, member_ids: ids })) form.reset();
});

async function addMember(c, text) {
  showError(null);
  const add = async (u) => {
    try {
      upsert((await api('POST', `/api/v1/conversations/${c.id}/members`, { user_id: u.id })).conversation);
      return true;
    } catch (err) {
      showError(`add member: ${describe(err)}`);
      return false;
    }
  };
  const u = await pickPerson(text, add);
  return u ? add(u) : false;
}

async function removeMember(c, userId) {
  showError(null);
  const leaving = userId === me.id;
  if (leaving && !confirm(`Leave "${titleOf(c)}"?`)) return;
  try {
    const { conversation } = await api('DELETE', `/api/v1/conversations/${c.id}/members/${userId}`);
    if (leaving) {
      convs.delete(c.id);
      back();
    } else {
      upsert(conversation);
    }
  } catch (err) {
    showError(`remove member: ${describe(err)}`);
  }
}

// --- search ------------------------------------------------------------------

let searchCursor = null;
let searchQuery = '';

// a snippet is HTML: the text escaped, matches in <mark>; built here as
// text nodes and <mark> elements, never parsed as markup
function snippetNodes(snippet) {
  const unescape = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');
  return snippet.split(/(<mark>.*?<\/mark>)/s).filter(Boolean).map((part) => {
    const m = /^<mark>(.*)<\/mark>$/s.exec(part);
    return m ? el('mark', {}, unescape(m[1])) : unescape(part);
  });
}

async function search(more) {
  const q = more ? searchQuery : $('#search-q').value.trim();
  if (!q) { closeSearch(); return; }
  searchQuery = q;
  const box = $('#results');
  const wait = busy(more ? 'Loading more…' : `Searching for “${q}”…`, 'li');
  if (!more) { box.replaceChildren(wait); searchCursor = null; } else box.append(wait);
  $('#results-empty').classList.add('hidden');
  $('#results-more').disabled = true;
  $('#search-results').classList.remove('hidden');
  $('#conversations').classList.add('hidden');
  showError(null);
  try {
    const query = new URLSearchParams({ q });
    if (more && searchCursor) query.set('cursor', searchCursor);
    const r = await api('GET', `/api/v1/messages/search?${query}`);
    if (q !== searchQuery) return;   // a newer search is under way
    wait.remove();
    for (const { message: m, snippet } of r.results) {
      const c = convs.get(m.conversation_id);
      people.want([m.sender_id]);
      box.append(el('li', {
        tabindex: '0', role: 'button', dataset: { convId: m.conversation_id, seq: m.seq },
        onclick: () => openConv(m.conversation_id, { at: m.seq }),
        onkeydown: (e) => { if (e.key === 'Enter') openConv(m.conversation_id, { at: m.seq }); },
      },
      el('span.conv-top', {}, el('strong', {}, c ? titleOf(c) : 'Conversation'),
        el('time.muted', {}, whenShort(m.created_at))),
      el('span.snippet', {}, `${people.label(m.sender_id)}: `, ...snippetNodes(snippet))));
    }
    searchCursor = r.next_cursor;
    $('#results-more').classList.toggle('hidden', !searchCursor);
    $('#results-empty').classList.toggle('hidden', box.children.length > 0);
  } catch (err) {
    wait.remove();
    showError(`search: ${describe(err)}`);
  } finally {
    $('#results-more').disabled = false;
  }
}

function closeSearch() {
  $('#search-results').classList.add('hidden');
  $('#conversations').classList.remove('hidden');
  $('#search-q').value = '';
}

$('#search').addEventListener('submit', (e) => { e.preventDefault(); search(false); });
$('#search-q').addEventListener('search', () => { if (!$('#search-q').value) closeSearch(); });
$('#search-close').addEventListener('click', closeSearch);
$('#results-more').addEventListener('click', () => search(true));

// keyboard: Escape leaves search, or goes back to the list on a phone
document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape' || composer.editing) return;
  if (!$('#search-results').classList.contains('hidden')) closeSearch();
  else if (active && matchMedia('(max-width: 700px)').matches) back();
});

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && active) {
    const c = convs.get(active.id);
    if (c?.unread) { c.unread = 0; client.read(c.id, Math.max(pane.lastSeq(), c.last_seq ?? 0)); renderList(); }
  }
});

renderList();
askPresence();
// a reload reopens what was open (?c= first, then this tab's last one)
const reopen = Number(params.get('c')) || Number(sessionStorage.getItem(OPEN_KEY)) || 0;
if (reopen) openConv(reopen, { fromReload: true });
