// People, edits and deletes, and message search: GET /api/v1/users
// (?email=, ?q=, ?ids=), PATCH and DELETE of a message with its
// message_update event and sync's edit cursors, and GET
// /api/v1/messages/search.  Every route's errors and who may do what:
// a stranger is never listed by name, only the sender changes a message,
// a non-member or removed member finds nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, sql, uniqueEmail, sleep } from './lib.mjs';
import { WsClient } from './ws.mjs';

const open = new Set();
let ann, ben, cat, dan;        // Ann and Ben share a group with Cat; Dan is a stranger
let group, direct;

async function register(name) {
  const email = uniqueEmail('people');
  for (let attempt = 0; ; attempt++) {
    const r = await api('POST', '/api/v1/auth/register', { email, password: 'correct horse battery', display_name: name });
    if ((r.status === 429 || r.status === 503) && attempt < 20) { await sleep(1000); continue; }
    assert.equal(r.status, 201, r.text);
    return { email, ...r.json };
  }
}

const http = (method, path, body, who) => api(method, path, body, { token: who.token });
const uid = (u) => u.user.id;
let nextCmid = 0;
async function send(who, cid, text) {
  const r = await http('POST', `/api/v1/conversations/${cid}/messages`, { client_msg_id: `p-${Date.now()}-${nextCmid++}`, text }, who);
  assert.equal(r.status, 201, r.text);
  return r.json.message;
}

async function device(who) {
  const ws = await WsClient.connect({ token: who.token });
  open.add(ws);
  return ws;
}

before(async () => {
  ann = await register('Annabel Lee');
  ben = await register('Benedict Arlo');
  cat = await register('Catherine Annwyn');
  dan = await register('Danny Anders');
  let r = await http('POST', '/api/v1/conversations', { type: 'group', title: 'people', member_ids: [uid(ben), uid(cat)] }, ann);
  assert.equal(r.status, 201, r.text);
  group = r.json.conversation;
  r = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(ben) }, ann);
  assert.equal(r.status, 201, r.text);
  direct = r.json.conversation;
});

after(() => { for (const ws of open) ws.close(); });

// --- people -------------------------------------------------------------

test('users?email= finds exactly that address, with id and display_name only', async () => {
  const r = await http('GET', `/api/v1/users?email=${encodeURIComponent(`  ${dan.email.toUpperCase()} `)}`, undefined, ann);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.users, [{ id: uid(dan), display_name: 'Danny Anders' }]);

  const none = await http('GET', `/api/v1/users?email=${encodeURIComponent(`x${dan.email}`)}`, undefined, ann);
  assert.deepEqual(none.json.users, []);
  const partial = await http('GET', `/api/v1/users?email=${encodeURIComponent(dan.email.slice(0, 8))}`, undefined, ann);
  assert.equal(partial.status, 400, 'a part of an address is not an address');
  assert.equal(partial.json.error.code, 'invalid_field');
});

test('users?q= lists only people who share a conversation with the caller, by name or word prefix', async () => {
  let r = await http('GET', '/api/v1/users?q=an', undefined, ann);
  assert.equal(r.status, 200, r.text);
  // Catherine Annwyn shares the group; Danny Anders is a stranger
  assert.deepEqual(r.json.users, [{ id: uid(cat), display_name: 'Catherine Annwyn' }]);

  r = await http('GET', '/api/v1/users?q=BEN', undefined, ann);
  assert.deepEqual(r.json.users.map((u) => u.id), [uid(ben)]);

  r = await http('GET', '/api/v1/users?q=an', undefined, dan);
  assert.deepEqual(r.json.users, [], 'a stranger finds nobody by name');

  r = await http('GET', '/api/v1/users?q=%25', undefined, ann);
  assert.deepEqual(r.json.users, [], 'LIKE wildcards are taken literally');
});

test('users?ids= names the caller and the people they share a conversation with, nobody else', async () => {
  const r = await http('GET', `/api/v1/users?ids=${uid(ann)},${uid(ben)},${uid(dan)}`, undefined, ann);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.users.map((u) => u.id), [uid(ann), uid(ben)]);
});

test('users: bad or missing parameters are 400, no token is 401', async () => {
  for (const q of ['', '?q=', '?q=%20%20', `?q=a&email=${encodeURIComponent(ann.email)}`, '?ids=1,x', '?ids=', `?q=${'a'.repeat(101)}`]) {
    const r = await http('GET', `/api/v1/users${q}`, undefined, ann);
    assert.equal(r.status, 400, `${q}: ${r.text}`);
    assert.ok(r.json.error.code, r.text);
  }
  assert.equal((await api('GET', '/api/v1/users?q=a')).status, 401);
});

