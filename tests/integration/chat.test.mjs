// Chat through the whole stack: WebSocket and HTTP clients against nginx
// (2 workers) -> Redis -> the worker pool -> PostgreSQL, and the events
// coming back.  What API.md and DESIGN.md promise: every device sees every
// message once and in seq order, resends never store twice, a reconnecting
// device catches up with sync, non-members see nothing, history pages by
// seq both ways, read markers only move forward, and a worker killed in the
// middle of traffic loses nothing acknowledged and stores nothing twice.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { api, redis, sql, registerUsers, waitFor, workerPids, pendingByWorker, lanePids, sleep } from './lib.mjs';
import { WsClient } from './ws.mjs';

const POOL = 200;             // registered once; every test takes its own slice
let users;
const open = new Set();       // every WebSocket, closed in after()

before(async () => {
  users = await registerUsers('chat', POOL, 8);
});

after(() => {
  for (const ws of open) ws.close();
});

/* helpers */

const http = (method, path, body, who) => api(method, path, body, { token: who.token });
const uid = (u) => u.user.id;
const tag = () => randomBytes(4).toString('hex');

let nextAddress = 0;
// a device: a WebSocket from its own loopback address (127.0.0.2 ...)
async function device(who) {
  const ws = await WsClient.connect({ token: who.token, localAddress: `127.0.0.${2 + (nextAddress++ % 250)}` });
  open.add(ws);
  return ws;
}

// n devices opened at once: concurrent connects are what spreads them
// over the nginx workers (one by one, an idle nginx hands them all to the
// same worker)
const devices = (who, n) => Promise.all(Array.from({ length: n }, () => device(who)));

function closeDevice(ws) {
  ws.close();
  open.delete(ws);
}

async function direct(a, b) {
  const r = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(b) }, a);
  assert.ok(r.status === 201 || r.status === 200, `direct: ${r.status} ${r.text}`);
  return r.json.conversation;
}

async function group(owner, title, members) {
  const r = await http('POST', '/api/v1/conversations',
    { type: 'group', title, member_ids: members.map(uid) }, owner);
  assert.equal(r.status, 201, `group: ${r.text}`);
  return r.json.conversation;
}

// the answer (ack or error) to a send, matched by its ref (client_msg_id)
const answerTo = (ws, cmid, from = 0) =>
  ws.messages.slice(from).find((m) => (m.type === 'ack' || m.type === 'error') && m.ref === cmid);

function wsSend(ws, conversationId, cmid, text = `text of ${cmid}`) {
  const from = ws.messages.length;
  ws.sendJson({ type: 'send', conversation_id: conversationId, client_msg_id: cmid, text });
  return ws.waitFor(() => answerTo(ws, cmid, from), `the answer to ${cmid}`, 40000);
}

// sends them all without waiting (pipelined on one connection), then
// waits for every answer: Map(cmid -> ack or error)
async function wsSendMany(ws, conversationId, cmids, timeout = 40000) {
  const from = ws.messages.length;
  for (const cmid of cmids) {
    ws.sendJson({ type: 'send', conversation_id: conversationId, client_msg_id: cmid, text: `text of ${cmid}` });
  }
  const answers = new Map();
  await ws.waitFor(() => {
    for (let i = from; i < ws.messages.length; i++) {
      const m = ws.messages[i];
      if ((m.type === 'ack' || m.type === 'error') && !answers.has(m.ref)) answers.set(m.ref, m);
    }
    return cmids.every((c) => answers.has(c));
  }, `answers to ${cmids.length} sends`, timeout);
  return answers;
}

// the message events a device got for one conversation, in arrival order
const events = (ws, conversationId) => ws.messages
  .filter((m) => m.type === 'message' && m.message.conversation_id === conversationId)
  .map((m) => m.message);

const waitEvents = (ws, conversationId, n, what, timeout = 20000) =>
  ws.waitFor(() => events(ws, conversationId).length >= n, what, timeout);

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function history(who, conversationId, query = '') {
  const r = await http('GET', `/api/v1/conversations/${conversationId}/messages${query}`, undefined, who);
  assert.equal(r.status, 200, `history ${query}: ${r.text}`);
  return r.json;
}

