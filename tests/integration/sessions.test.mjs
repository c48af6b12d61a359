// Sign-in sessions: WebSocket tickets, logout, refresh, and no credential
// in the logs.  Through the real stack (two nginx workers sharing one
// edge, Redis, the workers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { api, redis, registerUser, signToken, logTail, sleep, BASE } from './lib.mjs';
import { WsClient } from './ws.mjs';

const claimsOf = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url'));

// one request on a connection of its own, so that a burst of them lands
// on every nginx worker, not on the one a kept-alive socket is stuck to
function fresh(method, path, token) {
  const u = new URL(BASE + path);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent: false,
      headers: { connection: 'close', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(body); } catch { /* left null */ }
        resolve({ status: res.statusCode, headers: res.headers, text: body, json });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function login(u) {
  const r = await api('POST', '/api/v1/auth/login', { email: u.email, password: u.password });
  assert.equal(r.status, 200, r.text);
  return r.json.token;
}

async function ticketFor(token) {
  const r = await api('POST', '/api/v1/auth/ws-ticket', undefined, { token });
  assert.equal(r.status, 200, r.text);
  return r;
}

async function refused(promise) {
  try {
    const ws = await promise;
    ws.close();
    return null;
  } catch (err) {
    return err;
  }
}

async function pong(ws) {
  ws.sendJson({ type: 'ping' });
  await ws.message((m) => m.type === 'pong', 'pong');
}

test('tokens name their sign-in session; one without is refused everywhere', async () => {
  const u = await registerUser('sess-claims');
  const c = claimsOf(u.token);
  assert.match(c.sid, /^[A-Za-z0-9_-]{22}$/);
  assert.ok(c.sxp >= c.exp, JSON.stringify(c));
  // short-lived: the stack's default is half an hour, never a day
  assert.ok(c.exp - c.iat <= 3600, JSON.stringify(c));
  assert.notEqual(claimsOf(await login(u)).sid, c.sid, 'a login starts a new session');

  const now = Math.floor(Date.now() / 1000);
  const old = signToken({ sub: String(u.user.id), role: 'user', iat: now, exp: now + 600, sid: undefined, sxp: undefined });
  const r = await api('GET', '/api/v1/users/me', undefined, { token: old });
  assert.equal(r.status, 401, r.text);
  const err = await refused(WsClient.connect({ token: old }));
  assert.equal(err?.status, 401);
});

test('a ws-ticket opens one WebSocket, once, on whichever worker', async () => {
  const u = await registerUser('sess-ticket');

  assert.equal((await api('POST', '/api/v1/auth/ws-ticket')).status, 401);

  const r = await ticketFor(u.token);
  assert.match(r.json.ticket, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(typeof r.json.expires_in, 'number');
  assert.ok(r.json.expires_in >= 1 && r.json.expires_in <= 30, r.text);
  assert.equal(r.headers.get('cache-control'), 'no-store');

  // Redis keeps a hash of it, never the ticket
  const keys = await redis('--scan', '--pattern', 'chat:ticket:*');
  assert.ok(!keys.includes(r.json.ticket));

  const ws = await WsClient.connect({ query: `?ticket=${r.json.ticket}` });
  await pong(ws);

  // used: refused, and the session that used it goes on
  const again = await refused(WsClient.connect({ query: `?ticket=${r.json.ticket}` }));
  assert.equal(again?.status, 401);
  await pong(ws);
  ws.close();

  // never issued, malformed
  for (const t of [randomBytes(32).toString('base64url'), 'x', '']) {
    const e = await refused(WsClient.connect({ query: `?ticket=${t}` }));
    assert.equal(e?.status, 401, t);
  }

  // single use holds between workers: two handshakes race for each
  // ticket on connections of their own; exactly one of each pair opens
  for (let i = 0; i < 8; i++) {
    const { json } = await ticketFor(u.token);
    const both = await Promise.allSettled([0, 1].map(() => WsClient.connect({ query: `?ticket=${json.ticket}` })));
    const opened = both.filter((b) => b.status === 'fulfilled');
    assert.equal(opened.length, 1, `ticket ${i}: ${both.map((b) => b.status).join(', ')}`);
    assert.equal(both.find((b) => b.status === 'rejected').reason.status, 401);
    opened[0].value.close();
  }
});

test('a ws-ticket expires after expires_in seconds', async () => {
  const u = await registerUser('sess-ticket-exp');
  const r = await ticketFor(u.token);
  await sleep(r.json.expires_in * 1000 + 600);
  const err = await refused(WsClient.connect({ query: `?ticket=${r.json.ticket}` }));
  assert.equal(err?.status, 401);
});

test('logout: the token stops at once on every worker, its live sessions end, others go on', async () => {
  const u = await registerUser('sess-logout');
  const token = u.token;
  const other = await login(u);        // the same user on another device

  // live sessions of the token: WebSockets by header and by ticket,
  // spread over the workers, and a held long poll
  const sockets = [];
  for (let i = 0; i < 3; i++) sockets.push(await WsClient.connect({ token }));
  for (let i = 0; i < 3; i++) {
    sockets.push(await WsClient.connect({ query: `?ticket=${(await ticketFor(token)).json.ticket}` }));
  }
  for (const ws of sockets) await pong(ws);
  const otherWs = await WsClient.connect({ token: other });

  const open = await api('GET', '/api/v1/events', undefined, { token });
  assert.equal(open.status, 200, open.text);
  const held = api('GET', `/api/v1/events?cursor=${open.json.cursor}&timeout=20`, undefined, { token });
  await sleep(300);

  const out = await api('POST', '/api/v1/auth/logout', undefined, { token });
  assert.equal(out.status, 204, out.text);
  assert.equal(out.text, '');

  // at once, on fresh connections (every worker): no grace at all
  const after = await Promise.all(Array.from({ length: 24 }, () => fresh('GET', '/api/v1/users/me', token)));
  for (const r of after) {
    assert.equal(r.status, 401, r.text);
    assert.match(r.json.error.message, /revoked|signed out/);
  }

  const poll = await held;
  assert.equal(poll.status, 401, poll.text);

  for (const ws of sockets) {
    assert.equal(await ws.closedWith(5000), 1008);
    assert.match(ws.closeFrame.payload.subarray(2).toString(), /signed out/);
  }

  // nothing else of the session works either
  assert.equal((await api('POST', '/api/v1/auth/ws-ticket', undefined, { token })).status, 401);
  assert.equal((await api('POST', '/api/v1/auth/refresh', undefined, { token })).status, 401);
  assert.equal((await api('POST', '/api/v1/auth/logout', undefined, { token })).status, 401);
  assert.equal((await api('GET', `/api/v1/events?cursor=${open.json.cursor}&timeout=0`, undefined, { token })).status, 401);
  const err = await refused(WsClient.connect({ token }));
  assert.equal(err?.status, 401);
  const viaQuery = await refused(WsClient.connect({ query: `?access_token=${token}` }));
  assert.equal(viaQuery?.status, 401);

  // the other device's session is untouched
  assert.equal((await fresh('GET', '/api/v1/users/me', other)).status, 200);
  await pong(otherWs);
  assert.equal(otherWs.closed, false);
  otherWs.close();

  // and the revocation is in Redis for edges that start later
  const members = await redis('ZRANGE', 'chat:{sessions}:revoked', '0', '-1');
  assert.ok(members.split('\n').includes(`${claimsOf(token).sid}:${u.user.id}`), members);
});

test('refresh: a fresh token of the same session; logout ends both', async () => {
  const u = await registerUser('sess-refresh');
  const first = claimsOf(u.token);

  await sleep(1100);                    // a second apart, so iat differs
  const r = await api('POST', '/api/v1/auth/refresh', undefined, { token: u.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.equal(r.json.user.id, u.user.id);
  const fresh1 = r.json.token;
  const c = claimsOf(fresh1);
  assert.notEqual(fresh1, u.token);
  assert.equal(c.sid, first.sid);
  assert.equal(c.sxp, first.sxp);
  assert.ok(c.exp > first.exp && c.exp <= c.sxp, JSON.stringify(c));
  assert.equal(r.json.session, undefined, 'the session travels in the token only');

  assert.equal((await api('GET', '/api/v1/users/me', undefined, { token: fresh1 })).status, 200);
  // the old one is left to expire on its own (documented)
  assert.equal((await api('GET', '/api/v1/users/me', undefined, { token: u.token })).status, 200);

  // a refreshed token refreshes again
  const r2 = await api('POST', '/api/v1/auth/refresh', undefined, { token: fresh1 });
  assert.equal(r2.status, 200, r2.text);

  // logout with the newest ends every token of the session
  assert.equal((await api('POST', '/api/v1/auth/logout', undefined, { token: r2.json.token })).status, 204);
  for (const t of [u.token, fresh1, r2.json.token]) {
    assert.equal((await api('GET', '/api/v1/users/me', undefined, { token: t })).status, 401);
    assert.equal((await api('POST', '/api/v1/auth/refresh', undefined, { token: t })).status, 401);
  }
});

test('an expired token cannot be refreshed; nor can a session past its end', async () => {
  const u = await registerUser('sess-refresh-exp');
  const now = Math.floor(Date.now() / 1000);
  const expired = signToken({ sub: String(u.user.id), role: 'user', iat: now - 100, exp: now - 1 });
  let r = await api('POST', '/api/v1/auth/refresh', undefined, { token: expired });
  assert.equal(r.status, 401, r.text);
  assert.match(r.json.error.message, /expired/);

  // a refresh never reaches past the session's end
  const ending = signToken({ sub: String(u.user.id), role: 'user', iat: now, exp: now + 30, sxp: now + 30 });
  r = await api('POST', '/api/v1/auth/refresh', undefined, { token: ending });
  assert.equal(r.status, 200, r.text);
  assert.ok(claimsOf(r.json.token).exp <= now + 30, r.text);

  assert.equal((await api('POST', '/api/v1/auth/refresh')).status, 401);
});

test('the access and error logs never hold a token or a ticket', async () => {
  const u = await registerUser('sess-logs');
  const access = logTail('nginx/access.log');
  const errors = logTail('nginx/error.log');
  const secrets = [u.token];

  // an older client: the token in the URL
  let ws = await WsClient.connect({ query: `?access_token=${u.token}` });
  await pong(ws);
  ws.close();

  // a ticket, used, then refused when used again
  const t = (await ticketFor(u.token)).json.ticket;
  secrets.push(t);
  ws = await WsClient.connect({ query: `?a=1&ticket=${t}` });
  await pong(ws);
  ws.close();
  assert.equal((await refused(WsClient.connect({ query: `?ticket=${t}` })))?.status, 401);

  // refused handshakes, other paths, odd spellings: all logged, none with a secret
  const t2 = (await ticketFor(u.token)).json.ticket;
  secrets.push(t2);
  assert.ok(await refused(WsClient.connect({ query: `?access_token=${u.token}`, origin: 'http://evil.example' })));
  await fresh('GET', `/api/v1/events?access_token=${u.token}&TICKET=${t2}`);
  await fresh('GET', `/index.html?Access_Token=${u.token}`);
  await fresh('GET', `/ws?ticket=${t2}`);               // not an upgrade: 426

  await sleep(500);                                    // closes are logged as they finish
  const logged = access.read();
  const errLogged = errors.read();
  for (const s of secrets) {
    assert.ok(!logged.includes(s), 'a credential in access.log');
    assert.ok(!errLogged.includes(s), 'a credential in error.log');
  }
  // the requests were logged, with their values hidden
  assert.match(logged, /GET \/ws\?access_token=\[hidden\] HTTP\/1\.1/);
  assert.match(logged, /GET \/ws\?a=1&ticket=\[hidden\] HTTP\/1\.1/);
  assert.match(logged, /\/api\/v1\/events\?access_token=\[hidden\]&TICKET=\[hidden\]/);
  assert.match(logged, /\/index\.html\?Access_Token=\[hidden\]/);
});
