#!/bin/sh
# run.sh -- run libFuzzer targets for a while each, on a scratch copy of
# their committed corpus, and report one line per target.
#
#   usage: tests/fuzz/run.sh SECONDS target...    (target: ws, utf8, http, ...)
#
# Each target is build-fuzz/fuzz_<target> (built by `make fuzz`). It runs on
# build-fuzz/corpus-<target>/, a fresh copy of tests/fuzz/corpus/<target>/, so
# the inputs it finds never land in the committed corpus; it uses
# tests/fuzz/fuzz_<target>.dict when there is one. Crash inputs go to
# build-fuzz/artifacts-<target>/ and the full log to build-fuzz/fuzz_<target>.log.
# Prints "fuzz_<target>: N execs, ok" per target; exits 1 if any target
# crashed, leaked, timed out on an input, or could not run. With FUZZ_RUNS=N
# set, each target runs N executions instead of SECONDS (the long run of
# docs/reliability.md: `make fuzz FUZZ_RUNS=10000000`). With FUZZ_JUNIT
# set to a path, also writes JUnit XML there, one testcase per target, for
# tests/run.sh's summary.
set -u

usage() {
    echo "usage: $0 SECONDS target..." >&2
    exit 2
}

[ $# -ge 2 ] || usage
secs=$1
shift
case $secs in
'' | *[!0-9]*) usage ;;
esac

cd "$(dirname "$0")/../.." || exit 1
out=build-fuzz
mkdir -p "$out" || exit 1
failed=0
cases=""

# case_xml NAME FAILURE_MESSAGE: one JUnit testcase (message empty: passed).
case_xml() {
    if [ -z "$2" ]; then
        cases="$cases<testcase classname=\"fuzz\" name=\"$1\"/>"
    else
        cases="$cases<testcase classname=\"fuzz\" name=\"$1\"><failure message=\"$2\"/></testcase>"
    fi
}

for t in "$@"; do
    bin=$out/fuzz_$t
    corpus=tests/fuzz/corpus/$t
    scratch=$out/corpus-$t
    artifacts=$out/artifacts-$t
    log=$out/fuzz_$t.log
    dict=tests/fuzz/fuzz_$t.dict

    if [ ! -x "$bin" ]; then
        echo "fuzz_$t: $bin not built (run make fuzz), FAILED"
        case_xml "fuzz_$t" "not built"
        failed=1
        continue
    fi
    rm -rf "$scratch" "$artifacts"
    mkdir -p "$scratch" "$artifacts" || exit 1
    if [ -d "$corpus" ]; then
        cp -R "$corpus"/. "$scratch"/ || exit 1
    fi
    dictarg=
    [ -f "$dict" ] && dictarg=-dict=$dict
    if [ -n "${FUZZ_RUNS:-}" ]; then
        limit=-runs=$FUZZ_RUNS
    else
        limit=-max_total_time=$secs
    fi
    "$bin" "$limit" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" ${dictarg:+"$dictarg"} "$scratch" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ $rc -eq 0 ] && [ -n "$execs" ]; then
        echo "fuzz_$t: $execs execs, ok"
        case_xml "fuzz_$t ($execs execs)" ""
    else
        case_xml "fuzz_$t" "exit $rc: see $log and $artifacts"
        echo "fuzz_$t: FAILED (exit $rc), log in $log, inputs in $artifacts/:"
        tail -n 40 "$log" | sed 's/^/    /'
        failed=1
    fi
done
if [ -n "${FUZZ_JUNIT:-}" ]; then
    printf '<?xml version="1.0"?>\n<testsuite name="fuzz">%s</testsuite>\n' "$cases" \
        >"$FUZZ_JUNIT"
fi
exit $failed
