# Sourced by scripts/test after 30-browser.sh and 31-e2e.sh installed the
# pinned npm packages: type-checks the browser code (the control plane's
# pages, the agent's terminal page) and the browser tests as JavaScript with
# `tsc --checkJs` (e2e/tsconfig.json; TypeScript pinned in e2e's lockfile).
if [[ "${SAM_SKIP_BROWSER:-}" != "1" ]]; then
  echo "tsc --checkJs (e2e/tsconfig.json)"
  (cd e2e && node_modules/.bin/tsc -p tsconfig.json)
fi
