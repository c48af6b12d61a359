// The entry page (index.html) as a newcomer and a returning user meet it,
// at 390 px and 1280 px: the two tabs (click and arrow keys, #register
// opening the second), labelled fields; a wrong password and a taken
// email answered in words, the latter offering "Sign in instead" with the
// address filled in; the submit button busy while its request is held;
// ?next= saying where signing in leads and going there after it; a new
// account landing on the signed-in view with the shared header.  Nothing
// wider than the phone; no browser errors but the refusals asked for.
// Screenshots artifacts/entry-*.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, DESKTOP, PHONE, launch, newPage, registerUsers, screenshot } from './lib.mjs';

let browser;
let user;

before(async () => {
  [user] = await registerUsers('Entry', 1, 1);
  browser = await launch();
});

after(async () => { await browser?.close(); });

const shown = (page, sel) => page.$eval(sel, (e) => !e.closest('.hidden'));
const message = (page) => page.waitForFunction(() => document.querySelector('#message').textContent)
  .then(() => page.$eval('#message', (e) => e.textContent));
// the browser logs each refused request it was asked to make: those are
// the test's, anything else is a problem
const unexpected = (page, allowed) => page.problems.filter((p) => !allowed.some((re) => re.test(p)));

for (const [name, viewport] of [['phone', PHONE], ['desktop', DESKTOP]]) {
  test(`entry page at ${viewport.width} px: tabs, labelled fields, errors in words, Sign in instead`, async () => {
    const page = await newPage(browser);
    await page.setViewport(viewport);
    await page.goto(`${BASE}/index.html`);

    assert.equal(await shown(page, '#login'), true);
    assert.equal(await shown(page, '#register'), false);
    assert.equal(await page.$eval('#tab-login', (e) => e.getAttribute('aria-selected')), 'true');
    // every field has a visible label around it
    const unlabelled = await page.$$eval('.panel input', (els) => els.filter((e) => !e.closest('label')?.textContent.trim()).length);
    assert.equal(unlabelled, 0);
    await screenshot(page, `entry-${name}`);

    // a wrong password
    await page.type('#login input[name=email]', user.email);
    await page.type('#login input[name=password]', 'not the password');
    await page.click('#login button');
    assert.equal(await message(page), 'Wrong email or password.');
    assert.equal(await page.$eval('#login button', (b) => b.disabled), false);

    // the arrow key moves to the other tab; a taken email offers to sign in
    await page.focus('#tab-login');
    await page.keyboard.press('ArrowRight');
    assert.equal(await shown(page, '#register'), true);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-register');
    assert.equal(await page.$eval('#message', (e) => e.textContent), '', 'switching tabs clears the error');
    await page.type('#register input[name=display_name]', 'Someone Else');
    await page.type('#register input[name=email]', user.email);
    await page.type('#register input[name=password]', 'long enough password');
    await page.click('#register button.primary');
    assert.match(await message(page), /^An account with this email already exists\. Sign in instead$/);
    await screenshot(page, `entry-${name}-taken`);
    await page.click('#message button');
    assert.equal(await shown(page, '#login'), true);
    assert.equal(await page.$eval('#login input[name=email]', (e) => e.value), user.email);
    assert.equal(await page.evaluate(() => document.activeElement.name), 'password');

    const [wide, fits] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert.ok(wide <= fits, `nothing wider than the screen: ${wide} > ${fits}`);
    assert.deepEqual(unexpected(page, [/status of 401/, /status of 409/]), []);
  });
}

test('the button is busy while signing in; ?next= says where it leads and goes there', async () => {
  const page = await newPage(browser);
  await page.setViewport(DESKTOP);
  const held = [];
  await page.setRequestInterception(true);
  page.on('request', (req) => (/\/auth\/login$/.test(req.url()) ? held.push(req) : req.continue()));
  await page.goto(`${BASE}/index.html?next=/store.html`);
  assert.equal(await page.$eval('#next-note', (e) => e.textContent),
    'Sign in or create an account to continue to the bookstore.');
  await page.type('#login input[name=email]', user.email);
  await page.type('#login input[name=password]', user.password);
  await page.click('#login button');
  await page.waitForFunction(() => document.querySelector('#login button').disabled);
  assert.equal(await page.$eval('#login button', (b) => b.textContent), 'Signing in…');
  await page.waitForFunction((n) => n, {}, held.length);
  await Promise.all([page.waitForNavigation(), held[0].continue()]);
  assert.equal(new URL(page.url()).pathname, '/store.html');
  assert.deepEqual(page.problems, []);
});

test('#register opens the second tab; a new account lands on the signed-in view', async () => {
  const page = await newPage(browser);
  await page.setViewport(PHONE);
  await page.goto(`${BASE}/index.html#register`);
  assert.equal(await shown(page, '#register'), true);
  assert.equal(await page.$eval('#tab-register', (e) => e.getAttribute('aria-selected')), 'true');
  const email = `entry-new-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
  await page.type('#register input[name=display_name]', 'Newcomer');
  await page.type('#register input[name=email]', email);
  await page.type('#register input[name=password]', 'a passphrase of words');
  await page.click('#register button.primary');
  await page.waitForFunction(() => !document.querySelector('#signed-in').classList.contains('hidden'));
  assert.equal(await page.$eval('#hello', (e) => e.textContent), 'Welcome back, Newcomer');
  assert.equal(await page.$eval('header.top #me', (e) => e.textContent), 'Newcomer');
  assert.equal(await page.$eval('#chat-summary', (e) => e.textContent), 'Start a conversation');
  assert.ok(await page.evaluate(() => sessionStorage.getItem('token')));
  assert.deepEqual(page.problems, []);
});
