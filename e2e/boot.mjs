// A boot you can watch (run by sam-server/tests/dev.rs in dev mode with
// devcontainers): a workspace whose devcontainer's postCreateCommand prints
// for a while and then fails. While it boots, its page shows the step and
// the step's latest output; once it failed, the error names the step and
// carries its last lines. Prints the workspace's id.
//   node boot.mjs <base-url> <repository> <artifacts-dir>
import { chromium } from "playwright-core";
import { launchChromium } from "./chromium.mjs";
import { connectHetzner, signIn } from "./flows.mjs";

const [base, repository, artifacts] = process.argv.slice(2);
const browser = await launchChromium(chromium);
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  await signIn(page, base);
  await connectHetzner(page, base, process.env.SAM_HETZNER_TOKEN || "");
  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.locator("#repository").selectOption(repository);
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.locator("#name").fill("watched");
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.getByRole("heading", { name: "History" }).waitFor();

  // The build's output while it runs, without reloading the page.
  const output = page.locator("#boot pre.boot-output");
  await page.waitForFunction(() => /build line \d+/.test(document.querySelector("#boot pre.boot-output")?.textContent ?? ""), null, { timeout: 120000 });
  const label = await output.getAttribute("aria-label");
  if (label !== "output of devcontainer") throw new Error(`the live output's step: ${label}`);
  await page.screenshot({ path: `${artifacts}/dev-boot-running.png`, fullPage: true });

  // Failed: the step, the reason and the last lines; the boot panel is gone.
  await page.locator(".status.error").waitFor({ timeout: 120000 });
  const alert = page.getByRole("alert");
  await alert.getByText(/devcontainer failed/).waitFor();
  const lines = await alert.locator("pre.boot-output").innerText();
  if (!/build line 60\n/.test(lines)) throw new Error(`the failure's last lines: ${lines}`);
  if (await page.locator("#boot").count()) throw new Error("the boot panel outlived the boot");
  await page.screenshot({ path: `${artifacts}/dev-boot-failed.png`, fullPage: true });
  console.log(`WORKSPACE ${page.url().split("/").pop()}`);
} finally {
  await browser.close();
}
