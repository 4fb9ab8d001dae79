// Headless Chromium walk through the control-plane pages (run by
// sam-server/tests/ui.rs): signed in with the given session cookie, each page
// renders its content without script errors; screenshots go to artifacts/.
//   node ui.mjs <base-url> <cookie-name> <cookie-value> <workspace-id> <artifacts-dir>
import { chromium } from "playwright-core";
import { launchChromium } from "./chromium.mjs";

const [base, cookieName, cookieValue, workspaceId, artifacts] = process.argv.slice(2);
const browser = await launchChromium(chromium);
const errors = [];
function watch(page) {
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
}
try {
  // Signed out: the landing page.
  const anonymous = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const landing = await anonymous.newPage();
  watch(landing);
  await landing.goto(base + "/");
  await landing.getByRole("link", { name: "Sign in with GitHub" }).waitFor();
  await landing.screenshot({ path: `${artifacts}/landing.png` });
  errors.length = 0; // the landing page's 401 from /api/auth/me is expected

  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  await context.addCookies([{ name: cookieName, value: cookieValue, url: base, httpOnly: true, sameSite: "Lax" }]);
  const page = await context.newPage();
  watch(page);

  await page.goto(base + "/");
  await page.locator(`tr[data-id="${workspaceId}"]`).waitFor();
  await page.getByRole("button", { name: "Open Terminal" }).first().waitFor();
  // A silent agent's workspace: still running, marked, with the reason.
  await page.getByText("Nothing heard from the agent since").waitFor();
  await page.screenshot({ path: `${artifacts}/dashboard.png`, fullPage: true });

  await page.goto(base + "/settings");
  await page.getByText("connected").waitFor();
  await page.getByRole("cell", { name: "cx23" }).first().waitFor();
  await page.screenshot({ path: `${artifacts}/settings.png`, fullPage: true });
  // A personal access token: shown once, listed without it, works as a
  // bearer, revoked from the list.
  await page.fill("#pat-name", "ui test");
  await page.selectOption("#pat-scope", "read");
  await page.getByRole("button", { name: "Create token" }).click();
  const token = (await page.locator("#new-token").textContent()) ?? "";
  if (!token.startsWith("sam_pat_")) throw new Error(`new token: ${token}`);
  await page.locator("tr[data-token]").first().waitFor();
  await page.screenshot({ path: `${artifacts}/settings-token.png`, fullPage: true });
  const asProgram = async () => (await fetch(`${base}/api/workspaces`, { headers: { authorization: `Bearer ${token}` } })).status;
  if ((await asProgram()) !== 200) throw new Error("the new token does not read");
  await page.getByRole("button", { name: "Revoke" }).first().click();
  await page.locator("tr[data-token]").first().waitFor({ state: "detached" });
  if ((await asProgram()) !== 401) throw new Error("a revoked token still works");

  await page.goto(base + "/workspaces/new");
  await page.locator("#repository option").first().waitFor({ state: "attached" });
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.screenshot({ path: `${artifacts}/create.png`, fullPage: true });

  await page.goto(`${base}/workspaces/${workspaceId}`);
  await page.getByRole("heading", { name: "History" }).waitFor();
  await page.screenshot({ path: `${artifacts}/workspace.png`, fullPage: true });

  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.addCookies([{ name: cookieName, value: cookieValue, url: base, httpOnly: true, sameSite: "Lax" }]);
  const small = await phone.newPage();
  watch(small);
  await small.goto(base + "/");
  await small.locator(`tr[data-id="${workspaceId}"]`).waitFor();
  await small.screenshot({ path: `${artifacts}/dashboard-phone.png`, fullPage: true });

  if (errors.length) throw new Error(`script errors: ${errors.join(" | ")}`);
  console.log("ui ok");
} catch (e) {
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
