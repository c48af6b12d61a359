// The web app under its Content-Security-Policy: a user signs in through
// index.html's own form (its script is a file now, not inline) and opens
// every page; the browser reports no policy violation on any of them, and
// the pages still work (the sign-in lands on the signed-in view, the store
// draws its checkout form, whose style is set through the CSSOM).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, newPage, registerUsers } from './lib.mjs';

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

  // the checkout form gets its layout from a style set through dom.js: the
  // policy refuses style attributes, the CSSOM is allowed
  await page.goto(`${BASE}/store.html#/checkout`);
  await page.waitForSelector('#checkout');
  assert.equal(await page.$eval('#checkout', (f) => getComputedStyle(f).display), 'grid');
  await violations('store.html');

  await page.goto(`${BASE}/admin.html`);
  await new Promise((r) => setTimeout(r, 1000));
  await violations('admin.html');

  assert.deepEqual(page.problems.filter((p) => /Content Security Policy|Refused to/i.test(p)), []);
  await page.browserContext().close();
});
