// The shop of the fault run: shoppers checking out through the same
// faults, an admin restocking, shipping and refunding beside them, and the
// shop's books (stock, orders, the admin's changes, refunds and the
// provider's charges agree; a late charge counts as refunded only once
// the provider says so).
//
// Every request goes through client.mjs's rule: the same Idempotency-Key
// again until a definite answer (503 overloaded and 429 after Retry-After).

import { sleep, sql, waitFor } from '../integration/lib.mjs';
import {
  ADDRESS, CARDS, makeBook, makeUsers, makeWarehouse, newKey, payment, provider, setStock,
} from '../integration/shop.mjs';
import { call, untilAnswered } from './client.mjs';
import { log, runTag } from './common.mjs';

// one scarce book (its last copies are raced for, then "out of stock"
// answers; the admin restocks it a copy at a time) and three that last the
// whole run, so checkouts reach the processor from the first fault to the
// last
const STARTS = [20, 3000, 3000, 3000];

export const SHOP = {
  books: [],          // book ids
  start: new Map(),   // book -> starting stock
  warehouse: 0,
  shoppers: [],       // the loop's shoppers and the lane faults' extra ones
  extra: [],          // the extra ones (lanes.mjs: checkouts in flight at a kill)
  admin: null,
  slowProcessor: false,   // the slow-processor fault: every card is a slow one
};
const shopStats = {
  checkouts: 0, outOfStock: 0, unanswered: 0, slowCards: 0,
  adjusts: 0, ships: 0, shipRefused: 0, refunds: 0, refundsRefused: 0,
};
const answeredOrders = [];      // {id, user}: checkouts answered 201
const adjusts = new Map();      // key -> {book, delta, acked}
const shipped = new Set();      // orders whose ship was answered 200

export async function shopSetup() {
  SHOP.warehouse = await makeWarehouse('eu');
  for (const [i, start] of STARTS.entries()) {
    const b = await makeBook(`chaos book ${i} ${runTag}`, 1000 + i);
    await setStock(b, SHOP.warehouse, start);
    SHOP.books.push(b);
    SHOP.start.set(b, start);
  }
  const shoppers = await makeUsers(`chaos-shop-${runTag}-`, 10);
  SHOP.shoppers = shoppers;
  SHOP.extra = shoppers.slice(6);
  [SHOP.admin] = await makeUsers(`chaos-admin-${runTag}-`, 1, 'admin');
}

// mostly good cards; some declined, some slower than the backend waits
// (pending, settled by the reconciler), some answered 500 after charging;
// while the processor is slow, only the slow ones
export function someCard() {
  const x = Math.random();
  if (SHOP.slowProcessor) { shopStats.slowCards++; return x < 0.7 ? CARDS.slow : CARDS.slowDecline; }
  if (x < 0.7) return CARDS.ok;
  if (x < 0.8) return CARDS.declined;
  if (x < 0.87) { shopStats.slowCards++; return CARDS.slow; }
  if (x < 0.9) { shopStats.slowCards++; return CARDS.slowDecline; }
  return CARDS.error500;
}

const isAnswer = (...codes) => (r) => codes.includes(r.status);

export function putCart(u, book) {
  return untilAnswered('orders', () => call('PUT', `/api/v1/cart/items/${book}`,
    { body: { quantity: 1 }, token: u.token }), isAnswer(200));
}

// one checkout, retried with its key until answered: the answer or null
export async function checkoutOnce(u, card = someCard()) {
  const key = newKey('chaos');
  shopStats.checkouts++;
  // tokenized once with the provider, as a browser does; every retry of
  // the key carries the same token
  const pay = await payment(card, key);
  const r = await untilAnswered('orders', () => call('POST', '/api/v1/orders', {
    body: { shipping_address: ADDRESS, payment: pay }, token: u.token,
    headers: { 'idempotency-key': key },
  }), isAnswer(201, 400, 409));
  if (!r) shopStats.unanswered++;
  else if (r.status === 409) shopStats.outOfStock++;
  else if (r.status === 201) answeredOrders.push({ id: r.json.order.id, user: u.id });
  return r;
}

// after "out of stock": the lines the stock cannot cover leave the cart,
// as a shopper would take them out (else the sold-out book stays in the
// cart and every later checkout of this shopper is refused for it)
async function dropUnavailable(u) {
  const cart = await untilAnswered('read', () => call('GET', '/api/v1/cart', { token: u.token }), isAnswer(200));
  for (const item of cart?.json.items ?? []) {
    if (!item.out_of_stock) continue;
    await untilAnswered('orders', () => call('DELETE', `/api/v1/cart/items/${item.book_id}`, { token: u.token }),
      isAnswer(200, 204, 404));
  }
}

