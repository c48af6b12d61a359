// Strict input: what cJSON, nginx or PostgreSQL would read differently from
// what the client sent is refused at the edge with 400 and a code that says
// what is wrong, before anything reaches Redis, and changes nothing.  Each
// case is a finding of the input review: "z\u0000one" stored as "z" (and
// "z\u0000two" answered with it), a password with "\u0000..." appended
// logging in, the first of two equal keys winning, raw control characters
// and 1e2 taken, ?q=%ff waiting 10 s for a 504 and filling chat:dlq.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { api, BASE, redis, registerUsers, sql, uniqueEmail, waitFor } from './lib.mjs';
import { WsClient, frame, OP } from './ws.mjs';

let alice;
let bob;
let cid;

before(async () => {
  [alice, bob] = await registerUsers('input', 2, 2);
  const c = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: bob.user.id },
    { token: alice.token });
  assert.ok([200, 201].includes(c.status), c.text);
  cid = c.json.conversation.id;
});

const as = (who) => ({ token: who.token });

// a body as raw bytes: exactly what a hostile client puts on the wire
const raw = (text) => ({ raw: Buffer.from(text, 'latin1') });

const storedMessages = async () => Number(await sql(
  "SELECT count(*) FROM messages WHERE conversation_id = :'p1'", cid));

// one sample of /metrics or /metrics/cluster (scraped from 127.0.0.1, the
// allowed address)
async function metric(name, path = '/metrics') {
  const text = await new Promise((resolve, reject) => {
    const url = new URL(path, BASE);
    http.get({ host: url.hostname, port: url.port, path: url.pathname, localAddress: '127.0.0.1', agent: false },
      (res) => { let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => resolve(b)); })
      .on('error', reject);
  });
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `no ${name} in ${path}`);
  return Number(m[1]);
}

// the edge's command counter: what reached the bus, whichever worker sent it
const commandsSent = () => metric('chat_bus_commands_total');

function assertRefused(r, code, what) {
  assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.json?.error?.code, code, `${what}: ${r.text}`);
  assert.equal(typeof r.json.error.message, 'string');
}

test('\\u0000 in client_msg_id: refused, not stored as "z" and not answered with another message', async () => {
  const before = await storedMessages();
  const path = `/api/v1/conversations/${cid}/messages`;
  const one = await api('POST', path, undefined, { ...as(alice), ...raw('{"client_msg_id":"z\\u0000one","text":"one"}') });
  assertRefused(one, 'nul_character', 'z\\u0000one');
  const two = await api('POST', path, undefined, { ...as(alice), ...raw('{"client_msg_id":"z\\u0000two","text":"two"}') });
  assertRefused(two, 'nul_character', 'z\\u0000two');
  assert.equal(await storedMessages(), before, 'nothing stored');
  // the id "z" was never taken: a real "z" is a new message
  const z = await api('POST', path, { client_msg_id: 'z', text: 'plain z' }, as(alice));
  assert.equal(z.status, 201, z.text);
  assert.equal(z.json.message.text, 'plain z');
});

test('\\u0000 (escaped or raw) anywhere in a body is 400 nul_character and changes nothing', async () => {
  const path = `/api/v1/conversations/${cid}/messages`;
  const before = await storedMessages();
  const sent = await commandsSent();
  for (const body of [
    '{"client_msg_id":"n1","text":"a\\u0000b"}',
    '{"client_msg_id":"n2","text":"\\u0000"}',
    '{"client_msg_id":"n3","text":"a\x00b"}',
    '{"client_msg_id":"n4","te\\u0000xt":"a","text":"b"}',
  ]) {
    assertRefused(await api('POST', path, undefined, { ...as(alice), ...raw(body) }), 'nul_character', body);
  }
  assert.equal(await storedMessages(), before);
  assert.equal(await commandsSent(), sent, 'no command reached the bus');
});

test('an e-mail with \\u0000 is refused, not stored truncated; a password with \\u0000 appended does not log in', async () => {
  const email = uniqueEmail('nul');
  const r = await api('POST', '/api/v1/auth/register', undefined,
    raw(`{"email":"${email}\\u0000@evil.example","password":"a good password","display_name":"N"}`));
  assertRefused(r, 'nul_character', 'register');
  assert.equal(await sql("SELECT count(*) FROM users WHERE email = :'p1'", email), '0');

  const login = await api('POST', '/api/v1/auth/login', undefined,
    raw(`{"email":"${alice.email}","password":"${alice.password}\\u0000whatever"}`));
  assertRefused(login, 'nul_character', 'login');
  assert.equal(login.json.token, undefined);
  // the real password still works
  const ok = await api('POST', '/api/v1/auth/login', { email: alice.email, password: alice.password });
  assert.equal(ok.status, 200, ok.text);
});

