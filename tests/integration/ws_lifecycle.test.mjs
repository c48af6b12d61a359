// The life of a WebSocket connection as the operating system sees it:
// closed connections give their socket back, and a reload moves clients to
// the new workers with a 1001 instead of keeping old workers alive.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { registerUser, signToken, waitFor, RUN_DIR, BASE } from './lib.mjs';
import { WsClient, frame, OP, closePayload } from './ws.mjs';

const port = new URL(BASE).port;

// server-side sockets on our port in a TCP state, e.g. 'close-wait'
function socketsIn(state) {
  const out = execFileSync('ss', ['-tanH', 'state', state, `( sport = :${port} )`]).toString();
  return out.split('\n').filter(Boolean).length;
}

test('closed WebSockets release their sockets (no CLOSE-WAIT left behind)', async () => {
  const u = await registerUser('lifecycle');
  for (let i = 0; i < 20; i++) {
    const ws = await WsClient.connect({ token: u.token });
    if (i % 2) {
      ws.send(frame(OP.CLOSE, closePayload(1000)));
      assert.equal(await ws.closedWith(), 1000);
    } else {
      ws.close();  // the client just vanishes
    }
  }
  await waitFor('the server to close its side of every connection', () => socketsIn('close-wait') === 0);
});

test('nginx reload closes WebSockets with 1001 so clients move to the new workers', async () => {
  const u = await registerUser('reload-ws');
  const ws = await WsClient.connect({ token: u.token });
  execFileSync('nginx', ['-p', `${RUN_DIR}/nginx`, '-c', `${RUN_DIR}/nginx/nginx.conf`, '-s', 'reload']);
  assert.equal(await ws.closedWith(20000), 1001);

  // a connection accepted by an old worker in its last instant is closed
  // with 1001 as well (a real client reconnects again): retry until a new
  // worker answers
  const again = await waitFor('a new connection to the new workers', async () => {
    let ws2;
    try {
      ws2 = await WsClient.connect({ token: u.token });
      ws2.sendJson({ type: 'ping' });
      assert.deepEqual(await ws2.message((m) => m.type === 'pong', 'pong', 3000), { type: 'pong' });
      return ws2;
    } catch {
      ws2?.close();
      return null;
    }
  });
  again.close();
});

test('one answer larger than the queue bound still reaches a client that keeps up', async () => {
  const u = await registerUser('big-answer');
  const ws = await WsClient.connect({ token: u.token });
  const ref = 'r'.repeat(2 * 1024 * 1024);  // twice chat_ws_max_queue (1m)
  ws.sendJson({ type: 'no-such-type', ref });
  const err = await ws.message((m) => m.type === 'error', 'the error frame');
  assert.equal(err.code, 'unknown_type');
  assert.equal(err.ref.length, ref.length);

  ws.sendJson({ type: 'ping' });
  assert.deepEqual(await ws.message((m) => m.type === 'pong', 'pong'), { type: 'pong' });
  assert.equal(ws.closed, false);
  ws.close();
});

test('a token that expires during a WebSocket session closes it with 1008', async () => {
  const u = await registerUser('ws-expiry');
  const now = Math.floor(Date.now() / 1000);
  const token = signToken({ sub: String(u.user.id), role: 'user', iat: now, exp: now + 3 });
  const ws = await WsClient.connect({ token });
  ws.sendJson({ type: 'ping' });
  await ws.message((m) => m.type === 'pong', 'pong while the token is valid');
  const code = await ws.closedWith(15000);
  assert.equal(code, 1008);
  const reason = ws.closeFrame.payload.subarray(2).toString();
  assert.match(reason, /token expired/);

  // a long-lived token's session is still up after the same time
  const ok = await WsClient.connect({ token: u.token });
  ok.sendJson({ type: 'ping' });
  await ok.message((m) => m.type === 'pong', 'pong');
  assert.equal(ok.closed, false);
  ok.close();
});
