// Presence, typing indicators, read and delivery receipts through the
// whole stack.  What issue 6 asks: a user coming online is told to those
// who share a conversation (one they accepted: consent.test.mjs has the
// requests) and to nobody else (who cannot ask either); a
// killed nginx worker's user goes offline within the TTL bound; typing
// reaches the other member, expires, is rate-limited and never touches
// PostgreSQL; markers only move forward and are shared by a user's
// devices; a 500-member group sends its sender a bounded number of
// receipts.  The stack runs with PRESENCE_TTL_MS=6000 and
// PRESENCE_GRACE_MS=1000 (tests/run.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { api, redis, sql, registerUsers, registerUser, acceptAll, waitFor, sleep, tokenSecret, workerPids, RUN_DIR } from './lib.mjs';
import { WsClient } from './ws.mjs';

const TTL_MS = Number(process.env.CHAT_PRESENCE_TTL_MS || 45000);

let alice, bob, carol, dave, erin;
let direct;                    // alice <-> bob
const open = new Set();

before(async () => {
  [alice, bob, carol, dave, erin] = await registerUsers('presence', 5, 5);
  const r = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(bob) }, alice);
  assert.equal(r.status, 201, r.text);
  direct = r.json.conversation;
  // a request until Bob accepts (consent.test.mjs): Alice sees nothing of
  // Bob before, everything the tests below expect after
  assert.equal((await presence(bob, alice)).status, 404);
  const a = await http('POST', `/api/v1/conversations/${direct.id}/accept`, undefined, bob);
  assert.equal(a.status, 200, a.text);
});

after(() => {
  for (const ws of open) ws.close();
});

/* helpers */

const http = (method, path, body, who) => api(method, path, body, { token: who.token });
const uid = (u) => u.user.id;

let nextAddress = 0;
async function device(who) {
  const ws = await WsClient.connect({ token: who.token, localAddress: `127.0.0.${2 + (nextAddress++ % 250)}` });
  open.add(ws);
  return ws;
}

function closeDevice(ws) {
  ws.close();
  open.delete(ws);
}

const presenceOf = (ws, who) => ws.messages.filter((m) => m.type === 'presence' && m.user_id === uid(who));
const typingOf = (ws, who) => ws.messages.filter((m) => m.type === 'typing' && m.user_id === uid(who));
const receipts = (ws, cid) => ws.messages.filter((m) => m.type === 'receipt' && m.conversation_id === cid);

async function presence(of, asker) {
  return http('GET', `/api/v1/users/${uid(of)}/presence`, undefined, asker);
}

async function waitStatus(of, asker, status, timeout = 20000) {
  return waitFor(`${of.user.display_name} ${status}`, async () => {
    const r = await presence(of, asker);
    return r.status === 200 && r.json.status === status ? r.json : null;
  }, { timeout, every: 100 });
}

// the nginx worker pids a user's connections live on, from the registry
async function nginxPidsOf(who) {
  const fields = (await redis('HKEYS', `chat:online:{${uid(who)}}`)).split('\n').filter(Boolean);
  // chat:gw:{<host>:<pid>:<random>}
  return fields.map((f) => Number(/^chat:gw:\{.*:(\d+):[0-9a-f]+\}$/.exec(f)?.[1])).filter(Boolean);
}

/* presence */

