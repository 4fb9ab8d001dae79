// Copies the built xterm.js files the terminal page needs into
// ../assets/vendor/, which is committed so `cargo build` needs no npm.
// Run after changing versions in package.json: `npm ci && npm run vendor`.
import { copyFileSync, mkdirSync } from 'node:fs';

const out = new URL('../assets/vendor/', import.meta.url);
mkdirSync(out, { recursive: true });
for (const [from, to] of [
  ['node_modules/@xterm/xterm/lib/xterm.mjs', 'xterm.mjs'],
  ['node_modules/@xterm/xterm/css/xterm.css', 'xterm.css'],
  ['node_modules/@xterm/addon-fit/lib/addon-fit.mjs', 'addon-fit.mjs'],
]) {
  copyFileSync(new URL(from, import.meta.url), new URL(to, out));
  console.log(`vendored ${to}`);
}
