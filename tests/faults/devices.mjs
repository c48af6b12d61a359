// The chat devices of the fault run: the client behaviour the guarantees
// are stated against (resend with the same client_msg_id, reconnect with
// backoff and jitter, sync from the cursors, show each (conversation, seq)
// once).

import http from 'node:http';
import { BASE, sleep } from '../integration/lib.mjs';
import { WsClient } from '../integration/ws.mjs';
import { call, isOverloaded, laneStats, retryDelayMs, untilAnswered } from './client.mjs';
import { acked, log, runTag, sent, stats } from './common.mjs';

let nextAddress = 0;

// what every device shows: messages by (conversation, seq), and per
// conversation the end of the unbroken run from seq 1 (its cursor)
export class View {
  constructor(user, name) {
    this.user = user;
    this.name = name;
    this.address = `127.0.1.${1 + (nextAddress++ % 250)}`;
    this.view = new Map();      // cid -> Map(seq -> client_msg_id)
    this.cursors = {};          // cid -> highest seq seen
    this.pending = new Map();   // cmid -> {cid, text}: sent, not acknowledged
    this.seq = 0;
    this.conflicts = 0;
    this.stopped = false;
  }

  show(m) {
    let conv = this.view.get(m.conversation_id);
    if (!conv) this.view.set(m.conversation_id, (conv = new Map()));
    const had = conv.get(m.seq);
    if (had === undefined) conv.set(m.seq, m.client_msg_id);
    else if (had === m.client_msg_id) stats.redelivered++;
    else this.conflicts++;
    // the cursor is the end of the unbroken run from seq 1: a message past
    // a hole (events missed while Redis or a worker was down) means the
    // hole is fetched, which answers everything after the cursor
    let cursor = this.cursors[m.conversation_id] ?? 0;
    while (conv.has(cursor + 1)) cursor++;
    this.cursors[m.conversation_id] = cursor;
    if (m.seq > cursor + 1) this.gapSeen = true;
  }
}

// an answer that is not the one wanted, for the loop's catch to judge
class Unwanted extends Error {
  constructor(what, answer) { super(`${what}: ${answer.status}`); this.answer = answer; }
}

// a browser behind a proxy that blocks WebSockets: long-polls
// GET /api/v1/events, catches up from history after a resync or a hole,
// and sends over HTTP (POST .../messages), one message at a time, resent
// with the same client_msg_id until answered
export class PollDevice extends View {
  constructor(user, name, convs) {
    super(user, name);
    this.convs = convs;
    this.cursor = '';
    this.running = false;
    this.sending = false;
    this.agent = new http.Agent({ keepAlive: true, localAddress: this.address });
  }

  get ws() { return this.running; }

  async connect() {
    if (this.running) return;
    this.running = true;
    this.#loop();
  }

  #get(path) {
    const url = new URL(path, BASE);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search,
        agent: this.agent, headers: { authorization: `Bearer ${this.user.token}` } }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
          try { resolve({ status: res.statusCode, headers: res.headers, json: JSON.parse(body) }); } catch (e) { reject(e); }
        });
      });
      req.setTimeout(30000, () => req.destroy(new Error('poll timed out')));
      req.on('error', reject);
      req.end();
    });
  }

  async #loop() {
    let backoff = 100;
    while (!this.stopped) {
      try {
        if (!this.cursor) {
          // a new session first, so nothing falls between it and the catch-up
          const open = await this.#get('/api/v1/events');
          if (open.status !== 200) throw new Unwanted('open', open);
          this.cursor = open.json.cursor;
          await this.catchUp();
        }
        const r = await this.#get(`/api/v1/events?cursor=${this.cursor}&timeout=5`);
        if (r.status !== 200) throw new Unwanted('poll', r);
        for (const e of r.json.events) {
          if (e.type === 'message') { stats.polled++; this.show(e.message); }
        }
        this.cursor = r.json.cursor;
        if (r.json.resync || this.gapSeen) {
          this.gapSeen = false;
          await this.catchUp();
        }
        backoff = 100;
      } catch (e) {
        if (this.stopped) break;
        stats.reconnects++;
        // a full lane (the history read) says when to come back
        if (isOverloaded(e.answer)) { laneStats.read.overloaded++; await sleep(retryDelayMs(e.answer)); continue; }
        await sleep(backoff / 2 + Math.random() * backoff);
        backoff = Math.min(backoff * 2, 2000);
      }
    }
    this.running = false;
  }

  // history after the cursor of every conversation, page by page
  async catchUp() {
    for (const cid of this.convs) {
      let after = this.cursors[cid] ?? 0;
      for (;;) {
        const r = await this.#get(`/api/v1/conversations/${cid}/messages?after_seq=${after}&limit=100`);
        if (r.status !== 200) throw new Unwanted('history', r);
        for (const m of r.json.messages) this.show(m);
        if (!r.json.has_more || r.json.messages.length === 0) break;
        after = r.json.messages.at(-1).seq;
      }
    }
  }

  sync() { this.catchUp().catch(() => {}); }

  sendNew(cid) {
    if (this.sending || this.stopped) return;
    const cmid = `chaos-${this.user.user.id}-${this.name.slice(-1)}${++this.seq}-${runTag}`;
    const p = { cid, text: `${cmid} from ${this.name}`, tries: 0 };
    sent.add(cmid);
    stats.sent++;
    this.pending.set(cmid, p);
    this.sending = true;
    this.#post(cmid, p).finally(() => { this.sending = false; });
  }

  async #post(cmid, p) {
    const r = await untilAnswered('chat', () => {
      if (p.tries++) stats.resent++;
      return call('POST', `/api/v1/conversations/${p.cid}/messages`,
        { body: { client_msg_id: cmid, text: p.text }, token: this.user.token, address: this.address });
    }, (a) => a.status < 500 && a.status !== 429);
    if (r?.status === 200 || r?.status === 201) {
      this.pending.delete(cmid);
      acked.set(cmid, { cid: r.json.message.conversation_id, seq: r.json.message.seq });
      stats.acked++;
    } else if (r) {
      log(`${this.name}: send ${cmid} refused: ${r.status} ${r.text}`);
    }
  }

  drop() { this.agent.destroy(); this.agent = new http.Agent({ keepAlive: true, localAddress: this.address }); }

  stop() { this.stopped = true; this.agent.destroy(); }
}

