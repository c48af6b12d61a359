// tests/bench/checkout_audit.mjs: figure 4's charge audit (run by
// tests/bench/checkout.sh after its runs; the shoppers themselves are
// `chatload checkout`, checkoutload.c).
//
//   node tests/bench/checkout_audit.mjs --audit LEDGER ORDERS
//
// It compares the payment provider's ledger (its JSON lines) with
// ORDERS (lines "<order id> <status>" from PostgreSQL) and prints
//
//   double_charged=D charged_not_paid=C paid_not_charged=P charges=N paid=M
//
// double_charged: orders with more than one successful charge;
// charged_not_paid: a successful charge for an order that is not paid (or
// was refunded); paid_not_charged: a paid order without one.  All three
// must be 0.

import { readFileSync } from 'node:fs';

if (process.argv[2] !== '--audit' || !process.argv[4]) {
  console.error('usage: node tests/bench/checkout_audit.mjs --audit LEDGER ORDERS');
  process.exit(2);
}
audit(process.argv[3], process.argv[4]);

function audit(ledgerFile, ordersFile) {
  const last = new Map();       // payment id -> its last record
  for (const line of readFileSync(ledgerFile, 'utf8').split('\n')) {
    if (!line) continue;
    let rec;
    try { rec = JSON.parse(line); } catch { continue; }
    if (rec.t === 'payment') last.set(rec.payment.id, rec.payment);
  }
  const charged = new Map();    // order id -> successful charges
  let charges = 0;
  for (const p of last.values()) {
    if (p.status !== 'succeeded' && p.status !== 'refunded') continue;
    charges++;
    charged.set(String(p.order_id), (charged.get(String(p.order_id)) ?? 0) + 1);
  }
  const status = new Map();
  for (const line of readFileSync(ordersFile, 'utf8').split('\n')) {
    const [id, st] = line.trim().split(/\s+/);
    if (id) status.set(id, st);
  }
  let double = 0;
  let notPaid = 0;
  let notCharged = 0;
  let paid = 0;
  for (const [id, n] of charged) {
    if (n > 1) double++;
    const st = status.get(id);
    if (st !== 'paid' && st !== 'shipped' && st !== 'refunded') notPaid++;
  }
  for (const [id, st] of status) {
    if (st !== 'paid') continue;
    paid++;
    if (!charged.has(id)) notCharged++;
  }
  console.log(`double_charged=${double} charged_not_paid=${notPaid} paid_not_charged=${notCharged} `
    + `charges=${charges} paid=${paid}`);
}
