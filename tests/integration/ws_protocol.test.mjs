// WebSocket conformance at the frame level, on raw sockets: the opening
// handshake's refusals, every framing rule with the close code it earns,
// and the good paths (control frames between fragments, messages cut into
// tiny TCP writes, large messages under the raised cap, server pings and
// the pong deadline, a slow reader's bounded queue).  One case per rule.
//
// The stack runs with chat_ws_max_message 20m, chat_ws_ping_interval 2s
// and chat_ws_pong_timeout 2s (conf/stack.sh, tests/run.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { api, BASE, registerUser, logTail, waitFor, sleep } from './lib.mjs';
import { WsClient, frame, OP, closePayload } from './ws.mjs';

const MiB = 1024 * 1024;
const CAP = 20 * MiB;                 // WS_MAX_MESSAGE of the test stack
const port = new URL(BASE).port;

let user;
before(async () => {
  user = await registerUser('wsproto');
});

// every connection a test opens is closed at the end, failed tests' too,
// so nothing keeps the runner alive
const opened = new Set();
after(() => {
  for (const ws of opened) ws.close();
});

async function connect(opts = {}) {
  const ws = await WsClient.connect({ token: user.token, ...opts });
  opened.add(ws);
  return ws;
}

// a refused handshake: resolves with the error WsClient.connect threw
async function refused(opts) {
  try {
    const ws = await WsClient.connect(opts);
    ws.close();
  } catch (e) {
    if (e.status) return e;
    throw e;
  }
  assert.fail(`the handshake was accepted: ${JSON.stringify({ ...opts, token: undefined })}`);
}

// the connection still answers: a ping message gets its pong
async function assertAlive(ws) {
  const before = ws.messages.filter((m) => m.type === 'pong').length;
  ws.sendJson({ type: 'ping' });
  await ws.messagesWhere((m) => m.type === 'pong', before + 1, 'a pong');
}

// sends bytes on a fresh connection and expects the server's close frame
// with code, then the server closing TCP
async function expectClose(bytes, code) {
  const ws = await connect();
  for (const b of [].concat(bytes)) ws.send(b);
  const got = await ws.closedWith(10000);
  assert.equal(got, code, `close code (frames: ${ws.frames.map((f) => f.opcode)})`);
  assert.equal(ws.closeFrame.masked, false, 'server frames are not masked');
  assert.equal(ws.closeFrame.fin, true);
  await ws.waitClosed(5000);
  return ws;
}

/* handshake */

test('handshake: 101 with the right Sec-WebSocket-Accept, and the socket speaks', async () => {
  const ws = await connect();
  assert.match(ws.handshake, /^HTTP\/1\.1 101 /);
  assert.match(ws.handshake, /\r\nupgrade: *websocket\r\n/i);
  assert.match(ws.handshake, /\r\nconnection: *upgrade\r\n/i);
  // (Sec-WebSocket-Accept is checked by WsClient.connect itself)
  await assertAlive(ws);
  ws.close();
});

test('handshake: the token may come as ?access_token=', async () => {
  const ws = await connect({ token: undefined, query: `?access_token=${encodeURIComponent(user.token)}` });
  await assertAlive(ws);
  ws.close();
});

test('handshake: no token is 401 with a JSON error', async () => {
  const e = await refused({});
  assert.equal(e.status, 401, e.head);
  assert.equal(e.body.error.code, 'unauthorized', JSON.stringify(e.body));
  assert.equal(typeof e.body.error.message, 'string');
});

test('handshake: a bad token is 401, in the header or the query', async () => {
  const [h, p, s] = user.token.split('.');
  const flipped = `${h}.${p}.${s[0] === 'A' ? 'B' : 'A'}${s.slice(1)}`;
  for (const opts of [{ token: 'not-a-token' }, { token: flipped },
    { query: `?access_token=${flipped}` }]) {
    const e = await refused(opts);
    assert.equal(e.status, 401, e.head);
    assert.equal(e.body.error.code, 'unauthorized');
  }
});

