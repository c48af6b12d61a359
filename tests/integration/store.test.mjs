// The order lifecycle after payment and the back office's catalog tools,
// against the real stack and the payment provider stand-in: delivery (an
// admin's and the carrier's webhook, idempotent), refunds by line or in
// full through the provider with the ledger and stock, a late charge
// refunded on its own, categories and authors (create, rename, move,
// merge, the cache invalidated), a book's stock grid, reusable ISBNs and
// stock status on list cards.  Every failure mode is checked to change
// nothing.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { api, sql, waitFor, redis } from './lib.mjs';
import { WsClient } from './ws.mjs';
import {
  ADDRESS, makeUsers, makeBook, makeWarehouse, setStock, stockOf, checkout, putCart, newKey,
  provider, chargesFor, payment,
} from './shop.mjs';

let eu;
let admin;
let shopper;

before(async () => {
  eu = await makeWarehouse('eu');
  [admin] = await makeUsers('store-admin', 1, 'admin');
  [shopper] = await makeUsers('store-shopper', 1);
});

const as = (who) => ({ token: who.token });

async function stockedBook(copies, price = 1500, title = 'Store test') {
  const b = await makeBook(title, price);
  await setStock(b, eu, copies);
  return b;
}

// a paid order of lines [[book, quantity], ...] for user
async function paidOrder(user, lines) {
  for (const [b, q] of lines) assert.equal((await putCart(user, b, q)).status, 200);
  const r = await checkout(user, newKey());
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.order.status, 'paid');
  return r.json.order;
}

const post = (path, body, who = admin) => api('POST', path, body, as(who));
const orderStatus = async (id) => sql("SELECT status FROM orders WHERE id = :'p1'", id);

// ------------------------------------------------------------ delivery

test('deliver: only a shipped order (409 before), 404 unknown, 403 non-admins; twice is the same answer; the shopper hears', async () => {
  const book = await stockedBook(5);
  const o = await paidOrder(shopper, [[book, 1]]);

  let r = await post(`/api/v1/admin/orders/${o.id}/deliver`, undefined, shopper);
  assert.equal(r.status, 403, r.text);
  r = await post(`/api/v1/admin/orders/${o.id}/deliver`);
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.code, 'invalid_state');
  assert.equal(await orderStatus(o.id), 'paid');
  r = await post('/api/v1/admin/orders/99999999/deliver');
  assert.equal(r.status, 404, r.text);

  assert.equal((await post(`/api/v1/admin/orders/${o.id}/ship`)).status, 200);
  const ws = await WsClient.connect({ token: shopper.token });
  try {
    await waitFor('the shopper online', async () => (await redis('HLEN', `chat:online:{${shopper.id}}`)) !== '0');
    r = await post(`/api/v1/admin/orders/${o.id}/deliver`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.order.status, 'delivered');
    assert.ok(r.json.order.delivered_at);
    await ws.message((m) => m.type === 'order' && m.order.id === o.id && m.order.status === 'delivered', 'the delivered event');
  } finally {
    ws.close();
  }
  const again = await post(`/api/v1/admin/orders/${o.id}/deliver`);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.order.delivered_at, r.json.order.delivered_at);
  // a delivered order cannot ship again
  assert.equal((await post(`/api/v1/admin/orders/${o.id}/ship`)).status, 409);
});

