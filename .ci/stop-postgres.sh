#!/usr/bin/env bash
# Stop the server started by .ci/start-postgres.sh (idempotent). With --purge, also delete its cluster folder.
set -euo pipefail

# shellcheck source=.ci/_postgres-lib.sh
. "$(dirname "$0")/_postgres-lib.sh"

purge=0
case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) die "usage: $0 [--purge]" ;;
esac

if [ -d "$PG_BASE" ] && find_pg_bin && pg_running; then
    log "stopping the server in $PG_DATA"
    as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >&2
else
    log "not running"
fi

if [ "$purge" -eq 1 ] && [ -d "$PG_BASE" ]; then
    log "deleting $PG_BASE"
    rm -rf "$PG_BASE"
fi
