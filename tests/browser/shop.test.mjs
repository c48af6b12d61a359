// The storefront and the back office as people use them, in Chromium, at a
// phone's width (390 px) and a desktop's: the category tree folds away on
// the phone and the books come first; a category page is headed with its
// name; a review updates the rating at once and the form goes; the cart
// counter follows the cart; a declined card says so and what to do, and
// the attempt is kept apart from the orders; a paid order gets a
// confirmation and its own page, which follows the order live as an admin
// ships it.  The admin finds a book, edits it without losing its
// description, prices in dollars, sets stock in a warehouse by name, and
// ships, delivers and refunds part of an order from the orders tab.  No
// page logs a browser error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { signToken, sql } from '../integration/lib.mjs';
import { api, launch, pageAs, registerUsers, screenshot } from './lib.mjs';

let browser;
let shopper;
let admin;          // {user, token}: an admin signed in for real
let adminToken;
let tag;
let category;
let book;
let warehouse;

function isbn13() {
  const d = [9, 7, 8, ...Array.from({ length: 9 }, () => Math.floor(Math.random() * 10))];
  const sum = d.reduce((s, x, i) => s + x * (i % 2 ? 3 : 1), 0);
  return d.join('') + String((10 - (sum % 10)) % 10);
}

before(async () => {
  [shopper, admin] = await registerUsers('shop', 2, 2);
  await sql("UPDATE users SET role = 'admin' WHERE id = :'p1'", admin.user.id);
  adminToken = signToken({ sub: String(admin.user.id), role: 'admin', exp: Math.floor(Date.now() / 1000) + 1200 });
  admin.token = adminToken;
  tag = Date.now().toString(36);
  const opts = { token: adminToken };
  const c = await api('POST', '/api/v1/admin/categories', { name: `Shelf ${tag}`, parent_id: null }, opts);
  assert.equal(c.status, 201, c.text);
  category = c.json.category;
  const b = await api('POST', '/api/v1/admin/books', {
    title: `Phone Shelf Book ${tag}`, authors: ['Shelf Author'], isbn: isbn13(), price_cents: 2599,
    currency: 'USD', description: `A description that must survive edits ${tag}`, category_ids: [category.id],
  }, opts);
  assert.equal(b.status, 201, b.text);
  book = b.json.book;
  const w = await api('POST', '/api/v1/admin/warehouses', { code: `SH${tag}`.slice(0, 16), name: `Shelf Depot ${tag}`, region: 'eu' }, opts);
  assert.equal(w.status, 201, w.text);
  warehouse = w.json.warehouse;
  assert.equal((await api('PUT', `/api/v1/admin/inventory/${book.id}/${warehouse.id}`, { on_hand: 40 }, opts)).status, 200);
  browser = await launch();
});

after(async () => { await browser?.close(); });

// browser errors; allowed: the network line Chromium logs for an answer
// the test provoked on purpose
// waits for the admin page's "done" line to match re; on a timeout the
// failure names what the page said instead
async function waitDone(page, re, timeout = 30000) {
  try {
    await page.waitForFunction((src) => new RegExp(src).test(document.querySelector('#done').textContent), { timeout }, re.source);
  } catch (err) {
    const said = await page.$eval('#error', (e) => e.textContent).catch(() => '?');
    const done = await page.$eval('#done', (e) => e.textContent).catch(() => '?');
    throw new Error(`waiting for ${re}: error line "${said}", done line "${done}" (${err.message})`);
  }
}

const noProblems = (page, allowed = null) => {
  const left = page.problems.filter((p) => !(allowed && allowed.test(p)));
  assert.deepEqual(left, [], left.join('\n'));
};

test('at 390 px: the tree folds away, the books come first, nothing is wider than the screen; a category page has its name', async () => {
  const page = await pageAs(browser, shopper, '/store.html#/');
  await page.setViewport({ width: 390, height: 844 });
  await page.waitForSelector('.book');
  assert.equal(await page.$eval('#category-tree', (e) => getComputedStyle(e).display), 'none');
  const top = await page.$eval('.book', (e) => e.getBoundingClientRect().top);
  assert.ok(top < 400, `the first book is ${top} px down`);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'wider than the screen');
  await page.click('#cat-toggle');
  await page.waitForSelector(`#category-tree a[data-category-id="${category.id}"]`, { visible: true });
  await page.click(`#category-tree a[data-category-id="${category.id}"]`);
  await page.waitForFunction((n) => document.querySelector('#view-title')?.textContent === n, {}, category.name);
  await page.waitForSelector(`.book[data-book-id="${book.id}"]`);
  assert.match(await page.$eval(`.book[data-book-id="${book.id}"]`, (e) => e.textContent), /In stock/);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'wider than the screen');
  await screenshot(page, 'store-phone-category');
  // the book page and the checkout fit too
  await page.evaluate((id) => { location.hash = `#/book/${id}`; }, book.id);
  await page.waitForSelector('#add-to-cart');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'the book page is wider than the screen');
  noProblems(page);
  await page.browserContext().close();
});

