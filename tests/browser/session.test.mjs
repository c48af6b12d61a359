// The sign-in as the web app lives it: the chat page opens its WebSocket
// with a ticket (no token in any URL), refreshes a token before it runs
// out and stays connected, and "Sign out" ends the session on the server.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { logTail, signToken } from '../integration/lib.mjs';
import { api, launch, pageAs, registerUsers, waitState } from './lib.mjs';

let browser;
let carol;

before(async () => {
  [carol] = await registerUsers('browser-session', 1, 1);
  browser = await launch();
});

after(async () => { await browser?.close(); });

const currentToken = (page) => page.evaluate(() => sessionStorage.getItem('token'));
const claimsOf = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url'));

test('the chat page connects with a ticket, keeps its token fresh, and signs out for real', async () => {
  const access = logTail('nginx/access.log');

  // a token with 20 s to live, of a session that lasts: the page refreshes
  // it after two thirds of its life, and its WebSocket, closed with 1008
  // when the first token expires, comes back with a ticket of the new one
  const now = Math.floor(Date.now() / 1000);
  const short = signToken({ sub: String(carol.user.id), role: 'user', iat: now, exp: now + 20, sxp: now + 3600 });
  const page = await pageAs(browser, { token: short }, '/chat.html');
  await waitState(page, 'ws');

  await page.waitForFunction((t) => sessionStorage.getItem('token') !== t, { timeout: 30000 }, short);
  const fresh = await currentToken(page);
  assert.equal(claimsOf(fresh).sid, claimsOf(short).sid);
  assert.ok(claimsOf(fresh).exp > claimsOf(short).exp);

  await new Promise((r) => setTimeout(r, Math.max(0, (now + 21) * 1000 - Date.now())));
  await waitState(page, 'ws');
  assert.equal((await api('GET', '/api/v1/users/me', undefined, { token: fresh })).status, 200);

  // no token went into a URL: the WebSockets came with tickets
  const logged = access.read();
  assert.match(logged, /GET \/ws\?ticket=\[hidden\] HTTP\/1\.1" 101/);
  assert.ok(!logged.includes('access_token'), 'a token in a URL');
  assert.ok(!logged.includes(short) && !logged.includes(fresh));

  // Sign out: back to the login page, and the token is dead everywhere
  await Promise.all([page.waitForNavigation(), page.click('#logout')]);
  assert.match(page.url(), /index\.html/);
  assert.equal(await currentToken(page), null);
  assert.equal((await api('GET', '/api/v1/users/me', undefined, { token: fresh })).status, 401);
  assert.equal((await api('GET', '/api/v1/users/me', undefined, { token: short })).status, 401);
  assert.deepEqual(page.problems.filter((p) => !/401|Unauthorized/.test(p)), []);
});
