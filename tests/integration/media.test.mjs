// Files and images: uploads through the edge (type by content, size cap,
// content-addressed store, nothing left behind by a refused file),
// attachments on messages (only one's own uploads; history, live events),
// downloads only for the uploader and the members of a conversation the
// file was sent in (404 to everyone else, exactly like a missing id),
// served by nginx with Range, ETag, nosniff and Content-Disposition,
// thumbnails made once without metadata, and book covers.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { api, registerUser, registerUsers, sql, waitFor, RUN_DIR, BASE } from './lib.mjs';
import { WsClient } from './ws.mjs';
import { png } from './media.mjs';

let ann, ben, eve, admin;
let conv;                       // Ann and Ben's group
const open = new Set();

const uid = (u) => u.user.id;
const sha = (buf) => createHash('sha256').update(buf).digest('hex');
const blobPath = (hex) => `${RUN_DIR}/media/blobs/${hex.slice(0, 2)}/${hex}`;

function upload(who, body, { name, type = 'application/octet-stream', token = who?.token } = {}) {
  return api('POST', `/api/v1/uploads${name ? `?name=${encodeURIComponent(name)}` : ''}`, undefined,
    { token, raw: body, headers: { 'content-type': type } });
}

// the raw download: status, headers and bytes
async function download(who, path, headers = {}) {
  const h = { ...headers };
  if (who) h.authorization = `Bearer ${who.token}`;
  const res = await fetch(BASE + path, { headers: h });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

const send = (who, cid, body) => api('POST', `/api/v1/conversations/${cid}/messages`, body, { token: who.token });
const attachmentsOf = async (who) => Number(await sql('SELECT count(*) FROM attachments WHERE uploader_id = :\'p1\'', uid(who)));

before(async () => {
  [ann, ben, eve] = await registerUsers('media', 3, 3);
  const a = await registerUser('media-admin');
  await sql("UPDATE users SET role = 'admin' WHERE id = :'p1'", a.user.id);
  const r = await api('POST', '/api/v1/auth/login', { email: a.email, password: a.password });
  assert.equal(r.status, 200, r.text);
  admin = r.json;
  const c = await api('POST', '/api/v1/conversations', { type: 'group', title: 'files', member_ids: [uid(ben)] },
    { token: ann.token });
  assert.equal(c.status, 201, c.text);
  conv = c.json.conversation;
});

after(() => {
  for (const ws of open) ws.close();
});

test('an upload answers 201 with the attachment; its type comes from the bytes, not the header or the name', async () => {
  const image = png({ comment: 'secret-comment' });
  const r = await upload(ann, image, { name: 'holiday.txt', type: 'text/plain' });
  assert.equal(r.status, 201, r.text);
  const a = r.json.attachment;
  assert.ok(a.id > 0);
  assert.equal(a.url, `/api/v1/attachments/${a.id}`);
  assert.equal(a.content_type, 'image/png');
  assert.equal(a.size, image.length);
  assert.equal(a.name, 'holiday.txt');
  assert.ok(a.thumb_url, 'an image has a thumbnail url');
  // stored once, by the hash of its bytes
  assert.ok(existsSync(blobPath(sha(image))), 'the file is in the store under its SHA-256');

  const text = await upload(ann, Buffer.from('just some notes\nline two\n'), { name: 'notes.png', type: 'image/png' });
  assert.equal(text.status, 201, text.text);
  assert.equal(text.json.attachment.content_type, 'text/plain; charset=utf-8');
  assert.equal(text.json.attachment.thumb_url, undefined);
});

test('a file of a type not on the list is 415 and leaves nothing behind', async () => {
  const before = await attachmentsOf(eve);
  for (const [body, name] of [
    [Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), randomBytes(2000)]), 'photo.png'],
    [Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'), 'x.svg'],
    [Buffer.from('<html><script>alert(1)</script></html>'), 'page.txt'],
  ]) {
    const r = await upload(eve, body, { name, type: 'image/png' });
    assert.equal(r.status, 415, r.text);
    assert.equal(r.json.error.code, 'unsupported_type');
    assert.ok(!existsSync(blobPath(sha(body))), 'a refused file is not stored');
  }
  const empty = await upload(eve, Buffer.alloc(0), { name: 'empty.txt' });
  assert.equal(empty.status, 400, empty.text);
  assert.equal(empty.json.error.code, 'empty_body');
  const badName = await upload(eve, Buffer.from('hello'), { name: '../etc/passwd' });
  assert.equal(badName.status, 400, badName.text);
  assert.equal(await attachmentsOf(eve), before, 'no attachment recorded');
});

