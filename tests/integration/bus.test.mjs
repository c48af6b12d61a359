// The command bus seen from Redis: envelopes written by hand, the way a
// redelivery or a crashed consumer would leave them, and what the worker
// pool does with them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { api, openField, redis, redisPortOf, registerUser, sealField, sleep, sql, streamEntries, uniqueEmail, waitFor } from './lib.mjs';

const SHARD = 'chat:cmd:auth:{0}';  // auth.register is on the auth lane

// the password sealed as the edge seals it (chat_seal.c), unless clear
function envelope({ key, op = 'auth.register', body, gw, req, clear = false }) {
  const b = { ...body };
  if (typeof b.password === 'string' && !clear) b.password = sealField({ dir: 'cmd', op }, 'password', b.password);
  return ['v', '1', 'key', key, 'op', op, 'uid', '0', 'role', '', 'gw', gw, 'req',
    String(req), 'ts', String(Date.now()), 'body', JSON.stringify(b)];
}

// reply entries on a gateway stream: [{req, status, body}]
async function replies(gw) {
  return streamEntries(await redis('XRANGE', gw, '-', '+')).map((e) => ({ ...e, status: Number(e.status), body: JSON.parse(e.body) }));
}

const newGateway = () => `chat:gw:{itest-${randomBytes(4).toString('hex')}}`;

test('a redelivered command returns the stored result and changes nothing', async () => {
  const gw = newGateway();
  const key = `itest:${randomBytes(8).toString('hex')}`;
  const email = uniqueEmail('redeliver');
  const body = { email, password: 'redelivered pw', display_name: 'Twice' };

  await redis('XADD', SHARD, '*', ...envelope({ key, body, gw, req: 1 }));
  await waitFor('first reply', async () => (await replies(gw)).length === 1);
  await redis('XADD', SHARD, '*', ...envelope({ key, body, gw, req: 2 }));
  const [first, second] = await waitFor('second reply', async () => {
    const r = await replies(gw);
    return r.length === 2 && r;
  });

  assert.equal(first.status, 201);
  assert.equal(second.status, 201, 'each send seals anew, yet it is the same request');
  assert.equal(second.req, '2');
  assert.deepEqual(second.body.user, first.body.user);
  assert.ok(second.body.token, 'a replayed register still hands out a token');
  // the token crossed Redis sealed, for its own request only
  assert.match(second.body.token, /^s1\./);
  const ad = { dir: 'reply', op: 'auth.register', gw };
  assert.ok(openField({ ...ad, req: 2 }, 'token', second.body.token)?.split('.').length === 3,
    'the sealed token opens for request 2 as a JWT');
  assert.equal(openField({ ...ad, req: 1 }, 'token', second.body.token), null,
    'and not for another request');
  assert.equal(await sql("SELECT count(*) FROM users WHERE email = :'p1'", email), '1');
  assert.equal(await sql("SELECT count(*) FROM command_log WHERE key = :'p1'", key), '1');
  // the stored reply never holds a token
  assert.ok(!(await sql("SELECT reply FROM command_log WHERE key = :'p1'", key)).includes('token'));
});

test('a password in clear on the bus is refused and nothing is registered', async () => {
  const gw = newGateway();
  const email = uniqueEmail('clear');
  await redis('XADD', SHARD, '*', ...envelope({ key: `itest:${randomBytes(8).toString('hex')}`, gw,
    req: 4, clear: true, body: { email, password: 'in clear on the bus', display_name: 'Clear' } }));
  const r = await waitFor('the refusal', async () => (await replies(gw))[0]);
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /sealed/);
  assert.equal(await sql("SELECT count(*) FROM users WHERE email = :'p1'", email), '0');

  // sealed for another op: refused the same way
  const gw2 = newGateway();
  const fields = envelope({ key: `itest:${randomBytes(8).toString('hex')}`, gw: gw2, req: 5,
    body: { email, display_name: 'Moved' } });
  const body = JSON.parse(fields.at(-1));
  body.password = sealField({ dir: 'cmd', op: 'auth.login' }, 'password', 'sealed for login');
  fields[fields.length - 1] = JSON.stringify(body);
  await redis('XADD', SHARD, '*', ...fields);
  const r2 = await waitFor('the second refusal', async () => (await replies(gw2))[0]);
  assert.equal(r2.status, 400);
  assert.equal(await sql("SELECT count(*) FROM users WHERE email = :'p1'", email), '0');
});

test('the same idempotency key with a different body is 409', async () => {
  const gw = newGateway();
  const key = `itest:${randomBytes(8).toString('hex')}`;
  const email = uniqueEmail('reuse');
  await redis('XADD', SHARD, '*', ...envelope({ key, gw, req: 1,
    body: { email, password: 'first body pw', display_name: 'One' } }));
  await waitFor('first reply', async () => (await replies(gw)).length === 1);
  await redis('XADD', SHARD, '*', ...envelope({ key, gw, req: 2,
    body: { email: uniqueEmail('other'), password: 'second body pw', display_name: 'Two' } }));
  const r = await waitFor('second reply', async () => {
    const all = await replies(gw);
    return all.length === 2 && all[1];
  });
  assert.equal(r.status, 409);
  assert.equal(r.body.error.code, 'idempotency_key_reused');
});

