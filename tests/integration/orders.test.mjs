// Cart, checkout, payments and orders against the real stack and the
// payment provider stand-in (payments/).  Books, warehouses and stock are
// inserted straight into PostgreSQL (the catalog endpoints are another
// part's); shoppers are made in SQL with tokens signed here, so a hundred
// concurrent buyers cost no scrypt.
//
// tests/run.sh runs the stack with PAYMENT_TIMEOUT_MS=1000 (slow cards
// answer after 2500 ms), RESERVATION_TTL_MS=4000 and
// RECONCILE_INTERVAL_MS=500, so timeouts, reconciliation and expiry all
// happen within seconds.  The provider answers at once unless a test
// slows it down for a while (PUT /v1/test/latency, withLatency below).

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { api, sql, waitFor, workerPids, pendingByWorker, redis, lanePids, STREAM_SHARDS } from './lib.mjs';
import { WsClient } from './ws.mjs';
import {
  CARDS, ADDRESS, makeUsers, makeBook, makeWarehouse, setStock, stockOf, checkout,
  putCart, newKey, provider, chargesFor, orderRow, payment, sign, cardFields, tokenize,
} from './shop.mjs';

let eu;
let us;

before(async () => {
  eu = await makeWarehouse('eu');
  us = await makeWarehouse('us');
});

// a book with copies in the eu warehouse
async function stockedBook(copies, price = 1500, title = 'Stocked') {
  const b = await makeBook(title, price);
  await setStock(b, eu, copies);
  return b;
}

async function getOrder(user, id) {
  return api('GET', `/api/v1/orders/${id}`, undefined, { token: user.token });
}

// runs fn with the payment provider answering in ms (every answer: a
// charge, a replay, a lookup), counting its calls in flight from zero;
// puts it back to answering at once afterwards
async function withLatency(ms, fn) {
  const r = await provider('PUT', '/v1/test/latency', { latency_ms: ms, jitter_ms: 0, reset_max: true });
  assert.equal(r.status, 200, r.text);
  try {
    return await fn();
  } finally {
    await provider('PUT', '/v1/test/latency', { latency_ms: 0, jitter_ms: 0 });
  }
}

async function providerStats() {
  return (await provider('GET', '/v1/stats')).json;
}

async function settled(user, id) {
  return waitFor(`order ${id} settled`, async () => {
    const r = await getOrder(user, id);
    return r.json.order.status !== 'pending_payment' && r.json.order;
  }, { timeout: 30000, every: 200 });
}

// ------------------------------------------------------------------ cart

test('cart: put, read at the current price, flag what went out of stock, delete', async () => {
  const [u] = await makeUsers('cart', 1);
  const a = await stockedBook(3, 1200, 'Cart A');
  const b = await stockedBook(1, 800, 'Cart B');

  let r = await putCart(u, a, 2);
  assert.equal(r.status, 200, r.text);
  r = await putCart(u, b, 1);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.total_cents, 2 * 1200 + 800);

  // the same cart from another session (another token of the same user)
  const now = Math.floor(Date.now() / 1000);
  const otherSession = sign({ sub: String(u.id), role: 'user', iat: now - 5, exp: now + 600 });
  r = await api('GET', '/api/v1/cart', undefined, { token: otherSession });
  assert.deepEqual(r.json.items.map((i) => [i.book_id, i.quantity]), [[a, 2], [b, 1]]);

  // the price shown is the catalog's now; a line stock cannot cover is flagged
  await sql(`UPDATE books SET price_cents = 1000 WHERE id = :'p1'`, a);
  await setStock(b, eu, 0);
  r = await api('GET', '/api/v1/cart', undefined, { token: u.token });
  const byId = Object.fromEntries(r.json.items.map((i) => [i.book_id, i]));
  assert.equal(byId[a].price_cents, 1000);
  assert.equal(byId[a].out_of_stock, false);
  assert.equal(byId[b].out_of_stock, true);
  assert.equal(byId[b].available, 0);
  assert.equal(r.json.total_cents, 2 * 1000 + 800);

  // quantity replaced, not added
  r = await putCart(u, a, 5);
  assert.equal(r.json.items.find((i) => i.book_id === a).quantity, 5);

  r = await api('DELETE', `/api/v1/cart/items/${b}`, undefined, { token: u.token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.items.map((i) => i.book_id), [a]);
});

test('cart: bad quantities and unknown books are refused and change nothing', async () => {
  const [u] = await makeUsers('cartbad', 1);
  const a = await stockedBook(3);
  for (const q of [0, 100, -1, 1.5]) {
    const r = await putCart(u, a, q);
    assert.equal(r.status, 400, `quantity ${q}: ${r.text}`);
  }
  let r = await api('PUT', `/api/v1/cart/items/${a}`, { quantity: '2' }, { token: u.token });
  assert.equal(r.status, 400, r.text);
  r = await putCart(u, 987654321, 1);
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.code, 'book_not_found');
  r = await api('GET', '/api/v1/cart', undefined, { token: u.token });
  assert.deepEqual(r.json, { items: [], total_cents: 0 });
  r = await api('GET', '/api/v1/cart');
  assert.equal(r.status, 401);
});

