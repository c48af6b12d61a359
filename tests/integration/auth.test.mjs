// Accounts through the real stack: nginx + module -> Redis -> worker ->
// PostgreSQL and back.  Every refusal is checked to change nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, sql, uniqueEmail, registerUser, signToken } from './lib.mjs';

const userCount = async (email) =>
  Number(await sql("SELECT count(*) FROM users WHERE lower(email) = lower(:'p1')", email));

test('health reports redis, postgres and live workers', async () => {
  const r = await api('GET', '/api/v1/health');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'ok');
  assert.equal(r.json.redis, 'ok');
  assert.equal(r.json.postgres, 'ok');
  assert.ok(r.json.workers >= 1, r.text);
  assert.match(r.headers.get('content-type'), /application\/json/);
});

test('register returns 201 with the user and a token', async () => {
  const email = uniqueEmail('reg');
  const r = await api('POST', '/api/v1/auth/register',
    { email, password: 'a good long password', display_name: 'Reggie' });
  assert.equal(r.status, 201, r.text);
  assert.equal(typeof r.json.user.id, 'number');
  assert.equal(r.json.user.email, email);
  assert.equal(r.json.user.display_name, 'Reggie');
  assert.equal(r.json.user.role, 'user');
  assert.ok(!Number.isNaN(Date.parse(r.json.user.created_at)));
  assert.equal(r.json.token.split('.').length, 3);
  assert.equal(r.json.user.password_hash, undefined);

  // the password is stored as a KDF hash, never as itself
  const hash = await sql("SELECT password_hash FROM users WHERE email = :'p1'", email);
  assert.match(hash, /^\$scrypt\$/);
  assert.ok(!hash.includes('a good long password'));
});

test('login: right password 200, wrong password 401, unknown email 401', async () => {
  const u = await registerUser('login');
  const ok = await api('POST', '/api/v1/auth/login', { email: u.email, password: u.password });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.user.id, u.user.id);
  assert.ok(ok.json.token);

  // emails are case-insensitive
  const upper = await api('POST', '/api/v1/auth/login',
    { email: u.email.toUpperCase(), password: u.password });
  assert.equal(upper.status, 200, upper.text);

  const wrong = await api('POST', '/api/v1/auth/login', { email: u.email, password: 'not the password' });
  assert.equal(wrong.status, 401, wrong.text);
  assert.equal(wrong.json.error.code, 'invalid_credentials');
  assert.equal(wrong.json.token, undefined);

  const unknown = await api('POST', '/api/v1/auth/login',
    { email: uniqueEmail('nobody'), password: 'whatever123' });
  assert.equal(unknown.status, 401, unknown.text);
  assert.equal(unknown.json.error.message, wrong.json.error.message);
});

test('duplicate email is 409 and creates nothing', async () => {
  const u = await registerUser('dup');
  for (const email of [u.email, u.email.toUpperCase()]) {
    const r = await api('POST', '/api/v1/auth/register',
      { email, password: 'another password', display_name: 'Dup' });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.code, 'email_taken');
  }
  assert.equal(await userCount(u.email), 1);
});

test('malformed JSON is 400 and reaches nobody', async () => {
  const email = uniqueEmail('bad');
  for (const raw of ['{', 'not json', '[]', '"str"', `{"email":"${email}"} trailing`, '']) {
    const r = await api('POST', '/api/v1/auth/register', undefined, { raw });
    assert.equal(r.status, 400, `${JSON.stringify(raw)} -> ${r.status} ${r.text}`);
    assert.equal(r.json.error.code, 'invalid_json');
  }
  assert.equal(await userCount(email), 0);
});

test('missing or mistyped fields are 400 naming the field', async () => {
  const email = uniqueEmail('field');
  let r = await api('POST', '/api/v1/auth/register', { email, password: 'long enough pw' });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'missing_field');
  assert.match(r.json.error.message, /display_name/);

  r = await api('POST', '/api/v1/auth/register', { email, password: 12345678, display_name: 'x' });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'invalid_field');
  assert.match(r.json.error.message, /password/);

  // business rules are the worker's: a short password, a non-email
  r = await api('POST', '/api/v1/auth/register', { email, password: 'short', display_name: 'x' });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'invalid_field');
  r = await api('POST', '/api/v1/auth/register',
    { email: 'no-at-sign', password: 'long enough pw', display_name: 'x' });
  assert.equal(r.status, 400, r.text);
  r = await api('POST', '/api/v1/auth/register', { email, password: 'long enough pw', display_name: '   ' });
  assert.equal(r.status, 400, r.text);
  assert.equal(await userCount(email), 0);
});