async function listed(who, conversationId) {
  const r = await http('GET', '/api/v1/conversations', undefined, who);
  assert.equal(r.status, 200, r.text);
  return r.json.conversations.find((c) => c.id === conversationId);
}

// the nginx workers (gateways) a user has live connections on
async function gatewaysOf(who) {
  return (await redis('HKEYS', `chat:online:{${uid(who)}}`)).split('\n').filter(Boolean);
}

/* tests */

test('two users, several devices each over both nginx workers: every device sees every message once, in seq order', async () => {
  const [a, b] = users.slice(0, 2);
  const conv = await direct(a, b);
  assert.equal(conv.type, 'direct');
  assert.deepEqual([...conv.members].sort((x, y) => x - y), [uid(a), uid(b)].sort((x, y) => x - y));

  // bursts of concurrent connections until the devices span both workers
  // (the online registry in Redis names the gateway of every connection)
  const devs = new Map([[a, []], [b, []]]);
  let spread = new Set();
  for (let burst = 0; burst < 6 && spread.size < 2; burst++) {
    const [da, db] = await Promise.all([devices(a, 4), devices(b, 4)]);
    devs.get(a).push(...da);
    devs.get(b).push(...db);
    for (const list of devs.values()) {
      await Promise.all(list.map(async (ws) => { ws.sendJson({ type: 'ping' }); await ws.message((m) => m.type === 'pong'); }));
    }
    spread = new Set([...await gatewaysOf(a), ...await gatewaysOf(b)]);
  }
  assert.ok(spread.size >= 2, `devices on ${spread.size} nginx worker(s): ${[...spread]}`);
  const all = [...devs.get(a), ...devs.get(b)];

  // one at a time, alternating users and devices: each ack before the next
  const acks = [];
  for (let k = 0; k < 6; k++) {
    const who = k % 2 ? b : a;
    const list = devs.get(who);
    const cmid = `seq-${k}-${tag()}`;
    const ack = await wsSend(list[k % list.length], conv.id, cmid);
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    acks.push({ ...ack, sender: uid(who) });
  }
  assert.deepEqual(acks.map((x) => x.seq), range(1, 6), 'seqs follow the sends');

  // then both users at once from every device
  const burst = await Promise.all(all.map(async (ws, i) => {
    const who = i < devs.get(a).length ? a : b;
    const ack = await wsSend(ws, conv.id, `burst-${i}-${tag()}`);
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    return { ...ack, sender: uid(who) };
  }));
  acks.push(...burst);
  const N = acks.length;
  assert.deepEqual(acks.map((x) => x.seq).sort((x, y) => x - y), range(1, N), 'no seq given twice, none skipped');

  await Promise.all(all.map((ws, i) => waitEvents(ws, conv.id, N, `device ${i}: ${N} messages`)));
  // one more message as a barrier, so late duplicates would have arrived
  await wsSend(all[0], conv.id, `barrier-${tag()}`);
  await Promise.all(all.map((ws, i) => waitEvents(ws, conv.id, N + 1, `device ${i}: the barrier`)));

  for (const [i, ws] of all.entries()) {
    const got = events(ws, conv.id);
    const seqs = got.map((m) => m.seq);
    assert.equal(new Set(seqs).size, seqs.length, `device ${i}: a message twice: ${seqs}`);
    assert.deepEqual([...seqs].sort((x, y) => x - y), range(1, N + 1), `device ${i}: gaps`);
    // the ones sent one after another arrived in seq order
    assert.deepEqual(seqs.filter((s) => s <= 6), range(1, 6), `device ${i}: order ${seqs}`);
    for (const ack of acks) {
      const m = got.find((e) => e.seq === ack.seq);
      assert.equal(m.client_msg_id, ack.client_msg_id, `device ${i}, seq ${ack.seq}`);
      assert.equal(m.conversation_id, ack.conversation_id);
      assert.equal(m.created_at, ack.created_at);
      assert.equal(m.sender_id, ack.sender);
      assert.equal(m.text, `text of ${ack.client_msg_id}`);
    }
  }
  for (const ws of all) closeDevice(ws);
});

