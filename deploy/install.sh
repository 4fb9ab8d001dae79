#!/usr/bin/env bash
# Installs (or upgrades) SAM on a plain Linux VM with systemd, then runs the
# setup wizard as the `sam` user and starts the service.
#
#   sudo deploy/install.sh --from DIST [setup flags…]
#
# DIST holds sam-server, sam-agent-amd64 and sam-agent-arm64 (see
# docs/self-hosting.md, "Binaries"). Setup flags are passed to
# `sam-server setup` (e.g. --base-domain sam.example.dev --server-ip
# 203.0.113.10 --yes). Setup runs on every install and upgrade: it keeps
# what /etc/sam/sam.env already holds, shows it, and finishes a first
# install that stopped half-way (e.g. at the GitHub App step).
#
# Layout: /opt/sam/<version>/{sam-server,sam-agent-amd64,sam-agent-arm64},
# /opt/sam/current → the running version (switched atomically, only once the
# new version's agents are in place), /etc/sam (configuration, secrets, keys;
# mode 0700, owner sam), /var/lib/sam (SQLite database). The last three
# versions are kept for a rollback: `ln -sfn /opt/sam/<old> /opt/sam/current
# && systemctl restart sam-server` (after restoring a backup taken before the
# upgrade if its migrations changed the database).
#
# --no-systemd installs into $SAM_INSTALL_ROOT (a prefix; may be run without
# root) without a `sam` user or a service: it runs setup and the migrations
# and prints how to start the server. The test suite uses it to install and
# upgrade in a temporary directory.
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

from=""
systemd=1
root="${SAM_INSTALL_ROOT:-}"
setup_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --from) from="${2:?--from needs a directory}"; shift 2 ;;
    --from=*) from="${1#--from=}"; shift ;;
    --no-systemd) systemd=0; shift ;;
    -h|--help) usage 0 ;;
    *) setup_args+=("$1"); shift ;;
  esac
done
[[ -n "$from" ]] || { echo "ERROR: --from DIST is required" >&2; usage 1; }
if [[ $systemd -eq 1 ]]; then
  [[ -z "$root" ]] || { echo "ERROR: SAM_INSTALL_ROOT needs --no-systemd" >&2; exit 1; }
  [[ $(id -u) -eq 0 ]] || { echo "ERROR: run as root (sudo)" >&2; exit 1; }
  command -v systemctl >/dev/null || { echo "ERROR: systemd is required (or --no-systemd)" >&2; exit 1; }
fi
for f in sam-server sam-agent-amd64 sam-agent-arm64; do
  [[ -f "$from/$f" ]] || { echo "ERROR: $from/$f is missing" >&2; exit 1; }
done

here="$(cd "$(dirname "$0")" && pwd)"
version="$("$from/sam-server" --version | awk '{print $2}')"
[[ -n "$version" ]] || { echo "ERROR: cannot read the version of $from/sam-server" >&2; exit 1; }
echo "==> installing SAM $version"

opt="$root/opt/sam" etc="$root/etc/sam" data="$root/var/lib/sam"
if [[ $systemd -eq 1 ]]; then
  if ! id sam >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/sam --no-create-home --shell /usr/sbin/nologin sam
  fi
  install -d -m 0755 "$opt"
  install -d -m 0700 -o sam -g sam "$etc" "$data"
  as_sam=(runuser -u sam --)
else
  install -d -m 0755 "$opt" "$root/usr/local/bin"
  install -d -m 0700 "$etc" "$data"
  as_sam=()
fi

# The new version's directory is complete before anything points at it.
target="$opt/$version"
if [[ ! -d "$target" ]]; then
  staging="$(mktemp -d "$opt/.$version.XXXXXX")"
  for f in sam-server sam-agent-amd64 sam-agent-arm64; do
    install -m 0755 "$from/$f" "$staging/$f"
  done
  chmod 0755 "$staging"
  mv -T "$staging" "$target"
fi
ln -sfn "$opt/current/sam-server" "$root/usr/local/bin/sam-server"

if [[ $systemd -eq 1 ]]; then
  install -m 0644 "$here/systemd/sam-server.service" /etc/systemd/system/sam-server.service
  systemctl daemon-reload
fi

# Setup every time, with the new binary and before the switch: a failure
# leaves the running version running. It keeps what /etc/sam/sam.env holds
# (safe to re-run) and continues a first install that stopped half-way.
database=()
if [[ ! -f "$etc/sam.env" ]]; then
  echo "==> first install: running the setup wizard"
  database=(--database-url "sqlite://$data/sam.db")
  for a in ${setup_args[@]+"${setup_args[@]}"}; do
    if [[ "$a" == --database-url* ]]; then database=(); fi
  done
else
  echo "==> running the setup wizard (it keeps /etc/sam/sam.env and shows what is configured)"
fi
${as_sam[@]+"${as_sam[@]}"} "$target/sam-server" setup --config "$etc/sam.env" \
  ${database[@]+"${database[@]}"} ${setup_args[@]+"${setup_args[@]}"}

# Switch atomically, then restart: ExecStartPre runs the migrations first.
ln -sfn "$target" "$opt/current.new"
mv -T "$opt/current.new" "$opt/current"
if [[ $systemd -eq 1 ]]; then
  systemctl enable sam-server.service >/dev/null
  systemctl restart sam-server.service
  echo "==> SAM $version running (systemctl status sam-server; journalctl -u sam-server -f)"
else
  "$opt/current/sam-server" migrate --config "$etc/sam.env"
  echo "==> SAM $version installed in $opt; start it with: $opt/current/sam-server serve --config $etc/sam.env"
fi

# Keep the three newest versions.
mapfile -t versions < <(find "$opt" -mindepth 1 -maxdepth 1 -type d -not -name '.*' -printf '%T@ %p\n' | sort -rn | awk '{print $2}')
for old in ${versions[@]+"${versions[@]:3}"}; do
  [[ "$(readlink -f "$opt/current")" == "$old" ]] || rm -rf -- "$old"
done
