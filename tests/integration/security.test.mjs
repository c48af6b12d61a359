// What a hostile client may try with a valid account: claim to be someone
// else or an admin in the body, smuggle SQL through text fields, reach other
// people's things by id, open connections without end.  Identity comes only
// from the verified token, text is stored as given, someone else's thing is
// 404 exactly like a thing that does not exist, and one user's live
// connections are capped.  What a hostile page may try with the web app
// (frame it, inject script) meets the security headers, and what nginx
// refuses by itself is answered in the API's error shape, not as an HTML
// page.  And the least privilege behind it: Redis wants a password, and the
// edge's Redis user can touch only what the edge needs; passwords never
// travel in argv.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { api, BASE, registerUsers, sql, uniqueEmail, signToken, PG, REDIS_PORT, RUN_DIR } from './lib.mjs';
import { WsClient } from './ws.mjs';

let alice;
let bob;
let mallory;

before(async () => {
  [alice, bob, mallory] = await registerUsers('sec', 3, 3);
});

const as = (who) => ({ token: who.token });

// strings that break naively built SQL, JSON or logs
const NASTY = [
  "Robert'); DROP TABLE users;--",
  "' OR '1'='1",
  '"; SELECT pg_sleep(10); --',
  '\\x27\\\\ backslashes \\ and % _ wildcards',
  '$1 $$dollar$$ quoting',
  'line\nbreak\ttab',
  'unicode ✓ 表 🙂',
];

test('a role or user id in a body is ignored: identity comes from the token', async () => {
  const email = uniqueEmail('sec-role');
  const r = await api('POST', '/api/v1/auth/register',
    { email, password: 'a good password', display_name: 'Eve', role: 'admin', id: 1, user_id: 1 });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.user.role, 'user');
  assert.notEqual(r.json.user.id, 1);
  assert.equal(await sql("SELECT role FROM users WHERE email = :'p1'", email), 'user');

  // a message sent with someone else's sender_id is Mallory's
  const conv = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: alice.user.id }, as(mallory));
  assert.ok([200, 201].includes(conv.status), conv.text);
  const cid = conv.json.conversation.id;
  const m = await api('POST', `/api/v1/conversations/${cid}/messages`,
    { client_msg_id: 'sec-spoof-1', text: 'hi', sender_id: alice.user.id, user_id: alice.user.id }, as(mallory));
  assert.equal(m.status, 201, m.text);
  assert.equal(m.json.message.sender_id, mallory.user.id);

  // a token that claims admin but is not signed with the secret is nothing
  const fake = signToken({ sub: String(mallory.user.id), role: 'admin', exp: 4102444800 })
    .replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
  const me = await api('GET', '/api/v1/users/me', undefined, { token: fake });
  assert.equal(me.status, 401);
});

test('SQL and JSON metacharacters in every text field are stored and returned literally', async () => {
  // names and titles refuse control characters (400); message text keeps them
  const NAMES = NASTY.filter((s) => !/[\n\t]/.test(s));
  const users = [];
  for (const [i, name] of NAMES.entries()) {
    const email = uniqueEmail(`sec-nasty${i}`);
    const r = await api('POST', '/api/v1/auth/register', { email, password: 'a good password', display_name: name });
    assert.equal(r.status, 201, `${name}: ${r.text}`);
    assert.equal(r.json.user.display_name, name);
    users.push(r.json);
  }
  for (const [i, name] of NAMES.entries()) {
    assert.equal(await sql("SELECT display_name FROM users WHERE id = :'p1'", users[i].user.id), name);
  }

  for (const title of NAMES) {
    const g = await api('POST', '/api/v1/conversations',
      { type: 'group', title, member_ids: [bob.user.id] }, as(alice));
    assert.equal(g.status, 201, `${title}: ${g.text}`);
    assert.equal(g.json.conversation.title, title);
    const cid = g.json.conversation.id;
    for (const [k, text] of NASTY.entries()) {
      const cmid = `sec-nasty-${cid}-${k}`;
      const m = await api('POST', `/api/v1/conversations/${cid}/messages`, { client_msg_id: cmid, text }, as(alice));
      assert.equal(m.status, 201, m.text);
      assert.equal(m.json.message.text, text);
    }
    const h = await api('GET', `/api/v1/conversations/${cid}/messages`, undefined, as(bob));
    assert.deepEqual(h.json.messages.map((m) => m.text), NASTY);
  }
  // and the tables are all still there
  assert.ok(Number(await sql('SELECT count(*) FROM users')) > 0);
});