test('cart: a full cart (100 books) refuses another book but changes its own lines; a deleted book is refused', async () => {
  const [u] = await makeUsers('cartfull', 1);
  const ids = (await sql(`INSERT INTO books (isbn13, title, price_cents)
      SELECT '9790' || lpad((floor(random() * 1e9))::bigint::text, 9, '0'), 'Full cart ' || g, 500
        FROM generate_series(1, 101) g RETURNING id`)).split('\n').filter(Boolean).map(Number);
  await sql(`INSERT INTO cart_items (user_id, book_id, quantity)
             SELECT :'p1'::bigint, unnest(:'p2'::bigint[]), 1`, String(u.id), `{${ids.slice(0, 100).join(',')}}`);
  let r = await putCart(u, ids[100], 1);
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'cart_full');
  r = await putCart(u, ids[0], 3);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.items.length, 100);
  await sql(`UPDATE books SET deleted_at = now() WHERE id = :'p1'`, String(ids[1]));
  r = await putCart(u, ids[1], 2);
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.code, 'book_not_found');
  assert.equal(await sql(`SELECT count(*) || ' ' || sum(quantity) FROM cart_items WHERE user_id = :'p1'`, String(u.id)),
    '100 102');
});

// ------------------------------------------------------------------ checkout basics

test('checkout: Idempotency-Key required, a token required, empty cart refused; nothing reserved', async () => {
  const [u] = await makeUsers('basic', 1);
  let r = await checkout(u, null);
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'missing_idempotency_key');

  r = await checkout(u, newKey());
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'cart_empty');

  const a = await stockedBook(2);
  await putCart(u, a, 1);
  // what is not a card never becomes a token (Luhn, expiry: the processor)
  await assert.rejects(tokenize('4242424242424241'), /400.*invalid_card/);
  await assert.rejects(tokenize(CARDS.ok, { exp_year: 2001 }), /400.*expired/);
  for (const bad of [{}, { token: 12 }, { token: 'not a token' }, { token: `tok_${'x'.repeat(200)}` }]) {
    r = await api('POST', '/api/v1/orders', { shipping_address: ADDRESS, payment: bad },
      { token: u.token, headers: { 'idempotency-key': newKey() } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, 'invalid_payment');
  }
  r = await api('POST', '/api/v1/orders', { payment: await payment() },
    { token: u.token, headers: { 'idempotency-key': newKey() } });
  assert.equal(r.status, 400, r.text);
  r = await api('POST', '/api/v1/orders', { shipping_address: ADDRESS },
    { token: u.token, headers: { 'idempotency-key': newKey() } });
  assert.equal(r.status, 400, r.text);

  assert.deepEqual(await stockOf(a, eu), { onHand: 2, reserved: 0 });
  assert.equal(await sql(`SELECT count(*) FROM orders WHERE user_id = :'p1'`, u.id), '0');
});

