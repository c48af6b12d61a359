// Two people in two browser contexts chat in real time over WebSocket; the
// same with WebSocket refused (the page falls back to long-polling); and a
// window that goes offline while 20 messages are sent catches up with all
// of them, once each, in order.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WsClient } from '../integration/ws.mjs';
import { redis } from '../integration/lib.mjs';
import { api, launch, pageAs, registerUsers, shownTexts, waitState, waitTexts, say, screenshot } from './lib.mjs';

let browser;
let alice;
let bob;

before(async () => {
  [alice, bob] = await registerUsers('browser', 2, 2);
  browser = await launch();
});

after(async () => { await browser?.close(); });

async function direct(a, b) {
  const r = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: b.user.id }, { token: a.token });
  assert.ok([200, 201].includes(r.status), r.text);
  return r.json.conversation;
}

// a conversation of its own for each test (a second direct one between the
// same two people would be the first one again)
async function group(a, b, title) {
  const r = await api('POST', '/api/v1/conversations', { type: 'group', title, member_ids: [b.user.id] }, { token: a.token });
  assert.equal(r.status, 201, r.text);
  return r.json.conversation;
}

// does the server have typing (and with it receipts)?  A typing frame is
// answered not_supported where it does not.
async function serverHasTyping(conv) {
  const ws = await WsClient.connect({ token: alice.token });
  try {
    ws.sendJson({ type: 'typing', conversation_id: conv.id, ref: 'probe' });
    const r = await Promise.race([
      ws.message((m) => m.type === 'error' && m.ref === 'probe'),
      new Promise((res) => setTimeout(() => res(null), 3000)),
    ]);
    return !(r && r.code === 'not_supported');
  } finally {
    ws.close?.();
    ws.sock?.destroy();
  }
}

function assertOnceInOrder(got, want) {
  const mine = got.filter((t) => want.includes(t));
  assert.deepEqual(mine, want, `shown: ${JSON.stringify(got)}`);
}

test('two windows chat in real time over WebSocket', async (t) => {
  const conv = await direct(alice, bob);
  const pa = await pageAs(browser, alice, `/chat.html?c=${conv.id}`);
  const pb = await pageAs(browser, bob, `/chat.html?c=${conv.id}`);
  await waitState(pa, 'ws');
  await waitState(pb, 'ws');
  await pa.waitForSelector('#composer:not(.hidden)');
  await pb.waitForSelector('#composer:not(.hidden)');

  await say(pa, 'hello bob');
  await waitTexts(pb, ['hello bob']);
  await say(pb, 'hi alice');
  await waitTexts(pa, ['hi alice']);
  assertOnceInOrder(await shownTexts(pa), ['hello bob', 'hi alice']);
  assertOnceInOrder(await shownTexts(pb), ['hello bob', 'hi alice']);
  // alice's own message is acknowledged: a tick, no pending mark
  await pa.waitForFunction(() => [...document.querySelectorAll('#messages li.mine .tick')].every((x) => x.textContent.startsWith('✓')));
  await screenshot(pa, 'chat-websocket');

  assert.ok(await serverHasTyping(conv), 'the server answers typing frames (not not_supported)');
  await t.test('typing indicator and read ticks', async () => {
    await pb.type('#text', 'typing…');
    await pa.waitForFunction(() => /typing/.test(document.querySelector('#typing').textContent));
    // bob has the conversation open, so alice's message is read: ✓✓ read
    await say(pa, 'are you reading?');
    await waitTexts(pb, ['are you reading?']);
    await pa.waitForFunction(() => document.querySelector('#messages li.mine:last-child .tick.read'));
  });
  assert.deepEqual([...pa.problems, ...pb.problems], []);
  await pa.browserContext().close();
  await pb.browserContext().close();
});

