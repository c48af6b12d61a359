// The fault-injection run: real chat traffic through the real stack while
// things break, then the books are checked.
//
//   node tests/faults/chaos.mjs [--rounds N] [--settle-ms MS] [--users N]
//                               [--faults worker,redis,postgres,reload,nginx-worker,storm]
//
// The stack comes from the environment `conf/stack.sh env` prints (the same
// as the integration tests); faults that stop a server bring it back with
// `conf/stack.sh start`, which starts only what is missing.
//
// Traffic: every user has two devices from their own loopback addresses, a
// WebSocket one that keeps sending and a long-polling one (GET
// /api/v1/events, as behind a proxy that blocks WebSockets); all users
// share a few group conversations.  The devices behave like the real
// client is required to: a send not acknowledged is resent with the same
// client_msg_id after a reconnect or an error; a closed socket reconnects
// with backoff and jitter and then syncs from its cursors; received
// messages are kept per (conversation, seq), so a redelivery is shown once.
// One extra device stops reading altogether (a slow consumer) for the whole
// run: it must not hold anyone else up.
//
// Faults, one per round, in order, repeated for --rounds:
//   worker        kill -9 a backend worker
//   redis         kill -9 Redis (AOF on), start it again
//   postgres      pg_ctl stop -m immediate, start it again
//   reload        nginx -s reload
//   nginx-worker  kill -9 an nginx worker (its clients reconnect)
//   storm         every device drops at once and reconnects, plus 1,000
//                 extra connections opened at once
//
// The books, after sending stops and every device has synced:
//   lost          acknowledged messages missing from PostgreSQL, or stored
//                 under another seq than the one acknowledged   (must be 0)
//   unexpected    messages in PostgreSQL nobody sent            (must be 0)
//   gaps          holes in a conversation's seq                 (must be 0)
//   undelivered   (device, message) pairs a device never showed (must be 0)
//   conflicts     one seq shown with two different messages     (must be 0)
//   duplicates    one client_msg_id stored twice                (must be 0)
// and, from six shoppers checking out one copy at a time (a mix of good,
// declined, slow and 500-answering cards; retries with the same key):
//   oversold_or_stock_mismatch  books whose available stock plus copies
//                 sold differs from the starting stock           (must be 0)
//   double_charged   orders with two charges at the provider      (must be 0)
//   charged_not_paid / paid_not_charged   the provider and the orders
//                 disagree                                       (must be 0)
// The last line is "faults: N passed, N failed" (one check per book).

import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { api, BASE, registerUsers, sql, sleep, waitFor, workerPids, RUN_DIR } from '../integration/lib.mjs';
import { WsClient } from '../integration/ws.mjs';
import {
  CARDS, checkout, makeBook, makeUsers, makeWarehouse, newKey, provider, putCart, setStock,
} from '../integration/shop.mjs';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '1' },
    'settle-ms': { type: 'string', default: '4000' },
    users: { type: 'string', default: '6' },
    faults: { type: 'string', default: 'worker,redis,postgres,reload,nginx-worker,storm' },
    'send-every-ms': { type: 'string', default: '60' },
  },
});
const ROUNDS = Number(opt.rounds);
const SETTLE_MS = Number(opt['settle-ms']);
const NUSERS = Number(opt.users);
const FAULTS = opt.faults.split(',').filter(Boolean);
const SEND_EVERY_MS = Number(opt['send-every-ms']);
const ROOT = new URL('../..', import.meta.url).pathname;

const log = (...a) => console.log(`faults: ${new Date().toISOString().slice(11, 23)}`, ...a);

/* ------------------------------------------------------------------ */
/* a device: the client behaviour the guarantees are stated against    */

let nextAddress = 0;
const stats = { sent: 0, resent: 0, acked: 0, redelivered: 0, reconnects: 0, polled: 0 };

