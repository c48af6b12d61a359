// Offline notifications through the whole stack: a member with no device
// online gets one webhook call per burst (batched per recipient and
// conversation), the call is retried when the webhook answers 500, and a
// muted conversation sends nothing.  The webhook is this file's own HTTP
// server on the port of CHAT_NOTIFY_WEBHOOK (tests/run.sh points the
// stack's NOTIFY_WEBHOOK at PORT + 3); calls for other tests' users are
// recorded and ignored.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { api, registerUsers, sleep, waitFor, RUN_DIR } from './lib.mjs';
import { WsClient } from './ws.mjs';

const WEBHOOK = new URL(process.env.CHAT_NOTIFY_WEBHOOK || 'http://127.0.0.1:18083/notify');
const QUIET_MS = 1500;          // NOTIFY_QUIET_MS of tests/run.sh

const calls = [];               // {body, headers, status}
const failFirst = new Set();    // conversation ids whose first call gets 500
const failAll = new Set();      // conversation ids whose calls all get 500
let server;
let sender, offline1, offline2, offline3, offline4, online;
const open = new Set();

before(async () => {
  server = createServer((req, res) => {
    let data = '';
    req.on('data', (d) => { data += d; });
    req.on('end', () => {
      let body = null;
      try { body = JSON.parse(data); } catch { /* recorded as null */ }
      let status = 200;
      if (req.url !== WEBHOOK.pathname || req.method !== 'POST') status = 404;
      else if (body && failFirst.has(body.conversation_id)) {
        failFirst.delete(body.conversation_id);
        status = 500;
      } else if (body && failAll.has(body.conversation_id)) {
        status = 500;
      }
      calls.push({ body, headers: req.headers, status });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(WEBHOOK.port), WEBHOOK.hostname, resolve);
  });
  [sender, offline1, offline2, offline3, offline4, online] = await registerUsers('notify', 6, 6);
});

after(() => {
  for (const ws of open) ws.close();
  server?.close();
});

const http = (method, path, body, who) => api(method, path, body, { token: who.token });
const uid = (u) => u.user.id;
const callsFor = (cid, who) => calls.filter((c) => c.body?.conversation_id === cid && c.body?.recipient_id === uid(who));

async function direct(a, b) {
  const r = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(b) }, a);
  assert.ok(r.status === 201 || r.status === 200, r.text);
  return r.json.conversation.id;
}

// n messages pipelined on one WebSocket of the sender, all acked
async function burst(cid, n, tag) {
  const ws = await WsClient.connect({ token: sender.token });
  open.add(ws);
  for (let i = 1; i <= n; i++) {
    ws.sendJson({ type: 'send', conversation_id: cid, client_msg_id: `${tag}-${i}`, text: `${tag} message ${i}` });
  }
  await ws.messagesWhere((m) => m.type === 'ack' && m.conversation_id === cid, n, `${n} acks`, 60000);
  ws.close();
  open.delete(ws);
}

