// Sending an image in the chat: Alice picks a file with the attach
// button, the upload goes through, and both windows show the message
// with the thumbnail inline (fetched with the token, shown from a blob:
// URL); a text file shows as a chip.  At phone width too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { png } from '../integration/media.mjs';
import { api, launch, pageAs, registerUsers, waitState, waitTexts, screenshot } from './lib.mjs';

let browser;
let alice;
let bob;

before(async () => {
  [alice, bob] = await registerUsers('browser-media', 2, 2);
  browser = await launch();
});

after(async () => { await browser?.close(); });

// an <img> inside a message that has loaded with real pixels
const imageShown = (page) => page.waitForFunction(() => [...document.querySelectorAll('#messages .att-image')]
  .some((i) => i.complete && i.naturalWidth > 0 && i.src.startsWith('blob:')), { timeout: 40000 });

test('an image sent from the attach button shows inline on both sides', async () => {
  const r = await api('POST', '/api/v1/conversations', { type: 'group', title: 'pictures', member_ids: [bob.user.id] },
    { token: alice.token });
  assert.equal(r.status, 201, r.text);
  const conv = r.json.conversation;

  const dir = mkdtempSync(path.join(tmpdir(), 'media-'));
  const imageFile = path.join(dir, 'sunset.png');
  writeFileSync(imageFile, png({ width: 300, height: 200 }));
  const textFile = path.join(dir, 'notes.txt');
  writeFileSync(textFile, 'meeting notes\n');

  const pa = await pageAs(browser, alice, `/chat.html?c=${conv.id}`);
  const pb = await pageAs(browser, bob, `/chat.html?c=${conv.id}`);
  await waitState(pa, 'ws');
  await waitState(pb, 'ws');
  await pa.waitForSelector('#composer:not(.hidden)');

  const input = await pa.$('#attach-file');
  assert.ok(await pa.$('#attach'), 'an attach button');
  await input.uploadFile(imageFile);
  await waitTexts(pa, ['sunset.png']);
  await waitTexts(pb, ['sunset.png']);
  await imageShown(pa);
  await imageShown(pb);

  await input.uploadFile(textFile);
  await pb.waitForFunction(() => [...document.querySelectorAll('#messages .att-chip')]
    .some((c) => c.textContent.includes('notes.txt')), { timeout: 40000 });
  await screenshot(pb, 'chat-attachments');

  // a thumbnail never widens its message past the pane at phone width
  await pb.setViewport({ width: 390, height: 800 });
  await screenshot(pb, 'chat-attachments-phone');
  const wider = await pb.evaluate(() => [...document.querySelectorAll('#messages .att-image')]
    .filter((i) => i.getBoundingClientRect().width > i.closest('li').getBoundingClientRect().width + 1).length);
  assert.equal(wider, 0, 'an image is wider than its message');

  assert.deepEqual([...pa.problems, ...pb.problems], []);
  await pa.browserContext().close();
  await pb.browserContext().close();
});