test('checkout: paid, prices computed by the server and frozen, stock reserved with ledger rows, cart emptied, card never stored', async () => {
  const [u] = await makeUsers('paid', 1);
  const a = await stockedBook(5, 1999, 'Paid A');
  const b = await stockedBook(5, 501, 'Paid B');
  await putCart(u, a, 2);
  await putCart(u, b, 1);

  // prices and totals sent by the client are ignored
  const r = await checkout(u, newKey(), CARDS.ok, { total_cents: 1, items: [{ book_id: a, quantity: 2, price_cents: 1 }] });
  assert.equal(r.status, 201, r.text);
  const o = r.json.order;
  assert.equal(o.status, 'paid');
  assert.equal(o.total_cents, 2 * 1999 + 501);
  assert.deepEqual(o.items.map((i) => [i.book_id, i.quantity, i.price_cents]), [[a, 2, 1999], [b, 1, 501]]);
  assert.equal(o.payment.card_last4, '4242');
  assert.match(o.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  assert.deepEqual(await stockOf(a, eu), { onHand: 5, reserved: 2 });
  assert.deepEqual(await stockOf(b, eu), { onHand: 5, reserved: 1 });
  const ledger = await sql(`SELECT book_id, delta_reserved, actor_id FROM stock_ledger WHERE order_id = :'p1' ORDER BY book_id`, o.id);
  assert.equal(ledger, `${a}|2|${u.id}\n${b}|1|${u.id}`);

  // the cart lines bought are gone
  const cart = await api('GET', '/api/v1/cart', undefined, { token: u.token });
  assert.deepEqual(cart.json.items, []);

  // a later price change does not touch the order
  await sql(`UPDATE books SET price_cents = 5 WHERE id = :'p1'`, a);
  const again = await getOrder(u, o.id);
  assert.equal(again.json.order.total_cents, 2 * 1999 + 501);

  // one charge at the provider, for the total; no card number kept by us
  const charges = await chargesFor(o.id);
  assert.equal(charges.length, 1);
  assert.equal(charges[0].amount_cents, o.total_cents);
  assert.equal(charges[0].status, 'succeeded');
  assert.equal(o.payment.provider_ref, charges[0].id);
  assert.equal(await sql(`SELECT count(*) FROM command_log WHERE reply LIKE '%4242424242424242%'
                          OR request_hash::text LIKE '%4242424242424242%'`), '0');
  assert.equal(await sql(`SELECT count(*) FROM orders WHERE orders::text LIKE '%4242424242424242%'`), '0');
  // the order learnt the last four digits from the provider's answer
  assert.equal(await sql(`SELECT card_last4 FROM orders WHERE id = :'p1'`, o.id), '4242');
});

test('checkout: card details are refused at the edge (400 card_data_not_accepted), nothing reaches Redis or is reserved', async () => {
  const [u] = await makeUsers('rawcard', 1);
  const a = await stockedBook(2);
  await putCart(u, a, 1);
  const card = '5555555555554444';
  const forms = [
    { card_number: card, exp_month: 12, exp_year: new Date().getUTCFullYear() + 1, cvc: '987' },
    { card_number: '5555 5555-5555 4444', exp_month: '12', exp_year: '2040', cvc: '987' },
    { token: await tokenize(), cvc: '987' },
    { card: cardFields(card) },
  ];
  for (const p of forms) {
    const r = await api('POST', '/api/v1/orders', { shipping_address: ADDRESS, payment: p },
      { token: u.token, headers: { 'idempotency-key': newKey() } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, 'card_data_not_accepted');
    assert.match(r.json.error.message, /tokenize/);
  }
  // no command was queued for them: every orders stream is as it was
  const added = async () => {
    let n = 0;
    for (let s = 0; s < STREAM_SHARDS; s++) {
      const info = (await redis('XINFO', 'STREAM', `chat:cmd:orders:{${s}}`).catch(() => '')).split('\n');
      n += Number(info[info.indexOf('entries-added') + 1] ?? 0);
    }
    return n;
  };
  const n0 = await added();
  const r = await api('POST', '/api/v1/orders', { shipping_address: ADDRESS, payment: forms[0] },
    { token: u.token, headers: { 'idempotency-key': newKey() } });
  assert.equal(r.status, 400);
  assert.equal(await added(), n0, 'a refused checkout queued a command');
  assert.equal(await sql(`SELECT count(*) FROM orders WHERE user_id = :'p1'`, u.id), '0');
  assert.deepEqual(await stockOf(a, eu), { onHand: 2, reserved: 0 });
});

test('checkout: a token pays once; the same key and token again is a replay, another key with it is declined', async () => {
  const [u] = await makeUsers('once', 1);
  const a = await stockedBook(3);
  await putCart(u, a, 1);
  const token = await tokenize();
  const key = newKey();
  const send = (k) => api('POST', '/api/v1/orders', { shipping_address: ADDRESS, payment: { token } },
    { token: u.token, headers: { 'idempotency-key': k } });
  const first = await send(key);
  assert.equal(first.status, 201, first.text);
  assert.equal(first.json.order.status, 'paid');
  assert.equal(first.json.order.payment.card_last4, '4242');
  assert.deepEqual((await send(key)).json, first.json);

  await putCart(u, a, 1);
  const other = await send(newKey());
  assert.equal(other.status, 201, other.text);
  assert.equal(other.json.order.status, 'payment_failed');
  assert.equal(other.json.order.payment.failure_code, 'token_already_used');
  assert.deepEqual(await stockOf(a, eu), { onHand: 3, reserved: 1 }, 'the declined one released its copy');
  assert.equal((await chargesFor(first.json.order.id)).length, 1);
  assert.equal((await chargesFor(other.json.order.id)).length, 0);
});

test('checkout: the shopper\'s region first, a line split across warehouses when it must', async () => {
  const [u] = await makeUsers('region', 1);
  const book = await makeBook('Split', 1000);
  await setStock(book, eu, 1);
  await setStock(book, us, 5);
  await putCart(u, book, 3);
  let r = await checkout(u, newKey());
  assert.equal(r.status, 201, r.text);
  const rows = await sql(`SELECT warehouse_id, quantity FROM order_reservations WHERE order_id = :'p1' ORDER BY warehouse_id`, r.json.order.id);
  assert.equal(rows, [`${eu}|1`, `${us}|2`].sort((x, y) => Number(x.split('|')[0]) - Number(y.split('|')[0])).join('\n'));

  // a shopper in the us region is served from us even though eu has copies
  const [v] = await makeUsers('region-us', 1);
  const book2 = await makeBook('Regional', 1000);
  await setStock(book2, eu, 5);
  await setStock(book2, us, 5);
  await putCart(v, book2, 2);
  r = await api('POST', '/api/v1/orders', { shipping_address: { ...ADDRESS, region: 'US' }, payment: await payment() },
    { token: v.token, headers: { 'idempotency-key': newKey() } });
  assert.equal(r.status, 201, r.text);
  assert.equal(await sql(`SELECT warehouse_id || ':' || quantity FROM order_reservations WHERE order_id = :'p1'`, r.json.order.id), `${us}:2`);
});

// ------------------------------------------------------------------ concurrency

test('a purchase shows at once in the cached book page: the last copy sold is out_of_stock', async () => {
  const [u] = await makeUsers('cache', 1);
  const b = await stockedBook(1, 990, 'Last Copy');
  const page = () => api('GET', `/api/v1/books/${b}`);
  const first = await page();
  assert.equal(first.status, 200, first.text);
  assert.notEqual(first.json.book.stock_status, 'out_of_stock');
  // served from the edge's cache now: the same ETag
  const cached = await page();
  assert.equal(cached.headers.get('etag'), first.headers.get('etag'));

  assert.equal((await putCart(u, b, 1)).status, 200);
  const r = await checkout(u, newKey());
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.order.status, 'paid');

  const after = await page();
  assert.equal(after.json.book.stock_status, 'out_of_stock');
  assert.notEqual(after.headers.get('etag'), first.headers.get('etag'));
});

test('100 concurrent buyers, 10 copies: exactly 10 orders, the rest 409 out_of_stock, stock never negative', async () => {
  const buyers = await makeUsers('rush', 100);
  const book = await stockedBook(10, 2500, 'Best Seller');
  await Promise.all(buyers.map((u) => putCart(u, book, 1)));

  const results = await Promise.all(buyers.map((u) => checkout(u, newKey('rush'))));
  const paid = results.filter((r) => r.status === 201);
  const refused = results.filter((r) => r.status === 409);
  assert.equal(paid.length, 10, results.map((r) => r.status).join(','));
  assert.equal(refused.length, 90);
  for (const r of paid) assert.equal(r.json.order.status, 'paid');
  for (const r of refused) assert.equal(r.json.error.code, 'out_of_stock');

  // all 10 copies promised, none twice: reserved = on_hand, ledger agrees
  assert.deepEqual(await stockOf(book, eu), { onHand: 10, reserved: 10 });
  assert.equal(await sql(`SELECT count(*) FROM books_unavailable WHERE book_id = :'p1'`, book), '1',
    'search no longer counts it in stock');
  assert.equal(await sql(`SELECT sum(delta_reserved) FROM stock_ledger WHERE book_id = :'p1'`, book), '10');
  assert.equal(await sql(`SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id
                          WHERE i.book_id = :'p1' AND o.status = 'paid'`, book), '10');

  // shipped, the shelf is empty: on hand 0, nothing negative anywhere
  const [admin] = await makeUsers('rush-admin', 1, 'admin');
  for (const r of paid) {
    const s = await api('POST', `/api/v1/admin/orders/${r.json.order.id}/ship`, undefined, { token: admin.token });
    assert.equal(s.status, 200, s.text);
  }
  assert.deepEqual(await stockOf(book, eu), { onHand: 0, reserved: 0 });
  assert.equal(await sql(`SELECT count(*) FROM stock WHERE on_hand < 0 OR reserved < 0`), '0');
});

test('the same checkout retried 20 times at once with one key: one order, one charge, one answer', async () => {
  const [u] = await makeUsers('retry', 1);
  const book = await stockedBook(50, 700, 'Retried');
  await putCart(u, book, 3);
  const before = (await provider('GET', '/v1/stats')).json;

  const key = newKey('same');
  const results = await Promise.all(Array.from({ length: 20 }, () => checkout(u, key)));
  for (const r of results) assert.equal(r.status, 201, r.text);
  const ids = new Set(results.map((r) => r.json.order.id));
  assert.equal(ids.size, 1);
  const [id] = ids;
  for (const r of results) assert.equal(r.json.order.status, 'paid');

  assert.equal(await sql(`SELECT count(*) FROM orders WHERE user_id = :'p1'`, u.id), '1');
  assert.deepEqual(await stockOf(book, eu), { onHand: 50, reserved: 3 });
  assert.equal((await chargesFor(id)).length, 1);
  const after = (await provider('GET', '/v1/stats')).json;
  assert.equal(after.payments_created - before.payments_created, 1);

  // later: the stored answer again; another body with the key: 409
  const late = await checkout(u, key);
  assert.equal(late.status, 201);
  assert.deepEqual(late.json, results[0].json);
  const other = await checkout(u, key, CARDS.declined);
  assert.equal(other.status, 409, other.text);
  assert.equal(other.json.error.code, 'idempotency_key_reused');
  assert.equal((await chargesFor(id)).length, 1);
});

// ------------------------------------------------------------------ payment failures

test('a declined card: payment_failed, the reservation released, the cart kept', async () => {
  const [u] = await makeUsers('decline', 1);
  const book = await stockedBook(4);
  await putCart(u, book, 2);
  for (const [card, code] of [[CARDS.declined, 'card_declined'], [CARDS.insufficient, 'insufficient_funds']]) {
    const r = await checkout(u, newKey(), card);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.order.status, 'payment_failed');
    assert.equal(r.json.order.payment.failure_code, code);
    assert.deepEqual(await stockOf(book, eu), { onHand: 4, reserved: 0 });
    assert.equal((await orderRow(r.json.order.id)).held, 0);
    const ledger = await sql(`SELECT delta_reserved FROM stock_ledger WHERE order_id = :'p1' ORDER BY id`, r.json.order.id);
    assert.equal(ledger, '2\n-2');
  }
  const cart = await api('GET', '/api/v1/cart', undefined, { token: u.token });
  assert.equal(cart.json.items.length, 1);
});

