// GitHub sign-in lifetime in the dev-mode product (run by
// sam-server/tests/dev.rs): after GitHub's token expires and its refresh
// token dies, the next page that needs GitHub lands on the front page,
// which says to sign in again; signing in again works. Someone without an
// installation is shown how to install the app. The repository picker says
// whether work can be pushed back.
//   node github.mjs <base-url> <emulator-control-url> <artifacts-dir>
import { chromium } from "playwright-core";
import { launchChromium } from "./chromium.mjs";
import { connectHetzner, signIn } from "./flows.mjs";

const [base, control, artifacts] = process.argv.slice(2);
const browser = await launchChromium(chromium);
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  const hetznerToken = process.env.SAM_HETZNER_TOKEN || "";
  await signIn(page, base);
  await connectHetzner(page, base, hetznerToken);
  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.locator("#repository-access").getByText("You can push from the workspace").waitFor();
  await page.screenshot({ path: `${artifacts}/dev-github-new.png` });

  // Six months on: GitHub refuses the access token and the refresh token.
  for (const path of ["/github/expire-user-tokens", "/github/revoke-refresh-tokens"]) {
    const answer = await fetch(control + path, { method: "POST" });
    if (answer.status !== 204) throw new Error(`${path}: ${answer.status}`);
  }
  await page.goto(base + "/workspaces/new");
  await page.waitForURL((url) => url.search === "?signin=expired", { timeout: 15000 });
  await page.locator("#signin-note").getByText("Your GitHub sign-in has expired").waitFor();
  await page.getByRole("link", { name: "Sign in with GitHub" }).waitFor();
  await page.screenshot({ path: `${artifacts}/dev-github-expired.png` });

  // Signing in again is all it takes.
  await page.getByRole("link", { name: "Sign in with GitHub" }).click();
  await page.locator("#sign-in").click();
  await page.getByRole("heading", { name: "Workspaces" }).waitFor();
  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });

  // Someone without an installation is sent to install the app.
  const other = await (await browser.newContext({ viewport: { width: 1100, height: 700 } })).newPage();
  await signIn(other, base, "hubot-outsider");
  await connectHetzner(other, base, hetznerToken);
  await other.goto(base + "/workspaces/new");
  await other.getByRole("heading", { name: "Install the GitHub App first" }).waitFor();
  await other.screenshot({ path: `${artifacts}/dev-github-install.png` });

  // An organization member with read access is told the workspace cannot push.
  const reader = await (await browser.newContext({ viewport: { width: 1100, height: 700 } })).newPage();
  await signIn(reader, base, "mona-member");
  await connectHetzner(reader, base, hetznerToken);
  await reader.goto(base + "/workspaces/new");
  await reader.locator("#repository-access").getByText("Read-only").waitFor();
  await reader.screenshot({ path: `${artifacts}/dev-github-read-only.png` });
  console.log("github ok");
} catch (e) {
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
