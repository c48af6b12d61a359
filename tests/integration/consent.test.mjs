// Contacts and consent.  A direct conversation opened by someone who
// shares no conversation with you is a request until you answer or
// accept it, and until then they get none of your presence, last_seen,
// typing or receipts; opening one with an id that is no user answers
// exactly as with a real stranger; a blocked user's messages, typing,
// receipts and presence never reach the blocker, and the blocked user is
// not told.  Each case fails on a stack without consent (where any
// direct conversation unlocks presence at once, and a missing id is 404).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerUsers, sleep, waitFor } from './lib.mjs';
import { WsClient } from './ws.mjs';

let ann, ben, cat, dan, eve, fay;
let eveFay;                    // Eve's request to Fay
const open = new Set();

before(async () => {
  [ann, ben, cat, dan, eve, fay] = await registerUsers('consent', 6, 6);
});

after(() => {
  for (const ws of open) ws.close();
});

const http = (method, path, body, who) => api(method, path, body, { token: who.token });
const uid = (u) => u.user.id;

let nextAddress = 0;
async function device(who) {
  const ws = await WsClient.connect({ token: who.token, localAddress: `127.0.0.${2 + (nextAddress++ % 250)}` });
  open.add(ws);
  return ws;
}

function closeDevice(ws) {
  ws.close();
  open.delete(ws);
}

const presence = (of, asker) => http('GET', `/api/v1/users/${uid(of)}/presence`, undefined, asker);
const listed = async (who, cid) => (await http('GET', '/api/v1/conversations', undefined, who))
  .json.conversations.find((c) => c.id === cid);
const eventsOf = (ws, type, pred = () => true) => ws.messages.filter((m) => m.type === type && pred(m));

async function openDirect(from, to) {
  const r = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(to) }, from);
  assert.equal(r.status, 201, r.text);
  return r.json.conversation;
}

test('a direct conversation from a stranger is a request: the requester sees nothing of the recipient until they accept', async () => {
  const conv = await openDirect(ann, ben);
  assert.equal(conv.status, 'pending', JSON.stringify(conv));
  assert.deepEqual(conv.requests, [uid(ben)]);

  const seen = await listed(ben, conv.id);
  assert.equal(seen.status, 'request', JSON.stringify(seen));

  // the requester cannot ask about the recipient; the recipient can ask
  // about the requester (who chose to write)
  let r = await presence(ben, ann);
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.code, 'not_found');
  const annWs = await device(ann);
  const benWs = await device(ben);
  await waitFor('Ann online for Ben', async () => (await presence(ann, ben)).json?.status === 'online');

  // Ann's messages do reach Ben (that is what a request is)
  r = await http('POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: 'a1', text: 'hello?' }, ann);
  assert.equal(r.status, 201, r.text);
  await benWs.message((m) => m.type === 'message' && m.message.conversation_id === conv.id, 'the request message');

  // Ben reads it, types: Ann hears nothing
  r = await http('POST', `/api/v1/conversations/${conv.id}/read`, { seq: 1 }, ben);
  assert.equal(r.status, 200, r.text);
  benWs.sendJson({ type: 'typing', conversation_id: conv.id });
  await sleep(1500);
  assert.equal(eventsOf(annWs, 'receipt').length, 0, JSON.stringify(annWs.messages));
  assert.equal(eventsOf(annWs, 'typing').length, 0, JSON.stringify(annWs.messages));
  assert.equal(eventsOf(annWs, 'presence', (m) => m.user_id === uid(ben)).length, 0);
  assert.equal((await presence(ben, ann)).status, 404);
  // nor do the receipts' details show his markers
  r = await http('GET', `/api/v1/conversations/${conv.id}/receipts`, undefined, ann);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.receipts.map((x) => x.user_id), [uid(ann)]);

  // Ben accepts: now it is a conversation for both, and Ann sees him
  r = await http('POST', `/api/v1/conversations/${conv.id}/accept`, undefined, ben);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.conversation.status, 'active');
  assert.deepEqual(r.json.conversation.requests, []);
  const ev = await annWs.message((m) => m.type === 'conversation' && m.conversation.id === conv.id
    && m.conversation.requests.length === 0, 'the accepted conversation');
  assert.equal(ev.conversation.status, undefined, 'status differs per member: not in events');
  r = await waitFor('Ben visible to Ann', async () => {
    const p = await presence(ben, ann);
    return p.status === 200 ? p : null;
  });
  assert.equal(r.json.status, 'online');
  assert.equal((await listed(ann, conv.id)).status, 'active');

  // accepting again changes nothing
  r = await http('POST', `/api/v1/conversations/${conv.id}/accept`, undefined, ben);
  assert.equal(r.status, 200, r.text);
  // a stranger to the conversation cannot accept it
  r = await http('POST', `/api/v1/conversations/${conv.id}/accept`, undefined, cat);
  assert.equal(r.status, 404, r.text);

  // typing and receipts flow once accepted (the typing cache follows)
  await waitFor('typing from Ben to reach Ann', async () => {
    benWs.sendJson({ type: 'typing', conversation_id: conv.id });
    await sleep(300);
    return eventsOf(annWs, 'typing', (m) => m.user_id === uid(ben)).length > 0;
  }, { timeout: 15000, every: 2200 });
  r = await http('POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: 'a2', text: 'again' }, ann);
  r = await http('POST', `/api/v1/conversations/${conv.id}/read`, { seq: 2 }, ben);
  await annWs.message((m) => m.type === 'receipt' && m.user_id === uid(ben) && m.seq === 2, 'Ben\'s read receipt');

  closeDevice(annWs);
  closeDevice(benWs);
});