test('a command delivered too many times goes to the dead-letter stream with an error reply', async () => {
  const gw = newGateway();
  const key = `itest:${randomBytes(8).toString('hex')}`;
  const email = uniqueEmail('poison');
  const fields = envelope({ key, gw, req: 7, body: { email, password: 'poison pw 123', display_name: 'P' } });

  // A ghost consumer takes the entry in the same transaction that adds it,
  // so no live worker sees it first; then it looks delivered 10 times and
  // long idle, like a command that crashed worker after worker.
  const quoted = fields.map((f) => (f === '' ? '""' : `'${f.replace(/'/g, "\\'")}'`));
  const { spawnSync } = await import('node:child_process');
  const script = ['MULTI', `XADD ${SHARD} * ${quoted.join(' ')}`,
    `XREADGROUP GROUP workers itest-ghost COUNT 1 STREAMS ${SHARD} >`, 'EXEC'].join('\n');
  const out = spawnSync('redis-cli', ['-p', await redisPortOf(SHARD), '--raw'],
    { input: script + '\n', encoding: 'utf8' });
  const id = out.stdout.match(/\d+-\d+/)[0];
  const owner = (await redis('XPENDING', SHARD, 'workers', id, id, '1')).split('\n')[1];
  assert.equal(owner, 'itest-ghost', 'the ghost holds the entry');
  await redis('XCLAIM', SHARD, 'workers', 'itest-ghost', '0', id, 'IDLE', '600000', 'RETRYCOUNT', '10');

  const r = await waitFor('the dead-letter reply', async () => (await replies(gw))[0], { timeout: 30000 });
  assert.equal(r.req, '7');
  assert.equal(r.status, 500);
  assert.equal(r.body.error.code, 'dead_lettered');

  const dlq = await redis('XRANGE', 'chat:dlq', '-', '+');
  assert.ok(dlq.includes(id), 'the dead-letter entry names the original id');
  assert.ok(dlq.includes(key));
  assert.equal(await redis('XPENDING', SHARD, 'workers', id, id, '1'), '', 'no longer pending');
  assert.equal(await sql("SELECT count(*) FROM users WHERE email = :'p1'", email), '0');
  await redis('XGROUP', 'DELCONSUMER', SHARD, 'workers', 'itest-ghost');
});

test('a malformed envelope is dead-lettered at once, not retried', async () => {
  const gw = newGateway();
  const id = await redis('XADD', SHARD, '*', 'v', '999', 'key', 'itest:bad', 'op', 'auth.login',
    'gw', gw, 'req', '3', 'body', '{}');
  const r = await waitFor('the error reply', async () => (await replies(gw))[0]);
  assert.equal(r.req, '3');
  assert.ok(r.status >= 400, `status ${r.status}`);
  await waitFor('the dead-letter entry', async () => (await redis('XRANGE', 'chat:dlq', '-', '+')).includes(id));
});

test('a command that waited past the expiry is answered "expired" and not run', async () => {
  const gw = newGateway();
  const email = uniqueEmail('expired');
  const fields = envelope({ key: `itest:${randomBytes(8).toString('hex')}`, gw, req: 9,
    body: { email, password: 'too late to matter', display_name: 'Late' } });
  // queued two minutes ago, as if the pool had been down or overloaded
  fields[fields.indexOf('ts') + 1] = String(Date.now() - 120000);
  await redis('XADD', SHARD, '*', ...fields);

  const r = await waitFor('the expired reply', async () => (await replies(gw))[0]);
  assert.equal(r.req, '9');
  assert.equal(r.status, 504);
  assert.equal(r.body.error.code, 'expired');
  assert.equal(await sql("SELECT count(*) FROM users WHERE email = :'p1'", email), '0');
});

test("each edge trims the replies it has read from its gateway stream, so Redis does not keep thousands of answers", async () => {
  // XADD's MAXLEN ~ 10000 alone kept every gateway's newest 10,000
  // replies (a search's is ~8 KB); each nginx worker trims what it has
  // read at most once a second (ngx_chat_bus.c, XTRIM MINID ~)
  const n = 1200;
  const u = await registerUser('trim');
  // a read that always goes through the bus (the edge caches no one's
  // conversations)
  const ask = async () => {
    const r = await api('GET', '/api/v1/conversations', undefined, { token: u.token });
    assert.equal(r.status, 200, r.text);
  };
  for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: 20 }, ask));
  await sleep(1200);
  // one more read round on every worker: each trims what it read before
  await Promise.all(Array.from({ length: 40 }, ask));
  await sleep(300);
  const keys = (await redis('KEYS', 'chat:gw:*')).split('\n').filter((k) => k && !k.includes('itest-'));
  assert.ok(keys.length > 0, 'the edges have gateway streams');
  let held = 0;
  for (const k of keys) held += Number(await redis('XLEN', k));
  // untrimmed they would hold every reply (n and more); trimmed, at most
  // a stream node's worth each (100 small entries) and the newest few
  assert.ok(held < n / 2, `${keys.length} gateway streams hold ${held} entries after ${n} replies`);
});