// what every device shows: messages by (conversation, seq), and per
// conversation the end of the unbroken run from seq 1 (its cursor)
class View {
  constructor(user, name) {
    this.user = user;
    this.name = name;
    this.address = `127.0.1.${1 + (nextAddress++ % 250)}`;
    this.view = new Map();      // cid -> Map(seq -> client_msg_id)
    this.cursors = {};          // cid -> highest seq seen
    this.pending = new Map();   // cmid -> {cid, text}: sent, not acknowledged
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

// a browser behind a proxy that blocks WebSockets: long-polls
// GET /api/v1/events, catches up from history after a resync or a hole
class PollDevice extends View {
  constructor(user, name, convs) {
    super(user, name);
    this.convs = convs;
    this.cursor = '';
    this.running = false;
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
          try { resolve({ status: res.statusCode, json: JSON.parse(body) }); } catch (e) { reject(e); }
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
          if (open.status !== 200) throw new Error(`open: ${open.status}`);
          this.cursor = open.json.cursor;
          await this.catchUp();
        }
        const r = await this.#get(`/api/v1/events?cursor=${this.cursor}&timeout=5`);
        if (r.status !== 200) throw new Error(`poll: ${r.status}`);
        for (const e of r.json.events) {
          if (e.type === 'message') { stats.polled++; this.show(e.message); }
        }
        this.cursor = r.json.cursor;
        if (r.json.resync || this.gapSeen) {
          this.gapSeen = false;
          await this.catchUp();
        }
        backoff = 100;
      } catch {
        if (this.stopped) break;
        stats.reconnects++;
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
        const r = await api('GET', `/api/v1/conversations/${cid}/messages?after_seq=${after}&limit=100`,
          undefined, { token: this.user.token });
        if (r.status !== 200) throw new Error(`history: ${r.status}`);
        for (const m of r.json.messages) this.show(m);
        if (!r.json.has_more || r.json.messages.length === 0) break;
        after = r.json.messages.at(-1).seq;
      }
    }
  }

  sync() { this.catchUp().catch(() => {}); }

  drop() { this.agent.destroy(); this.agent = new http.Agent({ keepAlive: true, localAddress: this.address }); }

  stop() { this.stopped = true; this.agent.destroy(); }
}