test('WebSocket refused: the page falls back to long-polling, nothing lost or doubled', async () => {
  const conv = await group(alice, bob, 'polling');
  // /no-websocket is a static path: nginx answers 404 and refuses the upgrade
  const pa = await pageAs(browser, alice, `/chat.html?c=${conv.id}&ws=/no-websocket&ws_retry_ms=1500`);
  const pb = await pageAs(browser, bob, `/chat.html?c=${conv.id}&ws=/no-websocket`);
  await waitState(pa, 'polling');
  await waitState(pb, 'polling');
  await pa.waitForSelector('#composer:not(.hidden)');
  await pb.waitForSelector('#composer:not(.hidden)');

  const want = [];
  for (let i = 1; i <= 5; i++) {
    const [from, text] = i % 2 ? [pa, `polled a${i}`] : [pb, `polled b${i}`];
    want.push(text);
    await say(from, text);
    await waitTexts(pa, [text]);
    await waitTexts(pb, [text]);
  }
  assertOnceInOrder(await shownTexts(pa), want);
  assertOnceInOrder(await shownTexts(pb), want);
  // and a message sent from outside the page arrives through the poll
  const r = await api('POST', `/api/v1/conversations/${conv.id}/messages`,
    { client_msg_id: `outside-${Date.now()}`, text: 'from outside' }, { token: bob.token });
  assert.equal(r.status, 201, r.text);
  await waitTexts(pa, ['from outside']);
  assertOnceInOrder(await shownTexts(pa), [...want, 'from outside']);
  assert.equal(await pa.$eval('#conn-state', (e) => e.textContent), 'polling');
  await screenshot(pa, 'chat-polling');

  // WebSocket reachable again: the polling page goes back to it on its own
  // (it retries every ~1.5 s here), and the conversation goes on unbroken
  await pa.evaluate(() => { window.chatClient.wsUrl = location.origin.replace(/^http/, 'ws') + '/ws'; });
  await waitState(pa, 'ws');
  await say(pb, 'after the switch');
  await say(pa, 'back on websocket');
  await waitTexts(pa, ['after the switch', 'back on websocket']);
  await waitTexts(pb, ['after the switch', 'back on websocket']);
  const end = ['after the switch', 'back on websocket'];
  for (const p of [pa, pb]) {
    const got = await shownTexts(p);
    for (const text of [...want, ...end]) assert.equal(got.filter((x) => x === text).length, 1, `${text} once in ${JSON.stringify(got)}`);
  }
  assertOnceInOrder(await shownTexts(pb), [...want, 'from outside', ...end]);
  assert.deepEqual([...pa.problems, ...pb.problems].filter((p) => !/no-websocket|WebSocket/.test(p)), []);
  await pa.browserContext().close();
  await pb.browserContext().close();
});

test('a window offline while 20 messages are sent shows all 20 once, in order', async () => {
  const conv = await group(alice, bob, 'offline');
  const pa = await pageAs(browser, alice, `/chat.html?c=${conv.id}`);
  const pb = await pageAs(browser, bob, `/chat.html?c=${conv.id}`);
  await waitState(pa, 'ws');
  await waitState(pb, 'ws');
  await pb.waitForSelector('#composer:not(.hidden)');
  await say(pa, 'before the drop');
  await waitTexts(pb, ['before the drop']);

  await pb.setOfflineMode(true);
  await pb.waitForFunction(() => document.querySelector('#conn-state').textContent !== 'ws', { timeout: 30000 });
  // typed as fast as the page takes them: the client keeps one send per
  // conversation in flight, so they are stored in the order written
  const want = [];
  for (let i = 1; i <= 20; i++) {
    want.push(`while away ${i}`);
    await say(pa, `while away ${i}`);
  }
  await waitTexts(pa, want);
  // what bob writes while offline waits in the outbox and goes out once
  // the link is back (with the same client_msg_id, stored once)
  await say(pb, 'written offline');
  await pb.setOfflineMode(false);
  await waitState(pb, 'ws', 60000);
  await waitTexts(pb, want, 60000);
  await waitTexts(pa, ['written offline'], 60000);
  assertOnceInOrder(await shownTexts(pb), ['before the drop', ...want]);
  assert.equal((await shownTexts(pa)).filter((x) => x === 'written offline').length, 1);
  await pb.waitForFunction(() => !document.querySelector('#messages li[data-seq=""]'), {}, 'no message left pending');
  const h = await api('GET', `/api/v1/conversations/${conv.id}/messages?limit=50`, undefined, { token: alice.token });
  assert.deepEqual(h.json.messages.map((m) => m.text), ['before the drop', ...want, 'written offline']);
  await pa.browserContext().close();
  await pb.browserContext().close();
});

test('a message lost on the way is filled in from history when the next seq arrives', async () => {
  const conv = await group(alice, bob, 'gap');
  const pb = await pageAs(browser, bob, `/chat.html?c=${conv.id}`);
  await waitState(pb, 'ws');
  await pb.waitForSelector('#composer:not(.hidden)');
  // the page drops the frame carrying one message, as a lost event would
  await pb.evaluate(() => {
    const c = window.chatClient;
    const orig = c.onFrame.bind(c);
    c.onFrame = (data) => {
      if (JSON.parse(data).message?.text === 'lost in transit') { window.dropped = true; return; }
      orig(data);
    };
  });
  for (const text of ['lost in transit', 'after the loss']) {
    const r = await api('POST', `/api/v1/conversations/${conv.id}/messages`,
      { client_msg_id: `gap-${text.replace(/ /g, "-")}-${Date.now()}`, text }, { token: alice.token });
    assert.equal(r.status, 201, r.text);
  }
  await waitTexts(pb, ['lost in transit', 'after the loss']);
  assert.equal(await pb.evaluate(() => window.dropped), true, 'the frame was dropped');
  assertOnceInOrder(await shownTexts(pb), ['lost in transit', 'after the loss']);
  await pb.browserContext().close();
});

