// The storefront in a real browser: a shopper searches, adds a book to the
// cart, checks out with the payment stand-in's test card and finds the
// order in the history.  The card goes to the processor's origin (a
// cross-origin request, CORS) and never to ours: the checkout carries only
// the processor's token.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { signToken, sql } from '../integration/lib.mjs';
import { BASE, api, launch, pageAs, registerUsers, screenshot } from './lib.mjs';

const TEST_CARD = process.env.TEST_CARD ?? '4242424242424242';

let browser;
let shopper;

before(async () => {
  [shopper] = await registerUsers('shopper', 1, 1);
  browser = await launch();
});

after(async () => { await browser?.close(); });

// a valid ISBN-13 (978 + 9 digits + its check digit)
function isbn13() {
  const d = [9, 7, 8, ...Array.from({ length: 9 }, () => Math.floor(Math.random() * 10))];
  const sum = d.reduce((s, x, i) => s + x * (i % 2 ? 3 : 1), 0);
  return d.join('') + String((10 - (sum % 10)) % 10);
}

// a book in stock under a unique title, put there through the admin API by
// an admin (a user promoted in SQL; the worker checks the role again)
async function stockedBook(tag) {
  const [boss] = await registerUsers('store-admin', 1, 1);
  await sql("UPDATE users SET role = 'admin' WHERE id = :'p1'", boss.user.id);
  const admin = signToken({ sub: String(boss.user.id), role: 'admin', exp: Math.floor(Date.now() / 1000) + 600 });
  const b = await api('POST', '/api/v1/admin/books', {
    title: `Browser Test Book ${tag}`, authors: ['Test Author'], isbn: isbn13(), price_cents: 1234,
    currency: 'USD', description: 'for the browser test',
  }, { token: admin });
  assert.equal(b.status, 201, b.text);
  const code = `BT${tag}`.slice(0, 16);
  const w = await api('POST', '/api/v1/admin/warehouses', { code, name: 'browser test', region: 'eu' }, { token: admin });
  assert.equal(w.status, 201, w.text);
  const inv = await api('PUT', `/api/v1/admin/inventory/${b.json.book.id}/${w.json.warehouse.id}`, { on_hand: 50 }, { token: admin });
  assert.equal(inv.status, 200, inv.text);
  return b.json.book;
}

test('search, add to cart, check out with a test card, see the order', async () => {
  const tag = `${Date.now().toString(36)}`;
  const book = await stockedBook(tag);
  const page = await pageAs(browser, shopper, '/store.html#/');
  await page.waitForSelector('#search input');
  await page.type('#search input', `Browser Test Book ${tag}`);
  await page.click('#search button');
  await page.waitForSelector(`.book[data-book-id="${book.id}"] a`);
  await screenshot(page, 'store-search');
  await page.click(`.book[data-book-id="${book.id}"] a`);
  await page.waitForSelector('#add-to-cart button');
  assert.match(await page.$eval('#stock', (e) => e.textContent), /^(In stock|Only a few left)$/);
  await page.click('#add-to-cart button');
  await page.waitForFunction(() => document.querySelector('#added')?.textContent === 'Added to cart.');
  await page.evaluate(() => { location.hash = '#/cart'; });
  await page.waitForSelector(`#cart tr[data-book-id="${book.id}"]`);
  await page.click('#to-checkout');
  await page.waitForSelector('#checkout');
  // every request the page makes from here on, with its body
  const sent = [];
  page.on('request', (req) => sent.push({ url: req.url(), method: req.method(), body: req.postData() ?? '' }));
  const fill = { name: 'Test Shopper', line1: '1 Test Street', city: 'Testville', postal_code: '12345',
    card_number: TEST_CARD, exp_month: '12', exp_year: String(new Date().getFullYear() + 2), cvc: '123' };
  for (const [k, v] of Object.entries(fill)) await page.type(`#checkout [name="${k}"]`, v);
  await page.click('#pay');
  // an order, or the error the page shows (asserted, so the reason is seen)
  await page.waitForFunction(() => document.querySelector('#checkout-result[data-order-id]')
    || document.querySelector('#error').textContent, { timeout: 60000 });
  assert.equal(await page.$eval('#error', (e) => e.textContent), '');
  const orderId = await page.$eval('#checkout-result', (e) => e.dataset.orderId);
  assert.notEqual(await page.$eval('#checkout-result', (e) => e.dataset.status), 'payment_failed');
  // the card went to the processor only; our server got the token
  const ours = sent.filter((r) => r.url.startsWith(BASE));
  const tokenize = sent.find((r) => r.method === 'POST' && r.url.endsWith('/v1/tokens'));
  assert.ok(tokenize && !tokenize.url.startsWith(BASE), `tokenized at ${tokenize?.url}`);
  assert.ok(tokenize.body.includes(TEST_CARD));
  assert.deepEqual(ours.filter((r) => r.body.includes(TEST_CARD) || r.body.includes('cvc')), []);
  const order = ours.find((r) => r.method === 'POST' && r.url === `${BASE}/api/v1/orders`);
  assert.match(JSON.parse(order.body).payment.token, /^tok_/);
  // a confirmation, the form gone; the order's own page, then the history
  await page.waitForSelector('#to-order');
  assert.equal(await page.$('#checkout'), null);
  await page.click('#to-order');
  await page.waitForSelector(`#order[data-order-id="${orderId}"]`);
  await page.evaluate(() => { location.hash = '#/orders'; });
  await page.waitForSelector(`#orders tr[data-order-id="${orderId}"]`);
  await screenshot(page, 'store-orders');
  await page.browserContext().close();
});
