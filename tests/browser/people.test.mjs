// The chat app as people use it, at a phone's width (390 px) and on a
// desktop: names and avatars instead of ids, one pane at a time on the
// phone with nothing scrolling sideways and the composer in view, long
// words wrapped, timestamps and day separators, the list's last-message
// preview and time, presence right after a load, multi-line messages,
// editing and deleting from the app (seen live by the other person),
// message search with highlighted snippets and jump-to-message, the
// unread count in the tab title, a reload reopening the conversation,
// group members added and removed, and the landing page.  Screenshots
// go to artifacts/; any browser error fails the test.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WsClient } from '../integration/ws.mjs';
import { api, launch, pageAs, registerUsers, shownTexts, waitState, waitTexts, say, screenshot } from './lib.mjs';

const PHONE = { width: 390, height: 844, isMobile: true, hasTouch: true };
const DESKTOP = { width: 1280, height: 800 };

let browser;
let ann;
let ben;
let cy;
const pages = [];

before(async () => {
  [ann, ben, cy] = await registerUsers('Webber', 3, 3);
  browser = await launch();
});

after(async () => { await browser?.close(); });

const uid = (u) => u.user.id;
const http = (method, path, body, who) => api(method, path, body, { token: who.token });

async function open(who, query, viewport = DESKTOP) {
  const page = await pageAs(browser, who, `/chat.html${query}`, viewport);
  pages.push(page);
  return page;
}

function noProblems(page) {
  assert.deepEqual(page.problems, [], 'no browser errors');
}

async function group(a, members, title) {
  const r = await http('POST', '/api/v1/conversations', { type: 'group', title, member_ids: members.map(uid) }, a);
  assert.equal(r.status, 201, r.text);
  return r.json.conversation;
}

async function send(who, cid, text) {
  const r = await http('POST', `/api/v1/conversations/${cid}/messages`, { client_msg_id: `b-${Date.now()}-${Math.random()}`, text }, who);
  assert.equal(r.status, 201, r.text);
  return r.json.message;
}

// nothing wider than the viewport, and el's box inside it
async function fitsPhone(page, selector) {
  return page.evaluate((sel) => {
    const vw = document.documentElement.clientWidth;
    const wide = document.documentElement.scrollWidth;
    const r = document.querySelector(sel).getBoundingClientRect();
    return { vw, wide, left: r.left, right: r.right, bottom: r.bottom, vh: innerHeight };
  }, selector);
}

test('at 390 px: the list, then one conversation at a time; no sideways scroll, composer in view, long words wrap', async () => {
  const conv = await group(ann, [ben], 'Phone group');
  await send(ben, conv.id, 'hello from ben');
  const page = await open(ann, '', PHONE);
  await page.waitForSelector(`#conversations li[data-conv-id="${conv.id}"]`);
  // the list alone: the pane is not shown
  assert.equal(await page.$eval('.pane', (e) => getComputedStyle(e).display), 'none');
  let box = await fitsPhone(page, '#conversations');
  assert.ok(box.wide <= box.vw, `the page is ${box.wide}px wide in a ${box.vw}px viewport`);
  // the list shows the title, the preview with the sender's name (looked
  // up after the list is drawn: '…' until it arrives), and a time
  await page.waitForFunction((sel) => !document.querySelector(sel).textContent.startsWith('…'),
    {}, `#conversations li[data-conv-id="${conv.id}"] .preview`);
  const item = await page.$eval(`#conversations li[data-conv-id="${conv.id}"]`, (li) => ({
    title: li.querySelector('.conv-title').textContent,
    preview: li.querySelector('.preview').textContent,
    time: li.querySelector('.conv-time').textContent,
  }));
  assert.equal(item.title, 'Phone group');
  assert.equal(item.preview, `${ben.user.display_name}: hello from ben`);
  assert.match(item.time, /\d/);
  await screenshot(page, 'phone-list');

  await page.click(`#conversations li[data-conv-id="${conv.id}"]`);
  await page.waitForSelector('#composer:not(.hidden)');
  assert.equal(await page.$eval('aside', (e) => getComputedStyle(e).display), 'none', 'the list is hidden on a phone');
  await waitState(page, 'ws');
  const long = 'W'.repeat(400);
  await say(page, long);
  await waitTexts(page, [long]);
  box = await fitsPhone(page, '#send');
  assert.ok(box.wide <= box.vw, `the page is ${box.wide}px wide in a ${box.vw}px viewport`);
  assert.ok(box.right <= box.vw && box.left >= 0, `Send is in view: ${JSON.stringify(box)}`);
  assert.ok(box.bottom <= box.vh, `the composer is on screen: ${JSON.stringify(box)}`);
  const msg = await fitsPhone(page, '#messages li.msg:last-child');
  assert.ok(msg.right <= msg.vw, `the long word wraps inside the screen: ${JSON.stringify(msg)}`);
  // the sender's name above their message, a day separator, a time
  assert.equal(await page.$eval('#messages li.msg:not(.mine) .sender', (e) => e.textContent), ben.user.display_name);
  assert.equal(await page.$eval('#messages li.day', (e) => e.textContent), 'Today');
  assert.match(await page.$eval('#messages li.msg time', (e) => e.textContent), /\d/);
  await screenshot(page, 'phone-conversation');

  // back to the list
  await page.click('#back');
  await page.waitForFunction(() => getComputedStyle(document.querySelector('aside')).display !== 'none');
  noProblems(page);
});

