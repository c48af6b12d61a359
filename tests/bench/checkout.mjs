// tests/bench/checkout.mjs: the checkout load generator (figure 4 of make
// bench, driven by tests/bench/checkout.sh).
//
//   node tests/bench/checkout.mjs --base URL --secret FILE --payment-url URL
//        --uid-base N --shoppers 200 --books FIRST:COUNT --seconds S
//        [--label TEXT]
//   node tests/bench/checkout.mjs --audit LEDGER ORDERS
//
// Every shopper is one user (ids uid-base .. uid-base+shoppers-1, tokens
// signed here with the stack's secret) running one loop for S seconds:
// put one random book of the range into the cart (PUT), tokenize a card
// that succeeds with the payment provider (--payment-url, as a browser
// does; not timed), then check out with a fresh Idempotency-Key and the
// token (POST), timing the POST.  The shoppers run concurrently, so there are always `shoppers`
// checkouts or cart writes in flight.  One result line is printed:
//
//   <label> shoppers=N books=K checkouts=C rate=R/s p50=..ms p99=..ms
//           max=..ms out_of_stock=O pending=P errors=E
//
// rate counts paid checkouts (201, status paid) per second of the run;
// latencies are those of the POST /api/v1/orders calls that were paid;
// pending counts 201s still pending_payment (the processor's answer was
// not known in time: the reconciler settles them later).
//
// --audit compares the payment provider's ledger (its JSON lines) with
// ORDERS (lines "<order id> <status>" from PostgreSQL) and prints
//
//   double_charged=D charged_not_paid=C paid_not_charged=P charges=N paid=M
//
// double_charged: orders with more than one successful charge;
// charged_not_paid: a successful charge for an order that is not paid (or
// was refunded); paid_not_charged: a paid order without one.  All three
// must be 0.

import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

if (process.argv[2] === '--audit') {
  audit(process.argv[3], process.argv[4]);
  process.exit(0);
}

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

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];

const BASE = args.base;
const PAYMENT_URL = args['payment-url'];
const SECRET = readFileSync(args.secret, 'utf8').trim();
const UID_BASE = Number(args['uid-base']);
const SHOPPERS = Number(args.shoppers ?? 200);
const [FIRST, COUNT] = (args.books ?? '1:1').split(':').map(Number);
const SECONDS = Number(args.seconds ?? 10);
const LABEL = args.label ?? 'checkout';
const YEAR = new Date().getUTCFullYear() + 2;

function token(uid) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: String(uid), role: 'user', sid: randomBytes(16).toString('base64url'), iat: now, exp: now + 3600, sxp: now + 3600 })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

const lat = [];
const counts = { paid: 0, pending: 0, out_of_stock: 0, errors: 0, other: new Map() };

async function call(method, path, body, tok, headers = {}) {
  const res = await fetch(BASE + path, {
    method,
    headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text };
}

async function shopper(i, end) {
  const tok = token(UID_BASE + i);
  const region = i % 2 ? 'eu' : 'us';
  while (Date.now() < end) {
    const book = FIRST + Math.floor(Math.random() * COUNT);
    try {
      const put = await call('PUT', `/api/v1/cart/items/${book}`, { quantity: 1 }, tok);
      if (put.status !== 200) { counts.errors++; continue; }
      // the card tokenized with the provider first, as the browser does
      // (answered at once, not timed): the checkout carries the token
      const tr = await fetch(`${PAYMENT_URL}/v1/tokens`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ card: { number: '4242424242424242', exp_month: 12, exp_year: YEAR, cvc: '123' } }),
      });
      if (tr.status !== 201) { counts.errors++; continue; }
      const { id: payToken } = await tr.json();
      const t0 = performance.now();
      const r = await call('POST', '/api/v1/orders', {
        shipping_address: { name: `Shopper ${i}`, line1: '1 Bench Road', city: 'Benchville', region },
        payment: { token: payToken },
      }, tok, { 'idempotency-key': `bench-${randomBytes(8).toString('hex')}` });
      const ms = performance.now() - t0;
      if (r.status === 201 && r.text.includes('"status":"paid"')) {
        counts.paid++;
        lat.push(ms);
      } else if (r.status === 201 && r.text.includes('"status":"pending_payment"')) {
        counts.pending++;
      } else if (r.status === 409 && r.text.includes('out_of_stock')) {
        counts.out_of_stock++;
        // the book ran out: drop it from the cart so the next pick counts
        await call('DELETE', `/api/v1/cart/items/${book}`, undefined, tok);
      } else {
        counts.errors++;
        const k = `${r.status}`;
        counts.other.set(k, (counts.other.get(k) ?? 0) + 1);
      }
    } catch (e) {
      counts.errors++;
      counts.other.set(e.code ?? e.message, (counts.other.get(e.code ?? e.message) ?? 0) + 1);
    }
  }
}

const start = Date.now();
const end = start + SECONDS * 1000;
await Promise.all(Array.from({ length: SHOPPERS }, (_, i) => shopper(i, end)));
const elapsed = (Date.now() - start) / 1000;

lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1) : 'n/a');
const other = [...counts.other].map(([k, v]) => `${k}:${v}`).join(',');
console.log(`${LABEL} shoppers=${SHOPPERS} books=${COUNT} checkouts=${counts.paid} `
  + `rate=${(counts.paid / elapsed).toFixed(0)}/s p50=${q(0.5)}ms p99=${q(0.99)}ms `
  + `max=${lat.length ? lat[lat.length - 1].toFixed(1) : 'n/a'}ms out_of_stock=${counts.out_of_stock} `
  + `pending=${counts.pending} errors=${counts.errors}${other ? ` (${other})` : ''}`);
