// The edge's rate limits (nginx limit_req, configured in conf/nginx.conf.in):
// a burst of logins from one address and a burst of checkouts from one user
// get 429 with the API's JSON error and a Retry-After header, requests within
// the limit go through, and the buckets drain so a client that slows down is
// served again.  The test stack runs LOGIN_RATE=5r/s LOGIN_BURST=10 and
// CHECKOUT_RATE=2r/s CHECKOUT_BURST=40 (tests/run.sh).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerUser, sleep, uniqueEmail, waitFor } from './lib.mjs';

function assertRateLimited(r) {
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json.error.code, 'rate_limited');
  assert.match(r.headers.get('content-type'), /application\/json/);
  assert.equal(r.headers.get('retry-after'), '1');
}

test('a burst of logins from one address gets 429 beyond the burst, then recovers', async () => {
  const u = await registerUser('ratelimit-login');
  const tries = Array.from({ length: 40 }, () =>
    api('POST', '/api/v1/auth/login', { email: u.email, password: 'not the password' }));
  const answers = await Promise.all(tries);
  const limited = answers.filter((r) => r.status === 429);
  const judged = answers.filter((r) => r.status === 401);
  assert.equal(limited.length + judged.length, 40, answers.map((r) => r.status).join(','));
  assert.ok(limited.length >= 20, `only ${limited.length} of 40 limited`);
  assert.ok(judged.length >= 10, `only ${judged.length} of 40 reached the password check`);
  assertRateLimited(limited[0]);

  // the bucket drains: a client that waits is served again
  await sleep(2500);
  const ok = await waitFor('a login after the burst', async () => {
    const r = await api('POST', '/api/v1/auth/login', { email: u.email, password: u.password });
    return r.status === 200 ? r : null;
  });
  assert.equal(ok.json.user.id, u.user.id);
});

test('checkout bursts are limited per user, not per address', async () => {
  const [a, b] = [await registerUser('ratelimit-a'), await registerUser('ratelimit-b')];
  // bodies are invalid on purpose: the limiter answers before anything runs,
  // and what gets through is refused without creating an order
  const burst = (u, n) => Promise.all(Array.from({ length: n }, (_, i) =>
    api('POST', '/api/v1/orders', {}, { token: u.token, headers: { 'idempotency-key': `rl-${u.user.id}-${i}` } })));

  const answers = await burst(a, 100);
  const limited = answers.filter((r) => r.status === 429);
  assert.ok(limited.length >= 40, `only ${limited.length} of 100 limited`);
  assert.ok(answers.length - limited.length >= 20, 'the burst allowance went through');
  assertRateLimited(limited[0]);

  // another user from the same address is not affected
  const other = await burst(b, 5);
  assert.equal(other.filter((r) => r.status === 429).length, 0);

  // reads are not counted: history while a's bucket is still full
  const reads = await Promise.all(Array.from({ length: 20 }, () =>
    api('GET', '/api/v1/orders', undefined, { token: a.token })));
  assert.equal(reads.filter((r) => r.status === 429).length, 0);

  // no valid token: not counted (the API refuses them itself)
  const anon = await Promise.all(Array.from({ length: 60 }, () => api('POST', '/api/v1/orders', {})));
  assert.equal(anon.filter((r) => r.status === 429).length, 0);
  assert.ok(anon.every((r) => r.status >= 400 && r.json?.error), 'refused with a JSON error');
});

test('a burst of sign-ups from one address gets 429 beyond the burst, then recovers', async () => {
  // REGISTER_RATE=20r/s REGISTER_BURST=40 on the test stack; the bodies are
  // refused by the backend (short password), so the burst costs no scrypt
  const tries = Array.from({ length: 120 }, (_, i) =>
    api('POST', '/api/v1/auth/register', { email: uniqueEmail(`burst${i}`), password: 'short', display_name: 'B' }));
  const answers = await Promise.all(tries);
  const limited = answers.filter((r) => r.status === 429);
  const judged = answers.filter((r) => r.status === 400 || r.status === 503);
  assert.equal(limited.length + judged.length, 120, answers.map((r) => r.status).join(','));
  assert.ok(limited.length >= 40, `only ${limited.length} of 120 limited`);
  assertRateLimited(limited[0]);

  await sleep(2500);
  const u = await registerUser('ratelimit-signup-after');
  assert.ok(u.user.id > 0);
});