test("someone else's conversation is 404 on every endpoint that takes its id, and nothing changes", async () => {
  const conv = (await api('POST', '/api/v1/conversations',
    { type: 'group', title: 'private', member_ids: [bob.user.id] }, as(alice))).json.conversation;
  const sent = await api('POST', `/api/v1/conversations/${conv.id}/messages`,
    { client_msg_id: 'sec-private-1', text: 'secret' }, as(alice));
  assert.equal(sent.status, 201);
  const snapshot = async () => sql(`SELECT
      (SELECT count(*) FROM messages WHERE conversation_id = ${conv.id}) || '/' ||
      (SELECT string_agg(user_id || ':' || role || ':' || last_read_seq, ',' ORDER BY user_id)
         FROM conversation_members WHERE conversation_id = ${conv.id})`);
  const before = await snapshot();

  const base = `/api/v1/conversations/${conv.id}`;
  const tries = [
    ['GET', `${base}/messages`],
    ['POST', `${base}/messages`, { client_msg_id: 'sec-in', text: 'x' }],
    ['POST', `${base}/read`, { seq: 1 }],
    ['POST', `${base}/members`, { user_id: mallory.user.id }],
    ['DELETE', `${base}/members/${bob.user.id}`],
    ['DELETE', `${base}/members/${alice.user.id}`],
  ];
  for (const [method, path, body] of tries) {
    const r = await api(method, path, body, as(mallory));
    const missing = await api(method, path.replace(`/${conv.id}/`, '/987654321098/'), body, as(mallory));
    assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
    assert.deepEqual(r.json, missing.json, `${method} ${path} tells a stranger no more than a missing id`);
    assert.doesNotMatch(r.text, /secret|private/);
  }
  assert.equal(await snapshot(), before);
});

test('metacharacters in the catalog (book title, author, description, review, search) are literal', async () => {
  // an admin: a registered user promoted in SQL who logs in again
  const a = (await registerUsers('sec-admin', 1, 1))[0];
  await sql("UPDATE users SET role = 'admin' WHERE id = :'p1'", a.user.id);
  const admin = (await api('POST', '/api/v1/auth/login', { email: a.email, password: a.password })).json;
  assert.equal(admin.user.role, 'admin');

  const names = NASTY.filter((x) => !/[\n\t]/.test(x));
  for (const [i, title] of names.entries()) {
    const d = Array.from({ length: 9 }, () => Math.floor(Math.random() * 10));
    const isbn = [9, 7, 8, ...d].join('')
      + String((10 - ([9, 7, 8, ...d].reduce((s, x, k) => s + x * (k % 2 ? 3 : 1), 0) % 10)) % 10);
    const r = await api('POST', '/api/v1/admin/books',
      { isbn, title, authors: [names[(i + 1) % names.length]], description: NASTY.join(' | '), price_cents: 100 + i },
      { token: admin.token });
    assert.equal(r.status, 201, `${title}: ${r.text}`);
    const book = r.json.book;
    assert.equal(book.title, title);
    assert.equal(book.description, NASTY.join(' | '));

    const rv = await api('POST', `/api/v1/books/${book.id}/reviews`, { rating: 4, text: NASTY[i] }, as(alice));
    assert.equal(rv.status, 201, rv.text);
    const got = await api('GET', `/api/v1/books/${book.id}/reviews`, undefined, as(bob));
    assert.equal(got.status, 200, got.text);
    assert.ok(got.text.includes(JSON.stringify(NASTY[i]).slice(1, -1)), got.text);

    // searching for it is a search, not an error
    const s = await api('GET', `/api/v1/books/search?q=${encodeURIComponent(title)}`, undefined, as(bob));
    assert.equal(s.status, 200, `${title}: ${s.text}`);
  }
  assert.ok(Number(await sql('SELECT count(*) FROM books')) >= names.length);
});

test('the web app and the API carry CSP (no framing, no inline code), nosniff and Referrer-Policy', async () => {
  for (const path of ['/', '/index.html', '/chat.html', '/store.html', '/admin.html', '/chat-client.js',
    '/api/v1/health', '/api/v1/users/me', '/nope.html']) {
    const r = await fetch(BASE + path);
    await r.arrayBuffer();
    const csp = r.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/, `${path}: ${csp}`);
    assert.match(csp, /default-src 'none'/, path);
    assert.match(csp, /script-src 'self'(;|$)/, `${path}: scripts from this origin only, none inline`);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', path);
    assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
  }
  // the policy allows what the pages really use: no inline script or style
  for (const page of ['/index.html', '/chat.html', '/store.html', '/admin.html']) {
    const html = await (await fetch(BASE + page)).text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, `${page} has an inline script`);
    assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, `${page} has inline style or handlers`);
  }
});