async function waitCalls(cid, who, n, timeout = 30000) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (callsFor(cid, who).length >= n) return callsFor(cid, who);
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${n} webhook calls (have ${callsFor(cid, who).length})`);
}

test('an offline recipient gets one webhook call for a burst of 50 messages', async () => {
  const cid = await direct(sender, offline1);
  await burst(cid, 50, 'b');

  const [call] = await waitCalls(cid, offline1, 1);
  // well past the quiet window: still exactly one
  await sleep(QUIET_MS * 3);
  assert.equal(callsFor(cid, offline1).length, 1, JSON.stringify(callsFor(cid, offline1).map((c) => c.body)));

  // the preview is the newest message's (pipelined sends may commit in
  // another order than they were sent)
  const h = await http('GET', `/api/v1/conversations/${cid}/messages?after_seq=49`, undefined, sender);
  assert.equal(h.json.messages[0].seq, 50);

  assert.equal(call.status, 200);
  assert.equal(call.headers['content-type'], 'application/json');
  assert.deepEqual(call.body, {
    recipient_id: uid(offline1),
    conversation_id: cid,
    sender_id: uid(sender),
    preview: h.json.messages[0].text,
    count: 50,
    first_seq: 1,
    last_seq: 50,
  });
  assert.equal(call.headers['x-notification-id'], `${uid(offline1)}:${cid}:50`);
  // the sender is never notified of their own messages
  assert.equal(callsFor(cid, sender).length, 0);
});

test('a webhook answering 500 is retried with the same notification', async () => {
  const cid = await direct(sender, offline2);
  failFirst.add(cid);
  await burst(cid, 3, 'r');

  const [first, second] = await waitCalls(cid, offline2, 2);
  assert.equal(first.status, 500);
  assert.equal(second.status, 200);
  assert.deepEqual(second.body, first.body);
  assert.equal(second.headers['x-notification-id'], first.headers['x-notification-id']);
  assert.equal(first.body.count, 3);
  await sleep(QUIET_MS * 2);
  assert.equal(callsFor(cid, offline2).length, 2, 'a call after the successful one');
});

test('a muted conversation sends nothing; an online recipient is not notified', async () => {
  const muted = await direct(sender, offline3);
  let r = await http('PUT', `/api/v1/conversations/${muted}/mute`, { muted: true }, offline3);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { conversation_id: muted, muted: true });

  // bad input changes nothing; strangers get 404
  r = await http('PUT', `/api/v1/conversations/${muted}/mute`, { muted: 'yes' }, offline3);
  assert.equal(r.status, 400, r.text);
  r = await http('PUT', `/api/v1/conversations/${muted}/mute`, {}, offline3);
  assert.equal(r.status, 400, r.text);
  r = await http('PUT', `/api/v1/conversations/${muted}/mute`, { muted: false }, online);
  assert.equal(r.status, 404, r.text);

  // a recipient with a device online
  const onlineConv = await direct(sender, online);
  const ws = await WsClient.connect({ token: online.token });
  open.add(ws);
  await sleep(300);

  await burst(muted, 5, 'm');
  await burst(onlineConv, 5, 'o');

  // a conversation that is not muted, sent after: its call proves the
  // notifier has had every chance to send the muted one
  const control = await direct(offline1, offline3);
  const r2 = await http('POST', `/api/v1/conversations/${control}/messages`,
    { client_msg_id: 'c1', text: 'control' }, offline1);
  assert.equal(r2.status, 201, r2.text);
  await waitCalls(control, offline3, 1);
  await sleep(QUIET_MS * 2);

  assert.equal(callsFor(muted, offline3).length, 0, 'a call for a muted conversation');
  assert.equal(callsFor(onlineConv, online).length, 0, 'a call for an online recipient');

  // unmuted, the next message notifies again
  r = await http('PUT', `/api/v1/conversations/${muted}/mute`, { muted: false }, offline3);
  assert.equal(r.status, 200, r.text);
  await burst(muted, 1, 'u');
  const [call] = await waitCalls(muted, offline3, 1);
  assert.equal(call.body.count, 1);
  assert.equal(call.body.last_seq, 6);
  ws.close();
  open.delete(ws);
});

// the pid of the running notifier process, from the backend's log
function notifierPid() {
  const log = readFileSync(`${RUN_DIR}/backend/backend.log`, 'utf8');
  const all = [...log.matchAll(/notifier (\d+): started/g)];
  return all.length ? Number(all.at(-1)[1]) : 0;
}

test('a notifier killed with a batch in hand: its successor sends the batch', async () => {
  const cid = await direct(sender, offline4);
  failAll.add(cid);
  await burst(cid, 3, 'k');
  const [failed] = await waitCalls(cid, offline4, 1);
  assert.equal(failed.status, 500);

  const pid = notifierPid();
  assert.ok(pid > 0, 'no notifier in the log');
  process.kill(pid, 'SIGKILL');
  failAll.delete(cid);

  // restarted by the supervisor, it re-reads its pending jobs first
  await waitFor('a new notifier', () => notifierPid() !== pid, { timeout: 20000 });
  const ok = await waitFor('the batch delivered', () =>
    callsFor(cid, offline4).find((c) => c.status === 200), { timeout: 30000 });
  assert.equal(ok.body.count, 3);
  assert.equal(ok.body.last_seq, 3);
  await sleep(QUIET_MS * 2);
  assert.equal(callsFor(cid, offline4).filter((c) => c.status === 200).length, 1);
});
