// chat-client.js as a library, in the browser: the refreshToken hook (a
// refused token is traded for a new one and the client connects with it)
// and the closed event (a signed-out session's WebSocket is closed with
// 1008 and the page hears the code before the client gives up).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, BASE, launch, newPage, registerUsers } from './lib.mjs';

let browser;
let dana;

before(async () => {
  [dana] = await registerUsers('browser-client', 1, 1);
  browser = await launch();
});

after(async () => { await browser?.close(); });

// a page of our origin with the client loaded and its events recorded
async function clientPage(opts) {
  const page = await newPage(browser);
  await page.goto(`${BASE}/index.html`);
  await page.evaluate(async ({ token, refreshed }) => {
    const { ChatClient } = await import('/chat-client.js');
    window.seen = [];
    const client = new ChatClient({
      token,
      refreshToken: refreshed === undefined ? undefined
        : async () => { window.seen.push({ type: 'asked' }); return refreshed; },
    });
    for (const type of ['state', 'closed', 'token', 'error']) {
      client.addEventListener(type, (e) => window.seen.push({ type, ...e.detail }));
    }
    window.client = client;
    client.start();
  }, opts);
  return page;
}

const seen = (page) => page.evaluate(() => window.seen);
const waitSeen = (page, fn, what) => page.waitForFunction(fn, { timeout: 30000 }).catch(async (e) => {
  throw new Error(`${what}: ${e.message}; seen ${JSON.stringify(await seen(page))}`);
});

test('a refused token is traded through refreshToken, and the client connects with the new one', async () => {
  const page = await clientPage({ token: 'not-a-token', refreshed: dana.token });
  await waitSeen(page, () => window.client.state === 'ws', 'connected over WebSocket');
  const events = await seen(page);
  assert.equal(events.filter((e) => e.type === 'asked').length, 1);
  assert.ok(events.some((e) => e.type === 'token'));
  assert.ok(!events.some((e) => e.type === 'error'), JSON.stringify(events));
  assert.deepEqual(page.problems.filter((p) => !p.includes('401')), []);
  await page.close();
});

test('a hook that gives no token ends in error 401, asked only once', async () => {
  const page = await clientPage({ token: 'not-a-token', refreshed: null });
  await waitSeen(page, () => window.seen.some((e) => e.type === 'error'), 'the 401 error');
  const events = await seen(page);
  assert.equal(events.filter((e) => e.type === 'asked').length, 1);
  assert.equal(events.find((e) => e.type === 'error').status, 401);
  assert.equal(await page.evaluate(() => window.client.state), 'offline');
  await page.close();
});

test('a signed-out session: the page hears the close code 1008, then the client stops with 401', async () => {
  const login = await api('POST', '/api/v1/auth/login', { email: dana.email, password: dana.password });
  assert.equal(login.status, 200, login.text);
  const page = await clientPage({ token: login.json.token });
  await waitSeen(page, () => window.client.state === 'ws', 'connected over WebSocket');

  assert.equal((await api('POST', '/api/v1/auth/logout', undefined, { token: login.json.token })).status, 204);

  await waitSeen(page, () => window.seen.some((e) => e.type === 'closed'), 'the closed event');
  await waitSeen(page, () => window.seen.some((e) => e.type === 'error'), 'the 401 error');
  const events = await seen(page);
  const closed = events.find((e) => e.type === 'closed');
  assert.equal(closed.code, 1008, JSON.stringify(closed));
  assert.equal(events.find((e) => e.type === 'error').status, 401);
  await page.close();
});