test('Alice comes online: Bob (shares a conversation) is told, Carol (shares none) is not and cannot ask', async () => {
  const bobWs = await device(bob);
  const carolWs = await device(carol);

  let r = await presence(alice, bob);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'offline');

  const aliceWs = await device(alice);
  const ev = await bobWs.waitFor(() => presenceOf(bobWs, alice).find((m) => m.status === 'online'),
    'the online event', 20000);
  assert.equal(typeof ev.last_seen, 'string');
  assert.ok(!Number.isNaN(Date.parse(ev.last_seen)), ev.last_seen);

  r = await waitStatus(alice, bob, 'online');
  assert.equal(r.user_id, uid(alice));

  // Carol: 404 exactly like a user that does not exist, and no event
  r = await presence(alice, carol);
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.code, 'not_found');
  r = await http('GET', '/api/v1/users/9007199254740991/presence', undefined, carol);
  assert.equal(r.status, 404, r.text);
  // anyone may ask about themselves
  r = await presence(alice, alice);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'online');

  // Alice leaves: after the grace Bob hears offline, Carol still nothing
  closeDevice(aliceWs);
  const off = await bobWs.waitFor(() => presenceOf(bobWs, alice).find((m) => m.status === 'offline'),
    'the offline event', 20000);
  assert.ok(Date.parse(off.last_seen) >= Date.parse(ev.last_seen));
  r = await waitStatus(alice, bob, 'offline');
  assert.equal(r.last_seen, off.last_seen);
  assert.equal(presenceOf(carolWs, alice).length, 0, 'Carol heard about Alice');
  // last_seen is kept in PostgreSQL
  assert.equal(await sql(`SELECT presence, last_seen IS NOT NULL FROM users WHERE id = ${uid(alice)}`), 'offline|t');

  closeDevice(bobWs);
  closeDevice(carolWs);
});

test('a flapping connection is coalesced: reconnects within the grace tell nobody', async () => {
  const daveConv = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(dave) }, erin);
  assert.equal(daveConv.status, 201, daveConv.text);
  // Dave answers Erin's request: his presence is hers to see from now on
  const a = await http('POST', `/api/v1/conversations/${daveConv.json.conversation.id}/messages`,
    { client_msg_id: 'hi', text: 'hi Erin' }, dave);
  assert.equal(a.status, 201, a.text);
  const erinWs = await device(erin);

  let d = await device(dave);
  await erinWs.waitFor(() => presenceOf(erinWs, dave).some((m) => m.status === 'online'), 'online', 20000);
  const before = presenceOf(erinWs, dave).length;

  for (let i = 0; i < 10; i++) {
    closeDevice(d);
    await sleep(50);
    d = await device(dave);
  }
  // well past the grace: still online, and not a single event more
  await sleep(3000);
  assert.equal((await presence(dave, erin)).json.status, 'online');
  assert.equal(presenceOf(erinWs, dave).length, before, JSON.stringify(presenceOf(erinWs, dave)));

  closeDevice(d);
  await erinWs.waitFor(() => presenceOf(erinWs, dave).some((m) => m.status === 'offline'), 'offline', 20000);
  closeDevice(erinWs);
});

test('Alice\'s nginx worker is killed: she shows offline within the presence TTL bound', async () => {
  const aliceWs = await device(alice);
  await waitStatus(alice, bob, 'online');

  const pids = await nginxPidsOf(alice);
  assert.equal(pids.length, 1, `registry fields of alice: ${pids}`);
  const killedAt = Date.now();
  process.kill(pids[0], 'SIGKILL');

  // nobody ran any code for Alice: the sweeper finds her entry unrefreshed
  const r = await waitStatus(alice, bob, 'offline', TTL_MS * 3 + 10000);
  const took = Date.now() - killedAt;
  assert.ok(took <= TTL_MS + 5000, `offline after ${took} ms with a TTL of ${TTL_MS} ms`);
  assert.equal(typeof r.last_seen, 'string');
  await waitFor('the connection to drop', () => aliceWs.closed, { timeout: 10000 });
  open.delete(aliceWs);

  // the master started a new worker: the edge still works
  await waitFor('nginx to answer again', async () => (await presence(alice, bob)).status === 200);
});

/* typing */

