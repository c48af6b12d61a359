// chat-app.js: the chat page: the conversation list (unread counts,
// presence dots, message requests), new direct and group chats, and the
// open conversation (chat-pane.js) with Accept / Block, all fed by one
// ChatClient.
//
// ?ws=<path or url> overrides the WebSocket URL (tests point it at one
// that refuses the upgrade to exercise the long-poll fallback).

import { ChatClient, newId } from './chat-client.js';
import { api, requireUser, describe, token } from './api.js';
import { $, el, showError } from './dom.js';
import { header } from './nav.js';
import { ChatPane } from './chat-pane.js';

const TYPING_EVERY_MS = 2000;

const me = await requireUser();
const stateBadge = el('span.state', { id: 'conn-state' }, 'offline');
header(me, [stateBadge]);

const convs = new Map();       // id -> conversation (with unread)
const online = new Map();      // user id -> 'online' | 'offline'
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
const cursors = {};
for (const c of list) { convs.set(c.id, c); cursors[c.id] = c.last_seq; }

// ?ws_retry_ms=: how often a polling page tries WebSocket again (tests)
const retryWsMs = Number(params.get('ws_retry_ms')) || undefined;
// the token as it is now: api.js swaps it for a fresh one as it ages
const client = new ChatClient({ token, wsUrl, cursors, retryWsMs });
const pane = new ChatPane(client, me, { accept, block });
window.chatClient = client;    // for the browser tests and the console

client.addEventListener('state', (e) => {
  stateBadge.textContent = e.detail.state;
  stateBadge.className = `state ${e.detail.state}`;
});
client.addEventListener('conversation', (e) => { upsert(e.detail); });
client.addEventListener('message', (e) => onMessage(e.detail));
client.addEventListener('typing', (e) => { if (e.detail.conversation_id === active?.id) pane.typing(e.detail); });
client.addEventListener('receipt', (e) => { if (e.detail.conversation_id === active?.id) pane.receipt(e.detail); });
client.addEventListener('presence', (e) => { online.set(e.detail.user_id, e.detail.status); renderList(); });
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

function onMessage(m) {
  const c = convs.get(m.conversation_id);
  if (c) {
    c.last_seq = Math.max(c.last_seq ?? 0, m.seq);
    c.last_message = m;
    if (m.sender_id !== me.id && m.conversation_id !== active?.id) c.unread = (c.unread ?? 0) + 1;
  }
  if (m.sender_id !== me.id) client.delivered(m.conversation_id, m.seq);
  if (m.conversation_id === active?.id) {
    pane.put(m);
    pane.scrollDown();
    if (m.sender_id !== me.id && document.visibilityState !== 'hidden') client.read(m.conversation_id, m.seq);
  }
  renderList();
}

function upsert(c) {
  const old = convs.get(c.id);
  convs.set(c.id, { unread: 0, ...old, ...c });
  if (c.id === active?.id) pane.renderActions(convs.get(c.id));
  renderList();
}

const isRequest = (c) => (c.requests ?? []).map(Number).includes(me.id);

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
      if (active?.id === c.id) { active = null; pane.close(); }
      renderList();
      continue;
    }
    upsert({ ...c, blocked: on });
  }
}

function others(c) {
  return (c.members ?? []).map(Number).filter((id) => id !== me.id);
}

function titleOf(c) {
  if (c.title) return c.title;
  return c.type === 'direct' ? `#${others(c)[0] ?? '?'}` : `Conversation #${c.id}`;
}

function renderList() {
  // newest activity first
  const at = (c) => Date.parse(c.last_message?.created_at ?? c.created_at ?? 0) || 0;
  const sorted = [...convs.values()].sort((a, b) => at(b) - at(a) || b.id - a.id);
  $('#conversations').replaceChildren(...sorted.map((c) => {
    const isOnline = others(c).some((id) => online.get(id) === 'online');
    return el('li', { class: c.id === active?.id ? 'active' : null, dataset: { convId: c.id }, onclick: () => openConv(c.id) },
      el('span', {}, el('span', { class: `dot${isOnline ? ' online' : ''}`, title: isOnline ? 'online' : 'offline' }), titleOf(c),
        isRequest(c) ? el('span.muted.request', {}, ' (request)') : null),
      el('span.badge.unread', {}, c.unread ? String(c.unread) : ''));
  }));
}

async function openConv(id) {
  const c = convs.get(id);
  if (!c) return;
  active = c;
  c.unread = 0;
  renderList();
  showError(null);
  try {
    await pane.open({ ...c, title: titleOf(c) });
    const last = Math.max(pane.lastSeq(), c.last_seq ?? 0);
    if (last) client.read(c.id, last);
  } catch (err) {
    showError(`history: ${describe(err)}`);
  }
}

let lastTyping = 0;
$('#text').addEventListener('input', () => {
  if (!active || Date.now() - lastTyping < TYPING_EVERY_MS) return;
  lastTyping = Date.now();
  client.typing(active.id);
});

$('#composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('#text').value.trim();
  if (!text || !active) return;
  $('#text').value = '';
  const cmid = newId();
  pane.pending(cmid, text);
  client.send(active.id, text, cmid).catch((err) => showError(`not sent: ${err.message} (${err.code})`));
});

async function create(body) {
  showError(null);
  try {
    const { conversation } = await api('POST', '/api/v1/conversations', body);
    client.track(conversation.id, 0);
    upsert(conversation);
    openConv(conversation.id);
  } catch (err) {
    showError(`new chat: ${describe(err)}`);
  }
}

$('#new-direct').addEventListener('submit', (e) => {
  e.preventDefault();
  create({ type: 'direct', user_id: Number(new FormData(e.target).get('user_id')) });
});

$('#new-group').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const ids = String(f.get('member_ids')).split(/[\s,]+/).filter(Boolean).map(Number);
  create({ type: 'group', title: f.get('title'), member_ids: ids });
});

renderList();
if (params.get('c')) openConv(Number(params.get('c')));
