#!/bin/sh
# modmta developer entry point: install what is missing, build, then run or
# test. Works as root on a fresh Debian 12 machine.
#   sh scripts/dev.sh run    build and run modmta on its embedded default
#   sh scripts/dev.sh test   build twice (-Werror; ASan+UBSan) and run every
#                            test in both, then build the fuzz harnesses
#                            with clang (build-fuzz) and run each for 5 s,
#                            ending with "N passed, N failed"
#   sh scripts/dev.sh build  just install and build (build/)
set -eu
cd "$(dirname "$0")/.."

PKGS="meson ninja-build pkg-config gcc binutils make libc6-dev libjansson-dev
libssl-dev libhiredis-dev libcmocka-dev redis-server redis-tools python3 swaks
libnet-ssleay-perl openssl util-linux procps libcrypt-dev sasl2-bin fetchmail
libunbound-dev dnsmasq-base python3-dnspython
dovecot-core dovecot-lmtpd dovecot-imapd dovecot-pop3d procmail libidn2-dev
mandoc groff-base man-db systemd s-nail passwd
opendkim opendkim-tools opendmarc python3-milter"
# The fuzz harnesses' build (test only): clang and libFuzzer's runtime.
FUZZ_PKGS="clang libclang-rt-14-dev"

install_deps() { # packages
    missing=""
    for p in $1; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "dev.sh: missing packages:$missing (run as root to install)" >&2
        exit 1
    fi
    echo "dev.sh: installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $missing >/dev/null
}

setup() { # dir, extra meson args...
    dir=$1; shift
    if [ -f "$dir/build.ninja" ]; then
        meson configure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
    ninja -C "$dir"
}

cmd=${1:-run}
case "$cmd" in
build)
    install_deps "$PKGS"
    setup build -Dtests=enabled -Dmoduledir="$PWD/build/modules"
    ;;
run)
    install_deps "$PKGS"
    setup build -Dtests=enabled -Dmoduledir="$PWD/build/modules"
    exec ./build/core/modmta
    ;;
test)
    install_deps "$PKGS $FUZZ_PKGS"
    status=0
    setup build-werror -Dtests=enabled -Dwerror=true \
        -Dmoduledir="$PWD/build-werror/modules"
    setup build-asan -Dtests=enabled -Db_sanitize=address,undefined \
        -Db_lundef=false -Dmoduledir="$PWD/build-asan/modules"
    for dir in build-werror build-asan; do
        echo "== tests in $dir"
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            meson test -C "$dir" --print-errorlogs --num-processes 2 \
            || status=1
    done
    # libFuzzer (fuzz/): the corpora replayed, then 5 s of fuzzing per
    # target, one at a time; only the harnesses are built
    # (a failed set-up or build leaves no test log: counted as a failure)
    rm -f build-fuzz/meson-logs/testlog.json
    if { [ -f build-fuzz/build.ninja ] ||
         CC=clang meson setup build-fuzz -Dfuzz=enabled -Dtests=disabled \
             -Db_sanitize=address,undefined -Db_lundef=false \
             -Dmoduledir="$PWD/build-fuzz/modules" >/dev/null; } &&
       ninja -C build-fuzz fuzz; then
        echo "== fuzzing in build-fuzz"
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            meson test -C build-fuzz --no-rebuild --print-errorlogs \
                --num-processes 1 --suite fuzz --suite fuzz-run || status=1
    else
        echo "dev.sh: the fuzz build (build-fuzz) failed" >&2
        status=1
    fi
    python3 scripts/count-tests.py build-werror build-asan build-fuzz \
        || status=1
    exit $status
    ;;
*)
    echo "usage: sh scripts/dev.sh run|test|build" >&2
    exit 2
    ;;
esac