test('someone who blocked the caller is found by nothing', async () => {
  const eve = await register('Evelyn Block');
  const r0 = await http('POST', '/api/v1/conversations', { type: 'group', title: 'with eve', member_ids: [uid(eve)] }, dan);
  assert.equal(r0.status, 201, r0.text);
  assert.deepEqual((await http('GET', '/api/v1/users?q=evel', undefined, dan)).json.users.map((u) => u.id), [uid(eve)]);
  assert.equal((await http('POST', `/api/v1/users/${uid(dan)}/block`, undefined, eve)).status, 200);
  assert.deepEqual((await http('GET', '/api/v1/users?q=evel', undefined, dan)).json.users, []);
  assert.deepEqual((await http('GET', `/api/v1/users?email=${encodeURIComponent(eve.email)}`, undefined, dan)).json.users, []);
  assert.deepEqual((await http('GET', `/api/v1/users?ids=${uid(eve)}`, undefined, dan)).json.users, []);
});

// --- edits and deletes --------------------------------------------------

test('the sender edits a message: 200 with edited_at and edit_seq, every member device gets message_update, history shows it', async () => {
  const benWs = await device(ben);
  const annWs = await device(ann);
  const m = await send(ann, group.id, 'first draft');
  const r = await http('PATCH', `/api/v1/conversations/${group.id}/messages/${m.seq}`, { text: 'second draft' }, ann);
  assert.equal(r.status, 200, r.text);
  const edited = r.json.message;
  assert.equal(edited.text, 'second draft');
  assert.equal(edited.seq, m.seq);
  assert.equal(edited.client_msg_id, m.client_msg_id);
  assert.ok(edited.edited_at && edited.edit_seq > 0, r.text);

  for (const ws of [benWs, annWs]) {
    const ev = await ws.message((f) => f.type === 'message_update' && f.message.seq === m.seq && f.message.conversation_id === group.id, 'message_update');
    assert.deepEqual(ev.message, edited);
  }

  const h = await http('GET', `/api/v1/conversations/${group.id}/messages?after_seq=${m.seq - 1}&limit=1`, undefined, cat);
  assert.deepEqual(h.json.messages[0], edited);

  // the same text again changes nothing: same answer, no second event
  const again = await http('PATCH', `/api/v1/conversations/${group.id}/messages/${m.seq}`, { text: 'second draft' }, ann);
  assert.deepEqual(again.json.message, edited);
  const n = (await sql('SELECT last_edit_seq FROM conversations WHERE id = :p1', group.id));
  assert.equal(Number(n), edited.edit_seq);
});