test('a group of 200 with 50 online: all 50 receive every message', async () => {
  const [owner, ...rest] = users;
  const conv = await group(owner, `two hundred ${tag()}`, rest);
  assert.equal(conv.members.length, POOL);
  assert.deepEqual(conv.admins, [uid(owner)]);

  const online = users.slice(0, 50);
  const devs = await Promise.all(online.map((u) => device(u)));

  // from an online member over WS, an offline member over HTTP, the owner over WS
  const sent = [];
  const a1 = await wsSend(devs[7], conv.id, `g1-${tag()}`);
  assert.equal(a1.type, 'ack', JSON.stringify(a1));
  sent.push(a1);
  const r = await http('POST', `/api/v1/conversations/${conv.id}/messages`,
    { client_msg_id: `g2-${tag()}`, text: 'from someone offline' }, users[150]);
  assert.equal(r.status, 201, r.text);
  sent.push(r.json.message);
  const a3 = await wsSend(devs[0], conv.id, `g3-${tag()}`);
  assert.equal(a3.type, 'ack');
  sent.push(a3);
  assert.deepEqual(sent.map((m) => m.seq), [1, 2, 3]);

  await Promise.all(devs.map((ws, i) => waitEvents(ws, conv.id, 3, `member ${i}: 3 messages`)));
  for (const [i, ws] of devs.entries()) {
    const got = events(ws, conv.id);
    assert.deepEqual(got.map((m) => m.seq), [1, 2, 3], `member ${i}`);
    assert.deepEqual(got.map((m) => m.client_msg_id), sent.map((m) => m.client_msg_id));
  }
  // and the ones who were offline find them in history and as unread
  const h = await history(users[199], conv.id);
  assert.deepEqual(h.messages.map((m) => m.seq), [1, 2, 3]);
  const c = await listed(users[199], conv.id);
  assert.equal(c.last_seq, 3);
  assert.equal(c.unread, 3);
  for (const ws of devs) closeDevice(ws);
});

test('a resend with the same client_msg_id (WS and HTTP) stores one message and answers the original', async () => {
  const [a, b] = users.slice(2, 4);
  const conv = await direct(a, b);
  const [wa, wb] = [await device(a), await device(b)];
  const count = async (cmid) => Number(await sql(
    "SELECT count(*) FROM messages WHERE conversation_id = :'p1' AND client_msg_id = :'p2'", conv.id, cmid));

  // over WS: the same ack twice
  const wsId = `ws-dup-${tag()}`;
  const first = await wsSend(wa, conv.id, wsId, 'once');
  const again = await wsSend(wa, conv.id, wsId, 'once');
  assert.equal(first.type, 'ack');
  assert.deepEqual(again, first);
  assert.equal(await count(wsId), 1);

  // over HTTP: 201, then 200 with the original message, even with other text
  const httpId = `http-dup-${tag()}`;
  const path = `/api/v1/conversations/${conv.id}/messages`;
  const r1 = await http('POST', path, { client_msg_id: httpId, text: 'original' }, a);
  assert.equal(r1.status, 201, r1.text);
  const r2 = await http('POST', path, { client_msg_id: httpId, text: 'original' }, a);
  assert.equal(r2.status, 200, r2.text);
  assert.deepEqual(r2.json.message, r1.json.message);
  const r3 = await http('POST', path, { client_msg_id: httpId, text: 'something else' }, a);
  assert.equal(r3.status, 200, r3.text);
  assert.deepEqual(r3.json.message, r1.json.message);
  assert.equal(await count(httpId), 1);

  // across the two paths
  const r4 = await http('POST', path, { client_msg_id: wsId, text: 'once' }, a);
  assert.equal(r4.status, 200, r4.text);
  assert.equal(r4.json.message.seq, first.seq);
  assert.equal(r4.json.message.created_at, first.created_at);
  const viaWs = await wsSend(wa, conv.id, httpId, 'original');
  assert.equal(viaWs.seq, r1.json.message.seq);
  assert.equal(await count(wsId), 1);
  assert.equal(await count(httpId), 1);

  // no seq was used up by the resends; another sender's equal id is theirs
  assert.equal(await sql("SELECT last_seq FROM conversations WHERE id = :'p1'", conv.id), '2');
  const theirs = await wsSend(wb, conv.id, wsId, 'mine');
  assert.equal(theirs.type, 'ack');
  assert.equal(theirs.seq, 3);
  assert.equal(await count(wsId), 2);

  // the recipient got one event per stored message
  await waitEvents(wb, conv.id, 3, 'three messages');
  await sleep(200);
  assert.deepEqual(events(wb, conv.id).map((m) => m.seq), [1, 2, 3]);
});

