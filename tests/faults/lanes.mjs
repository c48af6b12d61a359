// The lanes under the fault run (backend/README.md, Lanes): light traffic
// on the lanes the chat devices and shoppers do not keep busy (reads,
// logins and sign-ups), and the lane fault: every worker of one lane
// SIGKILLed at once while that lane's requests are in flight.
//
// A lane fault, step by step:
//   1. the lane's live workers: the children of the supervisor that the
//      backend's log or the lane's consumer group says serve the lane
//   2. a burst of the lane's own requests, so some are in a worker's hands
//      (an orders burst pays with slow cards: killed while the processor
//      is still thinking)
//   3. SIGKILL to every one of them; then what they held (read, not
//      acknowledged: XPENDING by consumer), what waits unread in the
//      lane's streams (after the group's last-delivered-id) and how many
//      client requests wait.  The run goes on from here; the rest is
//      followed in the background:
//   4. until: the supervisor has started as many new workers on the lane
//      (their "started as consumer" log line, written once set up); a
//      probe of the lane (sent right after the kill) is answered; every
//      entry the dead workers held is acknowledged (reclaimed and
//      answered); every request of the burst has its definite answer
//   5. one line: what was killed, how much was in flight, how long until
//      the lane answered again.  Anything that never happened (within five
//      minutes) makes the lane fault count in the book lanes_not_recovered.
//
// Also here: the lanes' depth as the edge sees it (chat_lane_depth in its
// /metrics) against what really waits, the book lane_depth_overstated.

import { readFileSync } from 'node:fs';
import { BASE, logTail, RUN_DIR, sleep, sql, waitFor } from '../integration/lib.mjs';
import { call, LANES, laneStats, untilAnswered } from './client.mjs';
import { log, runTag } from './common.mjs';
import { rcmd, rcmdEachMaster } from './resp.mjs';
import { checkoutOnce, putCart, refundLine, refundOne, restock, shipOne, SHOP } from './shoppers.mjs';
import { CARDS } from '../integration/shop.mjs';

const ok = (r) => r.status === 200;
const pick = (a) => a[Math.floor(Math.random() * a.length)];
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

/* ------------------------------------------------------------------ */
/* traffic                                                             */

const authStats = { logins: 0, loginsRefused: 0, signups: 0 };
const signups = new Map();      // email -> acknowledged (201, or 409 after a retry)
const accounts = [];            // {email, password} of acknowledged sign-ups: who logs in
const PASSWORD = 'correct horse battery';
let nextAuthAddress = 0;
// logins come from addresses of their own: the edge limits logins per address
const authAddress = () => `127.0.4.${1 + (nextAuthAddress++ % 250)}`;

function read(ctx, u = pick(ctx.users)) {
  const paths = [
    `/api/v1/conversations/${pick(ctx.convs)}/messages?after_seq=${Math.floor(Math.random() * 50)}&limit=50`,
    '/api/v1/conversations',
    '/api/v1/users/me',
  ];
  const path = pick(paths);
  return untilAnswered('read', () => call('GET', path, { token: u.token }), ok);
}

async function login() {
  if (!accounts.length) return signup();
  const u = pick(accounts);
  const r = await untilAnswered('auth', () => call('POST', '/api/v1/auth/login',
    { body: { email: u.email, password: u.password }, address: authAddress() }), (a) => [200, 401].includes(a.status));
  if (r?.status === 200) authStats.logins++;
  else if (r) { authStats.loginsRefused++; log(`login of ${u.email} refused: ${r.status} ${r.text}`); }
  return r;
}

async function signup() {
  const email = `chaos-signup-${runTag}-${++authStats.signups}@example.com`;
  signups.set(email, false);
  let tries = 0;
  const r = await untilAnswered('auth', () => { tries++; return call('POST', '/api/v1/auth/register',
    { body: { email, password: PASSWORD, display_name: 'chaos signup' }, address: authAddress() }); },
  (a) => [201, 400, 409].includes(a.status));
  // 409 after a retry: the first attempt made the account, its answer was lost
  if (r?.status === 201 || (r?.status === 409 && tries > 1)) {
    signups.set(email, true);
    accounts.push({ email, password: PASSWORD });
  }
  else if (r) log(`sign-up ${email} answered ${r.status} ${r.text}`);
  return r;
}

