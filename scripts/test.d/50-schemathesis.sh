# shellcheck shell=bash
# Sourced by scripts/test (and by hand: `source scripts/test.d/50-schemathesis.sh`).
#
# Installs Schemathesis — the property-based API fuzzer the test
# `sam-server/tests/api_fuzz.rs` runs against the control plane's OpenAPI
# document — into a virtual environment under target/, from the pinned
# list in scripts/schemathesis/requirements.txt (every package, so a run
# installs the same set; regenerate it with `pip freeze` after changing the
# version), and exports SAM_TEST_SCHEMATHESIS (its `st` command). Needs
# Python 3 with venv (Debian: python3-venv, installed when missing).

__sam_schemathesis_main() {
  local root venv requirements
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$root/target/schemathesis-venv"
  requirements="$root/scripts/schemathesis/requirements.txt"
  if [[ -x "$venv/bin/st" ]] && cmp -s "$requirements" "$venv/installed-requirements.txt"; then
    export SAM_TEST_SCHEMATHESIS="$venv/bin/st"
    echo "Schemathesis ready: $("$venv/bin/st" --version 2>/dev/null | head -n 1)"
    return 0
  fi
  if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "python3 venv missing: installing the Debian package python3-venv"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
  cp "$requirements" "$venv/installed-requirements.txt"
  export SAM_TEST_SCHEMATHESIS="$venv/bin/st"
  echo "Schemathesis installed: $("$venv/bin/st" --version 2>/dev/null | head -n 1)"
}

__sam_schemathesis_main