test('handshake: an Origin outside the allowlist is 403', async () => {
  for (const origin of ['http://evil.example', `http://127.0.0.1:${Number(port) + 1}`,
    `https://127.0.0.1:${port}`, 'null']) {
    const e = await refused({ token: user.token, origin });
    assert.equal(e.status, 403, `${origin}: ${e.head}`);
    assert.equal(e.body.error.code, 'origin_not_allowed');
  }
});

test('handshake: no Origin (not a browser) is let through', async () => {
  const ws = await connect({ origin: undefined });
  await assertAlive(ws);
  ws.close();
});

test('handshake: every origin of the allowlist is let through (127.0.0.1 and localhost)', async () => {
  // the stack lists both on one chat_ws_allowed_origins line
  for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `HTTP://LOCALHOST:${port}`]) {
    let ws;
    try {
      ws = await connect({ origin });
    } catch (e) {
      assert.fail(`${origin}: ${e.message} ${JSON.stringify(e.body)}`);
    }
    await assertAlive(ws);
    ws.close();
  }
});

test('handshake: Sec-WebSocket-Version 8 is 426 naming version 13', async () => {
  const e = await refused({ token: user.token, headers: { 'Sec-WebSocket-Version': '8' } });
  assert.equal(e.status, 426, e.head);
  assert.match(e.head, /\r\nsec-websocket-version: *13(\r\n|$)/i);
  assert.equal(e.body.error.code, 'unsupported_version');
});

test('handshake: a missing or short Sec-WebSocket-Key is 400', async () => {
  const missing = await refused({ token: user.token, headers: { 'Sec-WebSocket-Key': undefined } });
  assert.equal(missing.status, 400, missing.head);
  assert.equal(missing.body.error.code, 'invalid_key');
  for (const key of [randomBytes(8).toString('base64'), randomBytes(17).toString('base64').slice(0, 23)]) {
    const e = await refused({ token: user.token, key });
    assert.equal(e.status, 400, `${key}: ${e.head}`);
    assert.equal(e.body.error.code, 'invalid_key');
  }
});

test('handshake: a plain GET without Upgrade is 426', async () => {
  const r = await fetch(`${BASE}/ws`, { headers: { authorization: `Bearer ${user.token}` } });
  assert.equal(r.status, 426);
  assert.equal((await r.json()).error.code, 'upgrade_required');
});

test('handshake: POST is 405', async () => {
  const r = await api('POST', '/ws', { type: 'ping' }, { token: user.token });
  assert.equal(r.status, 405, r.text);
  assert.equal(r.json.error.code, 'method_not_allowed');
});

/* frames the server must refuse */

test('an unmasked client frame: 1002', () =>
  expectClose(frame(OP.TEXT, '{"type":"ping"}', { mask: false }), 1002));

for (const rsv of [4, 2, 1]) {
  test(`RSV bits 0x${(rsv << 4).toString(16)} set (no extension negotiated): 1002`, () =>
    expectClose(frame(OP.TEXT, '{"type":"ping"}', { rsv }), 1002));
}

for (const op of [0x3, 0xb]) {
  test(`reserved opcode 0x${op.toString(16)}: 1002`, () => expectClose(frame(op, 'x'), 1002));
}

test('a ping with a 126-byte payload: 1002', () =>
  expectClose(frame(OP.PING, randomBytes(126)), 1002));

test('a fragmented ping (FIN=0): 1002', () =>
  expectClose(frame(OP.PING, 'abc', { fin: false }), 1002));

test('a continuation frame with no message started: 1002', () =>
  expectClose(frame(OP.CONT, '{"type":"ping"}'), 1002));

test('a new text frame while a fragmented message is in progress: 1002', () =>
  expectClose([frame(OP.TEXT, '{"type":', { fin: false }), frame(OP.TEXT, '{"type":"ping"}')], 1002));