test('carrier webhook: a carrier account only; bad input 400 and nothing kept; the same event twice changes nothing; an id reused for another order 409', async () => {
  const [carrier] = await makeUsers('carrier', 1, 'carrier');
  const book = await stockedBook(5);
  const o = await paidOrder(shopper, [[book, 1]]);
  const other = await paidOrder(shopper, [[book, 1]]);
  const event = newKey('evt');
  const hook = (body, who = carrier) => post('/api/v1/carrier/deliveries', body, who);
  const events = async () => Number(await sql("SELECT count(*) FROM carrier_events WHERE event_id = :'p1'", event));

  let r = await hook({ event_id: event, order_id: o.id, status: 'delivered' }, shopper);
  assert.equal(r.status, 403, r.text);
  for (const bad of [
    { order_id: o.id, status: 'delivered' },
    { event_id: event, status: 'delivered' },
    { event_id: event, order_id: o.id, status: 'lost' },
    { event_id: '', order_id: o.id, status: 'delivered' },
    { event_id: 'x'.repeat(129), order_id: o.id, status: 'delivered' },
    { event_id: event, order_id: -1, status: 'delivered' },
  ]) {
    r = await hook(bad);
    assert.equal(r.status, 400, `${JSON.stringify(bad).slice(0, 80)}: ${r.text}`);
  }
  assert.equal(await events(), 0);

  // not shipped yet: refused, and the event not kept, so the carrier's
  // retry after shipping counts
  r = await hook({ event_id: event, order_id: o.id, status: 'delivered' });
  assert.equal(r.status, 409, r.text);
  assert.equal(await events(), 0);
  assert.equal(await orderStatus(o.id), 'paid');

  assert.equal((await post(`/api/v1/admin/orders/${o.id}/ship`)).status, 200);
  r = await hook({ event_id: event, order_id: o.id, status: 'delivered' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.order.status, 'delivered');
  const first = r.json.order.delivered_at;
  r = await hook({ event_id: event, order_id: o.id, status: 'delivered' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.order.delivered_at, first);
  assert.equal(await events(), 1);

  r = await hook({ event_id: event, order_id: other.id, status: 'delivered' });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.code, 'event_id_reused');
  assert.equal(await orderStatus(other.id), 'paid');
  r = await hook({ event_id: newKey('evt'), order_id: 99999999, status: 'delivered' });
  assert.equal(r.status, 404, r.text);
});

// ------------------------------------------------------------ refunds

test('refunds by line: the amount from the lines, the copies back to stock before shipping, the ledger; more than bought 409, bad lines 400, nothing changed', async () => {
  const a = await stockedBook(10, 1000, 'Refund A');
  const b = await stockedBook(10, 2500, 'Refund B');
  const o = await paidOrder(shopper, [[a, 3], [b, 1]]);
  assert.equal(o.total_cents, 5500);
  assert.deepEqual(await stockOf(a, eu), { onHand: 10, reserved: 3 });
  const refund = (body, who = admin) => post(`/api/v1/admin/orders/${o.id}/refund`, body, who);
  const state = async () => sql(
    `SELECT o.status, o.refunded_cents, (SELECT string_agg(refunded_quantity::text, ',' ORDER BY book_id) FROM order_items WHERE order_id = o.id),
            (SELECT count(*) FROM order_refunds WHERE order_id = o.id), (SELECT count(*) FROM payment_attempts WHERE order_id = o.id AND kind = 'refund')
       FROM orders o WHERE o.id = :'p1'`, o.id);
  const before = await state();

  assert.equal((await refund({ items: [{ book_id: a, quantity: 1 }] }, shopper)).status, 403);
  for (const [bad, code] of [
    [{ items: [] }, 400], [{ items: {} }, 400], [{ items: [{ book_id: a }] }, 400],
    [{ items: [{ book_id: a, quantity: 0 }] }, 400], [{ items: [{ book_id: a, quantity: 1.5 }] }, 400],
    [{ items: [{ book_id: a, quantity: 1 }, { book_id: a, quantity: 1 }] }, 400],
    [{ items: [{ book_id: 99999999, quantity: 1 }] }, 400],
    [{ items: [{ book_id: a, quantity: 4 }] }, 409],
  ]) {
    const r = await refund(bad);
    assert.equal(r.status, code, `${JSON.stringify(bad)}: ${r.text}`);
  }
  assert.equal(await state(), before);
  assert.deepEqual(await stockOf(a, eu), { onHand: 10, reserved: 3 });

  let r = await refund({ items: [{ book_id: a, quantity: 2 }] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.order.status, 'paid');
  assert.equal(r.json.order.refunded_cents, 2000);
  assert.equal(r.json.order.items.find((i) => i.book_id === a).refunded_quantity, 2);
  assert.equal(r.json.order.refunds.length, 1);
  assert.deepEqual(await stockOf(a, eu), { onHand: 10, reserved: 1 });
  assert.equal(await sql(`SELECT sum(delta_reserved) FROM stock_ledger WHERE order_id = :'p1' AND book_id = :'p2'`, o.id, a), '1');
  let [charge] = await chargesFor(o.id);
  assert.equal(charge.refunded_cents, 2000);
  assert.equal(charge.status, 'succeeded');

  // two more of A than are left: refused, nothing changes
  r = await refund({ items: [{ book_id: a, quantity: 2 }] });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.code, 'refund_exceeds_order');

  // ship the rest, then refund everything left: money back, copies stay with the buyer
  assert.equal((await post(`/api/v1/admin/orders/${o.id}/ship`)).status, 200);
  assert.deepEqual(await stockOf(a, eu), { onHand: 9, reserved: 0 });
  r = await refund(undefined);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.order.status, 'refunded');
  assert.equal(r.json.order.refunded_cents, 5500);
  assert.deepEqual(await stockOf(a, eu), { onHand: 9, reserved: 0 });
  [charge] = await chargesFor(o.id);
  assert.equal(charge.status, 'refunded');
  assert.equal(charge.refunded_cents, 5500);
  assert.equal(await sql("SELECT count(*) || ':' || sum(amount_cents) FROM order_refunds WHERE order_id = :'p1'", o.id), '2:5500');

  // in full again: the same answer, no new refund; by line: nothing is left
  r = await refund(undefined);
  assert.equal(r.status, 200, r.text);
  r = await refund({ items: [{ book_id: b, quantity: 1 }] });
  assert.equal(r.status, 409, r.text);
  assert.equal(await sql("SELECT count(*) FROM order_refunds WHERE order_id = :'p1'", o.id), '2');
});