// one request written by hand, for what fetch would not send; resolves
// with the first response as soon as it is complete
function rawRequest(head, { body = '', localAddress } = {}) {
  const url = new URL(BASE);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: url.hostname, port: Number(url.port), localAddress });
    let data = Buffer.alloc(0);
    const done = () => {
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const headers = text.slice(0, end).toLowerCase();
      const length = Number(/content-length: *(\d+)/.exec(headers)?.[1] ?? -1);
      if (end < 0 || (length >= 0 && data.length < end + 4 + length)) return false;
      let json = null;
      try { json = JSON.parse(text.slice(end + 4, end + 4 + length)); } catch { /* left null */ }
      sock.destroy();
      resolve({ status: Number(text.split(' ')[1]), headers, json, text });
      return true;
    };
    sock.on('data', (d) => { data = Buffer.concat([data, d]); done(); });
    sock.on('error', reject);
    sock.on('close', () => { if (!done()) reject(new Error(`no complete answer: ${data.toString('latin1')}`)); });
    sock.write(head + '\r\nHost: ' + url.host + '\r\nConnection: close\r\n\r\n' + body);
  });
}

test("nginx's own errors are the API's JSON error shape, not HTML pages", async () => {
  const cases = [
    // a NUL in the path: nginx refuses it before any location
    ['GET /api/v1/books/%00 HTTP/1.1', 400, 'bad_request'],
    ['GET /api/v1/conversations%00/1 HTTP/1.1', 400, 'bad_request'],
    // a request line nginx cannot read, an HTTP version it does not speak
    ['G@T /api/v1/health HTTP/1.1', 400, 'bad_request'],
    ['GET /api/v1/health HTTP/2.0', 505, 'http_version_not_supported'],
    // a URI over large_client_header_buffers (8k)
    [`GET /api/v1/books/search?q=${'a'.repeat(9000)} HTTP/1.1`, 414, 'uri_too_long'],
    // one header over the buffers: nginx's 494, answered 400
    [`GET /api/v1/health HTTP/1.1\r\nX-Big: ${'b'.repeat(9000)}`, 400, 'header_too_large'],
    // a body over client_max_body_size (1m), refused by nginx before the module
    [`POST /api/v1/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${2 * 1024 * 1024}`,
      413, 'too_large'],
    // a static location refuses POST; a missing file
    ['POST /index.html HTTP/1.1\r\nContent-Length: 0', 405, 'method_not_allowed'],
    ['GET /no-such-page.html HTTP/1.1', 404, 'not_found'],
    // the module's own answers keep their codes
    ['GET /api/v1/no-such-endpoint HTTP/1.1', 404, 'not_found'],
    ['DELETE /api/v1/health HTTP/1.1', 405, 'method_not_allowed'],
    // an address not allowed to scrape
    ['GET /metrics HTTP/1.1', 403, 'forbidden', '127.0.0.2'],
  ];
  for (const [head, status, code, localAddress] of cases) {
    const r = await rawRequest(head, { localAddress });
    const what = head.slice(0, 60);
    assert.equal(r.status, status, `${what}: ${r.text.slice(0, 200)}`);
    assert.match(r.headers, /content-type: application\/json/, `${what}: ${r.headers}`);
    assert.equal(r.json?.error?.code, code, `${what}: ${r.text.slice(0, 300)}`);
    assert.equal(typeof r.json.error.message, 'string');
  }
});

/* per-user caps (the local stack: chat_ws_max_per_user 20,
 * chat_poll_max_per_user 10) */

test('a user gets at most 20 WebSockets: the 21st is refused with 429 too_many_connections', async () => {
  const [u] = await registerUsers('cap-ws', 1, 1);
  const socks = [];
  try {
    for (let i = 0; i < 20; i++) socks.push(await WsClient.connect({ token: u.token }));
    const err = await WsClient.connect({ token: u.token }).then((ws) => { socks.push(ws); return null; }, (e) => e);
    assert.ok(err, 'the 21st WebSocket was accepted');
    assert.equal(err.status, 429, err.message);
    assert.equal(err.body.error.code, 'too_many_connections');
    // someone else is not affected
    const [v] = await registerUsers('cap-ws-other', 1, 1);
    (await WsClient.connect({ token: v.token })).close();
    // one closes: one more may open
    socks.pop().close();
    const again = await (async () => {
      for (let i = 0; i < 50; i++) {
        try { return await WsClient.connect({ token: u.token }); } catch { await new Promise((r) => setTimeout(r, 100)); }
      }
      return null;
    })();
    assert.ok(again, 'no WebSocket after one was closed');
    socks.push(again);
  } finally {
    for (const ws of socks) ws.close();
  }
});