test('typing from Alice reaches Bob, expires by itself, and never reaches PostgreSQL', async () => {
  const aliceWs = await device(alice);
  const bobWs = await device(bob);
  const carolWs = await device(carol);
  await waitStatus(bob, alice, 'online');

  aliceWs.sendJson({ type: 'typing', conversation_id: direct.id });
  const ev = await bobWs.waitFor(() => typingOf(bobWs, alice)[0], 'the typing event', 10000);
  assert.equal(ev.conversation_id, direct.id);
  assert.ok(ev.expires_in_ms > 0 && ev.expires_in_ms <= 60000, JSON.stringify(ev));

  // the only state is the rate-limit key, and it lapses by itself
  const key = `chat:typing:{${direct.id}}:${uid(alice)}`;
  const pttl = Number(await redis('PTTL', key));
  assert.ok(pttl > 0 && pttl <= 60000, `PTTL ${pttl}`);
  await waitFor('the typing key to expire', async () => (await redis('EXISTS', key)) === '0', { timeout: 15000 });

  // not a command: nothing in the idempotency log, no row anywhere
  assert.equal(await sql("SELECT count(*) FROM command_log WHERE op LIKE '%typing%'"), '0');

  // Carol is not a member: her typing goes nowhere and answers nothing
  const carolFrom = carolWs.messages.length;
  carolWs.sendJson({ type: 'typing', conversation_id: direct.id });
  // malformed frames are refused
  const bad = await aliceWs.request({ type: 'typing', conversation_id: 'x', ref: 7 },
    (m) => m.type === 'error' && m.ref === 7);
  assert.equal(bad.code, 'invalid_field');
  await sleep(1500);
  assert.equal(typingOf(bobWs, carol).length, 0);
  assert.equal(typingOf(aliceWs, alice).length, 0, 'the typist hears herself');
  assert.equal(carolWs.messages.length, carolFrom, JSON.stringify(carolWs.messages.slice(carolFrom)));

  for (const ws of [aliceWs, bobWs, carolWs]) closeDevice(ws);
});

test('100 typing events in a second from Alice produce at most a handful of deliveries', async () => {
  const aliceWs = await device(alice);
  const bobWs = await device(bob);
  await waitStatus(bob, alice, 'online');
  await waitFor('the previous typing key to expire', async () =>
    (await redis('EXISTS', `chat:typing:{${direct.id}}:${uid(alice)}`)) === '0', { timeout: 15000 });

  const from = typingOf(bobWs, alice).length;
  for (let i = 0; i < 100; i++) {
    aliceWs.sendJson({ type: 'typing', conversation_id: direct.id });
    await sleep(10);
  }
  await bobWs.waitFor(() => typingOf(bobWs, alice).length > from, 'a typing event', 10000);
  await sleep(1000);
  const got = typingOf(bobWs, alice).length - from;
  assert.ok(got >= 1 && got <= 3, `${got} deliveries for 100 typing frames`);

  for (const ws of [aliceWs, bobWs]) closeDevice(ws);
});

