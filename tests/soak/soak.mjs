// The live-delivery soak: chat traffic in bursts with nothing broken, and
// a count of the messages a connected device should have got live and did
// not (live gaps).  Design and the exact rule in README.md.
//
//   node tests/soak/soak.mjs [--seconds 25] [--users 6] [--ws 2] [--poll 1]
//                            [--clients 1] [--seed N]
//
// Devices per user: --ws on raw WebSockets, --poll on raw long-polling
// (GET /api/v1/events), --clients running the web client library
// (web/chat-client.js) in node.  The stack comes from the environment
// `conf/stack.sh env` prints (as for the integration tests).  The last line
// is "live gaps: N"; the exit status is non-zero when N > 0 or when the run
// proves nothing (a send never acknowledged, nothing owed to anyone).

import http from 'node:http';
import { parseArgs } from 'node:util';
import { api, BASE, sleep } from '../integration/lib.mjs';
import { makeUsers } from '../integration/shop.mjs';
import { BrowserWebSocket, WsClient } from '../integration/ws.mjs';

globalThis.WebSocket = BrowserWebSocket;
const { ChatClient } = await import('../../web/chat-client.js');

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '25' },
    users: { type: 'string', default: '6' },
    ws: { type: 'string', default: '2' },
    poll: { type: 'string', default: '1' },
    clients: { type: 'string', default: '1' },
    seed: { type: 'string', default: String(Date.now() % 1000000) },
  },
});
const SECONDS = Number(opt.seconds);
const NUSERS = Number(opt.users);
const KINDS = { ws: Number(opt.ws), poll: Number(opt.poll), client: Number(opt.clients) };
const SEED = Number(opt.seed);
// how long a leaving device waits for what it is owed before it goes, and
// every device at the end: far beyond any fan-out (tens of milliseconds),
// so what is still missing then was lost, not late
const DRAIN_MS = 10000;

const t0 = Date.now();
const now = () => Date.now() - t0;
const log = (...a) => console.log(`soak: ${(now() / 1000).toFixed(1).padStart(6)}s`, ...a);

// mulberry32: the run's choices follow --seed (its timing still varies)
let rs = SEED >>> 0;
function random() {
  rs = (rs + 0x6D2B79F5) >>> 0;
  let t = rs;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];

const runTag = Math.random().toString(36).slice(2, 8);
const stats = { sent: 0, resent: 0, history: 0, reconnects: 0, duplicates: 0, resyncs: 0, errors: 0, fills: 0, cut: 0 };

// every message sent: cmid -> {cid, first (ms, first transmission), ack (ms), seq}
const messages = new Map();

/* ------------------------------------------------------------------ */
/* sessions: one connection of a device, and what it got live          */

// A session is owed every message of its user's conversations whose first
// transmission came after the session was ready and whose ack came before
// it began to leave: such a message was committed, and fanned out, while
// the session was connected the whole time.
class Session {
  constructor(device) {
    this.device = device;
    this.ready = Infinity;       // ms: registered and caught up; nothing owed before
    this.leave = Infinity;       // ms: began to leave; nothing more owed after
    this.live = new Set();       // "cid/seq" received live
  }

  owes(m) {
    return m.ack !== undefined && m.first >= this.ready && m.ack <= this.leave
      && this.device.convs.includes(m.cid);
  }

  missing() {
    const out = [];
    for (const [cmid, m] of messages) {
      if (this.owes(m) && !this.live.has(`${m.cid}/${m.seq}`)) out.push({ cmid, ...m });
    }
    return out;
  }

  got(msg) {
    const k = `${msg.conversation_id}/${msg.seq}`;
    if (this.live.has(k)) stats.duplicates++;
    this.live.add(k);
  }
}

let nextAddress = 0;

class Device {
  constructor(user, name, convs) {
    this.user = user;
    this.name = name;
    this.convs = convs;
    this.address = `127.0.4.${1 + (nextAddress++ % 250)}`;
    this.cursors = {};           // cid -> highest contiguous seq shown (live, sync or history)
    this.shown = new Map();      // cid -> Set(seq)
    this.sessions = [];
    this.session = null;
    this.pending = new Map();    // cmid -> {cid, text}: sent, not acknowledged
    this.n = 0;
  }

