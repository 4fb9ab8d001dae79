// The browser side of a flood (run by `cargo bench -p sam-benches --bench
// agent`, part `browser`): 50 MB of output streamed through the terminal
// page's xterm.js in headless Chromium. Prints one JSON line with
//   - the page's own long tasks (over 50 ms, PerformanceObserver) during
//     the flood, and the stalls a 5-ms timer sees (its longest gap, the
//     time in gaps over 50 ms: the page's work and, on a small machine, the
//     CPU taken by the shell, the agent and the browser's other processes),
//     idle (the baseline) and during the flood;
//   - how long the page takes to answer (a round trip through its main
//     thread, what a keypress waits for) during the flood, p50/p99/max;
//   - the flood's rate as rendered, and Ctrl-C → a command's answer on
//     screen during a flood, next to the same at an idle prompt.
//   node flood-bench.mjs <base-url> <cookie-name> <cookie-value> <mb>
import { chromium } from 'playwright-core';
import { launchChromium } from '../../e2e/chromium.mjs';

const [base, cookieName, cookieValue, mbArg] = process.argv.slice(2);
const mb = Number(mbArg || 50);
const browser = await launchChromium(chromium);
const percentile = (v, p) => { const s = [...v].sort((a, b) => a - b); return s[Math.round((s.length - 1) * p)]; };
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 560 } });
  await context.addCookies([{ name: cookieName, value: cookieValue, url: base, httpOnly: true, sameSite: 'Strict' }]);
  const page = await context.newPage();
  await page.goto(base + '/');
  await page.waitForFunction(() => document.getElementById('status')?.dataset.state === 'connected', null, { timeout: 10000 });
  await page.waitForFunction(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('$'), null, { timeout: 10000 });
  // The stall probe: a 5-ms timer; a late tick is a main thread that was busy.
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.__probe = { last: performance.now(), max: 0, blocked: 0, longTasks: [] };
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) w.__probe.longTasks.push(e.duration);
    }).observe({ type: 'longtask' });
    setInterval(() => {
      const now = performance.now();
      const gap = now - w.__probe.last - 5;
      w.__probe.last = now;
      if (gap > w.__probe.max) w.__probe.max = gap;
      if (gap > 50) w.__probe.blocked += gap;
    }, 5);
  });
  const resetProbe = () => page.evaluate(() => { const p = /** @type {any} */ (window).__probe; p.max = 0; p.blocked = 0; p.longTasks = []; });
  const readProbe = () => page.evaluate(() => {
    const p = /** @type {any} */ (window).__probe;
    return { max: p.max, blocked: p.blocked, longTasks: p.longTasks.length, longestTask: Math.max(0, ...p.longTasks) };
  });
  // Ctrl-C, then a command pasted in one go: the time until its answer is
  // on screen (typing it key by key would measure the test's keystrokes).
  let answers = 0;
  const interrupt = async () => {
    answers += 1;
    const c0 = performance.now();
    await page.keyboard.press('Control+C');
    await page.keyboard.insertText(`echo answer-$((${answers}*1000+42))`);
    await page.keyboard.press('Enter');
    const want = `answer-${answers * 1000 + 42}`;
    await page.waitForFunction((w) => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes(w), want, { timeout: 60000, polling: 'raf' });
    return performance.now() - c0;
  };
  const roundTrip = async () => { const t = performance.now(); await page.evaluate(() => 0); return performance.now() - t; };

  await resetProbe();
  const idleTrips = [];
  for (let i = 0; i < 20; i++) { idleTrips.push(await roundTrip()); await page.waitForTimeout(50); }
  const idle = await readProbe();

  await page.click('#terminal');
  const idleCtrlC = await interrupt();
  // base64 turns 3 bytes into 4 (and a newline every 76): `mb` MB of text.
  const input = Math.round(mb * 1e6 * 3 / 4 * 76 / 77);
  await page.keyboard.type(`head -c ${input} /dev/zero | base64; echo FLOOD-$((40+2))`);
  await resetProbe();
  const t0 = performance.now();
  await page.keyboard.press('Enter');
  const trips = [];
  for (;;) {
    trips.push(await roundTrip());
    if (await page.evaluate(() => (document.querySelector('.pane.active .xterm-rows')?.textContent ?? '').includes('FLOOD-42'))) break;
    await page.waitForTimeout(100);
    if (performance.now() - t0 > 300000) throw new Error('the flood did not finish in 5 minutes');
  }
  const floodMs = performance.now() - t0;
  const flood = await readProbe();

  // Ctrl-C during a flood: the time until the shell's answer is on screen.
  await page.keyboard.type(`head -c ${input * 10} /dev/zero | base64`);
  await page.keyboard.press('Enter');
  await page.waitForTimeout(1500);
  const ctrlC = await interrupt();

  console.log(JSON.stringify({
    mb,
    idle: { maxStall: idle.max, blocked: idle.blocked, tripP50: percentile(idleTrips, 0.5), tripP99: percentile(idleTrips, 0.99) },
    flood: {
      ms: floodMs, mbPerS: mb / (floodMs / 1000), maxStall: flood.max, blocked: flood.blocked,
      longTasks: flood.longTasks, longestTask: flood.longestTask,
      tripP50: percentile(trips, 0.5), tripP99: percentile(trips, 0.99), tripMax: Math.max(...trips), trips: trips.length,
    },
    ctrlC, idleCtrlC,
  }));
} finally {
  await browser.close();
}
