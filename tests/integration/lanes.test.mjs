// Lanes (protocol/chat_lanes.h): every kind of work has its own
// streams and its own pool, and a lane that is full answers 503
// overloaded with Retry-After at once instead of a 504 after the command
// timeout, while the other lanes go on answering normally.
//
// The backlog is made by hand: auth.login envelopes for an unknown e-mail
// (each costs a dummy scrypt, ~0.2 s; the password sealed as the edge
// seals it, or the worker refuses it at once) XADDed straight onto the
// auth lane's streams, more than its queue bound (64 by default), answered to a
// gateway stream nobody reads.  Afterwards the group skips the entries no
// worker has taken yet (XGROUP SETID to the end, with the entries-read
// count that keeps its lag right), so the rest of the suite does not wait
// behind them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { api, lanePids, logTail, redis, registerUser, sealField, sleep, sql, uniqueEmail, waitFor, BASE, STREAM_SHARDS } from './lib.mjs';

const SHARDS = STREAM_SHARDS;
const BACKLOG = 120;

async function fillAuthLane() {
  const gw = `chat:gw:{itest-void-${randomBytes(4).toString('hex')}}`;
  const ids = [];
  for (let i = 0; i < BACKLOG; i++) {
    const stream = `chat:cmd:auth:{${i % SHARDS}}`;
    const id = await redis('XADD', stream, '*', 'v', '1',
      'key', `itest:lanes:${randomBytes(8).toString('hex')}`, 'op', 'auth.login',
      'uid', '0', 'role', '', 'gw', gw, 'req', String(i + 1), 'ts', String(Date.now()),
      'body', JSON.stringify({ email: uniqueEmail('nobody'),
        password: sealField({ dir: 'cmd', op: 'auth.login' }, 'password', 'whatever it is') }));
    ids.push([stream, id]);
  }
  return ids;
}

async function drain() {
  for (let s = 0; s < SHARDS; s++) {
    const stream = `chat:cmd:auth:{${s}}`;
    const info = (await redis('XINFO', 'STREAM', stream)).split('\n');
    const added = info[info.indexOf('entries-added') + 1];
    await redis('XGROUP', 'SETID', stream, 'workers', '$', 'ENTRIESREAD', added);
  }
}

async function overloadedTotal() {
  const r = await fetch(`${BASE}/metrics`);
  const m = (await r.text()).match(/^chat_bus_overloaded_total (\d+)$/m);
  return Number(m?.[1] ?? 0);
}

test('a full lane answers 503 overloaded with Retry-After at once; the other lanes answer normally', async () => {
  const [alice, bob] = [await registerUser('lanes-a'), await registerUser('lanes-b')];
  const auth = { token: alice.token };
  const conv = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: bob.user.id }, auth);
  assert.ok(conv.status === 201 || conv.status === 200, conv.text);
  const before = await overloadedTotal();

  await fillAuthLane();
  try {
    // the edge learns the depth within its poll interval (200 ms)
    const refused = await waitFor('the auth lane to refuse', async () => {
      const r = await api('POST', '/api/v1/auth/login', { email: alice.email, password: alice.password });
      return r.status === 503 ? r : null;
    }, { every: 100, timeout: 5000 });

    assert.equal(refused.json.error.code, 'overloaded');
    assert.match(refused.headers.get('content-type'), /application\/json/);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, `Retry-After: ${refused.headers.get('retry-after')}`);

    // at once: well inside the auth lane's 30 s timeout, not a late 504
    const t0 = Date.now();
    const again = await api('POST', '/api/v1/auth/register',
      { email: uniqueEmail('refused'), password: 'long enough pw', display_name: 'R' });
    assert.equal(again.status, 503, again.text);
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);

    // the chat and read lanes are not touched by the auth backlog
    const sent = await api('POST', `/api/v1/conversations/${conv.json.conversation.id}/messages`,
      { client_msg_id: `lanes-${randomBytes(4).toString('hex')}`, text: 'still here' }, auth);
    assert.equal(sent.status, 201, sent.text);
    const list = await api('GET', '/api/v1/conversations', undefined, auth);
    assert.equal(list.status, 200, list.text);
    assert.ok(list.json.conversations.some((c) => c.id === conv.json.conversation.id));

    assert.ok(await overloadedTotal() >= before + 2, 'chat_bus_overloaded_total counts the refusals');
  } finally {
    await drain();
  }

  // once the backlog is gone the lane takes commands again
  const ok = await waitFor('a login after the backlog', async () => {
    const r = await api('POST', '/api/v1/auth/login', { email: alice.email, password: alice.password });
    return r.status === 200 ? r : null;
  }, { every: 300, timeout: 20000 });
  assert.equal(ok.json.user.id, alice.user.id);
});

