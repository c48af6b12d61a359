// The shop of the fault run: shoppers checking out through the same
// faults, an admin restocking, shipping and refunding (in full and by
// line) beside them, late charges provoked at the processor, and the
// shop's books (stock, orders, the admin's changes, refunds and the
// provider's charges agree; a late charge counts as refunded only once
// the provider says so, and its order's ledger and state agree).
//
// Every request goes through client.mjs's rule: the same Idempotency-Key
// again until a definite answer (503 overloaded and 429 after Retry-After).

import { createHash } from 'node:crypto';
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
  holding: false,         // the late-charge fault: charges are held at the processor
  lateUntil: 0,           // ... and when its last held charge lands
};
const shopStats = {
  checkouts: 0, outOfStock: 0, unanswered: 0, slowCards: 0,
  adjusts: 0, ships: 0, shipRefused: 0, refunds: 0, refundsRefused: 0,
  partialRefunds: 0, partialRefused: 0, overRefundsRefused: 0, held: 0,
};
const answeredOrders = [];      // {id, user}: checkouts answered 201
const adjusts = new Map();      // key -> {book, delta, acked}
const shipped = new Set();      // orders whose ship was answered 200
const overRefunds = [];         // refunds asked beyond what is left, answered 200 (must stay empty)
// the provider keys of the admin's refund requests ("refund:<order>:<md5
// of the command key>", op_order.c): every refund in the ledger must be
// one of these (or a late charge's), each at most once
const refundKeys = new Set();

// the late-charge fault holds every new charge at the processor this long
// ("in transit": payments/README.md, hold_ms): well past the reservation's
// TTL, so the reconciler cancels the order and releases its copies before
// the charge lands, and must then refund it on its own
const RESERVATION_TTL_MS = Number(process.env.RESERVATION_TTL_MS ?? 4000);
export const LATE_HOLD_MS = 2 * RESERVATION_TTL_MS + 4000;

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

export function putCart(u, book, quantity = 1) {
  return untilAnswered('orders', () => call('PUT', `/api/v1/cart/items/${book}`,
    { body: { quantity }, token: u.token }), isAnswer(200));
}

