// Headless Chromium check of the terminal page (run by tests/browser.rs):
// open the page with a valid session cookie, type a command, see its output
// rendered by xterm.js, save a screenshot.
//   node browser-test.mjs <base-url> <cookie-name> <cookie-value> <screenshot-path>
import { chromium } from 'playwright-core';
import { launchChromium } from '../../e2e/chromium.mjs';

const [base, cookieName, cookieValue, shot] = process.argv.slice(2);
const browser = await launchChromium(chromium);
let failed = false;
let stage = 'start';
const at = (name) => { stage = name; };
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 560 }, acceptDownloads: true });
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
  const rowsText = () => document.querySelector('.pane.active .xterm-rows')?.textContent ?? '';
  await page.waitForFunction((fn) => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('$'), null, { timeout: 10000 });
  await page.click('#terminal');
  await page.keyboard.type('echo browser-$((6*7)) "\u00e9\u{1F600}"; stty size');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('browser-42 \u00e9\u{1F600}'), null, { timeout: 10000 });
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
  await page.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('after-42 \u00e9\u{1F600}'), null, { timeout: 10000 });
  const ctrlC = Date.now() - t0;
  if (ctrlC > 3000) throw new Error(`Ctrl-C during a flood took ${ctrlC} ms`);
  await page.screenshot({ path: shot.replace(/\.png$/, '-after-flood.png') });
  // A reload keeps the tab's shell: same session id, output replayed.
  await page.reload();
  await page.waitForFunction(live, null, { timeout: 10000 });
  await page.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('after-42'), null, { timeout: 10000 });
  // Terminal tabs in the page: + opens a second terminal with its own shell.
  const activeRows = () => document.querySelector('.pane.active .xterm-rows')?.textContent ?? '';
  const tabNames = () => [...document.querySelectorAll('.tab .name')].map((e) => e.textContent);
  at('tabs: new');
  await page.click('#new-tab');
  await page.waitForFunction(() => document.querySelectorAll('.tab').length === 2, null, { timeout: 5000 });
  await page.waitForFunction(live, null, { timeout: 10000 });
  await page.waitForFunction((f) => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('$'), null, { timeout: 10000 });
  if ((await page.evaluate(activeRows)).includes('after-42')) throw new Error('a new terminal tab shows the first one\'s shell');
  await page.keyboard.type('echo second-$((6*7))');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('second-42'), null, { timeout: 10000 });
  at('tabs: rename');
  // Renamed by a double-click on its title.
  await page.dblclick('.tab.active .name');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('logs \u2713');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('.tab.active .name')?.textContent === 'logs \u2713', null, { timeout: 5000 });
  at('tabs: keyboard');
  // Keyboard: Alt+1 the first tab, Alt+Shift+N a new one, Alt+Shift+W closes it.
  await page.keyboard.press('Alt+1');
  await page.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('after-42'), null, { timeout: 5000 });
  await page.keyboard.press('Alt+Shift+N');
  await page.waitForFunction(() => document.querySelectorAll('.tab').length === 3, null, { timeout: 5000 });
  await page.waitForFunction(live, null, { timeout: 10000 });
  await page.keyboard.press('Alt+Shift+W');
  await page.waitForFunction(() => document.querySelectorAll('.tab').length === 2, null, { timeout: 5000 });
  at('tabs: reload');
  // A reload brings back both terminals, their names and their output.
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('.tab').length === 2, null, { timeout: 10000 });
  await page.waitForFunction(live, null, { timeout: 10000 });
  const names = await page.evaluate(tabNames);
  if (JSON.stringify(names) !== JSON.stringify(['Terminal 1', 'logs \u2713'])) throw new Error(`tabs after reload: ${names}`);
  await page.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('second-42'), null, { timeout: 10000 });
  await page.keyboard.press('Alt+Shift+ArrowLeft');
  await page.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('after-42'), null, { timeout: 10000 });
  const listed = await page.evaluate(async () => (await (await fetch('/api/sessions')).json()).sessions.map((s) => s.name));
  if (!listed.includes('logs \u2713')) throw new Error(`the agent's list: ${listed}`);
  await page.screenshot({ path: shot.replace(/\.png$/, '-tabs.png') });
  at('tabs: limit');
  // The workspace's limit (3 in this test): a fourth terminal is refused
  // with a message, and its tab does not stay.
  await page.click('#new-tab');
  await page.waitForFunction(live, null, { timeout: 10000 });
  await page.click('#new-tab');
  await page.waitForSelector('#notice:not([hidden])', { timeout: 10000 });
  const notice = await page.textContent('#notice');
  if (!/as many terminals as it allows/.test(notice)) throw new Error(`limit notice: ${notice}`);
  await page.waitForFunction(() => document.querySelectorAll('.tab').length === 3, null, { timeout: 5000 });
  await page.screenshot({ path: shot.replace(/\.png$/, '-limit.png') });
  await page.keyboard.press('Alt+Shift+W');
  await page.waitForFunction(() => document.querySelectorAll('.tab').length === 2, null, { timeout: 5000 });
  at('tabs: close');
  // Closing a tab (its ×) ends its shell and frees a place.
  await page.click('.tab:nth-child(2) .close');
  await page.waitForFunction(() => document.querySelectorAll('.tab').length === 1, null, { timeout: 5000 });
  await page.waitForFunction(async () => (await (await fetch('/api/sessions')).json()).sessions.length === 1, null, { timeout: 5000, polling: 200 });
  at('files');
  // Files: into the terminal's current directory by the picker and by a
  // drop, with progress rows; out by path through the download dialog.
  await page.click('#terminal');
  await page.keyboard.type('cd "$(mktemp -d)" && echo "dir=$PWD"');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /dir=\/tmp\/tmp\./.test(document.querySelector('.pane.active .xterm-rows')?.textContent ?? ''), null, { timeout: 10000 });
  const big = Buffer.alloc(3 * 1024 * 1024, 'sam-upload ');
  await page.setInputFiles('#upload-picker', { name: 'picked.txt', mimeType: 'text/plain', buffer: big });
  await page.waitForSelector('.transfer.done >> text=saved:', { timeout: 20000 });
  const dropped = await page.evaluateHandle(() => {
    const data = new DataTransfer();
    data.items.add(new File(['dropped-content-42'], 'dropped.txt', { type: 'text/plain' }));
    return data;
  });
  await page.dispatchEvent('#terminal', 'dragenter', { dataTransfer: dropped });
  await page.waitForSelector('#drop-zone:not([hidden])', { timeout: 5000 });
  await page.screenshot({ path: shot.replace(/\.png$/, '-drop.png') });
  await page.dispatchEvent('#terminal', 'drop', { dataTransfer: dropped });
  await page.waitForFunction(() => document.querySelectorAll('.transfer.done').length >= 2, null, { timeout: 20000 });
  await page.screenshot({ path: shot.replace(/\.png$/, '-uploads.png') });
  await page.click('#terminal');
  await page.keyboard.type('wc -c < picked.txt; cat dropped.txt; echo');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => { const t = document.querySelector('.pane.active .xterm-rows')?.textContent ?? ''; return t.includes('3145728') && t.includes('dropped-content-42'); }, null, { timeout: 10000 });
  await page.click('#download');
  await page.fill('#download-path', 'nothing-here');
  await page.click('#download-go');
  await page.waitForFunction(() => /no such file/.test(document.getElementById('download-error')?.textContent ?? ''), null, { timeout: 5000 });
  // That 404 was asked for (the console reports every failed request).
  for (let i = errors.length - 1; i >= 0; i--) if (/status of 404/.test(errors[i])) { errors.splice(i, 1); break; }
  await page.fill('#download-path', 'picked.txt');
  await page.screenshot({ path: shot.replace(/\.png$/, '-download.png') });
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 10000 }), page.click('#download-go')]);
  if (download.suggestedFilename() !== 'picked.txt') throw new Error(`download name ${download.suggestedFilename()}`);
  const got = await download.createReadStream().then(async (stream) => { const parts = []; for await (const c of stream) parts.push(c); return Buffer.concat(parts); });
  if (!got.equals(big)) throw new Error(`downloaded ${got.length} bytes, not the uploaded ones`);
  await page.click('#terminal');
  await page.keyboard.type('rm -r "$PWD" && cd / && echo cleaned-$((1+1))');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('cleaned-2'), null, { timeout: 10000 });
  at('second page');
  // A new browser tab gets its own shell.
  const second = await context.newPage();
  await second.goto(base + '/');
  await second.waitForFunction(live, null, { timeout: 10000 });
  await second.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('$'), null, { timeout: 10000 });
  const shared = await second.evaluate(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('after-42'));
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
  console.error(`browser test failed at "${stage}":`, e);
  try {
    for (const p of browser.contexts().flatMap((c) => c.pages())) {
      console.error('page state:', await p.evaluate(() => ({
        tabs: [...document.querySelectorAll('.tab')].map((t) => `${t.textContent} ${t.getAttribute('data-state')} ${t.className}`),
        status: document.getElementById('status')?.textContent,
        notice: document.getElementById('notice')?.textContent,
        focus: document.activeElement?.className,
      })));
    }
  } catch { /* the page is gone */ }
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