test('a body over the cap is 413 in the API error shape; no token is 401', async () => {
  const big = Buffer.alloc(26 * 1024 * 1024, 0x41);
  const r = await upload(eve, big, { name: 'big.txt', type: 'text/plain' });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error.code, 'too_large');

  const anon = await upload(null, Buffer.from('hello'), { name: 'a.txt', token: undefined });
  assert.equal(anon.status, 401, anon.text);
  assert.equal(anon.json.error.code, 'unauthorized');
});

test('an upload past the user\'s quota is 413 quota_exceeded and records nothing', async () => {
  const [fay] = await registerUsers('media-quota', 1, 1);
  // a gigabyte already used (the stack's quota: --media-quota-mb 1024)
  await sql("INSERT INTO attachments (uploader_id, sha256, size, content_type, name) VALUES (:'p1', repeat('a', 64), 1073741824, 'application/pdf', 'big.pdf')", uid(fay));
  const r = await upload(fay, Buffer.from('one byte too many'), { name: 'more.txt' });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error.code, 'quota_exceeded');
  assert.equal(await attachmentsOf(fay), 1);
});

test('attachments travel on messages; only one\'s own uploads, unknown ids are 400 and store nothing', async () => {
  const image = png({ width: 40, height: 30 });
  const up = (await upload(ann, image, { name: 'pic.png', type: 'image/png' })).json.attachment;
  const eves = (await upload(eve, Buffer.from('eve was here'), { name: 'eve.txt' })).json.attachment;

  const last = async () => Number(await sql("SELECT last_seq FROM conversations WHERE id = :'p1'", conv.id));
  const seqBefore = await last();
  for (const attachments of [[eves.id], [999999999], [up.id, up.id], 'x', [0]]) {
    const r = await send(ann, conv.id, { client_msg_id: `bad-${randomBytes(4).toString('hex')}`, text: 'x', attachments });
    assert.equal(r.status, 400, `${JSON.stringify(attachments)}: ${r.text}`);
  }
  assert.equal(await last(), seqBefore, 'no refused send stored a message');

  const ws = await WsClient.connect({ token: ben.token });
  open.add(ws);
  const r = await send(ann, conv.id, { client_msg_id: `ok-${randomBytes(4).toString('hex')}`, text: 'look', attachments: [up.id] });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.json.message.attachments.map((a) => a.id), [up.id]);
  assert.equal(r.json.message.attachments[0].content_type, 'image/png');

  const live = await ws.message((m) => m.type === 'message' && m.message.seq === r.json.message.seq, 'the live message');
  assert.deepEqual(live.message.attachments, r.json.message.attachments);

  const h = await api('GET', `/api/v1/conversations/${conv.id}/messages`, undefined, { token: ben.token });
  const m = h.json.messages.find((x) => x.seq === r.json.message.seq);
  assert.deepEqual(m.attachments, r.json.message.attachments);

  // and in a resync
  const sync = await ws.request({ type: 'sync', cursors: { [conv.id]: r.json.message.seq - 1 }, ref: 'media-sync' },
    (x) => x.ref === 'media-sync');
  assert.equal(sync.type, 'sync', JSON.stringify(sync));
  assert.deepEqual(sync.messages.find((x) => x.seq === r.json.message.seq).attachments, r.json.message.attachments);

  // over WebSocket too
  const ref = `ws-${randomBytes(4).toString('hex')}`;
  const up2 = (await upload(ben, Buffer.from('from ben'), { name: 'b.txt' })).json.attachment;
  ws.sendJson({ type: 'send', conversation_id: conv.id, client_msg_id: ref, text: 'mine', attachments: [up2.id] });
  const ack = await ws.message((x) => x.type === 'ack' && x.client_msg_id === ref, 'the ack');
  const echoed = await ws.message((x) => x.type === 'message' && x.message.seq === ack.seq, 'the message');
  assert.equal(echoed.message.attachments[0].id, up2.id);

  // Ben may download it now (a member), Eve never
  const got = await download(ben, up.url);
  assert.equal(got.status, 200);
  assert.ok(got.body.equals(image));
});