test('a device offline for 100 messages catches up with sync, exactly the missed ones, in order', async () => {
  const [sender, reader] = users.slice(4, 6);
  const conv = await direct(sender, reader);
  const ws = await device(sender);
  const [stay, leave] = [await device(reader), await device(reader)];

  const early = await wsSendMany(ws, conv.id, [1, 2, 3].map((k) => `early-${k}-${tag()}`));
  assert.ok([...early.values()].every((m) => m.type === 'ack'));
  await waitEvents(leave, conv.id, 3, 'the first 3 messages');
  const cursor = Math.max(...events(leave, conv.id).map((m) => m.seq));
  assert.equal(cursor, 3);
  closeDevice(leave);

  const cmids = range(1, 100).map((k) => `missed-${k}-${tag()}`);
  const acks = await wsSendMany(ws, conv.id, cmids);
  for (const [cmid, a] of acks) assert.equal(a.type, 'ack', `${cmid}: ${JSON.stringify(a)}`);
  assert.deepEqual([...acks.values()].map((a) => a.seq).sort((x, y) => x - y), range(4, 103));
  await waitEvents(stay, conv.id, 103, 'the device that stayed: all 103');

  // back online: sync from the cursor, pages of at most 30
  const back = await device(reader);
  const cursors = { [conv.id]: cursor };
  const got = [];
  let pages = 0;
  for (;;) {
    const page = await back.request({ type: 'sync', cursors, limit: 30, ref: `page-${pages}` },
      (m, req) => m.ref === req.ref && (m.type === 'sync' || m.type === 'error'), 'a sync page');
    assert.equal(page.type, 'sync', JSON.stringify(page));
    assert.ok(page.messages.length <= 30, `a page of ${page.messages.length}`);
    got.push(...page.messages.filter((m) => m.conversation_id === conv.id));
    Object.assign(cursors, page.cursors);
    pages++;
    if (!page.has_more) break;
    assert.ok(pages < 50, 'sync never ends');
  }
  assert.ok(pages >= 4, `100 messages in pages of 30 took ${pages} pages`);
  assert.deepEqual(got.map((m) => m.seq), range(4, 103), 'exactly the missed ones, in order');
  for (const m of got) {
    assert.equal(acks.get(m.client_msg_id)?.seq, m.seq, `${m.client_msg_id}`);
    assert.equal(m.sender_id, uid(sender));
  }
  assert.equal(cursors[conv.id], 103);
  assert.equal(events(back, conv.id).length, 0, 'nothing of it came again as live events');
});

