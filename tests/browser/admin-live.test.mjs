// Two admins at work at once, in two windows (one at a phone's 390 px,
// one at a desktop's width): what one changes shows on the other's open
// page without a reload, through the admin_change events the server
// sends every admin's connection (web/admin.js, the end): a book's price
// in the list, the stock grid the other has open, an order leaving the
// "paid" list once shipped; and a book the other is editing gets a
// warning instead of its form being overwritten.  No browser errors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { signToken, sql } from '../integration/lib.mjs';
import { api, launch, pageAs, registerUsers, screenshot } from './lib.mjs';

let browser;
let one;            // {user, token}: the admin who changes things (desktop)
let other;          // the admin who watches (phone width)
let tag;
let book;
let warehouse;
let order;

function isbn13() {
  const d = [9, 7, 8, ...Array.from({ length: 9 }, () => Math.floor(Math.random() * 10))];
  const sum = d.reduce((s, x, i) => s + x * (i % 2 ? 3 : 1), 0);
  return d.join('') + String((10 - (sum % 10)) % 10);
}

before(async () => {
  let buyer;
  [one, other, buyer] = await registerUsers('adminlive', 3, 3);
  for (const a of [one, other]) {
    await sql("UPDATE users SET role = 'admin' WHERE id = :'p1'", a.user.id);
    a.token = signToken({ sub: String(a.user.id), role: 'admin', exp: Math.floor(Date.now() / 1000) + 1200 });
  }
  tag = Date.now().toString(36);
  const opts = { token: one.token };
  const b = await api('POST', '/api/v1/admin/books', {
    title: `Live Shelf Book ${tag}`, authors: ['Live Author'], isbn: isbn13(), price_cents: 2599,
    currency: 'USD', description: `Watched by two admins ${tag}`,
  }, opts);
  assert.equal(b.status, 201, b.text);
  book = b.json.book;
  const w = await api('POST', '/api/v1/admin/warehouses', { code: `LV${tag}`.slice(0, 16), name: `Live Depot ${tag}`, region: 'eu' }, opts);
  assert.equal(w.status, 201, w.text);
  warehouse = w.json.warehouse;
  assert.equal((await api('PUT', `/api/v1/admin/inventory/${book.id}/${warehouse.id}`, { on_hand: 40 }, opts)).status, 200);
  // a paid order of the book, for the orders tab
  assert.equal((await api('PUT', `/api/v1/cart/items/${book.id}`, { quantity: 1 }, { token: buyer.token })).status, 200);
  const provider = process.env.CHAT_PAYMENT_URL ?? 'http://127.0.0.1:18090';
  const tok = await (await fetch(`${provider}/v1/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ card: { number: '4242424242424242', exp_month: 12, exp_year: new Date().getFullYear() + 2, cvc: '123' } }) })).json();
  const o = await api('POST', '/api/v1/orders', { shipping_address: { name: 'B', line1: '1 St', city: 'X', country: 'PT' },
    payment: { token: tok.id } }, { token: buyer.token, headers: { 'idempotency-key': `live-${tag}` } });
  assert.equal(o.status, 201, o.text);
  assert.equal(o.json.order.status, 'paid');
  order = o.json.order;
  browser = await launch();
});

after(async () => { await browser?.close(); });

const noProblems = (page) => assert.deepEqual(page.problems, [], page.problems.join('\n'));

// the page's live connection is up (WebSocket, or long-poll)
const live = (page) => page.waitForFunction(() => ['ws', 'polling'].includes(window.adminEvents?.state), { timeout: 30000 });

async function findBook(page) {
  await page.waitForSelector('#admin-books tr');
  await page.type('#book-search input', `Live Shelf Book ${tag}`);
  await page.click('#book-search button');
  await page.waitForSelector(`#admin-books tr[data-book-id="${book.id}"] button.edit`);
}

test("one admin's changes show on another admin's open page at once: the book's price, the open stock grid, an order shipped; a form being edited is warned, not overwritten", async () => {
  const mine = await pageAs(browser, one, '/admin.html#books', { width: 1280, height: 900 });
  const theirs = await pageAs(browser, other, '/admin.html#books', { width: 390, height: 844 });
  await Promise.all([findBook(mine), findBook(theirs), live(mine), live(theirs)]);
  const row = `#admin-books tr[data-book-id="${book.id}"]`;
  assert.match(await theirs.$eval(row, (e) => e.textContent), /25\.99/);
  // the other admin has the book's stock grid open
  await theirs.click(`${row} button.stock`);
  const cell = `#stock-grid tr[data-warehouse-id="${warehouse.id}"] input`;
  await theirs.waitForSelector(cell);
  assert.equal(await theirs.$eval(cell, (e) => e.value), '40');

  // a new price, saved in the first window
  await mine.click(`${row} button.edit`);
  await mine.waitForFunction(() => document.querySelector('#book-form [name=price]')?.value === '25.99');
  await mine.click('#book-form [name=price]', { clickCount: 3 });
  await mine.type('#book-form [name=price]', '19.50');
  await mine.click('#book-save');
  await mine.waitForFunction(() => /Saved/.test(document.querySelector('#done').textContent));
  // ... shows in the second, which never reloaded
  await theirs.waitForFunction((sel) => /19\.50/.test(document.querySelector(sel)?.textContent ?? ''), {}, row);
  assert.match(await theirs.$eval('#live', (e) => e.textContent), new RegExp(`Book #${book.id} changed by admin #${one.user.id}`));

  // stock set in the first window: the second's open grid follows
  await mine.waitForSelector(`${row} button.stock`);
  await mine.click(`${row} button.stock`);
  await mine.waitForSelector(cell);
  await mine.click(cell, { clickCount: 3 });
  await mine.type(cell, '45');
  await mine.click(`#stock-grid tr[data-warehouse-id="${warehouse.id}"] button`);
  await mine.waitForFunction(() => /45 on hand/.test(document.querySelector('#done').textContent));
  await theirs.waitForFunction((sel) => document.querySelector(sel)?.value === '45', {}, cell);
  assert.match(await theirs.$eval('#stock-ledger', (e) => e.textContent), /on_hand set by an admin/);

  // the second admin edits the book while the first changes it again:
  // a warning, and what the second typed stays
  await theirs.click(`${row} button.edit`);
  await theirs.waitForFunction(() => document.querySelector('#book-form [name=price]')?.value === '19.50');
  await theirs.click('#book-form [name=description]');
  await theirs.type('#book-form [name=description]', ' and more');
  assert.equal((await api('PUT', `/api/v1/admin/books/${book.id}`, { price_cents: 2100 }, { token: one.token })).status, 200);
  await theirs.waitForSelector('#book-form-stale:not(.hidden)');
  assert.equal(await theirs.$eval('#book-form [name=price]', (e) => e.value), '19.50');
  assert.match(await theirs.$eval('#book-form [name=description]', (e) => e.value), /and more$/);
  await theirs.waitForFunction((sel) => /21\.00/.test(document.querySelector(sel)?.textContent ?? ''), {}, row);
  await theirs.click('#book-cancel');

  // orders: both on the "paid" list; shipped in the first, it leaves the
  // second's list; under "Shipped" there, delivered in the first, it follows
  const orow = `#admin-orders tr[data-order-id="${order.id}"]`;
  for (const p of [mine, theirs]) {
    await p.click('#tab-orders');
    await p.waitForSelector(`${orow} button.ship`);
  }
  await mine.click(`${orow} button.ship`);
  await mine.waitForFunction((id) => document.querySelector('#done').textContent === `Order #${id} shipped.`, {}, order.id);
  await theirs.waitForFunction((sel) => !document.querySelector(sel), {}, orow);
  await theirs.select('#order-filter select', 'shipped');
  await theirs.waitForSelector(`${orow}[data-status="shipped"]`);
  await theirs.click(`${orow} button.open`);
  await theirs.waitForFunction((id) => document.querySelector('#order-panel h3')?.textContent === `Order #${id} · Shipped`, {}, order.id);
  assert.equal((await api('POST', `/api/v1/admin/orders/${order.id}/deliver`, undefined, { token: one.token })).status, 200);
  await theirs.waitForFunction((sel) => !document.querySelector(sel), {}, orow);
  await theirs.waitForFunction((id) => document.querySelector('#order-panel h3')?.textContent === `Order #${id} · Delivered`, {}, order.id);
  await screenshot(theirs, 'phone-admin-live');

  noProblems(mine);
  noProblems(theirs);
  await mine.browserContext().close();
  await theirs.browserContext().close();
});
