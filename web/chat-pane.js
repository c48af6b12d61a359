// chat-pane.js: the open conversation.  Three parts, kept apart so each
// can grow on its own:
//
//   renderMessage(m, view)  one message as a list item: sender, text (or
//                           "deleted", or hidden), what messageExtras add
//                           (web/chat-attachments.js hooks in there), time,
//                           "edited", ticks, and Edit / Delete on my own;
//   ChatPane                the list: messages in seq order with day
//                           separators, scroll-back, live updates, ticks,
//                           typing, the header with the members panel, and
//                           jumping to a message found by search;
//   Composer                the text box: Enter sends, Shift+Enter breaks
//                           the line, editing a message reuses it;
//                           composerTools is where more buttons go.

import { $, busy, el } from './dom.js';
import { avatar } from './chat-people.js';
import { attachComposer, attachmentsOf } from './chat-attachments.js';

const PAGE = 30;
const TYPING_SHOWN_MS = 4000;

// --- one message ------------------------------------------------------------

// Functions (message, view) -> Node | null whose nodes go under a
// message's text (attachments, link previews); a module adds its own.
export const messageExtras = [];
// a message's files: images inline, other files as chips
messageExtras.push(attachmentsOf);

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

export const timeOf = (iso) => (iso ? timeFmt.format(new Date(iso)) : '');

