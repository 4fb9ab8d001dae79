# Sourced by scripts/test: a real container runtime for the devcontainer
# tests. Idempotent: installs Debian's podman (rootful, runc) only when
# missing, starts its Docker-compatible API socket when it does not answer,
# builds the small local test images offline from the Debian mirror only
# when podman's store lacks them (cached between runs), and installs the
# pinned devcontainer CLI from scripts/devcontainer's lockfile; and
# cloud-init and shellcheck, which check the rendered user-data.
# Exports DOCKER_HOST, SAM_TEST_DOCKER_CLI (the Docker CLI), SAM_TEST_DOCKER_IMAGE
# (root), SAM_TEST_USER_IMAGE (user `vscode`, uid 1000) and
# SAM_DEVCONTAINER_CLI.
# SAM_SKIP_CONTAINERS=1 skips the container tests explicitly.
if [[ "${SAM_SKIP_CONTAINERS:-}" != "1" ]]; then
  if ! command -v podman >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "installing podman and mmdebstrap (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      podman runc uidmap slirp4netns fuse-overlayfs mmdebstrap >/dev/null
  fi
  # The tools that check the rendered cloud-init user-data.
  if ! command -v cloud-init >/dev/null 2>&1 || ! command -v shellcheck >/dev/null 2>&1; then
    echo "installing cloud-init and shellcheck (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cloud-init shellcheck >/dev/null
  fi
  # crun refuses hybrid cgroups; podman's default ulimits exceed the hard
  # limits of CI machines (nofile 20000).
  if ! grep -qs 'sam-test' /etc/containers/containers.conf; then
    mkdir -p /etc/containers
    cat > /etc/containers/containers.conf <<'CONF'
# sam-test: written by scripts/test.d/40-containers.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
  fi
  sam_podman_socket="${SAM_PODMAN_SOCKET:-/run/sam-test-podman.sock}"
  export DOCKER_HOST="unix://${sam_podman_socket}"
  if ! curl -fsS --max-time 2 --unix-socket "$sam_podman_socket" http://d/_ping >/dev/null 2>&1; then
    rm -f "$sam_podman_socket"
    podman system service --time=0 "unix://${sam_podman_socket}" >/tmp/sam-test-podman.log 2>&1 &
    __sam_podman_pid=$!
    for _ in $(seq 1 50); do
      if curl -fsS --max-time 2 --unix-socket "$sam_podman_socket" http://d/_ping >/dev/null 2>&1; then break; fi
      sleep 0.2
    done
    # Started here, so stopped here (chained with any EXIT trap already set).
    __sam_podman_prev_trap=""
    __sam_podman_capture_trap() { __sam_podman_prev_trap="$2"; }
    eval "$(trap -p EXIT | sed 's/^trap /__sam_podman_capture_trap /')"
    __sam_podman_cleanup() { kill "$__sam_podman_pid" 2>/dev/null || true; rm -f "$sam_podman_socket"; }
    trap '__sam_podman_cleanup; eval "${__sam_podman_prev_trap}"' EXIT
  fi
  # The Docker CLI, talking to podman's API: the devcontainer CLI driving
  # podman's own CLI asks for rootless-only options. Debian's docker.io
  # brings it (its daemon is not started).
  if ! command -v docker >/dev/null 2>&1; then
    echo "installing the Docker CLI (Debian docker.io; the daemon stays off)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  SAM_TEST_DOCKER_CLI="$(command -v docker)"
  export SAM_TEST_DOCKER_CLI
  export SAM_TEST_DOCKER_IMAGE="localhost/sam-test-base:bookworm"
  export SAM_TEST_USER_IMAGE="localhost/sam-test-user:bookworm"
  if ! podman image exists "$SAM_TEST_DOCKER_IMAGE"; then
    echo "building $SAM_TEST_DOCKER_IMAGE offline from the Debian mirror (about 2 minutes, once)"
    sam_mirror="$( (grep -h '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true) | awk 'NR == 1 {print $2}')"
    sam_rootfs="$(mktemp -d)/rootfs.tar"
    mmdebstrap --quiet --variant=minbase --include=bash,procps,ca-certificates,git,passwd \
      bookworm "$sam_rootfs" "${sam_mirror:-http://deb.debian.org/debian}"
    podman import --quiet --change 'CMD ["/bin/bash"]' "$sam_rootfs" "$SAM_TEST_DOCKER_IMAGE" >/dev/null
    rm -rf "$(dirname "$sam_rootfs")"
  fi
  if ! podman image exists "$SAM_TEST_USER_IMAGE"; then
    printf 'FROM %s\nRUN useradd -m -u 1000 -s /bin/bash vscode\n' "$SAM_TEST_DOCKER_IMAGE" \
      | podman build --quiet --pull=never -t "$SAM_TEST_USER_IMAGE" - >/dev/null
  fi
  if [[ ! -x scripts/devcontainer/node_modules/.bin/devcontainer ]]; then
    (cd scripts/devcontainer && npm ci --no-audit --no-fund --loglevel=error)
  fi
  export SAM_DEVCONTAINER_CLI="$PWD/scripts/devcontainer/node_modules/.bin/devcontainer"
fi