test('a refund sent again with its Idempotency-Key answers as the first time and never refunds twice; another key is another refund', async () => {
  const book = await stockedBook(6, 1000, 'Refund key');
  const o = await paidOrder(shopper, [[book, 3]]);
  const key = newKey('refund');
  const once = (k) => api('POST', `/api/v1/admin/orders/${o.id}/refund`, { items: [{ book_id: book, quantity: 1 }] },
    { token: admin.token, headers: { 'idempotency-key': k } });
  let r = await once(key);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.order.refunded_cents, 1000);
  // the same request again, as after a lost answer: the same answer, nothing more given back
  r = await once(key);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.order.refunded_cents, 1000);
  assert.equal(r.json.order.items[0].refunded_quantity, 1);
  assert.equal(await sql("SELECT count(*) FROM order_refunds WHERE order_id = :'p1'", o.id), '1');
  assert.equal((await chargesFor(o.id))[0].refunded_cents, 1000);
  // a new key is a new refund of one more copy
  r = await once(newKey('refund'));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.order.refunded_cents, 2000);
  assert.equal((await chargesFor(o.id))[0].refunded_cents, 2000);
  assert.equal(await sql("SELECT count(*) FROM order_refunds WHERE order_id = :'p1'", o.id), '2');
});

test('a charge that lands after its reservation lapsed is refunded on its own, with the ledger; the stock stays released; the admins hear', async () => {
  const book = await stockedBook(2, 1800, 'Late charge');
  const [u] = await makeUsers('late', 1);
  await putCart(u, book, 1);
  const watcher = await WsClient.connect({ token: admin.token });
  await waitFor('the admin online', async () => (await redis('HLEN', `chat:online:{${admin.id}}`)) !== '0');
  // the provider receives the request only after the order was cancelled
  let r = await provider('PUT', '/v1/test/latency', { hold_ms: 12000 });
  assert.equal(r.status, 200, r.text);
  let id;
  try {
    r = await api('POST', '/api/v1/orders', { shipping_address: ADDRESS, payment: await payment() },
      { token: u.token, headers: { 'idempotency-key': newKey('late') } });
    assert.equal(r.status, 201, r.text);
    id = r.json.order.id;
    assert.equal(r.json.order.status, 'pending_payment');
    await waitFor('the order cancelled', async () => (await orderStatus(id)) === 'cancelled', { timeout: 60000 });
    assert.deepEqual(await stockOf(book, eu), { onHand: 2, reserved: 0 });
  } finally {
    await provider('PUT', '/v1/test/latency', { hold_ms: 0 });
  }
  const refund = await waitFor('the late charge refunded', async () => {
    const [c] = await chargesFor(id);
    return c?.status === 'refunded' && await sql("SELECT count(*) FROM order_refunds WHERE order_id = :'p1' AND reason = 'late_charge'", id) === '1' && c;
  }, { timeout: 90000, every: 500 });
  assert.equal(refund.refunded_cents, 1800);
  // the reconciler's refund reaches the admins' open pages, by nobody
  try {
    const m = await watcher.message((x) => x.type === 'admin_change' && x.change.kind === 'order' && x.change.id === id,
      'the late refund told to the admins');
    assert.equal(m.change.by, 0);
  } finally {
    watcher.close();
  }
  const o = (await api('GET', `/api/v1/orders/${id}`, undefined, { token: u.token })).json.order;
  assert.equal(o.status, 'cancelled');
  assert.equal(o.refunded_cents, 1800);
  assert.equal(o.refunds[0].reason, 'late_charge');
  assert.deepEqual(await stockOf(book, eu), { onHand: 2, reserved: 0 });
  // once: the charge is not looked at again, no second refund
  assert.equal(await sql("SELECT count(*) FROM payment_attempts WHERE order_id = :'p1' AND kind = 'refund'", id), '1');
  assert.equal(await sql("SELECT watch_until IS NULL FROM payment_attempts WHERE order_id = :'p1' AND kind = 'charge'", id), 't');
});