test('oversized body is 413 and creates nothing', async () => {
  const email = uniqueEmail('big');
  const r = await api('POST', '/api/v1/auth/register',
    { email, password: 'long enough pw', display_name: 'x'.repeat(70 * 1024) });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error.code, 'too_large');
  assert.equal(await userCount(email), 0);
});

test('authenticated call: valid token 200, missing or bad token 401', async () => {
  const u = await registerUser('me');
  let r = await api('GET', '/api/v1/users/me', undefined, { token: u.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.user.id, u.user.id);
  assert.equal(r.json.user.email, u.email);

  r = await api('GET', '/api/v1/users/me');
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'unauthorized');

  // one character of the MAC changed
  const t = u.token;
  const flipped = t.slice(0, -2) + (t.at(-2) === 'A' ? 'B' : 'A') + t.at(-1);
  r = await api('GET', '/api/v1/users/me', undefined, { token: flipped });
  assert.equal(r.status, 401, r.text);

  // a token for another user id that we did not sign
  const [h, p] = t.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  claims.sub = '1';
  const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${t.split('.')[2]}`;
  r = await api('GET', '/api/v1/users/me', undefined, { token: forged });
  assert.equal(r.status, 401, r.text);

  // alg none
  const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`;
  r = await api('GET', '/api/v1/users/me', undefined, { token: none });
  assert.equal(r.status, 401, r.text);
});

test('an expired token signed with the real secret is refused', async () => {
  const u = await registerUser('exp');
  const now = Math.floor(Date.now() / 1000);
  const sign = signToken;

  let r = await api('GET', '/api/v1/users/me', undefined,
    { token: sign({ sub: String(u.user.id), role: 'user', iat: now - 100, exp: now + 100 }) });
  assert.equal(r.status, 200, r.text);

  r = await api('GET', '/api/v1/users/me', undefined,
    { token: sign({ sub: String(u.user.id), role: 'user', iat: now - 100, exp: now - 1 }) });
  assert.equal(r.status, 401, r.text);
  assert.match(r.json.error.message, /expired/);

  r = await api('GET', '/api/v1/users/me', undefined,
    { token: sign({ sub: String(u.user.id), role: 'user', iat: now }) });
  assert.equal(r.status, 401, r.text);

  // not valid yet (nbf in the future), then valid once nbf has passed
  r = await api('GET', '/api/v1/users/me', undefined,
    { token: sign({ sub: String(u.user.id), role: 'user', nbf: now + 600, exp: now + 900 }) });
  assert.equal(r.status, 401, r.text);
  assert.match(r.json.error.message, /not valid yet/);
  r = await api('GET', '/api/v1/users/me', undefined,
    { token: sign({ sub: String(u.user.id), role: 'user', nbf: now - 5, exp: now + 900 }) });
  assert.equal(r.status, 200, r.text);
});

test('an oversized token is refused with 401, not a crash or a 500', async () => {
  const r = await api('GET', '/api/v1/users/me', undefined,
    { token: signToken({ sub: '1', role: 'user', exp: 4102444800, pad: 'x'.repeat(3000) }) });
  assert.equal(r.status, 401, r.text);
  assert.equal(r.json.error.code, 'unauthorized');
});

test('unknown endpoints are 404, wrong methods 405, both JSON', async () => {
  let r = await api('GET', '/api/v1/no-such-thing');
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 'not_found');
  r = await api('DELETE', '/api/v1/auth/login');
  assert.equal(r.status, 405);
  assert.equal(r.json.error.code, 'method_not_allowed');
});

test('a malformed Idempotency-Key header is 400', async () => {
  const u = await registerUser('idemhdr');
  const r = await api('GET', '/api/v1/users/me', undefined,
    { token: u.token, headers: { 'idempotency-key': 'x'.repeat(200) } });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'invalid_header');
});