test('a provider timeout leaves the order pending; the reconciler settles it from the provider\'s record, and the shopper hears', async () => {
  const [u] = await makeUsers('slow', 1);
  const ws = await WsClient.connect({ token: u.token });
  try {
    await waitFor('the shopper online', async () => (await redis('HLEN', `chat:online:{${u.id}}`)) !== '0');
    const book = await stockedBook(3);
    await putCart(u, book, 1);
    const r = await checkout(u, newKey(), CARDS.slow);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.order.status, 'pending_payment');
    assert.deepEqual(await stockOf(book, eu), { onHand: 3, reserved: 1 });

    const o = await settled(u, r.json.order.id);
    assert.equal(o.status, 'paid');
    assert.equal((await chargesFor(o.id)).length, 1);
    assert.deepEqual(await stockOf(book, eu), { onHand: 3, reserved: 1 });

    const ev = await ws.message((m) => m.type === 'order' && m.order.id === o.id && m.order.status === 'paid', 'the order event');
    assert.equal(ev.order.total_cents, o.total_cents);
  } finally {
    ws.close();
  }
});

test('a slow decline and a 500: pending, then settled by the reconciler each the way the provider recorded', async () => {
  const [u] = await makeUsers('recon', 1);
  const book = await stockedBook(4);
  await putCart(u, book, 1);

  const slow = await checkout(u, newKey(), CARDS.slowDecline);
  assert.equal(slow.status, 201, slow.text);
  assert.equal(slow.json.order.status, 'pending_payment');
  const err = await checkout(u, newKey(), CARDS.error500);
  assert.equal(err.status, 201, err.text);
  assert.equal(err.json.order.status, 'pending_payment');
  assert.deepEqual(await stockOf(book, eu), { onHand: 4, reserved: 2 });

  assert.equal((await settled(u, slow.json.order.id)).status, 'payment_failed');
  // the processor charged before failing to answer: paid, not guessed failed
  assert.equal((await settled(u, err.json.order.id)).status, 'paid');
  assert.deepEqual(await stockOf(book, eu), { onHand: 4, reserved: 1 });
});

