// Things break under load: a worker is SIGKILLed with commands in flight,
// Redis is killed and restarted.  Each test checks the books afterwards.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  api, logTail, redis, sql, uniqueEmail, waitFor, workerPids, REDIS_CLUSTER, RUN_DIR, sleep, STREAM_SHARDS,
} from './lib.mjs';

// the stack's Redis servers: the one, or every node of a cluster (all of
// Redis goes here; one master killed is the fault run's redis-master)
const REDIS_DIRS = REDIS_CLUSTER ? Array.from({ length: 6 }, (_, i) => `redis/node-${i}`) : ['redis'];
const redisPids = () => REDIS_DIRS.map((d) => Number(readFileSync(`${RUN_DIR}/${d}/redis.pid`, 'utf8').trim()));

// pending entries per consumer over all shards: Map(consumer -> count)
async function pendingByConsumer() {
  const counts = new Map();
  for (let s = 0; s < STREAM_SHARDS; s++) {
    const lines = (await redis('XPENDING', `chat:cmd:auth:{${s}}`, 'workers', '-', '+', '1000'))
      .split('\n').filter(Boolean);
    for (let i = 0; i + 3 < lines.length; i += 4) {
      counts.set(lines[i + 1], (counts.get(lines[i + 1]) ?? 0) + 1);
    }
  }
  return counts;
}

test('a worker killed with commands in flight: restarted, commands reclaimed and answered once', async () => {
  const before = await workerPids();
  assert.ok(before.length >= 2, `workers: ${before}`);

  const N = 24;
  const emails = Array.from({ length: N }, () => uniqueEmail('kill'));
  const inflight = emails.map((email) => api('POST', '/api/v1/auth/register',
    { email, password: 'survives a crash', display_name: 'K' }));

  // wait until some worker holds unacknowledged commands, then kill it
  const victim = await waitFor('a worker holding pending commands', async () => {
    for (const [consumer, n] of await pendingByConsumer()) {
      const pid = Number(consumer.split(':').at(-1));
      if (n > 1 && before.includes(pid)) return { pid, n };
    }
    return null;
  }, { every: 20 });
  process.kill(victim.pid, 'SIGKILL');

  const results = await Promise.all(inflight);
  for (const [i, r] of results.entries()) {
    assert.equal(r.status, 201, `${emails[i]}: ${r.status} ${r.text}`);
    assert.equal(r.json.user.email, emails[i]);
  }

  // each command applied exactly once: one row per email, ids as answered
  const rows = await sql(`SELECT email || '=' || id FROM users WHERE email IN (${emails.map((e) => `'${e}'`).join(',')})`);
  const stored = new Map(rows.split('\n').map((l) => l.split('=')));
  assert.equal(stored.size, N);
  for (const r of results) assert.equal(Number(stored.get(r.json.user.email)), r.json.user.id);

  // the supervisor replaced the dead worker
  const after = await waitFor('the worker pool back at full size', async () => {
    const pids = await workerPids();
    return pids.length === before.length && !pids.includes(victim.pid) && pids;
  });
  assert.ok(!after.includes(victim.pid));

  // nothing left pending for anyone
  await waitFor('no pending commands', async () => (await pendingByConsumer()).size === 0);
});

// pids of the running nginx workers (children of the master)
function nginxWorkerPids() {
  const master = execFileSync('cat', [`${RUN_DIR}/nginx/nginx.pid`]).toString().trim();
  return execFileSync('pgrep', ['-P', master]).toString().trim().split('\n').map(Number);
}

// health is answered by one nginx worker; every worker reconnects on its
// own backoff, so wait until each one whose command connection went down
// (in the log written since edgeLog was made) has said it is back, before
// the next test counts on it
async function everyEdgeWorkerReconnected(edgeLog) {
  const workers = nginxWorkerPids();
  await waitFor('every nginx worker reconnected to redis', async () => {
    const lines = edgeLog.read().split('\n');
    return workers.every((pid) => {
      const mine = lines.filter((l) => l.includes(` ${pid}#`) && l.includes('chat redis commands:'));
      const down = mine.findLastIndex((l) => /lost|dropping|failed/.test(l));
      return down < 0 || mine.slice(down + 1).some((l) => / connected to /.test(l));
    });
  }, { timeout: 30000, every: 250 });
}

test('Redis killed and restarted: the edge and the workers reconnect by themselves', async () => {
  const edgeLog = logTail('nginx/error.log');
  const pids = redisPids();
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await waitFor('redis to die', async () => pids.every((pid) => {
    try { process.kill(pid, 0); return false; } catch { return true; }
  }));

  const down = await api('GET', '/api/v1/health');
  assert.equal(down.status, 503);
  assert.equal(down.json.redis, 'down');
  const refused = await api('POST', '/api/v1/auth/login', { email: 'a@b.c', password: 'whatever1' });
  assert.equal(refused.status, 503);
  assert.equal(refused.json.error.code, 'unavailable');

  await sleep(1500);  // let the reconnect backoff grow a little
  // with the stack's umask (conf/stack.sh): what Redis writes is its owner's
  for (const d of REDIS_DIRS) {
    spawn('sh', ['-c', 'umask 077 && exec redis-server "$0"', `${RUN_DIR}/${d}/redis.conf`],
      { stdio: 'ignore' }).unref();
  }

  // a cluster first finds itself again (its nodes' nodes.conf)
  await waitFor('health back to ok', async () => (await api('GET', '/api/v1/health')).status === 200,
    { timeout: 60000, every: 250 });
  await everyEdgeWorkerReconnected(edgeLog);

  const email = uniqueEmail('after-restart');
  const reg = await api('POST', '/api/v1/auth/register',
    { email, password: 'after the restart', display_name: 'R' });
  assert.equal(reg.status, 201, reg.text);
  const login = await api('POST', '/api/v1/auth/login', { email, password: 'after the restart' });
  assert.equal(login.status, 200, login.text);
});

test('a hung Redis (SIGSTOP) is dropped by the watchdog: 503, not a wait for the command timeout', async () => {
  const pids = redisPids();
  const edgeLog = logTail('nginx/error.log');
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  let health;
  try {
    // without the watchdog this would sit until chat_command_timeout (30s
    // in the test stack) and answer 504
    health = await api('GET', '/api/v1/health');
  } finally {
    for (const pid of pids) process.kill(pid, 'SIGCONT');
  }
  assert.equal(health.status, 503, health.text);
  assert.equal(health.json.redis, 'down');

  await waitFor('health back to ok', async () => (await api('GET', '/api/v1/health')).status === 200,
    { timeout: 30000, every: 250 });
  await everyEdgeWorkerReconnected(edgeLog);
});

test('nginx reload with commands in flight: every request is answered', async () => {
  const emails = Array.from({ length: 8 }, () => uniqueEmail('reload'));
  const inflight = emails.map((email) => api('POST', '/api/v1/auth/register',
    { email, password: 'through a reload', display_name: 'R' }));
  await sleep(50);
  execFileSync('nginx', ['-p', `${RUN_DIR}/nginx`, '-c', `${RUN_DIR}/nginx/nginx.conf`, '-s', 'reload']);

  const results = await Promise.all(inflight);
  for (const r of results) assert.equal(r.status, 201, r.text);

  // the new generation of workers serves too
  await waitFor('a login through the new workers', async () =>
    (await api('POST', '/api/v1/auth/login', { email: emails[0], password: 'through a reload' })).status === 200);
  assert.equal(await sql(`SELECT count(*) FROM users WHERE email IN (${emails.map((e) => `'${e}'`).join(',')})`),
    String(emails.length));
});