test('typing follows group membership, and the membership cache is rebuilt when Redis loses it', async () => {
  const g = await http('POST', '/api/v1/conversations',
    { type: 'group', title: 'typists', member_ids: [uid(bob)] }, alice);
  assert.equal(g.status, 201, g.text);
  const cid = g.json.conversation.id;
  await acceptAll(cid, [bob]);
  const [aliceWs, bobWs, carolWs] = [await device(alice), await device(bob), await device(carol)];
  await waitStatus(carol, carol, 'online');

  const typeAndWait = async (interval) => {
    // past the rate limit of the previous round
    await waitFor('the typing key to expire', async () =>
      (await redis('EXISTS', `chat:typing:{${cid}}:${uid(alice)}`)) === '0', { timeout: interval });
    aliceWs.sendJson({ type: 'typing', conversation_id: cid });
  };
  const gotFrom = (ws, n) => ws.waitFor(() => typingOf(ws, alice).filter((m) => m.conversation_id === cid).length >= n,
    `typing event ${n}`, 10000);
  const countIn = (ws) => typingOf(ws, alice).filter((m) => m.conversation_id === cid).length;

  await typeAndWait(15000);
  await gotFrom(bobWs, 1);
  assert.equal(countIn(carolWs), 0);

  // Carol joins after a message: the next typing reaches her, and her
  // markers start at the end (what was there is neither unread nor pending)
  let r = await http('POST', `/api/v1/conversations/${cid}/messages`, { client_msg_id: 't1', text: 'before carol' }, alice);
  assert.equal(r.status, 201, r.text);
  r = await http('POST', `/api/v1/conversations/${cid}/members`, { user_id: uid(carol) }, alice);
  assert.equal(r.status, 200, r.text);
  await acceptAll(cid, [carol]);   // a stranger to Alice: an invitation
  r = await http('GET', `/api/v1/conversations/${cid}/receipts`, undefined, carol);
  assert.deepEqual(r.json.receipts.find((x) => x.user_id === uid(carol)),
    { user_id: uid(carol), delivered_seq: 1, read_seq: 1 });
  await typeAndWait(15000);
  await gotFrom(carolWs, 1);
  await gotFrom(bobWs, 2);

  // Bob leaves: he hears no more
  r = await http('DELETE', `/api/v1/conversations/${cid}/members/${uid(bob)}`, undefined, alice);
  assert.equal(r.status, 200, r.text);
  await typeAndWait(15000);
  await gotFrom(carolWs, 2);
  await sleep(500);
  assert.equal(countIn(bobWs), 2);

  // Redis loses the cache: the presence process rebuilds it from PostgreSQL
  const keys = (await redis('KEYS', 'chat:members:*')).split('\n').filter(Boolean);
  await redis('DEL', ...keys);
  await waitFor('the cache to be rebuilt', async () => (await redis('EXISTS', 'chat:members:ready')) === '1');
  assert.deepEqual((await redis('SMEMBERS', `chat:members:{${cid}}`)).split('\n').map(Number).sort((a, b) => a - b),
    [uid(alice), uid(carol)].sort((a, b) => a - b));
  await typeAndWait(15000);
  await gotFrom(carolWs, 3);

  for (const ws of [aliceWs, bobWs, carolWs]) closeDevice(ws);
});

/* receipts and read markers */