// One shopper, as a real client: one copy into the cart, then checkout
// with a fresh key, retried with the same key until a definite answer.
export async function shopper(u, running) {
  while (running()) {
    const book = SHOP.books[Math.floor(Math.random() * SHOP.books.length)];
    if (!(await putCart(u, book))) continue;
    if ((await checkoutOnce(u))?.status === 409) await dropUnavailable(u);
  }
}

// the admin's stock adjustment (+1 copy, a delivery): its key is in the
// ledger's reason, so the books can tell an adjustment applied twice
export async function restock(book = SHOP.books[Math.floor(Math.random() * SHOP.books.length)]) {
  const key = newKey('restock');
  const a = { book, delta: 1, acked: false };
  adjusts.set(key, a);
  const r = await untilAnswered('admin', () => call('POST',
    `/api/v1/admin/inventory/${book}/${SHOP.warehouse}/adjust`, {
      body: { delta: a.delta, reason: `chaos ${key}` }, token: SHOP.admin.token,
      headers: { 'idempotency-key': key },
    }), isAnswer(200, 400, 404, 409));
  if (r?.status === 200) { a.acked = true; shopStats.adjusts++; }
  else if (r) log(`restock ${key} answered ${r.status} ${r.text}`);
  return r;
}

// the admin ships one paid order of the shoppers (409 when another ship
// got there first)
export async function shipOne() {
  const ids = SHOP.shoppers.map((u) => u.id).join(',');
  // the admin's own look at the orders (PostgreSQL may be down: no ship then)
  const id = Number(await sql(`SELECT id FROM orders WHERE user_id IN (${ids}) AND status = 'paid'
                                ORDER BY random() LIMIT 1`).catch(() => ''));
  if (!id) return null;
  const key = newKey('ship');
  const r = await untilAnswered('admin', () => call('POST', `/api/v1/admin/orders/${id}/ship`,
    { token: SHOP.admin.token, headers: { 'idempotency-key': key } }), isAnswer(200, 409));
  if (r?.status === 200) { shipped.add(id); shopStats.ships++; }
  else if (r?.status === 409) shopStats.shipRefused++;
  return r;
}

// the admin refunds one paid or shipped order in full, retried until
// answered: a retry finds it refunded (200), or its refund still being
// confirmed (409 refund_pending), never refunds it twice
export async function refundOne() {
  const ids = SHOP.shoppers.map((u) => u.id).join(',');
  const id = Number(await sql(`SELECT id FROM orders WHERE user_id IN (${ids})
                                 AND status IN ('paid', 'shipped') ORDER BY random() LIMIT 1`).catch(() => ''));
  if (!id) return null;
  const r = await untilAnswered('admin', () => call('POST', `/api/v1/admin/orders/${id}/refund`,
    { token: SHOP.admin.token }), isAnswer(200, 202, 409));
  if (r?.status === 200 || r?.status === 202) shopStats.refunds++;
  else if (r?.status === 409) shopStats.refundsRefused++;
  return r;
}

// the back office beside the shoppers: a delivery of one copy now and
// then, a shipment, and a refund
export async function admin(running) {
  for (let i = 0; running(); i++) {
    if (i % 7 === 6) await refundOne();
    else if (i % 3 === 2) await shipOne(); else await restock();
    await sleep(400 + Math.random() * 400);
  }
}

