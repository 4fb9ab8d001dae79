// The dev-mode product in headless Chromium, as a new user would use it:
// sign in through the emulated GitHub, connect the (emulated) Hetzner token,
// create a workspace, watch it become running without reloading, open the
// terminal, run `ls` in the cloned repository. Screenshots go to artifacts/.
//   node dev.mjs <base-url> <hetzner-token> <artifacts-dir>
import { chromium } from "playwright-core";
import { launchChromium } from "./chromium.mjs";
import { openTerminal, signIn } from "./flows.mjs";

const [base, hetznerToken, artifacts] = process.argv.slice(2);
const browser = await launchChromium(chromium);
const timings = {};
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", String(e)));

  await signIn(page, base);

  // Before a token: the create page says what to do first.
  await page.goto(base + "/workspaces/new");
  await page.getByRole("heading", { name: "Connect Hetzner first" }).waitFor();

  // An invalid token is refused inline; the valid one connects.
  await page.goto(base + "/settings");
  await page.locator("#token").fill("not-a-real-token");
  await page.getByRole("button", { name: /Connect Hetzner|Replace token/ }).click();
  await page.locator("#token-error").getByText("Hetzner rejected this token").waitFor();
  await page.locator("#token").fill(hetznerToken);
  await page.getByRole("button", { name: /Connect Hetzner|Replace token/ }).click();
  await page.getByText("connected").waitFor();

  // Install the GitHub App on the user's own account (the emulated install
  // page sends the webhook and returns to Settings), then filter the create
  // form's repositories by account.
  await page.getByRole("link", { name: "Install on another account" }).click();
  await page.locator("#install").click();
  await page.getByText("octocat (User)").waitFor();
  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.locator("#installation").selectOption({ label: "octocat" });
  await page.locator('#repository option[value="octocat/dotfiles"]').waitFor({ state: "attached" });
  if (await page.locator('#repository option[value="octo-org/hello-world"]').count()) throw new Error("repositories not filtered by account");
  await page.locator("#search").fill("web");
  if ((await page.locator("#repository option").count()) !== 1) throw new Error("search did not filter");
  await page.locator("#search").fill("");
  await page.locator("#installation").selectOption({ label: "octo-org" });
  await page.locator('#repository option[value="octo-org/hello-world"]').waitFor({ state: "attached" });

  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.getByText(/of 10 active workspaces in use/).waitFor();
  await page.locator("#repository").selectOption("octo-org/hello-world");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.locator("#name").fill(`hello-${Date.now() % 100000}`);
  const created = Date.now();
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.getByRole("heading", { name: "History" }).waitFor();
  await page.locator(".status.running").waitFor({ timeout: 90000 });
  timings.createToRunningMs = Date.now() - created;
  // Where terminals run, as the agent reported it (host shells here).
  await page.getByRole("row", { name: /Terminals\s+on the host \(no container\)/ }).waitFor();
  await page.screenshot({ path: `${artifacts}/dev-workspace.png`, fullPage: true });
  if ((await page.locator("main").innerText()).split("\n").some((line) => line.trim() === "null")) {
    throw new Error("the workspace page shows a stray \"null\"");
  }

  const opened = Date.now();
  const [terminal] = await Promise.all([context.waitForEvent("page"), page.getByRole("button", { name: "Open Terminal" }).click()]);
  await terminal.waitForLoadState();
  await terminal.waitForFunction(() => document.getElementById("status")?.dataset.state === "connected", null, { timeout: 30000 });
  await terminal.waitForFunction(() => /[$#]/.test(document.querySelector(".pane.active .xterm-rows")?.textContent ?? ""), null, { timeout: 30000 });
  timings.openToPromptMs = Date.now() - opened;
  await terminal.click("#terminal");
  await terminal.keyboard.type("ls && pwd");
  await terminal.keyboard.press("Enter");
  await terminal.waitForFunction(() => (document.querySelector(".pane.active .xterm-rows")?.textContent ?? "").includes("README.md"), null, { timeout: 15000 });
  await terminal.screenshot({ path: `${artifacts}/dev-terminal.png` });

  // Resizing the window reaches the shell.
  const rows = () => terminal.evaluate(() => document.querySelector(".pane.active .xterm-rows")?.textContent ?? "");
  await terminal.keyboard.type("echo size-$(stty size | tr ' ' x)");
  await terminal.keyboard.press("Enter");
  await terminal.waitForFunction(() => /size-\d+x\d+/.test(document.querySelector(".pane.active .xterm-rows")?.textContent ?? ""));
  const before = (await rows()).match(/size-(\d+x\d+)/g).pop();
  await terminal.setViewportSize({ width: 700, height: 400 });
  await terminal.waitForTimeout(600);
  await terminal.keyboard.type("clear; echo size-$(stty size | tr ' ' x)");
  await terminal.keyboard.press("Enter");
  await terminal.waitForFunction((b) => {
    const all = (document.querySelector(".pane.active .xterm-rows")?.textContent ?? "").match(/size-\d+x\d+/g) || [];
    return all.length && all[all.length - 1] !== b;
  }, before, { timeout: 10000 });

  // Closing the tab ends its shell; opening the terminal again gives a new one.
  await terminal.keyboard.type("echo pid-$$");
  await terminal.keyboard.press("Enter");
  await terminal.waitForFunction(() => /pid-\d+/.test(document.querySelector(".pane.active .xterm-rows")?.textContent ?? ""));
  const firstPid = (await rows()).match(/pid-(\d+)/)[1];
  await terminal.close();
  const again = await openTerminal(context, page);
  await again.click("#terminal");
  await again.keyboard.type("echo pid-$$");
  await again.keyboard.press("Enter");
  await again.waitForFunction(() => /pid-\d+/.test(document.querySelector(".pane.active .xterm-rows")?.textContent ?? ""));
  const secondPid = (await again.evaluate(() => document.querySelector(".pane.active .xterm-rows")?.textContent ?? "")).match(/pid-(\d+)/)[1];
  if (firstPid === secondPid) throw new Error("a reopened terminal reused the closed tab's shell");
  await again.close();

  await page.goto(base + "/");
  await page.screenshot({ path: `${artifacts}/dev-dashboard.png`, fullPage: true });

  // Stop: the row turns stopped without a reload; the detail page explains
  // that the terminal needs a running workspace.
  const row = page.locator("tbody tr").first();
  await row.getByRole("button", { name: "Stop" }).click();
  await row.locator(".status.stopped").waitFor({ timeout: 30000 });
  await row.getByRole("link").click();
  await page.locator("#terminal-hint").waitFor();
  if (!(await page.getByRole("button", { name: "Open Terminal" }).isDisabled())) throw new Error("terminal button enabled while stopped");
  await page.goto(base + "/");

  // Restart: running again, on a fresh server.
  await page.locator("tbody tr").first().getByRole("button", { name: "Restart" }).click();
  await page.locator("tbody tr").first().locator(".status.running").waitFor({ timeout: 60000 });

  // Delete asks first; cancelling keeps it, confirming removes the row.
  await page.locator("tbody tr").first().getByRole("button", { name: "Delete" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).click();
  await page.locator("tbody tr").first().getByRole("button", { name: "Delete" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.locator(".empty").waitFor({ state: "visible", timeout: 30000 });

  // Sign out, then come back: the landing page; signing in restores the account.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("link", { name: "Sign in with GitHub" }).waitFor();
  await page.getByRole("link", { name: "Sign in with GitHub" }).click();
  await page.locator("#sign-in").click();
  await page.getByRole("heading", { name: "Workspaces" }).waitFor();

  // A provider failure: Hetzner has no capacity. The workspace shows an
  // actionable error, and deleting it leaves nothing behind.
  await page.evaluate(async () => { await fetch("/dev/faults/hetzner-capacity", { method: "POST" }); });
  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.locator("#name").fill(`no-capacity-${Date.now() % 100000}`);
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.locator(".status.error").waitFor({ timeout: 90000 });
  await page.getByText("no capacity for a small server in fsn1; try another location").first().waitFor();
  await page.screenshot({ path: `${artifacts}/dev-error.png`, fullPage: true });
  await page.evaluate(async () => { await fetch("/dev/faults", { method: "DELETE" }); });
  await page.goto(base + "/");
  await page.locator("tbody tr").first().getByRole("button", { name: "Delete" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.locator(".empty").waitFor({ state: "visible", timeout: 30000 });

  // Leave one running workspace behind for the shutdown check.
  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.locator("#name").fill(`left-running-${Date.now() % 100000}`);
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.locator(".status.running").waitFor({ timeout: 90000 });
  console.log(JSON.stringify(timings));
} catch (e) {
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    await p.screenshot({ path: `${artifacts}/dev-failure-${browser.contexts()[0].pages().indexOf(p)}.png` }).catch(() => {});
  }
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