// ------------------------------------------------------------ categories and authors

test('categories: create under a parent, rename, move (never under itself), merge; duplicates 409, bad input 400 and nothing made; the tree fresh at once', async () => {
  const tag = newKey('cat').slice(-8);
  const tree = async () => (await api('GET', '/api/v1/categories')).json.categories;
  let r = await post('/api/v1/admin/categories', { name: `Top ${tag}`, parent_id: null }, shopper);
  assert.equal(r.status, 403, r.text);
  r = await post('/api/v1/admin/categories', { name: `Top ${tag}`, parent_id: null });
  assert.equal(r.status, 201, r.text);
  const top = r.json.category;
  assert.equal(top.slug, `top-${tag}`);
  r = await post('/api/v1/admin/categories', { name: `Child ${tag}`, parent_id: top.id });
  assert.equal(r.status, 201, r.text);
  const child = r.json.category;
  assert.equal(child.parent_id, top.id);
  assert.ok((await tree()).some((c) => c.id === child.id && c.parent_id === top.id));

  const count = await sql('SELECT count(*) FROM categories');
  for (const [bad, code] of [
    [{ name: '' }, 400], [{ name: 'x'.repeat(201) }, 400], [{ name: `N ${tag}`, parent_id: 99999999 }, 400],
    [{ name: `N ${tag}`, parent_id: 'one' }, 400], [{ name: `top ${tag}`, parent_id: null }, 409], [{ parent_id: top.id }, 400],
  ]) {
    r = await post('/api/v1/admin/categories', bad);
    assert.equal(r.status, code, `${JSON.stringify(bad).slice(0, 60)}: ${r.text}`);
  }
  assert.equal(await sql('SELECT count(*) FROM categories'), count);

  const put = (id, body) => api('PUT', `/api/v1/admin/categories/${id}`, body, as(admin));
  // under its own child, under itself, nothing, into its own subtree or
  // itself, an empty name, a missing target
  for (const bad of [{ parent_id: child.id }, { parent_id: top.id }, {}, { merge_into: child.id },
    { merge_into: top.id }, { name: '' }, { merge_into: 99999999 }, { name: 'x', merge_into: child.id }]) {
    r = await put(top.id, bad);
    assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
  }
  assert.equal((await put(99999999, { name: 'x' })).status, 404);
  assert.equal(await sql("SELECT coalesce(parent_id, 0) || name FROM categories WHERE id = :'p1'", top.id), `0Top ${tag}`);

  // rename: the tree says so at once (the cached list was invalidated)
  await tree();
  r = await put(child.id, { name: `Renamed ${tag}` });
  assert.equal(r.status, 200, r.text);
  assert.ok((await tree()).some((c) => c.id === child.id && c.name === `Renamed ${tag}`));
  // move to the top, and back
  r = await put(child.id, { parent_id: null });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.category.parent_id, null);
  r = await put(child.id, { parent_id: top.id });
  assert.equal(r.json.category.parent_id, top.id);

  // merge: the books and subcategories move, the category goes
  const book = await makeBook(`In child ${tag}`);
  await sql("INSERT INTO book_categories (book_id, category_id) VALUES (:'p1', :'p2')", book, child.id);
  r = await post('/api/v1/admin/categories', { name: `Grandchild ${tag}`, parent_id: child.id });
  const grandchild = r.json.category;
  await api('GET', `/api/v1/books/${book}`);
  r = await put(child.id, { merge_into: top.id });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.category.id, top.id);
  const cats = await tree();
  assert.ok(!cats.some((c) => c.id === child.id));
  assert.equal(cats.find((c) => c.id === grandchild.id).parent_id, top.id);
  const detail = (await api('GET', `/api/v1/books/${book}`)).json.book;
  assert.deepEqual(detail.categories.map((c) => c.id), [top.id]);
});

