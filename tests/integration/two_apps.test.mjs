// Two applications in one nginx: the test stack's second server
// (conf/nginx-app2.conf.in, on APP2_PORT) sets, for itself, what
// ngx_chat_module/README.md lists with "server, location" in a
// directive's context: its API prefix (/books/api/v1), its WebSocket
// origins, its body and message caps, its per-user WebSocket cap.  Each
// server keeps to its own settings and refuses what only the other
// allows; a location's setting beats its server's; nginx -t refuses a
// bad value wherever it is set, and an http-only directive in a server.
//
// Both servers share the edge's Redis, command streams and token secret
// (http level), so they share one backend: users and tokens are the same
// on both.  Separate Redis endpoints and secrets per server are not built
// (ngx_chat_module/README.md, Directives, says why).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { api, BASE, RUN_DIR, registerUser } from './lib.mjs';
import { WsClient, frame, OP } from './ws.mjs';
import { png } from './media.mjs';

const run = promisify(execFile);

const APP2 = process.env.CHAT_APP2_URL;
const ONE = { base: BASE, prefix: '/api/v1', ws: '/ws', origin: BASE };
const TWO = { base: APP2, prefix: '/books/api/v1', ws: '/books/ws', origin: APP2 };

let user;
before(async () => {
  assert.ok(APP2, 'CHAT_APP2_URL: the stack runs a second application (tests/run.sh sets APP2_PORT)');
  user = await registerUser('twoapps');
});

const opened = new Set();
after(() => {
  for (const ws of opened) ws.close();
});

async function connect(app, opts = {}) {
  const ws = await WsClient.connect({ base: app.base, path: app.ws, origin: app.origin, token: user.token, ...opts });
  opened.add(ws);
  return ws;
}

// the error WsClient.connect threw for a refused handshake
async function refused(app, opts) {
  try {
    const ws = await connect(app, opts);
    ws.close();
  } catch (e) {
    if (e.status) return e;
    throw e;
  }
  assert.fail(`${app.base}${app.ws} let the handshake through`);
}

test('each application answers under its own API prefix, and not under the other\'s', async () => {
  for (const app of [ONE, TWO]) {
    const r = await api('GET', `${app.prefix}/health`, undefined, { base: app.base });
    assert.equal(r.status, 200, `${app.base}${app.prefix}: ${r.text}`);
    assert.equal(r.json.status, 'ok');
  }

  // the other's prefix, and look-alikes of one's own, are no API
  for (const [app, path] of [[TWO, '/api/v1/health'], [ONE, '/books/api/v1/health'],
    [TWO, '/books/api/v1x/health'], [TWO, '/books/api/v1'], [TWO, '/books/api/health']]) {
    const r = await api('GET', path, undefined, { base: app.base });
    assert.equal(r.status, 404, `${app.base}${path}: ${r.text}`);
    assert.equal(r.json?.error?.code, 'not_found', `${app.base}${path}: ${r.text}`);
  }

  // the whole API is there under the prefix: sign in and read, with ids in paths
  const login = await api('POST', `${TWO.prefix}/auth/login`, { email: user.email, password: user.password }, { base: TWO.base });
  assert.equal(login.status, 200, login.text);
  assert.equal(login.json.user.id, user.user.id, 'one backend behind both');
  const auth = { base: TWO.base, token: login.json.token };
  const me = await api('GET', `${TWO.prefix}/users/me`, undefined, auth);
  assert.equal(me.status, 200, me.text);
  const peer = await registerUser('twoapps-peer');
  const conv = await api('POST', `${TWO.prefix}/conversations`, { type: 'direct', user_id: peer.user.id }, auth);
  assert.ok(conv.status === 201 || conv.status === 200, conv.text);
  const history = await api('GET', `${TWO.prefix}/conversations/${conv.json.conversation.id}/messages`, undefined, auth);
  assert.equal(history.status, 200, history.text);
  // a method the route does not take is still a 405 under the prefix
  const wrong = await api('DELETE', `${TWO.prefix}/users/me`, undefined, auth);
  assert.equal(wrong.status, 405, wrong.text);
});

test('files go up and come back under the second application\'s prefix', async () => {
  const image = png({ width: 8, height: 8 });
  const up = await api('POST', `${TWO.prefix}/uploads?name=dot.png`, undefined,
    { base: TWO.base, token: user.token, raw: image, headers: { 'content-type': 'image/png' } });
  assert.equal(up.status, 201, up.text);
  const id = up.json.attachment.id;
  const res = await fetch(`${TWO.base}${TWO.prefix}/attachments/${id}`, { headers: { authorization: `Bearer ${user.token}` } });
  assert.equal(res.status, 200);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), image);
  // the first application's paths are not this server's
  const other = await api('POST', '/api/v1/uploads', undefined,
    { base: TWO.base, token: user.token, raw: image, headers: { 'content-type': 'image/png' } });
  assert.equal(other.status, 404, other.text);
});

test('each application lets in its own WebSocket origin and refuses the other\'s', async () => {
  for (const [app, other] of [[ONE, TWO], [TWO, ONE]]) {
    const e = await refused(app, { origin: other.origin });
    assert.equal(e.status, 403, `${app.base} with ${other.origin}: ${e.head}`);
    assert.equal(e.body.error.code, 'origin_not_allowed');

    const ws = await connect(app);
    const pong = await ws.request({ type: 'ping' }, (m) => m.type === 'pong');
    assert.equal(pong.type, 'pong');
    ws.close();
  }
});