test('duplicate keys are 400 duplicate_key, however the second is spelled; the first no longer wins', async () => {
  const path = `/api/v1/conversations/${cid}/messages`;
  const before = await storedMessages();
  for (const body of [
    '{"client_msg_id":"d1","text":"FIRST","text":"SECOND"}',
    '{"client_msg_id":"d2","text":"FIRST","t\\u0065xt":"SECOND"}',
    '{"client_msg_id":"d3","client_msg_id":"d4","text":"x"}',
  ]) {
    assertRefused(await api('POST', path, undefined, { ...as(alice), ...raw(body) }), 'duplicate_key', body);
  }
  // nested objects too (the checkout's payment)
  const co = await api('POST', '/api/v1/orders', undefined, {
    ...as(alice), headers: { 'idempotency-key': `dup-${Date.now()}` },
    ...raw('{"shipping_address":{"line1":"a","line1":"b"},"payment":{"token":"t"}}'),
  });
  assertRefused(co, 'duplicate_key', 'nested');
  assert.equal(await storedMessages(), before);
  assert.equal(await sql("SELECT count(*) FROM messages WHERE conversation_id = :'p1' AND text IN ('FIRST', 'SECOND')", cid), '0');
});

test('raw control characters inside strings are 400 control_character; escaped they are text', async () => {
  const path = `/api/v1/conversations/${cid}/messages`;
  const before = await storedMessages();
  for (const c of ['\x01', '\x08', '\n', '\t', '\x1b', '\x1f']) {
    const body = `{"client_msg_id":"ctl-${c.charCodeAt(0)}","text":"a${c}b"}`;
    assertRefused(await api('POST', path, undefined, { ...as(alice), ...raw(body) }), 'control_character',
      JSON.stringify(body));
  }
  assert.equal(await storedMessages(), before);
  const ok = await api('POST', path, { client_msg_id: 'ctl-escaped', text: 'line\nbreak\ttab' }, as(alice));
  assert.equal(ok.status, 201, ok.text);
  assert.equal(ok.json.message.text, 'line\nbreak\ttab');
});

test('invalid UTF-8 in a body is 400 invalid_utf8 at the edge', async () => {
  const path = `/api/v1/conversations/${cid}/messages`;
  const before = await storedMessages();
  for (const bytes of [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
    const body = Buffer.concat([Buffer.from('{"client_msg_id":"u8","text":"a'), Buffer.from(bytes), Buffer.from('"}')]);
    assertRefused(await api('POST', path, undefined, { ...as(alice), raw: body }), 'invalid_utf8', bytes.join(','));
  }
  // an escaped lone surrogate is no character either
  assertRefused(await api('POST', path, undefined, { ...as(alice), ...raw('{"client_msg_id":"u9","text":"\\ud800"}') }),
    'invalid_utf8', 'lone surrogate');
  assert.equal(await storedMessages(), before);
});

test('numbers that are not plain integers are 400 invalid_number (1e2 is not user 100)', async () => {
  const cases = [
    ['POST', '/api/v1/conversations', '{"type":"direct","user_id":1e2}'],
    ['POST', '/api/v1/conversations', `{"type":"direct","user_id":${bob.user.id}.0}`],
    ['POST', '/api/v1/conversations', '{"type":"group","title":"t","member_ids":[1.5]}'],
    ['POST', `/api/v1/conversations/${cid}/read`, '{"seq":1E0}'],
    ['POST', `/api/v1/conversations/${cid}/read`, '{"seq":-0}'],
    ['POST', `/api/v1/conversations/${cid}/read`, '{"seq":9007199254740992}'],
    ['POST', `/api/v1/conversations/${cid}/read`, '{"seq":1e400}'],
    ['PUT', '/api/v1/cart/items/1', '{"quantity":2.0}'],
    ['PUT', '/api/v1/cart/items/1', '{"quantity":-0}'],
  ];
  const sent = await commandsSent();
  for (const [method, path, body] of cases) {
    assertRefused(await api(method, path, undefined, { ...as(alice), ...raw(body) }), 'invalid_number', body);
  }
  assert.equal(await commandsSent(), sent, 'no command reached the bus');
  // the plain spelling of the same numbers still works
  const r = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: bob.user.id }, as(alice));
  assert.equal(r.status, 200, r.text);
});

test('malformed JSON beyond cJSON\'s leniency is 400 invalid_json', async () => {
  const path = `/api/v1/conversations/${cid}/messages`;
  for (const body of [
    '{"client_msg_id":"j1","text":"x"} {}',
    '{"client_msg_id":"j2","text":"x",}',
    '\ufeff{"client_msg_id":"j3","text":"x"}',
    '{"client_msg_id":"j4","text":"x","n":01}',
    `{"client_msg_id":"j5","text":"x","deep":${'['.repeat(100)}${']'.repeat(100)}}`,
  ]) {
    assertRefused(await api('POST', path, undefined, { ...as(alice), raw: Buffer.from(body) }), 'invalid_json', body.slice(0, 60));
  }
});