test('authors: create, duplicates 409, rename shows on the book at once, merge moves the books; bad input 400; non-admins 403', async () => {
  const tag = newKey('au').slice(-8);
  let r = await post('/api/v1/admin/authors', { name: `Ann ${tag}` }, shopper);
  assert.equal(r.status, 403, r.text);
  r = await post('/api/v1/admin/authors', { name: `Ann ${tag}` });
  assert.equal(r.status, 201, r.text);
  const ann = r.json.author;
  r = await post('/api/v1/admin/authors', { name: `A. ${tag}` });
  const dup = r.json.author;
  const count = await sql('SELECT count(*) FROM authors');
  for (const [bad, code] of [[{ name: '' }, 400], [{ name: 'x'.repeat(301) }, 400], [{ name: `Ann ${tag}` }, 409], [{ name: 7 }, 400]]) {
    r = await post('/api/v1/admin/authors', bad);
    assert.equal(r.status, code, `${JSON.stringify(bad).slice(0, 40)}: ${r.text}`);
  }
  assert.equal(await sql('SELECT count(*) FROM authors'), count);

  const book = await makeBook(`By ${tag}`);
  await sql("INSERT INTO book_authors (book_id, author_id, position) VALUES (:'p1', :'p2', 0)", book, dup.id);
  const authorsOf = async () => (await api('GET', `/api/v1/books/${book}`)).json.book.authors.map((a) => a.name);
  assert.deepEqual(await authorsOf(), [`A. ${tag}`]);   // now cached

  const put = (id, body) => api('PUT', `/api/v1/admin/authors/${id}`, body, as(admin));
  for (const [bad, code] of [[{}, 400], [{ merge_into: dup.id }, 400], [{ merge_into: 99999999 }, 400],
    [{ name: `Ann ${tag}` }, 409], [{ name: 'x', merge_into: ann.id }, 400]]) {
    r = await put(dup.id, bad);
    assert.equal(r.status, code, `${JSON.stringify(bad)}: ${r.text}`);
  }
  assert.equal((await put(99999999, { name: 'x' })).status, 404);

  r = await put(dup.id, { name: `Anne ${tag}` });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await authorsOf(), [`Anne ${tag}`]);
  r = await put(dup.id, { merge_into: ann.id });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.author.id, ann.id);
  assert.deepEqual(await authorsOf(), [`Ann ${tag}`]);
  assert.equal(await sql("SELECT count(*) FROM authors WHERE id = :'p1'", dup.id), '0');
  assert.equal((await api('GET', `/api/v1/authors/${dup.id}`)).status, 404);
});