class Device extends View {
  constructor(user, name) {
    super(user, name);
    this.ws = null;
    this.backoff = 100;
    this.syncing = false;
    this.seq = 0;
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
      // unavailable, timeout, ...: the same id again a little later
      const p = this.pending.get(m.ref);
      setTimeout(() => this.pending.has(m.ref) && this.#send(m.ref, p), 500);
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

const runTag = Math.random().toString(36).slice(2, 8);

/* ------------------------------------------------------------------ */
/* shoppers: checkouts through the same faults                         */

const SHOP = { start: 30, books: [], shoppers: [] };
const shopStats = { checkouts: 0, retried: 0, outOfStock: 0, unanswered: 0 };

async function shopSetup() {
  const warehouse = await makeWarehouse('eu');
  for (let i = 0; i < 4; i++) {
    const b = await makeBook(`chaos book ${i} ${runTag}`, 1000 + i);
    await setStock(b, warehouse, SHOP.start);
    SHOP.books.push(b);
  }
  SHOP.shoppers = await makeUsers(`chaos-shop-${runTag}-`, 6);
}

// mostly good cards; some declined, some slower than the backend waits
// (pending, settled by the reconciler), some answered 500 after charging
function someCard() {
  const x = Math.random();
  if (x < 0.7) return CARDS.ok;
  if (x < 0.8) return CARDS.declined;
  if (x < 0.9) return CARDS.slow;
  return CARDS.error500;
}

// One shopper, as a real client: one copy into the cart, then checkout
// with a fresh key, retried with the same key until a definite answer.
async function shopper(u, running) {
  while (running()) {
    const book = SHOP.books[Math.floor(Math.random() * SHOP.books.length)];
    try {
      if ((await putCart(u, book, 1)).status !== 200) { await sleep(300); continue; }
    } catch { await sleep(300); continue; }
    const key = newKey('chaos');
    const card = someCard();
    shopStats.checkouts++;
    let answer = null;
    for (let t = 0; t < 60 && !answer; t++) {
      try {
        const r = await checkout(u, key, card);
        if ([201, 400, 409].includes(r.status)) answer = r;
        else { shopStats.retried++; await sleep(500); }
      } catch { shopStats.retried++; await sleep(500); }
    }
    if (!answer) shopStats.unanswered++;
    else if (answer.status === 409) shopStats.outOfStock++;
  }
}

// the books of the shop: stock, orders and the provider's charges agree
async function shopBooks() {
  const ids = SHOP.shoppers.map((u) => u.id).join(',');
  await waitFor('every order settled', async () =>
    (await sql(`SELECT count(*) FROM orders WHERE user_id IN (${ids}) AND status = 'pending_payment'`)) === '0',
  { timeout: 120000, every: 500 }).catch(() => log('some orders still pending_payment'));

  let stockMismatch = 0;
  for (const b of SHOP.books) {
    const [available, sold] = (await sql(`SELECT
        (SELECT sum(on_hand - reserved) FROM stock WHERE book_id = ${b}),
        coalesce((SELECT sum(i.quantity) FROM order_items i JOIN orders o ON o.id = i.order_id
                   WHERE i.book_id = ${b} AND o.status IN ('paid', 'shipped', 'delivered')), 0)`))
      .split('|').map(Number);
    if (available + sold !== SHOP.start || available < 0) {
      stockMismatch++;
      log(`book ${b}: ${available} available + ${sold} sold != ${SHOP.start}`);
    }
  }

  const orders = (await sql(`SELECT id || ' ' || status || ' ' || user_id FROM orders WHERE user_id IN (${ids})`))
    .split('\n').filter(Boolean).map((l) => l.split(' '));
  let doubleCharged = 0;
  let chargedNotPaid = 0;
  let paidNotCharged = 0;
  let paid = 0;
  for (const [id, status, user] of orders) {
    // the backend's charges carry its key "u<user>:<checkout key>"; the
    // provider's own tests make payments with made-up order ids
    const r = await provider('GET', `/v1/payments?order_id=${id}`);
    const charged = r.json.payments.filter((p) => p.status === 'succeeded'
      && p.idempotency_key.startsWith(`u${user}:`)).length;
    const isPaid = ['paid', 'shipped', 'delivered'].includes(status);
    if (isPaid) paid++;
    if (charged > 1) doubleCharged++;
    if (charged > 0 && !isPaid) { chargedNotPaid++; log(`order ${id} ${status} but charged`); }
    if (charged === 0 && isPaid) { paidNotCharged++; log(`order ${id} paid but not charged`); }
  }
  log(`shop: ${shopStats.checkouts} checkouts (retried ${shopStats.retried}, out of stock ` +
      `${shopStats.outOfStock}, unanswered ${shopStats.unanswered}), ${orders.length} orders, ${paid} paid`);
  return { oversold_or_stock_mismatch: stockMismatch, double_charged: doubleCharged,
    charged_not_paid: chargedNotPaid, paid_not_charged: paidNotCharged };
}
const sent = new Set();
const acked = new Map();        // cmid -> {cid, seq}

/* ------------------------------------------------------------------ */
/* faults                                                              */

const pidIn = (file) => Number(readFileSync(`${RUN_DIR}/${file}`, 'utf8').trim());
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const stackStart = () => execFileSync(`${ROOT}/conf/stack.sh`, ['start'], { stdio: 'ignore' });
const nginxWorkers = () => execFileSync('pgrep', ['-P', String(pidIn('nginx/nginx.pid'))])
  .toString().trim().split('\n').map(Number);

const faults = {
  async worker() {
    const [pid] = await workerPids();
    process.kill(pid, 'SIGKILL');
    return `killed backend worker ${pid}`;
  },
  async redis() {
    const pid = pidIn('redis/redis.pid');
    process.kill(pid, 'SIGKILL');
    await waitFor('redis to die', async () => !alive(pid));
    await sleep(1000);
    stackStart();
    return `killed redis ${pid} and started it again`;
  },
  async postgres() {
    const data = `${RUN_DIR}/pg/data`;
    const bin = execFileSync('sh', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1']).toString().trim();
    const asPg = process.getuid() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
    const cmd = [...asPg, `${bin}/pg_ctl`, '-D', data, '-m', 'immediate', 'stop'];
    execFileSync(cmd[0], cmd.slice(1), { stdio: 'ignore' });
    await sleep(1500);
    stackStart();
    return 'stopped postgres (immediate) and started it again';
  },
  async reload() {
    execFileSync('nginx', ['-p', `${RUN_DIR}/nginx`, '-c', `${RUN_DIR}/nginx/nginx.conf`, '-s', 'reload'],
      { stdio: 'ignore' });
    return 'reloaded nginx';
  },
  async 'nginx-worker'() {
    const [pid] = nginxWorkers();
    process.kill(pid, 'SIGKILL');
    return `killed nginx worker ${pid}`;
  },
  async storm() {
    for (const d of devices) d.drop();
    const extra = await Promise.allSettled(Array.from({ length: 1000 }, (_, i) =>
      WsClient.connect({ token: users[i % users.length].token, localAddress: `127.0.2.${1 + (i % 250)}` })));
    const opened = extra.filter((r) => r.status === 'fulfilled');
    for (const r of opened) r.value.close();
    return `dropped every device at once and opened ${opened.length}/1000 extra connections`;
  },
};

/* ------------------------------------------------------------------ */
/* the run                                                             */

let users = [];
let devices = [];

async function main() {
  for (const f of FAULTS) if (!faults[f]) throw new Error(`unknown fault ${f}`);
  log(`${NUSERS} users x 2 devices, faults ${FAULTS.join(',')} x ${ROUNDS}, settle ${SETTLE_MS} ms`);

  users = await registerUsers(`chaos-${runTag}-`, NUSERS, 4);
  const convs = [];
  for (let c = 0; c < 3; c++) {
    const r = await api('POST', '/api/v1/conversations',
      { type: 'group', title: `chaos ${c}`, member_ids: users.slice(1).map((u) => u.user.id) },
      { token: users[0].token });
    if (r.status !== 201) throw new Error(`group: ${r.status} ${r.text}`);
    convs.push(r.json.conversation.id);
  }
  // every user: a WebSocket device that sends, and a long-polling one
  devices = users.flatMap((u) => [new Device(u, `${u.user.id}/a`), new PollDevice(u, `${u.user.id}/b`, convs)]);
  await Promise.all(devices.map((d) => d.connect()));

  await shopSetup();

  // the slow consumer: connected, never reads again
  const slow = await WsClient.connect({ token: users[1].token, localAddress: '127.0.3.1' });
  slow.sock.pause();

  const senders = devices.filter((d, i) => i % 2 === 0);
  let sending = true;
  const pump = (async () => {
    while (sending) {
      for (const d of senders) d.sendNew(convs[Math.floor(Math.random() * convs.length)]);
      await sleep(SEND_EVERY_MS);
    }
  })();

  const shopping = SHOP.shoppers.map((u) => shopper(u, () => sending));

  const applied = [];
  await sleep(SETTLE_MS);
  for (let round = 0; round < ROUNDS; round++) {
    for (const f of FAULTS) {
      const what = await faults[f]();
      applied.push(f);
      log(`round ${round + 1}: ${what}; acked so far ${stats.acked}`);
      await sleep(SETTLE_MS);
    }
  }

  sending = false;
  await pump;
  await Promise.all(shopping);
  log(`sending stopped: ${stats.sent} sent, ${stats.acked} acked; waiting for the rest`);
  await waitFor('every send acknowledged', async () => devices.every((d) => d.pending.size === 0),
    { timeout: 120000, every: 250 }).catch(() => log('some sends never acknowledged (allowed; they are not counted as acked)'));

  // every device catches up, until a sync changes nothing
  const pgRows = await sql(`SELECT conversation_id || ' ' || seq || ' ' || client_msg_id FROM messages
    WHERE conversation_id IN (${convs.join(',')}) ORDER BY conversation_id, seq`);
  const stored = pgRows ? pgRows.split('\n').map((l) => { const [cid, seq, cmid] = l.split(' '); return { cid: Number(cid), seq: Number(seq), cmid }; }) : [];
  await waitFor('every device synced to PostgreSQL', async () => {
    for (const d of devices) if (!d.ws) await d.connect();
    for (const d of devices) d.sync();
    await sleep(300);
    return devices.every((d) => convs.every((cid) => {
      const last = stored.filter((m) => m.cid === cid).at(-1)?.seq ?? 0;
      return (d.cursors[cid] ?? 0) >= last;
    }));
  }, { timeout: 60000, every: 500 }).catch(() => log('some devices never caught up'));

  for (const d of devices) d.stop();
  slow.close();

  // the books
  const byCmid = new Map(stored.map((m) => [m.cmid, m]));
  let lost = 0;
  for (const [cmid, a] of acked) {
    const m = byCmid.get(cmid);
    if (!m || m.cid !== a.cid || m.seq !== a.seq) { lost++; if (lost <= 5) log(`lost: ${cmid} acked as ${a.cid}/${a.seq}, stored ${m ? `${m.cid}/${m.seq}` : 'nowhere'}`); }
  }
  const unexpected = stored.filter((m) => !sent.has(m.cmid)).length;
  const duplicates = stored.length - byCmid.size;
  let gaps = 0;
  for (const cid of convs) {
    const seqs = stored.filter((m) => m.cid === cid).map((m) => m.seq);
    seqs.forEach((s, i) => { if (s !== i + 1) gaps++; });
  }
  let undelivered = 0;
  for (const d of devices) {
    for (const m of stored) {
      if (d.view.get(m.cid)?.get(m.seq) !== m.cmid) undelivered++;
    }
  }
  const conflicts = devices.reduce((n, d) => n + d.conflicts, 0);

  const books = { lost, unexpected, gaps, undelivered, conflicts, duplicates, ...(await shopBooks()) };
  log(`faults applied: ${applied.join(', ')}`);
  log(`sent ${stats.sent} (resent ${stats.resent}), acked ${stats.acked}, stored ${stored.length}, ` +
      `redelivered-and-deduplicated ${stats.redelivered}, reconnects ${stats.reconnects}, ` +
      `delivered by long-poll ${stats.polled}`);
  let passed = 0;
  let failed = 0;
  for (const [k, v] of Object.entries(books)) {
    log(`${k} = ${v}${v === 0 ? '' : '   <-- must be 0'}`);
    if (v === 0) passed++; else failed++;
  }
  if (stats.acked === 0) { log('nothing was acknowledged: the run proves nothing'); failed++; }
  console.log(`faults: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error('faults: run failed:', e); console.log('faults: 0 passed, 1 failed'); process.exit(1); });
