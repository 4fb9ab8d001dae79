# shellcheck shell=bash
# Sourced by scripts/test (and by hand: `source scripts/test.d/10-postgres.sh`).
#
# Starts a throw-away PostgreSQL cluster for the Postgres store tests and
# exports SAM_TEST_POSTGRES_URL (superuser `sam`, trust auth, loopback only,
# database `postgres`; each test creates its own database in it). Installs the
# Debian `postgresql` package when its binaries are missing. initdb refuses to
# run as root, so as root the cluster runs as the `postgres` user (created if
# absent). The cluster lives in a temp dir and is stopped and removed on exit
# by an EXIT trap that chains any trap already set.
#
# The cluster is for tests: fsync is off. Fails loudly (non-zero) when
# PostgreSQL cannot be installed or started; the Postgres tests themselves
# fail when SAM_TEST_POSTGRES_URL is unset unless SAM_SKIP_POSTGRES=1.

__sam_pg_main() {
  if [[ -n "${SAM_TEST_POSTGRES_URL:-}" && -n "${__SAM_PG_DIR:-}" && -d "${__SAM_PG_DIR}" ]]; then
    echo "PostgreSQL test cluster already running: ${SAM_TEST_POSTGRES_URL}"
    return 0
  fi

  local initdb
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -z "$initdb" ]]; then
    echo "PostgreSQL binaries missing: installing the Debian package postgresql"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z "$initdb" ]]; then
      echo "ERROR: PostgreSQL could not be installed; the Postgres store tests cannot run" >&2
      return 1
    fi
  fi
  local bindir
  bindir=$(dirname "$initdb")

  local as=()
  local owner
  owner=$(id -un)
  if [[ $(id -u) -eq 0 ]]; then
    owner=postgres
    if ! id "$owner" >/dev/null 2>&1; then
      useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$owner"
    fi
    as=(runuser -u "$owner" --)
  fi

  local dir
  dir=$(mktemp -d /tmp/sam-pg.XXXXXX)
  chmod 0755 "$dir"
  chown "$owner" "$dir"
  "${as[@]}" "$bindir/initdb" -D "$dir/data" -U sam --auth=trust --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    echo "ERROR: initdb failed" >&2
    return 1
  }

  local port started=0 attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 40000))
    # Skip ports something already listens on.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      continue
    fi
    if "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
      start >/dev/null; then
      started=1
      break
    fi
    echo "PostgreSQL did not start on port $port (attempt $attempt), retrying; its log:" >&2
    tail -n 5 "$dir/server.log" >&2 || true
  done
  if [[ $started -ne 1 ]]; then
    cat "$dir/server.log" >&2 || true
    echo "ERROR: could not start the PostgreSQL test cluster" >&2
    return 1
  fi

  __SAM_PG_DIR="$dir"
  __SAM_PG_BINDIR="$bindir"
  __SAM_PG_AS=("${as[@]}")
  export SAM_TEST_POSTGRES_URL="postgres://sam@127.0.0.1:${port}/postgres"

  # Chain with any EXIT trap already set: capture its exact command text.
  __sam_pg_prev_trap=""
  __sam_pg_capture_trap() { __sam_pg_prev_trap="$2"; }
  eval "$(trap -p EXIT | sed 's/^trap /__sam_pg_capture_trap /')"
  trap '__sam_pg_cleanup; eval "${__sam_pg_prev_trap}"' EXIT
  echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') test cluster on port ${port}: SAM_TEST_POSTGRES_URL=${SAM_TEST_POSTGRES_URL}"
}

__sam_pg_cleanup() {
  if [[ -n "${__SAM_PG_DIR:-}" && -d "${__SAM_PG_DIR}" ]]; then
    "${__SAM_PG_AS[@]}" "${__SAM_PG_BINDIR}/pg_ctl" -D "${__SAM_PG_DIR}/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "${__SAM_PG_DIR}"
  fi
  __SAM_PG_DIR=""
  unset SAM_TEST_POSTGRES_URL
}

__sam_pg_main