test('an abandoned reservation (the provider never saw the payment) returns to stock after its TTL', async () => {
  const [u] = await makeUsers('abandon', 1);
  const book = await stockedBook(2);
  await putCart(u, book, 2);
  const t0 = Date.now();
  const key = newKey('drop');
  const r = await checkout(u, key, CARDS.drop);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.order.status, 'pending_payment');
  assert.deepEqual(await stockOf(book, eu), { onHand: 2, reserved: 2 });
  assert.equal((await chargesFor(r.json.order.id)).length, 0);

  const o = await settled(u, r.json.order.id);
  assert.equal(o.status, 'cancelled');
  assert.ok(Date.now() - t0 >= 4000 - 500, 'not before the TTL');
  assert.deepEqual(await stockOf(book, eu), { onHand: 2, reserved: 0 });
  assert.equal(await sql(`SELECT sum(delta_reserved) FROM stock_ledger WHERE order_id = :'p1'`, o.id), '0');

  // a retry of the same checkout gets the settled answer, and charges nothing
  const again = await checkout(u, key, CARDS.drop);
  assert.equal(again.status, 201, again.text);
  assert.equal(again.json.order.status, 'cancelled');
  assert.equal((await chargesFor(o.id)).length, 0);
});

test('a worker killed between reserving and hearing from the provider: after recovery the order is settled and stock consistent', async () => {
  const [u] = await makeUsers('killed', 1);
  const book = await stockedBook(3);
  await putCart(u, book, 1);
  const before = await workerPids();
  const key = newKey('kill');
  const inflight = checkout(u, key, CARDS.slow);

  // the order is reserved and its payment is at the provider: kill the
  // worker holding the command
  await waitFor('the reservation', async () => (await stockOf(book, eu)).reserved === 1, { every: 20 });
  const victim = await waitFor('the worker holding the checkout', async () => {
    for (const [consumer, n] of await pendingByWorker('orders')) {
      const pid = Number(consumer.split(':').at(-1));
      if (n > 0 && before.includes(pid)) return pid;
    }
    return null;
  }, { every: 20 });
  process.kill(victim, 'SIGKILL');

  // the command is reclaimed by another worker, which resumes the payment
  const r = await inflight;
  assert.equal(r.status, 201, r.text);
  const id = r.json.order.id;
  const o = await settled(u, id);
  const charges = await chargesFor(id);
  assert.ok(charges.length <= 1);
  if (o.status === 'paid') {
    assert.equal(charges[0].status, 'succeeded');
    assert.deepEqual(await stockOf(book, eu), { onHand: 3, reserved: 1 });
  } else {
    assert.ok(['payment_failed', 'cancelled'].includes(o.status), o.status);
    assert.ok(charges.length === 0 || charges[0].status === 'declined');
    assert.deepEqual(await stockOf(book, eu), { onHand: 3, reserved: 0 });
  }
  assert.equal(await sql(`SELECT count(*) FROM orders WHERE user_id = :'p1'`, u.id), '1');
  await waitFor('the worker pool back at full size', async () => (await workerPids()).length === before.length);
});

