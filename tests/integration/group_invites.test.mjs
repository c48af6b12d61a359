// Group adds follow the consent rule of direct conversations: adding
// someone who has not accepted any conversation the adder is in (or who
// blocks the adder) makes the group an invitation for them (a request:
// `status: "request"`, their id in `requests`), which they accept (POST
// .../accept, or answering in it) or decline (leaving it).  Until then the
// group gets none of their presence, typing or receipts.  A contact's add
// is accepted at once, as before.  Each case fails on a stack where a
// group add is accepted whoever is added.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, registerUsers, sleep } from './lib.mjs';
import { WsClient } from './ws.mjs';

let gia, hal, ivy, jon, kim;
const open = new Set();

before(async () => {
  [gia, hal, ivy, jon, kim] = await registerUsers('invite', 5, 5);
  // Ivy and Kim are Gia's contacts: each answered a direct conversation
  for (const friend of [ivy, kim]) {
    const r = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(friend) }, gia);
    assert.equal(r.status, 201, r.text);
    const a = await http('POST', `/api/v1/conversations/${r.json.conversation.id}/accept`, undefined, friend);
    assert.equal(a.status, 200, a.text);
  }
});

after(() => {
  for (const ws of open) ws.close();
});

const http = (method, path, body, who) => api(method, path, body, { token: who.token });
const uid = (u) => u.user.id;
const listed = async (who, cid) => (await http('GET', '/api/v1/conversations', undefined, who))
  .json.conversations.find((c) => c.id === cid);

async function device(who) {
  const ws = await WsClient.connect({ token: who.token });
  open.add(ws);
  return ws;
}