  inflight() { return this.pending.size; }

  show(msg) {
    let s = this.shown.get(msg.conversation_id);
    if (!s) this.shown.set(msg.conversation_id, (s = new Set()));
    s.add(msg.seq);
    let c = this.cursors[msg.conversation_id] ?? 0;
    while (s.has(c + 1)) c++;
    this.cursors[msg.conversation_id] = c;
  }

  newSend(cid) {
    const cmid = `soak-${runTag}-${this.name}-${++this.n}`;
    messages.set(cmid, { cid, first: now() });
    stats.sent++;
    this.pending.set(cmid, { cid, text: `${cmid} text` });
    this.transmit(cmid);
  }

  acked(cmid, seq) {
    const m = messages.get(cmid);
    if (!m || m.ack !== undefined) return;
    m.ack = now();
    m.seq = seq;
    this.pending.delete(cmid);
  }

  // waits until the session has everything it is owed (or DRAIN_MS)
  async drain(session) {
    const end = Date.now() + DRAIN_MS;
    let want = session.missing();
    while (Date.now() < end && want.length) {
      await sleep(50);
      want = want.filter((m) => !session.live.has(`${m.cid}/${m.seq}`));
    }
  }

  // a history page, as the app reads when a conversation is opened
  async readHistory() {
    const cid = pick(this.convs);
    stats.history++;
    const r = await api('GET', `/api/v1/conversations/${cid}/messages?limit=30`, undefined,
      { token: this.user.token });
    if (r.status !== 200) stats.errors++;
  }

  // history after our cursors: a new session's catch-up (not live)
  async catchUp() {
    for (const cid of this.convs) {
      for (;;) {
        const r = await api('GET', `/api/v1/conversations/${cid}/messages?after_seq=${this.cursors[cid] ?? 0}&limit=100`,
          undefined, { token: this.user.token }).catch(() => ({ status: 0 }));
        if (r.status !== 200) { stats.errors++; return; }
        for (const m of r.json.messages) this.show(m);
        if (!r.json.has_more || !r.json.messages.length) break;
      }
    }
  }

  async stop() {
    this.stopping = true;
    this.session.leave = now();
    await this.drain(this.session);
    await this.close();
  }

  // leaves (after taking what it is owed) and comes back with a catch-up
  async reconnect() {
    this.session.leave = now();
    await this.drain(this.session);
    await this.close();
    stats.reconnects++;
    await this.connect();
  }
}

/* a raw WebSocket device: sync on every connect, sends pipelined */
class WsDevice extends Device {
  async connect() {
    const session = new Session(this);
    let ws;
    for (let tries = 0; !ws; tries++) {
      try {
        ws = await WsClient.connect({ token: this.user.token, localAddress: this.address });
      } catch (e) {
        stats.errors++;
        if (tries === 20) throw e;
        await sleep(200);
      }
    }
    ws.keepMessages = false;
    ws.onMessage = (m) => this.onMessage(ws, session, m);
    ws.onClose = () => {
      if (ws.leaving) return;
      // the server closed it: never in a run without faults, so it is
      // counted; the messages of its last moments are not owed
      stats.cut++;
      log(`${this.name}: the server closed the WebSocket`);
      session.leave = Math.min(session.leave, now() - 2000);
      this.onSynced?.();
      if (!this.stopping) this.connect().catch(() => { stats.errors++; });
    };
    this.ws = ws;
    this.session = session;
    this.sessions.push(session);
    // the sync goes out on the command connection that announced us to
    // Redis: once its answer is here, the announcement is too, and the
    // fan-out of every later commit finds this connection
    const synced = new Promise((resolve) => { this.onSynced = resolve; });
    ws.sendJson({ type: 'sync', cursors: this.cursors, limit: 500, ref: 'sync' });
    await synced;
    session.ready = now();
    for (const cmid of this.pending.keys()) { stats.resent++; this.transmit(cmid); }
  }