// ------------------------------------------------------------------ waiting on the processor
//
// A checkout waits on the processor without holding its worker: each
// orders-lane process has many payment calls out at once.  The proof is
// the provider's own count of calls it was answering at the same time: a
// pool whose workers each waited on one call could never have more out
// than it has processes, however fast or slow this machine is.

test('many checkouts wait on the processor side by side: a batch takes about one answer time, not one per checkout', async () => {
  const N = 24;
  const L = 400;
  const procs = (await lanePids('orders')).length || 2;
  const users = await makeUsers('side', N);
  const book = await stockedBook(N, 1000, 'Waited For');
  await Promise.all(users.map((u) => putCart(u, book, 1)));

  const { results, took, stats } = await withLatency(L, async () => {
    const t0 = Date.now();
    const rs = await Promise.all(users.map((u) => checkout(u, newKey('side'))));
    return { results: rs, took: Date.now() - t0, stats: await providerStats() };
  });

  for (const r of results) assert.equal(r.status, 201, r.text);
  assert.ok(stats.max_in_flight > 2 * procs,
    `the provider had at most ${stats.max_in_flight} calls at once from ${procs} processes`);
  // one call at a time per process would need N / procs answer times in a row
  assert.ok(took < (N * L) / procs,
    `${N} checkouts took ${took} ms; one at a time per process: ${(N * L) / procs} ms or more`);

  // each paid (an answer that came after the backend's 1 s deadline is
  // settled by the reconciler instead): one order and one charge each
  for (let i = 0; i < N; i++) {
    const o = await settled(users[i], results[i].json.order.id);
    assert.equal(o.status, 'paid');
    assert.equal((await chargesFor(o.id)).length, 1);
  }
  assert.deepEqual(await stockOf(book, eu), { onHand: N, reserved: N });
});

test('a worker killed with several payments in flight: every order settled once, one charge per paid order, none twice', async () => {
  const N = 10;
  const users = await makeUsers('inflight', N);
  const book = await stockedBook(2 * N, 900, 'Interrupted');
  await Promise.all(users.map((u) => putCart(u, book, 1)));
  const before = await workerPids();
  const orderLane = new Set(await lanePids('orders'));
  const created = (await providerStats()).payments_created;
  const keys = users.map(() => newKey('inflight'));

  const results = await withLatency(700, async () => {
    const inflight = users.map((u, i) => checkout(u, keys[i]));

    // payments are at the provider: kill the orders worker holding the most
    await waitFor('calls in flight', async () => (await providerStats()).in_flight >= 3, { every: 20 });
    let victim = 0;
    let most = 0;
    for (const [consumer, n] of await pendingByWorker('orders')) {
      const pid = Number(consumer.split(':').at(-1));
      if (orderLane.has(pid) && n > most) {
        victim = pid;
        most = n;
      }
    }
    assert.ok(most >= 2, `the busiest orders worker held ${most} checkouts`);
    process.kill(victim, 'SIGKILL');

    // its checkouts are reclaimed and resumed with the same keys
    return Promise.all(inflight);
  });

  for (const r of results) assert.equal(r.status, 201, r.text);
  const ids = results.map((r) => r.json.order.id);
  assert.equal(new Set(ids).size, N);
  for (let i = 0; i < N; i++) {
    assert.equal(await sql(`SELECT count(*) FROM orders WHERE user_id = :'p1'`, users[i].id), '1');
    const o = await settled(users[i], ids[i]);
    assert.equal(o.status, 'paid');
    const charges = await chargesFor(o.id);
    assert.equal(charges.length, 1, `order ${o.id}: ${charges.length} charges`);
    assert.equal(charges[0].status, 'succeeded');
    assert.equal(charges[0].idempotency_key, `u${users[i].id}:${keys[i]}`);
  }
  // one payment per key at the provider, however often it was asked
  assert.equal((await providerStats()).payments_created - created, N);
  assert.deepEqual(await stockOf(book, eu), { onHand: 2 * N, reserved: N });
  assert.equal(await sql(`SELECT sum(delta_reserved) FROM stock_ledger WHERE book_id = :'p1'`, book), String(N));
  await waitFor('the worker pool back at full size', async () => (await workerPids()).length === before.length);
});

