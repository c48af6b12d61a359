// What a hostile client may try with a valid account: claim to be someone
// else or an admin in the body, smuggle SQL through text fields, reach other
// people's things by id, open connections without end.  Identity comes only
// from the verified token, text is stored as given, someone else's thing is
// 404 exactly like a thing that does not exist, and one user's live
// connections are capped.  And the least privilege behind it: Redis wants a
// password, and the edge's Redis user can touch only what the edge needs;
// passwords never travel in argv.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { api, registerUsers, sql, uniqueEmail, signToken, PG, REDIS_PORT, RUN_DIR } from './lib.mjs';
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
