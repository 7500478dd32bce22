# Shared helpers of the deployment tests (sourced).
# shellcheck shell=bash

DEPLOY_TEST_PASSED=${DEPLOY_TEST_PASSED:-0}
DEPLOY_TEST_FAILED=${DEPLOY_TEST_FAILED:-0}
DEPLOY_TEST_FAILURES=()

# check NAME COMMAND...: runs COMMAND, output to a log, counts pass/fail.
check() {
    local name="$1"; shift
    local log t0 secs
    log="$DEPLOY_TEST_LOGS/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
    t0=$(date +%s)
    if ("$@") >"$log" 2>&1; then
        secs=$(($(date +%s) - t0))
        DEPLOY_TEST_PASSED=$((DEPLOY_TEST_PASSED + 1))
        printf 'ok   %s (%ss)\n' "$name" "$secs"
    else
        secs=$(($(date +%s) - t0))
        DEPLOY_TEST_FAILED=$((DEPLOY_TEST_FAILED + 1))
        DEPLOY_TEST_FAILURES+=("$name")
        printf 'FAIL %s (%ss, log: %s)\n' "$name" "$secs" "$log"
        sed 's/^/     | /' "$log" | tail -n 40
    fi
}

# check_fails NAME COMMAND...: COMMAND must fail (a negative control).
check_fails() {
    local name="$1"; shift
    check "$name" negate "$@"
}

negate() {
    if "$@"; then
        echo "expected a failure, the command succeeded: $*"
        return 1
    fi
    return 0
}

# need TOOL...: a missing tool is a failure, never a skip.
need() {
    local t missing=0
    for t in "$@"; do
        if ! command -v "$t" >/dev/null 2>&1; then
            printf 'FAIL required tool not found: %s\n' "$t" >&2
            missing=1
        fi
    done
    return "$missing"
}