test('a length not in its shortest form (16-bit for 15 bytes, 64-bit for 200): 1002', async () => {
  await expectClose(frame(OP.TEXT, '{"type":"ping"}', { longForm: 16 }), 1002);
  await expectClose(frame(OP.TEXT, JSON.stringify({ type: 'ping', pad: 'p'.repeat(170) }),
    { longForm: 64 }), 1002);
});

test('a close frame with a 1-byte payload: 1002', () =>
  expectClose(frame(OP.CLOSE, Buffer.from([0x03])), 1002));

for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) {
  test(`a close frame with the invalid code ${code}: 1002`, () =>
    expectClose(frame(OP.CLOSE, closePayload(code, 'bye')), 1002));
}

for (const code of [1000, 1001, 3000, 4999]) {
  test(`a close frame with the valid code ${code} is echoed`, () =>
    expectClose(frame(OP.CLOSE, closePayload(code, 'bye')), code));
}

test('an empty close frame is answered with a close and the socket is closed', async () => {
  const ws = await connect();
  ws.send(frame(OP.CLOSE));
  await ws.closedWith(10000);
  assert.ok(ws.closeFrame, 'a close frame came back');
  assert.ok(ws.closeFrame.payload.length === 0 || ws.closeFrame.payload.readUInt16BE(0) === 1000,
    `close payload ${ws.closeFrame.payload.toString('hex')}`);
  await ws.waitClosed(10000);
});

test('a close reason that is not UTF-8: 1007', () =>
  expectClose(frame(OP.CLOSE, closePayload(1000, Buffer.from([0x6f, 0x6b, 0xc3, 0x28]))), 1007));

test('invalid UTF-8 in a text message: 1007 at the bad byte, long before the message ends', async () => {
  // the header announces 1 MiB; only a few bytes follow, the last one bad
  const ws = await connect();
  ws.send(frame(OP.TEXT, Buffer.concat([Buffer.from('{"type":"ping","pad":"ok '), Buffer.from([0xe2, 0x82, 0x28])]),
    { declaredLength: MiB }));
  assert.equal(await ws.closedWith(8000), 1007);
  await ws.waitClosed(10000);
});

test('a text message ending inside a UTF-8 character: 1007', () =>
  expectClose(frame(OP.TEXT, Buffer.concat([Buffer.from('{"type":"ping","x":"'), Buffer.from([0xf0, 0x9f, 0x98])])), 1007));

test('a message over the cap: 1009 as soon as the header announces it', async () => {
  // 64 MiB announced against the 20 MiB cap; no payload is ever sent
  const ws = await expectClose(frame(OP.TEXT, Buffer.alloc(0), { declaredLength: 64 * MiB }), 1009);
  assert.equal(ws.messages.length, 0);
});

test('fragments that add up to more than the cap: 1009 at the continuation header', async () => {
  const first = frame(OP.TEXT, '{"type":"ping","pad":"' + 'a'.repeat(1000), { fin: false });
  const cont = frame(OP.CONT, Buffer.alloc(0), { declaredLength: CAP - 500 });
  await expectClose([first, cont], 1009);
});

test('a binary message: 1003', () =>
  expectClose(frame(OP.BINARY, Buffer.from([1, 2, 3, 4])), 1003));

/* good paths */

test('ping: a pong with the same payload (empty, small, and 125 bytes)', async () => {
  const ws = await connect();
  for (const payload of [Buffer.alloc(0), Buffer.from('hello'), randomBytes(125)]) {
    const from = ws.frames.length;
    ws.send(frame(OP.PING, payload));
    const pong = await ws.waitFor(() => ws.frames.slice(from).find((f) => f.opcode === OP.PONG),
      `the pong to a ${payload.length}-byte ping`);
    assert.deepEqual(pong.payload, payload);
    assert.equal(pong.fin, true);
    assert.equal(pong.masked, false);
  }
  await assertAlive(ws);
  ws.close();
});

