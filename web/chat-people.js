// chat-people.js: people as the chat shows them: display names (looked
// up in batches with GET /api/v1/users?ids=, cached for the page's
// life), avatars drawn from initials and a colour of the id, and finding
// someone by e-mail (?email=, exact) or by name among the people you
// share a conversation with (?q=).

import { api } from './api.js';
import { el } from './dom.js';

export class People extends EventTarget {
  constructor(me) {
    super();
    this.me = me;
    this.names = new Map([[me.id, me.display_name]]);
    this.asked = new Set([me.id]);
    this.queue = new Set();
    this.timer = null;
  }

  // the name of id, or null while it is being looked up (a 'names' event
  // follows); an id nobody knows stays "Unknown user"
  name(id) {
    id = Number(id);
    if (this.names.has(id)) return this.names.get(id);
    this.want([id]);
    return null;
  }

  label(id) {
    if (Number(id) === this.me.id) return 'You';
    return this.name(id) ?? '…';
  }

  // looks the ids up (those not known yet), a batch at a time
  want(ids) {
    for (const id of ids.map(Number)) if (!this.asked.has(id)) this.queue.add(id);
    if (this.queue.size && !this.timer) this.timer = setTimeout(() => this.flush(), 0);
  }

  async flush() {
    this.timer = null;
    const ids = [...this.queue].slice(0, 100);
    ids.forEach((id) => { this.queue.delete(id); this.asked.add(id); });
    if (!ids.length) return;
    try {
      const { users } = await api('GET', `/api/v1/users?ids=${ids.join(',')}`);
      for (const u of users) this.names.set(u.id, u.display_name);
    } catch {
      ids.forEach((id) => this.asked.delete(id));   // asked again next time
    }
    for (const id of ids) if (!this.names.has(id) && this.asked.has(id)) this.names.set(id, 'Unknown user');
    if (this.queue.size) this.timer = setTimeout(() => this.flush(), 0);
    this.dispatchEvent(new CustomEvent('names'));
  }

  // people matching what was typed: an e-mail address exactly, else a
  // name prefix among people who share a conversation with me
  async find(text) {
    const t = text.trim();
    if (!t) return [];
    const q = t.includes('@') ? `email=${encodeURIComponent(t)}` : `q=${encodeURIComponent(t)}`;
    const { users } = await api('GET', `/api/v1/users?${q}`);
    for (const u of users) { this.names.set(u.id, u.display_name); this.asked.add(u.id); }
    return users;
  }
}

export function initials(name) {
  const words = String(name ?? '?').trim().split(/\s+/).filter(Boolean);
  const first = [...(words[0] ?? '?')][0] ?? '?';
  const last = words.length > 1 ? [...words[words.length - 1]][0] : '';
  return (first + last).toUpperCase();
}

// a colour of its own per id (or title), dark enough for white initials
export function colourOf(key) {
  let h = 0;
  for (const ch of String(key)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  // the golden angle spreads neighbouring ids (7, 8, 9) far apart
  return `hsl(${Math.round((h * 137.508) % 360)} 45% 38%)`;
}

// avatar(name, key, {online}): a round badge with the initials
export function avatar(name, key, opts = {}) {
  return el('span.avatar', { 'aria-hidden': 'true', style: `background: ${colourOf(key)}` },
    initials(name),
    opts.online != null ? el(`span.dot${opts.online ? '.online' : ''}`) : null);
}