// The other bound: a lane whose pool has stopped draining (a stall, a core
// taken by something else) holds a few commands, far under its depth
// bound, but they wait; once the oldest has waited the lane's wait bound
// (half its timeout unless set), new ones are refused at once instead of
// joining a queue that ends in 504s.  The read lane's pool is stopped for
// it (its timeout is the shortest), so the test lasts about that bound.
test('a lane whose oldest command has waited its wait bound answers 503 overloaded at once, under its depth bound', async () => {
  const [alice, bob] = [await registerUser('lanes-wait-a'), await registerUser('lanes-wait-b')];
  const auth = { token: alice.token };
  const conv = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: bob.user.id }, auth);
  assert.ok(conv.status === 201 || conv.status === 200, conv.text);
  const limits = await redis('HGET', 'chat:lanes', 'read');
  const wait = Number(/ wait=(\d+)/.exec(limits)?.[1]);
  const timeout = Number(/ timeout=(\d+)/.exec(limits)?.[1]);
  assert.ok(wait > 0 && wait < timeout, `the read lane's limits: ${limits}`);

  const pids = await lanePids('read');
  assert.ok(pids.length > 0);
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  let first;
  try {
    // the first read waits for the pool; until it has waited the bound,
    // the lane takes more (they queue behind it)
    const t0 = Date.now();
    first = api('GET', '/api/v1/conversations', undefined, auth);
    const early = await api('GET', '/api/v1/conversations', undefined,
      { ...auth, signal: AbortSignal.timeout(300) }).catch(() => null);
    assert.equal(early, null, 'a read within the bound is queued, not refused');

    const refused = await waitFor('the read lane to refuse', async () => {
      const r = await api('GET', '/api/v1/conversations', undefined,
        { ...auth, signal: AbortSignal.timeout(300) }).catch(() => null);
      return r?.status === 503 ? r : null;
    }, { every: 100, timeout: wait + 5000 });
    assert.ok(Date.now() - t0 >= wait - 300, `refused after ${Date.now() - t0} ms, the bound is ${wait} ms`);
    assert.equal(refused.json.error.code, 'overloaded');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, `Retry-After: ${refused.headers.get('retry-after')}`);

    // by its wait, not its depth: a few commands against a bound of thousands
    // (each nginx worker polls on its own: the one answering /metrics may
    // be a poll behind the one that refused)
    const gauge = (m, name) => Number(new RegExp(`^${name}\\{lane="read"\\} ([\\d.]+)$`, 'm').exec(m)?.[1]);
    const m = await waitFor('/metrics to show the wait', async () => {
      const text = await (await fetch(`${BASE}/metrics`)).text();
      return gauge(text, 'chat_lane_waited_seconds') * 1000 >= wait ? text : null;
    }, { every: 100, timeout: 3000 });
    assert.ok(gauge(m, 'chat_lane_depth') < gauge(m, 'chat_lane_queue_limit'), m);
    assert.equal(gauge(m, 'chat_lane_wait_limit_seconds') * 1000, wait);

    // the other lanes answer normally
    const sent = await api('POST', `/api/v1/conversations/${conv.json.conversation.id}/messages`,
      { client_msg_id: `lanes-wait-${randomBytes(4).toString('hex')}`, text: 'still here' }, auth);
    assert.equal(sent.status, 201, sent.text);
  } finally {
    for (const pid of pids) process.kill(pid, 'SIGCONT');
  }

  // what was queued is answered, not lost, and the lane takes reads again
  assert.equal((await first).status, 200);
  const ok = await waitFor('a read after the stall', async () => {
    const r = await api('GET', '/api/v1/conversations', undefined, auth);
    return r.status === 200 ? r : null;
  }, { every: 200, timeout: 10000 });
  assert.ok(ok.json.conversations.some((c) => c.id === conv.json.conversation.id));
});

test('each lane has its own streams, and its pool publishes its limits', async () => {
  const lanes = (await redis('HGETALL', 'chat:lanes')).split('\n').filter(Boolean);
  const limits = new Map();
  for (let i = 0; i + 1 < lanes.length; i += 2) limits.set(lanes[i], lanes[i + 1]);
  for (const lane of ['chat', 'read', 'auth', 'orders', 'admin']) {
    assert.match(limits.get(lane) ?? '', /^queue=\d+ timeout=\d+ retry=\d+ wait=[1-9]\d* shards=\d+ keyid=[1-9]\d* presence_ttl=[1-9]\d*$/, `lane ${lane}`);
    assert.equal(await redis('EXISTS', `chat:cmd:${lane}:{0}`), '1', `stream of lane ${lane}`);
  }

  // a message goes to the chat lane's streams, a login to the auth lane's
  const u = await registerUser('lanes-route');
  // entries ever added (the workers trim what they finished at once, so
  // the length says nothing about what passed)
  const len = async (lane) => {
    let n = 0;
    for (let s = 0; s < SHARDS; s++) {
      const info = (await redis('XINFO', 'STREAM', `chat:cmd:${lane}:{${s}}`)).split('\n');
      n += Number(info[info.indexOf('entries-added') + 1]);
    }
    return n;
  };
  const [chat0, read0] = [await len('chat'), await len('read')];
  const r = await api('GET', '/api/v1/conversations', undefined, { token: u.token });
  assert.equal(r.status, 200);
  assert.equal(await len('chat'), chat0, 'a read does not touch the chat lane');
  assert.ok(await len('read') > read0, 'a read goes to the read lane');
});