// "Today", "Yesterday" or the date, for a day separator
export function dayLabel(iso) {
  const d = new Date(iso);
  const start = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((start(new Date()) - start(d)) / 86400000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return dayFmt.format(d);
}

export const dayKey = (iso) => {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
};

// view: { me, people, group (show senders' names), onEdit(m), onDelete(m) }
export function renderMessage(m, view) {
  const mine = m.sender_id === view.me.id;
  let text;
  if (m.deleted) text = el('span.text.muted.gone', {}, 'This message was deleted');
  else if (m.hidden) text = el('span.text.muted', {}, '(from a blocked user)');
  else text = el('span.text', {}, m.text);
  const meta = el('span.meta', {},
    m.created_at ? el('time', { datetime: m.created_at, title: new Date(m.created_at).toLocaleString() }, timeOf(m.created_at)) : null,
    m.edited_at && !m.deleted ? el('span.edited', { title: `edited ${new Date(m.edited_at).toLocaleString()}` }, ' · edited') : null,
    mine ? el('span.tick', {}, m.seq == null ? '…' : '✓') : null);
  const canChange = mine && m.seq != null && !m.deleted;
  const actions = canChange
    ? el('span.msg-actions', {},
      el('button.edit', { type: 'button', title: 'Edit', 'aria-label': 'Edit message', onclick: () => view.onEdit(m) }, 'Edit'),
      el('button.delete', { type: 'button', title: 'Delete', 'aria-label': 'Delete message', onclick: () => view.onDelete(m) }, 'Delete'))
    : null;
  return el(`li.msg${mine ? '.mine' : ''}${m.deleted ? '.deleted' : ''}`, {
    dataset: { seq: m.seq ?? '', cmid: m.client_msg_id ?? '', sender: m.sender_id, editSeq: m.edit_seq ?? 0, at: m.created_at ?? '' },
    tabindex: '0',
  },
  view.group && !mine ? el('span.sender', { dataset: { userId: m.sender_id } }, view.people.label(m.sender_id)) : null,
  text,
  ...messageExtras.map((f) => f(m, view)),
  meta,
  actions);
}

// --- the conversation -------------------------------------------------------

export class ChatPane {
  // actions: { accept(conv), block(userId, blocked), addMember(conv, text),
  //            removeMember(conv, userId), edit(m), remove(m), back() }
  constructor(client, me, people, actions) {
    this.client = client;
    this.me = me;
    this.people = people;
    this.actions = actions;
    this.conv = null;
    this.readBy = 0;        // highest seq another member has read
    this.deliveredTo = 0;   // highest seq delivered to another member
    this.typingTimer = null;
    this.view = {
      me, people, group: false,
      onEdit: (m) => this.actions.edit(m),
      onDelete: (m) => this.actions.remove(m),
    };
    $('#earlier').addEventListener('click', () => this.loadEarlier());
    $('#members-toggle').addEventListener('click', () => {
      const panel = $('#members');
      panel.classList.toggle('hidden');
      $('#members-toggle').setAttribute('aria-expanded', String(!panel.classList.contains('hidden')));
    });
    $('#member-add').addEventListener('submit', (e) => {
      e.preventDefault();
      const input = e.target.elements.who;
      if (this.conv) this.actions.addMember(this.conv, input.value).then((ok) => { if (ok) input.value = ''; });
    });
    $('#back').addEventListener('click', () => this.actions.back());
    // a tap on a message shows its actions on touch screens
    $('#messages').addEventListener('click', (e) => {
      const li = e.target.closest('li.msg');
      if (!li || e.target.closest('button')) return;
      for (const x of document.querySelectorAll('#messages li.selected')) if (x !== li) x.classList.remove('selected');
      li.classList.toggle('selected');
    });
    attachComposer(this);
  }

  // opens conv (title is the page's); at: a seq to show and highlight
  async open(conv, at) {
    this.conv = conv;
    this.readBy = this.deliveredTo = 0;
    this.view.group = conv.type === 'group';
    $('#messages').replaceChildren();
    $('#typing').textContent = '';
    $('#pane-empty').classList.add('hidden');
    $('#pane-head').classList.remove('hidden');
    $('#composer').classList.remove('hidden');
    $('#members').classList.add('hidden');
    this.renderHead(conv);
    this.renderActions(conv);
    $('#no-messages').classList.add('hidden');
    $('#earlier').classList.add('hidden');
    // while the history loads: a few grey bubbles where the messages go
    $('#messages').setAttribute('aria-busy', 'true');
    $('#messages').replaceChildren(busy('Loading messages…', 'li'),
      ...['them', 'mine', 'them'].map((side) => el(`li.skeleton.${side}`, { 'aria-hidden': 'true' })));
    const query = at ? { after_seq: Math.max(0, at - PAGE / 2), limit: PAGE } : { limit: PAGE };
    let r;
    try {
      r = await this.client.history(conv.id, query);
    } catch (err) {
      if (this.conv === conv) {
        $('#messages').removeAttribute('aria-busy');
        $('#messages').replaceChildren(el('li.muted.load-failed', {}, 'The messages could not be loaded. Open the conversation again to retry.'));
      }
      throw err;
    }
    if (this.conv !== conv) return;
    $('#messages').removeAttribute('aria-busy');
    $('#messages').replaceChildren();
    r.messages.forEach((m) => this.put(this.client.freshest(m)));
    const first = r.messages[0]?.seq ?? 1;
    $('#earlier').classList.toggle('hidden', at ? first <= 1 : !r.has_more);
    if (at) {
      // the newer side is read up to the end, so live messages join on
      let last = r.messages.at(-1)?.seq ?? at;
      let more = r.has_more;
      while (more && this.conv === conv) {
        const n = await this.client.history(conv.id, { after_seq: last, limit: 200 });
        n.messages.forEach((m) => this.put(this.client.freshest(m)));
        last = n.messages.at(-1)?.seq ?? last;
        more = n.has_more && n.messages.length > 0;
      }
      this.highlight(at);
    } else {
      this.scrollDown();
    }
    this.showEmpty();
  }

  showEmpty() {
    const none = !$('#messages li.msg');
    $('#no-messages').classList.toggle('hidden', !none || !this.conv);
  }

  async loadEarlier() {
    const first = $('#messages li.msg[data-seq]:not([data-seq=""])');
    if (!first || !this.conv) return;
    const conv = this.conv;
    const list = $('#messages');
    const fromBottom = list.scrollHeight - list.scrollTop;
    const button = $('#earlier');
    button.disabled = true;
    button.replaceChildren(busy('Loading earlier messages…'));
    let r;
    try {
      r = await this.client.history(conv.id, { before_seq: Number(first.dataset.seq), limit: PAGE });
    } finally {
      button.disabled = false;
      button.replaceChildren('Load earlier messages');
    }
    if (this.conv !== conv) return;
    r.messages.forEach((m) => this.put(this.client.freshest(m)));
    list.scrollTop = list.scrollHeight - fromBottom;   // stay where the reader was
    $('#earlier').classList.toggle('hidden', !r.has_more);
  }

  highlight(seq) {
    const li = $(`#messages li[data-seq="${seq}"]`);
    if (!li) return;
    for (const x of document.querySelectorAll('#messages li.found')) x.classList.remove('found');
    li.classList.add('found');
    li.scrollIntoView({ block: 'center' });
    li.focus({ preventScroll: true });
  }

  // nothing open (the open one went away, or the phone went back to the list)
  close() {
    this.conv = null;
    $('#conv-title').textContent = '';
    $('#messages').replaceChildren();
    $('#typing').textContent = '';
    $('#pane-head').classList.add('hidden');
    $('#pane-empty').classList.remove('hidden');
    $('#no-messages').classList.add('hidden');
    $('#composer').classList.add('hidden');
    $('#conv-actions').classList.add('hidden');
    $('#members').classList.add('hidden');
    $('#earlier').classList.add('hidden');
  }

  // the header: avatar, title, and who is in it (presence for a direct one)
  renderHead(conv, presence) {
    if (conv.id !== this.conv?.id) return;
    this.head = conv;
    $('#conv-avatar').replaceChildren(avatar(conv.title, conv.avatarKey ?? conv.id));
    $('#conv-title').textContent = conv.title;
    let sub = '';
    if (conv.type === 'group') sub = `${conv.members?.length ?? 0} members`;
    else if (presence) sub = presence;
    $('#conv-sub').textContent = sub;
    $('#members-toggle').classList.toggle('hidden', conv.type !== 'group');
    this.renderMembers(conv);
  }

  // a group's members: names, admins marked; admins remove anyone, anyone
  // leaves; admins add by e-mail or name
  renderMembers(conv) {
    if (conv.type !== 'group') return;
    const admins = (conv.admins ?? []).map(Number);
    const amAdmin = admins.includes(this.me.id);
    $('#member-list').replaceChildren(...(conv.members ?? []).map(Number).map((id) => {
      const name = this.people.label(id);
      const mine = id === this.me.id;
      return el('li', { dataset: { userId: id } },
        avatar(this.people.name(id) ?? name, id), el('span.name', {}, name),
        admins.includes(id) ? el('span.muted', {}, ' admin') : null,
        amAdmin || mine
          ? el('button.remove', { type: 'button', onclick: () => this.actions.removeMember(conv, id) }, mine ? 'Leave' : 'Remove')
          : null);
    }));
    $('#member-add').classList.toggle('hidden', !amAdmin);
  }

  // a request (I have not accepted it): Accept or Block; a group
  // invitation: Accept or Decline (leaving); a direct conversation
  // otherwise: Block (or Unblock)
  renderActions(conv) {
    if (conv.id !== this.conv?.id) return;
    const box = $('#conv-actions');
    const other = conv.type === 'direct' ? (conv.members ?? []).map(Number).find((id) => id !== this.me.id) : null;
    const request = (conv.requests ?? []).map(Number).includes(this.me.id);
    const kids = [];
    if (request && conv.type === 'group') {
      // an invitation from someone I have no chat with: join or leave
      kids.push(el('span.muted', {}, 'You were invited to this group: its members see nothing of you until you accept or answer. '));
      kids.push(el('button', { id: 'accept', type: 'button', onclick: () => this.actions.accept(conv) }, 'Accept'));
      kids.push(el('button', { id: 'decline', type: 'button', onclick: () => this.actions.removeMember(conv, this.me.id) }, 'Decline'));
    } else if (request) {
      kids.push(el('span.muted', {}, 'A message request: they see nothing of you until you accept or answer. '));
      kids.push(el('button', { id: 'accept', type: 'button', onclick: () => this.actions.accept(conv) }, 'Accept'));
    }
    if (other != null) {
      kids.push(el('button', { id: 'block', type: 'button', onclick: () => this.actions.block(other, !conv.blocked) },
        conv.blocked ? 'Unblock' : 'Block'));
    }
    box.replaceChildren(...kids);
    box.classList.toggle('hidden', kids.length === 0);
  }

  // put(message): inserted at its seq's place, once
  put(m) {
    const list = $('#messages');
    const pending = m.client_msg_id ? list.querySelector(`li[data-cmid="${CSS.escape(m.client_msg_id)}"][data-seq=""]`) : null;
    if (pending && m.seq != null && m.sender_id === this.me.id) pending.remove();   // it is here now
    if (m.seq != null && list.querySelector(`li[data-seq="${m.seq}"]`)) return;
    const li = renderMessage(m, this.view);
    const after = m.seq == null ? null
      : [...list.querySelectorAll('li.msg')].find((x) => x.dataset.seq === '' || Number(x.dataset.seq) > m.seq);
    list.insertBefore(li, after ?? null);
    this.paintDays();
    this.paintTicks();
    this.showEmpty();
  }

  // a changed message (edited, deleted) replaces the one shown, if newer
  update(m) {
    const old = $(`#messages li[data-seq="${m.seq}"]`);
    if (!old || Number(old.dataset.editSeq) >= (m.edit_seq ?? 0)) return;
    old.replaceWith(renderMessage(m, this.view));
    this.paintTicks();
  }

  // redraws every message (names became known)
  repaint() {
    for (const li of document.querySelectorAll('#messages li.msg .sender')) {
      li.textContent = this.people.label(li.dataset.userId);
    }
    if (this.conv && this.head?.id === this.conv.id) this.renderMembers(this.head);
  }

  // a separator before the first message of each day
  paintDays() {
    const list = $('#messages');
    for (const d of list.querySelectorAll('li.day')) d.remove();
    let last = null;
    for (const li of [...list.querySelectorAll('li.msg')]) {
      if (!li.dataset.at) continue;
      const key = dayKey(li.dataset.at);
      if (key !== last) {
        list.insertBefore(el('li.day', { role: 'separator' }, el('span', {}, dayLabel(li.dataset.at))), li);
        last = key;
      }
    }
  }

  // a message of mine before its ack: shown at once, marked pending
  pending(cmid, text) {
    this.put({ client_msg_id: cmid, text, sender_id: this.me.id, seq: null, created_at: new Date().toISOString() });
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
      const seq = Number(t.closest('li').dataset.seq);
      const read = seq <= this.readBy;
      t.textContent = read || seq <= this.deliveredTo ? '✓✓' : '✓';
      t.classList.toggle('read', read);
      t.title = read ? 'read' : seq <= this.deliveredTo ? 'delivered' : 'sent';
    }
  }

  typing(t) {
    if (t.user_id === this.me.id) return;
    $('#typing').textContent = `${this.people.label(t.user_id)} is typing…`;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => { $('#typing').textContent = ''; }, TYPING_SHOWN_MS);
  }

  lastSeq() {
    const all = document.querySelectorAll('#messages li.msg[data-seq]:not([data-seq=""])');
    return all.length ? Number(all[all.length - 1].dataset.seq) : 0;
  }

  scrollDown() {
    const list = $('#messages');
    list.scrollTop = list.scrollHeight;
  }
}

