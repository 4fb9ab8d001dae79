# Sourced by scripts/test: what the browser tests need.
# Idempotent: installs Chromium from Debian and the pinned npm packages only
# when missing. Exports SAM_CHROMIUM for the test.
if [[ "${SAM_SKIP_BROWSER:-}" != "1" ]]; then
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  # certutil: the HTTPS rehearsal gives Chromium an NSS database that
  # trusts dev mode's local CA.
  if ! command -v certutil >/dev/null 2>&1; then
    echo "installing libnss3-tools (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnss3-tools >/dev/null
  fi
  if ! command -v node >/dev/null 2>&1; then
    echo "installing nodejs + npm (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [[ ! -d sam-agent/web/node_modules/playwright-core ]]; then
    (cd sam-agent/web && npm ci --no-audit --no-fund --loglevel=error)
  fi
  export SAM_CHROMIUM="${SAM_CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}"
fi
