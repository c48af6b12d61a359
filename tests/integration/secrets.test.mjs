// Secrets at rest.  After sign-ups, logins, WebSocket sessions and
// checkouts on the stack, no file under .run/<stack>/ (Redis' append-only
// file, PostgreSQL's data directory and WAL, nginx's and the backend's
// logs, the configs) holds any password, card number, CVC or bearer token
// that was used; and everything the stack wrote is its owner's alone.
//
// Left out of the search: .run/<stack>/payments/, the payment processor
// stand-in's folder.  It plays the processor, which keeps the cards it
// tokenized (its vault: payments/README.md); in production it is another
// company's system.  Its files' modes are checked like the rest.
//
// A CVC is 3 or 4 digits, which any data file holds somewhere by chance,
// so it is looked for the way a request carries it ("cvc":"987", cvc=987);
// the others are long and unique to this test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { api, RUN_DIR, sleep, uniqueEmail } from './lib.mjs';
import { WsClient } from './ws.mjs';
import { ADDRESS, makeBook, makeWarehouse, provider, putCart, setStock } from './shop.mjs';

// every regular file under dir, but not under the skipped folders
function* files(dir, skip) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory()) {
      if (!skip.includes(path)) yield* files(path, skip);
    } else if (st.isFile()) {
      yield path;
    }
  }
}

// [{file, what}] for every needle found in a file
function findAtRest(needles) {
  const skip = [join(RUN_DIR, 'payments')];
  const found = [];
  for (const file of files(RUN_DIR, skip)) {
    let data;
    try { data = readFileSync(file); } catch { continue; }   // gone meanwhile (a WAL recycle)
    for (const [what, needle] of needles) {
      if (data.includes(needle)) found.push(`${relative(RUN_DIR, file)}: ${what}`);
    }
  }
  return found;
}

async function signUpAndIn(tag) {
  const email = uniqueEmail(`secret-${tag}`);
  const password = `pw-${tag}-${randomBytes(12).toString('hex')}`;
  let r;
  for (let i = 0; i < 20; i++) {
    r = await api('POST', '/api/v1/auth/register', { email, password, display_name: `Secret ${tag}` });
    if (r.status !== 429 && r.status !== 503) break;
    await sleep(1000);
  }
  assert.equal(r.status, 201, r.text);
  const tokens = [r.json.token];
  for (let i = 0; i < 20; i++) {
    r = await api('POST', '/api/v1/auth/login', { email, password });
    if (r.status !== 429 && r.status !== 503) break;
    await sleep(1000);
  }
  assert.equal(r.status, 200, r.text);
  tokens.push(r.json.token);
  // a wrong password is a secret too (someone's other password, a typo)
  const wrong = `${password}-wrong`;
  r = await api('POST', '/api/v1/auth/login', { email, password: wrong });
  assert.ok(r.status === 401 || r.status === 429, r.text);
  return { email, password, wrong, tokens };
}

test('no password, card number, CVC or bearer token is at rest in any file of the stack', async () => {
  const needles = [];
  const a = await signUpAndIn('a');
  const b = await signUpAndIn('b');
  for (const u of [a, b]) {
    needles.push([`password of ${u.email}`, u.password], [`wrong password of ${u.email}`, u.wrong]);
    u.tokens.forEach((t, i) => {
      needles.push([`token ${i} of ${u.email}`, t], [`token ${i} signature of ${u.email}`, t.split('.')[2]]);
    });
  }
  const other = (await api('GET', '/api/v1/users/me', undefined, { token: b.tokens[1] })).json.user;

  // WebSocket sessions, the token in the Authorization header: a message
  // from one to the other, acknowledged and delivered
  const conv = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: other.id }, { token: a.tokens[1] });
  assert.ok(conv.status === 201 || conv.status === 200, conv.text);
  const cid = conv.json.conversation.id;
  const wa = await WsClient.connect({ token: a.tokens[1] });
  const wb = await WsClient.connect({ token: b.tokens[0] });
  try {
    const ack = await wa.request({ type: 'send', conversation_id: cid, client_msg_id: `s-${randomBytes(4).toString('hex')}`, text: 'psst' },
      (m) => m.type === 'ack');
    assert.ok(ack.seq >= 1);
    await wb.message((m) => m.type === 'message' && m.message.conversation_id === cid, 'the message');
  } finally {
    wa.close();
    wb.close();
  }

  // checkouts: the card tokenized with the processor first (what the web
  // app does), and an old-style checkout with the card in the body, which
  // the edge refuses before anything is queued
  const wh = await makeWarehouse('eu');
  const book = await makeBook('Secret Book', 1200);
  await setStock(book, wh, 10);
  const year = new Date().getUTCFullYear() + 2;
  const good = { number: '4242424242424242', cvc: '7391' };
  const raw = { number: '5555555555554444', cvc: '8462' };
  for (const c of [good, raw]) {
    needles.push([`card number ${c.number}`, c.number], [`cvc ${c.cvc}`, `"cvc":"${c.cvc}"`],
      [`cvc ${c.cvc}`, `"cvc": "${c.cvc}"`], [`cvc ${c.cvc}`, `cvc=${c.cvc}`]);
  }

  await putCart({ token: b.tokens[1] }, book, 1);
  const refused = await api('POST', '/api/v1/orders', {
    shipping_address: ADDRESS,
    payment: { card_number: raw.number, exp_month: 12, exp_year: year, cvc: raw.cvc },
  }, { token: b.tokens[1], headers: { 'idempotency-key': `secret-${randomBytes(6).toString('hex')}` } });

  await putCart({ token: a.tokens[1] }, book, 1);
  const tok = await provider('POST', '/v1/tokens', { card: { number: good.number, exp_month: 12, exp_year: year, cvc: good.cvc } });
  const paid = tok.status !== 201 ? tok
    : await api('POST', '/api/v1/orders', { shipping_address: ADDRESS, payment: { token: tok.json.id } },
      { token: a.tokens[1], headers: { 'idempotency-key': `secret-${randomBytes(6).toString('hex')}` } });

  // Redis writes its AOF every second (appendfsync everysec)
  await sleep(1500);
  const found = findAtRest(needles);
  assert.deepEqual(found, [], `secrets at rest under ${RUN_DIR}:\n  ${found.join('\n  ')}`);

  assert.equal(refused.status, 400, refused.text);
  assert.equal(refused.json.error.code, 'card_data_not_accepted');
  assert.equal(tok.status, 201, tok.text);
  assert.equal(paid.status, 201, paid.text);
  assert.equal(paid.json.order.status, 'paid');
});

test('every file the stack writes is 0600 and every directory 0700 (the stack directory 0711 at most)', () => {
  const loose = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      const mode = st.mode & 0o777;
      if (st.isSocket()) continue;    // inside a 0700 directory: unreachable
      if (st.isDirectory()) {
        if (mode & 0o077) loose.push(`${relative(RUN_DIR, path)}/ ${mode.toString(8)}`);
        walk(path);
      } else if (mode & 0o077) {
        loose.push(`${relative(RUN_DIR, path)} ${mode.toString(8)}`);
      }
    }
  };
  walk(RUN_DIR);
  // only passing through to PostgreSQL's own 0700 directory, never reading
  const top = lstatSync(RUN_DIR).mode & 0o777;
  if (top & 0o066) loose.unshift(`. ${top.toString(8)}`);
  assert.deepEqual(loose, [], `readable by others under ${RUN_DIR}:\n  ${loose.join('\n  ')}`);
});