// reads of three users, every ~200 ms each
export async function readers(ctx, running) {
  await Promise.all(ctx.users.slice(0, 3).map(async (u) => {
    while (running()) { await read(ctx, u); await sleep(100 + Math.random() * 200); }
  }));
}

// a login about every 3 s (of an account its sign-ups made), every fourth
// turn a sign-up instead (each is ~0.2 s of scrypt on a lane that runs at
// nice 19: light on purpose, and one at a time)
export async function logins(running) {
  for (let i = 0; running(); i++) {
    if (i % 4 === 0) await signup(); else await login();
    await sleep(2500 + Math.random() * 1000);
  }
}

// the auth books: an acknowledged sign-up is an account; a login with the
// right password is never refused
export async function authBooks() {
  const made = new Set((await sql(`SELECT email FROM users WHERE email LIKE 'chaos-signup-${runTag}-%'`))
    .split('\n').filter(Boolean));
  let lost = 0;
  for (const [email, ackd] of signups) {
    if (ackd && !made.has(email)) { lost++; log(`sign-up ${email} acknowledged, no account`); }
  }
  log(`auth: ${authStats.logins} logins, ${[...signups.values()].filter(Boolean).length}/${signups.size} sign-ups acknowledged`);
  return { signups_lost: lost, logins_refused: authStats.loginsRefused };
}

/* ------------------------------------------------------------------ */
/* the lane fault                                                      */

// per lane: a probe (one request of the lane, harmless, sent right after
// the kill: its answer says the lane works again) and a burst (requests
// of the lane fired just before the kill: prepare() runs first)
const LANE = {
  chat: {
    // the devices send all the time; the probe moves a read marker
    probe: (ctx) => call('POST', `/api/v1/conversations/${ctx.convs[0]}/read`,
      { body: { seq: 1 }, token: ctx.users[0].token }),
    burst: () => [],
  },
  read: {
    probe: (ctx) => call('GET', `/api/v1/conversations/${ctx.convs[0]}/messages?after_seq=0&limit=1`,
      { token: ctx.users[0].token }),
    burst: (ctx) => Array.from({ length: 6 }, () => read(ctx)),
  },
  auth: {
    // nobody's address: 401 once the (dummy) hash is checked
    probe: () => call('POST', '/api/v1/auth/login',
      { body: { email: `chaos-nobody-${runTag}@example.com`, password: PASSWORD }, address: authAddress() }),
    answered: (r) => r.status === 401,
    burst: () => [login(), login(), signup()],
  },
  orders: {
    probe: (ctx) => call('PUT', `/api/v1/cart/items/${SHOP.books[1]}`,
      { body: { quantity: 1 }, token: ctx.probeShopper.token }),
    // the extra shoppers' carts first, then their checkouts with slow
    // cards: the workers are waiting on the processor when they die
    prepare: () => Promise.all(SHOP.extra.map((u) => putCart(u, pick(SHOP.books.slice(1))))),
    burst: () => SHOP.extra.map((u, i) => checkoutOnce(u, i % 2 ? CARDS.slowDecline : CARDS.slow)),
    inFlightMs: 400,
  },
  admin: {
    probe: () => call('GET', '/api/v1/admin/warehouses', { token: SHOP.admin.token }),
    // restocks, a ship, a refund of a line and one in full: killed while
    // the refunds wait on the processor, they must still happen once
    burst: () => [restock(), restock(), restock(), shipOne(), refundLine(), refundOne()],
  },
};

export const laneFaultStats = { notRecovered: 0 };
const recoveries = [];          // the lane faults' recoveries, awaited before the books

// how long a lane may take to come back before the fault counts: generous,
// this is a liveness bound, not a timing (on two cores shared with other
// work, the auth lane's scrypt at nice 19 may wait a minute or two)
const LIMIT_MS = 300000;

async function laneStreams(lane) {
  return (await rcmd('KEYS', `chat:cmd:${lane}:*`)).sort();
}

// a live child of the backend's supervisor (/proc/<pid>/stat: ppid is
// the fourth field)
function workerAlive(pid) {
  try {
    const supervisor = Number(readFileSync(`${RUN_DIR}/backend/backend.pid`, 'utf8'));
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]) === supervisor;
  } catch {
    return false;
  }
}

const STARTED = /^(\S+) \[info\] \S+ (\d+): started as consumer \S+ on \d+ shards of lane (\w+)$/gm;

