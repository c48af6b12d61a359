// tests/bench/isolation.mjs: figure 7 of the benchmark, isolation between
// lanes.  Run by tests/bench/isolation.sh with a stack up (it needs the
// stack's environment: CHAT_BASE_URL, CHAT_RUN_DIR, CHAT_PG_CONNINFO,
// CHAT_PAYMENT_URL).
//
//   node tests/bench/isolation.mjs [--rate 500] [--seconds 10]
//        [--signups 50] [--checkout-rate 200] [--slow-share 0.05]
//        [--phases signups,checkouts] --chatload BIN --port P
//        [--search-rate R --search-paths FILE]
//
// A steady chat load, `rate` messages/s from 25 senders to 25 recipients
// over WebSocket (1:1 conversations), is measured from send to the
// recipient's frame, three times for `seconds` each:
//
//   alone      nothing else runs
//   signups    a burst of `signups` concurrent sign-ups (scrypt on the
//              auth lane) starts with the window
//   checkouts  checkouts at `checkout-rate`/s, open loop, a share
//              `slow-share` of them with the processor's slow card,
//              through the whole window (`chatload checkout --rates`,
//              shoppers on nginx's `port`)
//   search     the catalog's search mix (figure 5) at `search-rate`/s,
//              open loop (`chatload http --rates`, the paths of
//              `search-paths` on nginx's `port`), through the whole
//              window; only when --phases names it
//
// --phases picks what runs beside (default signups,checkouts); alone is
// always measured first.
// and printed as p50/p99 with the ratio of each p99 to the one measured
// alone in the same run (the target is <= 1.5).  What runs beside runs in a
// child process of its own (chatload, or this file with --side for the
// sign-ups), so its HTTP calls and JSON never delay the probe's event
// loop: a probe sharing its loop with 200 checkouts/s timed the loop, not
// the stack.  The probe paces by the
// clock (what is due is sent), so a late tick sends more, not fewer.
// Figures are printed, never asserted.  One line per phase:
//
//   isolation <phase> sent=N received=N p50=..ms p99=..ms ratio=..  <what ran beside>

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { api, sql, sleep } from '../integration/lib.mjs';
import { PAYMENT_URL, makeUsers } from '../integration/shop.mjs';
import { WsClient } from '../integration/ws.mjs';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const RATE = Number(args.rate ?? 500);
const SECONDS = Number(args.seconds ?? 10);
const SIGNUPS = Number(args.signups ?? 50);
const CHECKOUT_RATE = Number(args['checkout-rate'] ?? 200);
const SLOW_SHARE = Number(args['slow-share'] ?? 0.05);
const PHASES = (args.phases ?? 'signups,checkouts').split(',');
const PAIRS = 25;
const TICK_MS = 10;

const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');

// --- the chat probe --------------------------------------------------------

async function chatSetup() {
  const users = await makeUsers('isolation', 2 * PAIRS);
  const pairs = [];
  for (let i = 0; i < PAIRS; i++) {
    const [a, b] = [users[2 * i], users[2 * i + 1]];
    const c = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: b.id }, { token: a.token });
    if (c.status !== 201 && c.status !== 200) throw new Error(`conversation: ${c.status} ${c.text}`);
    const addr = (k) => `127.0.0.${2 + ((2 * i + k) % 250)}`;
    const [sender, recipient] = await Promise.all([
      WsClient.connect({ token: a.token, localAddress: addr(0) }),
      WsClient.connect({ token: b.token, localAddress: addr(1) }),
    ]);
    sender.keepMessages = false;
    recipient.keepMessages = false;
    pairs.push({ conv: c.json.conversation.id, sender, recipient });
  }
  return pairs;
}

// sends RATE/s for SECONDS; resolves to the latencies (ms) of the messages
// sent in the window that reached their recipient
async function chatWindow(pairs, label) {
  const sentAt = new Map();
  const lat = [];
  for (const p of pairs) {
    p.recipient.onMessage = (m) => {
      if (m.type !== 'message') return;
      const t = sentAt.get(m.message.client_msg_id);
      if (t !== undefined) lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    };
  }
  const tag = randomBytes(3).toString('hex');
  let n = 0;
  const start = Date.now();
  for (;;) {
    const elapsed = Date.now() - start;
    if (elapsed >= SECONDS * 1000) break;
    const due = Math.floor((elapsed * RATE) / 1000);
    while (n < due) {
      const p = pairs[n % pairs.length];
      const cmid = `iso-${label}-${tag}-${n++}`;
      sentAt.set(cmid, process.hrtime.bigint());
      p.sender.sendJson({ type: 'send', conversation_id: p.conv, client_msg_id: cmid, text: 'x' });
    }
    await sleep(TICK_MS);
  }
  await sleep(3000);      // the last ones arrive
  return { sent: n, lat };
}

// --- what runs beside ------------------------------------------------------

async function signupBurst() {
  const count = new Map();
  const t0 = Date.now();
  await Promise.all(Array.from({ length: SIGNUPS }, async (_, i) => {
    const r = await api('POST', '/api/v1/auth/register', {
      email: `iso-${randomBytes(6).toString('hex')}-${i}@bench.invalid`,
      password: 'a password for the bench', display_name: `Iso ${i}`,
    });
    count.set(r.status, (count.get(r.status) ?? 0) + 1);
  }));
  return `signups=${SIGNUPS} in ${((Date.now() - t0) / 1000).toFixed(1)}s answered ` +
    [...count].map(([s, c]) => `${s}:${c}`).join(',');
}

