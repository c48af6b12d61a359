#!/usr/bin/env node
// payments/provider.mjs: a stand-in for a card processor, speaking HTTP in
// the shape of a real one, so every payment path of the backend (success,
// decline, a timeout, a 500, a lost request) runs over a real socket.
//
//   node payments/provider.mjs --port 8090 --log DIR/ledger.jsonl
//        [--latency-ms 0] [--jitter-ms 0] [--tail-fraction 0] [--tail-ms 2000]
//        [--slow-ms 5000] [--pidfile FILE] [--host 127.0.0.1]
//
// Answer time: every answer (a charge, a replay, a lookup, a refund) is
// delayed by --latency-ms give or take up to --jitter-ms (uniformly), as a
// real processor takes 300 ms to 2 s; a --tail-fraction of them (chosen at
// random) take --tail-ms instead, the slow issuers.  A charge is recorded
// as processing first, so a lookup or a retry during its wait sees it.
//
// API (JSON bodies; errors are {"error":{"code","message"}}):
//   POST /v1/tokens                     tokenize a card, from the browser
//        (CORS: any origin may call it, as with Stripe.js); body {card:
//        {number, exp_month, exp_year, cvc}} -> 201 token {id: "tok_...",
//        card: {brand, last4, exp_month, exp_year}} | 400 invalid card
//        (bad Luhn, expired, bad cvc).  The card stays here; the merchant
//        only ever sees the token, which pays once.
//   POST /v1/payments                   create and confirm a payment;
//        Idempotency-Key header required; body {amount_cents, currency,
//        token, order_id?, description?}
//        201 payment (succeeded) | 402 payment (declined) | 400 invalid
//        input, unknown or already used token (nothing recorded) | 409 key
//        reused with another body
//   GET  /v1/payments/{id}              200 payment | 404
//   GET  /v1/payments?idempotency_key=K or ?order_id=N
//                                       200 {payments: [...]}
//   POST /v1/payments/{id}/refunds      refund; Idempotency-Key required;
//        body {amount_cents?}: that much (all that is left without it);
//        201 refund | 409 not refundable (nothing left, or more than is
//        left: refund_exceeds_charge).  The payment turns refunded once
//        nothing is left; until then it stays succeeded, refunded_cents
//        says how much went back
//   GET  /v1/stats                      counters, for tests (in_flight and
//                                       max_in_flight: answers being delayed)
//   PUT  /v1/test/latency               {latency_ms?, jitter_ms?, tail_fraction?,
//                                       tail_ms?, hold_ms?, reset_max?}: changes the answer
//                                       time now (test equipment); 200 the settings.
//                                       hold_ms holds each new payment request "in
//                                       transit" before the processor sees it: a
//                                       lookup meanwhile finds nothing, and the
//                                       charge lands hold_ms later (a late charge)
//   GET  /health
//
// Idempotency: the first request with a key decides; a later one with the
// same key and the same body (SHA-256 fingerprint) gets the stored answer
// (status and body, with Idempotent-Replayed: true), and one that arrives
// while the first is still being processed waits for it.  Another body
// with the same key is 409.  So one key is at most one charge.
//
// Test cards (all pass the Luhn check; any other valid number succeeds),
// tokenized like any card; the token behaves as its card:
//   4242424242424242  succeeds
//   4000000000000002  declined, card_declined
//   4000000000009995  declined, insufficient_funds
//   4000000000000309  succeeds after --slow-ms (past the backend's timeout);
//                     "processing" meanwhile
//   4000000000000507  declined (insufficient_funds) after --slow-ms
//   4000000000000119  charged (succeeded) but answered 500
//   4000000000000408  connection dropped, nothing recorded (a request
//                     lost before the processor saw it)
//
// The processor keeps the cards it tokenized (number and expiry, never
// the cvc, which is checked at tokenization and dropped, as card rules
// require): in memory and in the --log file, which is therefore the one
// file of a stack that holds card numbers (written 0600; tests that look
// for card data at rest skip this folder: it is the processor's vault,
// not ours).  A payment keeps the last four digits; the fingerprint is a
// SHA-256 over the request body.  Every change is appended to the --log
// file as one JSON line and replayed at start, so a restarted provider
// remembers every token, payment, refund and stored answer.

