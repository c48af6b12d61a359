// Live delivery through the real client library (web/chat-client.js, run in
// node on the tests' WebSocket): when nothing fails, a connected device
// gets every message from its own live event, without reading history.
//
// The reported case: a device reconnects and syncs, then the other person's
// two devices send 100 messages at once; the device showed one of the
// first of the burst from history, not live.  Every event had reached it:
// two workers fan the two devices' messages out at the same time, so the
// event of seq n+1 can arrive a moment before the event of seq n, and the
// client took that for a loss and read history at once.  The history
// answer had n (committed, its event still on the way), so n was shown
// from history and its event dropped as seen; and the messages the answer
// repeated stayed in the client's held set for good, so every later
// message started another history read.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, BASE, sleep, waitFor } from './lib.mjs';
import { makeUsers } from './shop.mjs';
import { BrowserWebSocket } from './ws.mjs';

globalThis.WebSocket = BrowserWebSocket;
const { ChatClient } = await import('../../web/chat-client.js');

const clients = [];

// a device running the client library, recording how each message came:
// live (its event had arrived when the client showed it) or not
function device(who, conversationId) {
  const c = new ChatClient({ token: who.token, base: BASE, cursors: { [conversationId]: 0 } });
  c.arrived = new Set();
  c.shown = [];
  c.notLive = [];
  c.historyReads = 0;
  const onFrame = c.onFrame.bind(c);
  c.onFrame = (data) => {
    const f = JSON.parse(data);
    if (f.type === 'message' && c.holdBack?.(f.message)) {
      setTimeout(() => { c.arrived.add(f.message.seq); onFrame(data); }, 300);
      return;
    }
    if (f.type === 'message') c.arrived.add(f.message.seq);
    onFrame(data);
  };
  const history = c.history.bind(c);
  c.history = (...a) => { c.historyReads++; return history(...a); };
  c.addEventListener('message', (e) => {
    c.shown.push(e.detail.seq);
    if (!c.arrived.has(e.detail.seq)) c.notLive.push(e.detail.seq);
  });
  clients.push(c);
  return c;
}

const online = (c) => waitFor(`state ws (${c.state})`, () => c.state === 'ws');

let sender;
let reader;

before(async () => {
  [sender, reader] = await makeUsers('live', 2);
});

after(() => {
  for (const c of clients) c.stop();
});

test('a device that reconnected and synced gets all of a two-device burst live, without reading history', async () => {
  const r = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: reader.id }, { token: sender.token });
  assert.ok([200, 201].includes(r.status), r.text);
  const cid = r.json.conversation.id;

  const [s1, s2, rd] = [device(sender, cid), device(sender, cid), device(reader, cid)];
  for (const c of [s1, s2, rd]) c.start();
  await Promise.all([s1, s2, rd].map(online));

  let n = 0;
  const sendSome = async (c, k) => { for (let i = 0; i < k; i++) await c.send(cid, `message ${++n}`); };

  // live, then away for 10, back: the sync brings the 10
  await sendSome(s1, 3);
  await waitFor('the first 3', () => rd.shown.length === 3);
  rd.stop();
  await sendSome(s1, 10);
  rd.start();
  await online(rd);
  await waitFor('the 10 missed, by sync', () => rd.shown.length === 13);
  assert.deepEqual(rd.shown, Array.from({ length: 13 }, (_, i) => i + 1));

  // the burst: both devices at once, each one send in flight (as the
  // library does).  Which of two neighbouring events comes first is up to
  // the workers; holding the first one back 300 ms makes the overtaking
  // certain instead of likely
  const first = n + 1;
  let held = false;
  rd.holdBack = (m) => m.seq === first && !held && (held = true);
  const reads = rd.historyReads;
  await Promise.all([sendSome(s1, 50), sendSome(s2, 50)]);
  await waitFor('all 113 shown', () => rd.shown.length >= 113, { timeout: 30000 });
  await sleep(300);

  assert.ok(held, 'the first event of the burst was held back');
  assert.deepEqual(rd.shown, Array.from({ length: 113 }, (_, i) => i + 1), 'once each, in seq order');
  assert.deepEqual(rd.notLive.filter((s) => s >= first), [], 'shown from history instead of live');
  assert.equal(rd.historyReads - reads, 0, 'history reads while nothing was missing');
});