test('a non-member cannot read, send to, list, or hear a conversation', async () => {
  const [a, b, outsider] = users.slice(6, 9);
  const conv = await direct(a, b);
  const [wb, wo] = [await device(b), await device(outsider)];
  const base = `/api/v1/conversations/${conv.id}`;

  const h = await http('GET', `${base}/messages`, undefined, outsider);
  assert.equal(h.status, 404, h.text);
  assert.equal(h.json.error.code, 'not_found');
  const s = await http('POST', `${base}/messages`, { client_msg_id: `in-${tag()}`, text: 'let me in' }, outsider);
  assert.equal(s.status, 404, s.text);
  const rd = await http('POST', `${base}/read`, { seq: 1 }, outsider);
  assert.equal(rd.status, 404, rd.text);
  const add = await http('POST', `${base}/members`, { user_id: uid(outsider) }, outsider);
  assert.equal(add.status, 404, add.text);
  // the same answers as for an id that was never used
  const never = await http('GET', '/api/v1/conversations/900719925474099/messages', undefined, outsider);
  assert.equal(never.status, 404);
  assert.deepEqual(never.json, h.json);

  const cmid = `sneak-${tag()}`;
  const err = await wsSend(wo, conv.id, cmid);
  assert.equal(err.type, 'error', JSON.stringify(err));
  assert.equal(err.code, 'not_found');
  const readErr = await wo.request({ type: 'read', conversation_id: conv.id, seq: 1, ref: 'r1' },
    (m) => m.ref === 'r1');
  assert.equal(readErr.type, 'error');
  assert.equal(readErr.code, 'not_found');

  // members talk; the outsider's device hears none of it
  const sent = await http('POST', `${base}/messages`, { client_msg_id: `m-${tag()}`, text: 'private' }, a);
  assert.equal(sent.status, 201, sent.text);
  await waitEvents(wb, conv.id, 1, 'the member hears it');
  const sync = await wo.request({ type: 'sync', cursors: { [conv.id]: 0 }, ref: 's' }, (m) => m.ref === 's');
  assert.equal(sync.type, 'sync', JSON.stringify(sync));
  assert.equal(sync.messages.filter((m) => m.conversation_id === conv.id).length, 0);
  assert.equal(sync.cursors[conv.id], undefined, 'a cursor of someone else\'s conversation is not answered');
  assert.equal(events(wo, conv.id).length, 0);
  assert.equal(await listed(outsider, conv.id), undefined);
  assert.equal(await sql("SELECT count(*) FROM messages WHERE conversation_id = :'p1' AND sender_id = :'p2'",
    conv.id, uid(outsider)), '0');

  // a member removed from a group is an outsider from then on
  const g = await group(a, `leavers ${tag()}`, [b, outsider]);
  const gone = await http('DELETE', `/api/v1/conversations/${g.id}/members/${uid(outsider)}`, undefined, a);
  assert.equal(gone.status, 200, gone.text);
  const after = await http('POST', `/api/v1/conversations/${g.id}/messages`,
    { client_msg_id: `after-${tag()}`, text: 'not for you' }, b);
  assert.equal(after.status, 201, after.text);
  await waitEvents(wb, g.id, 1, 'the member hears the group');
  const gh = await http('GET', `/api/v1/conversations/${g.id}/messages`, undefined, outsider);
  assert.equal(gh.status, 404, gh.text);
  assert.equal(events(wo, g.id).length, 0);
  assert.equal(await listed(outsider, g.id), undefined);
});

test('history pages by seq in both directions, always ascending', async () => {
  const [a, b] = users.slice(9, 11);
  const conv = await direct(a, b);
  const ws = await device(a);
  const acks = await wsSendMany(ws, conv.id, range(1, 25).map((k) => `h-${k}-${tag()}`));
  assert.deepEqual([...acks.values()].map((m) => m.seq).sort((x, y) => x - y), range(1, 25));

  const cases = [
    ['?after_seq=0&limit=10', range(1, 10), true],
    ['?after_seq=10&limit=10', range(11, 20), true],
    ['?after_seq=20&limit=10', range(21, 25), false],
    ['?after_seq=25', [], false],
    ['?before_seq=26&limit=10', range(16, 25), true],
    ['?before_seq=16&limit=10', range(6, 15), true],
    ['?before_seq=6&limit=10', range(1, 5), false],
    ['?before_seq=1', [], false],
    ['?limit=10', range(16, 25), true],
    ['', range(1, 25), false],
    ['?after_seq=5&before_seq=12&limit=3', [6, 7, 8], true],
    ['?after_seq=5&before_seq=9', [6, 7, 8], false],
    ['?limit=1000', range(1, 25), false],
  ];
  for (const [query, seqs, more] of cases) {
    const page = await history(b, conv.id, query);
    assert.deepEqual(page.messages.map((m) => m.seq), seqs, query);
    assert.equal(page.has_more, more, `${query}: has_more`);
    for (const m of page.messages) {
      assert.equal(m.conversation_id, conv.id);
      assert.equal(acks.get(m.client_msg_id)?.seq, m.seq);
      assert.ok(!Number.isNaN(Date.parse(m.created_at)));
    }
  }

  // walking forward and backward visits every message once
  let forward = [];
  for (let after = 0, more = true; more;) {
    const page = await history(b, conv.id, `?after_seq=${after}&limit=7`);
    forward.push(...page.messages.map((m) => m.seq));
    after = page.messages.at(-1)?.seq ?? after;
    more = page.has_more;
  }
  assert.deepEqual(forward, range(1, 25));
  let backward = [];
  for (let before = 26, more = true; more;) {
    const page = await history(b, conv.id, `?before_seq=${before}&limit=7`);
    backward = [...page.messages.map((m) => m.seq), ...backward];
    before = page.messages[0]?.seq ?? before;
    more = page.has_more;
  }
  assert.deepEqual(backward, range(1, 25));

  for (const bad of ['?limit=0', '?before_seq=-1', '?after_seq=abc', '?limit=1.5']) {
    const r = await http('GET', `/api/v1/conversations/${conv.id}/messages${bad}`, undefined, b);
    assert.equal(r.status, 400, `${bad}: ${r.status} ${r.text}`);
  }
});