// a polling page whose session loses events (trimmed: cursor_expired) or
// disappears (unknown_session) resyncs from history: nothing missing
test('long-poll resync (cursor_expired, unknown_session) catches up from history', async () => {
  const conv = await group(alice, bob, 'resync');
  const pb = await pageAs(browser, bob, `/chat.html?c=${conv.id}&ws=/no-websocket`);
  await waitState(pb, 'polling');
  await pb.waitForSelector('#composer:not(.hidden)');
  // the test holds the page's next poll at a gate and records resyncs
  await pb.evaluate(() => {
    const c = window.chatClient;
    const orig = c.poll.bind(c);
    window.resyncs = [];
    window.gate = null;
    c.poll = async (cursor, timeout) => {
      if (window.gate) { window.gated = cursor; await window.gate.promise; }
      const r = await orig(cursor, timeout);
      if (r.resync) window.resyncs.push(r.reason);
      return r;
    };
  });
  let n = 0;
  const send = async () => {
    const text = `resync ${++n}`;
    const r = await api('POST', `/api/v1/conversations/${conv.id}/messages`,
      { client_msg_id: `resync-${n}-${Date.now()}`, text }, { token: alice.token });
    assert.equal(r.status, 201, r.text);
    return text;
  };
  const shown = [];
  for (const [reason, lose] of [
    ['cursor_expired', (key) => redis('XTRIM', key, 'MAXLEN', '0')],
    ['unknown_session', async (key) => {
      await redis('DEL', key);
      await redis('HDEL', `chat:online:{${bob.user.id}}`, key);
    }],
  ]) {
    await pb.evaluate(() => {
      let open;
      window.gate = { promise: new Promise((r) => { open = r; }), open };
      window.gated = null;
    });
    // a message answers the held poll; the next one waits at the gate
    shown.push(await send());
    await waitTexts(pb, [shown.at(-1)]);
    const cursor = await pb.waitForFunction(() => window.gated).then((h) => h.jsonValue());
    const lost = [await send(), await send()];
    const key = `chat:poll:{${bob.user.id}}:${cursor.slice(0, 16)}`;
    // the two events reached the session, and then are lost with it
    await waitForLen(key, 2);
    await lose(key);
    await pb.evaluate(() => { const g = window.gate; window.gate = null; g.open(); });
    await waitTexts(pb, lost);
    shown.push(...lost);
    assert.ok((await pb.evaluate(() => window.resyncs)).includes(reason), `a ${reason} resync`);
    assertOnceInOrder(await shownTexts(pb), shown);
  }
  assert.equal(await pb.$eval('#conn-state', (e) => e.textContent), 'polling');
  await pb.browserContext().close();
});

async function waitForLen(key, atLeast) {
  for (let i = 0; i < 200; i++) {
    if (Number(await redis('XLEN', key)) >= atLeast) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${key} never held ${atLeast} events`);
}

test('a message request shows Accept and Block; accepting makes it a conversation, blocking hides the next one', async () => {
  const [carol, dave, erin] = await registerUsers('browser-req', 3, 3);
  const conv = await direct(carol, dave);
  const r = await api('POST', `/api/v1/conversations/${conv.id}/messages`,
    { client_msg_id: 'req-1', text: 'hello, stranger' }, { token: carol.token });
  assert.equal(r.status, 201, r.text);

  const pd = await pageAs(browser, dave, `/chat.html?c=${conv.id}`);
  await waitState(pd, 'ws');
  await waitTexts(pd, ['hello, stranger']);
  await pd.waitForSelector(`#conversations li[data-conv-id="${conv.id}"] .request`);
  await pd.waitForSelector('#conv-actions:not(.hidden) #accept');
  await screenshot(pd, 'chat-request');
  await pd.click('#accept');
  await pd.waitForFunction(() => !document.querySelector('#accept'));
  await pd.waitForFunction((id) => !document.querySelector(`#conversations li[data-conv-id="${id}"] .request`), {}, conv.id);
  const listed = await api('GET', '/api/v1/conversations', undefined, { token: dave.token });
  assert.equal(listed.json.conversations.find((c) => c.id === conv.id).status, 'active');

  // Erin's request, then Dave blocks her from it: it leaves his list
  const other = await direct(erin, dave);
  await pd.goto(new URL(`/chat.html?c=${other.id}`, pd.url()).href);
  await waitState(pd, 'ws');
  await pd.waitForSelector('#conv-actions:not(.hidden) #block');
  await pd.click('#block');
  await pd.waitForFunction((id) => !document.querySelector(`#conversations li[data-conv-id="${id}"]`), {}, other.id);
  const after = await api('GET', '/api/v1/conversations', undefined, { token: dave.token });
  assert.equal(after.json.conversations.find((c) => c.id === other.id), undefined);
  assert.deepEqual(pd.problems, []);
  await pd.browserContext().close();
});
