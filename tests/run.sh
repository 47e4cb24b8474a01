#!/bin/sh
# run.sh -- run every test suite against one or more builds and print one summary.
#
#   tests/run.sh BUILDDIR [BUILDDIR...]        e.g. tests/run.sh build build-san
#
# For each BUILDDIR: every unit test binary BUILDDIR/tests/test_* (cmocka, JUnit
# XML via CMOCKA_MESSAGE_OUTPUT=xml), then the integration suite with
# HERALD_BIN=BUILDDIR/herald. Then, once, the tree's structure checks
# (tests/structure), the Debian package (tests/package) and the PHP unit
# suite, if php-client/phpunit.xml.dist exists. tests/lib/summary.py reads the
# result files and prints one line per suite, then "N passed, N failed"; the exit
# status is non-zero if anything failed, was skipped, crashed or timed out,
# or if no test ran at all.
#
# Results go to $HERALD_TEST_OUT (default build/test-results). Every step runs
# under timeout(1), so a hang fails its suite instead of stalling CI:
# HERALD_UNIT_TIMEOUT (120 s per binary), HERALD_SUITE_TIMEOUT (1200 s for
# the integration suite and for phpunit), HERALD_PACKAGE_TIMEOUT (2400 s for the
# package suite). With HERALD_FUZZ_SECONDS set, every
# built fuzz target in build-fuzz/ also runs that long (`make test` sets it).
set -u

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILDDIR [BUILDDIR...]" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
OUT=${HERALD_TEST_OUT:-$ROOT/build/test-results}
UNIT_TIMEOUT=${HERALD_UNIT_TIMEOUT:-120}
SUITE_TIMEOUT=${HERALD_SUITE_TIMEOUT:-1200}
PACKAGE_TIMEOUT=${HERALD_PACKAGE_TIMEOUT:-2400}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MANIFEST=$OUT/manifest.tsv
: > "$MANIFEST"

# record SUITE COMPONENT RESULT_FILE EXIT_STATUS: one line for summary.py.
record() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$MANIFEST"
}

for b in "$@"; do
    case "$b" in
        /*) bdir=$b ;;
        *) bdir=$ROOT/$b ;;
    esac
    name=$(basename "$b")
    out=$OUT/$name
    rm -rf "$out"
    mkdir -p "$out"

    # Unit tests. cmocka will not overwrite an existing XML file (it writes
    # to stderr instead), hence the fresh directory above.
    found=0
    for t in "$bdir"/tests/test_*; do
        [ -f "$t" ] && [ -x "$t" ] || continue
        tn=$(basename "$t")
        # A binary left from a test file since renamed or removed is not a test any more.
        [ -f "$ROOT/tests/unit/$tn.c" ] || { echo "== unit $name: $tn skipped: no tests/unit/$tn.c"; continue; }
        found=1
        echo "== unit $name: $tn"
        CMOCKA_MESSAGE_OUTPUT=xml CMOCKA_XML_FILE="$out/unit-$tn-%g.xml" \
            timeout -k 10 "$UNIT_TIMEOUT" "$t" > "$out/unit-$tn.log" 2>&1
        rc=$?
        [ $rc -eq 0 ] || tail -n 40 "$out/unit-$tn.log"
        record "unit $name" "$tn" "$out/unit-$tn-*.xml" $rc
    done
    [ $found -eq 1 ] || record "unit $name" "(no test binaries in $bdir/tests)" "" 127

    # Integration tests against this build's daemon.
    echo "== integration $name: HERALD_BIN=$bdir/herald"
    (cd "$ROOT" && HERALD_BIN="$bdir/herald" timeout -k 20 "$SUITE_TIMEOUT" \
        $PY -m pytest -p no:cacheprovider tests/integration \
        --junitxml="$out/integration.xml" -q)
    record "integration $name" "pytest" "$out/integration.xml" $?
done

# The C tree's shape (layers, include cycles, file length), once.
echo "== structure: tests/structure"
(cd "$ROOT" && timeout -k 10 120 $PY -m pytest -p no:cacheprovider tests/structure \
    --junitxml="$OUT/structure.xml" -q)
record "structure" "pytest" "$OUT/structure.xml" $?

# The Debian package (`make deb`, lintian), installed, run and purged in a fresh
# Debian 12 root, once (tests/package; needs root and the DEB_PKGS of the Makefile).
echo "== package: tests/package"
(cd "$ROOT" && timeout -k 20 "$PACKAGE_TIMEOUT" $PY -m pytest -p no:cacheprovider tests/package \
    --junitxml="$OUT/package.xml" -q)
record "package" "pytest" "$OUT/package.xml" $?

# The PHP client's own unit tests, once.
if [ -f "$ROOT/php-client/phpunit.xml.dist" ]; then
    echo "== php-client: phpunit"
    rm -f "$OUT/php.xml"
    phpunit=phpunit
    [ -x "$ROOT/php-client/vendor/bin/phpunit" ] && phpunit=vendor/bin/phpunit
    (cd "$ROOT/php-client" && timeout -k 10 "$SUITE_TIMEOUT" $phpunit --log-junit "$OUT/php.xml")
    record "php" "phpunit" "$OUT/php.xml" $?
fi

# The libFuzzer targets `make fuzz-build` made, each briefly on its corpus.
if [ -n "${HERALD_FUZZ_SECONDS:-}" ]; then
    targets=$(cd "$ROOT/build-fuzz" 2>/dev/null && ls fuzz_* 2>/dev/null |
        grep -v '\.' | sed 's/^fuzz_//')
    echo "== fuzz: $HERALD_FUZZ_SECONDS s each: $targets"
    rm -f "$OUT/fuzz.xml"
    # shellcheck disable=SC2086
    FUZZ_JUNIT="$OUT/fuzz.xml" timeout -k 10 "$SUITE_TIMEOUT" \
        "$ROOT/tests/fuzz/run.sh" "$HERALD_FUZZ_SECONDS" $targets
    record "fuzz" "libFuzzer" "$OUT/fuzz.xml" $?
fi

echo
exec $PY "$ROOT/tests/lib/summary.py" "$MANIFEST"
