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