test('each lane\'s PostgreSQL sessions carry its name, so pg_stat_activity shows which kind of work holds one', async () => {
  // every worker connects when it starts; a lane's processes are its sessions
  const names = await waitFor('a session per lane', async () => {
    const rows = (await sql("SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name LIKE 'chat-backend %'")).split('\n');
    return ['chat', 'read', 'auth', 'orders', 'admin'].every((l) => rows.includes(`chat-backend ${l} lane`)) && rows;
  });
  assert.ok(!names.includes('chat-backend worker'), 'no session is left unnamed');
});

test('a lane whose pool disagrees with the edge on shards is refused 503 misconfigured, at once, and logged', async () => {
  const a = await registerUser('lanes-admin');
  await sql("UPDATE users SET role = 'admin' WHERE id = :'p1'", a.user.id);
  const admin = await api('POST', '/api/v1/auth/login', { email: a.email, password: a.password });
  assert.equal(admin.status, 200, admin.text);
  const auth = { token: admin.json.token };
  assert.equal((await api('GET', '/api/v1/admin/warehouses', undefined, auth)).status, 200);

  // the admin pool stops (so its heartbeat does not publish its own limits
  // over ours) and its published limits claim another shard count
  const pids = await lanePids('admin');
  assert.ok(pids.length > 0);
  const published = await redis('HGET', 'chat:lanes', 'admin');
  const errors = logTail('nginx/error.log');
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  try {
    await redis('HSET', 'chat:lanes', 'admin', published.replace(/shards=\d+/, 'shards=99'));
    // each nginx worker sees it at its next lanes poll (200 ms) and says so
    await waitFor('the error log says why', () =>
      /lane "admin" refused until the edge and the backend agree: the backend reads 99 command stream shards/
        .test(errors.read()));
    await sleep(500);
    const refused = await api('GET', '/api/v1/admin/warehouses', undefined, auth);
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.json.error.code, 'misconfigured');
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    // at once, not after the command timeout: the stopped pool never saw it
    const t0 = Date.now();
    assert.equal((await api('GET', '/api/v1/admin/warehouses', undefined, auth)).status, 503);
    assert.ok(Date.now() - t0 < 2000);
    // the other lanes are unaffected
    assert.equal((await api('GET', '/api/v1/users/me', undefined, auth)).status, 200);
    const m = await (await fetch(`${BASE}/metrics`)).text();
    assert.match(m, /^chat_lane_misconfigured\{lane="admin"\} 1$/m);
  } finally {
    await redis('HSET', 'chat:lanes', 'admin', published);
    for (const pid of pids) process.kill(pid, 'SIGCONT');
  }
  await waitFor('the admin lane back', async () =>
    (await api('GET', '/api/v1/admin/warehouses', undefined, auth)).status === 200);
});

test('a pool whose presence TTL differs from the edge\'s is warned about once and shown in /metrics, not refused', async () => {
  const edgeTtl = Number(process.env.CHAT_PRESENCE_TTL_MS ?? 45000);
  const gauge = async () => {
    const m = (await (await fetch(`${BASE}/metrics`)).text()).match(/^chat_presence_ttl_mismatch (\d)$/m);
    return Number(m?.[1]);
  };
  const published = await redis('HGET', 'chat:lanes', 'admin');
  assert.match(published, new RegExp(` presence_ttl=${edgeTtl}$`), 'the pool publishes the TTL it runs with');
  assert.equal(await gauge(), 0);

  // the admin pool stops (its heartbeat would publish its own limits over
  // ours) and its published limits claim another presence TTL
  const pids = await lanePids('admin');
  assert.ok(pids.length > 0);
  const errors = logTail('nginx/error.log');
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  try {
    await redis('HSET', 'chat:lanes', 'admin', published.replace(/presence_ttl=\d+/, 'presence_ttl=59000'));
    await waitFor('the error log warns', () =>
      new RegExp(`\\[warn\\].*disagree on presence: the backend's presence TTL is 59000 ms, this edge's ${edgeTtl} ms`).test(errors.read()));
    await waitFor('the gauge', async () => (await gauge()) === 1);
    // a warning, not a refusal: the lane is not marked misconfigured
    const m = await (await fetch(`${BASE}/metrics`)).text();
    assert.match(m, /^chat_lane_misconfigured\{lane="admin"\} 0$/m);
    // once per change: every nginx worker warns once, not once per poll
    await sleep(1000);
    const warnings = errors.read().match(/disagree on presence/g).length;
    assert.ok(warnings <= 2, `${warnings} warnings from the stack's 2 nginx workers`);
  } finally {
    await redis('HSET', 'chat:lanes', 'admin', published);
    for (const pid of pids) process.kill(pid, 'SIGCONT');
  }
  await waitFor('the gauge back at 0', async () => (await gauge()) === 0);
  await waitFor('the log says they agree again', () => /agree on the presence TTL again/.test(errors.read()));
});