// one checkout, retried with its key until answered: the answer or null
export async function checkoutOnce(u, card = someCard()) {
  let key = newKey('chaos');
  shopStats.checkouts++;
  if (SHOP.holding) shopStats.held++;
  // tokenized once with the provider, as a browser does; every retry of
  // the key carries the same token.  A tokenization whose connection
  // dropped (a kept-alive socket the processor closed) is tried again
  // under a fresh key, as a browser would: nothing was sent to us yet
  let pay;
  for (let i = 0; !pay; i++) {
    try {
      pay = await payment(card, key);
    } catch (e) {
      if (i >= 4) throw e;
      key = newKey('chaos');
      await sleep(200);
    }
  }
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

// One shopper, as a real client: one copy into the cart (a third of the
// time two copies of a second book too: orders the admin refunds a copy
// at a time), then checkout with a fresh key, retried with
// the same key until a definite answer.
export async function shopper(u, running) {
  while (running()) {
    const book = SHOP.books[Math.floor(Math.random() * SHOP.books.length)];
    if (!(await putCart(u, book))) continue;
    if (Math.random() < 1 / 3) {
      const others = SHOP.books.filter((b) => b !== book);
      if (!(await putCart(u, others[Math.floor(Math.random() * others.length)], 2))) continue;
    }
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

// a refund with its own Idempotency-Key, sent again with it until
// answered: a retry (or the entry reclaimed from a killed worker) must
// answer from the first run, never refund again
function refundCall(id, body, key = newKey('refund')) {
  refundKeys.add(`refund:${id}:${createHash('md5').update(`u${SHOP.admin.id}:${key}`).digest('hex')}`);
  return untilAnswered('admin', () => call('POST', `/api/v1/admin/orders/${id}/refund`,
    { body, token: SHOP.admin.token, headers: { 'idempotency-key': key } }), isAnswer(200, 202, 409));
}

// the admin refunds one paid or shipped order in full, retried until
// answered: a retry finds it refunded (200), or its refund still being
// confirmed (409 refund_pending), never refunds it twice
export async function refundOne() {
  const ids = SHOP.shoppers.map((u) => u.id).join(',');
  const id = Number(await sql(`SELECT id FROM orders WHERE user_id IN (${ids})
                                 AND status IN ('paid', 'shipped') ORDER BY random() LIMIT 1`).catch(() => ''));
  if (!id) return null;
  const r = await refundCall(id);
  if (r?.status === 200 || r?.status === 202) shopStats.refunds++;
  else if (r?.status === 409) shopStats.refundsRefused++;
  return r;
}

// the admin refunds one copy of a line of two copies of a paid or
// shipped order, retried with its key until answered; then the same
// request with the same key again (it must answer from the first run,
// which the books check: one ledger row per key), and two more copies
// under a new key, more than is left: refused (409)
export async function refundLine() {
  const ids = SHOP.shoppers.map((u) => u.id).join(',');
  const [id, book] = (await sql(`SELECT i.order_id || '|' || i.book_id FROM order_items i
      JOIN orders o ON o.id = i.order_id
     WHERE o.user_id IN (${ids}) AND o.status IN ('paid', 'shipped') AND i.quantity = 2 AND i.refunded_quantity = 0
     ORDER BY random() LIMIT 1`).catch(() => '')).split('|').map(Number);
  if (!id) return null;
  const key = newKey('refund');
  const r = await refundCall(id, { items: [{ book_id: book, quantity: 1 }] }, key);
  if (r?.status === 200 || r?.status === 202) shopStats.partialRefunds++;
  else if (r?.status === 409) shopStats.partialRefused++;
  if (r?.status === 200 || r?.status === 202) {
    const same = await refundCall(id, { items: [{ book_id: book, quantity: 1 }] }, key);
    if (same && ![200, 202].includes(same.status)) log(`order ${id}: the same refund again answered ${same.status} ${same.text}`);
    const more = await refundCall(id, { items: [{ book_id: book, quantity: 2 }] });
    if (more?.status === 409) shopStats.overRefundsRefused++;
    else if (more) {
      overRefunds.push(id);
      log(`order ${id}: a refund of 2 more of book ${book} (bought 2, 1 refunded) answered ${more.status} ${more.text}`);
    }
  }
  return r;
}

// the late-charge fault: for one settle every new charge is held at the
// processor LATE_HOLD_MS before it lands (so each of this window's paid
// checkouts is charged after its order was cancelled); the held charges
// land during the faults that follow, and the reconciler (on the orders
// lane, killed meanwhile by lane-orders) must refund each of them once
export async function holdCharges(on) {
  const r = await provider('PUT', '/v1/test/latency', { hold_ms: on ? LATE_HOLD_MS : 0 });
  if (r.status !== 200) throw new Error(`hold_ms: ${r.status} ${r.text}`);
  SHOP.holding = on;
  SHOP.lateUntil = Date.now() + LATE_HOLD_MS;
}

// the back office beside the shoppers: a delivery of one copy now and
// then, a shipment, and a refund (in full, or a line of an order)
export async function admin(running) {
  for (let i = 0; running(); i++) {
    if (i % 14 === 6) await refundOne();
    else if (i % 7 === 6) await refundLine();
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
  // every held charge has landed, and the reconciler has refunded each
  // one that landed on a cancelled order (it looks every few seconds)
  await waitFor('the held charges landed', async () => Date.now() > SHOP.lateUntil + 1000,
    { timeout: 120000, every: 500 });
  await waitFor('every late charge refunded', async () => {
    for (const l of (await sql(`SELECT id || ' ' || user_id FROM orders
        WHERE user_id IN (${ids}) AND status = 'cancelled'`)).split('\n').filter(Boolean)) {
      const [id, user] = l.split(' ');
      const r = await provider('GET', `/v1/payments?order_id=${id}`);
      if (r.json.payments.some((p) => p.idempotency_key.startsWith(`u${user}:`) && p.status === 'succeeded')) return false;
    }
    return (await sql(`SELECT count(*) FROM payment_attempts a JOIN orders o ON o.id = a.order_id
        WHERE o.user_id IN (${ids}) AND a.kind = 'refund' AND a.status = 'pending'`)) === '0';
  }, { timeout: 120000, every: 1000 }).catch(() => log('some late charges not refunded'));

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
    // sold: copies held or gone; a copy refunded before shipping went
    // back to stock, as its ledger row says ('refund: released',
    // orders.c), even when the rest of its order shipped afterwards
    const [available, sold] = (await sql(`SELECT
        (SELECT sum(on_hand - reserved) FROM stock WHERE book_id = ${b}),
        coalesce((SELECT sum(i.quantity)
                    FROM order_items i JOIN orders o ON o.id = i.order_id
                   WHERE i.book_id = ${b} AND o.status IN ('paid', 'shipped', 'delivered', 'refunded')), 0)
        - coalesce((SELECT sum(-l.delta_reserved)
                      FROM stock_ledger l JOIN orders o ON o.id = l.order_id
                     WHERE l.book_id = ${b} AND l.reason = 'refund: released'
                       AND o.status IN ('paid', 'shipped', 'delivered', 'refunded')), 0)`))
      .split('|').map(Number);
    const start = SHOP.start.get(b) + (restocked.get(b) ?? 0);
    if (available + sold !== start || available < 0) {
      stockMismatch++;
      log(`book ${b}: ${available} available + ${sold} sold != ${start} (started with ` +
          `${SHOP.start.get(b)}, ${restocked.get(b) ?? 0} restocked)`);
    }
    // search's "in stock" (books_unavailable, sql/018) agrees with stock
    const listed = await sql(`SELECT EXISTS (SELECT 1 FROM books_unavailable WHERE book_id = ${b})
        = NOT EXISTS (SELECT 1 FROM stock WHERE book_id = ${b} AND on_hand > reserved)`);
    if (listed !== 't') {
      stockMismatch++;
      log(`book ${b}: books_unavailable disagrees with its stock`);
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

  // per order: its refunds' ledger (all, and the late charge's rows), and
  // its lines whose ledger rows give back another count of copies than
  // the line says were refunded, or more than was bought
  const orders = (await sql(`SELECT o.id || ' ' || o.status || ' ' || o.user_id || ' ' || o.refunded_cents
      || ' ' || o.total_cents || ' ' || coalesce((SELECT sum(amount_cents) FROM order_refunds r WHERE r.order_id = o.id), 0)
      || ' ' || (SELECT count(*) FROM order_refunds r WHERE r.order_id = o.id AND r.reason = 'late_charge')
      || ' ' || coalesce((SELECT sum(amount_cents) FROM order_refunds r WHERE r.order_id = o.id AND r.reason = 'late_charge'), 0)
      || ' ' || (SELECT count(*) FROM order_items i WHERE i.order_id = o.id AND (i.refunded_quantity > i.quantity
             OR i.refunded_quantity <> coalesce((SELECT sum((e->>'quantity')::int) FROM order_refunds r,
                  jsonb_array_elements(r.items) e WHERE r.order_id = o.id AND (e->>'book_id')::bigint = i.book_id), 0)))
      FROM orders o WHERE o.user_id IN (${ids})`))
    .split('\n').filter(Boolean).map((l) => l.split(' '));
  let doubleCharged = 0;
  let chargedNotPaid = 0;
  let paidNotCharged = 0;
  let refundMismatch = 0;
  let paid = 0;
  const late = { charges: 0, refunded: 0, mismatched: 0 };
  let refundExceededOrTwice = overRefunds.length;
  // every refund in the ledger is one the admin asked for (its key) or a
  // late charge's, and no key was refunded twice: a refund run again
  // (a retry, a worker killed mid-refund) shows as a row of another key
  const seen = new Set();
  for (const [id, key, reason] of (await sql(`SELECT r.order_id || ' ' || a.idempotency_key || ' ' || r.reason
      FROM order_refunds r JOIN payment_attempts a ON a.id = r.attempt_id JOIN orders o ON o.id = r.order_id
     WHERE o.user_id IN (${ids})`)).split('\n').filter(Boolean).map((l) => l.split(' '))) {
    const ours = reason === 'late_charge' ? key === `late:${id}` : refundKeys.has(key);
    if (!ours || seen.has(key)) {
      refundExceededOrTwice++;
      log(`order ${id}: a ${reason} refund under ${key}, ${ours ? 'twice' : 'which no request asked for'}`);
    }
    seen.add(key);
  }
  let refundedOrders = 0;
  for (const [id, status, user, refunded, total, ledger, lateRows, lateLedger, badLines] of orders) {
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
    if (Number(refunded) > 0) refundedOrders++;
    if (Number(badLines) > 0 || Number(refunded) > Number(total) || given > ours.reduce((n, p) => n + p.amount_cents, 0)) {
      refundExceededOrTwice++;
      log(`order ${id} ${status}: refunded ${refunded} of ${total} (the provider gave back ${given}), ` +
          `${badLines} lines refunded beyond what was bought or not as their ledger says`);
    }
    // a late charge: the provider charged an order that had been cancelled
    // (its reservation lapsed first); refunded means the provider gave all
    // of it back, the order says so, with one late_charge row for it
    const landed = ours.filter((p) => ['succeeded', 'refunded'].includes(p.status));
    if (status === 'cancelled' && landed.length) {
      late.charges++;
      const amount = landed.reduce((n, p) => n + p.amount_cents, 0);
      if (given === amount && Number(refunded) === amount && Number(lateRows) === 1 && Number(lateLedger) === amount
          && landed.every((p) => p.status === 'refunded')) late.refunded++;
      else {
        late.mismatched++;
        log(`late charge on order ${id}: charged ${amount}, the provider gave back ${given}, the order says ` +
            `${refunded} refunded, ${lateRows} late_charge ledger rows of ${lateLedger}`);
      }
    } else if (Number(lateRows) > 0) {
      late.mismatched++;
      log(`order ${id} ${status}: ${lateRows} late_charge ledger rows but no charge landed after its cancellation`);
    }
    if (charged > 1) doubleCharged++;
    if (charged > 0 && !isPaid) { chargedNotPaid++; log(`order ${id} ${status} but charged`); }
    if (charged === 0 && isPaid) { paidNotCharged++; log(`order ${id} paid but not charged`); }
  }
  log(`shop: ${shopStats.checkouts} checkouts (${shopStats.slowCards} with a slow card, out of stock ` +
      `${shopStats.outOfStock}, unanswered ${shopStats.unanswered}), ${orders.length} orders, ${paid} paid; ` +
      `admin: ${shopStats.adjusts} restocks, ${shopStats.ships} shipped (${shopStats.shipRefused} already shipped), ` +
      `${shopStats.refunds} refunds in full (${shopStats.refundsRefused} refused), ${shopStats.partialRefunds} of a line ` +
      `(${shopStats.partialRefused} refused)`);
  // the lines the brief of the run asks for, in the books' key=value form
  log(`late charges: late_charges=${late.charges} refunded=${late.refunded} mismatched=${late.mismatched} ` +
      `(${shopStats.held} checkouts while charges were held ${LATE_HOLD_MS} ms at the processor)`);
  log(`refunds: orders_refunded=${refundedOrders} full=${shopStats.refunds} partial=${shopStats.partialRefunds} ` +
      `over_refunds_refused=${shopStats.overRefundsRefused} exceeded_or_twice=${refundExceededOrTwice}`);
  return { oversold_or_stock_mismatch: stockMismatch, double_charged: doubleCharged,
    charged_not_paid: chargedNotPaid, paid_not_charged: paidNotCharged,
    refund_mismatch: refundMismatch, refund_exceeded_or_twice: refundExceededOrTwice,
    late_charge_mismatched: late.mismatched,
    // a run that held charges but saw none land late proves nothing
    late_charges_not_provoked: shopStats.held > 0 && late.charges === 0 ? 1 : 0,
    orders_lost: ordersLost, admin_mismatch: adminMismatch };
}