test('a download is 404 to everyone but the uploader and the conversation\'s members, the same as a missing id', async () => {
  const body = Buffer.from('private notes');
  const a = (await upload(ann, body, { name: 'private.txt' })).json.attachment;

  const mine = await download(ann, a.url);
  assert.equal(mine.status, 200);
  assert.ok(mine.body.equals(body));

  const theirs = await download(eve, a.url);
  const missing = await download(eve, '/api/v1/attachments/999999999');
  assert.equal(theirs.status, 404);
  assert.equal(missing.status, 404);
  assert.equal(theirs.body.toString(), missing.body.toString(), 'a stranger cannot tell it exists');
  assert.equal(JSON.parse(theirs.body).error.code, 'not_found');

  const anon = await download(null, a.url);
  assert.equal(anon.status, 401);

  // not before it is sent: Ben is a member of a conversation, but not of
  // one this file went to
  assert.equal((await download(ben, a.url)).status, 404);

  // the store itself is never reachable from outside
  const direct = await download(eve, `/_media/${blobPath(sha(body)).split('/media/')[1]}`);
  assert.equal(direct.status, 404);

  // leaving the conversation ends access
  const c = await api('POST', '/api/v1/conversations', { type: 'group', title: 'short', member_ids: [uid(eve)] },
    { token: ann.token });
  const sent = await send(ann, c.json.conversation.id, { client_msg_id: `l-${randomBytes(4).toString('hex')}`, text: 'f', attachments: [a.id] });
  assert.equal(sent.status, 201, sent.text);
  assert.equal((await download(eve, a.url)).status, 200);
  const gone = await api('DELETE', `/api/v1/conversations/${c.json.conversation.id}/members/${uid(eve)}`, undefined, { token: ann.token });
  assert.ok(gone.status < 300, gone.text);
  assert.equal((await download(eve, a.url)).status, 404);
});