test('the conversation list carries last_seq and unread; read markers only move forward', async () => {
  const [a, b] = users.slice(11, 13);
  const older = await direct(a, b);
  const newer = await group(a, `newer ${tag()}`, [b]);
  const wa = await device(a);
  const wb = await device(b);
  const acks = await wsSendMany(wa, older.id, range(1, 5).map((k) => `l-${k}-${tag()}`));
  const last = [...acks.values()].find((m) => m.seq === 5);

  const c = await listed(b, older.id);
  assert.equal(c.last_seq, 5);
  assert.equal(c.unread, 5);
  assert.equal(c.last_message.seq, 5);
  assert.equal(c.last_message.client_msg_id, last.client_msg_id);
  assert.equal((await listed(a, older.id)).unread, 0, 'the sender has read what they sent');
  // newest activity first: the direct conversation moved above the group
  const order = (await http('GET', '/api/v1/conversations', undefined, b)).json.conversations.map((x) => x.id);
  assert.ok(order.indexOf(older.id) < order.indexOf(newer.id), `order ${order}`);
  assert.equal((await listed(b, newer.id)).unread, 0);

  const read = (seq) => http('POST', `/api/v1/conversations/${older.id}/read`, { seq }, b);
  let r = await read(3);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.last_read_seq, 3);
  assert.equal((await listed(b, older.id)).unread, 2);
  r = await read(1);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.last_read_seq, 3, 'a read marker never moves back');
  assert.equal((await listed(b, older.id)).unread, 2);

  // over WS too, and never past the last message
  const w = await wb.request({ type: 'read', conversation_id: older.id, seq: 2, ref: 'back' }, (m) => m.ref === 'back');
  assert.equal(w.type, 'read', JSON.stringify(w));
  assert.equal(w.last_read_seq, 3);
  const far = await wb.request({ type: 'read', conversation_id: older.id, seq: 99, ref: 'far' }, (m) => m.ref === 'far');
  assert.equal(far.type, 'read', JSON.stringify(far));
  assert.equal(far.last_read_seq, 5);
  assert.equal((await listed(b, older.id)).unread, 0);
  assert.equal(await sql("SELECT last_read_seq FROM conversation_members WHERE conversation_id = :'p1' AND user_id = :'p2'",
    older.id, uid(b)), '5');

  // a new message makes it unread again
  await wsSend(wa, older.id, `l-6-${tag()}`);
  const again = await listed(b, older.id);
  assert.equal(again.last_seq, 6);
  assert.equal(again.unread, 1);
});