// the books of the shop: stock, orders, the admin's changes and the
// provider's charges agree
export async function shopBooks() {
  const ids = SHOP.shoppers.map((u) => u.id).join(',');
  await waitFor('every order settled', async () =>
    (await sql(`SELECT count(*) FROM orders WHERE user_id IN (${ids}) AND status = 'pending_payment'`)) === '0',
  { timeout: 120000, every: 500 }).catch(() => log('some orders still pending_payment'));
  // refunds whose outcome was not known, and refunds of late charges,
  // are carried out by the reconciler
  await waitFor('every refund settled', async () => (await sql(`SELECT count(*) FROM payment_attempts a
      JOIN orders o ON o.id = a.order_id WHERE o.user_id IN (${ids}) AND a.kind = 'refund'
       AND a.status = 'pending'`)) === '0',
  { timeout: 120000, every: 500 }).catch(() => log('some refunds still pending'));

  // the admin's adjustments: an acknowledged one is in the ledger exactly
  // once, an unanswered one at most once; the stock moves by the ones there
  const ledger = new Map((await sql(`SELECT substr(reason, 7) || ' ' || count(*) FROM stock_ledger
      WHERE reason LIKE 'chaos restock-%' GROUP BY reason`))
    .split('\n').filter(Boolean).map((l) => l.split(' ')).map(([k, n]) => [k, Number(n)]));
  let adminMismatch = 0;
  const restocked = new Map();
  for (const [key, a] of adjusts) {
    const n = ledger.get(key) ?? 0;
    if (n > 1 || (a.acked && n !== 1)) {
      adminMismatch++;
      log(`restock ${key}: ${a.acked ? 'acknowledged' : 'unanswered'}, ${n} ledger rows`);
    }
    restocked.set(a.book, (restocked.get(a.book) ?? 0) + a.delta * Math.min(n, 1));
  }
  if (shipped.size) {
    const notShipped = await sql(`SELECT id || ' ' || status FROM orders
        WHERE id IN (${[...shipped].join(',')}) AND status NOT IN ('shipped', 'delivered', 'refunded')`);
    for (const l of notShipped.split('\n').filter(Boolean)) {
      adminMismatch++;
      log(`order ${l}: its ship was acknowledged`);
    }
  }

  let stockMismatch = 0;
  for (const b of SHOP.books) {
    // sold: copies held or gone; a copy refunded before shipping went back
    const [available, sold] = (await sql(`SELECT
        (SELECT sum(on_hand - reserved) FROM stock WHERE book_id = ${b}),
        coalesce((SELECT sum(i.quantity - CASE WHEN o.shipped_at IS NULL THEN i.refunded_quantity ELSE 0 END)
                    FROM order_items i JOIN orders o ON o.id = i.order_id
                   WHERE i.book_id = ${b} AND o.status IN ('paid', 'shipped', 'delivered', 'refunded')), 0)`))
      .split('|').map(Number);
    const start = SHOP.start.get(b) + (restocked.get(b) ?? 0);
    if (available + sold !== start || available < 0) {
      stockMismatch++;
      log(`book ${b}: ${available} available + ${sold} sold != ${start} (started with ` +
          `${SHOP.start.get(b)}, ${restocked.get(b) ?? 0} restocked)`);
    }
  }

  // an acknowledged order is in PostgreSQL, the shopper's
  let ordersLost = 0;
  if (answeredOrders.length) {
    const have = new Set((await sql(`SELECT id || ' ' || user_id FROM orders
        WHERE id IN (${answeredOrders.map((o) => o.id).join(',')})`)).split('\n'));
    for (const o of answeredOrders) {
      if (!have.has(`${o.id} ${o.user}`)) { ordersLost++; log(`order ${o.id} acknowledged, not stored`); }
    }
  }

  const orders = (await sql(`SELECT o.id || ' ' || o.status || ' ' || o.user_id || ' ' || o.refunded_cents
      || ' ' || o.total_cents || ' ' || coalesce((SELECT sum(amount_cents) FROM order_refunds r WHERE r.order_id = o.id), 0)
      FROM orders o WHERE o.user_id IN (${ids})`))
    .split('\n').filter(Boolean).map((l) => l.split(' '));
  let doubleCharged = 0;
  let chargedNotPaid = 0;
  let paidNotCharged = 0;
  let refundMismatch = 0;
  let paid = 0;
  for (const [id, status, user, refunded, total, ledger] of orders) {
    // the backend's charges carry its key "u<user>:<checkout key>"; the
    // provider's own tests make payments with made-up order ids
    const r = await provider('GET', `/v1/payments?order_id=${id}`);
    const ours = r.json.payments.filter((p) => p.idempotency_key.startsWith(`u${user}:`));
    const charged = ours.filter((p) => p.status === 'succeeded').length;
    // what the provider gave back is what the order and its ledger say,
    // and never more than the charge
    const given = ours.reduce((n, p) => n + (p.refunded_cents ?? 0), 0);
    if (given !== Number(refunded) || Number(ledger) !== Number(refunded) || Number(refunded) > Number(total)) {
      refundMismatch++;
      log(`order ${id} ${status}: refunded ${refunded} of ${total}, ledger ${ledger}, the provider gave back ${given}`);
    }
    const isPaid = ['paid', 'shipped', 'delivered'].includes(status);
    if (isPaid) paid++;
    if (charged > 1) doubleCharged++;
    if (charged > 0 && !isPaid) { chargedNotPaid++; log(`order ${id} ${status} but charged`); }
    if (charged === 0 && isPaid) { paidNotCharged++; log(`order ${id} paid but not charged`); }
  }
  const late = await sql(`SELECT count(*) FROM order_refunds r JOIN orders o ON o.id = r.order_id
      WHERE o.user_id IN (${ids}) AND r.reason = 'late_charge'`);
  log(`shop: ${shopStats.checkouts} checkouts (${shopStats.slowCards} with a slow card, out of stock ` +
      `${shopStats.outOfStock}, unanswered ${shopStats.unanswered}), ${orders.length} orders, ${paid} paid; ` +
      `admin: ${shopStats.adjusts} restocks, ${shopStats.ships} shipped (${shopStats.shipRefused} already shipped), ` +
      `${shopStats.refunds} refunds (${shopStats.refundsRefused} refused); late charges refunded: ${late}`);
  return { oversold_or_stock_mismatch: stockMismatch, double_charged: doubleCharged,
    charged_not_paid: chargedNotPaid, paid_not_charged: paidNotCharged,
    refund_mismatch: refundMismatch, orders_lost: ordersLost, admin_mismatch: adminMismatch };
}