test('a fragmented message (3 fragments) with a ping in between: pong at once, then the answer', async () => {
  const ws = await connect();
  ws.send(frame(OP.TEXT, '{"ty', { fin: false }));
  ws.send(frame(OP.PING, 'between'));
  ws.send(frame(OP.CONT, 'pe":"pi', { fin: false }));
  await ws.frameWhere((f) => f.opcode === OP.PONG && f.payload.toString() === 'between',
    'the pong between fragments');
  assert.equal(ws.messages.length, 0, 'no answer before the last fragment');
  ws.send(frame(OP.CONT, 'ng"}'));
  const answer = await ws.message((m) => m.type === 'pong', 'the pong message');
  assert.deepEqual(answer, { type: 'pong' });
  // empty fragments are fine too
  ws.send(frame(OP.TEXT, '', { fin: false }));
  ws.send(frame(OP.CONT, '{"type":"ping"}', { fin: false }));
  ws.send(frame(OP.CONT, ''));
  await ws.messagesWhere((m) => m.type === 'pong', 2, 'the pong to a message with empty fragments');
  ws.close();
});

test('a ~200 KiB message in thousands of tiny TCP writes is reassembled byte for byte', async (t) => {
  // multi-byte characters get cut across writes, the masking key across
  // every alignment; the ref comes back verbatim in the error frame
  const unit = 'abc é € 😀 ';
  const ref = unit.repeat(Math.ceil((200 * 1024) / Buffer.byteLength(unit)));
  const buf = frame(OP.TEXT, JSON.stringify({ type: 'no_such_type', ref }));
  const ws = await connect();
  const sizes = [1, 1, 1, 1, 1, 1, 1, 2, 3, 5, 7, 1, 11, 13, 1, 17, 29, 64, 97, 128];
  const t0 = Date.now();
  const writes = await ws.writeInPieces(buf, sizes);
  const answer = await ws.message((m) => m.type === 'error', 'the error frame', 20000);
  assert.equal(answer.code, 'unknown_type');
  assert.ok(answer.ref === ref, `ref echoed (${answer.ref?.length} vs ${ref.length} chars)`);
  assert.ok(writes > 2000, `${writes} writes in ${Date.now() - t0} ms`);
  t.diagnostic(`${buf.length} bytes in ${writes} writes, ${Date.now() - t0} ms`);
  await assertAlive(ws);
  ws.close();
});

test('a 16 MiB message under the raised 20m cap is answered', async () => {
  const ws = await connect();
  const text = JSON.stringify({ type: 'ping', pad: 'x'.repeat(16 * MiB) });
  ws.send(frame(OP.TEXT, text));
  const pong = await ws.message((m) => m.type === 'pong', 'the pong to 16 MiB', 30000);
  assert.deepEqual(pong, { type: 'pong' });
  // and in fragments of 4 MiB
  const data = Buffer.from(text);
  for (let off = 0; off < data.length; off += 4 * MiB) {
    const end = Math.min(off + 4 * MiB, data.length);
    ws.send(frame(off === 0 ? OP.TEXT : OP.CONT, data.subarray(off, end), { fin: end === data.length }));
  }
  await ws.messagesWhere((m) => m.type === 'pong', 2, 'the pong to 16 MiB in fragments', 30000);
  ws.close();
});

test('the server pings, and a client that answers stays connected', async () => {
  const ws = await connect();
  const pings = await ws.waitFor(() => {
    const p = ws.frames.filter((f) => f.opcode === OP.PING);
    return p.length >= 2 ? p : null;
  }, 'two server pings', 15000);
  assert.equal(pings[0].masked, false);
  assert.ok(pings[0].payload.length <= 125);
  await sleep(500);
  assert.equal(ws.closed, false);
  await assertAlive(ws);
  ws.close();
});

test('a client that never answers pings is dropped', async () => {
  const ws = await connect();
  ws.autoPong = false;
  await ws.frameWhere((f) => f.opcode === OP.PING, 'a server ping', 15000);
  // ping interval + pong timeout is 4 s; allow plenty (times out if never)
  await ws.waitClosed(20000);
});