test('list items take their authors from book_list_authors, which every way of changing a book\'s authors keeps in step', async () => {
  const tag = newKey('la').slice(-8);
  const mk = async (name) => (await post('/api/v1/admin/authors', { name })).json.author;
  const [a, b] = [await mk(`First ${tag}`), await mk(`Second ${tag}`)];
  const book = await makeBook(`Listed ${tag}`);
  const listed = async () => (await sql("SELECT authors::text FROM book_list_authors WHERE book_id = :'p1'", book));
  const names = async () => JSON.parse((await listed()) || '[]').map((x) => x.name);

  // linked straight in SQL, in two statements, out of order: the list keeps position order
  await sql("INSERT INTO book_authors (book_id, author_id, position) VALUES (:'p1', :'p2', 1)", book, b.id);
  await sql("INSERT INTO book_authors (book_id, author_id, position) VALUES (:'p1', :'p2', 0)", book, a.id);
  await sql("SELECT catalog_book_refresh(:'p1')", book);   // searchable, as every writer does
  assert.deepEqual(await names(), [`First ${tag}`, `Second ${tag}`]);
  // positions swapped in one UPDATE
  await sql("UPDATE book_authors SET position = 1 - position WHERE book_id = :'p1'", book);
  assert.deepEqual(await names(), [`Second ${tag}`, `First ${tag}`]);
  // renamed through the API: the list, and the search's list item, follow
  assert.equal((await api('PUT', `/api/v1/admin/authors/${a.id}`, { name: `Renamed ${tag}` }, as(admin))).status, 200);
  assert.deepEqual(await names(), [`Second ${tag}`, `Renamed ${tag}`]);
  const hit = (await api('GET', `/api/v1/books/search?q=${encodeURIComponent(`listed ${tag}`)}`)).json.books.find((x) => x.id === Number(book));
  assert.deepEqual(hit?.authors.map((x) => x.name), [`Second ${tag}`, `Renamed ${tag}`]);
  // every link gone: no row, and the list item says []
  await sql("DELETE FROM book_authors WHERE book_id = :'p1'", book);
  assert.equal(await listed(), '');
  assert.deepEqual((await api('GET', `/api/v1/books/${book}`)).json.book.authors, []);

  // and for every book there is, in one snapshot
  const off = await sql(`SELECT count(*) FROM books bk
     WHERE (SELECT authors::text FROM book_list_authors l WHERE l.book_id = bk.id)
           IS DISTINCT FROM (SELECT json_agg(json_build_object('id', au.id, 'name', au.name) ORDER BY ba.position, au.id)::text
                               FROM book_authors ba JOIN authors au ON au.id = ba.author_id WHERE ba.book_id = bk.id)`);
  assert.equal(off, '0', 'books whose list of authors disagrees with their links');
});

// the list item as it would be built from books, book_list_authors and stock
const BUILT_ITEM = `json_build_object('id', b.id, 'isbn13', b.isbn13, 'title', b.title, 'subtitle', b.subtitle,
  'authors', coalesce((SELECT la.authors FROM book_list_authors la WHERE la.book_id = b.id), '[]'::json),
  'price_cents', b.price_cents, 'currency', b.currency, 'format', b.format, 'published_on', b.published_on,
  'rating_avg', b.rating_avg::float8, 'rating_count', b.rating_count, 'cover_url', b.cover_url,
  'cover_thumb_url', b.cover_thumb_url)::text`;

