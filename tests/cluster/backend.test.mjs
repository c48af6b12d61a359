// The backend on a Redis Cluster (STACK_REDIS=cluster: 3 masters, 3
// replicas), driven through the bus the way the edge would: a command
// XADDed to each lane's shards on whichever master owns the shard, the
// reply read from a gateway stream on whichever master owns that.  Then a
// master is killed (SIGKILL, no goodbye): its replica is promoted, and the
// workers must find the new map and answer on every shard again, with no
// restart.  No HTTP here: the edge on the cluster is the integration
// files' and the fault run's business (tests/README.md).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { REDIS_PORT, RUN_DIR, sealField, sql, streamEntries, uniqueEmail, waitFor } from '../integration/lib.mjs';

const run = promisify(execFile);
const NODES = 6;
const port = (i) => Number(REDIS_PORT) + i;
const dead = new Set();         // ports of nodes this file killed

// redis-cli -c (follows MOVED/ASK) on the first node still alive
async function rc(...args) {
  for (let i = 0; i < NODES; i++) {
    if (dead.has(port(i))) continue;
    try {
      const { stdout } = await run('redis-cli', ['-c', '-p', String(port(i)), '--raw', ...args]);
      return stdout.replace(/\n$/, '');
    } catch (e) {
      if (!/Connection refused|Could not connect/.test(`${e.stderr}${e.message}`)) throw e;
    }
  }
  throw new Error('no Redis node answers');
}

// an op of each lane that any caller may send and that answers without a
// user: the answer (401, 400) proves the command went in and out
const LANES = [
  { lane: 'chat', op: 'msg.send', status: 401 },
  { lane: 'read', op: 'msg.history', status: 401 },
  { lane: 'orders', op: 'cart.item.put', status: 401 },
  { lane: 'admin', op: 'admin.book.create', status: 401 },
  { lane: 'auth', op: 'auth.login', status: 400 },
];

function envelope({ key, op, gw, req, body = {} }) {
  return ['v', '1', 'key', key, 'op', op, 'uid', '0', 'role', '', 'gw', gw, 'req', String(req),
    'ts', String(Date.now()), 'body', JSON.stringify(body)];
}

const newGateway = () => `chat:gw:{ctest-${randomBytes(4).toString('hex')}}`;

async function shards() {
  const limits = await rc('HGET', 'chat:lanes', 'chat');
  const n = Number(/shards=(\d+)/.exec(limits)?.[1]);
  assert.ok(n >= 1, `the workers publish their shard count (${limits})`);
  return n;
}

// the master serving slot, from a live node's CLUSTER NODES: its port
async function masterOf(slot) {
  const lines = (await rc('CLUSTER', 'NODES')).split('\n');
  for (const line of lines) {
    const w = line.split(' ');
    if (!/(^|,)master(,|$)/.test(w[2] ?? '') || /(^|,)fail(,|$)/.test(w[2])) continue;
    for (const r of w.slice(8)) {
      const [a, b = a] = r.split('-').map(Number);
      if (slot >= a && slot <= b) return Number(w[1].split('@')[0].split(':').pop());
    }
  }
  return null;
}

// one command to every shard of every lane; every reply must come back
async function everyShardAnswers(tag, timeout) {
  const n = await shards();
  const gw = newGateway();
  const want = [];
  let req = 0;
  for (const { lane, op, status } of LANES) {
    for (let s = 0; s < n; s++) {
      req++;
      await rc('XADD', `chat:cmd:${lane}:{${s}}`, '*',
        ...envelope({ key: `ctest:${tag}:${randomBytes(6).toString('hex')}`, op, gw, req }));
      want.push({ req: String(req), status, where: `${lane} shard ${s}` });
    }
  }
  const got = await waitFor(`${want.length} replies (${tag})`, async () => {
    const r = streamEntries(await rc('XRANGE', gw, '-', '+'));
    return r.length >= want.length && r;
  }, { timeout });
  for (const w of want) {
    const r = got.find((e) => e.req === w.req);
    assert.ok(r, `a reply from ${w.where}`);
    assert.equal(Number(r.status), w.status, `${w.where}: ${r.body}`);
  }
  assert.equal(got.length, want.length, 'one reply per command');
}

test('the shards of the bus are spread over the three masters', async () => {
  const n = await shards();
  const masters = new Set();
  for (const { lane } of LANES) {
    for (let s = 0; s < n; s++) {
      masters.add(await masterOf(Number(await rc('CLUSTER', 'KEYSLOT', `chat:cmd:${lane}:{${s}}`))));
    }
  }
  assert.ok(!masters.has(null), 'every shard has a master');
  assert.ok(masters.size >= 2, `shards on ${masters.size} master(s): ${[...masters]}`);
});

test('every lane answers on every shard, whichever master holds it', async () => {
  await everyShardAnswers('spread', 30000);
});