test('each application has its own caps, and a location\'s beats its server\'s', async () => {
  const peer = await registerUser('twoapps-caps');
  const conv = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: peer.user.id }, { token: user.token });
  assert.ok(conv.status === 201 || conv.status === 200, conv.text);
  const id = conv.json.conversation.id;

  // chat_max_body_size: 1k on the second server, 64k on the first
  const big = { email: `${'x'.repeat(1500)}@example.com`, password: 'correct horse battery', display_name: 'Big' };
  const two = await api('POST', `${TWO.prefix}/auth/register`, big, { base: TWO.base });
  assert.equal(two.status, 413, two.text);
  assert.equal(two.json.error.code, 'too_large');
  const one = await api('POST', `${ONE.prefix}/auth/register`, big);
  assert.notEqual(one.status, 413, one.text);

  // its conversations location sets 16k: a 2 KB message goes through there
  const text = 'a'.repeat(2000);
  const sent = await api('POST', `${TWO.prefix}/conversations/${id}/messages`,
    { client_msg_id: `two-${randomBytes(4).toString('hex')}`, text }, { base: TWO.base, token: user.token });
  assert.equal(sent.status, 201, sent.text);
  const seen = await api('GET', `/api/v1/conversations/${id}/messages`, undefined, { token: user.token });
  assert.ok(seen.json.messages.some((m) => m.text === text), 'stored once, for the one backend');

  // chat_ws_max_message: 4k on the second server (1009), 20m on the first
  const pad = '{"type":"ping","pad":"' + 'a'.repeat(5000) + '"}';
  const ws2 = await connect(TWO);
  ws2.send(frame(OP.TEXT, pad));
  assert.equal(await ws2.closedWith(), 1009);
  const ws1 = await connect(ONE);
  ws1.send(frame(OP.TEXT, pad));
  await ws1.message((m) => m.type === 'pong', 'the pong');
  ws1.close();

  // chat_ws_max_per_user: 2 on the second server, 20 on the first (the
  // count is the user's WebSockets on this edge, whichever server)
  const capped = await registerUser('twoapps-conns');
  const mine = { token: capped.token };
  await connect(TWO, mine);
  await connect(TWO, mine);
  const third = await refused(TWO, mine);
  assert.equal(third.status, 429, third.head);
  assert.equal(third.body.error.code, 'too_many_connections');
  const elsewhere = await connect(ONE, mine);
  await elsewhere.request({ type: 'ping' }, (m) => m.type === 'pong');
});

// nginx -t on a configuration of its own: the module the stack loads, one
// server with the given directives
async function nginxTest(serverBlock) {
  const module = /^load_module (\S+);$/m.exec(readFileSync(`${RUN_DIR}/nginx/nginx.conf`, 'utf8'))[1];
  const dir = mkdtempSync(join(tmpdir(), 'chat-two-apps-'));
  try {
    writeFileSync(join(dir, 'nginx.conf'), `load_module ${module};
pid ${dir}/nginx.pid;
events {}
http {
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    access_log off;
    chat_token_secret ${randomBytes(32).toString('hex')};
    server {
        listen 127.0.0.1:1;
${serverBlock}
    }
}
`);
    try {
      await run('nginx', ['-t', '-q', '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'error_log stderr;']);
      return { ok: true, err: '' };
    } catch (e) {
      return { ok: false, err: e.stderr };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('nginx -t: the per-application directives work in server and location, with their bounds; the edge\'s own stay http-only', async () => {
  const good = await nginxTest(`
        chat_api_prefix /shop/v2;
        chat_ws_allowed_origins https://shop.example;
        chat_max_body_size 8k;
        chat_ws_max_queue 128k;
        location /shop/ { chat_api; chat_max_body_size 32k; chat_poll_max_per_user 3; }
        location = /shop/ws { chat_websocket; chat_ws_allowed_origins https://app.shop.example;
                              chat_ws_max_message 64k; chat_ws_ping_interval 10s; chat_ws_max_per_user 5; }`);
  assert.ok(good.ok, good.err);

  const bad = [
    ['location /x/ { chat_api_prefix /x/; chat_api; }', /chat_api_prefix "\/x\/" must start with "\/" and not end with one/],
    ['chat_api_prefix api/v1;', /chat_api_prefix "api\/v1" must start with "\/"/],
    ['location /x/ { chat_api_prefix "/x y"; chat_api; }', /must be a plain path/],
    ['chat_ws_max_queue 1k;', /chat_ws_max_queue must be at least 64k/],
    ['location = /ws { chat_ws_max_message 65m; chat_websocket; }', /chat_ws_max_message must be at most 64m/],
    ['location = /ws { chat_ws_allowed_origins ws://x; chat_websocket; }', /must start with http:\/\/ or https:\/\//],
    ['chat_ws_max_per_user 0;', /value must be between 1 and 10000/],
    ['chat_redis 127.0.0.1:6379;', /"chat_redis" directive is not allowed here/],
    ['chat_token_secret_file /nonexistent;', /"chat_token_secret_file" directive is not allowed here/],
    ['chat_stream_shards 8;', /"chat_stream_shards" directive is not allowed here/],
    ['chat_presence_ttl 10s;', /"chat_presence_ttl" directive is not allowed here/],
  ];
  for (const [block, why] of bad) {
    const r = await nginxTest(`        ${block}`);
    assert.equal(r.ok, false, `nginx -t took: ${block}`);
    assert.match(r.err, why, block);
  }
});
