// Idle shutdown in the dev-mode product (run by sam-server/tests/dev.rs with a
// short idle threshold): an open terminal shows the warning with the
// deadline, then the workspace stops by itself and the dashboard says why.
//   node idle.mjs <base-url> <hetzner-token> <artifacts-dir>
import { chromium } from "playwright-core";
import { launchChromium } from "./chromium.mjs";
import { connectHetzner, signIn } from "./flows.mjs";

const [base, hetznerToken, artifacts] = process.argv.slice(2);
const browser = await launchChromium(chromium);
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  await signIn(page, base);
  await connectHetzner(page, base, hetznerToken);
  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.locator(".status.running").waitFor({ timeout: 90000 });

  const [terminal] = await Promise.all([context.waitForEvent("page"), page.getByRole("button", { name: "Open Terminal" }).click()]);
  await terminal.waitForFunction(() => document.getElementById("status")?.dataset.state === "connected", null, { timeout: 30000 });
  // Nobody types: the warning appears in the terminal with the deadline.
  await terminal.locator("#idle-warning").getByText("idle").waitFor({ timeout: 60000 });
  await terminal.screenshot({ path: `${artifacts}/dev-idle-warning.png` });

  // Then the workspace stops by itself, and the dashboard says why.
  await page.goto(base + "/");
  const row = page.locator("tbody tr").first();
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