test('list items come ready-made from book_list_items, which every writer of a book keeps in step; the stock is live', async () => {
  const tag = newKey('li').slice(-8);
  const book = await stockedBook(9, 1500, `Itemised ${tag}`);
  const item = async () => JSON.parse(await sql("SELECT item FROM book_list_items WHERE book_id = :'p1'", book));
  const card = async () => (await api('GET', `/api/v1/books/search?q=${encodeURIComponent(`itemised ${tag}`)}`))
    .json.books.find((x) => x.id === book);

  // a new book has its item at once, and the search shows it with its stock
  assert.equal((await item()).title, `Itemised ${tag}`);
  await sql("SELECT catalog_book_refresh(:'p1')", book);
  let c = await card();
  assert.equal(c?.price_cents, 1500);
  assert.equal(c.stock_status, 'in_stock');

  // an admin's edit through the API
  let r = await api('PUT', `/api/v1/admin/books/${book}`, { price_cents: 2250, subtitle: `Sub ${tag}` }, as(admin));
  assert.equal(r.status, 200, r.text);
  assert.equal((await item()).price_cents, 2250);
  assert.equal((await item()).subtitle, `Sub ${tag}`);
  // a review's rating
  r = await api('POST', `/api/v1/books/${book}/reviews`, { rating: 4, text: 'fine' }, as(shopper));
  assert.equal(r.status, 201, r.text);
  assert.equal((await item()).rating_count, 1);
  assert.equal((await item()).rating_avg, 4);
  // an author linked in SQL, then renamed through the API
  const au = (await post('/api/v1/admin/authors', { name: `Writer ${tag}` })).json.author;
  await sql("INSERT INTO book_authors (book_id, author_id, position) VALUES (:'p1', :'p2', 0)", book, au.id);
  assert.deepEqual((await item()).authors, [{ id: au.id, name: `Writer ${tag}` }]);
  assert.equal((await api('PUT', `/api/v1/admin/authors/${au.id}`, { name: `Author ${tag}` }, as(admin))).status, 200);
  assert.deepEqual((await item()).authors.map((x) => x.name), [`Author ${tag}`]);
  // the stock selling out does not write the item, and the card follows at once
  const before = await sql("SELECT xmin FROM book_list_items WHERE book_id = :'p1'", book);
  await setStock(book, eu, 0);
  assert.equal(await sql("SELECT xmin FROM book_list_items WHERE book_id = :'p1'", book), before);
  await sql("SELECT catalog_book_refresh(:'p1')", book);
  c = await card();
  assert.equal(c?.stock_status, 'out_of_stock');
  assert.equal(c.subtitle, `Sub ${tag}`);
  assert.equal((await api('GET', `/api/v1/books/${book}`)).json.book.stock_status, 'out_of_stock');
  // deleting the book deletes its item
  await sql("DELETE FROM book_authors WHERE book_id = :'p1'", book);
  await sql("DELETE FROM stock WHERE book_id = :'p1'", book);
  await sql("DELETE FROM reviews WHERE book_id = :'p1'", book);
  await sql("DELETE FROM books WHERE id = :'p1'", book);
  assert.equal(await sql("SELECT count(*) FROM book_list_items WHERE book_id = :'p1'", book), '0');

  // and for every book there is, in one snapshot
  const off = await sql(`SELECT count(*) FROM books b
     WHERE (SELECT li.item FROM book_list_items li WHERE li.book_id = b.id) IS DISTINCT FROM ${BUILT_ITEM}`);
  assert.equal(off, '0', 'books whose list item disagrees with the book');
});

// ------------------------------------------------------------ books and stock

test('a book\'s stock grid names every warehouse with on hand, reserved and the recent ledger; 404 unknown, 403 non-admins', async () => {
  const book = await stockedBook(7);
  let r = await api('GET', `/api/v1/admin/inventory/${book}`, undefined, as(shopper));
  assert.equal(r.status, 403, r.text);
  r = await api('GET', '/api/v1/admin/inventory/99999999', undefined, as(admin));
  assert.equal(r.status, 404, r.text);
  assert.equal((await api('PUT', `/api/v1/admin/inventory/${book}/${eu}`, { on_hand: 9 }, as(admin))).status, 200);
  r = await api('GET', `/api/v1/admin/inventory/${book}`, undefined, as(admin));
  assert.equal(r.status, 200, r.text);
  const row = r.json.stock.find((s) => s.warehouse_id === eu);
  assert.equal(row.on_hand, 9);
  assert.equal(row.reserved, 0);
  assert.ok(row.name && row.code && row.region);
  assert.equal(r.json.stock.length, Number(await sql('SELECT count(*) FROM warehouses')));
  assert.equal(r.json.ledger[0].delta_on_hand, 2);
});

test('a deleted book\'s ISBN can be used again; a live one cannot (409)', async () => {
  const isbn = `978${String(Date.now()).slice(-9)}`;
  const check = (10 - ([...isbn].reduce((s, d, i) => s + Number(d) * (i % 2 ? 3 : 1), 0) % 10)) % 10;
  const full = isbn + String(check);
  const body = { isbn: full, title: 'ISBN reuse', authors: ['Re User'], price_cents: 900 };
  let r = await post('/api/v1/admin/books', body);
  assert.equal(r.status, 201, r.text);
  const first = r.json.book.id;
  r = await post('/api/v1/admin/books', body);
  assert.equal(r.status, 409, r.text);
  const other = await makeBook('Another');
  r = await api('PUT', `/api/v1/admin/books/${other}`, { isbn: full }, as(admin));
  assert.equal(r.status, 409, r.text);
  assert.equal((await api('DELETE', `/api/v1/admin/books/${first}`, undefined, as(admin))).status, 200);
  r = await post('/api/v1/admin/books', body);
  assert.equal(r.status, 201, r.text);
  assert.notEqual(r.json.book.id, first);
  const found = await api('GET', `/api/v1/books/search?q=${full}`);
  assert.deepEqual(found.json.books.map((b) => b.id), [r.json.book.id]);
});

