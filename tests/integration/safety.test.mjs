// Safe settings checked at start: the worker pool refuses a PostgreSQL that
// could lose acknowledged commits in a crash (fsync or full_page_writes off),
// with a message saying what to change, and says so when Redis keeps no AOF.
// Each case runs a separate chat-backend against the test stack's servers,
// flips one server setting for the length of the case and restores it; the
// stack's own workers keep their existing connections and are not disturbed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PG, REDIS_PORT, RUN_DIR, redis, sql, waitFor } from './lib.mjs';

// runs a one-worker pool until it exits or `until(stderr)` holds; returns
// { code, stderr } (code null: still running when until() held, then stopped)
function runPool(until, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const child = spawn('backend/chat-backend', [
      '--workers', '1',
      '--redis', `127.0.0.1:${REDIS_PORT}`,
      '--pg', PG,
      '--token-secret-file', `${RUN_DIR}/token_secret`,
      '--redis-user', 'chat-worker',
      '--redis-password-file', `${RUN_DIR}/redis/worker.pass`,
    ]);
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