// --- the composer -----------------------------------------------------------

// Where other modules put their composer buttons (an attach button).
export const composerTools = () => $('#composer-tools');

export class Composer {
  // onSend(text), onEdit(message, text), onTyping()
  constructor({ onSend, onEdit, onTyping }) {
    this.form = $('#composer');
    this.box = $('#text');
    this.editing = null;
    this.onSend = onSend;
    this.onEdit = onEdit;
    this.box.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      } else if (e.key === 'Escape' && this.editing) {
        this.cancelEdit();
      }
    });
    this.box.addEventListener('input', () => { this.fit(); onTyping(); });
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    $('#edit-cancel').addEventListener('click', () => this.cancelEdit());
  }

  submit() {
    const text = this.box.value;
    if (!text.trim()) return;
    const editing = this.editing;
    this.box.value = '';
    this.cancelEdit();
    this.fit();
    if (editing) this.onEdit(editing, text);
    else this.onSend(text);
  }

  // editing m: its text in the box until Save (Enter) or Cancel (Escape)
  edit(m) {
    this.editing = m;
    this.box.value = m.text;
    $('#editing').classList.remove('hidden');
    $('#send').textContent = 'Save';
    this.fit();
    this.box.focus();
  }

  cancelEdit() {
    if (this.editing && this.box.value === this.editing.text) this.box.value = '';
    this.editing = null;
    $('#editing').classList.add('hidden');
    $('#send').textContent = 'Send';
  }

  // the box grows with its text, up to a few lines
  fit() {
    this.box.style.height = 'auto';
    this.box.style.height = `${Math.min(this.box.scrollHeight + 2, 160)}px`;
  }
}
