// Two applications in one nginx: the test stack's second server
// (conf/nginx-app2.conf.in, on APP2_PORT) sets, for itself, what
// ngx_chat_module/README.md lists with "server, location" in a
// directive's context: its Redis and token secret (conf/stack.sh starts a
// second Redis, a second database and a backend reading them), its API
// prefix (/books/api/v1), its WebSocket origins, its body and message
// caps, its per-user WebSocket cap.  Each server keeps to its own
// settings and refuses what only the other allows: the other's tokens,
// origins, paths; a message of one never reaches the other's Redis; both
// work at once; a location's setting beats its server's; nginx -t refuses
// a bad value wherever it is set, and an http-only directive in a server.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { api, BASE, REDIS_PORT, RUN_DIR, redisEachMaster, registerUser } from './lib.mjs';
import { WsClient, frame, OP } from './ws.mjs';
import { png } from './media.mjs';

const run = promisify(execFile);

const APP2 = process.env.CHAT_APP2_URL;
const ONE = { base: BASE, prefix: '/api/v1', ws: '/ws', origin: BASE, redis: REDIS_PORT };
const TWO = { base: APP2, prefix: '/books/api/v1', ws: '/books/ws', origin: APP2, redis: process.env.CHAT_APP2_REDIS_PORT };

// a user of each application (each has its own users)
let one;
let two;
before(async () => {
  assert.ok(APP2, 'CHAT_APP2_URL: the stack runs a second application (tests/run.sh sets APP2_PORT)');
  assert.ok(TWO.redis, 'CHAT_APP2_REDIS_PORT: the second application has its own Redis');
  [one, two] = await Promise.all([registerUser('twoapps'), registerUser('twoapps', TWO)]);
});

const opened = new Set();
after(() => {
  for (const ws of opened) ws.close();
});

async function connect(app, opts = {}) {
  const token = (app === TWO ? two : one).token;
  const ws = await WsClient.connect({ base: app.base, path: app.ws, origin: app.origin, token, ...opts });
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

// Every stream entry in the Redis on port whose fields mention needle,
// from start (a stream id) on: one script, whatever the streams are.
async function streamsMentioning(port, start, needle) {
  const outs = await redisEachMaster(port, 'EVAL', `
    local found = {}
    for _, k in ipairs(redis.call('KEYS', 'chat:*')) do
      if redis.call('TYPE', k)['ok'] == 'stream' then
        for _, e in ipairs(redis.call('XRANGE', k, ARGV[1], '+')) do
          for _, v in ipairs(e[2]) do
            if string.find(v, ARGV[2], 1, true) then found[#found + 1] = k end
          end
        end
      end
    end
    return found`, '0', start, needle);
  return outs.flatMap((out) => (out ? out.split('\n') : []));
}

// a direct conversation of app's user me with a new user of app
async function conversation(app, me, tag) {
  const peer = await registerUser(tag, app);
  const conv = await api('POST', `${app.prefix}/conversations`, { type: 'direct', user_id: peer.user.id },
    { base: app.base, token: me.token });
  assert.ok(conv.status === 201 || conv.status === 200, conv.text);
  return { peer, id: conv.json.conversation.id };
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
  const login = await api('POST', `${TWO.prefix}/auth/login`, { email: two.email, password: two.password }, { base: TWO.base });
  assert.equal(login.status, 200, login.text);
  assert.equal(login.json.user.id, two.user.id);
  const auth = { base: TWO.base, token: login.json.token };
  const me = await api('GET', `${TWO.prefix}/users/me`, undefined, auth);
  assert.equal(me.status, 200, me.text);
  assert.equal(me.json.user.email, two.email);
  const { id } = await conversation(TWO, two, 'twoapps-peer');
  const history = await api('GET', `${TWO.prefix}/conversations/${id}/messages`, undefined, auth);
  assert.equal(history.status, 200, history.text);
  // a method the route does not take is still a 405 under the prefix
  const wrong = await api('DELETE', `${TWO.prefix}/users/me`, undefined, auth);
  assert.equal(wrong.status, 405, wrong.text);
});