test('only the sender changes a message: another member 403, a non-member 404, a missing seq 404, bad input 400', async () => {
  const m = await send(ann, group.id, 'mine alone');
  const path = `/api/v1/conversations/${group.id}/messages/${m.seq}`;
  let r = await http('PATCH', path, { text: 'hijacked' }, ben);
  assert.equal(r.status, 403, r.text);
  assert.equal(r.json.error.code, 'forbidden');
  assert.equal((await http('DELETE', path, undefined, ben)).status, 403);
  r = await http('PATCH', path, { text: 'hijacked' }, dan);
  assert.equal(r.status, 404, r.text);
  assert.equal((await http('DELETE', path, undefined, dan)).status, 404);
  r = await http('PATCH', `/api/v1/conversations/${group.id}/messages/999999`, { text: 'x' }, ann);
  assert.equal(r.status, 404, r.text);
  for (const body of [{}, { text: '' }, { text: 5 }, { text: 'x'.repeat(4001) }]) {
    r = await http('PATCH', path, body, ann);
    assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 40)}: ${r.text}`);
  }
  assert.equal((await api('PATCH', path, { text: 'x' })).status, 401);
  const h = await http('GET', `/api/v1/conversations/${group.id}/messages?after_seq=${m.seq - 1}&limit=1`, undefined, ann);
  assert.equal(h.json.messages[0].text, 'mine alone', 'nothing refused changed anything');
  assert.equal(h.json.messages[0].edited_at, undefined);
});

test('a delete keeps the seq, loses the text, tells every device, and is answered again the same', async () => {
  const benWs = await device(ben);
  const m = await send(ann, direct.id, 'regrettable');
  const after = await send(ann, direct.id, 'still here');
  const path = `/api/v1/conversations/${direct.id}/messages/${m.seq}`;
  const r = await http('DELETE', path, undefined, ann);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.message.deleted, true);
  assert.equal(r.json.message.text, '');
  assert.equal(r.json.message.seq, m.seq);
  const ev = await benWs.message((f) => f.type === 'message_update' && f.message.conversation_id === direct.id && f.message.seq === m.seq, 'the delete');
  assert.equal(ev.message.deleted, true);
  assert.equal(ev.message.text, '');

  assert.equal(await sql('SELECT text FROM messages WHERE conversation_id = :p1 AND seq = :p2', direct.id, m.seq), '', 'nothing of the text is kept');
  const h = await http('GET', `/api/v1/conversations/${direct.id}/messages?after_seq=${m.seq - 1}`, undefined, ben);
  assert.deepEqual(h.json.messages.map((x) => [x.seq, x.deleted ?? false]), [[m.seq, true], [after.seq, false]]);

  const again = await http('DELETE', path, undefined, ann);
  assert.equal(again.status, 200);
  assert.deepEqual(again.json.message, r.json.message);
  const edit = await http('PATCH', path, { text: 'undo' }, ann);
  assert.equal(edit.status, 409, edit.text);
  assert.equal(edit.json.error.code, 'message_deleted');
});

test('sync with edit_cursors answers the changes a device missed, bounded by what it has', async () => {
  const conv = (await http('POST', '/api/v1/conversations', { type: 'group', title: 'sync edits', member_ids: [uid(ben)] }, ann)).json.conversation;
  const a = await send(ann, conv.id, 'one');
  const b = await send(ann, conv.id, 'two');
  const ws = await device(ben);
  // Ben's device has both messages and no changes; then it misses two edits
  const e1 = (await http('PATCH', `/api/v1/conversations/${conv.id}/messages/${a.seq}`, { text: 'one, edited' }, ann)).json.message;
  const e2 = (await http('DELETE', `/api/v1/conversations/${conv.id}/messages/${b.seq}`, undefined, ann)).json.message;
  assert.ok(e2.edit_seq > e1.edit_seq);
  const s = await ws.request({ type: 'sync', ref: 'se1', cursors: { [conv.id]: b.seq }, edit_cursors: { [conv.id]: 0 } }, (f) => f.type === 'sync' && f.ref === 'se1');
  assert.deepEqual(s.updates.filter((m) => m.conversation_id === conv.id), [e1, e2]);
  assert.equal(s.edit_cursors[conv.id], e2.edit_seq);
  // caught up: nothing more
  const s2 = await ws.request({ type: 'sync', ref: 'se2', cursors: { [conv.id]: b.seq }, edit_cursors: s.edit_cursors }, (f) => f.type === 'sync' && f.ref === 'se2');
  assert.deepEqual(s2.updates.filter((m) => m.conversation_id === conv.id), []);
  // a device that has only the first message gets the second as a message, current, not as an update
  const s3 = await ws.request({ type: 'sync', ref: 'se3', cursors: { [conv.id]: a.seq }, edit_cursors: { [conv.id]: 0 } }, (f) => f.type === 'sync' && f.ref === 'se3');
  assert.deepEqual(s3.messages.filter((m) => m.conversation_id === conv.id), [e2]);
  assert.ok(s3.updates.some((m) => m.seq === e2.seq) || s3.edit_cursors[conv.id] >= e1.edit_seq);
  // a sync without edit_cursors is answered as before
  const s4 = await ws.request({ type: 'sync', ref: 'se4', cursors: { [conv.id]: b.seq } }, (f) => f.type === 'sync' && f.ref === 'se4');
  assert.equal(s4.updates, undefined);
  const bad = await ws.request({ type: 'sync', ref: 'se5', cursors: {}, edit_cursors: { x: 1 } }, (f) => f.ref === 'se5');
  assert.equal(bad.type, 'error');
  assert.equal(bad.code, 'invalid_field');
});

// --- search -------------------------------------------------------------

test('search finds word prefixes in the caller\'s conversations only, newest first, with a highlighted snippet', async () => {
  const conv = (await http('POST', '/api/v1/conversations', { type: 'group', title: 'search', member_ids: [uid(ben)] }, ann)).json.conversation;
  const older = await send(ann, conv.id, 'Quarterly zebrafinch report <draft> & notes');
  const newer = await send(ben, conv.id, 'the zebrafinches are fed');
  await send(dan, (await http('POST', '/api/v1/conversations', { type: 'group', title: 'dan alone', member_ids: [] }, dan)).json.conversation.id, 'zebrafinch of dan');

  const r = await http('GET', '/api/v1/messages/search?q=ZEBRAF', undefined, ann);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.results.map((x) => [x.message.conversation_id, x.message.seq]), [[conv.id, newer.seq], [conv.id, older.seq]]);
  assert.equal(r.json.next_cursor, null);
  const snip = r.json.results[1].snippet;
  assert.match(snip, /<mark>zebrafinch<\/mark>/, snip);
  assert.match(snip, /&lt;draft&gt; &amp; notes/, 'the text is escaped: the snippet is safe markup');

  // every word must match; one conversation only
  assert.deepEqual((await http('GET', '/api/v1/messages/search?q=zebra%20report', undefined, ann)).json.results.map((x) => x.message.seq), [older.seq]);
  const one = await http('GET', `/api/v1/messages/search?q=zebrafinch&conversation_id=${group.id}`, undefined, ann);
  assert.deepEqual(one.json.results, []);
  // punctuation alone finds nothing
  assert.deepEqual((await http('GET', '/api/v1/messages/search?q=%3A%3A', undefined, ann)).json.results, []);
});

test('search pages with next_cursor and never returns deleted messages', async () => {
  const conv = (await http('POST', '/api/v1/conversations', { type: 'group', title: 'pages', member_ids: [] }, cat)).json.conversation;
  const sent = [];
  for (let i = 0; i < 5; i++) sent.push(await send(cat, conv.id, `pagination marmalade ${i}`));
  await http('DELETE', `/api/v1/conversations/${conv.id}/messages/${sent[2].seq}`, undefined, cat);
  const seen = [];
  let cursor = '';
  for (let page = 0; page < 5; page++) {
    const r = await http('GET', `/api/v1/messages/search?q=marmalade&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, undefined, cat);
    assert.equal(r.status, 200, r.text);
    seen.push(...r.json.results.map((x) => x.message.seq));
    if (!r.json.next_cursor) break;
    cursor = r.json.next_cursor;
  }
  assert.deepEqual(seen, [sent[4].seq, sent[3].seq, sent[1].seq, sent[0].seq]);
  // an edit is found by its new text only
  await http('PATCH', `/api/v1/conversations/${conv.id}/messages/${sent[0].seq}`, { text: 'now about quince' }, cat);
  assert.deepEqual((await http('GET', '/api/v1/messages/search?q=quince', undefined, cat)).json.results.map((x) => x.message.seq), [sent[0].seq]);
  assert.ok(!(await http('GET', '/api/v1/messages/search?q=marmalade', undefined, cat)).json.results.some((x) => x.message.seq === sent[0].seq));
});

