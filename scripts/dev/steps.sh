# shellcheck shell=bash
# Running checks, recording their results and printing the summary. Sourced by ./dev.

RESULT_NAMES=()
RESULT_CODES=()
RESULT_SECONDS=()
RESULT_NOTES=()
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0
PYTEST_RAN=""
KEEP_GOING=""
QUIET_OUTPUT=""
PYTEST_TIMEOUT=${DEV_PYTEST_TIMEOUT:-900}
STOPPED=""

# record_result NAME EXIT_CODE SECONDS NOTE
record_result() {
    RESULT_NAMES+=("$1")
    RESULT_CODES+=("$2")
    RESULT_SECONDS+=("$3")
    RESULT_NOTES+=("$4")
}

# should_run NAME : false (and recorded as not run) once a step failed without --keep-going.
should_run() {
    if [[ -n $STOPPED ]]; then
        record_result "$1" - "-" "not run: an earlier step failed (use --keep-going)"
        return 1
    fi
}

after_step() {
    if (($1 != 0)) && [[ -z $KEEP_GOING ]]; then STOPPED=1; fi
}

# run_step NAME CMD... : run a check in the main virtualenv's environment.
run_step() {
    local name=$1 start rc=0
    shift
    should_run "$name" || return 0
    log "==> ${name}: $*"
    start=$(now)
    "$@" || rc=$?
    record_result "$name" "$rc" "$(elapsed "$start")" ""
    after_step "$rc"
}

# pytest_counts LOG -> "N passed, N failed, ..." from pytest's closing line.
pytest_counts() {
    { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^(=+ )?[0-9]+ [a-z]+(, [0-9]+ [a-z]+)* in [0-9.]+s' | tail -n 1 |
        grep -oE '[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)' |
        paste -sd, - | sed 's/,/, /g'; } || true
}

add_totals() {
    local counts=$1 n word
    while read -r n word; do
        case $word in
            passed) TOTAL_PASSED=$((TOTAL_PASSED + n)) ;;
            failed | error | errors) TOTAL_FAILED=$((TOTAL_FAILED + n)) ;;
            skipped) TOTAL_SKIPPED=$((TOTAL_SKIPPED + n)) ;;
        esac
    done < <(tr ',' '\n' <<<"$counts" | sed 's/^ *//')
}

# run_pytest NAME VENV DB TAG ARGS... : one matrix entry; TAG keeps its databases apart.
run_pytest() {
    local name=$1 venv=$2 db=$3 tag=$4 start rc=0 logfile counts note color=() limit
    shift 4
    should_run "$name" || return 0
    logfile="$RUN_DIR/${tag}.log"
    [[ -t 1 ]] && color=(--color=yes)
    # Not interactive: timeout kills pytest's whole process group (workers included).
    limit=(timeout --kill-after=30 "$PYTEST_TIMEOUT")
    [[ -t 0 ]] && limit=(timeout --foreground --kill-after=30 "$PYTEST_TIMEOUT")
    log "==> ${name}: GEARTRAIN_TEST_DB=${db} pytest $*${QUIET_OUTPUT:+ (output shown when done)}"
    start=$(now)
    set +e
    if [[ -n $QUIET_OUTPUT ]]; then
        pytest_env "$db" "$tag" "${limit[@]}" "$venv/bin/python" -m pytest "$@" >"$logfile" 2>&1
        rc=$?
    else
        pytest_env "$db" "$tag" "${limit[@]}" "$venv/bin/python" -m pytest "${color[@]}" "$@" 2>&1 |
            tee "$logfile"
        rc=${PIPESTATUS[0]}
    fi
    set -e
    counts=$(pytest_counts "$logfile")
    add_totals "$counts"
    PYTEST_RAN=1
    note=${counts:-"pytest stopped before running any test: see its output above"}
    case $rc in
        5) note="no tests collected (exit 5 counts as a failure)" ;;
        124 | 137) note="timed out after ${PYTEST_TIMEOUT} s; ${note}" ;;
    esac
    record_result "$name" "$rc" "$(elapsed "$start")" "$note"
    after_step "$rc"
}

