// The payment provider stand-in (payments/provider.mjs) on its own: the
// card processor's contract the backend relies on.  Most cases talk to the
// stack's provider; the restart case runs a private one on a spare port
// with its own ledger file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_DIR, waitFor, sleep } from './lib.mjs';
import { CARDS, provider, newKey, PAYMENT_URL } from './shop.mjs';

const year = new Date().getUTCFullYear() + 3;

// POST /v1/tokens on the stack's provider or the one at base
async function tokenizeAt(base, card) {
  const res = await fetch(`${base || PAYMENT_URL}/v1/tokens`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ card }),
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

const card = (number, extra = {}) => ({ number, exp_month: 6, exp_year: year, cvc: '321', ...extra });

// one token per key, card and provider, as a merchant keeps the token of
// an attempt for its retries
const tokens = new Map();
async function tokenFor(number, key, base) {
  const k = `${base}\n${key}\n${number}`;
  if (!tokens.has(k)) {
    tokens.set(k, tokenizeAt(base, card(number)).then((t) => {
      if (t.status !== 201) throw new Error(`tokenize ${number}: ${t.status} ${JSON.stringify(t.json)}`);
      return t.json.id;
    }));
  }
  return tokens.get(k);
}

const body = (token, extra = {}) => ({ amount_cents: 4200, currency: 'USD', token, order_id: 77, ...extra });

async function pay(number, key = newKey('p'), extra = {}, base = '') {
  const b = body(await tokenFor(number, key, base), extra);
  return base
    ? fetch(`${base}/v1/payments`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(b),
    }).then(async (r) => ({ status: r.status, json: await r.json() }))
    : provider('POST', '/v1/payments', b, { 'idempotency-key': key });
}

test('provider: a card is tokenized from any origin (CORS); the token shows only brand, last four and expiry', async () => {
  const pre = await fetch(`${PAYMENT_URL}/v1/tokens`, {
    method: 'OPTIONS',
    headers: { origin: 'http://shop.example', 'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
  assert.match(pre.headers.get('access-control-allow-headers'), /content-type/);

  const t = await tokenizeAt('', card(CARDS.ok, { exp_month: '06', exp_year: String(year) }));
  assert.equal(t.status, 201, JSON.stringify(t.json));
  assert.equal(t.headers.get('access-control-allow-origin'), '*');
  assert.match(t.json.id, /^tok_[0-9a-f]{24}$/);
  assert.deepEqual(t.json.card, { brand: 'visa', last4: '4242', exp_month: 6, exp_year: year });
  assert.equal(t.json.used, false);
  assert.ok(!JSON.stringify(t.json).includes(CARDS.ok));

  // what is not a card gets no token (and the refusal is readable cross-origin)
  for (const bad of [card('4242424242424241'), card(CARDS.ok, { exp_month: 13 }), card(CARDS.ok, { cvc: '1' }),
    card(CARDS.ok, { exp_month: 1, exp_year: 2020 }), undefined]) {
    const r = await tokenizeAt('', bad);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'invalid_card');
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
  }
  // payments are server to server: no CORS there
  const p = await fetch(`${PAYMENT_URL}/v1/payments?idempotency_key=none`, { headers: { origin: 'http://shop.example' } });
  assert.equal(p.headers.get('access-control-allow-origin'), null);
  await p.text();
});

test('provider: a token is charged; the record keeps the last four digits; the ledger keeps the card (its vault), never the cvc', async () => {
  const key = newKey('good');
  const r = await pay(CARDS.ok, key);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.status, 'succeeded');
  assert.equal(r.json.last4, '4242');
  assert.equal(r.json.amount_cents, 4200);
  assert.equal(r.json.idempotency_key, key);
  assert.ok(!JSON.stringify(r.json).includes(CARDS.ok));

  const byId = await provider('GET', `/v1/payments/${r.json.id}`);
  assert.deepEqual(byId.json, r.json);
  const byKey = await provider('GET', `/v1/payments?idempotency_key=${encodeURIComponent(key)}`);
  assert.deepEqual(byKey.json.payments, [r.json]);

  const ledger = readFileSync(`${RUN_DIR}/payments/ledger.jsonl`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const tok = await tokenFor(CARDS.ok, key, '');
  assert.ok(ledger.some((l) => l.t === 'payment' && l.payment.id === r.json.id));
  assert.ok(ledger.filter((l) => l.t !== 'token').every((l) => !JSON.stringify(l).includes(CARDS.ok)),
    'a card number outside the vault\'s token lines');
  const vault = ledger.find((l) => l.t === 'token' && l.token.id === tok);
  assert.equal(vault.token.card.number, CARDS.ok);
  assert.ok(!JSON.stringify(ledger).includes('"cvc"'), 'a cvc in the ledger');
});

test('provider: a token pays once; a card or an unknown token is refused; bad requests leave no record', async () => {
  const before = (await provider('GET', '/v1/stats')).json.payments_created;
  let r = await provider('POST', '/v1/payments', body(await tokenFor(CARDS.ok, 'nokey', '')));   // no key
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'idempotency_key_required');
  r = await pay(CARDS.ok, newKey(), { amount_cents: 0 });
  assert.equal(r.status, 400, r.text);
  r = await provider('POST', '/v1/payments', body('tok_doesnotexist'), { 'idempotency-key': newKey() });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'invalid_token');
  r = await provider('POST', '/v1/payments', { ...body(undefined), card: card(CARDS.ok) }, { 'idempotency-key': newKey() });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error.message, /tokenize/);
  assert.equal((await provider('GET', '/v1/stats')).json.payments_created, before);

  const key = newKey('once');
  const first = await pay(CARDS.ok, key);
  assert.equal(first.status, 201, first.text);
  const tok = await tokenFor(CARDS.ok, key, '');
  r = await provider('POST', '/v1/payments', body(tok), { 'idempotency-key': newKey() });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'token_already_used');
  assert.equal((await provider('GET', '/v1/stats')).json.payments_created, before + 1);

  r = await provider('GET', '/v1/payments/pay_doesnotexist');
  assert.equal(r.status, 404);
});