test('a write commits through the cluster: auth.register answers 201 and stores the user', async () => {
  const gw = newGateway();
  const email = uniqueEmail('cluster');
  const op = 'auth.register';
  const key = `ctest:register:${randomBytes(8).toString('hex')}`;
  const body = { email, password: sealField({ dir: 'cmd', op }, 'password', 'cluster pw 1234'), display_name: 'Cluster' };
  await rc('XADD', 'chat:cmd:auth:{0}', '*', ...envelope({ key, op, gw, req: 1, body }));
  const [r] = await waitFor('the register reply', async () => {
    const e = streamEntries(await rc('XRANGE', gw, '-', '+'));
    return e.length > 0 && e;
  }, { timeout: 60000 });
  assert.equal(Number(r.status), 201, r.body);
  assert.equal(await sql("SELECT count(*) FROM users WHERE email = :'p1'", email), '1');
});

// CLUSTER SETSLOT on one node, as redis-cli --cluster reshard does it
const onNode = (p, ...args) => run('redis-cli', ['-p', String(p), ...args]).then((r) => r.stdout.trim());
const nodeId = (p) => onNode(p, 'CLUSTER', 'MYID');

// one command answered on gw: its reply's status
async function answered(gw, req, tag) {
  await rc('XADD', 'chat:cmd:chat:{1}', '*',
    ...envelope({ key: `ctest:${tag}:${randomBytes(6).toString('hex')}`, op: 'msg.send', gw, req }));
  const r = await waitFor(`the reply to ${tag}`, async () => {
    const e = streamEntries(await rc('XRANGE', gw, '-', '+')).find((x) => x.req === String(req));
    return e;
  }, { timeout: 30000 });
  return Number(r.status);
}

test('a slot that moves: the reply follows ASK while it migrates and MOVED once it has', async () => {
  // a gateway whose slot holds no key yet, moved between two masters
  const gw = newGateway();
  const slot = Number(await rc('CLUSTER', 'KEYSLOT', gw));
  assert.equal(Number(await rc('CLUSTER', 'COUNTKEYSINSLOT', String(slot))), 0);
  const src = await masterOf(slot);
  const masters = new Set();
  for (let i = 0; i < NODES; i++) {
    if (/^role:master/m.test(await onNode(port(i), 'INFO', 'replication'))) masters.add(port(i));
  }
  const dst = [...masters].find((p) => p !== src);
  const [srcId, dstId] = [await nodeId(src), await nodeId(dst)];

  // migrating: a key the source does not have is asked of the target
  assert.equal(await onNode(dst, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', srcId), 'OK');
  assert.equal(await onNode(src, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', dstId), 'OK');
  assert.equal(await answered(gw, 1, 'ask'), 401);
  assert.equal(Number(await onNode(dst, 'CLUSTER', 'COUNTKEYSINSLOT', String(slot))), 1,
    'the reply stream was written on the target, after ASKING');

  // moved: the workers' maps still say the source, which answers MOVED
  for (const p of [dst, src, ...[...masters].filter((m) => m !== src && m !== dst)]) {
    assert.equal(await onNode(p, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', dstId), 'OK');
  }
  await waitFor('every node sees the move', async () => await masterOf(slot) === dst, { timeout: 10000 });
  assert.equal(await answered(gw, 2, 'moved'), 401);
  assert.equal(streamEntries(await onNode(dst, '--raw', 'XRANGE', gw, '-', '+')).length, 2,
    'both replies are on the slot\'s new master');
});

test('a master killed: its replica takes over and the workers answer on every shard again', async () => {
  // the node the backend was told to start from (REDIS_PORT), the hardest
  // case: the workers must find the cluster through the other masters they
  // learnt of.  It is a master on a fresh stack (--cluster create makes the
  // first three masters); failing that, the chat lane's first shard's.
  let slot = Number(await rc('CLUSTER', 'KEYSLOT', 'chat:cmd:chat:{0}'));
  let victim = await masterOf(slot);
  const own = (await run('redis-cli', ['-p', REDIS_PORT, 'CLUSTER', 'MYID'])).stdout.trim();
  const seed = (await rc('CLUSTER', 'NODES')).split('\n').find((l) => l.startsWith(own));
  const served = seed?.split(' ').slice(8).find((r) => /^\d/.test(r));
  if (/(^|,)master(,|$)/.test(seed?.split(' ')[2] ?? '') && served) {
    slot = Number(served.split('-')[0]);
    victim = Number(REDIS_PORT);
  }
  assert.ok(victim, 'the slot has a master');
  const node = victim - Number(REDIS_PORT);
  const pid = Number(readFileSync(`${RUN_DIR}/redis/node-${node}/redis.pid`, 'utf8'));
  process.kill(pid, 'SIGKILL');
  dead.add(victim);

  // the cluster's own failover (cluster-node-timeout 2 s), bounded
  const promoted = await waitFor('a replica promoted for the slot', async () => {
    const m = await masterOf(slot);
    return m && m !== victim && m;
  }, { timeout: 30000, every: 250 });
  await waitFor('cluster_state:ok', async () => /cluster_state:ok/.test(await rc('CLUSTER', 'INFO')),
    { timeout: 30000, every: 250 });
  assert.notEqual(promoted, victim);

  // the workers lost a connection, reconnect with backoff (at most 5 s
  // apart) and read the new map: every shard answers again
  await everyShardAnswers('failover', 60000);
});