test('answering a request accepts it', async () => {
  const conv = await openDirect(cat, dan);
  assert.equal((await presence(dan, cat)).status, 404);
  const r = await http('POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: 'd1', text: 'hi Cat' }, dan);
  assert.equal(r.status, 201, r.text);
  assert.equal((await listed(dan, conv.id)).status, 'active');
  assert.equal((await presence(dan, cat)).status, 200);

  // a later direct conversation between contacts is no request: Dan and
  // Cat are each other's contacts now (the pair's one conversation again)
  const again = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(dan) }, cat);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.conversation.status, 'active');
});

test('an id that is no user answers like a stranger who never answers; nothing tells them apart', async () => {
  const ghost = 9007199254740000;
  const real = await openDirect(eve, fay);
  eveFay = real;
  const r = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: ghost }, eve);
  assert.equal(r.status, 201, r.text);
  const fake = r.json.conversation;

  // the same shape, the same status, both ids listed as members
  assert.deepEqual(Object.keys(fake).sort(), Object.keys(real).sort());
  assert.equal(fake.status, 'pending');
  assert.deepEqual(fake.requests, [ghost]);
  assert.deepEqual(fake.members, [uid(eve), ghost]);
  assert.deepEqual(real.members, [uid(eve), uid(fay)].sort((a, b) => a - b));

  // again: 200 with the same conversation, as for a real one
  const again = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: ghost }, eve);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.conversation.id, fake.id);
  // sending works the same
  const m = await http('POST', `/api/v1/conversations/${fake.id}/messages`, { client_msg_id: 'g1', text: 'anyone?' }, eve);
  assert.equal(m.status, 201, m.text);
  // presence: the same 404 for both
  const p1 = await http('GET', `/api/v1/users/${ghost}/presence`, undefined, eve);
  const p2 = await presence(fay, eve);
  assert.deepEqual([p1.status, p1.json], [p2.status, p2.json]);
  // blocking: the same answer for both
  const b1 = await http('POST', `/api/v1/users/${ghost}/block`, undefined, eve);
  const b2 = await http('DELETE', `/api/v1/users/${ghost}/block`, undefined, eve);
  assert.deepEqual([b1.status, b1.json], [200, { user_id: ghost, blocked: true }]);
  assert.deepEqual([b2.status, b2.json], [200, { user_id: ghost, blocked: false }]);
});