test('read markers never move backwards, two devices share unread, the sender gets receipts', async () => {
  const r0 = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(carol) }, dave);
  assert.equal(r0.status, 201, r0.text);
  const cid = r0.json.conversation.id;
  const accepted = await http('POST', `/api/v1/conversations/${cid}/accept`, undefined, carol);
  assert.equal(accepted.status, 200, accepted.text);
  const daveWs = await device(dave);
  const [c1, c2] = [await device(carol), await device(carol)];

  for (let i = 1; i <= 5; i++) {
    const r = await http('POST', `/api/v1/conversations/${cid}/messages`, { client_msg_id: `m${i}`, text: `hello ${i}` }, dave);
    assert.equal(r.status, 201, r.text);
  }

  const unread = async () => (await http('GET', '/api/v1/conversations', undefined, carol))
    .json.conversations.find((c) => c.id === cid).unread;
  assert.equal(await unread(), 5);

  // delivered from one device: Dave hears it
  let a = await c1.request({ type: 'delivered', conversation_id: cid, seq: 5, ref: 'd5' },
    (m) => m.ref === 'd5');
  assert.equal(a.type, 'delivered', JSON.stringify(a));
  assert.equal(a.last_delivered_seq, 5);
  let ev = await daveWs.waitFor(() => receipts(daveWs, cid).find((m) => m.kind === 'delivered'), 'delivered receipt');
  assert.deepEqual([ev.user_id, ev.seq], [uid(carol), 5]);

  // read up to 3 from device 1: both devices (and HTTP) see unread 2
  a = await c1.request({ type: 'read', conversation_id: cid, seq: 3, ref: 'r3' }, (m) => m.ref === 'r3');
  assert.equal(a.last_read_seq, 3);
  ev = await daveWs.waitFor(() => receipts(daveWs, cid).find((m) => m.kind === 'read'), 'read receipt');
  assert.deepEqual([ev.user_id, ev.seq], [uid(carol), 3]);
  assert.equal(await unread(), 2);

  // backwards, from the other device and over HTTP: nothing moves, no receipt
  a = await c2.request({ type: 'read', conversation_id: cid, seq: 1, ref: 'r1' }, (m) => m.ref === 'r1');
  assert.equal(a.last_read_seq, 3);
  let r = await http('POST', `/api/v1/conversations/${cid}/read`, { seq: 2 }, carol);
  assert.equal(r.json.last_read_seq, 3);
  r = await http('POST', `/api/v1/conversations/${cid}/delivered`, { seq: 4 }, carol);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.last_delivered_seq, 5);
  assert.equal(await unread(), 2);

  // the second device's sync sees the shared marker too
  const s = await c2.request({ type: 'sync', cursors: {}, ref: 's' }, (m) => m.ref === 's');
  assert.equal(s.conversations.find((c) => c.id === cid).unread, 2);

  // past the end is clamped to last_seq
  r = await http('POST', `/api/v1/conversations/${cid}/read`, { seq: 99 }, carol);
  assert.equal(r.json.last_read_seq, 5);
  assert.equal(await unread(), 0);

  r = await http('GET', `/api/v1/conversations/${cid}/receipts`, undefined, dave);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.receipts.find((x) => x.user_id === uid(carol)), { user_id: uid(carol), delivered_seq: 5, read_seq: 5 });
  // not a member: 404
  r = await http('GET', `/api/v1/conversations/${cid}/receipts`, undefined, alice);
  assert.equal(r.status, 404);
  r = await http('POST', `/api/v1/conversations/${cid}/delivered`, { seq: 1 }, alice);
  assert.equal(r.status, 404);
  r = await http('POST', `/api/v1/conversations/${cid}/delivered`, { seq: -1 }, carol);
  assert.equal(r.status, 400);

  await sleep(500);
  const reads = receipts(daveWs, cid).filter((m) => m.kind === 'read').map((m) => m.seq);
  assert.deepEqual(reads, [3, 5], 'one receipt per forward move, none for backwards ones');

  for (const ws of [daveWs, c1, c2]) closeDevice(ws);
});