  onMessage(ws, session, m) {
    if (m.type === 'message') {
      session.got(m.message);
      this.show(m.message);
    } else if (m.type === 'ack') {
      this.acked(m.client_msg_id, m.seq);
    } else if (m.type === 'sync' && m.ref === 'sync') {
      for (const msg of m.messages) this.show(msg);
      if (m.has_more) ws.sendJson({ type: 'sync', cursors: this.cursors, limit: 500, ref: 'sync' });
      else this.onSynced?.();
    } else if (m.type === 'error') {
      stats.errors++;
      if (m.ref === 'sync') this.onSynced?.();
    }
  }

  transmit(cmid) {
    const p = this.pending.get(cmid);
    if (p && this.ws && !this.ws.closed) {
      this.ws.sendJson({ type: 'send', conversation_id: p.cid, client_msg_id: cmid, text: p.text });
    }
  }

  async close() {
    this.ws.leaving = true;
    this.ws.close();
  }
}

/* a raw long-polling device: GET /api/v1/events, sends over HTTP */
class PollDevice extends Device {
  constructor(...a) {
    super(...a);
    this.agent = new http.Agent({ keepAlive: true, localAddress: this.address });
  }

  get(path) {
    const url = new URL(path, BASE);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search,
        agent: this.agent, headers: { authorization: `Bearer ${this.user.token}` } }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
          try { resolve({ status: res.statusCode, json: JSON.parse(body) }); } catch (e) { reject(e); }
        });
      });
      req.on('error', reject);
      req.end();
    });
  }

  // a session: opened (the edge's script registers it at once), caught up
  // from history, then polled until told to leave
  // a request that failed in transit (a keep-alive connection closed as it
  // was reused, say) is sent again, as a client would; counted as an error
  async getAgain(path) {
    for (let tries = 0; ; tries++) {
      try {
        return await this.get(path);
      } catch (e) {
        stats.errors++;
        if (tries === 20) throw e;
        await sleep(100);
      }
    }
  }

  async connect() {
    const session = new Session(this);
    const open = await this.getAgain('/api/v1/events');
    if (open.status !== 200) throw new Error(`${this.name}: open ${open.status}`);
    session.ready = now();
    session.cursor = open.json.cursor;
    this.session = session;
    this.sessions.push(session);
    await this.catchUp();
    session.loop = this.poll(session).catch((e) => {
      stats.errors++;
      log(`${this.name}: polling stopped: ${e.message}`);
    });
  }

  async poll(session) {
    while (!session.quit) {
      const r = await this.getAgain(`/api/v1/events?cursor=${encodeURIComponent(session.cursor)}&timeout=1`);
      if (r.status !== 200) { stats.errors++; await sleep(200); continue; }
      if (r.json.resync) {
        // never expected without faults: what it skipped shows as gaps
        stats.resyncs++;
        log(`${this.name}: resync ${r.json.reason}`);
        if (!r.json.cursor) return;
      }
      for (const e of r.json.events) {
        if (e.type !== 'message') continue;
        session.got(e.message);
        this.show(e.message);
      }
      session.cursor = r.json.cursor;
    }
  }

  async transmitHttp(cmid) {
    const p = this.pending.get(cmid);
    for (let tries = 0; p && tries < 20; tries++) {
      const r = await api('POST', `/api/v1/conversations/${p.cid}/messages`,
        { client_msg_id: cmid, text: p.text }, { token: this.user.token }).catch(() => ({ status: 0 }));
      if (r.status === 200 || r.status === 201) {
        this.acked(cmid, r.json.message.seq);
        return;
      }
      stats.errors++;
      await sleep(200);
    }
  }

  transmit(cmid) { this.transmitHttp(cmid).catch(() => { stats.errors++; }); }

  async close() {
    this.session.quit = true;
    await this.session.loop;
  }

  async stop() { await super.stop(); this.agent.destroy(); }
}

