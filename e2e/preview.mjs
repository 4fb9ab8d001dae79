// Previews in the dev-mode product (run by sam-server/tests/dev.rs): a small
// HTTP + WebSocket server started in the workspace's terminal shows up in
// the terminal's bar and on the dashboard; its preview opens for the owner
// (signed in through SAM, the page's WebSocket answering through the
// preview) and is refused to an anonymous browser and to another user.
//   node preview.mjs <base-url> <hetzner-token> <server-script> <artifacts-dir>
import { chromium } from "playwright-core";
import { launchChromium } from "./chromium.mjs";
import { connectHetzner, createWorkspace, openTerminal, signIn } from "./flows.mjs";

const [base, hetznerToken, serverScript, artifacts] = process.argv.slice(2);
const browser = await launchChromium(chromium);
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  await signIn(page, base);
  await connectHetzner(page, base, hetznerToken);
  await createWorkspace(page, base);

  // A dev server, started in the terminal like any other command.
  const terminal = await openTerminal(context, page);
  await terminal.locator(".xterm-helper-textarea").first().focus();
  await terminal.keyboard.type(`python3 ${serverScript} 0\n`);
  // The terminal's bar lists it (the agent's port scan, polled by the page).
  const link = terminal.locator("#ports a.port").first();
  await link.waitFor({ timeout: 20000 });
  const label = await link.textContent();
  const port = Number.parseInt(label ?? "", 10);
  if (!(port > 0) || !label?.includes("python3")) throw new Error(`the bar lists ${label}`);
  const previewUrl = await link.getAttribute("href");
  if (!previewUrl || !new URL(previewUrl).host.startsWith(`p${port}-ws-`)) throw new Error(`preview link ${previewUrl}`);
  await terminal.screenshot({ path: `${artifacts}/preview-terminal-ports.png` });

  // The dashboard lists it too (the port change is reported at once).
  await page.goto(base + "/");
  const dashboardLink = page.locator("tbody tr").first().locator(".ports a.port");
  await dashboardLink.waitFor({ timeout: 20000 });
  if (!(await dashboardLink.textContent())?.startsWith(String(port))) throw new Error("the dashboard lists another port");
  await page.screenshot({ path: `${artifacts}/preview-dashboard-ports.png` });

  // The owner opens it from the dashboard: signed in through SAM, the app's
  // page loads at the preview's own name and its WebSocket answers.
  const [preview] = await Promise.all([context.waitForEvent("page"), dashboardLink.click()]);
  await preview.getByText("echo: hello from the page").waitFor({ timeout: 20000 });
  if (new URL(preview.url()).host !== new URL(previewUrl).host) throw new Error(`preview at ${preview.url()}`);
  await preview.screenshot({ path: `${artifacts}/preview-owner.png` });
  // A bookmarked deeper URL in the same browser works as it is.
  await preview.goto(new URL("/headers", previewUrl).toString());
  const seen = JSON.parse((await preview.locator("body").textContent()) ?? "{}");
  if (seen.host !== `localhost:${port}`) throw new Error(`the app saw host ${seen.host}`);
  if ((seen.cookie ?? "").includes("sam_preview")) throw new Error("the preview cookie reached the app");

  // Anonymous: sent to SAM, which does not know them; the app never answers.
  const stranger = await browser.newContext();
  const anonymous = await stranger.newPage();
  const answer = await anonymous.goto(previewUrl);
  if (answer?.status() !== 401) throw new Error(`anonymous got ${answer?.status()} at ${anonymous.url()}`);
  if (!anonymous.url().startsWith(base)) throw new Error(`anonymous ended at ${anonymous.url()}`);
  const posted = await anonymous.evaluate(async (url) => (await fetch(url, { method: "POST", body: "x" }).catch(() => null))?.status ?? 0, new URL("/echo", previewUrl).toString());
  if (posted !== 0 && posted !== 401) throw new Error(`anonymous POST got ${posted}`);
  await stranger.close();

  // Another user, signed in to SAM: not their workspace (404), no preview.
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await signIn(otherPage, base, "hubot-outsider");
  const refused = await otherPage.goto(previewUrl);
  if (refused?.status() !== 404) throw new Error(`another user got ${refused?.status()} at ${otherPage.url()}`);
  if ((await otherPage.content()).includes("preview test app")) throw new Error("another user saw the app");
  await other.close();
  console.log(JSON.stringify({ port, preview: new URL(previewUrl).host }));
} catch (e) {
  console.error(String(e && e.stack || e));
  let n = 0;
  for (const context of browser.contexts()) for (const p of context.pages()) await p.screenshot({ path: `${artifacts}/preview-failed-${n++}.png` }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
