#!/bin/sh
# SAM's first boot of a workspace VM, run once by cloud-init (the user data
# of sam_core::cloud_init writes it, with /etc/sam/agent.env and
# /etc/sam/boot.env). It installs only what the image lacks (an image with
# Docker, such as Hetzner's docker-ce, needs nothing but Node.js), unpacks
# the pinned devcontainer CLI and the agent fetched from the control plane
# (checksums checked) and starts the agent, which does the rest.
#
# Every step is reported to the control plane with the bootstrap token,
# which reporting does not spend: the dashboard shows the boot before the
# agent exists, a failed step fails the workspace at once with its last 50
# lines, and a VM whose agent never starts says how far it got. Each
# step's output and time go to /var/log/sam-boot.log. Installing waits for
# the package lock (a fresh Ubuntu runs its own upgrades at first boot).
set -u
# shellcheck source=/dev/null
. /etc/sam/agent.env
# shellcheck source=/dev/null
. /etc/sam/boot.env
control_plane="$SAM_AGENT_CONTROL_PLANE"
log=/var/log/sam-boot.log
work=$(mktemp -d)
booted=$(date +%s)

# stdin as a JSON string: control characters dropped, tabs as spaces.
json_string() {
  printf '"'
  tr '\t' ' ' | tr -d '\000-\010\013-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' |
    awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }'
  printf '"'
}

# report STEP STATUS, the message on stdin. Best effort: a report that does
# not arrive never stops the boot.
report() {
  body="{\"step\":\"$1\",\"status\":\"$2\",\"message\":$(json_string)}"
  curl -fsS --max-time 10 -o /dev/null -X POST -H 'content-type: application/json' \
    --data-binary "$body" "$control_plane/api/bootstrap/$SAM_AGENT_BOOTSTRAP_TOKEN/progress" || true
}

# step NAME COMMAND...: runs the command, reporting it; a failure reports
# the exit status and the last 50 lines of its output, and ends the boot.
step() {
  name=$1
  shift
  report "$name" running </dev/null
  started=$(date +%s)
  "$@" >"$work/$name.log" 2>&1
  status=$?
  took=$(($(date +%s) - started))
  { echo "== $name (exit $status, $took s, $(($(date +%s) - booted)) s since the boot started)"; cat "$work/$name.log"; } >>"$log"
  if [ "$status" -ne 0 ]; then
    { echo "exit status $status after $took s; its last lines:"; tail -n 50 "$work/$name.log"; } | report "$name" failed
    exit 1
  fi
  echo "in $took s" | report "$name" "done"
}

# fetch URL FILE: bounded retries (about 2 minutes), not the quarter of an
# hour a silent unreachable control plane would otherwise take.
fetch() {
  curl -fsS --connect-timeout 10 --max-time 600 --retry 5 --retry-delay 2 --retry-all-errors \
    --retry-max-time 120 -D "$2.headers" -o "$2" "$1"
}

# check_sha256 FILE HEADER [EXPECTED]: the file's SHA-256 is EXPECTED, or
# else the one the control plane sent in HEADER.
check_sha256() {
  expected=${3:-$(sed -n "s/^$2: *\\([0-9a-f]\\{64\\}\\).*/\\1/ip" "$1.headers")}
  [ -n "$expected" ] || { echo "no checksum for $1"; return 1; }
  echo "$expected  $1" | sha256sum -c -
}

packages() {
  missing=""
  command -v docker >/dev/null 2>&1 || missing="$missing docker.io"
  command -v git >/dev/null 2>&1 || missing="$missing git"
  command -v node >/dev/null 2>&1 || missing="$missing nodejs"
  if [ -z "$missing" ]; then
    echo "nothing to install: the image has Docker, git and Node.js"
    return 0
  fi
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q -o DPkg::Lock::Timeout=300 || return 1
  # shellcheck disable=SC2086 # one word per package
  apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends $missing || return 1
  systemctl enable --now docker.service 2>/dev/null || true
}

devcontainer_cli() {
  if fetch "$control_plane/api/agent/devcontainer-cli" "$work/cli.tgz"; then
    check_sha256 "$work/cli.tgz" x-sha256 || return 1
    rm -rf /opt/sam/devcontainer-cli && mkdir -p /opt/sam/devcontainer-cli || return 1
    tar -xzf "$work/cli.tgz" -C /opt/sam/devcontainer-cli --strip-components=1 || return 1
    printf '#!/bin/sh\nexec node /opt/sam/devcontainer-cli/devcontainer.js "$@"\n' >/usr/local/bin/devcontainer
    chmod 0755 /usr/local/bin/devcontainer
  else
    echo "the control plane has no devcontainer CLI bundle: installing npm and the CLI (slow)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q -o DPkg::Lock::Timeout=300 npm || return 1
    npm install -g "@devcontainers/cli@$SAM_BOOT_DEVCONTAINER_CLI_VERSION" || return 1
  fi
  devcontainer --version
}

agent() {
  # The agent for this machine's architecture: the provider chose the
  # server type (x86 or Arm) after this file was written.
  case "$(uname -m)" in
    x86_64) arch=amd64 expected="${SAM_BOOT_AGENT_SHA256_AMD64:-}" ;;
    aarch64 | arm64) arch=arm64 expected="${SAM_BOOT_AGENT_SHA256_ARM64:-}" ;;
    *) echo "no SAM agent for architecture $(uname -m)"; return 1 ;;
  esac
  echo "agent for $arch"
  fetch "$control_plane/api/agent/download?arch=$arch" "$work/sam-agent" || return 1
  check_sha256 "$work/sam-agent" x-agent-sha256 "$expected" || return 1
  install -m 0755 "$work/sam-agent" /usr/local/bin/sam-agent
}

start_agent() {
  systemctl daemon-reload && systemctl enable --now sam-agent.service
}

step packages packages
step devcontainer-cli devcontainer_cli
step agent-download agent
# The last report with the bootstrap token: the agent redeems it next.
step agent-start start_agent
rm -rf "$work"