import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { openSync, writeSync, readFileSync, writeFileSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';

const args = parseArgs(process.argv.slice(2));
const HOST = args.host ?? '127.0.0.1';
const PORT = Number(args.port ?? process.env.PAYMENT_PORT ?? 8090);
const SLOW_MS = Number(args['slow-ms'] ?? process.env.PAYMENT_SLOW_MS ?? 5000);
// the answer time, changeable at run time by PUT /v1/test/latency
const timing = {
  latency_ms: Number(args['latency-ms'] ?? process.env.PAYMENT_LATENCY_MS ?? 0),
  jitter_ms: Number(args['jitter-ms'] ?? process.env.PAYMENT_JITTER_MS ?? 0),
  tail_fraction: Number(args['tail-fraction'] ?? process.env.PAYMENT_TAIL_FRACTION ?? 0),
  tail_ms: Number(args['tail-ms'] ?? process.env.PAYMENT_TAIL_MS ?? 2000),
  hold_ms: 0,
};
const LOG = args.log ?? process.env.PAYMENT_LOG ?? '.run/payments/ledger.jsonl';
const MAX_BODY = 16 * 1024;

const CARDS = {
  '4000000000000002': { outcome: 'declined', code: 'card_declined' },
  '4000000000009995': { outcome: 'declined', code: 'insufficient_funds' },
  '4000000000000309': { outcome: 'succeeded', slow: true },
  '4000000000000507': { outcome: 'declined', code: 'insufficient_funds', slow: true },
  '4000000000000119': { outcome: 'succeeded', answer500: true },
  '4000000000000408': { drop: true },
};

const payments = new Map();     // id -> payment
const tokens = new Map();       // id -> {id, card, created_at, used_by}
const byKey = new Map();        // idempotency key -> {fingerprint, id?, response?, waiting?}
const refunds = new Map();      // id -> refund
const stats = {
  requests: 0, tokens: 0, payments_created: 0, succeeded: 0, declined: 0, refunds: 0, replays: 0,
  in_flight: 0, max_in_flight: 0,
};
let ledger = null;      // the --log file, open for appending

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) usage(`unexpected argument ${argv[i]}`);
    out[m[1]] = m[2] ?? argv[++i];
    if (out[m[1]] === undefined) usage(`--${m[1]} needs a value`);
  }
  return out;
}

function usage(why) {
  console.error(`provider: ${why}\nusage: provider.mjs --port N --log FILE [--latency-ms MS] [--jitter-ms MS] `
    + '[--tail-fraction F] [--tail-ms MS] [--slow-ms MS] [--pidfile FILE] [--host H]');
  process.exit(2);
}

function log(msg) {
  console.log(`${new Date().toISOString()} provider: ${msg}`);
}

// ------------------------------------------------------------------ record

// one line per change, written before the answer goes out (the file is
// kept open: at hundreds of charges a second, opening it per line costs)
function append(rec) {
  writeSync(ledger, JSON.stringify(rec) + '\n');
}

function load() {
  // the ledger holds the vault's card numbers: the owner's only
  mkdirSync(dirname(LOG), { recursive: true, mode: 0o700 });
  const fresh = !existsSync(LOG);
  ledger = openSync(LOG, 'a', 0o600);
  if (fresh) return;
  for (const line of readFileSync(LOG, 'utf8').split('\n')) {
    if (!line) continue;
    let rec;
    try { rec = JSON.parse(line); } catch { continue; }   // a torn last line
    if (rec.t === 'key') byKey.set(rec.key, { fingerprint: rec.fingerprint, id: rec.id });
    else if (rec.t === 'response') {
      const k = byKey.get(rec.key);
      if (k) k.response = { status: rec.status, body: rec.body };
    } else if (rec.t === 'payment') payments.set(rec.payment.id, rec.payment);
    else if (rec.t === 'refund') refunds.set(rec.refund.id, rec.refund);
    else if (rec.t === 'token') tokens.set(rec.token.id, rec.token);
    else if (rec.t === 'token_used') {
      const t = tokens.get(rec.id);
      if (t) t.used_by = rec.key;
    }
  }
  for (const p of payments.values()) {
    stats.payments_created++;
    // a slow payment interrupted by a restart completes now
    if (p.status === 'processing' && p.planned) settle(p);
    if (p.status === 'succeeded' || p.status === 'refunded') stats.succeeded++;
    if (p.status === 'declined') stats.declined++;
  }
  // an answer that was never sent is made from the payment as it ended
  for (const [key, k] of byKey) {
    const p = payments.get(k.id);
    if (!k.response && p && p.status !== 'processing') {
      k.response = { status: p.status === 'declined' ? 402 : 201, body: publicPayment(p) };
    }
  }
  stats.refunds = refunds.size;
  stats.tokens = tokens.size;
  log(`loaded ${tokens.size} tokens, ${payments.size} payments, ${refunds.size} refunds from ${LOG}`);
}