/*
 * A device running the client library, as the web app does.  It sends,
 * resends and reconnects by its own rules; here a message counts as live
 * only when the library showed it after its own event had arrived (not
 * from a sync or a history read that came first).
 */
class ClientDevice extends Device {
  constructor(...a) {
    super(...a);
    this.outstanding = 0;
    const c = new ChatClient({ token: this.user.token, base: BASE,
      cursors: Object.fromEntries(this.convs.map((cid) => [cid, 0])) });
    const onFrame = c.onFrame.bind(c);
    c.onFrame = (data) => {
      const f = JSON.parse(data);
      if (f.type === 'message') this.session?.arrived.add(`${f.message.conversation_id}/${f.message.seq}`);
      // ready once the (re)connect's sync is complete
      if (f.type === 'sync' && !f.has_more && this.session && this.session.ready === Infinity) {
        this.session.ready = now();
      }
      onFrame(data);
    };
    const fill = c.fillGap.bind(c);
    c.fillGap = (...x) => { stats.fills++; return fill(...x); };
    c.addEventListener('message', (e) => {
      const m = e.detail;
      this.show(m);
      if (this.session?.arrived.has(`${m.conversation_id}/${m.seq}`)) this.session.got(m);
    });
    c.addEventListener('synced', () => {
      // long-polling: catching up over HTTP is its sync
      if (c.state === 'polling' && this.session && this.session.ready === Infinity) this.session.ready = now();
    });
    c.addEventListener('state', (e) => this.onState(e.detail.state));
    this.client = c;
  }

  onState(state) {
    if (state === 'ws' || state === 'polling') {
      const session = new Session(this);
      session.arrived = new Set();
      this.session = session;
      this.sessions.push(session);
      this.connected?.();
    } else if (this.session && this.session.leave === Infinity) {
      // the library left on its own (no pong, the link dropped): never in
      // a run without faults, so it is counted; the messages of its last
      // moments are not owed
      stats.cut++;
      log(`${this.name}: the client library dropped its connection (${state})`);
      this.session.leave = now() - 2000;
    }
  }

  inflight() { return this.outstanding; }

  connect() {
    const up = new Promise((resolve) => { this.connected = resolve; });
    if (this.client.stopped) this.client.start();
    return up;
  }

  newSend(cid) {
    const cmid = `soak-${runTag}-${this.name}-${++this.n}`;
    messages.set(cmid, { cid, first: now() });
    stats.sent++;
    this.outstanding++;
    this.client.send(cid, `${cmid} text`, cmid)
      .then((ack) => this.acked(cmid, ack.seq), () => { stats.errors++; })
      .finally(() => { this.outstanding--; });
  }

  async reconnect() {
    this.session.leave = now();
    await this.drain(this.session);
    stats.reconnects++;
    const up = new Promise((resolve) => { this.connected = resolve; });
    this.client.drop();          // the library reconnects after its backoff
    await up;
  }

