// Shared by the browser tests: one headless Chromium (Debian's, driven by
// the pinned puppeteer-core), pages signed in as a given user, and small
// waits on the DOM.  The API helpers come from the integration suite.

import puppeteer from 'puppeteer-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE, api, registerUsers } from '../integration/lib.mjs';

export { BASE, api, registerUsers };

// the two widths the chat is judged at: a phone's and a desktop's
export const PHONE = { width: 390, height: 844, isMobile: true, hasTouch: true };
export const DESKTOP = { width: 1280, height: 800 };

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');

export async function launch() {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

// a page in its own browser context (its own storage: a separate "window"
// of a separate person), its browser errors collected in page.problems
export async function newPage(browser) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  page.setDefaultTimeout(30000);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.problems = problems;
  return page;
}

// a new page signed in by putting the token where index.html would, then
// opened at path
export async function pageAs(browser, who, pathAndQuery, viewport) {
  const page = await newPage(browser);
  if (viewport) await page.setViewport(viewport);
  await page.goto(`${BASE}/index.html`);
  await page.evaluate((t) => sessionStorage.setItem('token', t), who.token);
  await page.goto(`${BASE}${pathAndQuery}`);
  return page;
}

// the texts of the messages shown in the open conversation, in DOM order
export function shownTexts(page) {
  return page.$$eval('#messages li .text', (els) => els.map((e) => e.textContent));
}

export function connState(page) {
  return page.$eval('#conn-state', (e) => e.textContent);
}

export async function waitState(page, state, timeout = 30000) {
  await page.waitForFunction((s) => document.querySelector('#conn-state')?.textContent === s, { timeout }, state);
}

export function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

// types text into the composer and sends it
export async function say(page, text) {
  await page.type('#text', text);
  await page.click('#send');
}

// waits until the open conversation shows exactly `want` as its last texts
export async function waitTexts(page, want, timeout = 40000) {
  await page.waitForFunction((w) => {
    const got = [...document.querySelectorAll('#messages li .text')].map((e) => e.textContent);
    return w.every((t) => got.includes(t));
  }, { timeout }, want);
}


// Clicks sel, found again when the list it is in was redrawn between the
// lookup and the click: a live update (a new conversation, a presence
// change) re-renders the rows, and puppeteer then says "Node is detached
// from document".  Any other failure is the test's.
export async function clickFresh(page, sel, tries = 5) {
  for (let i = 1; ; i++) {
    try {
      return await page.click(sel);
    } catch (e) {
      if (i >= tries || !/detached/i.test(String(e?.message))) throw e;
      await page.waitForSelector(sel, { visible: true });
    }
  }
}