function publicPayment(p) {
  const { planned, fingerprint, ...rest } = p;
  return rest;
}

function settle(p) {
  p.status = p.planned.outcome;
  if (p.planned.code) p.decline_code = p.planned.code;
  p.updated_at = new Date().toISOString();
  delete p.planned;
  append({ t: 'payment', payment: p });
}

// ------------------------------------------------------------------ checks

function luhn(s) {
  let sum = 0;
  let alt = false;
  for (let i = s.length - 1; i >= 0; i--) {
    let d = s.charCodeAt(i) - 48;
    if (alt) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
    alt = !alt;
  }
  return sum % 10 === 0;
}

// the reason a card to tokenize is not one, or null; exp_month and
// exp_year may be numbers or strings of digits (as a form gives them)
function invalidCard(c) {
  if (!c || typeof c !== 'object') return 'card is required';
  if (typeof c.number !== 'string' || !/^[0-9]{12,19}$/.test(c.number) || !luhn(c.number)) return 'card.number is not a valid card number';
  if (!Number.isInteger(c.exp_month) || c.exp_month < 1 || c.exp_month > 12) return 'card.exp_month must be 1..12';
  if (!Number.isInteger(c.exp_year) || c.exp_year < 2000 || c.exp_year > 2100) return 'card.exp_year is invalid';
  if (expired(c)) return 'the card has expired';
  if (typeof c.cvc !== 'string' || !/^[0-9]{3,4}$/.test(c.cvc)) return 'card.cvc must be 3 or 4 digits';
  return null;
}

// the reason a payment request is malformed, or null
function invalid(b) {
  if (!b || typeof b !== 'object') return 'the body must be a JSON object';
  if (!Number.isSafeInteger(b.amount_cents) || b.amount_cents <= 0) return 'amount_cents must be a positive integer';
  if (typeof b.currency !== 'string' || !/^[A-Z]{3}$/.test(b.currency)) return 'currency must be an ISO 4217 code';
  if (b.card !== undefined) return 'card details are not taken here: tokenize the card (POST /v1/tokens) and pay with the token';
  if (typeof b.token !== 'string') return 'token is required';
  return null;
}

function expired(c) {
  const now = new Date();
  return c.exp_year < now.getUTCFullYear()
    || (c.exp_year === now.getUTCFullYear() && c.exp_month < now.getUTCMonth() + 1);
}

// ------------------------------------------------------------------ HTTP

// Tokenization is called by browsers on any merchant's page, as Stripe.js
// calls its processor: any origin may, without credentials.  Nothing else
// here answers a browser: payments and refunds are the merchant's
// server-to-server calls.
const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'POST',
  'access-control-allow-headers': 'content-type',
  'access-control-max-age': '600',
};

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

// a lookup answers what was true when it arrived, an answer time later
async function later(res, status, body) {
  await processing();
  send(res, status, body);
}

