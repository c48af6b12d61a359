// Helpers for the cart, checkout and order tests: shoppers and admins made
// straight in PostgreSQL (with tokens signed here with the stack's secret,
// so a hundred buyers cost no scrypt), books, warehouses and stock
// inserted directly (the catalog endpoints belong to another part), and
// the payment provider's own view of what it charged.

import { randomBytes } from 'node:crypto';
import { api, signToken, sql } from './lib.mjs';

export const PAYMENT_URL = process.env.CHAT_PAYMENT_URL ?? 'http://127.0.0.1:18090';

// the provider's test cards (payments/README.md); a checkout never sends
// one: it is tokenized with the provider first, as a browser does
export const CARDS = {
  ok: '4242424242424242',
  declined: '4000000000000002',
  insufficient: '4000000000009995',
  slow: '4000000000000309',
  slowDecline: '4000000000000507',
  error500: '4000000000000119',
  drop: '4000000000000408',
};

export const sign = (claims) => signToken(claims);

// n accounts of role, without passwords anyone could use: [{id, token}]
export async function makeUsers(tag, n, role = 'user') {
  const r = randomBytes(4).toString('hex');
  const out = await sql(
    `INSERT INTO users (email, display_name, password_hash, role)
     SELECT :'p1' || g || '-' || :'p2' || '@example.com', :'p1' || g, '!', :'p3'
       FROM generate_series(1, ${Number(n)}) g RETURNING id`, tag, r, role);
  const now = Math.floor(Date.now() / 1000);
  return out.split('\n').filter(Boolean).map(Number).map((id) => ({
    id, token: sign({ sub: String(id), role, iat: now, exp: now + 3600 }),
  }));
}

function isbn() {
  let s = '978';
  for (let i = 0; i < 10; i++) s += Math.floor(Math.random() * 10);
  return s;
}

export async function makeBook(title = 'A Book', priceCents = 1500) {
  return Number(await sql(
    `INSERT INTO books (isbn13, title, price_cents) VALUES (:'p1', :'p2', :'p3') RETURNING id`,
    isbn(), title, priceCents));
}

export async function makeWarehouse(region = 'eu') {
  const code = `w${randomBytes(5).toString('hex')}`;
  return Number(await sql(
    `INSERT INTO warehouses (code, name, region) VALUES (:'p1', :'p1', :'p2') RETURNING id`,
    code, region));
}

export async function setStock(bookId, warehouseId, onHand) {
  await sql(
    `INSERT INTO stock (book_id, warehouse_id, on_hand) VALUES (:'p1', :'p2', :'p3')
     ON CONFLICT (book_id, warehouse_id) DO UPDATE SET on_hand = EXCLUDED.on_hand`,
    bookId, warehouseId, onHand);
}

// {on_hand, reserved} of one stock row
export async function stockOf(bookId, warehouseId) {
  const [onHand, reserved] = (await sql(
    `SELECT on_hand, reserved FROM stock WHERE book_id = :'p1' AND warehouse_id = :'p2'`,
    bookId, warehouseId)).split('|').map(Number);
  return { onHand, reserved };
}

export const ADDRESS = { name: 'Ada Buyer', line1: '1 Main St', city: 'Lisbon', country: 'PT', region: 'eu' };

// card fields as a checkout form has them (cvc and expiry overridable)
export function cardFields(card = CARDS.ok, extra = {}) {
  return { number: card, exp_month: 12, exp_year: new Date().getUTCFullYear() + 2, cvc: '123', ...extra };
}

// the card tokenized with the provider (POST /v1/tokens, what the browser
// does before a checkout): the token's id
export async function tokenize(card = CARDS.ok, extra = {}) {
  const r = await provider('POST', '/v1/tokens', { card: cardFields(card, extra) });
  if (r.status !== 201) throw new Error(`tokenize ${card}: ${r.status} ${r.text}`);
  return r.json.id;
}

// A checkout's payment, {token}.  One token per key and card, as a client
// keeps the token of an attempt for its retries (so a retry sends the same
// body); without a key, a fresh one.
const attempts = new Map();
export async function payment(card = CARDS.ok, key = null) {
  if (!key) return { token: await tokenize(card) };
  const k = `${key}\n${card}`;
  if (!attempts.has(k)) attempts.set(k, tokenize(card));
  return { token: await attempts.get(k) };
}

export async function checkout(user, key, card = CARDS.ok, extra = {}) {
  const headers = key ? { 'idempotency-key': key } : {};
  return api('POST', '/api/v1/orders', { shipping_address: ADDRESS, payment: await payment(card, key), ...extra },
    { token: user.token, headers });
}

export function putCart(user, bookId, quantity) {
  return api('PUT', `/api/v1/cart/items/${bookId}`, { quantity }, { token: user.token });
}

export function newKey(tag = 'k') {
  return `${tag}-${randomBytes(8).toString('hex')}`;
}

export async function provider(method, path, body, headers = {}) {
  const res = await fetch(PAYMENT_URL + path, {
    method, headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* the test decides */ }
  return { status: res.status, json, text };
}

// the provider's payments for one of our orders
export async function chargesFor(orderId) {
  const r = await provider('GET', `/v1/payments?order_id=${orderId}`);
  return r.json.payments;
}

export async function orderRow(orderId) {
  const [status, reserved] = (await sql(
    `SELECT status, coalesce((SELECT sum(quantity) FROM order_reservations
                               WHERE order_id = o.id AND state = 'held'), 0)
       FROM orders o WHERE id = :'p1'`, orderId)).split('|');
  return { status, held: Number(reserved) };
}
