// Safe settings checked at start: the worker pool refuses a PostgreSQL that
// could lose acknowledged commits in a crash (fsync or full_page_writes off),
// with a message saying what to change (behind a transaction pooler also
// synchronous_commit off), and says so when Redis keeps no AOF.
// Each case runs a separate chat-backend against the test stack's servers,
// flips one server setting for the length of the case and restores it; the
// stack's own workers keep their existing connections and are not disturbed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PG, REDIS_PORT, RUN_DIR, redis, sql, waitFor } from './lib.mjs';

// runs a one-worker pool until it exits or `until(stderr)` holds; returns
// { code, stderr } (code null: still running when until() held, then stopped)
function runPool(until, timeoutMs = 30000, { args = [], env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('backend/chat-backend', [...args,
      '--workers', '1',
      '--redis', `127.0.0.1:${REDIS_PORT}`,
      '--pg', PG,
      '--token-secret-file', `${RUN_DIR}/token_secret`,
      '--redis-user', 'chat-worker',
      '--redis-password-file', `${RUN_DIR}/redis/worker.pass`,
    ], { env: { ...process.env, ...env } });
    let stderr = '';
    let done = false;
    let stopped = false;
    const finish = (code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ code, stderr });
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pool neither exited nor logged in time:\n${stderr}`));
    }, timeoutMs);
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!stopped && until && until(stderr)) {
        stopped = true;
        child.kill('SIGTERM');
      }
    });
    child.on('exit', (code) => finish(stopped ? null : code));
    child.on('error', reject);
  });
}

async function setPg(name, value) {
  await sql(value === null ? `ALTER SYSTEM RESET ${name}` : `ALTER SYSTEM SET ${name} = ${value}`);
  await sql('SELECT pg_reload_conf()');
  const want = value ?? 'on';
  await waitFor(`${name} = ${want}`, async () => (await sql(`SHOW ${name}`)) === want);
}

test('the pool refuses a PostgreSQL with fsync off, and says what to change', async () => {
  await setPg('fsync', 'off');
  try {
    const { code, stderr } = await runPool(null);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /fsync is off.*refusing to run \(set fsync = on/);
    assert.match(stderr, /refused to run on this PostgreSQL.*stopping the pool/);
  } finally {
    await setPg('fsync', null);
  }
  // and the same pool runs once the setting is back
  const { stderr } = await runPool((s) => /postgres: connected/.test(s));
  assert.doesNotMatch(stderr, /refusing/);
});

test('the pool refuses full_page_writes off', async () => {
  await setPg('full_page_writes', 'off');
  try {
    const { code, stderr } = await runPool(null);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /full_page_writes is off/);
  } finally {
    await setPg('full_page_writes', null);
  }
});

test('the pool warns (and runs) when Redis keeps no append-only file', async () => {
  assert.equal(await redis('CONFIG', 'GET', 'appendonly'), 'appendonly\nyes');
  const quiet = await runPool((s) => /postgres: connected/.test(s));
  assert.doesNotMatch(quiet.stderr, /appendonly is off/);

  await redis('CONFIG', 'SET', 'appendonly', 'no');
  try {
    const { code, stderr } = await runPool((s) => /postgres: connected/.test(s));
    assert.equal(code, null, 'the pool keeps running');
    assert.match(stderr, /appendonly is off: commands not yet consumed are lost/);
  } finally {
    await redis('CONFIG', 'SET', 'appendonly', 'yes');
  }
});

// behind pgbouncer in transaction mode the session sets nothing, so the
// server's own settings are what commits get: synchronous_commit off is
// refused like fsync off.  PGOPTIONS stands in for a server (or role)
// setting here: libpq sends it at connect, and the pool must not undo it.
test('behind a transaction pooler the pool refuses synchronous_commit off and warns about no statement_timeout', async () => {
  const pooled = { args: ['--pg-pooler', 'transaction'] };
  const off = await runPool(null, 30000, { ...pooled, env: { PGOPTIONS: '-c synchronous_commit=off' } });
  assert.equal(off.code, 1, off.stderr);
  assert.match(off.stderr, /synchronous_commit is off behind the pooler.*refusing to run/);

  const open = await runPool((t) => /postgres: connected.*through a transaction pooler/.test(t), 30000,
    { ...pooled, env: { PGOPTIONS: '-c statement_timeout=0' } });
  assert.equal(open.code, null, 'the pool keeps running');
  assert.match(open.stderr, /statement_timeout is 0 behind the pooler/);
  assert.doesNotMatch(open.stderr, /refusing/);

  // without the pooler the session sets both itself: neither is said
  const direct = await runPool((t) => /postgres: connected/.test(t), 30000,
    { env: { PGOPTIONS: '-c synchronous_commit=off -c statement_timeout=0' } });
  assert.doesNotMatch(direct.stderr, /behind the pooler|refusing/);
});

test('--pg-pooler takes none or transaction', async () => {
  const bad = await runPool(null, 30000, { args: ['--pg-pooler', 'session'] });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--pg-pooler: "session" is neither none nor transaction/);
});
