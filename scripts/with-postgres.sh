#!/usr/bin/env bash
# Runs a command beside a private, throw-away PostgreSQL server:
#
#   scripts/with-postgres.sh cargo test --all-features
#
# initdb makes a cluster in a new temporary directory, the server listens on
# a socket in that directory and on 127.0.0.1 at a free private port, and
# PEERLOG_PG_URL names it (a key=value connection string) for the command.
# On exit, whatever the command did, the server is stopped and the
# directory removed. PostgreSQL refuses to run as root, so as root the
# server runs as the `postgres` user (runuser); otherwise as the current
# user. The binaries (initdb, pg_ctl, postgres) must be on PATH, or in
# PG_BIN. The exit status is the command's.
#
# Local connections (the socket) are trusted; TCP connections need a
# password (scram-sha-256): the superuser gets the password exported in
# PEERLOG_PG_PASSWORD, and PEERLOG_PG_TCP_URL names the TCP listener without
# it, so tests can try a wrong one.
#
# The server runs with fsync=off (a throw-away cluster: faster tests); set
# PEERLOG_PG_FSYNC=on for figures that include the server's fsync, as
# benches/postgres.rs asks.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi

if [ -n "${PG_BIN:-}" ]; then
  PATH="$PG_BIN:$PATH"
fi
for tool in initdb pg_ctl postgres; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$0: $tool is not on PATH (install PostgreSQL's server binaries, or set PG_BIN)" >&2
    exit 2
  fi
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/peerlog-pg.XXXXXX")
chmod 0755 "$dir"
if [ "$(id -u)" -eq 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "$0: running as root, but there is no 'postgres' user to run the server as" >&2
    rmdir "$dir"
    exit 2
  fi
  chown postgres: "$dir"
  as_db() { runuser -u postgres -- "$@"; }
  db_user=postgres
else
  as_db() { "$@"; }
  db_user=$(id -un)
fi

started=0
cleanup() {
  status=$?
  if [ "$started" -eq 1 ]; then
    as_db pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

password=peerlog-test-$$-$RANDOM
printf '%s\n' "$password" >"$dir/pwfile"
chmod 0600 "$dir/pwfile"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir/pwfile"
as_db initdb -D "$dir/data" -U "$db_user" --pwfile="$dir/pwfile" \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  exit 1
}
rm -f "$dir/pwfile"

# A free port: try a few random ones; pg_ctl fails if the port is taken.
for attempt in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 40000))
  if as_db pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=200 -c fsync=${PEERLOG_PG_FSYNC:-off}" \
    start >/dev/null 2>&1; then
    started=1
    break
  fi
done
if [ "$started" -ne 1 ]; then
  echo "$0: the PostgreSQL server did not start; its log:" >&2
  cat "$dir/server.log" >&2 || true
  exit 1
fi

export PEERLOG_PG_URL="host=$dir port=$port user=$db_user dbname=postgres"
export PEERLOG_PG_PASSWORD="$password"
export PEERLOG_PG_TCP_URL="host=127.0.0.1 port=$port user=$db_user dbname=postgres"
echo "with-postgres: PostgreSQL $(postgres --version | awk '{print $3}') at $PEERLOG_PG_URL (TCP 127.0.0.1:$port)" >&2
"$@"
