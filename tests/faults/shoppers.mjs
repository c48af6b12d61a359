// The shoppers of the fault run: checkouts through the same faults, and
// the shop's books (stock, orders and the provider's charges agree).

import { sleep, sql, waitFor } from '../integration/lib.mjs';
import {
  CARDS, checkout, makeBook, makeUsers, makeWarehouse, newKey, provider, putCart, setStock,
} from '../integration/shop.mjs';
import { log, runTag } from './common.mjs';

export const SHOP = { start: 30, books: [], shoppers: [] };
const shopStats = { checkouts: 0, retried: 0, outOfStock: 0, unanswered: 0 };

export async function shopSetup() {
  const warehouse = await makeWarehouse('eu');
  for (let i = 0; i < 4; i++) {
    const b = await makeBook(`chaos book ${i} ${runTag}`, 1000 + i);
    await setStock(b, warehouse, SHOP.start);
    SHOP.books.push(b);
  }
  SHOP.shoppers = await makeUsers(`chaos-shop-${runTag}-`, 6);
}

// mostly good cards; some declined, some slower than the backend waits
// (pending, settled by the reconciler), some answered 500 after charging
function someCard() {
  const x = Math.random();
  if (x < 0.7) return CARDS.ok;
  if (x < 0.8) return CARDS.declined;
  if (x < 0.9) return CARDS.slow;
  return CARDS.error500;
}

// One shopper, as a real client: one copy into the cart, then checkout
// with a fresh key, retried with the same key until a definite answer.
export async function shopper(u, running) {
  while (running()) {
    const book = SHOP.books[Math.floor(Math.random() * SHOP.books.length)];
    try {
      if ((await putCart(u, book, 1)).status !== 200) { await sleep(300); continue; }
    } catch { await sleep(300); continue; }
    const key = newKey('chaos');
    const card = someCard();
    shopStats.checkouts++;
    let answer = null;
    for (let t = 0; t < 60 && !answer; t++) {
      try {
        const r = await checkout(u, key, card);
        if ([201, 400, 409].includes(r.status)) answer = r;
        else { shopStats.retried++; await sleep(500); }
      } catch { shopStats.retried++; await sleep(500); }
    }
    if (!answer) shopStats.unanswered++;
    else if (answer.status === 409) shopStats.outOfStock++;
  }
}

// the books of the shop: stock, orders and the provider's charges agree
export async function shopBooks() {
  const ids = SHOP.shoppers.map((u) => u.id).join(',');
  await waitFor('every order settled', async () =>
    (await sql(`SELECT count(*) FROM orders WHERE user_id IN (${ids}) AND status = 'pending_payment'`)) === '0',
  { timeout: 120000, every: 500 }).catch(() => log('some orders still pending_payment'));

  let stockMismatch = 0;
  for (const b of SHOP.books) {
    const [available, sold] = (await sql(`SELECT
        (SELECT sum(on_hand - reserved) FROM stock WHERE book_id = ${b}),
        coalesce((SELECT sum(i.quantity) FROM order_items i JOIN orders o ON o.id = i.order_id
                   WHERE i.book_id = ${b} AND o.status IN ('paid', 'shipped', 'delivered')), 0)`))
      .split('|').map(Number);
    if (available + sold !== SHOP.start || available < 0) {
      stockMismatch++;
      log(`book ${b}: ${available} available + ${sold} sold != ${SHOP.start}`);
    }
  }

  const orders = (await sql(`SELECT id || ' ' || status || ' ' || user_id FROM orders WHERE user_id IN (${ids})`))
    .split('\n').filter(Boolean).map((l) => l.split(' '));
  let doubleCharged = 0;
  let chargedNotPaid = 0;
  let paidNotCharged = 0;
  let paid = 0;
  for (const [id, status, user] of orders) {
    // the backend's charges carry its key "u<user>:<checkout key>"; the
    // provider's own tests make payments with made-up order ids
    const r = await provider('GET', `/v1/payments?order_id=${id}`);
    const charged = r.json.payments.filter((p) => p.status === 'succeeded'
      && p.idempotency_key.startsWith(`u${user}:`)).length;
    const isPaid = ['paid', 'shipped', 'delivered'].includes(status);
    if (isPaid) paid++;
    if (charged > 1) doubleCharged++;
    if (charged > 0 && !isPaid) { chargedNotPaid++; log(`order ${id} ${status} but charged`); }
    if (charged === 0 && isPaid) { paidNotCharged++; log(`order ${id} paid but not charged`); }
  }
  log(`shop: ${shopStats.checkouts} checkouts (retried ${shopStats.retried}, out of stock ` +
      `${shopStats.outOfStock}, unanswered ${shopStats.unanswered}), ${orders.length} orders, ${paid} paid`);
  return { oversold_or_stock_mismatch: stockMismatch, double_charged: doubleCharged,
    charged_not_paid: chargedNotPaid, paid_not_charged: paidNotCharged };
}