test('a worker SIGKILLed mid-traffic: nothing acknowledged is lost, nothing is stored twice', async (t) => {
  const before = await workerPids();
  assert.ok(before.length >= 2, `workers: ${before}`);
  const pairs = [[users[13], users[14]], [users[15], users[16]], [users[17], users[18]]];
  const convs = await Promise.all(pairs.map(([a, b]) => direct(a, b)));
  const senders = await Promise.all(pairs.map(([a]) => device(a)));

  // each sender keeps up to 40 sends in flight until told to stop
  let stop = false;
  const sent = convs.map(() => []);
  const pumps = senders.map(async (ws, i) => {
    const inflight = new Set();
    let n = 0;
    while (!stop && n < 4000) {
      while (inflight.size < 40 && n < 4000) {
        const cmid = `k${i}-${n++}-${tag()}`;
        sent[i].push(cmid);
        const p = wsSend(ws, convs[i].id, cmid).catch((e) => ({ type: 'lost', message: e.message }))
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await Promise.race(inflight);
    }
    await Promise.all(inflight);
  });

  // kill a chat-lane worker while it holds commands it has read but not
  // answered: freeze one, look at its pending list, kill it if it holds
  // any, else let it go and try again
  await waitFor('traffic', () => sent.every((s) => s.length > 40), { every: 5 });
  const chatWorkers = await lanePids('chat');
  assert.ok(chatWorkers.length >= 1, `chat lane workers: ${chatWorkers}`);
  let victim = null;
  let held = 0;
  for (let attempt = 0; attempt < 400 && !victim; attempt++) {
    const pid = chatWorkers[attempt % chatWorkers.length];
    process.kill(pid, 'SIGSTOP');
    try {
      const pending = await pendingByWorker('chat');
      held = [...pending].find(([consumer]) => Number(consumer.split(':').at(-1)) === pid)?.[1] ?? 0;
      if (held > 0) {
        process.kill(pid, 'SIGKILL');
        victim = pid;
      }
    } finally {
      if (!victim) process.kill(pid, 'SIGCONT');
    }
    if (!victim) await sleep(attempt % 7);
  }
  assert.ok(victim, 'no worker was ever caught holding commands');
  await sleep(1000);
  stop = true;
  await Promise.all(pumps);

  // every send answered; anything not acked is resent with its id until it is
  const answers = senders.map(() => new Map());
  let resent = 0;
  for (const [i, ws] of senders.entries()) {
    for (const cmid of sent[i]) {
      let a = answerTo(ws, cmid);
      for (let attempt = 0; a?.type !== 'ack' && attempt < 3; attempt++) {
        resent++;
        a = await wsSend(ws, convs[i].id, cmid).catch((e) => ({ type: 'lost', message: e.message }));
      }
      assert.equal(a?.type, 'ack', `${cmid}: ${JSON.stringify(a)}`);
      answers[i].set(cmid, a);
    }
  }

  for (const [i, conv] of convs.entries()) {
    const rows = (await sql("SELECT seq, client_msg_id FROM messages WHERE conversation_id = :'p1' ORDER BY seq", conv.id))
      .split('\n').filter(Boolean).map((l) => l.split('|'));
    const seqs = rows.map(([s]) => Number(s));
    const ids = rows.map(([, c]) => c);
    assert.equal(rows.length, sent[i].length, `conversation ${i}: ${rows.length} stored for ${sent[i].length} sent`);
    assert.deepEqual(seqs, range(1, rows.length), `conversation ${i}: seqs 1..N without gaps`);
    assert.equal(new Set(ids).size, ids.length, `conversation ${i}: a client_msg_id stored twice`);
    const stored = new Map(rows.map(([s, c]) => [c, Number(s)]));
    for (const [cmid, ack] of answers[i]) {
      assert.equal(stored.get(cmid), ack.seq, `${cmid}: acked as seq ${ack.seq}`);
    }
    assert.equal(await sql("SELECT last_seq FROM conversations WHERE id = :'p1'", conv.id), String(rows.length));
  }

  // the dead worker's commands were all reclaimed, and it was replaced
  await waitFor('nothing left pending', async () => [...(await pendingByWorker()).values()].every((n) => n === 0));
  await waitFor('the worker pool back at full size', async () => {
    const pids = await workerPids();
    return pids.length === before.length && !pids.includes(victim);
  });
  const total = sent.reduce((n, s) => n + s.length, 0);
  t.diagnostic(`killed worker ${victim} holding ${held} commands; ${total} messages, ${resent} resent`);
});