test('a slow processor does not hold up the cart writes of the same lane', async () => {
  const N = 30;
  const L = 800;
  const shoppers = await makeUsers('queue', N);
  const [u] = await makeUsers('queue-cart', 1);
  const book = await stockedBook(N, 700, 'Queued');
  const other = await stockedBook(50, 300, 'Browsing');
  await Promise.all(shoppers.map((s) => putCart(s, book, 1)));

  const { results, worst } = await withLatency(L, async () => {
    const waiting = Promise.all(shoppers.map((s) => checkout(s, newKey('queue'))));
    const ids = shoppers.map((s) => s.id).join(',');
    await waitFor('every checkout reserved and waiting on the processor', async () =>
      await sql(`SELECT count(*) FROM orders WHERE user_id IN (${ids})`) === String(N)
      && (await providerStats()).in_flight >= 5, { every: 20 });

    // a worker that waited on each call would have 30 x 0.8 s / processes
    // of checkouts ahead of these writes (twice the answer time allows
    // for a loaded machine; waiting in line would be many times more)
    let most = 0;
    for (let q = 1; q <= 5; q++) {
      const t0 = Date.now();
      const r = await putCart(u, other, q);
      most = Math.max(most, Date.now() - t0);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.items[0].quantity, q);
    }
    return { results: await waiting, worst: most };
  });

  assert.ok(worst < 2 * L, `a cart write took ${worst} ms while checkouts waited on an ${L} ms processor`);
  for (const r of results) assert.equal(r.status, 201, r.text);
  for (let i = 0; i < N; i++) assert.equal((await settled(shoppers[i], results[i].json.order.id)).status, 'paid');
});

test('the reconciler asks the processor about pending payments side by side, without holding up the lane', async () => {
  const N = 6;
  const L = 800;
  const shoppers = await makeUsers('asked', N);
  const [u] = await makeUsers('asked-cart', 1);
  const book = await stockedBook(N, 500, 'Unknown Outcome');
  const other = await stockedBook(50, 300, 'Meanwhile');
  await Promise.all(shoppers.map((s) => putCart(s, book, 1)));

  const { ids, worst, stats } = await withLatency(L, async () => {
    // lost before the processor saw them: pending, looked up by the
    // reconciler once their lease (1 s + 2 s) has passed, cancelled once
    // their reservation (4 s) has lapsed
    const rs = await Promise.all(shoppers.map((s) => checkout(s, newKey('asked'), CARDS.drop)));
    for (const r of rs) assert.equal(r.json.order.status, 'pending_payment', r.text);

    let most = 0;
    const until = Date.now() + 6000;
    for (let q = 1; Date.now() < until; q = (q % 9) + 1) {
      const t0 = Date.now();
      const r = await putCart(u, other, q);
      most = Math.max(most, Date.now() - t0);
      assert.equal(r.status, 200, r.text);
      await new Promise((res) => setTimeout(res, 100));
    }
    return { ids: rs.map((r) => r.json.order.id), worst: most, stats: await providerStats() };
  });

  // one lookup at a time per process would never have more out than processes
  const procs = (await lanePids('orders')).length || 2;
  assert.ok(stats.max_in_flight > procs, `at most ${stats.max_in_flight} lookups at once`);
  // asking one after another, a pass would hold its worker N x 0.8 s
  assert.ok(worst < 2 * L, `a cart write took ${worst} ms while the reconciler asked an ${L} ms processor`);
  for (let i = 0; i < N; i++) assert.equal((await settled(shoppers[i], ids[i])).status, 'cancelled');
  assert.deepEqual(await stockOf(book, eu), { onHand: N, reserved: 0 });
});

// ------------------------------------------------------------------ orders

test('orders: the owner\'s history with a cursor; another user\'s order, or cart, is not theirs (404)', async () => {
  const [a, b] = await makeUsers('owner', 2);
  const book = await stockedBook(10);
  const ids = [];
  for (let i = 0; i < 3; i++) {
    await putCart(a, book, 1);
    const r = await checkout(a, newKey());
    assert.equal(r.status, 201, r.text);
    ids.push(r.json.order.id);
  }
  let r = await api('GET', '/api/v1/orders?limit=2', undefined, { token: a.token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.orders.map((o) => o.id), [ids[2], ids[1]]);
  r = await api('GET', `/api/v1/orders?limit=2&cursor=${r.json.next_cursor}`, undefined, { token: a.token });
  assert.deepEqual(r.json.orders.map((o) => o.id), [ids[0]]);
  assert.equal(r.json.next_cursor, null);

  r = await getOrder(b, ids[0]);
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.code, 'not_found');
  r = await getOrder(b, 99999999);
  assert.equal(r.status, 404);
  r = await api('GET', '/api/v1/orders', undefined, { token: b.token });
  assert.deepEqual(r.json.orders, []);

  // b's cart is b's own: a's lines never show, b's changes never touch a's
  await putCart(a, book, 2);
  r = await api('GET', '/api/v1/cart', undefined, { token: b.token });
  assert.deepEqual(r.json.items, []);
  await api('DELETE', `/api/v1/cart/items/${book}`, undefined, { token: b.token });
  r = await api('GET', '/api/v1/cart', undefined, { token: a.token });
  assert.equal(r.json.items[0].quantity, 2);
});

