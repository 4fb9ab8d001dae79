// Headless Chromium check of the terminal page (run by tests/browser.rs):
// open the page with a valid session cookie, type a command, see its output
// rendered by xterm.js, save a screenshot.
//   node browser-test.mjs <base-url> <cookie-name> <cookie-value> <screenshot-path>
import { chromium } from 'playwright-core';
import { launchChromium } from '../../e2e/chromium.mjs';

const [base, cookieName, cookieValue, shot] = process.argv.slice(2);
const browser = await launchChromium(chromium);
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 560 } });
  await context.addCookies([{ name: cookieName, value: cookieValue, url: base, httpOnly: true, sameSite: 'Strict' }]);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const res = await page.goto(base + '/');
  if (res.status() !== 200) throw new Error(`page status ${res.status()}`);
  const live = () => ['connected', 'stopping'].includes(document.getElementById('status')?.dataset.state);
  await page.waitForFunction(live, null, { timeout: 10000 });
  // The agent has an idle warning in force (set by the Rust test): it is
  // shown, and any keypress dismisses it.
  await page.waitForSelector('#idle-warning:not([hidden])', { timeout: 10000 });
  const warning = await page.textContent('#idle-warning');
  if (!/stops in [45] min/.test(warning)) throw new Error(`unexpected warning text: ${warning}`);
  await page.screenshot({ path: shot.replace(/\.png$/, '-idle-warning.png') });
  await page.click('#terminal');
  await page.keyboard.press('Shift');
  await page.waitForSelector('#idle-warning', { state: 'hidden', timeout: 5000 });
  const rowsText = () => document.querySelector('.xterm-rows')?.textContent ?? '';
  await page.waitForFunction((fn) => (document.querySelector('.xterm-rows')?.textContent ?? '').includes('$'), null, { timeout: 10000 });
  await page.click('#terminal');
  await page.keyboard.type('echo browser-$((6*7)) "\u00e9\u{1F600}"; stty size');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => (document.querySelector('.xterm-rows')?.textContent ?? '').includes('browser-42 \u00e9\u{1F600}'), null, { timeout: 10000 });
  const text = await page.evaluate(rowsText);
  const size = text.match(/(\d+) (\d+)\s*\$?/g);
  await page.screenshot({ path: shot });
  // A flood must not freeze the page, and Ctrl-C must stop it promptly.
  await page.keyboard.type('yes flood-line');
  await page.keyboard.press('Enter');
  await page.waitForTimeout(1500);
  const t0 = Date.now();
  await page.keyboard.press('Control+C');
  await page.keyboard.type('echo after-$((40+2)) "\u00e9\u{1F600}"; stty size');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => (document.querySelector('.xterm-rows')?.textContent ?? '').includes('after-42 \u00e9\u{1F600}'), null, { timeout: 10000 });
  const ctrlC = Date.now() - t0;
  if (ctrlC > 3000) throw new Error(`Ctrl-C during a flood took ${ctrlC} ms`);
  await page.screenshot({ path: shot.replace(/\.png$/, '-after-flood.png') });
  // A reload keeps the tab's shell: same session id, output replayed.
  await page.reload();
  await page.waitForFunction(live, null, { timeout: 10000 });
  await page.waitForFunction(() => (document.querySelector('.xterm-rows')?.textContent ?? '').includes('after-42'), null, { timeout: 10000 });
  // A new tab gets its own shell.
  const second = await context.newPage();
  await second.goto(base + '/');
  await second.waitForFunction(live, null, { timeout: 10000 });
  await second.waitForFunction(() => (document.querySelector('.xterm-rows')?.textContent ?? '').includes('$'), null, { timeout: 10000 });
  const shared = await second.evaluate(() => (document.querySelector('.xterm-rows')?.textContent ?? '').includes('after-42'));
  if (shared) throw new Error('a new tab reattached the first tab\'s shell');
  const status = await page.textContent('#status');
  // Signed out of SAM (the Rust test ends the sign-in when it reads this
  // line): the page says so and stops reconnecting.
  console.log('SIGN_OUT_NOW');
  await page.waitForFunction(() => (document.getElementById('status')?.textContent ?? '').includes('signed out'), null, { timeout: 10000 });
  await page.screenshot({ path: shot.replace(/\.png$/, '-signed-out.png') });
  console.log(JSON.stringify({ ok: true, status, size: size && size.slice(-1)[0], ctrlC, errors }));
  const real = errors.filter((e) => !e.includes('.map'));
  if (real.length) { console.error('page errors:', real); failed = true; }
} catch (e) {
  console.error('browser test failed:', e);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