  async close() { this.client.stop(); }
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

async function main() {
  log(`seed ${SEED}: ${NUSERS} users x (${KINDS.ws} WebSocket + ${KINDS.poll} long-poll + ` +
      `${KINDS.client} client-library devices), ${SECONDS} s`);
  // made in SQL with tokens signed by the test: scrypt would cost seconds
  const users = await makeUsers(`soak-${runTag}-`, NUSERS);
  const uid = (u) => u.id;

  // one group of everybody, and a direct conversation per neighbour pair
  const convsOf = new Map(users.map((u) => [uid(u), []]));
  const conversation = async (owner, body, members) => {
    const r = await api('POST', '/api/v1/conversations', body, { token: owner.token });
    if (r.status !== 201 && r.status !== 200) throw new Error(`conversation: ${r.status} ${r.text}`);
    for (const m of members) convsOf.get(uid(m)).push(r.json.conversation.id);
  };
  await conversation(users[0], { type: 'group', title: `soak ${runTag}`, member_ids: users.slice(1).map(uid) }, users);
  for (let i = 0; i + 1 < users.length; i++) {
    await conversation(users[i], { type: 'direct', user_id: uid(users[i + 1]) }, [users[i], users[i + 1]]);
  }

  const kinds = { ws: WsDevice, poll: PollDevice, client: ClientDevice };
  const devices = users.flatMap((u) => Object.entries(KINDS).flatMap(([kind, n]) =>
    Array.from({ length: n }, (_, k) => new kinds[kind](u, `${uid(u)}${kind[0]}${k}`, convsOf.get(uid(u))))));
  await Promise.all(devices.map((d) => d.connect()));
  log(`${devices.length} devices connected`);

  // bursts: every device sends at once for a moment, then a pause; in the
  // middle of a burst some devices leave and come back (a sync or a new
  // poll session) and some read a history page
  const busy = new Set();
  const chores = [];
  let bursts = 0;
  const end = Date.now() + SECONDS * 1000;
  while (Date.now() < end) {
    bursts++;
    const burstEnd = Date.now() + 500 + random() * 1500;
    let churned = false;
    while (Date.now() < burstEnd) {
      for (const d of devices) {
        if (busy.has(d) || d.inflight() >= 16) continue;
        if (random() < 0.5) d.newSend(pick(d.convs));
      }
      if (!churned && random() < 0.3) {
        churned = true;
        for (const d of devices) {
          if (busy.has(d) || random() > 0.15) continue;
          busy.add(d);
          chores.push(d.reconnect()
            .catch((e) => { stats.errors++; log(`${d.name}: reconnect failed: ${e.message}`); })
            .finally(() => busy.delete(d)));
        }
      }
      if (random() < 0.2) chores.push(pick(devices).readHistory().catch(() => { stats.errors++; }));
      await sleep(20 + random() * 40);
    }
    await sleep(200 + random() * 600);
  }

  log(`sending stopped after ${bursts} bursts: ${stats.sent} sent; waiting for acks`);
  await Promise.all(chores);
  const ackEnd = Date.now() + 60000;
  while (Date.now() < ackEnd && devices.some((d) => d.inflight())) await sleep(100);
  const unacked = messages.size - [...messages.values()].filter((m) => m.ack !== undefined).length;
  await Promise.all(devices.map((d) => d.stop()));

  // a gap is either an event that never reached the device (the edge or
  // the fan-out lost it) or, on a client-library device, one that arrived
  // after the library had shown the message from a sync or history read
  let owed = 0;
  let gaps = 0;
  let never = 0;
  let sessions = 0;
  for (const d of devices) {
    for (const s of d.sessions) {
      sessions++;
      for (const m of messages.values()) if (s.owes(m)) owed++;
      const missing = s.missing();
      gaps += missing.length;
      for (const m of missing) {
        const late = s.arrived?.has(`${m.cid}/${m.seq}`);
        if (!late) never++;
        if (gaps - missing.length + missing.indexOf(m) < 20) {
          log(`GAP ${d.name} session ${d.sessions.indexOf(s)} [${s.ready}..${s.leave}] ms: ` +
              `${m.cmid} conversation ${m.cid} seq ${m.seq}, sent ${m.first}, acked ${m.ack}, ` +
              `${late ? 'its event came after it was shown from history' : 'its event never came'}`);
        }
      }
    }
  }
  log(`${stats.sent} messages (${unacked} unacknowledged, ${stats.resent} resent), ${devices.length} devices, ` +
      `${sessions} sessions, ${stats.reconnects} reconnects, ${stats.history} history reads, ` +
      `${stats.duplicates} live duplicates, ${stats.resyncs} resyncs, ${stats.errors} errors`);
  log(`client library: ${stats.fills} gap fills from history; connections closed unasked: ${stats.cut}`);
  log(`${owed} (session, message) pairs owed live; ${never} of the gaps never reached their device`);
  console.log(`live gaps: ${gaps}`);
  const useless = unacked > 0 || owed === 0;
  if (useless) console.log('soak: the run proves nothing (unacknowledged sends, or nothing owed)');
  process.exit(gaps || useless ? 1 : 0);
}

main().catch((e) => { console.error('soak: run failed:', e); console.log('live gaps: unknown'); process.exit(1); });
