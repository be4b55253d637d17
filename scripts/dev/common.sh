# shellcheck shell=bash
# Shared helpers for ./dev: logging, timing, locking. Sourced, never run.

log() { printf '[dev] %s\n' "$*"; }

warn() { printf '[dev] WARNING: %s\n' "$*" >&2; }

die() {
    printf '[dev] ERROR: %s\n' "$*" >&2
    exit 1
}

# Seconds since the epoch with microseconds (bash 5's EPOCHREALTIME).
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }

# elapsed START -> seconds with one decimal since START (a now() value).
elapsed() {
    local start=$1 end
    end=$(now)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }'
}

# with_lock NAME CMD... : run CMD holding an exclusive lock, so two ./dev runs on this
# work tree never install into the same virtualenv at once.
with_lock() {
    local name=$1 key lockfile rc lock_fd
    shift
    key=$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)
    lockfile="${TMPDIR:-/tmp}/geartrain-dev-${key}-${name}.lock"
    exec {lock_fd}>"$lockfile"
    if ! flock -n "$lock_fd"; then
        log "waiting for another ./dev to finish with ${name} (lock ${lockfile})"
        flock -w 900 "$lock_fd" || die "gave up after 900 s waiting for lock ${lockfile}"
    fi
    rc=0
    "$@" || rc=$?
    exec {lock_fd}>&-
    return "$rc"
}