test('a user gets at most 10 long-poll sessions: the 11th is refused with 429 too_many_connections', async () => {
  const [u] = await registerUsers('cap-poll', 1, 1);
  const cursors = [];
  for (let i = 0; i < 10; i++) {
    const r = await api('GET', '/api/v1/events', undefined, { token: u.token });
    assert.equal(r.status, 200, r.text);
    cursors.push(r.json.cursor);
  }
  const r = await api('GET', '/api/v1/events', undefined, { token: u.token });
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json.error.code, 'too_many_connections');
  // the open sessions go on working
  const p = await api('GET', `/api/v1/events?cursor=${encodeURIComponent(cursors[0])}&timeout=0`, undefined,
    { token: u.token });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.resync, false);
});

/* Redis: a password, and an ACL user per side */

// redis-cli as user (null: no credentials at all), the password from the
// stack's file through the environment, as the stack passes it
function redisAs(user, ...args) {
  const env = { ...process.env };
  delete env.REDISCLI_AUTH;
  const argv = ['-p', REDIS_PORT, '--raw'];
  if (user) {
    env.REDISCLI_AUTH = readFileSync(`${RUN_DIR}/redis/${user === 'chat-edge' ? 'edge' : 'worker'}.pass`, 'utf8').trim();
    argv.push('--user', user);
  }
  const out = spawnSync('redis-cli', [...argv, ...args], { env, encoding: 'utf8' });
  return (out.stdout + out.stderr).trim();
}

test('Redis wants a password, and the edge\'s user is refused keys and commands outside its ACL', () => {
  assert.match(redisAs(null, 'PING'), /NOAUTH/);
  assert.match(redisAs(null, 'KEYS', '*'), /NOAUTH/);

  // what the edge uses works
  assert.match(redisAs('chat-edge', 'PING'), /PONG/);
  assert.match(redisAs('chat-edge', 'HGETALL', 'chat:workers'), /\d/);
  // the workers' notification jobs (who wrote to whom, previews), other
  // keys, and anything dangerous: refused
  assert.match(redisAs('chat-edge', 'XRANGE', 'chat:notify', '-', '+'), /NOPERM/);
  assert.match(redisAs('chat-edge', 'GET', 'anything-else'), /NOPERM/);
  assert.match(redisAs('chat-edge', 'FLUSHALL'), /NOPERM/);
  assert.match(redisAs('chat-edge', 'KEYS', '*'), /NOPERM/);
  assert.match(redisAs('chat-edge', 'CONFIG', 'GET', 'requirepass'), /NOPERM/);
  assert.match(redisAs('chat-edge', 'DEL', 'chat:workers'), /NOPERM/);
  assert.match(redisAs('chat-edge', 'ACL', 'LIST'), /NOPERM/);
  // a script cannot reach further than its caller
  assert.match(redisAs('chat-edge', 'EVAL', "return redis.call('XLEN', 'chat:notify')", '0'), /NOPERM|can't access|permission/i);
  // the workers may do their work, not the dangerous things
  assert.match(redisAs('chat-worker', 'FLUSHALL'), /NOPERM/);
  assert.match(redisAs('chat-worker', 'KEYS', '*'), /NOPERM/);
  assert.match(redisAs('chat-worker', 'CONFIG', 'GET', 'appendonly'), /appendonly/);
});

/* secrets never in argv; secret files read strictly, the same on both sides */

test('user-add takes the password on stdin or from a file, never from argv', async () => {
  const email = uniqueEmail('useradd');
  let out = spawnSync('backend/chat-backend', ['--pg', PG, 'user-add', '--email', email, '--name', 'Argv',
    '--password', 'a password in argv'], { encoding: 'utf8' });
  assert.equal(out.status, 2, out.stderr);
  assert.match(out.stderr, /--password is refused/);

  out = spawnSync('backend/chat-backend', ['--pg', PG, 'user-add', '--email', email, '--name', 'Stdin'],
    { input: 'a password on stdin\n', encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return api('POST', '/api/v1/auth/login', { email, password: 'a password on stdin' }).then((r) => {
    assert.equal(r.status, 200, r.text);
  });
});

test('the backend refuses a secret file any user can read, naming it', () => {
  const out = spawnSync('sh', ['-c', `f=$(mktemp) && head -c 40 /dev/urandom | base64 > "$f" && chmod 644 "$f" && \
    backend/chat-backend --token-secret-file "$f" --pg "${PG}" --workers 1; rc=$?; rm -f "$f"; exit $rc`],
    { encoding: 'utf8', timeout: 10000 });
  assert.equal(out.status, 2, out.stderr);
  assert.match(out.stderr, /readable or writable by any user/);
});