test('a member removed from a group finds nothing of it any more; a non-member\'s conversation_id is 404', async () => {
  const conv = (await http('POST', '/api/v1/conversations', { type: 'group', title: 'removal', member_ids: [uid(dan)] }, cat)).json.conversation;
  await send(cat, conv.id, 'secret pomegranate plans');
  assert.equal((await http('GET', '/api/v1/messages/search?q=pomegranate', undefined, dan)).json.results.length, 1);
  assert.equal((await http('DELETE', `/api/v1/conversations/${conv.id}/members/${uid(dan)}`, undefined, cat)).status, 200);
  assert.deepEqual((await http('GET', '/api/v1/messages/search?q=pomegranate', undefined, dan)).json.results, []);
  const r = await http('GET', `/api/v1/messages/search?q=pomegranate&conversation_id=${conv.id}`, undefined, dan);
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.code, 'not_found');
});

test('search: bad input is 400 in the error shape, no token 401', async () => {
  for (const q of ['', '?q=', '?q=%20', `?q=${'a'.repeat(201)}`, '?q=a&cursor=zzz', '?q=a&cursor=1.2', '?q=a&limit=0', '?q=a&conversation_id=x']) {
    const r = await http('GET', `/api/v1/messages/search${q}`, undefined, ann);
    assert.equal(r.status, 400, `${q}: ${r.text}`);
    assert.ok(r.json.error.code && r.json.error.message, r.text);
  }
  assert.equal((await api('GET', '/api/v1/messages/search?q=a')).status, 401);
});