test('provider: declines with their codes', async () => {
  let r = await pay(CARDS.declined);
  assert.equal(r.status, 402, r.text);
  assert.equal(r.json.status, 'declined');
  assert.equal(r.json.decline_code, 'card_declined');
  r = await pay(CARDS.insufficient);
  assert.equal(r.status, 402);
  assert.equal(r.json.decline_code, 'insufficient_funds');
});

test('provider: one key is one payment: replays get the first answer, concurrent calls wait for it, another body is 409', async () => {
  const key = newKey('idem');
  const before = (await provider('GET', '/v1/stats')).json.payments_created;
  // slow card: the later calls arrive while the first is processing
  const all = await Promise.all(Array.from({ length: 5 }, () => pay(CARDS.slow, key)));
  for (const r of all) {
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.json, all[0].json);
  }
  assert.equal((await provider('GET', '/v1/stats')).json.payments_created - before, 1);

  const res = await fetch(`${PAYMENT_URL}/v1/payments`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(body(await tokenFor(CARDS.slow, key, ''))),
  });
  assert.equal(res.headers.get('idempotent-replayed'), 'true');
  await res.text();

  const other = await pay(CARDS.slow, key, { amount_cents: 1 });
  assert.equal(other.status, 409, other.text);
  assert.equal(other.json.error.code, 'idempotency_key_reused');
});

test('provider: the slow card is "processing" until it completes; the 500 card charged anyway; the dropped one left nothing', async () => {
  const key = newKey('slow');
  const slow = pay(CARDS.slow, key);
  const seen = await waitFor('the slow payment recorded', async () => {
    const r = await provider('GET', `/v1/payments?idempotency_key=${key}`);
    return r.json.payments[0];
  }, { every: 50 });
  assert.equal(seen.status, 'processing');
  assert.equal((await slow).json.status, 'succeeded');

  const k500 = newKey('err');
  const err = await pay(CARDS.error500, k500);
  assert.equal(err.status, 500, err.text);
  const after500 = await provider('GET', `/v1/payments?idempotency_key=${k500}`);
  assert.equal(after500.json.payments[0].status, 'succeeded');

  const kdrop = newKey('drop');
  await assert.rejects(pay(CARDS.drop, kdrop));
  const dropped = await provider('GET', `/v1/payments?idempotency_key=${kdrop}`);
  assert.deepEqual(dropped.json.payments, []);
});

test('provider: refunds once per key; only a succeeded payment can be refunded', async () => {
  const p = (await pay(CARDS.ok)).json;
  const key = newKey('refund');
  const r1 = await provider('POST', `/v1/payments/${p.id}/refunds`, {}, { 'idempotency-key': key });
  assert.equal(r1.status, 201, r1.text);
  assert.equal(r1.json.amount_cents, 4200);
  const r2 = await provider('POST', `/v1/payments/${p.id}/refunds`, {}, { 'idempotency-key': key });
  assert.deepEqual(r2.json, r1.json);
  assert.equal((await provider('GET', `/v1/payments/${p.id}`)).json.status, 'refunded');
  const r3 = await provider('POST', `/v1/payments/${p.id}/refunds`, {}, { 'idempotency-key': newKey() });
  assert.equal(r3.status, 409, r3.text);

  const d = (await pay(CARDS.declined)).json;
  const r4 = await provider('POST', `/v1/payments/${d.id}/refunds`, {}, { 'idempotency-key': newKey() });
  assert.equal(r4.status, 409, r4.text);
});