test('each application has its own users and token secret: the other\'s tokens and passwords are refused', async () => {
  for (const [app, other, mine, theirs] of [[TWO, ONE, two, one], [ONE, TWO, one, two]]) {
    // its own token works; the other application's is signed with another secret
    const ok = await api('GET', `${app.prefix}/users/me`, undefined, { base: app.base, token: mine.token });
    assert.equal(ok.status, 200, ok.text);
    const foreign = await api('GET', `${app.prefix}/users/me`, undefined, { base: app.base, token: theirs.token });
    assert.equal(foreign.status, 401, `${app.base} took a token of ${other.base}: ${foreign.text}`);
    assert.equal(foreign.json.error.code, 'unauthorized');

    // nor does the WebSocket take it
    const e = await refused(app, { token: theirs.token });
    assert.equal(e.status, 401, e.head);

    // the other's user is not one of its users
    const login = await api('POST', `${app.prefix}/auth/login`, { email: theirs.email, password: theirs.password },
      { base: app.base });
    assert.equal(login.status, 401, login.text);
  }
});

test('both applications work at once, and a message of one never reaches the other\'s Redis', async () => {
  const [a, b] = await Promise.all([conversation(ONE, one, 'twoapps-a'), conversation(TWO, two, 'twoapps-b')]);
  const [wsA, wsB] = await Promise.all([connect(ONE, { token: a.peer.token }), connect(TWO, { token: b.peer.token })]);
  // entries from now on (stream ids are Redis' clock in ms; a second early
  // for clocks that differ)
  const start = String(Date.now() - 1000);
  const textA = `only-one-${randomBytes(6).toString('hex')}`;
  const textB = `only-two-${randomBytes(6).toString('hex')}`;

  const [sentA, sentB] = await Promise.all([
    api('POST', `${ONE.prefix}/conversations/${a.id}/messages`, { client_msg_id: `a-${textA}`, text: textA },
      { base: ONE.base, token: one.token }),
    api('POST', `${TWO.prefix}/conversations/${b.id}/messages`, { client_msg_id: `b-${textB}`, text: textB },
      { base: TWO.base, token: two.token }),
  ]);
  assert.equal(sentA.status, 201, sentA.text);
  assert.equal(sentB.status, 201, sentB.text);

  // each peer hears its own application's message, live
  await Promise.all([
    wsA.message((m) => m.type === 'message' && m.message.text === textA, 'the first application\'s message'),
    wsB.message((m) => m.type === 'message' && m.message.text === textB, 'the second application\'s message'),
  ]);

  // the command and its events went through the application's own Redis
  // only (the control: each is found where it belongs)
  assert.ok((await streamsMentioning(TWO.redis, start, textB)).length > 0, 'the second application\'s Redis carried it');
  assert.deepEqual(await streamsMentioning(ONE.redis, start, textB), [], 'the first application\'s Redis never saw it');
  assert.ok((await streamsMentioning(ONE.redis, start, textA)).length > 0, 'the first application\'s Redis carried its own');
  assert.deepEqual(await streamsMentioning(TWO.redis, start, textA), [], 'the second application\'s Redis never saw it');

  // and each stored it for its own users only
  const mineB = await api('GET', `${TWO.prefix}/conversations/${b.id}/messages`, undefined, { base: TWO.base, token: two.token });
  assert.ok(mineB.json.messages.some((m) => m.text === textB), mineB.text);
});

test('long polls and sign-outs of the second application go through its own Redis', async () => {
  // a long poll on the second application hears its message
  const { peer, id } = await conversation(TWO, two, 'twoapps-poll');
  const events = (cursor, timeout) => api('GET',
    `${TWO.prefix}/events?${cursor ? `cursor=${encodeURIComponent(cursor)}&` : ''}timeout=${timeout}`,
    undefined, { base: TWO.base, token: peer.token });
  const opened = await events(undefined, 0);
  assert.equal(opened.status, 200, opened.text);
  const held = events(opened.json.cursor, 20);
  const text = `polled-${randomBytes(6).toString('hex')}`;
  const sent = await api('POST', `${TWO.prefix}/conversations/${id}/messages`, { client_msg_id: `p-${text}`, text },
    { base: TWO.base, token: two.token });
  assert.equal(sent.status, 201, sent.text);
  const got = await held;
  assert.equal(got.status, 200, got.text);
  assert.ok(got.json.events.some((e) => e.type === 'message' && e.message.text === text), got.text);

  // a sign-out there ends the session's token and its WebSocket at once;
  // the first application's tokens are untouched
  const leaving = await registerUser('twoapps-logout', TWO);
  const ws = await connect(TWO, { token: leaving.token });
  await ws.request({ type: 'ping' }, (m) => m.type === 'pong');
  const out = await api('POST', `${TWO.prefix}/auth/logout`, undefined, { base: TWO.base, token: leaving.token });
  assert.equal(out.status, 204, out.text);
  const after = await api('GET', `${TWO.prefix}/users/me`, undefined, { base: TWO.base, token: leaving.token });
  assert.equal(after.status, 401, after.text);
  assert.equal(await ws.closedWith(), 1008);
  const still = await api('GET', `${ONE.prefix}/users/me`, undefined, { token: one.token });
  assert.equal(still.status, 200, still.text);
});