# pytest_env DB TAG CMD... : CMD with the test settings' variables for one matrix entry.
pytest_env() {
    local db=$1 tag=$2
    shift 2
    GEARTRAIN_TEST_DB=$db \
        GEARTRAIN_PG_TEST_NAME="$(test_db_name "$tag")" \
        GEARTRAIN_MYSQL_TEST_NAME="$(test_db_name "$tag")" \
        GEARTRAIN_SQLITE_FILE="$RUN_DIR/${tag}.sqlite3" \
        PYTHONUNBUFFERED=1 \
        "$@"
}

# dump_results FILE / load_results FILE : hand a background lane's results to the parent.
dump_results() {
    local i
    for i in "${!RESULT_NAMES[@]}"; do
        printf '%s\t%s\t%s\t%s\n' "${RESULT_NAMES[$i]}" "${RESULT_CODES[$i]}" \
            "${RESULT_SECONDS[$i]}" "${RESULT_NOTES[$i]}"
    done >"$1"
    printf 'totals\t%s\t%s\t%s\t%s\n' "$TOTAL_PASSED" "$TOTAL_FAILED" "$TOTAL_SKIPPED" \
        "$PYTEST_RAN" >>"$1"
}

load_results() {
    local name code seconds note extra
    while IFS=$'\t' read -r name code seconds note extra; do
        if [[ $name == totals ]]; then
            TOTAL_PASSED=$((TOTAL_PASSED + code))
            TOTAL_FAILED=$((TOTAL_FAILED + seconds))
            TOTAL_SKIPPED=$((TOTAL_SKIPPED + note))
            PYTEST_RAN=${PYTEST_RAN:-$extra}
        else
            record_result "$name" "$code" "$seconds" "$note"
        fi
    done <"$1"
}

# test_db_name TAG -> a database name unique to this ./dev run and matrix entry.
test_db_name() { printf 'geartrain_test_%s_%s' "${1//-/_}" "$$"; }

# drop_test_databases TAG... : remove what a crashed or interrupted run left behind.
drop_test_databases() {
    local tag name
    for tag in "$@"; do
        name=$(test_db_name "$tag")
        if command -v psql >/dev/null && postgresql_ready; then
            psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS ${name}" \
                >/dev/null 2>&1 || true
        fi
        if command -v mariadb >/dev/null && mysql_ready; then
            mariadb --protocol=tcp -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS ${name}" \
                >/dev/null 2>&1 || true
        fi
    done
}

# print_summary -> exit code for the whole command (0 only if every step passed).
print_summary() {
    local i code status failed=0
    printf '\n[dev] %-34s %-8s %5s %8s  %s\n' "step" "result" "exit" "seconds" "details"
    printf '[dev] %s\n' "$(printf '%.0s-' {1..90})"
    for i in "${!RESULT_NAMES[@]}"; do
        code=${RESULT_CODES[$i]}
        case $code in
            0) status=passed ;;
            -) status="not run" failed=1 ;;
            *) status=FAILED failed=1 ;;
        esac
        printf '[dev] %-34s %-8s %5s %8s  %s\n' "${RESULT_NAMES[$i]}" "$status" "$code" \
            "${RESULT_SECONDS[$i]}" "${RESULT_NOTES[$i]}"
    done
    printf '[dev] %s\n' "$(printf '%.0s-' {1..90})"
    printf '[dev] total time %s s: %s\n' "$(elapsed "$RUN_START")" \
        "$( ((failed)) && echo FAILED || echo 'all passed')"
    # Last, alone on its line: the test counts of every pytest run added up.
    if [[ -n $PYTEST_RAN ]]; then
        printf 'total: %d passed, %d failed, %d skipped\n' "$TOTAL_PASSED" "$TOTAL_FAILED" \
            "$TOTAL_SKIPPED"
    fi
    return "$failed"
}
