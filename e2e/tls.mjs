// The production path rehearsed in headless Chromium: `sam-server dev --tls`
// (HTTPS through the local edge, agents serving TLS behind it), trusted
// through the NSS database of SAM_CHROMIUM_HOME (no certificate error is
// ignored). Sign in, connect Hetzner, create two workspaces, open the
// terminal at https://ws-<id>.localhost, type, see output, reload and
// reattach. Then the time from opening the terminal's address to the first
// prompt, over TLS and against plain-HTTP dev mode, `runs` times each, each
// in a fresh browser context (a new connection, a new handshake).
// A dev server started in the terminal opens as a preview at its own name
// through the same edge, for the owner only.
//   SAM_TLS_RUNS=5 node tls.mjs <tls-base> <plain-base> <hetzner-token> <preview-server.py> <artifacts>
import { chromium } from "playwright-core";
import { launchChromium } from "./chromium.mjs";
import { connectHetzner, signIn as signInPage } from "./flows.mjs";

const [tlsBase, plainBase, hetznerToken, previewServer, artifacts] = process.argv.slice(2);
const runs = Number(process.env.SAM_TLS_RUNS || 5);
const browser = await launchChromium(chromium);
const rows = (page) => page.evaluate(() => document.querySelector(".pane.active .xterm-rows")?.textContent ?? "");
const prompt = (page) => page.waitForFunction(() => /[$#]/.test(document.querySelector(".pane.active .xterm-rows")?.textContent ?? ""), null, { timeout: 30000 });
const connected = (page) => page.waitForFunction(() => document.getElementById("status")?.dataset.state === "connected", null, { timeout: 30000 });

async function signIn(base) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", String(e)));
  await signInPage(page, base);
  await connectHetzner(page, base, hetznerToken);
  return { context, page };
}

async function create(page, base, name) {
  await page.goto(base + "/workspaces/new");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.locator("#repository").selectOption("octo-org/hello-world");
  await page.locator("#branch option").first().waitFor({ state: "attached" });
  await page.locator("#name").fill(name);
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.getByRole("heading", { name: "History" }).waitFor();
  await page.locator(".status.running").waitFor({ timeout: 90000 });
  return page.url().split("/").pop();
}

async function terminalUrl(page, id) {
  return page.evaluate(async (workspaceId) => {
    const r = await fetch("/api/terminal/token", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ workspaceId }) });
    if (!r.ok) throw new Error(`terminal token: ${r.status}`);
    return (await r.json()).url;
  }, id);
}