// users straight into PostgreSQL (no scrypt) with tokens signed here
function tokenFor(id) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: String(id), role: 'user', sid: randomBytes(16).toString('base64url'), iat: now, exp: now + 3600, sxp: now + 3600 })}`;
  return `${body}.${createHmac('sha256', tokenSecret()).update(body).digest('base64url')}`;
}

async function bulkUsers(n) {
  const tag = randomBytes(4).toString('hex');
  const ids = (await sql(`INSERT INTO users (email, display_name, password_hash)
    SELECT 'bulk-${tag}-' || i || '@example.com', 'bulk ' || i, '$scrypt$unusable'
    FROM generate_series(1, ${n}) AS i RETURNING id`)).split('\n').map(Number);
  return ids.map((id) => ({ user: { id }, token: tokenFor(id) }));
}

test('a 500-member group: the sender receives a bounded number of receipts', async () => {
  const members = await bulkUsers(499);
  const r = await http('POST', '/api/v1/conversations',
    { type: 'group', title: 'five hundred', member_ids: members.map(uid) }, alice);
  assert.equal(r.status, 201, r.text);
  const cid = r.json.conversation.id;
  assert.equal(r.json.conversation.members.length, 500);
  await acceptAll(cid, members);

  const aliceWs = await device(alice);
  const m = await http('POST', `/api/v1/conversations/${cid}/messages`, { client_msg_id: 'big', text: 'hello all' }, alice);
  assert.equal(m.status, 201, m.text);

  // every member confirms delivery, then reads, 16 at a time
  let next = 0;
  const lane = async (path) => {
    while (next < members.length) {
      const who = members[next++];
      const x = await http('POST', `/api/v1/conversations/${cid}/${path}`, { seq: 1 }, who);
      assert.equal(x.status, 200, x.text);
    }
  };
  await Promise.all(Array.from({ length: 16 }, () => lane('delivered')));
  next = 0;
  await Promise.all(Array.from({ length: 16 }, () => lane('read')));

  // the coalesced receipt: everyone has read seq 1
  const all = await aliceWs.waitFor(() => receipts(aliceWs, cid).find((x) => x.kind === 'read' && x.aggregate),
    'the aggregate read receipt', 30000);
  assert.equal(all.seq, 1);
  assert.equal(all.user_id, null);
  await sleep(2000);
  const got = receipts(aliceWs, cid);
  assert.ok(got.length <= 4, `${got.length} receipts for 998 marker moves: ${JSON.stringify(got)}`);
  assert.ok(got.some((x) => x.kind === 'delivered' && x.aggregate && x.seq === 1));

  // the detail is there for whoever wants it
  const d = await http('GET', `/api/v1/conversations/${cid}/receipts`, undefined, members[7]);
  assert.equal(d.status, 200, d.text);
  assert.equal(d.json.receipts.length, 500);
  assert.ok(d.json.receipts.every((x) => x.read_seq === 1 && x.delivered_seq === 1));

  closeDevice(aliceWs);
});


/* an upgrade from the single presence keys */

// What a running system of the version before the presence shards holds
// (chat:presence:due, :on, :changes) is taken over when the presence
// process connects: the old stream's transitions are applied, the due
// set and online set move into the shards (so the sweeper still finds a
// user who left during the upgrade), and the three keys go.
test('the presence keys of before the shards are moved, applied and deleted when the presence process starts', async () => {
  const u = await registerUser('presence-upgrade');
  const id = String(uid(u));
  const shard = Number(id) % 16;
  const now = String(Date.now());
  await redis('XGROUP', 'CREATE', 'chat:presence:changes', 'presence', '$', 'MKSTREAM');
  await redis('XADD', 'chat:presence:changes', '*', 'uid', id, 'status', 'online', 'ts', now);
  await redis('ZADD', 'chat:presence:due', '1', id);      // long due: the user left
  await redis('HSET', 'chat:presence:on', id, now);

  // the presence process (its pid from its last "connected" line, among
  // the supervisor's children); killed, the supervisor starts it again,
  // and it connects afresh
  const log = readFileSync(`${RUN_DIR}/backend/backend.log`, 'utf8');
  const pids = [...log.matchAll(/\[info\] presence (\d+): redis: connected/g)].map((m) => Number(m[1]));
  const pid = pids.at(-1);
  assert.ok((await workerPids()).includes(pid), `presence process ${pid}`);
  process.kill(pid, 'SIGKILL');

  await waitFor('the old keys gone', async () => {
    const n = Number(await redis('EXISTS', 'chat:presence:due')) + Number(await redis('EXISTS', 'chat:presence:on'))
      + Number(await redis('EXISTS', 'chat:presence:changes'));
    return n === 0 ? true : null;
  }, { timeout: 30000, every: 200 });

  // the old stream's "online" was applied, then the sweeper found the
  // moved due time past and no live field: offline, from the shard
  await waitFor('offline from the shard', async () => {
    const x = await redis('XRANGE', `chat:presence:{p${shard}}:changes`, '-', '+');
    return x.includes(id) && x.includes('offline') ? true : null;
  }, { timeout: 30000, every: 200 });
  await waitFor('users.presence offline with a last_seen', async () =>
    (await sql(`SELECT presence || '|' || (last_seen IS NOT NULL) FROM users WHERE id = ${id}`)) === 'offline|true'
      ? true : null, { timeout: 30000, every: 200 });
  assert.equal(await redis('HEXISTS', `chat:presence:{p${shard}}:on`, id), '0');
});
