// Loading and empty states of the chat app, at 390 px and on a desktop.
// The page's requests are held at a gate (puppeteer's request
// interception) so each wait can be seen: the conversation list's
// skeleton, a conversation's history (grey bubbles), a message search, a
// look-up of a person and an upload each show a spinner with words while
// their request is held; once it is let through, the empty states say
// what there is to do.  Screenshots go to artifacts/loading-*.png; any
// browser error fails the test.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BASE, DESKTOP, PHONE, launch, newPage, registerUsers, screenshot } from './lib.mjs';


let browser;
let users;

before(async () => {
  users = await registerUsers('Loader', 4, 4);
  browser = await launch();
});

after(async () => { await browser?.close(); });

// a signed-in page whose requests matching a held pattern wait until
// released; page.gate.hold(re) / page.gate.release() / page.gate.held()
async function gatedPage(who, viewport) {
  const page = await newPage(browser);
  await page.setViewport(viewport);
  const gate = { patterns: [], waiting: [] };
  await page.setRequestInterception(true);
  page.on('request', (req) => {
    if (gate.patterns.some((re) => re.test(req.url()))) gate.waiting.push(req);
    else req.continue();
  });
  page.gate = {
    hold: (re) => gate.patterns.push(re),
    held: () => gate.waiting.length,
    release: () => {
      gate.patterns = [];
      for (const req of gate.waiting.splice(0)) req.continue();
    },
  };
  await page.goto(`${BASE}/index.html`);
  await page.evaluate((t) => sessionStorage.setItem('token', t), who.token);
  return page;
}

async function until(what, fn) {
  for (let i = 0; i < 300; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const visible = (page, sel) => page.$eval(sel, (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length))
  .catch(() => false);

for (const [name, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
  test(`${name}: every wait shows a spinner with words, every empty list says what to do`, async () => {
    const [me, other] = name === 'phone' ? users.slice(0, 2) : users.slice(2, 4);
    const page = await gatedPage(me, viewport);

    // the conversation list's first load: skeleton rows and words
    page.gate.hold(/\/api\/v1\/conversations$/);
    await page.goto(`${BASE}/chat.html`);
    await until('the list request to be held', () => page.gate.held() > 0);
    assert.ok(await visible(page, '#list-loading .spinner'));
    assert.equal(await page.$$eval('#list-loading .skeleton-list li', (l) => l.length), 3);
    assert.match(await page.$eval('#list-loading [role=status]', (e) => e.textContent), /Loading conversations/);
    await screenshot(page, `loading-${name}-list`);
    page.gate.release();
    await page.waitForSelector('#list-loading', { hidden: true });
    // nobody to talk to yet: the empty list says how to start
    assert.match(await page.$eval('#list-empty', (e) => e.textContent), /No conversations yet/);
    assert.ok(await visible(page, '#list-empty'));

    // looking someone up: a spinner in the choices until the answer
    page.gate.hold(/\/api\/v1\/users\?email=/);
    await page.click('#new-chat summary');
    await page.type('#direct-who', other.email);
    await page.click('#new-direct button');
    await until('the look-up to be held', () => page.gate.held() > 0);
    assert.match(await page.$eval('#choices .busy', (e) => e.textContent), /Looking for/);
    assert.ok(await visible(page, '#choices .spinner'));
    await screenshot(page, `loading-${name}-lookup`);
    page.gate.release();

    // the new conversation opens; hold its history on the next opening
    await page.waitForSelector('#composer:not(.hidden)');
    await page.waitForSelector('#no-messages:not(.hidden)');
    assert.match(await page.$eval('#no-messages', (e) => e.textContent), /No messages yet/);
    const cid = Number(await page.evaluate(() => new URLSearchParams(location.search).get('c')));
    assert.ok(cid > 0);

    page.gate.hold(/\/messages\?/);
    await page.goto(`${BASE}/chat.html?c=${cid}`);
    await until('the history request to be held', () => page.gate.held() > 0);
    await page.waitForSelector('#messages li.skeleton');
    assert.equal(await page.$eval('#messages', (e) => e.getAttribute('aria-busy')), 'true');
    assert.match(await page.$eval('#messages li.busy', (e) => e.textContent), /Loading messages/);
    assert.ok(await visible(page, '#messages .spinner'));
    assert.ok(!(await visible(page, '#no-messages')), 'no "empty" while it is loading');
    await screenshot(page, `loading-${name}-history`);
    page.gate.release();
    await page.waitForSelector('#messages li.skeleton', { hidden: true });
    await page.waitForSelector('#no-messages:not(.hidden)');
    assert.equal(await page.$eval('#messages', (e) => e.getAttribute('aria-busy')), null);

    // an upload: a spinner beside the file's name until it is stored
    const dir = mkdtempSync(path.join(tmpdir(), 'loading-'));
    const file = path.join(dir, 'notes.txt');
    writeFileSync(file, 'meeting notes\n');
    page.gate.hold(/\/api\/v1\/uploads/);
    const input = await page.$('#attach-file');
    await input.uploadFile(file);
    await until('the upload to be held', () => page.gate.held() > 0);
    assert.match(await page.$eval('#upload-status .busy', (e) => e.textContent), /notes\.txt/);
    await screenshot(page, `loading-${name}-upload`);
    page.gate.release();
    await page.waitForSelector('#upload-status .busy', { hidden: true });
    await page.waitForFunction(() => [...document.querySelectorAll('#messages li.msg')].length === 1);

    // a search: a spinner, then the empty state in words
    if (name === 'phone') {
      await page.click('#back');
      await page.waitForSelector('#search-q', { visible: true });
    }
    page.gate.hold(/\/api\/v1\/messages\/search/);
    await page.type('#search-q', 'zyzzyva');
    await page.keyboard.press('Enter');
    await until('the search to be held', () => page.gate.held() > 0);
    assert.match(await page.$eval('#results li.busy', (e) => e.textContent), /Searching for “zyzzyva”/);
    assert.ok(!(await visible(page, '#results-empty')));
    await screenshot(page, `loading-${name}-search`);
    page.gate.release();
    await page.waitForSelector('#results-empty:not(.hidden)');
    assert.match(await page.$eval('#results-empty', (e) => e.textContent), /No messages found/);
    assert.equal(await page.$$eval('#results li', (l) => l.length), 0);
    await screenshot(page, `loading-${name}-search-empty`);

    // nothing wider than the screen at any point on the phone
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(wide <= 0, `the page scrolls sideways by ${wide}px`);
    assert.deepEqual(page.problems, [], 'no browser errors');
  });
}
