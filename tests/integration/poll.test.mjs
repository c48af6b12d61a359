// GET /api/v1/events: the long-poll fallback.  A session's events wait in
// Redis between polls, so nothing is lost whichever nginx worker the next
// poll reaches; a poll with nothing waiting is held until an event or its
// timeout; a cursor that cannot be honoured says so (resync), never a
// silent gap.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { api, BASE, redis, registerUsers, waitFor, RUN_DIR } from './lib.mjs';
import { WsClient } from './ws.mjs';

let alice;
let bob;
let conv;

before(async () => {
  [alice, bob] = await registerUsers('poll', 2, 2);
  const r = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: bob.user.id }, { token: alice.token });
  assert.ok([200, 201].includes(r.status), r.text);
  conv = r.json.conversation;
});

// a poll on a connection of its own (agent: false), so successive polls
// are spread over the nginx workers
function poll(who, cursor, timeout, opts = {}) {
  const url = new URL('/api/v1/events', BASE);
  if (cursor !== undefined) url.searchParams.set('cursor', cursor);
  if (timeout !== undefined) url.searchParams.set('timeout', String(timeout));
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname, port: url.port, path: url.pathname + url.search, agent: false,
      headers: { authorization: `Bearer ${who.token}` },
    }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(body); } catch { /* the test looks at body */ }
        resolve({ status: res.statusCode, body, json });
      });
    });
    req.on('error', reject);
    opts.onRequest?.(req);
    req.end();
  });
}

async function open(who) {
  const r = await poll(who);
  assert.equal(r.status, 200, r.body);
  assert.match(r.json.cursor, /^[0-9a-f]{16}_\d+-\d+$/);
  assert.deepEqual(r.json.events, []);
  assert.equal(r.json.resync, false);
  return r.json.cursor;
}

let sent = 0;
// sends once; a kept-alive socket an old nginx worker closed (after a
// reload) fails the request, so it is retried with the same client_msg_id,
// which the server answers with the original message
async function say(from, text = `poll message ${++sent}`) {
  const body = { client_msg_id: `poll-${Date.now()}-${sent}-${Math.random()}`, text };
  const r = await waitFor('the message sent', async () => {
    try {
      return await api('POST', `/api/v1/conversations/${conv.id}/messages`, body, { token: from.token });
    } catch {
      return null;
    }
  });
  assert.ok([200, 201].includes(r.status), r.text);
  return r.json.message;
}

const messagesIn = (events) => events.filter((e) => e.type === 'message').map((e) => e.message);

test('events that arrive between polls wait for the next poll', async () => {
  const cursor = await open(alice);
  const m = await say(bob);
  const r = await waitFor('the message in the session', async () => {
    const got = await poll(alice, cursor, 0);
    return messagesIn(got.json.events).length ? got : null;
  });
  assert.equal(r.status, 200);
  assert.deepEqual(messagesIn(r.json.events).map((x) => x.seq), [m.seq]);
  assert.notEqual(r.json.cursor, cursor);

  // from the new cursor: nothing more, the same cursor back
  const again = await poll(alice, r.json.cursor, 1);
  assert.deepEqual(again.json.events, []);
  assert.equal(again.json.cursor, r.json.cursor);
});

test('a held poll is answered by the next event, not by its timeout', async () => {
  let cursor = await open(alice);
  const held = poll(alice, cursor, 60);
  // the poll is held once the gauge says so
  await waitFor('the poll held', async () => {
    const m = await api('GET', '/metrics');
    return /chat_poll_held [1-9]/.test(m.text);
  });
  const m = await say(bob);
  const r = await held;
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(messagesIn(r.json.events).map((x) => x.seq), [m.seq]);
  cursor = r.json.cursor;
});

test('nothing is lost or reordered across polls landing on different workers', async () => {
  let cursor = await open(alice);
  const want = [];
  const got = new Map();
  for (let round = 0; round < 10; round++) {
    for (let k = 0; k < 3; k++) want.push((await say(bob)).seq);
    const r = await poll(alice, cursor, 0);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.resync, false);
    for (const m of messagesIn(r.json.events)) got.set(m.seq, m);   // duplicates collapse
    cursor = r.json.cursor;
  }
  await waitFor('every message', async () => {
    const r = await poll(alice, cursor, 1);
    for (const m of messagesIn(r.json.events)) got.set(m.seq, m);
    cursor = r.json.cursor;
    return want.every((s) => got.has(s));
  });
  assert.deepEqual([...got.keys()].sort((a, b) => a - b).filter((s) => want.includes(s)), want);
});

test('an unknown or foreign session is an explicit resync, and leaks nothing', async () => {
  const r = await poll(alice, '0123456789abcdef_1-0', 0);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { events: [], cursor: '', resync: true, reason: 'unknown_session' });

  // bob's live session, tried by alice: the same answer, and bob's events stay his
  const bobCursor = await open(bob);
  const m = await say(alice, 'for bob only');
  const stolen = await poll(alice, bobCursor, 0);
  assert.deepEqual(stolen.json, { events: [], cursor: '', resync: true, reason: 'unknown_session' });
  const mine = await waitFor('bob gets his event', async () => {
    const got = await poll(bob, bobCursor, 0);
    return messagesIn(got.json.events).length ? got : null;
  });
  assert.deepEqual(messagesIn(mine.json.events).map((x) => x.seq), [m.seq]);
});

