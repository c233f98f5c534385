#!/usr/bin/env bash
# Makes sure the server binaries TwoPC's tests and demo need are on this machine, installing them
# with apt when missing. Idempotent; starts nothing (tests and the demo start private servers via
# Testing/TwoPC.TestServers, which runs the same apt command itself when the binaries are missing).
#
#   scripts/ensure-servers.sh              PostgreSQL server binaries (initdb, pg_ctl, postgres)
#   scripts/ensure-servers.sh --rabbitmq   ... and rabbitmq-server
#   scripts/ensure-servers.sh --rabbitmq --no-postgres
#
# Needs root (or password-less sudo) only when something must be installed. apt runs are
# serialized machine-wide with flock on /var/lock/twopc-test-servers-apt.lock, the lock the C#
# installer takes too. Package services are kept from starting during the install (policy-rc.d),
# so no Debian cluster on 5432 and no system RabbitMQ get started.
#
# Environment: TWOPC_PG_BINDIR (use that PostgreSQL bin directory; nothing is installed),
# APT_TIMEOUT_SECONDS (per apt command, default 900).
set -euo pipefail

want_postgres=1
want_rabbitmq=0
for arg in "$@"; do
  case "$arg" in
    --rabbitmq) want_rabbitmq=1 ;;
    --no-postgres) want_postgres=0 ;;
    --postgres) want_postgres=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "ensure-servers.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

apt_timeout="${APT_TIMEOUT_SECONDS:-900}"
lock_file=/var/lock/twopc-test-servers-apt.lock
[ -d /var/lock ] || lock_file="${TMPDIR:-/tmp}/twopc-test-servers-apt.lock"
policy_rc_d=/usr/sbin/policy-rc.d

log() { echo "ensure-servers: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

has_pg_server() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

# Same search order as Testing/TwoPC.TestServers (PostgresBinaries.cs).
find_pg_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir="$(timeout 15 pg_config --bindir 2>/dev/null || true)"
    if [ -n "$dir" ] && has_pg_server "$dir"; then echo "$dir"; return 0; fi
  fi
  if [ -d /usr/lib/postgresql ]; then
    for dir in $(ls -1 /usr/lib/postgresql | sort -rV); do
      if has_pg_server "/usr/lib/postgresql/$dir/bin"; then echo "/usr/lib/postgresql/$dir/bin"; return 0; fi
    done
  fi
  dir="$(command -v pg_ctl 2>/dev/null || true)"
  if [ -n "$dir" ] && has_pg_server "$(dirname "$dir")"; then dirname "$dir"; return 0; fi
  for dir in /usr/local/pgsql/bin /usr/pgsql/bin; do
    if has_pg_server "$dir"; then echo "$dir"; return 0; fi
  done
  return 1
}

find_rabbitmq() {
  local name dir
  for name in rabbitmq-server rabbitmqctl; do
    for dir in $(echo "$PATH" | tr ':' ' ') /usr/sbin /usr/lib/rabbitmq/bin /usr/local/sbin; do
      if [ -x "$dir/$name" ]; then echo "$dir/$name"; return 0; fi
    done
  done
  return 1
}

# apt_install PACKAGE... : serialized, non-interactive, without starting services.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* yourself (this is not an apt-based machine)."
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "installing $* needs root (or password-less sudo); run this script as root."
    fi
  fi

  # fd 9 holds the machine-wide lock until this function's subshell ends.
  (
    if ! { exec 9>>"$lock_file"; } 2>/dev/null; then exec 9<"$lock_file"; fi
    chmod 0666 "$lock_file" 2>/dev/null || true
    log "waiting for $lock_file"
    flock -w 1800 9 || die "timed out waiting for $lock_file"

    # Re-check under the lock: a parallel test run may have installed it meanwhile.
    if [ "$#" -eq 1 ] && [ "$1" = postgresql ] && find_pg_bindir >/dev/null; then exit 0; fi
    if [ "$#" -eq 1 ] && [ "$1" = rabbitmq-server ] && find_rabbitmq >/dev/null; then exit 0; fi

    created_policy=0
    if [ "$(id -u)" -eq 0 ] && [ ! -e "$policy_rc_d" ]; then
      printf '#!/bin/sh\n# Temporary, from scripts/ensure-servers.sh: do not start services while installing.\nexit 101\n' >"$policy_rc_d"
      chmod 0755 "$policy_rc_d"
      created_policy=1
    fi
    trap '[ "$created_policy" -eq 1 ] && rm -f "$policy_rc_d"' EXIT

    apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a APT_LISTCHANGES_FRONTEND=none
         apt-get -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    log "apt-get update"
    timeout "$apt_timeout" "${apt[@]}" update </dev/null || log "apt-get update failed; trying to install anyway"
    log "apt-get install -y --no-install-recommends $*"
    timeout "$apt_timeout" "${apt[@]}" install -y --no-install-recommends "$@" </dev/null
  )
}

if [ "$want_postgres" -eq 1 ]; then
  if [ -n "${TWOPC_PG_BINDIR:-}" ]; then
    has_pg_server "$TWOPC_PG_BINDIR" || die "TWOPC_PG_BINDIR=$TWOPC_PG_BINDIR lacks initdb, pg_ctl or postgres."
    bindir="$TWOPC_PG_BINDIR"
  elif ! bindir="$(find_pg_bindir)"; then
    log "PostgreSQL server binaries not found; installing with apt"
    apt_install postgresql
    bindir="$(find_pg_bindir)" || die "apt-get install postgresql succeeded but initdb/pg_ctl/postgres are still not found."
  fi
  log "PostgreSQL: $bindir ($(timeout 15 "$bindir/postgres" --version))"
fi

if [ "$want_rabbitmq" -eq 1 ]; then
  if ! rabbit="$(find_rabbitmq)"; then
    log "RabbitMQ server not found; installing with apt"
    apt_install rabbitmq-server
    rabbit="$(find_rabbitmq)" || die "apt-get install rabbitmq-server succeeded but rabbitmq-server/rabbitmqctl are still not found."
  fi
  log "RabbitMQ: $rabbit (not started)"
fi
