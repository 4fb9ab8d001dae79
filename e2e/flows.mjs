// Steps several browser tests share, done the way a user does them.

/**
 * Signs in through the emulated GitHub from the landing page, as its
 * default user or as `login` (one of the consent page's other identities).
 * @param {import("playwright-core").Page} page
 * @param {string} base the control plane's URL
 * @param {string} [login]
 */
export async function signIn(page, base, login) {
  await page.goto(base + "/");
  await page.getByRole("link", { name: "Sign in with GitHub" }).click();
  await page.locator(login ? `#sign-in-${login}` : "#sign-in").click();
  await page.getByRole("heading", { name: "Workspaces" }).waitFor();
}

/**
 * Connects a Hetzner token in Settings.
 * @param {import("playwright-core").Page} page
 * @param {string} base the control plane's URL
 * @param {string} token
 */
export async function connectHetzner(page, base, token) {
  await page.goto(base + "/settings");
  await page.locator("#token").fill(token);
  await page.getByRole("button", { name: /Connect Hetzner|Replace token/ }).click();
  await page.getByText("connected").waitFor();
}

/**
 * Creates a workspace from the new-workspace form's defaults and waits on
 * its page until it runs.
 * @param {import("playwright-core").Page} page
 * @param {string} base the control plane's URL
 */
export async function createWorkspace(page, base) {
  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.locator(".status.running").waitFor({ timeout: 90000 });
}

/**
 * Opens the terminal from a workspace's page (a new tab) and waits until it
 * is connected.
 * @param {import("playwright-core").BrowserContext} context
 * @param {import("playwright-core").Page} page the workspace's page
 * @returns {Promise<import("playwright-core").Page>} the terminal's tab
 */
export async function openTerminal(context, page) {
  const [terminal] = await Promise.all([context.waitForEvent("page"), page.getByRole("button", { name: "Open Terminal" }).click()]);
  await terminal.waitForFunction(() => document.getElementById("status")?.dataset.state === "connected", null, { timeout: 30000 });
  return terminal;
}
