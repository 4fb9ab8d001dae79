// Steps several browser tests share, done the way a user does them.

/**
 * Signs in through the emulated GitHub from the landing page.
 * @param {import("playwright-core").Page} page
 * @param {string} base the control plane's URL
 */
export async function signIn(page, base) {
  await page.goto(base + "/");
  await page.getByRole("link", { name: "Sign in with GitHub" }).click();
  await page.locator("#sign-in").click();
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