test('a review updates the rating at once and the form goes; the cart counter; a declined card; a confirmation; the order page follows the admin live', async () => {
  const page = await pageAs(browser, shopper, `/store.html#/book/${book.id}`);
  await page.setViewport({ width: 1280, height: 900 });
  await page.waitForSelector('#review-form');
  assert.equal(await page.$eval('#rating', (e) => e.textContent), 'No reviews yet');
  await page.type('#review-form input[name=text]', 'Wonderful.');
  await page.click('#review-form button');
  await page.waitForFunction(() => document.querySelector('#rating').textContent.includes('1 review'));
  assert.match(await page.$eval('#rating', (e) => e.textContent), /★ 5\.0 · 1 review$/);
  assert.ok(await page.$eval('#review-form', (f) => f.classList.contains('hidden')));
  assert.match(await page.$eval('#reviews', (e) => e.textContent), /Wonderful\./);

  await page.click('#qty', { clickCount: 3 });
  await page.type('#qty', '2');
  await page.click('#add-to-cart button');
  await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '2');

  // a declined card: said so, what to do, the card cleared, the cart kept
  await page.evaluate(() => { location.hash = '#/checkout'; });
  await page.waitForSelector('#checkout');
  const fill = { name: 'Ada Shopper', line1: '1 Shelf Street', city: 'Lisbon', postal_code: '1000',
    exp_month: '12', exp_year: String(new Date().getFullYear() + 2), cvc: '123' };
  for (const [k, v] of Object.entries(fill)) await page.type(`#checkout [name="${k}"]`, v);
  await page.type('#checkout [name=card_number]', '4000000000000002');
  await page.click('#pay');
  await page.waitForSelector('#checkout-result[data-status="payment_failed"]', { timeout: 60000 });
  assert.match(await page.$eval('#checkout-result', (e) => e.textContent), /declined by its bank.*Nothing was charged.*another card/s);
  assert.equal(await page.$eval('#checkout [name=card_number]', (e) => e.value), '');
  const failedId = await page.$eval('#checkout-result', (e) => e.dataset.orderId);

  // another card: paid, a confirmation, the form gone, the counter empty
  for (const k of ['exp_month', 'exp_year', 'cvc']) await page.type(`#checkout [name="${k}"]`, fill[k]);
  await page.type('#checkout [name=card_number]', '4242424242424242');
  await page.click('#pay');
  await page.waitForSelector('#to-order', { timeout: 60000 });
  assert.equal(await page.$('#checkout'), null);
  assert.match(await page.$eval('#checkout-result', (e) => e.textContent), /Thank you/);
  await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '');
  const orderId = Number(await page.$eval('#checkout-result', (e) => e.dataset.orderId));

  // the history: the order, and the failed attempt apart from it
  await page.evaluate(() => { location.hash = '#/orders'; });
  await page.waitForSelector(`#orders tr[data-order-id="${orderId}"]`);
  assert.equal(await page.$(`#orders tr[data-order-id="${failedId}"]`), null);
  assert.ok(await page.$(`#failed-attempts tr[data-order-id="${failedId}"]`));

  // its page, live: the admin ships it and delivers it
  await page.click(`#orders tr[data-order-id="${orderId}"] a`);
  await page.waitForSelector(`#order[data-order-id="${orderId}"]`);
  await page.waitForFunction(() => ['ws', 'polling'].includes(window.storeEvents?.state));
  assert.equal((await api('POST', `/api/v1/admin/orders/${orderId}/ship`, undefined, { token: adminToken })).status, 200);
  await page.waitForFunction(() => document.querySelector('#order-status')?.textContent === 'Shipped', { timeout: 30000 });
  assert.equal(await page.$eval('#live', (e) => e.dataset.status), 'shipped');
  assert.equal((await api('POST', `/api/v1/admin/orders/${orderId}/deliver`, undefined, { token: adminToken })).status, 200);
  await page.waitForFunction(() => document.querySelector('#order-status')?.textContent === 'Delivered', { timeout: 30000 });
  await screenshot(page, 'store-order-page');
  noProblems(page);
  await page.browserContext().close();
});