test('files go up and come back under the second application\'s prefix', async () => {
  const image = png({ width: 8, height: 8 });
  const up = await api('POST', `${TWO.prefix}/uploads?name=dot.png`, undefined,
    { base: TWO.base, token: two.token, raw: image, headers: { 'content-type': 'image/png' } });
  assert.equal(up.status, 201, up.text);
  const id = up.json.attachment.id;
  const res = await fetch(`${TWO.base}${TWO.prefix}/attachments/${id}`, { headers: { authorization: `Bearer ${two.token}` } });
  assert.equal(res.status, 200);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), image);
  // the first application's paths are not this server's
  const other = await api('POST', '/api/v1/uploads', undefined,
    { base: TWO.base, token: two.token, raw: image, headers: { 'content-type': 'image/png' } });
  assert.equal(other.status, 404, other.text);
});

test('the URLs the backend writes come back under the second application\'s prefix, in answers and events', async () => {
  const image = png({ width: 8, height: 8 });
  const up = await api('POST', `${TWO.prefix}/uploads?name=dot.png`, undefined,
    { base: TWO.base, token: two.token, raw: image, headers: { 'content-type': 'image/png' } });
  assert.equal(up.status, 201, up.text);
  const att = up.json.attachment;
  assert.equal(att.url, `${TWO.prefix}/attachments/${att.id}`, up.text);
  const got = await fetch(`${TWO.base}${att.url}`, { headers: { authorization: `Bearer ${two.token}` } });
  assert.equal(got.status, 200, 'the URL as written downloads the file');

  // a message with it, and a text that looks like such a value: the
  // answer and the peer's event carry the prefix's URLs, the text as typed
  const { peer, id } = await conversation(TWO, two, 'twoapps-urls');
  const ws = await connect(TWO, { token: peer.token });
  const text = `see "url":"/api/v1/attachments/${att.id}" ${randomBytes(4).toString('hex')}`;
  const sent = await api('POST', `${TWO.prefix}/conversations/${id}/messages`,
    { client_msg_id: `urls-${randomBytes(6).toString('hex')}`, text, attachments: [att.id] },
    { base: TWO.base, token: two.token });
  assert.equal(sent.status, 201, sent.text);
  assert.equal(sent.json.message.text, text);
  assert.equal(sent.json.message.attachments[0].url, att.url, sent.text);
  const ev = await ws.message((m) => m.type === 'message' && m.message.text === text, 'the message with its file');
  assert.equal(ev.message.attachments[0].url, att.url, JSON.stringify(ev));
  if (ev.message.attachments[0].thumb_url) {
    assert.ok(ev.message.attachments[0].thumb_url.startsWith(`${TWO.prefix}/attachments/`), JSON.stringify(ev));
  }

  // the first application's answers keep API.md's prefix
  const upOne = await api('POST', `${ONE.prefix}/uploads?name=dot.png`, undefined,
    { token: one.token, raw: image, headers: { 'content-type': 'image/png' } });
  assert.equal(upOne.json.attachment.url, `/api/v1/attachments/${upOne.json.attachment.id}`, upOne.text);
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
  const { id } = await conversation(TWO, two, 'twoapps-caps');

  // chat_max_body_size: 1k on the second server, 64k on the first
  const big = { email: `${'x'.repeat(1500)}@example.com`, password: 'correct horse battery', display_name: 'Big' };
  const tooBig = await api('POST', `${TWO.prefix}/auth/register`, big, { base: TWO.base });
  assert.equal(tooBig.status, 413, tooBig.text);
  assert.equal(tooBig.json.error.code, 'too_large');
  const fine = await api('POST', `${ONE.prefix}/auth/register`, big);
  assert.notEqual(fine.status, 413, fine.text);

  // its conversations location sets 16k: a 2 KB message goes through there
  const text = 'a'.repeat(2000);
  const sent = await api('POST', `${TWO.prefix}/conversations/${id}/messages`,
    { client_msg_id: `two-${randomBytes(4).toString('hex')}`, text }, { base: TWO.base, token: two.token });
  assert.equal(sent.status, 201, sent.text);

  // chat_ws_max_message: 4k on the second server (1009), 20m on the first
  const pad = '{"type":"ping","pad":"' + 'a'.repeat(5000) + '"}';
  const ws2 = await connect(TWO);
  ws2.send(frame(OP.TEXT, pad));
  assert.equal(await ws2.closedWith(), 1009);
  const ws1 = await connect(ONE);
  ws1.send(frame(OP.TEXT, pad));
  await ws1.message((m) => m.type === 'pong', 'the pong');
  ws1.close();

  // chat_ws_max_per_user: 2 on the second server, 20 on the first
  const capped = await registerUser('twoapps-conns', TWO);
  const mine = { token: capped.token };
  await connect(TWO, mine);
  await connect(TWO, mine);
  const third = await refused(TWO, mine);
  assert.equal(third.status, 429, third.head);
  assert.equal(third.body.error.code, 'too_many_connections');
  const elsewhere = await connect(ONE);
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
  const secret = randomBytes(32).toString('hex');
  const good = await nginxTest(`
        chat_redis 127.0.0.1:6400;
        chat_redis_timeout 3s;
        chat_token_secret ${secret};
        chat_api_prefix /shop/v2;
        chat_ws_allowed_origins https://shop.example;
        chat_max_body_size 8k;
        chat_ws_max_queue 128k;
        location /shop/ { chat_api; chat_max_body_size 32k; chat_poll_max_per_user 3; }
        location = /shop/ws { chat_websocket; chat_ws_allowed_origins https://app.shop.example;
                              chat_ws_max_message 64k; chat_ws_ping_interval 10s; chat_ws_max_per_user 5; }
        location /other/ { chat_redis 127.0.0.1:6401; chat_redis_connect_timeout 1s;
                           chat_token_secret ${randomBytes(32).toString('hex')}; chat_api; }
        location = /metrics { chat_redis 127.0.0.1:6401; chat_redis_connect_timeout 1s; chat_metrics; }`);
  assert.ok(good.ok, good.err);

  const bad = [
    ['location /x/ { chat_api_prefix /x/; chat_api; }', /chat_api_prefix "\/x\/" must start with "\/" and not end with one/],
    ['chat_api_prefix api/v1;', /chat_api_prefix "api\/v1" must start with "\/"/],
    ['location /x/ { chat_api_prefix "/x y"; chat_api; }', /must be a plain path/],
    ['chat_ws_max_queue 1k;', /chat_ws_max_queue must be at least 64k/],
    ['location = /ws { chat_ws_max_message 65m; chat_websocket; }', /chat_ws_max_message must be at most 64m/],
    ['location = /ws { chat_ws_allowed_origins ws://x; chat_websocket; }', /must start with http:\/\/ or https:\/\//],
    ['chat_ws_max_per_user 0;', /value must be between 1 and 10000/],
    // the application's Redis and secret, wrong wherever they are set
    ['location /x/ { chat_redis "127.0.0.1:port"; chat_api; }', /invalid chat_redis "127.0.0.1:port"/],
    ['chat_redis 127.0.0.1:6400; chat_redis 127.0.0.1:6401;', /"chat_redis" directive is duplicate/],
    ['location /x/ { chat_token_secret short; chat_api; }', /need "chat_token_secret" or "chat_token_secret_file" of at least 32 bytes/],
    ['location /x/ { chat_token_secret_file /nonexistent/secret; chat_api; }', /"\/nonexistent\/secret"/],
    ['location /x/ { chat_redis_user edge; chat_api; }', /"chat_redis_user" needs "chat_redis_password_file"/],
    ['location /x/ { chat_redis_timeout never; chat_api; }', /"chat_redis_timeout" directive invalid value/],
    // two locations on one Redis with two secrets: one backend cannot serve both
    [`location /x/ { chat_api; }
        location /y/ { chat_token_secret ${randomBytes(32).toString('hex')}; chat_api; }`,
    /chat_redis 127.0.0.1:6379: the locations using it must agree on "chat_token_secret"/],
    [`location /x/ { chat_redis_timeout 1s; chat_api; } location /y/ { chat_api; }`,
    /must agree on "chat_redis_timeout"/],
    ['chat_stream_shards 8;', /"chat_stream_shards" directive is not allowed here/],
    ['chat_command_timeout 5s;', /"chat_command_timeout" directive is not allowed here/],
    ['chat_presence_ttl 10s;', /"chat_presence_ttl" directive is not allowed here/],
  ];
  for (const [block, why] of bad) {
    const r = await nginxTest(`        ${block}`);
    assert.equal(r.ok, false, `nginx -t took: ${block}`);
    assert.match(r.err, why, block);
  }
});