test('a group made with a stranger in it is an invitation for the stranger only', async () => {
  const r = await http('POST', '/api/v1/conversations',
    { type: 'group', title: 'Book club', member_ids: [uid(hal), uid(ivy)] }, gia);
  assert.equal(r.status, 201, r.text);
  const conv = r.json.conversation;
  assert.deepEqual(conv.requests, [uid(hal)], 'the stranger has not accepted; the contact has');
  assert.equal(conv.status, 'active', 'a group is pending for nobody');

  assert.equal((await listed(hal, conv.id)).status, 'request');
  assert.equal((await listed(ivy, conv.id)).status, 'active');

  // Hal's receipts are not shown to the group until he accepts
  const giaWs = await device(gia);
  let s = await http('POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: 'g1', text: 'welcome' }, gia);
  assert.equal(s.status, 201, s.text);
  s = await http('POST', `/api/v1/conversations/${conv.id}/read`, { seq: 1 }, hal);
  assert.equal(s.status, 200, s.text);
  let rc = await http('GET', `/api/v1/conversations/${conv.id}/receipts`, undefined, gia);
  assert.equal(rc.status, 200, rc.text);
  assert.ok(!rc.json.receipts.some((x) => x.user_id === uid(hal)), JSON.stringify(rc.json));

  // he accepts: every member is told, and his receipts show
  const a = await http('POST', `/api/v1/conversations/${conv.id}/accept`, undefined, hal);
  assert.equal(a.status, 200, a.text);
  assert.equal(a.json.conversation.status, 'active');
  assert.deepEqual(a.json.conversation.requests, []);
  await giaWs.message((m) => m.type === 'conversation' && m.conversation.id === conv.id
    && m.conversation.requests.length === 0, 'the accepted invitation');
  rc = await http('GET', `/api/v1/conversations/${conv.id}/receipts`, undefined, gia);
  assert.ok(rc.json.receipts.some((x) => x.user_id === uid(hal)), JSON.stringify(rc.json));
});

test('an admin adding a stranger invites them; declining is leaving, and leaves nothing behind', async () => {
  const r = await http('POST', '/api/v1/conversations',
    { type: 'group', title: 'Climbing', member_ids: [uid(ivy)] }, gia);
  assert.equal(r.status, 201, r.text);
  const cid = r.json.conversation.id;
  assert.deepEqual(r.json.conversation.requests, []);

  const jonWs = await device(jon);
  const add = await http('POST', `/api/v1/conversations/${cid}/members`, { user_id: uid(jon) }, gia);
  assert.equal(add.status, 200, add.text);
  assert.deepEqual(add.json.conversation.requests, [uid(jon)]);
  assert.equal(add.json.conversation.status, 'active');
  const ev = await jonWs.message((m) => m.type === 'conversation' && m.conversation.id === cid, 'the invitation');
  assert.deepEqual(ev.conversation.requests, [uid(jon)]);
  assert.equal((await listed(jon, cid)).status, 'request');

  // adding again changes nothing and accepts nothing
  const again = await http('POST', `/api/v1/conversations/${cid}/members`, { user_id: uid(jon) }, gia);
  assert.equal(again.status, 200, again.text);
  assert.deepEqual(again.json.conversation.requests, [uid(jon)]);

  // Jon declines: he leaves, the group no longer lists him, he no longer sees it
  const leave = await http('DELETE', `/api/v1/conversations/${cid}/members/${uid(jon)}`, undefined, jon);
  assert.equal(leave.status, 200, leave.text);
  assert.equal(await listed(jon, cid), undefined);
  const after = await listed(gia, cid);
  assert.ok(!after.members.includes(uid(jon)), JSON.stringify(after));
  assert.deepEqual(after.requests, []);
});

test('answering in an invited group accepts it', async () => {
  const r = await http('POST', '/api/v1/conversations',
    { type: 'group', title: 'Answer', member_ids: [uid(jon)] }, gia);
  assert.equal(r.status, 201, r.text);
  const cid = r.json.conversation.id;
  assert.deepEqual(r.json.conversation.requests, [uid(jon)]);
  const s = await http('POST', `/api/v1/conversations/${cid}/messages`, { client_msg_id: 'j1', text: 'hi all' }, jon);
  assert.equal(s.status, 201, s.text);
  assert.equal((await listed(jon, cid)).status, 'active');
  assert.deepEqual((await listed(gia, cid)).requests, []);
});

test('a contact is added accepted, unless they block the adder', async () => {
  const r = await http('POST', '/api/v1/conversations',
    { type: 'group', title: 'Friends', member_ids: [] }, gia);
  assert.equal(r.status, 201, r.text);
  const cid = r.json.conversation.id;

  let add = await http('POST', `/api/v1/conversations/${cid}/members`, { user_id: uid(ivy) }, gia);
  assert.equal(add.status, 200, add.text);
  assert.deepEqual(add.json.conversation.requests, []);

  const b = await http('POST', `/api/v1/users/${uid(gia)}/block`, undefined, kim);
  assert.equal(b.status, 200, b.text);
  add = await http('POST', `/api/v1/conversations/${cid}/members`, { user_id: uid(kim) }, gia);
  assert.equal(add.status, 200, add.text);
  assert.deepEqual(add.json.conversation.requests, [uid(kim)], 'a block keeps it a request');
});

test('only admins invite; bad input is 400; nothing changes', async () => {
  const r = await http('POST', '/api/v1/conversations',
    { type: 'group', title: 'Admins', member_ids: [uid(ivy)] }, gia);
  const cid = r.json.conversation.id;
  let add = await http('POST', `/api/v1/conversations/${cid}/members`, { user_id: uid(hal) }, ivy);
  assert.equal(add.status, 403, add.text);
  assert.equal(add.json.error.code, 'forbidden');
  add = await http('POST', `/api/v1/conversations/${cid}/members`, { user_id: 'x' }, gia);
  assert.equal(add.status, 400, add.text);
  add = await http('POST', `/api/v1/conversations/${cid}/members`, { user_id: uid(hal) }, jon);
  assert.equal(add.status, 404, add.text);
  await sleep(100);
  const now = await listed(gia, cid);
  assert.deepEqual(now.members, [uid(gia), uid(ivy)].sort((x, y) => x - y));
  assert.deepEqual(now.requests, []);
});