test('a cursor behind dropped events, or a session left unpolled too long, is told to resync', async () => {
  // the stream keeps the newest 10,000 entries; dropping them here is
  // what overflowing it does
  let cursor = await open(alice);
  const key = `chat:poll:{${alice.user.id}}:${cursor.slice(0, 16)}`;
  for (let i = 0; i < 3; i++) await say(bob);
  await waitFor('the events in the stream', async () => Number(await redis('XLEN', key)) >= 4);
  await redis('XTRIM', key, 'MAXLEN', '0');
  const r = await poll(alice, cursor, 0);
  assert.equal(r.json.resync, true);
  assert.equal(r.json.reason, 'cursor_expired');
  assert.deepEqual(r.json.events, []);
  assert.equal(r.json.cursor.slice(0, 16), cursor.slice(0, 16), 'the same session goes on');
  cursor = r.json.cursor;

  // from the new cursor, the session continues normally
  const m = await say(bob);
  const next = await waitFor('the next event', async () => {
    const got = await poll(alice, cursor, 1);
    return messagesIn(got.json.events).length ? got : null;
  });
  assert.equal(next.json.resync, false);
  assert.ok(messagesIn(next.json.events).some((x) => x.seq === m.seq));
  cursor = next.json.cursor;

  // unpolled for longer than the fan-out trusts a gateway: events may
  // have been skipped, so the client is told to resync
  await redis('HSET', `chat:online:{${alice.user.id}}`, key, String(Date.now() - 45000));
  const lapsed = await poll(alice, cursor, 0);
  assert.equal(lapsed.json.resync, true);
  assert.equal(lapsed.json.reason, 'cursor_expired');
  const fresh = await poll(alice, lapsed.json.cursor, 0);
  assert.equal(fresh.json.resync, false);
});

test('bad parameters are 400 and no token is 401', async () => {
  for (const [cursor, timeout, code] of [
    ['nonsense', 1, 'invalid_cursor'],
    ['0123456789abcdef_01-0', 1, 'invalid_cursor'],
    ['0123456789ABCDEF_1-0', 1, 'invalid_cursor'],
    [undefined, 121, 'invalid_timeout'],
    [undefined, -1, 'invalid_timeout'],
    [undefined, '2.5', 'invalid_timeout'],
  ]) {
    const r = await poll(alice, cursor, timeout);
    assert.equal(r.status, 400, `${cursor} ${timeout}: ${r.body}`);
    assert.equal(r.json.error.code, code);
  }
  const anon = await api('GET', '/api/v1/events');
  assert.equal(anon.status, 401);
});

test('a client that leaves mid-poll frees its request', async () => {
  const cursor = await open(alice);
  const gauge = async () => Number(/chat_poll_held (\d+)/.exec((await api('GET', '/metrics')).text)[1]);
  const base = await gauge();
  let request;
  const pending = poll(alice, cursor, 60, { onRequest: (req) => { request = req; } }).catch(() => 'aborted');
  await waitFor('the poll held', async () => (await gauge()) === base + 1);
  request.destroy();
  assert.equal(await pending, 'aborted');
  await waitFor('the held poll freed', async () => (await gauge()) === base);
});

test('nginx reload answers held polls at once, and the session goes on', async () => {
  const cursor = await open(alice);
  const held = poll(alice, cursor, 100);
  await waitFor('the poll held', async () => /chat_poll_held [1-9]/.test((await api('GET', '/metrics')).text));
  execFileSync('nginx', ['-p', `${RUN_DIR}/nginx`, '-c', `${RUN_DIR}/nginx/nginx.conf`, '-s', 'reload'],
    { stdio: 'ignore' });
  const r = await held;
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.cursor, cursor);

  const m = await say(bob);
  const next = await waitFor('the next event after the reload', async () => {
    const got = await poll(alice, cursor, 1);
    return messagesIn(got.json.events).length ? got : null;
  });
  assert.ok(messagesIn(next.json.events).some((x) => x.seq === m.seq));
});

test('a user who only long-polls is online while polling and goes offline after', async () => {
  const [carol, dave] = await registerUsers('pollpresence', 2, 2);
  const d = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: dave.user.id }, { token: carol.token });
  assert.ok([200, 201].includes(d.status), d.text);

  // Dave watches over a WebSocket; Carol only polls
  const daveWs = await WsClient.connect({ token: dave.token });
  const seen = (status) => daveWs.messages.find((m) => m.type === 'presence'
    && m.user_id === carol.user.id && m.status === status);
  const cursor = await open(carol);
  await daveWs.waitFor(() => seen('online'), 'Carol online', 20000);
  const r = await api('GET', `/api/v1/users/${carol.user.id}/presence`, undefined, { token: dave.token });
  assert.equal(r.json.status, 'online');

  // a poll that is held keeps her online; then she stops polling
  const held = await poll(carol, cursor, 2);
  assert.equal(held.status, 200);
  await daveWs.waitFor(() => seen('offline'), 'Carol offline once she stopped polling', 30000);
  daveWs.close();
});

// The fan-out rule (protocol/chat_online.h) is one rule for the workers'
// events and the edge's typing script alike: a poll session's stream is a
// place events go, so typing reaches a user who only long-polls.
test('typing reaches a user who only long-polls, like any event', async () => {
  const a = await api('POST', `/api/v1/conversations/${conv.id}/accept`, undefined, { token: bob.token });
  assert.equal(a.status, 200, a.text);
  let cursor = await open(alice);
  const ws = await WsClient.connect({ token: bob.token });
  try {
    const ev = await waitFor('a typing event in the poll session', async () => {
      ws.sendJson({ type: 'typing', conversation_id: conv.id });
      const r = await poll(alice, cursor, 1);
      if (r.status !== 200) return null;
      cursor = r.json.cursor;
      return r.json.events.find((e) => e.type === 'typing') ?? null;
    }, { timeout: 30000 });
    assert.equal(ev.user_id, bob.user.id);
    assert.equal(ev.conversation_id, conv.id);
    assert.ok(ev.expires_in_ms > 0);
  } finally {
    ws.close();
  }
});
