// The web app under its Content-Security-Policy: a user signs in through
// index.html's own form (its script is a file now, not inline) and opens
// every page; the browser reports no policy violation on any of them, and
// the pages still work (the sign-in lands on the signed-in view, the store
// draws its checkout form, whose style is set through the CSSOM).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from '../integration/lib.mjs';
import { BASE, api, launch, newPage, registerUsers } from './lib.mjs';

let browser;
let user;

before(async () => {
  [user] = await registerUsers('csp', 1, 1);
  browser = await launch();
});

after(async () => { await browser?.close(); });

test('sign in through the form and open every page: no CSP violation, pages work', async () => {
  const page = await newPage(browser);
  // every violation the browser sees, on every page this tab opens
  await page.evaluateOnNewDocument(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation',
      (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const violations = async (where) => {
    const v = await page.evaluate(() => window.cspViolations);
    assert.deepEqual(v, [], `${where}: ${v.join('; ')}`);
  };

  const res = await page.goto(`${BASE}/index.html`);
  assert.match(res.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  await page.type('#login input[name=email]', user.email);
  await page.type('#login input[name=password]', user.password);
  await page.click('#login button');
  await page.waitForFunction(() => !document.querySelector('#signed-in').classList.contains('hidden'));
  assert.match(await page.$eval('#who', (e) => e.textContent), new RegExp(user.email.replace(/[.+]/g, '\\$&')));
  await violations('index.html');

  await page.goto(`${BASE}/chat.html`);
  await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent === 'ws');
  await violations('chat.html');

  // the checkout form (a cart is needed for one) gets its layout from
  // store.css; a book without a cover gets a placeholder whose colours are
  // a style set through dom.js: the policy refuses style attributes, the
  // CSSOM is allowed
  const book = Number(await sql(
    "INSERT INTO books (isbn13, title, price_cents) VALUES ('979' || lpad((random() * 1e10)::bigint::text, 10, '0'), 'CSP test', 100) RETURNING id"));
  assert.equal((await api('PUT', `/api/v1/cart/items/${book}`, { quantity: 1 }, { token: user.token })).status, 200);
  await page.goto(`${BASE}/store.html#/checkout`);
  await page.waitForSelector('#checkout');
  assert.equal(await page.$eval('#checkout', (f) => getComputedStyle(f).display), 'grid');
  await page.goto(`${BASE}/store.html#/book/${book}`);
  await page.waitForSelector('#book .cover.placeholder');
  assert.match(await page.$eval('#book .cover', (c) => getComputedStyle(c).backgroundImage), /linear-gradient/);
  await violations('store.html');

  await page.goto(`${BASE}/admin.html`);
  await new Promise((r) => setTimeout(r, 1000));
  await violations('admin.html');

  assert.deepEqual(page.problems.filter((p) => /Content Security Policy|Refused to/i.test(p)), []);
  await page.browserContext().close();
});