test('nginx serves the bytes: Range, ETag and 304, nosniff, inline images, other files as attachments', async () => {
  const body = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
  const a = (await upload(ann, body, { name: 'alpha bet ü.txt' })).json.attachment;

  const full = await download(ann, a.url);
  assert.equal(full.status, 200);
  assert.equal(full.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(full.headers.get('x-content-type-options'), 'nosniff');
  assert.match(full.headers.get('content-disposition'), /^attachment; filename="alpha bet _+\.txt"; filename\*=UTF-8''alpha%20bet%20%C3%BC\.txt$/);
  assert.match(full.headers.get('cache-control'), /private/);
  assert.equal(full.headers.get('accept-ranges'), 'bytes');
  const etag = full.headers.get('etag');
  assert.ok(etag, 'an ETag');

  const part = await download(ann, a.url, { range: 'bytes=10-15' });
  assert.equal(part.status, 206);
  assert.equal(part.body.toString(), 'abcdef');
  assert.equal(part.headers.get('content-range'), `bytes 10-15/${body.length}`);

  const again = await download(ann, a.url, { 'if-none-match': etag });
  assert.equal(again.status, 304);

  const image = (await upload(ann, png(), { name: 'p.png' })).json.attachment;
  const img = await download(ann, image.url);
  assert.equal(img.status, 200);
  assert.equal(img.headers.get('content-type'), 'image/png');
  assert.match(img.headers.get('content-disposition'), /^inline; /);
});

test('a thumbnail is made once, off the request, as a JPEG without the original\'s metadata', async () => {
  const image = png({ width: 900, height: 600, comment: 'gps-secret-here' });
  const a = (await upload(ann, image, { name: 'big.png' })).json.attachment;

  // until it is made, the thumbnail url answers the original
  const early = await download(ann, a.thumb_url);
  assert.equal(early.status, 200);

  await waitFor('the thumbnail', async () =>
    (await sql("SELECT thumb_state FROM attachments WHERE id = :'p1'", a.id)) === 'ready', { timeout: 30000 });
  const [w, h] = (await sql("SELECT width || ' ' || height FROM attachments WHERE id = :'p1'", a.id)).split(' ').map(Number);
  assert.ok(w <= 320 && h <= 320 && w > 0, `${w}x${h}`);

  const t = await download(ann, a.thumb_url);
  assert.equal(t.status, 200);
  assert.equal(t.headers.get('content-type'), 'image/jpeg');
  assert.deepEqual([...t.body.subarray(0, 3)], [0xff, 0xd8, 0xff]);
  assert.ok(!t.body.includes('gps-secret-here'), 'metadata stripped');
  assert.ok(t.body.length < image.length);

  // a declared 30000 x 30000 image is never decoded: its thumbnail fails
  const bomb = (await upload(ann, png({ width: 8, height: 8, declare: { width: 30000, height: 30000 } }), { name: 'bomb.png' })).json.attachment;
  await waitFor('the bomb refused', async () =>
    (await sql("SELECT thumb_state FROM attachments WHERE id = :'p1'", bomb.id)) === 'failed', { timeout: 30000 });
});

test('book covers: admins only, images only, sizes made once and in the book\'s JSON', async () => {
  const isbn = `978${String(Date.now()).slice(-9)}${Math.floor(Math.random() * 10)}`;
  const bookId = Number(await sql(
    "INSERT INTO books (isbn13, title, price_cents) VALUES (:'p1', 'Covered', 1234) RETURNING id", isbn));
  const path = `/api/v1/admin/books/${bookId}/cover`;
  const put = (who, body, p = path) => api('PUT', p, undefined, { token: who.token, raw: body, headers: { 'content-type': 'image/png' } });

  // warm the cache: the cover must show after the admin's 200 all the same
  const warm = await api('GET', `/api/v1/books/${bookId}`);
  assert.equal(warm.status, 200, warm.text);
  assert.equal(warm.json.book.cover_url, null);

  assert.equal((await put(ann, png())).status, 403);
  const text = await put(admin, Buffer.from('not an image'));
  assert.equal(text.status, 415, text.text);
  const missing = await put(admin, png(), '/api/v1/admin/books/999999999/cover');
  assert.equal(missing.status, 404, missing.text);
  const bomb = await put(admin, png({ width: 8, height: 8, declare: { width: 30000, height: 30000 } }));
  assert.equal(bomb.status, 400, bomb.text);
  assert.equal(bomb.json.error.code, 'image_too_large');
  assert.equal(await sql("SELECT coalesce(cover_url, '') FROM books WHERE id = :'p1'", bookId), '');

  const r = await put(admin, png({ width: 800, height: 1200 }));
  assert.equal(r.status, 200, r.text);
  assert.match(r.json.book.cover_url, /^\/media\/covers\/[0-9a-f]{64}-l\.jpg$/);
  assert.match(r.json.book.cover_thumb_url, /^\/media\/covers\/[0-9a-f]{64}-s\.jpg$/);

  const detail = await api('GET', `/api/v1/books/${bookId}`);
  assert.equal(detail.json.book.cover_url, r.json.book.cover_url);

  const img = await download(null, r.json.book.cover_url);
  assert.equal(img.status, 200);
  assert.equal(img.headers.get('content-type'), 'image/jpeg');
  assert.match(img.headers.get('cache-control'), /immutable/);
  const small = await download(null, r.json.book.cover_thumb_url);
  assert.equal(small.status, 200);
  assert.ok(small.body.length < img.body.length);
});

test('demo covers are drawn (not downloaded), published and recorded, and a re-run draws only what is missing', async () => {
  // a book of its own, with the lowest id among those without a cover
  await sql('UPDATE books SET cover_url = \'/media/covers/none\', cover_sha256 = repeat(\'0\', 64) WHERE cover_url IS NULL');
  const isbn = `978${String(Date.now()).slice(-9)}${Math.floor(Math.random() * 10)}`;
  const bookId = await sql("INSERT INTO books (isbn13, title, price_cents) VALUES (:'p1', 'A Drawn & Quartered Tale', 500) RETURNING id", isbn);
  const run = () => spawnSync(process.env.BACKEND_BIN ?? 'backend/chat-backend',
    ['--log-level', 'warn', '--pg', process.env.CHAT_PG_CONNINFO, '--media-root', path.resolve(RUN_DIR, 'media'), 'demo-covers', '5'],
    { encoding: 'utf8', timeout: 60000 });

  const first = run();
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /drew 1 of 1/);
  const url = await sql("SELECT cover_url FROM books WHERE id = :'p1'", bookId);
  assert.match(url, /^\/media\/covers\/[0-9a-f]{64}-l\.jpg$/);
  const img = await download(null, url);
  assert.equal(img.status, 200);
  assert.deepEqual([...img.body.subarray(0, 3)], [0xff, 0xd8, 0xff]);
  const book = await api('GET', `/api/v1/books/${bookId}`);
  assert.equal(book.json.book.cover_url, url);

  const again = run();
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /drew 0 of 0/);
});

// the other suites' books get their cover state back
after(() => sql("UPDATE books SET cover_url = NULL, cover_sha256 = NULL WHERE cover_url = '/media/covers/none'"));