test('book cards in lists carry their stock status', async () => {
  const tag = newKey('card').slice(-8);
  // made through the API, so that search knows their words
  const made = [];
  for (const title of [`Card ${tag} stocked`, `Card ${tag} none`]) {
    const d = [9, 7, 8, ...Array.from({ length: 9 }, () => Math.floor(Math.random() * 10))];
    const isbn = d.join('') + String((10 - (d.reduce((s, x, i) => s + x * (i % 2 ? 3 : 1), 0) % 10)) % 10);
    const r = await post('/api/v1/admin/books', { isbn, title, authors: ['Card Author'], price_cents: 1000 });
    assert.equal(r.status, 201, r.text);
    made.push(r.json.book.id);
  }
  const inStock = made[0];
  await setStock(inStock, eu, 20);
  const r = await api('GET', `/api/v1/books/search?q=${encodeURIComponent(`Card ${tag}`)}`);
  assert.equal(r.status, 200, r.text);
  const byId = new Map(r.json.books.map((b) => [b.id, b]));
  assert.equal(byId.get(inStock).stock_status, 'in_stock');
  assert.ok(r.json.books.some((b) => b.stock_status === 'out_of_stock'));
  assert.ok(r.json.books.every((b) => !('available' in b)));
});

// ------------------------------------------------------------ admins see each other's changes

test("one admin's changes reach every admin's connection as admin_change {kind, id, by}; refused ones and shoppers hear nothing", async () => {
  const [a1, a2] = await makeUsers('store-admins', 2, 'admin');
  const book = await stockedBook(4, 1200, 'Admin change');
  const o = await paidOrder(shopper, [[book, 2]]);
  const watcher = await WsClient.connect({ token: a2.token });
  const buyer = await WsClient.connect({ token: shopper.token });
  const change = (kind, id) => (m) => m.type === 'admin_change' && m.change.kind === kind && m.change.id === id;
  try {
    for (const u of [a2, shopper]) {
      await waitFor('online', async () => (await redis('HLEN', `chat:online:{${u.id}}`)) !== '0');
    }
    // refused first: a bad adjustment, a ship of a missing order, a
    // shopper's try; none may be told
    let r = await api('POST', `/api/v1/admin/inventory/${book}/${eu}/adjust`, { delta: 0, reason: 'x' }, as(a1));
    assert.equal(r.status, 400, r.text);
    assert.equal((await post('/api/v1/admin/orders/99999999/ship', undefined, a1)).status, 404);
    assert.equal((await api('PUT', `/api/v1/admin/books/${book}`, { price_cents: 1 }, as(shopper))).status, 403);

    r = await api('PUT', `/api/v1/admin/books/${book}`, { price_cents: 1300 }, as(a1));
    assert.equal(r.status, 200, r.text);
    const m = await watcher.message(change('book', book), 'the book change');
    assert.equal(m.change.by, a1.id);
    r = await api('POST', `/api/v1/admin/inventory/${book}/${eu}/adjust`, { delta: 3, reason: 'delivery' }, as(a1));
    assert.equal(r.status, 200, r.text);
    await watcher.message(change('stock', book), 'the stock change');
    assert.equal((await post(`/api/v1/admin/orders/${o.id}/ship`, undefined, a1)).status, 200);
    await watcher.message(change('order', o.id), 'the ship');
    r = await post(`/api/v1/admin/orders/${o.id}/refund`, { items: [{ book_id: book, quantity: 1 }] }, a1);
    assert.equal(r.status, 200, r.text);
    await watcher.messagesWhere(change('order', o.id), 2, 'the refund');
    // the stock change was told once: the refused adjustment said nothing
    assert.equal(watcher.messages.filter(change('stock', book)).length, 1);
    await buyer.message((x) => x.type === 'order' && x.order.id === o.id && x.order.refunded_cents === 1200, 'the refund, to its owner');
    assert.ok(!buyer.messages.some((x) => x.type === 'admin_change'), 'a shopper hears no admin change');
  } finally {
    watcher.close();
    buyer.close();
  }
});