test('a client that stops reading is closed (1008) and the server stays healthy', async (t) => {
  const slow = await registerUser('wsslow');
  const log = logTail('nginx/error.log');
  const ws = await connect({ token: slow.token });
  ws.sock.pause();

  // each message earns an error frame echoing its 64 KiB ref: ~40 MiB of
  // answers against a 1 MiB queue and whatever the kernel buffers hold
  const ref = 'r'.repeat(64 * 1024);
  const msg = frame(OP.TEXT, JSON.stringify({ type: 'no_such_type', ref }));
  const N = 600;
  for (let i = 0; i < N; i++) ws.send(msg);

  // the edge notes the slow reader; then read what is there
  const seen = await waitFor('the slow reader noted in the error log',
    async () => new RegExp(`user ${slow.user.id} reads too slowly`).test(log.read()),
    { timeout: 15000, every: 50 }).catch(() => false);
  ws.sock.resume();

  const code = await ws.closedWith(20000);
  await ws.waitClosed(20000);
  const answered = ws.messages.filter((m) => m.type === 'error').length;
  assert.ok(answered < N, `the connection was cut short (${answered} of ${N} answered)`);
  t.diagnostic(`close code ${code}, ${answered} of ${N} answered, slow reader logged: ${seen}`);
  if (code !== undefined) assert.equal(code, 1008);
  else assert.ok(seen, 'no close frame, and the log does not name a slow reader');

  // no crash, and the server still serves
  assert.doesNotMatch(log.read(), /exited on signal|worker process \d+ exited/);
  const health = await api('GET', '/api/v1/health');
  assert.equal(health.status, 200, health.text);
  const again = await connect({ token: slow.token });
  await assertAlive(again);
  again.close();
});

test('invalid JSON gets an invalid_json error frame and the connection stays open', async () => {
  const ws = await connect();
  for (const text of ['{', 'not json', '[1,2]', '"a string"', '']) {
    const from = ws.messages.length;
    ws.send(frame(OP.TEXT, text));
    const err = await ws.waitFor(() => ws.messages.slice(from).find((m) => m.type === 'error'),
      `the error for ${JSON.stringify(text)}`);
    assert.equal(err.code, 'invalid_json', JSON.stringify(err));
    assert.equal(typeof err.message, 'string');
  }
  assert.equal(ws.closed, false);
  await assertAlive(ws);
  ws.close();
});

test('a JSON object followed by more text is invalid_json, not a command', async () => {
  // one message is one JSON object, as on the HTTP side ("{...} trailing"
  // is a 400 invalid_json there)
  const ws = await connect();
  for (const text of ['{"type":"ping"} trailing', '{"type":"ping"}{"type":"ping"}']) {
    const from = ws.messages.length;
    ws.send(frame(OP.TEXT, text));
    const answer = await ws.waitFor(() => ws.messages.slice(from).find((m) => m.type === 'error' || m.type === 'pong'),
      `the answer to ${JSON.stringify(text)}`);
    assert.equal(answer.type, 'error', `${JSON.stringify(text)} was taken as a command: ${JSON.stringify(answer)}`);
    assert.equal(answer.code, 'invalid_json');
  }
  await assertAlive(ws);
  ws.close();
});

test('an unknown type gets an error frame echoing its ref', async () => {
  const ws = await connect();
  const a = await ws.request({ type: 'teleport', ref: 'r-17' }, (m) => m.type === 'error');
  assert.equal(a.code, 'unknown_type');
  assert.equal(a.ref, 'r-17');
  const b = await ws.request({ type: 'teleport', ref: 42 }, (m) => m.type === 'error' && m.ref !== 'r-17');
  assert.equal(b.code, 'unknown_type');
  assert.equal(b.ref, 42);
  const c = await ws.request({ ref: 'no-type' }, (m) => m.type === 'error' && m.ref === 'no-type');
  assert.equal(c.code, 'invalid_message');
  await assertAlive(ws);
  ws.close();
});