// the workers of a lane: the live children of the supervisor whose last
// "started as consumer ... of lane <lane>" line in the backend's log names
// it, and the live consumers of its streams (named <host>:<pid>, as
// lanePids in ../integration/lib.mjs).  Both, because Redis 7.0 makes a
// consumer only when it is given an entry: a worker of an idle lane, or
// one restarted with Redis, is not a consumer yet.
export async function laneWorkers(lane) {
  const laneOf = new Map();
  for (const m of readFileSync(`${RUN_DIR}/backend/backend.log`, 'utf8').matchAll(STARTED)) {
    laneOf.set(Number(m[2]), m[3]);
  }
  const pids = new Set([...laneOf].filter(([, l]) => l === lane).map(([pid]) => pid));
  for (const stream of await laneStreams(lane)) {
    for (const c of await rcmd('XINFO', 'CONSUMERS', stream, 'workers')) {
      pids.add(Number(c[1].split(':').at(-1)));
    }
  }
  return [...pids].filter(workerAlive).sort((a, b) => a - b);
}

// Per lane, in one script (one moment): over its streams, the workers
// group's pending count, its lag as XINFO GROUPS reports it (Redis 7.0's
// can stay wrong for good: see README.md, Redis's lag after a crash), and the entries
// really unread (after the group's last-delivered-id).
const DEPTH_SCRIPT = `
local out = {}
for i, lane in ipairs(ARGV) do
  local pending, lag, unread = 0, 0, 0
  for _, k in ipairs(redis.call('KEYS', 'chat:cmd:' .. lane .. ':*')) do
    local groups = redis.pcall('XINFO', 'GROUPS', k)
    if type(groups) == 'table' and groups.err == nil then
      for _, g in ipairs(groups) do
        local f = {}
        for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
        if f['name'] == 'workers' then
          pending = pending + f['pending']
          lag = lag + (tonumber(f['lag']) or 0)
          unread = unread + #redis.call('XRANGE', k, '(' .. f['last-delivered-id'], '+', 'COUNT', 100000)
        end
      end
    end
  end
  out[i] = {pending, lag, unread}
end
return out`;

// lane -> {pending, lag, unread}; on a cluster, each master's own
// streams, added up
export async function laneDepths(lanes = LANES) {
  const all = await rcmdEachMaster('EVAL', DEPTH_SCRIPT, '0', ...lanes);
  return new Map(lanes.map((lane, i) => {
    const [pending, lag, unread] = all.reduce((sum, rows) => sum.map((v, j) => v + rows[i][j]), [0, 0, 0]);
    return [lane, { pending, lag, unread }];
  }));
}

// Each lane's depth in the view of the nginx worker that answers, the one
// it refuses commands by (503 overloaded at its bound; ngx_chat_lanes.c)
async function edgeDepths() {
  const text = await (await fetch(`${BASE}/metrics`)).text();
  return new Map([...text.matchAll(/^chat_lane_depth\{lane="([a-z]+)"\} (\d+)$/gm)]
    .map((m) => [m[1], Number(m[2])]));
}

// A depth above what really waits (pending + unread) makes the edge refuse
// work it has room for.  Logged per lane, with Redis's own lag beside it;
// the count of lanes whose depth at the edge is above the real one.
export async function laneDepthBook(when) {
  let overstated = 0;
  await sleep(500);       // the edge's view is a few rounds old at most
  const edge = await edgeDepths();
  for (const [lane, d] of await laneDepths()) {
    const seen = edge.get(lane);
    if (seen === undefined) continue;       // a lane whose pool published no limits
    if (seen > d.pending + d.unread) {
      overstated++;
      log(`lane ${lane} ${when}: the edge counts ${seen} commands, ${d.pending} pending and ${d.unread} unread ` +
          `really wait (Redis's lag says ${d.lag}): ${seen - d.pending - d.unread} that do not exist against its queue bound`);
    }
  }
  return overstated;
}

// the entries of the lane held by the given workers (read, not acknowledged)
async function heldBy(lane, pids) {
  const out = [];
  for (const stream of await laneStreams(lane)) {
    // extended form: [id, consumer, idle ms, deliveries] per entry
    for (const [id, consumer] of await rcmd('XPENDING', stream, 'workers', '-', '+', '10000')) {
      if (pids.includes(Number(consumer.split(':').at(-1)))) out.push({ stream, id });
    }
  }
  return out;
}

