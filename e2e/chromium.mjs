// The one way SAM's browser tests start Chromium: Debian's build
// (SAM_CHROMIUM or /usr/bin/chromium; Playwright's own download does not
// work on these machines) with the headless flags checked on them. Each
// caller passes its own `chromium` from playwright-core, so this file needs
// no node_modules of its own and serves e2e/ and sam-agent/web/ alike.

/** Flags that work headless on CI machines (no sandbox, no GPU, no network chatter). */
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/**
 * Starts headless Chromium.
 * @param {{ launch(options: { executablePath: string, args: string[], env?: Record<string, string | undefined> }): Promise<T> }} chromium playwright-core's `chromium`
 * @returns {Promise<T>}
 * @template T
 */
export function launchChromium(chromium) {
  // SAM_CHROMIUM_HOME: a home whose NSS database (.pki/nssdb) trusts a
  // local CA, for the tests of the HTTPS path (Chromium reads its trust
  // store there; nothing is made to ignore certificate errors).
  const home = process.env.SAM_CHROMIUM_HOME;
  const env = home ? { ...process.env, HOME: home } : process.env;
  return chromium.launch({ executablePath: process.env.SAM_CHROMIUM || "/usr/bin/chromium", args: CHROMIUM_ARGS, env });
}