test('names and avatars everywhere, never #ids; presence is right after a load', async () => {
  // Ben accepts Ann's direct chat, so each may see the other's presence
  const r = await http('POST', '/api/v1/conversations', { type: 'direct', user_id: uid(ben) }, ann);
  const conv = r.json.conversation;
  assert.equal((await http('POST', `/api/v1/conversations/${conv.id}/accept`, undefined, ben)).status, 200);
  const benOnline = await WsClient.connect({ token: ben.token });
  try {
    // wait until the server has Ben online
    for (let i = 0; i < 100; i++) {
      const p = await http('GET', `/api/v1/users/${uid(ben)}/presence`, undefined, ann);
      if (p.json?.status === 'online') break;
      await new Promise((res) => setTimeout(res, 200));
    }
    const page = await open(ann, `?c=${conv.id}`);
    await page.waitForFunction((id, name) => document.querySelector(`#conversations li[data-conv-id="${id}"] .conv-title`)?.textContent === name,
      {}, conv.id, ben.user.display_name);
    await page.waitForFunction((id) => document.querySelector(`#conversations li[data-conv-id="${id}"] .dot.online`), {}, conv.id);
    assert.equal(await page.$eval('#conv-title', (e) => e.textContent), ben.user.display_name);
    assert.equal(await page.$eval('#conv-sub', (e) => e.textContent), 'online');
    assert.equal(await page.$eval(`#conversations li[data-conv-id="${conv.id}"] .avatar`, (e) => e.textContent.trim()), 'W');
    const text = await page.evaluate(() => document.body.innerText);
    assert.ok(!/#\d+/.test(text), `no "#id" on the page: ${text.slice(0, 300)}`);
    noProblems(page);
  } finally {
    benOnline.close();
  }
});

test('Shift+Enter breaks the line, Enter sends; edit and delete show live on the other side', async () => {
  const conv = await group(ann, [ben], 'Edits');
  const pa = await open(ann, `?c=${conv.id}`);
  const pb = await open(ben, `?c=${conv.id}`);
  await waitState(pa, 'ws');
  await waitState(pb, 'ws');
  await pa.waitForSelector('#composer:not(.hidden)');
  await pa.type('#text', 'line one');
  await pa.keyboard.down('Shift');
  await pa.keyboard.press('Enter');
  await pa.keyboard.up('Shift');
  await pa.type('#text', 'line two');
  await pa.keyboard.press('Enter');
  await waitTexts(pb, ['line one\nline two']);
  assert.equal(await pa.$eval('#text', (e) => e.value), '', 'sent: the box is empty');

  // edit: hover shows the actions, the composer takes the text
  await pa.waitForSelector('#messages li.mine:not([data-seq=""])');
  await pa.hover('#messages li.mine');
  await pa.click('#messages li.mine .edit');
  assert.equal(await pa.$eval('#text', (e) => e.value), 'line one\nline two');
  await pa.$eval('#text', (e) => { e.value = ''; });
  await pa.type('#text', 'line one, edited');
  await pa.keyboard.press('Enter');
  await waitTexts(pb, ['line one, edited']);
  await pb.waitForFunction(() => document.querySelector('#messages li.msg .edited'));
  assert.ok(!(await shownTexts(pb)).includes('line one\nline two'), 'the old text is gone');

  // delete: confirmed, a tombstone on both sides
  pa.once('dialog', (d) => d.accept());
  await pa.hover('#messages li.mine');
  await pa.click('#messages li.mine .delete');
  await waitTexts(pb, ['This message was deleted']);
  await waitTexts(pa, ['This message was deleted']);
  assert.equal(await pa.$$eval('#messages li.mine .edit', (b) => b.length), 0, 'a deleted message cannot be edited');
  // the list's preview follows
  await pb.waitForFunction((id) => /deleted/.test(document.querySelector(`#conversations li[data-conv-id="${id}"] .preview`).textContent), {}, conv.id);
  await screenshot(pb, 'edited-and-deleted');
  noProblems(pa);
  noProblems(pb);
});

test('search finds a message, highlights the words, and jumps to it', async () => {
  const conv = await group(ben, [ann], 'Search me');
  const target = await send(ben, conv.id, 'the <b>xylophone</b> rehearsal is on Friday');
  for (let i = 0; i < 40; i++) await send(ben, conv.id, `filler ${i}`);
  const page = await open(ann, '');
  await page.waitForSelector(`#conversations li[data-conv-id="${conv.id}"]`);
  await page.type('#search-q', 'xyloph');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#results li[data-seq]');
  const hit = await page.$eval('#results li[data-seq]', (li) => ({
    mark: li.querySelector('mark')?.textContent,
    text: li.querySelector('.snippet').textContent,
    tags: li.querySelectorAll('.snippet b').length,
  }));
  assert.equal(hit.mark, 'xylophone');
  assert.match(hit.text, /<b>/, 'the message\'s own markup is shown as text');
  assert.equal(hit.tags, 0, 'and never parsed');
  await screenshot(page, 'search-results');
  await page.click('#results li[data-seq]');
  await page.waitForSelector(`#messages li.found[data-seq="${target.seq}"]`);
  noProblems(page);
});

test('the tab title counts unread messages; a reload reopens the open conversation', async () => {
  const quiet = await group(cy, [ann], 'Quiet one');
  const busy = await group(cy, [ann], 'Busy one');
  const page = await open(ann, `?c=${quiet.id}`);
  await waitState(page, 'ws');
  await page.waitForSelector('#composer:not(.hidden)');
  const count = () => page.evaluate(() => Number(/^\((\d+)\) /.exec(document.title)?.[1] ?? 0));
  const before = await count();
  await send(cy, busy.id, 'are you there?');
  await send(cy, busy.id, 'hello?');
  await page.waitForFunction((n) => document.title.startsWith(`(${n}) `), {}, before + 2);
  // reload without ?c=: this tab remembers
  await page.goto(page.url().replace(/\?.*$/, ''));
  await page.waitForFunction((t) => document.querySelector('#conv-title')?.textContent === t, {}, 'Quiet one');
  noProblems(page);
});

test('a group admin sees the members, adds one by e-mail and removes them', async () => {
  const conv = await group(ann, [ben], 'Members');
  const page = await open(ann, `?c=${conv.id}`, PHONE);
  await page.waitForSelector('#members-toggle:not(.hidden)');
  await page.click('#members-toggle');
  await page.waitForFunction((n) => document.querySelectorAll('#member-list li').length === 2
    && [...document.querySelectorAll('#member-list .name')].some((e) => e.textContent === n), {}, ben.user.display_name);
  await page.type('#member-who', cy.email);
  await page.click('#member-add button');
  await page.waitForFunction((id) => document.querySelector(`#member-list li[data-user-id="${id}"]`), {}, uid(cy));
  assert.equal(await page.$eval('#conv-sub', (e) => e.textContent), '3 members');
  await screenshot(page, 'phone-members');
  await page.click(`#member-list li[data-user-id="${uid(cy)}"] .remove`);
  await page.waitForFunction((id) => !document.querySelector(`#member-list li[data-user-id="${id}"]`), {}, uid(cy));
  const r = await http('GET', '/api/v1/conversations', undefined, ann);
  assert.deepEqual(r.json.conversations.find((c) => c.id === conv.id).members.sort(), [uid(ann), uid(ben)].sort());
  noProblems(page);
});

test('a new direct chat is started by e-mail; the landing page says what waits', async () => {
  const page = await open(cy, '');
  await page.waitForSelector('#list-loading.hidden');
  await page.click('#new-chat summary');
  await page.type('#direct-who', ben.email);
  await page.click('#new-direct button');
  await page.waitForFunction((n) => document.querySelector('#conv-title')?.textContent === n, {}, ben.user.display_name);
  await say(page, 'hi ben, it is cy');
  await waitTexts(page, ['hi ben, it is cy']);
  noProblems(page);

  const home = await pageAs(browser, ben, '/index.html', PHONE);
  await home.waitForFunction(() => /request|unread/.test(document.querySelector('#chat-summary')?.textContent ?? ''));
  assert.match(await home.$eval('#hello', (e) => e.textContent), new RegExp(ben.user.display_name));
  const w = await home.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  assert.ok(w[0] <= w[1], `the landing page fits the phone: ${w}`);
  await screenshot(home, 'phone-landing');
  noProblems(home);
});