/** Milliseconds from opening the terminal's address in a fresh context to the first prompt. */
async function connectToPrompt(page, id) {
  const url = await terminalUrl(page, id);
  const context = await browser.newContext();
  try {
    const terminal = await context.newPage();
    const started = Date.now();
    await terminal.goto(url);
    await connected(terminal);
    await prompt(terminal);
    return Date.now() - started;
  } finally {
    await context.close();
  }
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

try {
  const tls = await signIn(tlsBase);
  if (new URL(tls.page.url()).protocol !== "https:") throw new Error(`dashboard not over https: ${tls.page.url()}`);
  const first = await create(tls.page, tlsBase, `tls-${Date.now() % 100000}`);
  await tls.page.screenshot({ path: `${artifacts}/tls-workspace.png`, fullPage: true });

  // The terminal, through the edge, over TLS.
  await tls.page.goto(`${tlsBase}/workspaces/${first}`);
  const [terminal] = await Promise.all([tls.context.waitForEvent("page"), tls.page.getByRole("button", { name: "Open Terminal" }).click()]);
  await terminal.waitForLoadState();
  const host = new URL(terminal.url());
  if (host.protocol !== "https:" || !host.hostname.startsWith("ws-")) throw new Error(`terminal not at https://ws-…: ${terminal.url()}`);
  await connected(terminal);
  await prompt(terminal);
  await terminal.click("#terminal");
  await terminal.keyboard.type("echo tls-$((6*7)) && echo pid-$$");
  await terminal.keyboard.press("Enter");
  await terminal.waitForFunction(() => /tls-42/.test(document.querySelector(".pane.active .xterm-rows")?.textContent ?? ""), null, { timeout: 15000 });
  await terminal.waitForFunction(() => /pid-\d+/.test(document.querySelector(".pane.active .xterm-rows")?.textContent ?? ""));
  const pid = (await rows(terminal)).match(/pid-(\d+)/)[1];
  await terminal.screenshot({ path: `${artifacts}/tls-terminal.png` });
  // Reload: the same shell, its output replayed.
  await terminal.reload();
  await connected(terminal);
  await terminal.waitForFunction(() => /tls-42/.test(document.querySelector(".pane.active .xterm-rows")?.textContent ?? ""), null, { timeout: 15000 });
  await terminal.click("#terminal");
  await terminal.keyboard.type("echo again-$$");
  await terminal.keyboard.press("Enter");
  await terminal.waitForFunction(() => /again-\d+/.test(document.querySelector(".pane.active .xterm-rows")?.textContent ?? ""));
  const again = (await rows(terminal)).match(/again-(\d+)/)[1];
  if (again !== pid) throw new Error(`reload did not reattach: shell ${pid}, then ${again}`);
  await terminal.screenshot({ path: `${artifacts}/tls-terminal-reattached.png` });
  // A dev server in the workspace, previewed at its own name through the
  // same edge: the agent got a certificate for p<port>-ws-<id> (strict
  // mode checks it), the owner is signed in through SAM, and the page's
  // WebSocket (wss) answers.
  await terminal.keyboard.type(`python3 ${previewServer} 0`);
  await terminal.keyboard.press("Enter");
  const portLink = terminal.locator("#ports a.port").first();
  await portLink.waitFor({ timeout: 30000 });
  const previewUrl = await portLink.getAttribute("href") ?? "";
  const previewHost = new URL(previewUrl);
  if (previewHost.protocol !== "https:" || !previewHost.hostname.startsWith(`p${Number.parseInt(await portLink.textContent() ?? "", 10)}-ws-`)) throw new Error(`preview link ${previewUrl}`);
  const [preview] = await Promise.all([tls.context.waitForEvent("page"), portLink.click()]);
  await preview.getByText("echo: hello from the page").waitFor({ timeout: 30000 });
  if (new URL(preview.url()).host !== previewHost.host) throw new Error(`preview ended at ${preview.url()}`);
  await preview.screenshot({ path: `${artifacts}/tls-preview.png` });
  await preview.close();
  const anonymous = await browser.newContext();
  const refused = await (await anonymous.newPage()).goto(previewUrl);
  if (refused?.status() !== 401) throw new Error(`an anonymous preview got ${refused?.status()}`);
  await anonymous.close();
  const insecure = (await tls.context.cookies()).filter((c) => !c.secure).map((c) => `${c.domain} ${c.name}`);
  if (insecure.length) throw new Error(`cookies without Secure: ${insecure.join(", ")}`);
  await terminal.close();
  const second = await create(tls.page, tlsBase, `tls-b-${Date.now() % 100000}`);

  // connect → first prompt, TLS against plain HTTP, interleaved.
  const plain = await signIn(plainBase);
  const plainId = await create(plain.page, plainBase, `plain-${Date.now() % 100000}`);
  const timings = { tlsMs: [], plainMs: [] };
  for (let i = 0; i < runs; i++) {
    // Alternating which goes first, so neither always meets a warmer machine.
    const order = i % 2 ? [["tlsMs", tls.page, first], ["plainMs", plain.page, plainId]] : [["plainMs", plain.page, plainId], ["tlsMs", tls.page, first]];
    for (const [key, page, id] of order) timings[key].push(await connectToPrompt(page, id));
  }
  timings.medianTlsMs = median(timings.tlsMs);
  timings.medianPlainMs = median(timings.plainMs);
  // What the API tells the browser about the workspaces (the test checks
  // that no agent key is in it).
  const api = await tls.page.evaluate(async (ids) => {
    const texts = [await (await fetch("/api/workspaces")).text()];
    for (const id of ids) texts.push(await (await fetch(`/api/workspaces/${id}`)).text());
    return texts.join("\n");
  }, [first, second]);
  console.log(JSON.stringify({ workspaces: [first, second], previewHost: previewHost.hostname, api, ...timings }));
} catch (e) {
  for (const c of browser.contexts()) for (const [i, p] of c.pages().entries()) {
    await p.screenshot({ path: `${artifacts}/tls-failure-${i}.png` }).catch(() => {});
  }
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
