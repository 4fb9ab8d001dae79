// Idle shutdown in the dev-mode product (run by sam-server/tests/dev.rs with a
// short idle threshold): the dashboard counts down; the warning shows in an
// open terminal and on the dashboard, whose "I'm still here" starts the
// countdown again and clears the terminal's warning; left alone, the
// workspace then stops by itself and the dashboard says why.
//   node idle.mjs <base-url> <hetzner-token> <artifacts-dir>
import { chromium } from "playwright-core";
import { launchChromium } from "./chromium.mjs";
import { connectHetzner, createWorkspace, openTerminal, signIn } from "./flows.mjs";

const [base, hetznerToken, artifacts] = process.argv.slice(2);
const browser = await launchChromium(chromium);
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  await signIn(page, base);
  await connectHetzner(page, base, hetznerToken);
  await createWorkspace(page, base);

  const terminal = await openTerminal(context, page);
  // The dashboard counts down to the idle stop.
  await page.goto(base + "/");
  const row = page.locator("tbody tr").first();
  await row.locator(".idle .countdown").getByText("stops in").waitFor({ timeout: 10000 });
  // Nobody types: the warning appears in the terminal with the deadline,
  // and on the dashboard with an "I'm still here" button.
  await terminal.locator("#idle-warning").getByText("idle").waitFor({ timeout: 60000 });
  await terminal.screenshot({ path: `${artifacts}/dev-idle-warning.png` });
  await page.locator("#idle-warnings .idle-warning").waitFor({ timeout: 15000 });
  await row.locator(".idle.warning").waitFor();
  await page.screenshot({ path: `${artifacts}/dev-idle-dashboard-warning.png` });
  // "I'm still here" on the dashboard: the countdown starts again, and the
  // open terminal drops its warning (its agent learns it from the next
  // heartbeat's answer).
  const before = await row.locator(".idle .countdown").textContent();
  await page.locator("#idle-warnings").getByRole("button", { name: "I'm still here" }).click();
  await page.locator("#idle-warnings .idle-warning").waitFor({ state: "detached", timeout: 5000 });
  const after = await row.locator(".idle .countdown").textContent();
  console.log(`countdown ${before} → ${after}`);
  await terminal.locator("#idle-warning").waitFor({ state: "hidden", timeout: 15000 });

  // Nobody comes back: the workspace stops by itself, and the dashboard
  // says why.
  await row.locator(".status.stopped").waitFor({ timeout: 90000 });
  await row.getByText("Idle timeout").waitFor();
  await page.screenshot({ path: `${artifacts}/dev-idle-stopped.png` });
  console.log("idle ok");
} catch (e) {
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
