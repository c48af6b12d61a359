// chat-client.js: the browser's connection to the chat, in one dependency-free
// ES module.  WebSocket first; long-polling (GET /api/v1/events, sends over
// HTTP) when WebSocket cannot connect; back to WebSocket when it can.  Every
// message is delivered once, in seq order per conversation, whatever the
// connection did meanwhile.  See web/README.md for the events and an example.

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;
const WS_OPEN_TIMEOUT_MS = 5000;
const WS_RETRY_MS = 20000;          // while polling: how often to try WebSocket again
const HEARTBEAT_MS = 10000;         // our ping; no pong within HEARTBEAT_MS/2 = dead link
const POLL_TIMEOUT_S = 25;
const HISTORY_PAGE = 100;
const SYNC_PAGE = 500;
// how long a gap may stay open with the cursor not moving before history
// is read (neighbouring seqs arrive out of order by milliseconds; under
// heavy load by a few hundred; see gapSeen)
const GAP_WAIT_MS = 2000;
// error codes after which the same send is tried again later
// (overloaded: the send's lane was full; the edge said to come back later)
const TRANSIENT = new Set(['rate_limited', 'overloaded', 'unavailable', 'timeout', 'internal']);

export class ChatClient extends EventTarget {
  // opts: token (required), base (http origin, default location.origin),
  // wsUrl (default <base>/ws; for tests: one that cannot connect),
  // cursors ({conversation_id: seq already shown}), editCursors
  // ({conversation_id: last_edit_seq of what is shown}), retryWsMs,
  // heartbeatMs, refreshToken (async () => a new token, or null)
  constructor(opts) {
    super();
    // a string, or a function giving the current one (a page that
    // refreshes its token passes a function)
    this.token = opts.token;
    // asked once when the server refuses the token (401); null: give up
    this.refreshToken = opts.refreshToken ?? null;
    this.refreshed = false;     // asked since the last good connection
    this.base = opts.base ?? location.origin;
    this.wsUrl = opts.wsUrl ?? this.base.replace(/^http/, 'ws') + '/ws';
    this.retryWsMs = opts.retryWsMs ?? WS_RETRY_MS;
    this.heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS;
    this.state = 'offline';
    this.supports = { typing: null };   // null: not known yet
    this.have = new Map();      // conversation id -> contiguous highest seq delivered
    this.held = new Map();      // conversation id -> Map(seq -> message) waiting for a gap
    this.filling = new Set();   // conversations whose gap is being filled from history
    this.gapWaits = new Set();  // conversations whose gap waits GAP_WAIT_MS before a fill
    this.outbox = new Map();    // client_msg_id -> {conversation_id, text, resolve, reject}
    for (const [id, seq] of Object.entries(opts.cursors ?? {})) this.have.set(Number(id), Number(seq));
    // edits and deletes: per conversation the edit_seq caught up to (moved
    // only by sync answers and conversation lists, never by live events,
    // which may come out of order), and per message the newest copy seen
    this.edits = new Map();
    for (const [id, e] of Object.entries(opts.editCursors ?? {})) this.edits.set(Number(id), Number(e));
    this.changed = new Map();   // "cid:seq" -> the message with the highest edit_seq seen
    this.attempt = 0;
    this.generation = 0;        // bumps on every (re)connect: stale callbacks check it
    this.ws = null;
    this.pollAbort = null;
    this.timers = new Set();
    this.refs = 0;
    this.stopped = true;
    this.onOnline = () => { this.attempt = 0; if (this.state === 'offline') this.connect(); };
    this.onOffline = () => this.drop('the browser went offline');
  }

