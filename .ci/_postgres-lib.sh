# Shared by .ci/start-postgres.sh and .ci/stop-postgres.sh (sourced, not run).
#
# Settings (environment):
#   MODELYARD_PG_PORT  port on 127.0.0.1 (default 54329)
#   MODELYARD_PG_DIR   folder for the cluster, its socket and its log (default ${TMPDIR:-/tmp}/modelyard-postgres-PORT)

PG_PORT="${MODELYARD_PG_PORT:-54329}"
PG_BASE="${MODELYARD_PG_DIR:-${TMPDIR:-/tmp}/modelyard-postgres-${PG_PORT}}"
PG_DATA="${PG_BASE}/data"
PG_SOCKET_DIR="${PG_BASE}/socket"
PG_LOG="${PG_BASE}/postgres.log"
PG_APP_USER=modelyard
PG_APP_PASSWORD=modelyard
PG_APP_DB=modelyard

log() { printf '%s\n' "[postgres] $*" >&2; }
die() { log "error: $*"; exit 1; }

# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user; otherwise as
# whoever runs the script.
if [ "$(id -u)" -eq 0 ]; then
    PG_OS_USER=postgres
else
    PG_OS_USER="$(id -un)"
fi

# Run a command as the server's OS user, in a folder it can enter.
as_pg_user() {
    if [ "$(id -u)" -ne 0 ]; then
        (cd "$PG_BASE" && "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd "$PG_BASE" && runuser -u "$PG_OS_USER" -- "$@")
    else
        local quoted
        quoted="$(printf '%q ' "$@")"
        (cd "$PG_BASE" && su -s /bin/sh "$PG_OS_USER" -c "$quoted")
    fi
}

# Set PG_BIN to the folder holding initdb, pg_ctl, postgres and psql, or return 1.
# Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH.
find_pg_bin() {
    local candidate pg_ctl_path
    if pg_ctl_path="$(command -v pg_ctl 2>/dev/null)" && command -v initdb >/dev/null 2>&1; then
        candidate="$(dirname "$(readlink -f "$pg_ctl_path")")"
        if [ -x "$candidate/initdb" ] && [ -x "$candidate/postgres" ] && [ -x "$candidate/psql" ]; then
            PG_BIN="$candidate"
            return 0
        fi
    fi
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
        if [ -x "$candidate/pg_ctl" ] && [ -x "$candidate/initdb" ] && [ -x "$candidate/postgres" ] \
            && [ -x "$candidate/psql" ]; then
            PG_BIN="$candidate"
            return 0
        fi
    done
    return 1
}

pg_running() {
    [ -f "$PG_DATA/PG_VERSION" ] && as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}
