#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the test suite, on 127.0.0.1 only. Idempotent: run it again and it
# reuses the running server (or restarts the existing cluster).
#
# Installs PostgreSQL from Debian's packages when it is missing (needs root), initialises a cluster owned by
# a non-root user, creates the login role modelyard/modelyard (allowed to create databases: each test gets
# its own) and the database modelyard, waits until it accepts connections, and prints on stdout, as its last
# line:
#
#   export MODELYARD_TEST_POSTGRES_URL=postgresql+psycopg://modelyard:modelyard@127.0.0.1:54329/modelyard
#
# Everything else goes to stderr, so `eval "$(.ci/start-postgres.sh)"` works. Stop it with
# .ci/stop-postgres.sh. Settings: MODELYARD_PG_PORT, MODELYARD_PG_DIR (see .ci/_postgres-lib.sh).
set -euo pipefail

# shellcheck source=.ci/_postgres-lib.sh
. "$(dirname "$0")/_postgres-lib.sh"

started_at=$(date +%s.%N)

# --- binaries --------------------------------------------------------------------------------------------
if ! find_pg_bin; then
    [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed; as root run: apt-get install -y postgresql"
    log "PostgreSQL not found: installing it from Debian's packages"
    # Do not let the package create and start its own cluster on port 5432: this script runs its own.
    mkdir -p /etc/postgresql-common
    if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
        echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
    fi
    # Keep that file as written here when the package's postinst offers its own version (through ucf).
    export DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql >&2
    find_pg_bin || die "PostgreSQL was installed but initdb/pg_ctl are not in /usr/lib/postgresql/*/bin"
fi
log "using $("$PG_BIN/postgres" --version) from $PG_BIN"

# --- the OS user and the folders --------------------------------------------------------------------------
if ! id "$PG_OS_USER" >/dev/null 2>&1; then
    log "creating the system user $PG_OS_USER"
    useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home --shell /bin/sh "$PG_OS_USER"
fi
mkdir -p "$PG_BASE"
if [ "$(id -u)" -eq 0 ]; then
    chown "$PG_OS_USER:" "$PG_BASE"
fi
chmod 700 "$PG_BASE"
as_pg_user mkdir -p "$PG_SOCKET_DIR"
as_pg_user test -w "$PG_BASE" || die "$PG_OS_USER cannot write to $PG_BASE; set MODELYARD_PG_DIR elsewhere"

# --- the cluster ------------------------------------------------------------------------------------------
if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "initialising a cluster in $PG_DATA"
    as_pg_user rm -rf "$PG_DATA"  # a half-initialised folder from an interrupted run
    # The superuser is the OS user, reachable only through the private socket (peer auth); over TCP only
    # password logins are accepted.
    as_pg_user "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_OS_USER" -E UTF8 --no-locale \
        --auth-local=peer --auth-host=scram-sha-256 >"$PG_BASE/initdb.log" 2>&1 \
        || { cat "$PG_BASE/initdb.log" >&2; die "initdb failed"; }
    as_pg_user sh -c "cat >>'$PG_DATA/postgresql.conf'" <<EOF

# --- written by .ci/start-postgres.sh: a throwaway server for tests ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
# Durability is not what these tests check on the server side; speed is welcome.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
fi

if pg_running; then
    log "already running (cluster $PG_DATA)"
else
    log "starting on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
    if ! as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >&2; then
        tail -n 30 "$PG_LOG" >&2 || true
        die "the server did not start (is port $PG_PORT taken? set MODELYARD_PG_PORT)"
    fi
fi

for _ in $(seq 1 120); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
        break
    fi
    sleep 0.25
done
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || die "the server does not accept connections"

# --- role and database -------------------------------------------------------------------------------------
superuser_psql() {
    as_pg_user "$PG_BIN/psql" -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U "$PG_OS_USER" -d postgres \
        -v ON_ERROR_STOP=1 -qAtX "$@"
}
superuser_psql <<EOF
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_APP_USER') THEN
        CREATE ROLE $PG_APP_USER LOGIN CREATEDB PASSWORD '$PG_APP_PASSWORD';
    ELSE
        ALTER ROLE $PG_APP_USER LOGIN CREATEDB PASSWORD '$PG_APP_PASSWORD';
    END IF;
END
\$\$;
EOF
if [ "$(superuser_psql -c "SELECT 1 FROM pg_database WHERE datname = '$PG_APP_DB'")" != "1" ]; then
    superuser_psql -c "CREATE DATABASE $PG_APP_DB OWNER $PG_APP_USER"
fi

# The check the tests depend on: a password login over TCP.
PGPASSWORD="$PG_APP_PASSWORD" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_APP_USER" \
    -d "$PG_APP_DB" -qAtX -c "SELECT 1" >/dev/null || die "cannot log in as $PG_APP_USER over TCP"

log "ready in $(awk -v a="$started_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
echo "export MODELYARD_TEST_POSTGRES_URL=postgresql+psycopg://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$PG_PORT/$PG_APP_DB"