test('a blocked user\'s messages, typing, receipts and presence never reach the blocker; the blocked user is not told', async () => {
  // Eve and Fay talk (Fay answers: contacts)
  const conv = eveFay;
  let r = await http('POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: 'f1', text: 'hey Eve' }, fay);
  assert.equal(r.status, 201, r.text);
  const eveWs = await device(eve);
  const fayWs = await device(fay);
  await waitFor('Eve visible to Fay', async () => (await presence(eve, fay)).json?.status === 'online');

  // Fay blocks Eve: her other devices hear of it
  r = await http('POST', `/api/v1/users/${uid(eve)}/block`, undefined, fay);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { user_id: uid(eve), blocked: true });
  await fayWs.message((m) => m.type === 'block' && m.user_id === uid(eve) && m.blocked, 'the block event');

  // Eve sends: 201 as ever; Fay gets nothing live and no text in history
  const before = fayWs.messages.length;
  r = await http('POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: 'e9', text: 'secret words' }, eve);
  assert.equal(r.status, 201, r.text);
  const seq = r.json.message.seq;
  eveWs.sendJson({ type: 'typing', conversation_id: conv.id });
  // nor does the blocker's typing reach whom she blocked (the edge leaves
  // the typist's blocked members out of the last step)
  const eveBefore = eveWs.messages.length;
  fayWs.sendJson({ type: 'typing', conversation_id: conv.id });
  r = await http('POST', `/api/v1/conversations/${conv.id}/read`, { seq: seq - 1 }, eve);
  await sleep(1500);
  const got = fayWs.messages.slice(before);
  assert.ok(!got.some((m) => m.type === 'message' || m.type === 'typing' || m.type === 'receipt'), JSON.stringify(got));
  assert.ok(!eveWs.messages.slice(eveBefore).some((m) => m.type === 'typing'), JSON.stringify(eveWs.messages.slice(eveBefore)));
  const h = await http('GET', `/api/v1/conversations/${conv.id}/messages`, undefined, fay);
  const hidden = h.json.messages.find((x) => x.seq === seq);
  assert.equal(hidden.hidden, true, JSON.stringify(hidden));
  assert.equal(hidden.text, '');
  assert.ok(!JSON.stringify((await http('GET', '/api/v1/conversations', undefined, fay)).json).includes('secret words'));
  // Eve sees her own message as sent, and nothing about the block
  const mine = (await http('GET', `/api/v1/conversations/${conv.id}/messages`, undefined, eve)).json.messages;
  assert.equal(mine.find((x) => x.seq === seq).text, 'secret words');

  // presence neither way
  assert.equal((await presence(eve, fay)).status, 404);
  assert.equal((await presence(fay, eve)).status, 404);
  closeDevice(eveWs);
  await sleep(2500);   // past the grace: the offline event would have come
  assert.equal(eventsOf(fayWs, 'presence', (m) => m.user_id === uid(eve)).filter((m) => m.status === 'offline').length, 0);

  // unblocked: Eve's next message reaches Fay again
  r = await http('DELETE', `/api/v1/users/${uid(eve)}/block`, undefined, fay);
  assert.equal(r.status, 200, r.text);
  r = await http('POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: 'e10', text: 'back' }, eve);
  await fayWs.message((m) => m.type === 'message' && m.message.text === 'back', 'the message after the unblock');
  closeDevice(fayWs);
});

test('a request from a user you blocked is not shown to you', async () => {
  const [gus, hal] = await registerUsers('consent-b', 2, 2);
  let r = await http('POST', `/api/v1/users/${uid(gus)}/block`, undefined, hal);
  assert.equal(r.status, 200, r.text);
  const conv = await openDirect(gus, hal);
  assert.equal(conv.status, 'pending');
  assert.equal(await listed(hal, conv.id), undefined);
  // bad input: not an id, yourself
  r = await http('POST', '/api/v1/users/abc/block', undefined, hal);
  assert.equal(r.status, 404, r.text);
  r = await http('POST', `/api/v1/users/${uid(hal)}/block`, undefined, hal);
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'invalid_field');
});
