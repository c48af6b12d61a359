// A group invitation in the chat app, at 390 px and on a desktop: someone
// the user has no chat with makes a group with them in it; the user's
// list marks it "(request)", the open group says it is an invitation with
// Accept and Decline; Accept clears it (and the creator's group no longer
// lists them as a request), Decline leaves the group.  Screenshots go to
// artifacts/invite-*.png; any browser error fails the test.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, PHONE, api, clickFresh, launch, pageAs, registerUsers, screenshot } from './lib.mjs';


let browser;
let users;

before(async () => {
  users = await registerUsers('Inviter', 4, 4);
  browser = await launch();
});

after(async () => { await browser?.close(); });

async function groupOf(owner, title, member) {
  const r = await api('POST', '/api/v1/conversations', { type: 'group', title, member_ids: [member.user.id] },
    { token: owner.token });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.json.conversation.requests, [member.user.id]);
  return r.json.conversation;
}

for (const [name, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
  test(`${name}: an invitation to a group is accepted or declined from the app`, async () => {
    const [owner, guest] = name === 'phone' ? users.slice(0, 2) : users.slice(2, 4);
    const joinIt = await groupOf(owner, `Join ${name}`, guest);
    const leaveIt = await groupOf(owner, `Leave ${name}`, guest);

    const page = await pageAs(browser, guest, '/chat.html', viewport);
    page.on('dialog', (d) => d.accept());   // "Leave …?"
    const row = (cid) => `#conversations li[data-conv-id="${cid}"]`;
    await page.waitForSelector(`${row(joinIt.id)} .request`);
    await page.waitForSelector(`${row(leaveIt.id)} .request`);

    await clickFresh(page, row(joinIt.id));
    await page.waitForSelector('#conv-actions:not(.hidden) #accept');
    assert.match(await page.$eval('#conv-actions', (e) => e.textContent), /invited to this group/);
    assert.ok(await page.$('#conv-actions #decline'));
    await screenshot(page, `invite-${name}`);
    await page.click('#accept');
    await page.waitForSelector('#conv-actions', { hidden: true });
    const seen = await api('GET', '/api/v1/conversations', undefined, { token: owner.token });
    assert.deepEqual(seen.json.conversations.find((c) => c.id === joinIt.id).requests, []);

    if (name === 'phone') {
      await page.click('#back');
      await page.waitForSelector(row(leaveIt.id), { visible: true });
    }
    await clickFresh(page, row(leaveIt.id));
    await page.waitForSelector('#conv-actions:not(.hidden) #decline');
    await page.click('#decline');
    await page.waitForFunction((sel) => !document.querySelector(sel), {}, row(leaveIt.id));
    const after = await api('GET', '/api/v1/conversations', undefined, { token: owner.token });
    assert.ok(!after.json.conversations.find((c) => c.id === leaveIt.id).members.includes(guest.user.id));

    assert.deepEqual(page.problems, [], 'no browser errors');
  });
}