async function shopSetup(shoppers) {
  const users = await makeUsers('isoshop', shoppers);
  const first = Number(await sql(`
    WITH w AS (INSERT INTO warehouses (code, name, region)
               VALUES ('iso-' || left(md5(random()::text), 12), 'Isolation', 'eu') RETURNING id),
         b AS (INSERT INTO books (isbn13, title, price_cents)
               SELECT '9791' || lpad((floor(random() * 1e9))::bigint::text, 9, '0'), 'Isolation book ' || g, 900
                 FROM generate_series(1, 1000) g
               ON CONFLICT DO NOTHING RETURNING id),
         s AS (INSERT INTO stock (book_id, warehouse_id, on_hand)
               SELECT b.id, w.id, 1000000 FROM b, w RETURNING book_id)
    SELECT min(book_id) FROM s`));
  return { users, first };
}

// the checkouts beside: chatload's open loop (checkoutload.c), a process
// of its own in C: node's fetch spent more CPU per checkout than the
// stack's PostgreSQL, on the cores it was timing.  Resolves to its line.
function checkoutLoad(shop) {
  const uids = join(tmpdir(), `isolation-shoppers-${process.pid}`);
  writeFileSync(uids, shop.users.map((u) => u.id).join('\n') + '\n');
  return runChatload(['checkout', '--port', String(args.port), '--payment-port', new URL(PAYMENT_URL).port,
    '--secret', join(process.env.CHAT_RUN_DIR, 'token_secret'), '--uids', uids,
    '--shoppers', String(shop.users.length), '--books', `${shop.first}:1000`, '--measure', String(SECONDS),
    '--rates', String(CHECKOUT_RATE), '--slow-share', String(SLOW_SHARE)]);
}

// runs chatload with args; resolves to its last line of output
function runChatload(argv) {
  const child = spawn(args.chatload, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout.on('data', (d) => { text += d; });
  return new Promise((resolve, reject) => child.on('exit', (code) =>
    code === 0 ? resolve(text.trim().split('\n').at(-1)) : reject(new Error(`chatload exited ${code}`))));
}

// the search mix beside: chatload's open loop, a process of its own (C, so
// the load it offers does not depend on node's loop); resolves to its line
async function searchLoad() {
  const line = await runChatload(['http', '--port', String(args.port), '--paths', args['search-paths'],
    '--concurrency', '256', '--warmup', '0', '--measure', String(SECONDS),
    '--rates', String(args['search-rate']), '--label', 'search mix beside']);
  return line.replace(/^http /, '');
}

// --- the side process ---------------------------------------------------------

// --side signups: prints "ready", waits for a line on stdin, runs the
// burst and prints its summary as the last line
async function side() {
  console.log('ready');
  const rl = createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once('line', resolve));
  rl.close();
  console.log(await signupBurst());
  process.exit(0);
}

// starts a side process; .go() starts its load, .done resolves to its summary
async function startSide(what) {
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, '--side', what,
    '--seconds', String(SECONDS), '--signups', String(SIGNUPS),
    '--checkout-rate', String(CHECKOUT_RATE), '--slow-share', String(SLOW_SHARE)],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  const rl = createInterface({ input: child.stdout });
  const ready = new Promise((resolve) => rl.on('line', (l) => {
    lines.push(l);
    if (l === 'ready') resolve();
  }));
  const done = new Promise((resolve, reject) => child.on('exit', (code) =>
    code === 0 ? resolve(lines.at(-1)) : reject(new Error(`side ${what} exited ${code}`))));
  await Promise.race([ready, done]);
  return { go: () => child.stdin.end('go\n'), done };
}

if (args.side) await side();

// --- the run -----------------------------------------------------------------

const pairs = await chatSetup();
await chatWindow(pairs, 'warm');        // connections and caches warm

const line = (phase, w, alone, beside = '') => {
  const p99 = pct(w.lat, 99);
  const ratio = alone ? (p99 / alone).toFixed(2) : '1.00';
  console.log(`isolation ${phase.padEnd(9)} rate=${RATE}/s sent=${w.sent} received=${w.lat.length} ` +
    `p50=${ms(pct(w.lat, 50))}ms p99=${ms(p99)}ms ratio=${ratio} ${beside}`.trimEnd());
  return p99;
};

const alone = line('alone', await chatWindow(pairs, 'alone'));

if (PHASES.includes('signups')) {
  const signups = await startSide('signups');
  signups.go();
  const during = await chatWindow(pairs, 'signups');
  line('signups', during, alone, await signups.done);
}

if (PHASES.includes('checkouts')) {
  const shop = await shopSetup(Math.max(200, CHECKOUT_RATE * 4));
  const shopping = checkoutLoad(shop);
  const duringShop = await chatWindow(pairs, 'checkouts');
  line('checkouts', duringShop, alone, await shopping);
}

if (PHASES.includes('search')) {
  const searching = searchLoad();
  const duringSearch = await chatWindow(pairs, 'search');
  line('search', duringSearch, alone, await searching);
}

for (const p of pairs) { p.sender.close(); p.recipient.close(); }
process.exit(0);