// how many of the entries are still pending (not acknowledged)
async function stillHeld(entries) {
  let n = 0;
  for (const stream of new Set(entries.map((e) => e.stream))) {
    const pending = new Set((await rcmd('XPENDING', stream, 'workers', '-', '+', '10000')).map((e) => e[0]));
    n += entries.filter((e) => e.stream === stream && pending.has(e.id)).length;
  }
  return n;
}

// the workers the supervisor started on the lane since the tail was made
// (the worker's own "started as consumer ... of lane X" log line, written
// once it is set up) and still alive, with the time of the last of them
function newWorkers(lane, victims, tail) {
  const started = [...tail.read().matchAll(STARTED)].filter((m) => m[3] === lane)
    .map((m) => ({ at: Date.parse(m[1]), pid: Number(m[2]) }))
    .filter((w) => !victims.includes(w.pid) && workerAlive(w.pid));
  if (started.length < victims.length) return null;
  return { pids: started.map((w) => w.pid), at: Math.max(...started.map((w) => w.at)) };
}

// ctx: {users, convs, probeShopper, chatWaiting()}.  Kills, measures what
// was in flight and returns at once with what it did; the lane's recovery
// is followed in the background and its one-line summary logged when the
// lane is back (awaitLaneRecoveries() waits for all of them).
export async function laneFault(lane, ctx) {
  const spec = LANE[lane];
  const victims = await laneWorkers(lane);
  if (victims.length === 0) {
    laneFaultStats.notRecovered++;
    return `lane ${lane}: NO live worker found on the lane to kill`;
  }
  await spec.prepare?.();
  const burst = Promise.all(spec.burst(ctx));
  await sleep(spec.inFlightMs ?? 150);

  const tail = logTail('backend/backend.log');
  const t0 = Date.now();
  for (const pid of victims) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ }
  }
  const clients = laneStats[lane].inflight + (lane === 'chat' ? ctx.chatWaiting() : 0);
  const probe = untilAnswered(lane, () => spec.probe(ctx), spec.answered ?? ok, { limitMs: LIMIT_MS })
    .then((r) => (r ? Date.now() - t0 : null));
  const held = await heldBy(lane, victims);
  const { unread } = (await laneDepths([lane])).get(lane);
  const what = `lane ${lane}: SIGKILLed its ${victims.length} worker${victims.length > 1 ? 's' : ''} ` +
    `(${victims.join(' ')}) with ${held.length + unread} commands in flight (${held.length} read and ` +
    `unacknowledged, ${unread} queued unread; ${clients} client requests waiting)`;

  recoveries.push((async () => {
    const [restarted, answeredAfter, reclaimedAfter, burstAnswers] = await Promise.all([
      waitFor(`new workers on lane ${lane}`, async () => newWorkers(lane, victims, tail),
        { timeout: LIMIT_MS, every: 250 }).catch(() => null),
      probe,
      waitFor(`the entries of lane ${lane}'s dead workers acknowledged`, async () => (await stillHeld(held)) === 0,
        { timeout: LIMIT_MS, every: 250 }).then(() => Date.now() - t0, () => null),
      burst,
    ]);
    const unansweredBurst = burstAnswers.filter((r) => !r).length;
    const why = [];
    if (!restarted) why.push('the supervisor started no new workers');
    if (answeredAfter === null) why.push('its probe never got an answer');
    if (reclaimedAfter === null) why.push(`${await stillHeld(held)} entries the dead workers held were never acknowledged`);
    if (unansweredBurst) why.push(`${unansweredBurst} requests of its burst never got a definite answer`);
    log(`${what}; back: ` +
      (restarted ? `${restarted.pids.length} new workers (${restarted.pids.join(' ')}) up after ` +
        `${secs(restarted.at - t0)}, ` : '') +
      (answeredAfter !== null ? `answering again after ${secs(answeredAfter)}, ` : '') +
      (reclaimedAfter !== null ? `the ${held.length} held reclaimed and acknowledged after ${secs(reclaimedAfter)}` : '') +
      (burstAnswers.length && !unansweredBurst ? `; its burst of ${burstAnswers.length} answered` : '') +
      (why.length ? `; NOT RECOVERED: ${why.join('; ')}` : ''));
    if (why.length) laneFaultStats.notRecovered++;
  })().catch((e) => { laneFaultStats.notRecovered++; log(`lane ${lane}: following its recovery failed: ${e.stack}`); }));
  return what;
}

export function awaitLaneRecoveries() { return Promise.all(recoveries); }