function error(res, status, code, message, headers = {}) {
  send(res, status, { error: { code, message } }, headers);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let n = 0;
    const parts = [];
    req.on('data', (d) => {
      n += d.length;
      if (n > MAX_BODY) { reject(new Error('too large')); req.destroy(); return; }
      parts.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString()));
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// how long this answer takes: the tail, or latency give or take jitter
function answerTime() {
  if (timing.tail_fraction > 0 && Math.random() < timing.tail_fraction) return timing.tail_ms;
  return Math.max(0, timing.latency_ms + (2 * Math.random() - 1) * timing.jitter_ms);
}

// waits the answer time, counted as in flight meanwhile
async function processing(extraMs = 0) {
  const ms = answerTime() + extraMs;
  if (ms <= 0) return;
  stats.in_flight++;
  if (stats.in_flight > stats.max_in_flight) stats.max_in_flight = stats.in_flight;
  try {
    await sleep(ms);
  } finally {
    stats.in_flight--;
  }
}

function newId(prefix) {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}

function storeResponse(key, status, body) {
  const k = byKey.get(key);
  k.response = { status, body };
  append({ t: 'response', key, status, body });
  for (const wake of k.waiting ?? []) wake();
  k.waiting = [];
}

// Answers from a key already seen: its stored response, after waiting for
// the first request to finish if it is still in progress.
async function replay(res, k) {
  while (!k.response) {
    await new Promise((r) => { (k.waiting ??= []).push(r); });
  }
  stats.replays++;
  send(res, k.response.status, k.response.body, { 'idempotent-replayed': 'true' });
}

function brand(number) {
  if (number.startsWith('4')) return 'visa';
  if (/^5[1-5]/.test(number) || /^2[2-7]/.test(number)) return 'mastercard';
  if (/^3[47]/.test(number)) return 'amex';
  return 'unknown';
}

function publicToken(t) {
  const { number, exp_month, exp_year } = t.card;
  return {
    id: t.id, object: 'token', used: Boolean(t.used_by), created_at: t.created_at,
    card: { brand: brand(number), last4: number.slice(-4), exp_month, exp_year },
  };
}

// POST /v1/tokens: a card in, a single-use token out.  Answers at once
// (the answer time models the charge the backend waits on, not the
// browser's step before the checkout).
async function createToken(req, res) {
  let b;
  try { b = JSON.parse(await readBody(req)); } catch { return error(res, 400, 'invalid_json', 'the body is not JSON', CORS); }
  const c = b?.card;
  if (c && typeof c === 'object') {
    for (const k of ['exp_month', 'exp_year']) {
      if (typeof c[k] === 'string' && /^[0-9]{1,4}$/.test(c[k])) c[k] = Number(c[k]);
    }
    if (typeof c.number === 'string') c.number = c.number.replace(/[\s-]/g, '');
  }
  const why = invalidCard(c);
  if (why) return error(res, 400, 'invalid_card', why, CORS);
  const t = {
    id: newId('tok'),
    card: { number: c.number, exp_month: c.exp_month, exp_year: c.exp_year },
    created_at: new Date().toISOString(),
    used_by: null,
  };
  tokens.set(t.id, t);
  append({ t: 'token', token: t });
  stats.tokens++;
  return send(res, 201, publicToken(t), CORS);
}

async function createPayment(req, res) {
  const key = req.headers['idempotency-key'];
  if (!key || key.length > 255) return error(res, 400, 'idempotency_key_required', 'an Idempotency-Key header of 1..255 characters is required');

  let raw;
  try { raw = await readBody(req); } catch { return error(res, 413, 'too_large', 'body too large'); }
  let b;
  try { b = JSON.parse(raw); } catch { return error(res, 400, 'invalid_json', 'the body is not JSON'); }
  const why = invalid(b);
  if (why) return error(res, 400, 'invalid_request', why);

  // test equipment: the request is still on its way (nothing recorded)
  if (timing.hold_ms > 0 && !byKey.has(key)) await new Promise((r) => setTimeout(r, timing.hold_ms));

  const fingerprint = createHash('sha256').update(raw).digest('hex');
  const seen = byKey.get(key);
  if (seen) {
    if (seen.fingerprint !== fingerprint) return error(res, 409, 'idempotency_key_reused', 'this key was used with a different request');
    await processing();
    return replay(res, seen);
  }

  // a token pays once: a second payment with it (another key) is refused
  const tok = tokens.get(b.token);
  if (!tok) return error(res, 400, 'invalid_token', 'no such token');
  if (tok.used_by) return error(res, 400, 'token_already_used', 'this token has already paid; tokenize the card again');

  const card = CARDS[tok.card.number] ?? { outcome: 'succeeded' };
  if (card.drop) {
    // lost before it was recorded: no trace, no answer, the token unused
    log(`key ${key}: dropping the connection (test card)`);
    req.socket.destroy();
    return undefined;
  }
  tok.used_by = key;
  append({ t: 'token_used', id: tok.id, key });

  const now = new Date().toISOString();
  const p = {
    id: newId('pay'),
    object: 'payment',
    idempotency_key: key,
    status: 'processing',
    amount_cents: b.amount_cents,
    currency: b.currency,
    last4: tok.card.number.slice(-4),
    order_id: b.order_id ?? null,
    description: typeof b.description === 'string' ? b.description.slice(0, 200) : null,
    decline_code: null,
    refunded_cents: 0,
    created_at: now,
    updated_at: now,
    planned: expired(tok.card) ? { outcome: 'declined', code: 'expired_card' }
      : { outcome: card.outcome, code: card.code },
  };
  byKey.set(key, { fingerprint, id: p.id });
  append({ t: 'key', key, fingerprint, id: p.id });
  payments.set(p.id, p);
  append({ t: 'payment', payment: p });
  stats.payments_created++;

  await processing(card.slow ? SLOW_MS : 0);

  settle(p);
  if (p.status === 'succeeded') stats.succeeded++; else stats.declined++;
  log(`payment ${p.id} key ${key} order ${p.order_id}: ${p.status}${p.decline_code ? ` (${p.decline_code})` : ''}`);

  if (card.answer500) {
    const body = { error: { code: 'internal_error', message: 'the processor failed after charging (test card)' } };
    storeResponse(key, 500, body);
    return send(res, 500, body);
  }
  const status = p.status === 'succeeded' ? 201 : 402;
  storeResponse(key, status, publicPayment(p));
  return send(res, status, publicPayment(p));
}

async function refundPayment(req, res, id) {
  const key = req.headers['idempotency-key'];
  if (!key || key.length > 255) return error(res, 400, 'idempotency_key_required', 'an Idempotency-Key header of 1..255 characters is required');
  let raw;
  try { raw = await readBody(req); } catch { return error(res, 413, 'too_large', 'body too large'); }
  let b;
  try { b = JSON.parse(raw || '{}'); } catch { return error(res, 400, 'invalid_json', 'the body is not JSON'); }
  if (b.amount_cents !== undefined && !(Number.isSafeInteger(b.amount_cents) && b.amount_cents > 0)) {
    return error(res, 400, 'invalid_request', 'amount_cents must be a positive integer');
  }
  const fingerprint = createHash('sha256').update(`${id}\n${raw}`).digest('hex');
  await processing();
  const seen = byKey.get(key);
  if (seen) {
    if (seen.fingerprint !== fingerprint) return error(res, 409, 'idempotency_key_reused', 'this key was used with a different request');
    return replay(res, seen);
  }
  const p = payments.get(id);
  if (!p) return error(res, 404, 'not_found', 'no such payment');
  if (p.status !== 'succeeded') return error(res, 409, 'not_refundable', `the payment is ${p.status}`);
  const left = p.amount_cents - p.refunded_cents;
  const amount = b.amount_cents ?? left;
  if (amount > left) {
    return error(res, 409, 'refund_exceeds_charge', `only ${left} of ${p.amount_cents} cents are left to refund`);
  }

  const r = {
    id: newId('re'), object: 'refund', payment_id: p.id, idempotency_key: key,
    amount_cents: amount, currency: p.currency,
    status: 'succeeded', created_at: new Date().toISOString(),
  };
  byKey.set(key, { fingerprint, id: r.id });
  append({ t: 'key', key, fingerprint, id: r.id });
  refunds.set(r.id, r);
  append({ t: 'refund', refund: r });
  p.refunded_cents += amount;
  if (p.refunded_cents === p.amount_cents) p.status = 'refunded';
  p.updated_at = r.created_at;
  append({ t: 'payment', payment: p });
  stats.refunds++;
  log(`refund ${r.id} of ${p.id} (${r.amount_cents} ${r.currency})`);
  storeResponse(key, 201, r);
  return send(res, 201, r);
}

// test equipment: the answer time changed while running, so a test can
// make the stack's processor slow for a while and put it back
async function setLatency(req, res) {
  let b;
  try { b = JSON.parse(await readBody(req) || '{}'); } catch { return error(res, 400, 'invalid_json', 'the body is not JSON'); }
  for (const k of ['latency_ms', 'jitter_ms', 'tail_fraction', 'tail_ms', 'hold_ms']) {
    if (b[k] === undefined) continue;
    if (typeof b[k] !== 'number' || !(b[k] >= 0) || (k === 'tail_fraction' && b[k] > 1)) {
      return error(res, 400, 'invalid_request', `${k} must be a number >= 0${k === 'tail_fraction' ? ' and <= 1' : ''}`);
    }
    timing[k] = b[k];
  }
  if (b.reset_max) stats.max_in_flight = stats.in_flight;
  log(`answer time now ${JSON.stringify(timing)}`);
  return send(res, 200, timing);
}

async function route(req, res) {
  stats.requests++;
  const url = new URL(req.url, 'http://provider');
  const path = url.pathname;
  let m;

  if (req.method === 'GET' && path === '/health') return send(res, 200, { status: 'ok' });
  if (req.method === 'GET' && path === '/v1/stats') return send(res, 200, stats);
  if (req.method === 'PUT' && path === '/v1/test/latency') return setLatency(req, res);
  if (path === '/v1/tokens' && req.method === 'OPTIONS') {
    res.writeHead(204, CORS);
    return res.end();
  }
  if (path === '/v1/tokens' && req.method === 'POST') return createToken(req, res);
  if (path === '/v1/payments' && req.method === 'POST') return createPayment(req, res);
  if (path === '/v1/payments' && req.method === 'GET') {
    const key = url.searchParams.get('idempotency_key');
    const order = url.searchParams.get('order_id');
    let list = [...payments.values()];
    if (key !== null) list = list.filter((p) => p.idempotency_key === key);
    if (order !== null) list = list.filter((p) => String(p.order_id) === order);
    return later(res, 200, { payments: list.map(publicPayment) });
  }
  if ((m = /^\/v1\/payments\/([a-z0-9_]+)$/.exec(path)) && req.method === 'GET') {
    const p = payments.get(m[1]);
    return p ? later(res, 200, publicPayment(p)) : later(res, 404, { error: { code: 'not_found', message: 'no such payment' } });
  }
  if ((m = /^\/v1\/payments\/([a-z0-9_]+)\/refunds$/.exec(path)) && req.method === 'POST') {
    return refundPayment(req, res, m[1]);
  }
  return error(res, 404, 'not_found', 'no such endpoint');
}

// ------------------------------------------------------------------ main

load();

const server = createServer((req, res) => {
  route(req, res).catch((e) => {
    log(`error: ${e.stack ?? e}`);
    if (!res.headersSent) error(res, 500, 'internal_error', 'unexpected error');
  });
});

// the port may be held for a moment by an outgoing connection that the
// kernel gave it as an ephemeral port: try again for a few seconds
let listenTries = 0;
server.on('error', (e) => {
  if (e.code === 'EADDRINUSE' && ++listenTries < 40) {
    setTimeout(() => server.listen(PORT, HOST), 250);
    return;
  }
  log(`cannot listen on ${HOST}:${PORT}: ${e.message}`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  if (args.pidfile) writeFileSync(args.pidfile, `${process.pid}\n`);
  log(`listening on ${HOST}:${server.address().port} (answers in ${timing.latency_ms} ± ${timing.jitter_ms} ms`
    + `${timing.tail_fraction ? `, ${timing.tail_fraction * 100}% in ${timing.tail_ms} ms` : ''}; `
    + `slow cards: ${SLOW_MS} ms; ledger ${LOG})`);
});

const stop = () => {
  log('stopping');
  if (args.pidfile) { try { unlinkSync(args.pidfile); } catch { /* gone */ } }
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