test('provider: a restart keeps every payment and stored answer (append-only ledger)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'provider-'));
  const ledger = join(dir, 'ledger.jsonl');
  const start = () => new Promise((resolve, reject) => {
    const child = spawn('node', ['payments/provider.mjs', '--port', '0', '--log', ledger, '--slow-ms', '200']);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve({ child, base: `http://127.0.0.1:${m[1]}` });
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`provider exited ${code}: ${out}`)));
  });
  const stop = (child) => new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM'); });

  try {
    let p = await start();
    const key = newKey('restart');
    const first = await pay(CARDS.ok, key, {}, p.base);
    assert.equal(first.status, 201);
    const used = await tokenFor(CARDS.ok, key, p.base);
    const unused = await tokenFor(CARDS.ok, newKey('later'), p.base);
    await stop(p.child);

    // the restarted one listens elsewhere: the bodies are made here
    p = await start();
    const charge = (token, k) => fetch(`${p.base}/v1/payments`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': k },
      body: JSON.stringify(body(token)),
    }).then(async (r) => ({ status: r.status, json: await r.json() }));
    try {
      const got = await fetch(`${p.base}/v1/payments/${first.json.id}`).then((r) => r.json());
      assert.deepEqual(got, first.json);
      const again = await charge(used, key);
      assert.equal(again.status, 201);
      assert.deepEqual(again.json, first.json);
      // the vault survived too: a token made before the restart pays once,
      // the used one still may not pay again
      const later = await charge(unused, newKey());
      assert.equal(later.status, 201, JSON.stringify(later.json));
      const reuse = await charge(used, newKey());
      assert.equal(reuse.status, 400, JSON.stringify(reuse.json));
      assert.equal(reuse.json.error.code, 'token_already_used');
      const stats = await fetch(`${p.base}/v1/stats`).then((r) => r.json());
      assert.equal(stats.payments_created, 2);
    } finally {
      await stop(p.child);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('provider: every answer takes --latency-ms give or take --jitter-ms, a charge is "processing" meanwhile, and calls being answered are counted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'provider-'));
  const child = spawn('node', ['payments/provider.mjs', '--port', '0', '--log', join(dir, 'ledger.jsonl'),
    '--latency-ms', '300', '--jitter-ms', '100']);
  const stopped = new Promise((resolve) => child.once('exit', resolve));
  try {
    const base = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const m = /listening on 127\.0\.0\.1:(\d+) \(answers in 300 ± 100 ms/.exec(out);
        if (m) resolve(`http://127.0.0.1:${m[1]}`);
      });
      child.on('exit', (code) => reject(new Error(`provider exited ${code}: ${out}`)));
    });
    const timed = async (p) => { const t0 = Date.now(); const r = await p; return [r, Date.now() - t0]; };

    // eight charges at once: each takes 200-400 ms, all together about one
    const key = newKey('lat');
    const charges = await Promise.all(Array.from({ length: 8 }, (_, i) => timed(pay(CARDS.ok, i ? newKey('lat') : key, {}, base))));
    for (const [r, ms] of charges) {
      assert.equal(r.status, 201);
      assert.ok(ms >= 190, `a charge answered in ${ms} ms`);
    }
    let stats = await fetch(`${base}/v1/stats`).then((r) => r.json());
    assert.equal(stats.max_in_flight, 8);
    assert.equal(stats.in_flight, 0);

    // a lookup and a replay take the answer time too; health and stats do not
    const [look, lookMs] = await timed(fetch(`${base}/v1/payments?idempotency_key=${key}`).then((r) => r.json()));
    assert.equal(look.payments.length, 1);
    assert.ok(lookMs >= 190, `a lookup answered in ${lookMs} ms`);
    const [, healthMs] = await timed(fetch(`${base}/health`).then((r) => r.json()));
    assert.ok(healthMs < 150, `health answered in ${healthMs} ms`);

    // changed at run time; a charge is recorded before its wait, so a
    // retry during the wait is a replay of it, not a second payment
    const set = (b) => fetch(`${base}/v1/test/latency`, { method: 'PUT', body: JSON.stringify(b) });
    assert.equal((await set({ latency_ms: -1 })).status, 400);
    assert.equal((await set({ tail_fraction: 2 })).status, 400);
    const r = await set({ latency_ms: 600, jitter_ms: 0, reset_max: true });
    assert.deepEqual(await r.json(), { latency_ms: 600, jitter_ms: 0, tail_fraction: 0, tail_ms: 2000, hold_ms: 0 });
    const created = stats.payments_created;
    const slowKey = newKey('lat');
    const [first, firstMs] = await timed((async () => {
      const a = pay(CARDS.ok, slowKey, {}, base);
      await sleep(150);
      return Promise.all([a, pay(CARDS.ok, slowKey, {}, base)]);
    })());
    assert.ok(firstMs >= 590, `answered in ${firstMs} ms`);
    assert.deepEqual(first[1].json, first[0].json);
    stats = await fetch(`${base}/v1/stats`).then((x) => x.json());
    assert.equal(stats.payments_created, created + 1);
    assert.equal(stats.replays, 1);
  } finally {
    child.kill('SIGTERM');
    await stopped;
    rmSync(dir, { recursive: true, force: true });
  }
});
