// The store's search in a real browser (web/store-search.js): suggestions
// appear as a shopper types and the keyboard picks one; the results page
// shows the facets as filters, and choosing a category, then "in stock
// only", narrows the results and the address; the page at phone width.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { signToken, sql } from '../integration/lib.mjs';
import { api, launch, pageAs, registerUsers, screenshot } from './lib.mjs';

let browser;
let shopper;
let admin;
const word = Array.from({ length: 8 }, (_, i) => (i % 2 ? 'aeiou' : 'bdfgklmnprstvz')[randomInt(i % 2 ? 5 : 14)]).join('');
const books = {};
let fiction;
let science;

function isbn13() {
  const d = [9, 7, 9, ...Array.from({ length: 9 }, () => randomInt(10))];
  const s = d.reduce((a, x, i) => a + x * (i % 2 ? 3 : 1), 0);
  return d.join('') + String((10 - (s % 10)) % 10);
}

async function book(name, title, categoryId, onHand, warehouseId) {
  const r = await api('POST', '/api/v1/admin/books', {
    title, authors: ['Browser Author'], isbn: isbn13(), price_cents: 1500, category_ids: [categoryId],
  }, { token: admin });
  assert.equal(r.status, 201, r.text);
  books[name] = r.json.book;
  if (onHand) {
    const s = await api('PUT', `/api/v1/admin/inventory/${r.json.book.id}/${warehouseId}`, { on_hand: onHand }, { token: admin });
    assert.equal(s.status, 200, s.text);
  }
}

before(async () => {
  [shopper] = await registerUsers('searcher', 1, 1);
  const [boss] = await registerUsers('search-admin', 1, 1);
  await sql("UPDATE users SET role = 'admin' WHERE id = :'p1'", boss.user.id);
  admin = signToken({ sub: String(boss.user.id), role: 'admin', exp: Math.floor(Date.now() / 1000) + 600 });
  const suffix = Date.now().toString(36);
  fiction = Number(await sql("INSERT INTO categories (name, slug) VALUES (:'p1', :'p2') RETURNING id", `Fiction ${suffix}`, `bf-${suffix}`));
  science = Number(await sql("INSERT INTO categories (name, slug) VALUES (:'p1', :'p2') RETURNING id", `Science ${suffix}`, `bs-${suffix}`));
  const w = await api('POST', '/api/v1/admin/warehouses', { code: `BS${suffix}`.slice(0, 16), name: 'browser search', region: 'eu' }, { token: admin });
  assert.equal(w.status, 201, w.text);
  const wid = w.json.warehouse.id;
  await book('stocked', `The ${word} Garden`, fiction, 4, wid);
  await book('unstocked', `${word} at Night`, fiction, 0, wid);
  await book('science', `A ${word} Primer`, science, 2, wid);
  browser = await launch();
});

after(async () => { await browser?.close(); });

test('suggestions as you type; the keyboard picks a title', async () => {
  const page = await pageAs(browser, shopper, '/store.html#/');
  await page.waitForSelector('#search input');
  await page.type('#search input', word.slice(0, 6), { delay: 30 });
  await page.waitForSelector('#suggestions li[role="option"]', { visible: true });
  const shown = await page.$$eval('#suggestions li', (lis) => lis.map((li) => li.textContent));
  for (const b of Object.values(books)) assert.ok(shown.some((t) => t.includes(b.title)), `${b.title} in ${shown}`);
  assert.equal(await page.$eval('#search input', (i) => i.getAttribute('aria-expanded')), 'true');
  await screenshot(page, 'store-suggest');
  await page.keyboard.press('ArrowDown');
  const picked = await page.$eval('#suggestions li[aria-selected="true"]', (li) => li.textContent);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#book');
  assert.ok(picked.includes(await page.$eval('#book h2', (h) => h.textContent)), `${picked} opened`);
  assert.equal(await page.$eval('#suggestions', (u) => u.classList.contains('hidden')), true, 'the list closed');
  await page.keyboard.press('Escape');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('the facets filter the results: a category, then in stock only; at phone width too', async () => {
  const page = await pageAs(browser, shopper, `/store.html#/search?q=${word}`);
  await page.setViewport({ width: 390, height: 844 });
  await page.waitForSelector('#facet-categories li a');
  const ids = () => page.$$eval('#books .book', (cards) => cards.map((c) => Number(c.dataset.bookId)));
  assert.deepEqual((await ids()).sort(), Object.values(books).map((b) => b.id).sort());
  const cats = await page.$$eval('#facet-categories li a', (as) => as.map((a) => a.textContent));
  assert.ok(cats.some((t) => /^Fiction .*2$/.test(t)), `categories: ${cats}`);
  assert.ok(cats.some((t) => /^Science .*1$/.test(t)), `categories: ${cats}`);
  assert.equal(await page.$eval('#facet-in-stock-count', (s) => s.textContent), '2');
  await screenshot(page, 'store-facets-390');

  // choose Fiction
  const [link] = await page.$$('#facet-categories li a');
  const first = await link.evaluate((a) => a.textContent);
  assert.match(first, /^Fiction/, 'the bigger category first');
  await link.click();
  await page.waitForFunction((id) => location.hash.includes(`category=${id}`)
    && document.querySelectorAll('#books .book').length === 2, {}, fiction);
  assert.deepEqual((await ids()).sort(), [books.stocked.id, books.unstocked.id].sort());
  assert.ok(await page.$('#facet-categories a.on'), 'the chosen category shows as on');

  // then in stock only
  await page.click('#facet-in-stock');
  await page.waitForFunction(() => location.hash.includes('in_stock=true')
    && document.querySelectorAll('#books .book').length === 1);
  assert.deepEqual(await ids(), [books.stocked.id]);
  assert.equal(await page.$eval('#facet-in-stock', (c) => c.checked), true);

  // clear all: every match again
  await page.click('#facet-clear');
  await page.waitForFunction(() => !location.hash.includes('category=')
    && document.querySelectorAll('#books .book').length === 3);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no sideways scrolling at 390 px (${width})`);
  assert.deepEqual(page.problems, []);
  await page.close();
});
