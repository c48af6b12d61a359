// Things break under load: a worker is SIGKILLed with commands in flight,
// Redis is killed and restarted.  Each test checks the books afterwards.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { api, redis, sql, uniqueEmail, waitFor, workerPids, RUN_DIR, sleep } from './lib.mjs';

// pending entries per consumer over all shards: Map(consumer -> count)
async function pendingByConsumer() {
  const counts = new Map();
  for (let s = 0; s < 4; s++) {
    const lines = (await redis('XPENDING', `chat:cmd:{${s}}`, 'workers', '-', '+', '1000'))
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

test('Redis killed and restarted: the edge and the workers reconnect by themselves', async () => {
  const conf = `${RUN_DIR}/redis/redis.conf`;
  const pid = Number(execFileSync('cat', [`${RUN_DIR}/redis/redis.pid`]).toString().trim());
  process.kill(pid, 'SIGKILL');
  await waitFor('redis to die', async () => {
    try { process.kill(pid, 0); return false; } catch { return true; }
  });

  const down = await api('GET', '/api/v1/health');
  assert.equal(down.status, 503);
  assert.equal(down.json.redis, 'down');
  const refused = await api('POST', '/api/v1/auth/login', { email: 'a@b.c', password: 'whatever1' });
  assert.equal(refused.status, 503);
  assert.equal(refused.json.error.code, 'unavailable');

  await sleep(1500);  // let the reconnect backoff grow a little
  spawn('redis-server', [conf], { stdio: 'ignore' }).unref();

  await waitFor('health back to ok', async () => (await api('GET', '/api/v1/health')).status === 200,
    { timeout: 30000, every: 250 });

  const email = uniqueEmail('after-restart');
  const reg = await api('POST', '/api/v1/auth/register',
    { email, password: 'after the restart', display_name: 'R' });
  assert.equal(reg.status, 201, reg.text);
  const login = await api('POST', '/api/v1/auth/login', { email, password: 'after the restart' });
  assert.equal(login.status, 200, login.text);
});
