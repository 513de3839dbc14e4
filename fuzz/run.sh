#!/bin/sh
# Build the harnesses with clang and libFuzzer (build-fuzz/) and run each
# for SECONDS, JOBS at a time (default 1); new inputs the fuzzer finds
# are merged into the checked-in corpus (fuzz/corpus/NAME) when MERGE=1.
# A crash input is left as fuzz/crash-NAME-*: fix the bug, then move it
# under fuzz/regression/NAME/ (the test suites replay it from then on).
#   sh fuzz/run.sh [SECONDS] [NAME...]   default 5 s, every target
#   MERGE=1 sh fuzz/run.sh 1800          the long runs (docs/testing.md)
#   JOBS=4 MERGE=1 sh fuzz/run.sh 1800  four targets at a time (the
#                                        30 minutes are wall-clock time)
# Exits 1 if any target crashed. Prints each target's last status line
# (executions, coverage) as libFuzzer gives it. Run several targets
# through JOBS rather than several run.sh at once: those would run
# ninja on the same build directory together.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-5}
[ $# -gt 0 ] && shift
build=${FUZZ_BUILD:-build-fuzz}
jobs=${JOBS:-1}
case $jobs in
''|*[!0-9]*|0) echo "run.sh: JOBS must be a positive number" >&2; exit 2 ;;
esac

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" -Dfuzz=enabled -Dtests=disabled \
        -Db_sanitize=address,undefined -Db_lundef=false \
        -Dmoduledir="$PWD/$build/modules" >/dev/null
fi
names=${*:-$(sed -n "s/^  \['\([a-z_0-9]*\)', files('fuzz_.*/\1/p" fuzz/meson.build)}
targets=""
for n in $names; do targets="$targets fuzz/fuzz_$n"; done
ninja -C "$build" $targets >/dev/null

# One target: its status line on stdout, exit 1 if it crashed.
fuzz_one() {
    n=$1
    work=$(mktemp -d)
    log=$work/log
    rc=0
    # new inputs go to a scratch directory, the checked-in seeds are read
    if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
       "$build/fuzz/fuzz_$n" -max_total_time="$secs" -timeout=25 \
           -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
           -artifact_prefix="fuzz/crash-$n-" \
           "$work" "fuzz/corpus/$n" >"$log" 2>&1; then
        line=$(grep -E '^#[0-9]+' "$log" | tail -1)
        echo "fuzz $n: ok ${secs}s: $line"
        if [ "${MERGE:-0}" = 1 ] &&
           ! "$build/fuzz/fuzz_$n" -merge=1 "fuzz/corpus/$n" "$work" \
                 >"$log" 2>&1; then
            echo "fuzz $n: the merge FAILED"
            tail -5 "$log"
            rc=1
        fi
    else
        echo "fuzz $n: FAILED (artifact fuzz/crash-$n-*)"
        grep -E 'ERROR|SUMMARY|#[0-9]+ 0x' "$log" | head -20
        rc=1
    fi
    rm -rf "$work"
    return $rc
}

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
# Groups of JOBS targets; each group's lines are printed when it ends.
batch=""
flush() {
    wait
    for b in $batch; do
        cat "$results/$b"
        [ ! -e "$results/$b.failed" ] || status=1
    done
    batch=""
}
i=0
for n in $names; do
    i=$((i + 1))
    ( fuzz_one "$n" >"$results/$i" 2>&1 || touch "$results/$i.failed" ) &
    batch="$batch $i"
    set -- $batch
    [ $# -lt "$jobs" ] || flush
done
flush
exit $status