export class Device extends View {
  constructor(user, name) {
    super(user, name);
    this.ws = null;
    this.backoff = 100;
    this.syncing = false;
  }

  async connect() {
    while (!this.stopped) {
      try {
        const ws = await WsClient.connect({ token: this.user.token, localAddress: this.address });
        ws.keepMessages = false;
        ws.onMessage = (m) => this.#onMessage(m);
        ws.onClose = () => {
          if (this.ws === ws) this.ws = null;
          if (!this.stopped) { stats.reconnects++; this.#later(); }
        };
        this.ws = ws;
        this.backoff = 100;
        this.syncing = false;     // an answer lost with the old socket
        this.sync();
        for (const [cmid, p] of this.pending) this.#send(cmid, p);   // resend, same id
        return;
      } catch {
        await sleep(this.backoff / 2 + Math.random() * this.backoff);
        this.backoff = Math.min(this.backoff * 2, 2000);
      }
    }
  }

  #later() {
    setTimeout(() => this.connect(), this.backoff / 2 + Math.random() * this.backoff);
    this.backoff = Math.min(this.backoff * 2, 2000);
  }

  #onMessage(m) {
    if (m.type === 'message') {
      this.show(m.message);
      if (this.gapSeen && !this.syncing) { this.gapSeen = false; this.sync(); }
    }
    else if (m.type === 'ack' && this.pending.has(m.client_msg_id)) {
      this.pending.delete(m.client_msg_id);
      acked.set(m.client_msg_id, { cid: m.conversation_id, seq: m.seq });
      stats.acked++;
    } else if (m.type === 'error' && this.pending.has(m.ref)) {
      // unavailable, timeout, overloaded...: the same id again a little
      // later; a full lane (overloaded) after its Retry-After, which an
      // error frame does not carry: the chat lane's, 1 s (backend/lanes.c)
      const p = this.pending.get(m.ref);
      if (m.code === 'overloaded') laneStats.chat.overloaded++;
      else if (m.code === 'timeout') laneStats.chat.timeouts++;
      const wait = m.code === 'overloaded' ? 1000 * (0.5 + Math.random()) : 500;
      setTimeout(() => this.pending.has(m.ref) && this.#send(m.ref, p), wait);
    } else if (m.type === 'sync') {
      // the answer's own cursors are not taken: show() moves ours only
      // over messages we really have
      for (const msg of m.messages) this.show(msg);
      this.syncing = false;
      if (m.has_more || this.gapSeen) { this.gapSeen = false; this.sync(); }
    } else if (m.type === 'error' && m.ref === 'sync') {
      this.syncing = false;
    }
  }

  sync() {
    if (!this.ws || this.syncing) return;
    this.syncing = true;
    this.ws.sendJson({ type: 'sync', cursors: this.cursors, limit: 500, ref: 'sync' });
  }

  #send(cmid, p) {
    if (!this.ws) return;      // resent on reconnect
    if (p.tries++) stats.resent++;
    this.ws.sendJson({ type: 'send', conversation_id: p.cid, client_msg_id: cmid, text: p.text });
  }

  sendNew(cid) {
    if (this.pending.size >= 8) return;   // a real client would queue; we just wait
    const cmid = `chaos-${this.user.user.id}-${this.name.slice(-1)}${++this.seq}-${runTag}`;
    const p = { cid, text: `${cmid} from ${this.name}`, tries: 0 };
    sent.add(cmid);
    stats.sent++;
    this.pending.set(cmid, p);
    this.#send(cmid, p);
  }

  drop() { this.ws?.close(); }

  stop() { this.stopped = true; this.ws?.close(); }
}