test('?q=%ff is 400 invalid_utf8 at once, not a 504 after retries, and leaves no dead letter', async () => {
  const dlqBefore = await redis('XLEN', 'chat:dlq');
  const sent = await commandsSent();
  const cases = [
    ['/api/v1/books/search?q=%ff', 'invalid_utf8'],
    ['/api/v1/books/search?q=%c3', 'invalid_utf8'],
    ['/api/v1/books/search?q=a%00b', 'nul_character'],
    ['/api/v1/books/search?q=a%0ab', 'control_character'],
    ['/api/v1/books/search?q=%zz', 'invalid_query'],
    ['/api/v1/books/search?q=a&q=b', 'duplicate_parameter'],
    ['/api/v1/books/search?q=a&utm=%ff', 'invalid_utf8'],
    ['/api/v1/books?limit=1e2', 'invalid_query'],
    ['/api/v1/books?limit=007', 'invalid_query'],
    ['/api/v1/books?limit=99999999999999999999', 'invalid_query'],
    ['/api/v1/books/%ff', 'invalid_utf8'],
    [`/api/v1/conversations/${cid}/messages?limit=2&limit=3`, 'duplicate_parameter'],
  ];
  for (const [path, code] of cases) {
    const started = Date.now();
    const r = await api('GET', path, undefined, { ...as(alice), signal: AbortSignal.timeout(5000) });
    assertRefused(r, code, path);
    assert.ok(Date.now() - started < 2000, `${path} took ${Date.now() - started} ms`);
  }
  assert.equal(await commandsSent(), sent, 'no command reached the bus');
  assert.equal(await redis('XLEN', 'chat:dlq'), dlqBefore, 'no dead letter');
  // a real search with UTF-8 still works
  const ok = await api('GET', `/api/v1/books/search?q=${encodeURIComponent('café')}`);
  assert.equal(ok.status, 200, ok.text);
});

test('over WebSocket the same refusals come back as error frames with the ref, and nothing is stored', async () => {
  const ws = await WsClient.connect({ token: alice.token });
  const before = await storedMessages();
  const cases = [
    [`{"type":"send","conversation_id":${cid},"client_msg_id":"w1","text":"a\\u0000b"}`, 'nul_character', 'w1'],
    [`{"type":"send","conversation_id":${cid},"client_msg_id":"w2","text":"FIRST","text":"SECOND"}`, 'duplicate_key', 'w2'],
    [`{"type":"send","conversation_id":${cid},"client_msg_id":"w3","text":"a\x01b"}`, 'control_character', 'w3'],
    [`{"type":"read","conversation_id":${cid},"seq":1e2,"ref":"w4"}`, 'invalid_number', 'w4'],
    [`{"type":"send","conversation_id":${cid}.0,"client_msg_id":"w5","text":"x"}`, 'invalid_number', 'w5'],
  ];
  for (const [text, code, ref] of cases) {
    ws.send(frame(OP.TEXT, Buffer.from(text, 'latin1')));
    const err = await ws.message((m) => m.type === 'error' && m.ref === ref, `the error for ${ref}`);
    assert.equal(err.code, code, JSON.stringify(err));
  }
  assert.equal(ws.closed, false);
  assert.equal(await storedMessages(), before);
  ws.close();
});

test('chat:dlq is trimmed to about 10,000 entries and /metrics counts every dead letter', async () => {
  const total = () => metric('chat_dead_letters_total', '/metrics/cluster');

  // a backlog of 12,000 old dead letters, as a flood would leave it
  const fill = 12000;
  const script = Array.from({ length: fill }, (_, i) => `XADD chat:dlq * reason itest-fill n ${i}`).join('\n');
  const out = spawnSync('redis-cli', ['-p', process.env.CHAT_REDIS_PORT ?? '16390'], { input: script + '\n' });
  assert.equal(out.status, 0);
  const addedBefore = await total();
  assert.ok(addedBefore >= fill, `chat_dead_letters_total ${addedBefore}`);

  // one more, dead-lettered by a worker: a malformed envelope (no ts)
  const shard = 'chat:cmd:auth:{0}';
  const gw = `chat:gw:{itest-dlq-${Date.now()}}`;
  const id = await redis('XADD', shard, '*', 'v', '999', 'key', 'itest:dlq-bound', 'op', 'auth.login',
    'gw', gw, 'req', '1', 'body', '{}');
  await waitFor('the dead letter', async () => (await redis('XREVRANGE', 'chat:dlq', '+', '-', 'COUNT', '5')).includes(id));

  // MAXLEN ~ trims whole nodes: the bound, plus at most one node of slack
  const len = Number(await redis('XLEN', 'chat:dlq'));
  assert.ok(len <= 10000 + 200, `chat:dlq holds ${len} entries`);
  assert.ok(await total() >= addedBefore + 1, 'the counter counts the trimmed ones too');
  // leave the stream short for the suites after this one (the count stays)
  await redis('XTRIM', 'chat:dlq', 'MAXLEN', '0');
});