  start() {
    this.stopped = false;
    globalThis.addEventListener?.('online', this.onOnline);
    globalThis.addEventListener?.('offline', this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    globalThis.removeEventListener?.('online', this.onOnline);
    globalThis.removeEventListener?.('offline', this.onOffline);
    this.teardown();
    this.setState('offline');
  }

  // --- sending -----------------------------------------------------------

  // send(conversationId, text) -> Promise of the ack {client_msg_id,
  // conversation_id, seq, created_at}.  Kept until acknowledged and sent
  // again with the same client_msg_id after every reconnect, so the server
  // stores it once.  Rejects only on a permanent error (not a member, ...).
  // One send per conversation is in flight at a time: the server numbers
  // concurrent sends in whatever order they commit, and a person's messages
  // must keep the order they were written in.
  // extra: { attachments: [id] } (uploads of mine, POST /api/v1/uploads)
  send(conversationId, text, clientMsgId = newId(), extra = {}) {
    return new Promise((resolve, reject) => {
      const item = { conversation_id: Number(conversationId), text, client_msg_id: clientMsgId, resolve, reject,
        attachments: extra.attachments?.length ? extra.attachments : undefined };
      this.outbox.set(clientMsgId, item);
      this.pump(item.conversation_id);
    });
  }

  // typing(conversationId): true when sent (WebSocket only; the HTTP API has
  // no typing endpoint).  A server without typing answers not_supported,
  // after which supports.typing is false and nothing more is sent.
  typing(conversationId) {
    if (this.supports.typing === false || this.state !== 'ws') return false;
    this.wsSend({ type: 'typing', conversation_id: Number(conversationId), ref: `typing-${++this.refs}` });
    return true;
  }

  // read(conversationId, seq): moves the read marker (WebSocket or HTTP)
  read(conversationId, seq) {
    const body = { conversation_id: Number(conversationId), seq };
    if (this.state === 'ws') return this.wsSend({ type: 'read', ...body, ref: `read-${++this.refs}` });
    this.http('POST', `/api/v1/conversations/${body.conversation_id}/read`, { seq }).catch(() => {});
  }

  // delivered(conversationId, seq): a delivery receipt, where the server has them
  delivered(conversationId, seq) {
    if (this.state === 'ws' && this.supports.typing === true) {
      this.wsSend({ type: 'delivered', conversation_id: Number(conversationId), seq, ref: `delivered-${++this.refs}` });
    }
  }

  // history(conversationId, {before_seq, after_seq, limit}) over HTTP
  history(conversationId, query = {}) {
    const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v != null));
    return this.http('GET', `/api/v1/conversations/${conversationId}/messages?${q}`);
  }

  // freshest(m): m, or the newer copy of it (edited or deleted) seen
  // already; pages apply it to what they read from history
  freshest(m) {
    const u = this.changed.get(`${m.conversation_id}:${m.seq}`);
    return u && (u.edit_seq ?? 0) > (m.edit_seq ?? 0) ? u : m;
  }

  // edit(conversationId, seq, text) / remove(conversationId, seq) over
  // HTTP: the changed message, also announced as a message_update event
  async edit(conversationId, seq, text) {
    const r = await this.http('PATCH', `/api/v1/conversations/${conversationId}/messages/${seq}`, { text });
    this.onUpdate(r.message);
    return r.message;
  }

  async remove(conversationId, seq) {
    const r = await this.http('DELETE', `/api/v1/conversations/${conversationId}/messages/${seq}`);
    this.onUpdate(r.message);
    return r.message;
  }

  // a changed message: kept if it is the newest copy; shown now if its
  // message was delivered, else it replaces it when it is
  onUpdate(m) {
    if (!m || m.seq == null) return;
    const key = `${m.conversation_id}:${m.seq}`;
    const old = this.changed.get(key);
    if (old && (old.edit_seq ?? 0) >= (m.edit_seq ?? 0)) return;
    this.changed.set(key, m);
    if (m.seq <= (this.have.get(Number(m.conversation_id)) ?? 0)) this.emit('message_update', m);
  }

  // track(conversationId, seq): start following a conversation from seq
  // (what the app already shows), e.g. one it just created
  track(conversationId, seq = 0) {
    const id = Number(conversationId);
    if (!this.have.has(id) || this.have.get(id) < seq) this.have.set(id, seq);
  }

  // pump(conversationId): sends the conversation's oldest unacknowledged
  // message unless it already went out on this connection
  pump(conversationId) {
    for (const item of this.outbox.values()) {
      if (item.conversation_id !== conversationId) continue;
      if (item.generation !== this.generation) this.transmit(item);
      return;
    }
  }

  pumpAll() {
    for (const id of new Set([...this.outbox.values()].map((i) => i.conversation_id))) this.pump(id);
  }

  transmit(item) {
    item.generation = this.generation;
    if (this.state === 'ws') {
      this.wsSend({ type: 'send', conversation_id: item.conversation_id, client_msg_id: item.client_msg_id, text: item.text,
        attachments: item.attachments });
    } else if (this.state === 'polling') {
      this.httpSend(item);
    }
    // else: it waits in the outbox for the next connection
  }

  async httpSend(item) {
    const gen = this.generation;
    try {
      const r = await this.http('POST', `/api/v1/conversations/${item.conversation_id}/messages`,
        { client_msg_id: item.client_msg_id, text: item.text, attachments: item.attachments });
      this.acked({ client_msg_id: item.client_msg_id, conversation_id: item.conversation_id,
        seq: r.message.seq, created_at: r.message.created_at });
      this.ingest(r.message);
    } catch (err) {
      if (err.status && err.status < 500 && err.status !== 429) return this.failed(item.client_msg_id, err.code, err.message);
      // network or server trouble: the next connection sends it again
      if (gen === this.generation && this.state === 'polling') this.later(() => this.transmit(item), this.backoff());
    }
  }

  acked(ack) {
    const item = this.outbox.get(ack.client_msg_id);
    if (!item) return;   // a duplicate ack of a resend
    this.outbox.delete(ack.client_msg_id);
    item.resolve(ack);
    this.emit('ack', ack);
    this.pump(item.conversation_id);
  }

  failed(clientMsgId, code, message) {
    const item = this.outbox.get(clientMsgId);
    if (!item) return;
    this.outbox.delete(clientMsgId);
    const err = Object.assign(new Error(message), { code, client_msg_id: clientMsgId });
    item.reject(err);
    this.emit('error', { code, message, client_msg_id: clientMsgId, conversation_id: item.conversation_id });
    this.pump(item.conversation_id);
  }

  // --- connecting ---------------------------------------------------------

  connect() {
    if (this.stopped) return;
    this.teardown();
    const gen = ++this.generation;
    this.setState('connecting');
    this.openWs(gen, (ok) => {
      if (gen !== this.generation) return;
      if (!ok) this.startPolling(gen);
    });
  }

  // openWs(gen, done): done(true) once open and adopted, done(false) when it
  // fails before opening (blocked, refused upgrade, unreachable)
  //
  // The URL carries a single-use ticket, never the token: URLs end up in
  // logs, and a ticket is worth nothing once used or a few seconds old.
  openWs(gen, done) {
    this.http('POST', '/api/v1/auth/ws-ticket').then(
      ({ ticket }) => this.openWsWith(`${this.wsUrl}?ticket=${encodeURIComponent(ticket)}`, gen, done),
      (err) => {
        if (err.status === 401 && gen === this.generation) return this.unauthorized(err);
        done(false);
      });
  }

  openWsWith(url, gen, done) {
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      return done(false);
    }
    let opened = false;
    const timer = setTimeout(() => { if (!opened) { ws.close(); fail(); } }, WS_OPEN_TIMEOUT_MS);
    let settled = false;
    const fail = () => { if (!settled) { settled = true; clearTimeout(timer); done(false); } };
    ws.onerror = () => { if (!opened) fail(); };
    ws.onclose = (e) => { if (!opened) fail(); else this.wsClosed(ws, e); };
    ws.onopen = () => {
      if (settled || gen !== this.generation) { ws.close(); return; }
      opened = true; settled = true;
      clearTimeout(timer);
      this.adoptWs(ws);
      done(true);
    };
  }

  adoptWs(ws) {
    // a new connection: poll callbacks of the old one stand down, and sends
    // that were in flight over HTTP go out again on this one (same ids)
    this.generation++;
    this.stopPolling();
    this.ws = ws;
    ws.onmessage = (e) => this.onFrame(e.data);
    this.setState('ws');
    this.attempt = 0;
    this.refreshed = false;
    this.lastPong = Date.now();
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastPong > this.heartbeatMs * 1.5) return this.drop('no pong');
      this.wsSend({ type: 'ping' });
    }, this.heartbeatMs);
    this.wsSync({});
    this.pumpAll();
  }

  // the server (or the network) closed an open WebSocket: the page hears
  // why (1008 "token expired" or "signed out", 1001 going away, 1006 lost)
  // before the client reconnects
  wsClosed(ws, e) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.heartbeat);
    this.emit('closed', { code: e?.code ?? 1006, reason: e?.reason ?? '', wasClean: e?.wasClean ?? false });
    this.reconnectLater();
  }

  // drop(why): the link is dead (offline, no pong): close and reconnect
  drop() {
    if (this.stopped) return;
    this.teardown();
    this.setState('offline');
    this.reconnectLater();
  }

  reconnectLater() {
    if (this.stopped) return;
    this.generation++;
    this.setState('offline');
    this.later(() => this.connect(), this.backoff());
  }

  // exponential backoff with jitter: 0.5..1 x min(max, base * 2^attempt)
  backoff() {
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt++);
    return cap / 2 + Math.random() * cap / 2;
  }

  teardown() {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.gapWaits.clear();      // their timers are gone; the next catch-up fills
    clearInterval(this.heartbeat);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = null;
      try { ws.close(); } catch { /* already closed */ }
    }
    this.stopPolling();
  }

  later(fn, ms) {
    const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms);
    this.timers.add(t);
  }

  // --- WebSocket frames ------------------------------------------------------

  wsSend(obj) {
    if (this.ws?.readyState === 1) this.ws.send(JSON.stringify(obj));
  }

  wsSync(cursorsOverride) {
    const cursors = {};
    for (const [id, seq] of this.have) cursors[id] = seq;
    Object.assign(cursors, cursorsOverride);
    const edit_cursors = {};
    for (const id of this.have.keys()) edit_cursors[id] = this.edits.get(id) ?? 0;
    this.wsSend({ type: 'sync', cursors, edit_cursors, limit: SYNC_PAGE, ref: `sync-${++this.refs}` });
  }

  onFrame(data) {
    let f;
    try { f = JSON.parse(data); } catch { return; }
    switch (f.type) {
    case 'pong': this.lastPong = Date.now(); break;
    case 'ack': this.acked(f); break;
    case 'message': this.ingest(f.message); break;
    case 'message_update': this.onUpdate(f.message); break;
    case 'sync': this.onSync(f); break;
    case 'conversation': this.onConversation(f.conversation); break;
    case 'typing': this.supports.typing = true; this.emit('typing', f); break;
    case 'receipt': this.supports.typing = true; this.emit('receipt', f); break;
    case 'presence': this.emit('presence', f); break;
    case 'block': this.emit('block', f); break;
    case 'read': this.emit('read', f); break;
    case 'order': this.emit('order', f.order); break;
    case 'admin_change': this.emit('admin_change', f.change); break;
    case 'error': this.onError(f); break;
    default: break;
    }
    this.lastPong = Date.now();   // any frame shows the link is alive
  }

  onSync(f) {
    for (const c of f.conversations ?? []) this.onConversation(c);
    for (const m of f.messages ?? []) this.ingest(m);
    for (const m of f.updates ?? []) this.onUpdate(m);
    for (const [id, e] of Object.entries(f.edit_cursors ?? {})) {
      if (e > (this.edits.get(Number(id)) ?? 0)) this.edits.set(Number(id), e);
    }
    // the answer's cursors page on; a conversation new to us starts at its cursor
    if (f.has_more) this.wsSync(f.cursors);
    this.emit('synced', {});
  }

  onConversation(c) {
    if (!c) return;
    if (!this.have.has(c.id)) this.have.set(c.id, 0);
    this.emit('conversation', c);
  }

  onError(f) {
    const ref = String(f.ref ?? '');
    if (ref.startsWith('typing-') && f.code === 'not_supported') {
      this.supports.typing = false;
      this.emit('capability', { typing: false, receipts: false, message: f.message });
      return;
    }
    if (ref.startsWith('typing-') || ref.startsWith('delivered-')) return;   // best effort
    if (this.outbox.has(ref)) {
      if (TRANSIENT.has(f.code)) {
        const item = this.outbox.get(ref);
        this.later(() => this.transmit(item), this.backoff());
      } else {
        this.failed(ref, f.code, f.message);
      }
      return;
    }
    this.emit('error', f);
  }

  // --- delivery: once, in seq order, gaps filled from history ---------------

  ingest(m) {
    if (!m || m.seq == null) return;
    const id = Number(m.conversation_id);
    if (!this.have.has(id)) this.have.set(id, 0);
    if (!this.hold(id, m)) return;                  // seen already
    this.drain(id);
    if (this.held.get(id).size) this.gapSeen(id);   // a seq jumped
  }

  // keeps m until it is next in line; false for one delivered already.
  // Only here do messages enter held, so nothing at or below the cursor
  // stays there (a stale entry would make every later message look like
  // a jump, and start a history read each)
  hold(id, m) {
    if (m.seq <= (this.have.get(id) ?? 0)) return false;
    if (!this.held.has(id)) this.held.set(id, new Map());
    this.held.get(id).set(m.seq, m);
    return true;
  }

  drain(id) {
    const held = this.held.get(id);
    let have = this.have.get(id) ?? 0;
    while (held.has(have + 1)) {
      const m = held.get(++have);
      held.delete(have);
      this.have.set(id, have);
      this.emit('message', this.freshest(m));
    }
  }

  // A seq jumped: the events before it are most likely on their way, not
  // lost.  Workers fan messages out concurrently, so the events of two
  // neighbouring seqs (two devices sending at once) arrive in either
  // order, milliseconds apart.  Reading history at once would race them
  // and win: the answer has the message whose event is still in flight,
  // which is then shown from history and its event dropped as seen.  So
  // history is read only when the cursor has not moved for GAP_WAIT_MS
  // with something held (an event really lost: a worker or Redis
  // failed).  A cursor that moved means that gap closed and the one held
  // now is newer: it gets a wait of its own.
  gapSeen(id) {
    if (this.gapWaits.has(id) || this.filling.has(id)) return;
    const from = this.have.get(id) ?? 0;
    this.gapWaits.add(id);
    this.later(() => {
      this.gapWaits.delete(id);
      if (!this.held.get(id)?.size) return;
      if ((this.have.get(id) ?? 0) > from) this.gapSeen(id);
      else this.fillGap(id);
    }, GAP_WAIT_MS);
  }

  async fillGap(id) {
    if (this.filling.has(id)) return;
    this.filling.add(id);
    if (!this.held.has(id)) this.held.set(id, new Map());
    try {
      for (;;) {
        const r = await this.history(id, { after_seq: this.have.get(id) ?? 0, limit: HISTORY_PAGE });
        // the answer may repeat what live events delivered meanwhile
        for (const m of r.messages) this.hold(id, m);
        this.drain(id);
        if (!r.has_more || !r.messages.length) break;
      }
    } catch {
      // offline: the next connection's catch-up fills it
      return;
    } finally {
      this.filling.delete(id);
    }
    // seqs have no gaps on the server; what is still held after a full
    // read came in meanwhile, and gets its own wait
    if (this.held.get(id).size) this.gapSeen(id);
  }

  // --- long-polling -----------------------------------------------------------

  async startPolling(gen) {
    this.pollCursor = '';
    this.pollAbort = new AbortController();
    try {
      await this.openPollSession(gen);
    } catch (err) {
      if (gen !== this.generation) return;
      if (err.status === 401) return this.unauthorized(err);
      this.reconnectLater();
      return;
    }
    if (gen !== this.generation) return;
    this.setState('polling');
    this.attempt = 0;
    this.refreshed = false;
    this.pumpAll();
    this.scheduleWsProbe(gen);
    this.pollLoop(gen);
  }

  // a session first, so that events during the catch-up wait in it
  async openPollSession(gen) {
    const r = await this.poll('', 0);
    if (gen !== this.generation) return;
    this.pollCursor = r.cursor;
    await this.catchUp();
  }

  async pollLoop(gen) {
    while (gen === this.generation && this.state === 'polling') {
      let r;
      try {
        r = await this.poll(this.pollCursor, POLL_TIMEOUT_S);
      } catch (err) {
        if (gen !== this.generation || this.state !== 'polling') return;   // switched to WebSocket
        if (err.status === 401) return this.unauthorized(err);
        return this.reconnectLater();
      }
      if (gen !== this.generation) return;
      if (r.resync) {
        try {
          if (r.reason === 'cursor_expired') {
            await this.catchUp();
            this.pollCursor = r.cursor;
          } else {                       // unknown_session: a new one, then catch up
            await this.openPollSession(gen);
          }
        } catch {
          if (gen === this.generation) this.reconnectLater();
          return;
        }
        continue;
      }
      for (const ev of r.events) this.onFrame(JSON.stringify(ev));
      this.pollCursor = r.cursor;
    }
  }

  poll(cursor, timeout) {
    const q = new URLSearchParams({ timeout: String(timeout) });
    if (cursor) q.set('cursor', cursor);
    return this.http('GET', `/api/v1/events?${q}`, undefined, this.pollAbort?.signal);
  }

  // what a WebSocket sync does, over HTTP: new conversations, then every
  // known conversation's messages after its cursor
  async catchUp() {
    const { conversations } = await this.http('GET', '/api/v1/conversations');
    for (const c of conversations) {
      if (!this.have.has(c.id)) this.onConversation(c);
      if ((this.have.get(c.id) ?? 0) < c.last_seq) await this.fillGap(c.id);
      // changes missed while away: the page reads the conversation again
      // (no HTTP sync); the list was read before that, so nothing is skipped
      if ((c.last_edit_seq ?? 0) > (this.edits.get(c.id) ?? 0)) {
        this.edits.set(c.id, c.last_edit_seq);
        this.emit('stale', c);
      }
    }
    this.emit('synced', {});
  }

  scheduleWsProbe(gen) {
    const wait = this.retryWsMs * (0.75 + Math.random() / 2);
    this.later(() => {
      if (gen !== this.generation || this.state !== 'polling') return;
      this.openWs(gen, (ok) => { if (!ok && gen === this.generation) this.scheduleWsProbe(gen); });
    }, wait);
  }

  stopPolling() {
    this.pollAbort?.abort();
    this.pollAbort = null;
  }

  // --- plumbing ----------------------------------------------------------------

  async http(method, path, body, signal) {
    const res = await fetch(this.base + path, {
      method, signal,
      headers: { authorization: `Bearer ${this.currentToken()}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) {
      throw Object.assign(new Error(json.error?.message ?? `HTTP ${res.status}`),
        { status: res.status, code: json.error?.code });
    }
    return json;
  }

  currentToken() {
    return typeof this.token === 'function' ? this.token() : this.token;
  }

  // the token is refused (expired, revoked).  With a refreshToken hook the
  // client asks it, once until a connection works again, for a new token
  // and connects with it; without one, or when it gives none, retrying
  // cannot help: the client stops and the page signs in again.
  async unauthorized(err) {
    if (this.refreshToken && !this.refreshed && !this.stopped) {
      this.refreshed = true;
      const gen = this.generation;
      let fresh = null;
      try {
        fresh = await this.refreshToken();
      } catch {
        fresh = null;
      }
      if (this.stopped || gen !== this.generation) return;
      if (fresh) {
        if (typeof this.token !== 'function') this.token = fresh;
        this.emit('token', {});
        this.connect();
        return;
      }
    }
    this.stop();
    this.emit('error', { code: err.code ?? 'unauthorized', message: err.message, status: 401 });
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.emit('state', { state });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

export function newId() {
  return crypto.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