test('admin: find a book, edit its price in dollars without losing the description, stock by warehouse name; orders: refund a line, ship, deliver', async () => {
  const page = await pageAs(browser, admin, '/admin.html#books');
  await page.setViewport({ width: 1280, height: 900 });
  await page.waitForSelector('#admin-books tr');
  await page.type('#book-search input', `Phone Shelf Book ${tag}`);
  await page.click('#book-search button');
  await page.waitForSelector(`#admin-books tr[data-book-id="${book.id}"] button.edit`);
  await page.click(`#admin-books tr[data-book-id="${book.id}"] button.edit`);
  await page.waitForFunction((t) => document.querySelector('#book-form textarea[name=description]')?.value.includes(t), {}, tag);
  assert.equal(await page.$eval('#book-form [name=price]', (e) => e.value), '25.99');
  assert.deepEqual(await page.$eval('#book-form [name=category_ids]',
    (s) => [...s.selectedOptions].map((o) => Number(o.value))), [category.id]);
  await page.click('#book-form [name=price]', { clickCount: 3 });
  await page.type('#book-form [name=price]', '19.50');
  await page.click('#book-save');
  await waitDone(page, /Saved/);
  const saved = (await api('GET', `/api/v1/books/${book.id}`)).json.book;
  assert.equal(saved.price_cents, 1950);
  assert.match(saved.description, new RegExp(tag));
  assert.deepEqual(saved.categories.map((c) => c.id), [category.id]);

  // stock, by the warehouse's name
  await page.waitForSelector(`#admin-books tr[data-book-id="${book.id}"] button.stock`);
  await page.click(`#admin-books tr[data-book-id="${book.id}"] button.stock`);
  const row = `#stock-grid tr[data-warehouse-id="${warehouse.id}"]`;
  await page.waitForSelector(row);
  assert.match(await page.$eval(row, (e) => e.textContent), new RegExp(`Shelf Depot ${tag}`));
  await page.click(`${row} input`, { clickCount: 3 });
  await page.type(`${row} input`, '45');
  await page.click(`${row} button`);
  await waitDone(page, /45 on hand/);
  assert.equal(await sql("SELECT on_hand FROM stock WHERE book_id = :'p1' AND warehouse_id = :'p2'", book.id, warehouse.id), '45');
  assert.match(await page.$eval('#stock-ledger', (e) => e.textContent), /on_hand set by an admin/);

  // an order of 3 copies: refund one, ship, deliver
  const [buyer] = await registerUsers('shop-buyer', 1, 1);
  assert.equal((await api('PUT', `/api/v1/cart/items/${book.id}`, { quantity: 3 }, { token: buyer.token })).status, 200);
  const provider = process.env.CHAT_PAYMENT_URL ?? 'http://127.0.0.1:18090';
  const tok = await (await fetch(`${provider}/v1/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ card: { number: '4242424242424242', exp_month: 12, exp_year: new Date().getFullYear() + 2, cvc: '123' } }) })).json();
  const o = await api('POST', '/api/v1/orders', { shipping_address: { name: 'B', line1: '1 St', city: 'X', country: 'PT' },
    payment: { token: tok.id } }, { token: buyer.token, headers: { 'idempotency-key': `shop-${tag}` } });
  assert.equal(o.status, 201, o.text);
  const id = o.json.order.id;

  await page.click('#tab-orders');
  await page.waitForSelector(`#admin-orders tr[data-order-id="${id}"] button.open`);
  await page.click(`#admin-orders tr[data-order-id="${id}"] button.open`);
  await page.waitForSelector(`#order-lines tr[data-book-id="${book.id}"] input`);
  await page.type(`#order-lines tr[data-book-id="${book.id}"] input`, '1');
  page.once('dialog', (d) => d.accept());
  await page.click('#refund-lines');
  await waitDone(page, /refunded\.$/);
  let r = (await api('GET', `/api/v1/orders/${id}`, undefined, { token: buyer.token })).json.order;
  assert.equal(r.refunded_cents, 1950);
  assert.equal(r.status, 'paid');

  await page.waitForSelector(`#admin-orders tr[data-order-id="${id}"] button.ship`);
  await page.click(`#admin-orders tr[data-order-id="${id}"] button.ship`);
  await waitDone(page, new RegExp(`^Order #${id} shipped\\.$`));
  // the list now shows paid orders only: the shipped one is under Shipped
  await page.select('#order-filter select', 'shipped');
  await page.waitForSelector(`#admin-orders tr[data-order-id="${id}"] button.deliver`);
  await page.click(`#admin-orders tr[data-order-id="${id}"] button.deliver`);
  await waitDone(page, new RegExp(`^Order #${id} delivered\\.$`));
  r = (await api('GET', `/api/v1/orders/${id}`, undefined, { token: buyer.token })).json.order;
  assert.equal(r.status, 'delivered');
  await screenshot(page, 'admin-orders');

  // errors in words: an ISBN taken by another book
  await page.click('#tab-books');
  await page.click('#book-new');
  await page.type('#book-form [name=title]', 'Dup');
  await page.type('#book-form [name=authors]', 'Someone');
  await page.type('#book-form [name=isbn13]', saved.isbn13);
  await page.type('#book-form [name=price]', '1');
  await page.click('#book-save');
  await page.waitForFunction(() => /save book: .*ISBN.*\(409 duplicate_isbn\)/.test(document.querySelector('#error').textContent));
  noProblems(page, /status of 409/);
  await page.browserContext().close();
});
