# Sourced by scripts/test: the control-plane browser tests need Chromium (Debian
# package), Node.js and the pinned playwright-core in e2e/ (npm ci from the
# lockfile). Idempotent; exports SAM_CHROMIUM.
if [[ "${SAM_SKIP_BROWSER:-}" != "1" ]]; then
  if ! command -v chromium >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "installing chromium, nodejs and npm (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium nodejs npm >/dev/null
  fi
  if [[ ! -d e2e/node_modules/playwright-core || ! -d e2e/node_modules/typescript ]]; then
    (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
  export SAM_CHROMIUM="${SAM_CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}"
fi