test('admin: list by status, ship, refund (stock back only when not shipped); non-admins 403; the shopper hears', async () => {
  const [u] = await makeUsers('adm-shopper', 1);
  const [admin] = await makeUsers('adm', 1, 'admin');
  const book = await stockedBook(6);
  const orderOf = async () => {
    await putCart(u, book, 1);
    const r = await checkout(u, newKey());
    assert.equal(r.status, 201, r.text);
    return r.json.order.id;
  };
  const shipped = await orderOf();
  const notShipped = await orderOf();
  assert.deepEqual(await stockOf(book, eu), { onHand: 6, reserved: 2 });

  for (const [m, p] of [['GET', '/api/v1/admin/orders'], ['POST', `/api/v1/admin/orders/${shipped}/ship`],
    ['POST', `/api/v1/admin/orders/${shipped}/refund`]]) {
    const r = await api(m, p, undefined, { token: u.token });
    assert.equal(r.status, 403, `${m} ${p}: ${r.text}`);
  }
  assert.equal((await orderRow(shipped)).status, 'paid');

  let r = await api('GET', '/api/v1/admin/orders?status=paid&limit=100', undefined, { token: admin.token });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.orders.every((o) => o.status === 'paid'));
  assert.ok(r.json.orders.some((o) => o.id === shipped));
  r = await api('GET', '/api/v1/admin/orders?status=bogus', undefined, { token: admin.token });
  assert.equal(r.status, 400, r.text);

  const ws = await WsClient.connect({ token: u.token });
  try {
    await waitFor('the shopper online', async () => (await redis('HLEN', `chat:online:{${u.id}}`)) !== '0');
    r = await api('POST', `/api/v1/admin/orders/${shipped}/ship`, undefined, { token: admin.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.order.status, 'shipped');
    await ws.message((m) => m.type === 'order' && m.order.id === shipped && m.order.status === 'shipped', 'the shipped event');
  } finally {
    ws.close();
  }
  assert.deepEqual(await stockOf(book, eu), { onHand: 5, reserved: 1 });
  r = await api('POST', `/api/v1/admin/orders/${shipped}/ship`, undefined, { token: admin.token });
  assert.equal(r.status, 409, r.text);

  // refunding a shipped order: money back, the copy stays with the buyer
  r = await api('POST', `/api/v1/admin/orders/${shipped}/refund`, undefined, { token: admin.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.order.status, 'refunded');
  assert.deepEqual(await stockOf(book, eu), { onHand: 5, reserved: 1 });
  // refunding one not shipped: the reserved copy goes back
  r = await api('POST', `/api/v1/admin/orders/${notShipped}/refund`, undefined, { token: admin.token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await stockOf(book, eu), { onHand: 5, reserved: 0 });
  // again: nothing more happens
  r = await api('POST', `/api/v1/admin/orders/${notShipped}/refund`, undefined, { token: admin.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.order.status, 'refunded');
  for (const id of [shipped, notShipped]) {
    const charges = await chargesFor(id);
    assert.equal(charges.length, 1);
    assert.equal(charges[0].status, 'refunded');
  }
  assert.equal((await provider('GET', '/v1/stats')).json.refunds >= 2, true);

  // a failed order cannot be shipped or refunded
  await putCart(u, book, 1);
  const failed = (await checkout(u, newKey(), CARDS.declined)).json.order.id;
  r = await api('POST', `/api/v1/admin/orders/${failed}/ship`, undefined, { token: admin.token });
  assert.equal(r.status, 409, r.text);
  r = await api('POST', `/api/v1/admin/orders/${failed}/refund`, undefined, { token: admin.token });
  assert.equal(r.status, 409, r.text);
  r = await api('POST', '/api/v1/admin/orders/99999999/ship', undefined, { token: admin.token });
  assert.equal(r.status, 404, r.text);
});

test('search\'s "in stock" (books_unavailable) agrees with stock for every book after all of the above', async () => {
  // one snapshot: each writer keeps the two in step in its own transaction
  assert.equal(await sql(`SELECT count(*) FROM books b
      WHERE EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id = b.id)
          = EXISTS (SELECT 1 FROM stock s WHERE s.book_id = b.id AND s.on_hand > s.reserved)`), '0');
});
