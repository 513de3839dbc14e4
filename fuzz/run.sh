#!/bin/sh
# Build the harnesses with clang and libFuzzer (build-fuzz/) and run each
# for SECONDS, one at a time; new inputs the fuzzer finds are merged into
# the checked-in corpus (fuzz/corpus/NAME) when MERGE=1. A crash input is
# left as fuzz/crash-NAME-*: fix the bug, then move it under
# fuzz/regression/NAME/ (the test suites replay it from then on).
#   sh fuzz/run.sh [SECONDS] [NAME...]   default 5 s, every target
#   MERGE=1 sh fuzz/run.sh 1800          the long runs (docs/testing.md)
# Exits 1 if any target crashed. Prints each target's last status line
# (executions, coverage) as libFuzzer gives it.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-5}
[ $# -gt 0 ] && shift
build=${FUZZ_BUILD:-build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" -Dfuzz=enabled -Dtests=disabled \
        -Db_sanitize=address,undefined -Db_lundef=false \
        -Dmoduledir="$PWD/$build/modules" >/dev/null
fi
names=${*:-$(sed -n "s/^  \['\([a-z_0-9]*\)', files('fuzz_.*/\1/p" fuzz/meson.build)}
targets=""
for n in $names; do targets="$targets fuzz/fuzz_$n"; done
ninja -C "$build" $targets >/dev/null

status=0
for n in $names; do
    work=$(mktemp -d)
    log=$work/log
    # new inputs go to a scratch directory, the checked-in seeds are read
    if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
       "$build/fuzz/fuzz_$n" -max_total_time="$secs" -timeout=25 \
           -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
           -artifact_prefix="fuzz/crash-$n-" \
           "$work" "fuzz/corpus/$n" >"$log" 2>&1; then
        line=$(grep -E '^#[0-9]+' "$log" | tail -1)
        echo "fuzz $n: ok ${secs}s: $line"
        if [ "${MERGE:-0}" = 1 ]; then
            "$build/fuzz/fuzz_$n" -merge=1 "fuzz/corpus/$n" "$work" \
                >/dev/null 2>&1
        fi
    else
        echo "fuzz $n: FAILED (artifact fuzz/crash-$n-*)"
        grep -E 'ERROR|SUMMARY|#[0-9]+ 0x' "$log" | head -20
        status=1
    fi
    rm -rf "$work"
done
exit $status
