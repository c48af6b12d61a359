// chat-pane.js: the open conversation: its messages in seq order (history
// scrolled back page by page, live ones appended), ticks on my messages,
// who is typing, and what I can do about the other person: accept a
// request, block or unblock them.

import { $, el } from './dom.js';
import { attachComposer, attachmentsOf } from './chat-attachments.js';

const PAGE = 30;
const TYPING_SHOWN_MS = 4000;

export class ChatPane {
  // actions: { accept(conv), block(userId, blocked) }, the page's
  constructor(client, me, actions) {
    this.client = client;
    this.me = me;
    this.actions = actions;
    this.conv = null;
    this.readBy = 0;        // highest seq another member has read
    this.deliveredTo = 0;   // highest seq delivered to another member
    this.typingTimer = null;
    $('#earlier').addEventListener('click', () => this.loadEarlier());
    attachComposer(this);
  }

  async open(conv) {
    this.conv = conv;
    this.readBy = this.deliveredTo = 0;
    $('#conv-title').textContent = conv.title || `Conversation #${conv.id}`;
    $('#messages').replaceChildren();
    $('#typing').textContent = '';
    $('#composer').classList.remove('hidden');
    this.renderActions(conv);
    const r = await this.client.history(conv.id, { limit: PAGE });
    if (this.conv !== conv) return;
    r.messages.forEach((m) => this.put(m));
    $('#earlier').classList.toggle('hidden', !r.has_more);
    this.scrollDown();
  }

  async loadEarlier() {
    const first = $('#messages li');
    if (!first || !this.conv) return;
    const conv = this.conv;
    const r = await this.client.history(conv.id, { before_seq: Number(first.dataset.seq), limit: PAGE });
    if (this.conv !== conv) return;
    r.messages.forEach((m) => this.put(m));
    $('#earlier').classList.toggle('hidden', !r.has_more);
  }

  // nothing open (the open one went away: its sender was blocked)
  close() {
    this.conv = null;
    $('#conv-title').textContent = 'Pick a conversation';
    $('#messages').replaceChildren();
    $('#typing').textContent = '';
    $('#composer').classList.add('hidden');
    $('#conv-actions').classList.add('hidden');
    $('#earlier').classList.add('hidden');
  }

  // a request (I have not accepted it): Accept or Block; a direct
  // conversation otherwise: Block (or Unblock)
  renderActions(conv) {
    if (conv.id !== this.conv?.id) return;
    const box = $('#conv-actions');
    const other = conv.type === 'direct' ? (conv.members ?? []).map(Number).find((id) => id !== this.me.id) : null;
    const request = (conv.requests ?? []).map(Number).includes(this.me.id);
    const kids = [];
    if (request) {
      kids.push(el('span.muted', {}, 'A message request: they see nothing of you until you accept or answer. '));
      kids.push(el('button', { id: 'accept', onclick: () => this.actions.accept(conv) }, 'Accept'));
    }
    if (other != null) {
      kids.push(el('button', { id: 'block', onclick: () => this.actions.block(other, !conv.blocked) },
        conv.blocked ? 'Unblock' : 'Block'));
    }
    box.replaceChildren(...kids);
    box.classList.toggle('hidden', kids.length === 0);
  }

  // put(message): inserted at its seq's place, once
  put(m) {
    const list = $('#messages');
    const key = m.seq != null ? `li[data-seq="${m.seq}"]` : null;
    const pending = m.client_msg_id ? list.querySelector(`li[data-cmid="${CSS.escape(m.client_msg_id)}"]`) : null;
    if (pending && m.seq != null && m.sender_id === this.me.id) pending.remove();   // it is here now
    if (key && list.querySelector(key)) return;
    const mine = m.sender_id === this.me.id;
    const li = el('li', { class: mine ? 'mine' : null, dataset: { seq: m.seq ?? '', cmid: m.client_msg_id ?? '', sender: m.sender_id } },
      mine ? null : el('span.muted', {}, `#${m.sender_id}: `),
      // a message of someone I blocked keeps its place without its text
      m.hidden ? el('span.text.muted', {}, '(from a blocked user)') : el('span.text', {}, m.text),
      attachmentsOf(m),
      mine ? el('span.tick', {}, m.seq == null ? '…' : '✓') : null);
    const after = [...list.children].find((x) => x.dataset.seq !== '' && m.seq != null && Number(x.dataset.seq) > m.seq);
    list.insertBefore(li, after ?? null);
    this.paintTicks();
  }

  // a message of mine before its ack: shown at once, marked pending
  pending(cmid, text) {
    this.put({ client_msg_id: cmid, text, sender_id: this.me.id, seq: null });
    this.scrollDown();
  }

  receipt(r) {
    if (r.user_id === this.me.id) return;
    if (r.kind === 'read') this.readBy = Math.max(this.readBy, r.seq);
    if (r.kind === 'delivered') this.deliveredTo = Math.max(this.deliveredTo, r.seq);
    this.paintTicks();
  }

  paintTicks() {
    for (const t of document.querySelectorAll('#messages li.mine[data-seq]:not([data-seq=""]) .tick')) {
      const seq = Number(t.parentElement.dataset.seq);
      const read = seq <= this.readBy;
      t.textContent = read || seq <= this.deliveredTo ? '✓✓' : '✓';
      t.classList.toggle('read', read);
      t.title = read ? 'read' : seq <= this.deliveredTo ? 'delivered' : 'sent';
    }
  }

  typing(t) {
    if (t.user_id === this.me.id) return;
    $('#typing').textContent = `#${t.user_id} is typing…`;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => { $('#typing').textContent = ''; }, TYPING_SHOWN_MS);
  }

  lastSeq() {
    const all = document.querySelectorAll('#messages li[data-seq]:not([data-seq=""])');
    return all.length ? Number(all[all.length - 1].dataset.seq) : 0;
  }

  scrollDown() {
    const list = $('#messages');
    list.scrollTop = list.scrollHeight;
  }
}
