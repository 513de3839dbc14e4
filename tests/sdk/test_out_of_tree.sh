#!/bin/bash
# A third party can build a module against the INSTALLED SDK, and the
# installed daemon loads it.
#
#   1. build modmta in a private build dir and install it into a temp
#      prefix (the caller's build dir is never touched), with
#      libmodmta-test; check libmodmta's soname and ABI versions;
#   2. build sdk/examples/hello against that prefix with pkg-config only,
#      warnings as errors, and run its unit tests (tests/test_hello.c,
#      linked with the installed libmodmta-test, modmta-test.pc);
#   3. check the module exports exactly one dynamic symbol,
#      modmta_descriptor, and that each SDK function it calls names its
#      ABI version (MODMTA_1.N);
#   4. `modmta --check-config` accepts a config loading hello (from its
#      build dir, then from the installed moduledir) and store_mbox, and
#      names $.modules[0].<key> for a bad hello section;
#   5. run the daemon and talk SMTP to it (tests/sdk/test_hello_smtp.py):
#      the X-Hello header is added, a reject_domains recipient gets 550.
# No LD_LIBRARY_PATH: the daemon is libmodmta.so.1 to the modules it
# loads (docs/architecture.md), so none needs the library at run time.
#
# Usage: test_out_of_tree.sh SOURCE_ROOT
# On failure the temp dir is kept and its path printed.
set -u

src=${1:?usage: $0 SOURCE_ROOT}
src=$(cd "$src" && pwd) || exit 1
tmp=$(mktemp -d /tmp/modmta-sdk.XXXXXX) || exit 1
step=setup

fail() {
    echo "FAIL ($step): $*" >&2
    echo "kept $tmp" >&2
    exit 1
}

# Run a command quietly; on failure show its output and stop.
run() {
    local log="$tmp/$step.log"

    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        fail "$*"
    fi
}

step=install
run meson setup "$tmp/build" "$src" -Dprefix="$tmp/prefix" -Dtests=disabled \
    -Dtest_library=enabled
run ninja -C "$tmp/build" install

pc=$(find "$tmp/prefix" -name modmta.pc -print -quit)
[ -n "$pc" ] || fail "no modmta.pc installed under $tmp/prefix"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
modmta=$tmp/prefix/sbin/modmta
[ -x "$modmta" ] || modmta=$tmp/prefix/bin/modmta
[ -x "$modmta" ] || fail "no modmta binary under $tmp/prefix"
modmtactl=$tmp/prefix/bin/modmtactl
export PKG_CONFIG_PATH="$pcdir"

step=library
abi=$(pkg-config --modversion modmta) || fail "no modmta.pc version"
major=${abi%%.*}
lib=$libdir/libmodmta.so.$major
[ -f "$lib" ] || fail "no $lib"
readelf -d "$lib" | grep -q "SONAME.*\[libmodmta\.so\.$major\]" ||
    fail "$lib: soname is not libmodmta.so.$major"
[ -f "$libdir/libmodmta.so.$abi" ] ||
    fail "no $libdir/libmodmta.so.$abi (the file version follows the ABI)"
minor=${abi#*.}
minor=${minor%%.*}
readelf -V "$lib" | grep -q "Name: MODMTA_$major.$minor\b" ||
    fail "$lib: no version node MODMTA_$major.$minor"
[ -f "$libdir/libmodmta-test.a" ] && [ -f "$pcdir/modmta-test.pc" ] &&
    [ -f "$tmp/prefix/include/modmta-test/fake.h" ] ||
    fail "libmodmta-test, modmta-test.pc or <fake.h> not installed"

step=pkg-config
[ "$(pkg-config --variable=prefix modmta)" = "$tmp/prefix" ] ||
    fail "pkg-config does not find the temp prefix's modmta.pc"
moduledir=$(pkg-config --variable=moduledir modmta)
[ -f "$moduledir/store_mbox.so" ] ||
    fail "store_mbox.so not installed in moduledir $moduledir"

step=build-hello
# Copied out of the source tree, as a third party's project would be.
cp -r "$src/sdk/examples/hello" "$tmp/hello-src"
run meson setup "$tmp/hello" "$tmp/hello-src" -Dwerror=true
run ninja -C "$tmp/hello"
so=$tmp/hello/hello.so
[ -f "$so" ] || fail "no $so"

step=unit-tests
# hello's unit tests are built only when modmta-test.pc is found.
meson test -C "$tmp/hello" --list 2>/dev/null | grep -qx hello ||
    fail "hello's unit test was not built (modmta-test not found?)"
run meson test -C "$tmp/hello" --print-errorlogs

step=symbols
syms=$(nm -D --defined-only "$so" | awk '{ print $NF }')
[ "$syms" = modmta_descriptor ] ||
    fail "expected exactly modmta_descriptor, got: $(echo $syms)"
refs=$(objdump -T "$so" | awk '/\*UND\*/ && / modmta_/')
[ -n "$refs" ] || fail "no reference to an SDK function in $so"
unversioned=$(echo "$refs" | grep -v '(MODMTA_[0-9]*\.[0-9]*)')
[ -z "$unversioned" ] ||
    fail "SDK references without an ABI version: $unversioned"

# A config with hello (and store_mbox) loaded from module_path $1; $2 is
# the hello section.
config() {
    cat <<JSON
{
  "hostname": "mx.sdk.test",
  "spool": "$tmp/var/spool",
  "local_domains": ["localhost"],
  "listen": [{"name": "mx", "address": "127.0.0.1:2525"}],
  "module_path": ["$1", "$moduledir"],
  "modules": [
    $2,
    {"module": "store_mbox", "directory": "$tmp/var/mail"}
  ]
}
JSON
}

hello_ok='{"module": "hello", "greeting": "hi",
           "reject_domains": ["spam.test"]}'

step=check-config
config "$tmp/hello" "$hello_ok" >"$tmp/ok.json"
out=$("$modmta" --check-config -c "$tmp/ok.json" 2>&1) ||
    fail "config rejected: $out"
case $out in
*"configuration OK"*) ;;
*) fail "no OK in: $out" ;;
esac

# key, hello section: check-config must fail naming $.modules[0].key
expect_error() {
    local key=$1 out

    config "$tmp/hello" "$2" >"$tmp/bad-$key.json"
    if out=$("$modmta" --check-config -c "$tmp/bad-$key.json" 2>&1); then
        fail "accepted a bad $key: $out"
    fi
    case $out in
    *"\$.modules[0].$key"*) ;;
    *) fail "error does not name \$.modules[0].$key: $out" ;;
    esac
}

step=check-config-errors
expect_error bogus '{"module": "hello", "bogus": 1}'
expect_error greeting '{"module": "hello", "greeting": 42}'
expect_error greeting '{"module": "hello", "greeting": "a\r\nBcc: x"}'
expect_error reject_domains '{"module": "hello", "reject_domains": "x"}'

step=install-hello
run ninja -C "$tmp/hello" install
[ -f "$moduledir/hello.so" ] || fail "hello.so not installed in $moduledir"
config "$moduledir" "$hello_ok" >"$tmp/installed.json"
out=$("$modmta" --check-config -c "$tmp/installed.json" 2>&1) ||
    fail "installed hello rejected: $out"

step=smtp
MODMTA=$modmta MODMTACTL=$modmtactl MODULE_DIR=$moduledir \
    HELLO_DIR=$tmp/hello PYTHONDONTWRITEBYTECODE=1 \
    python3 "$src/tests/sdk/test_hello_smtp.py" >"$tmp/smtp.log" 2>&1 || {
    cat "$tmp/smtp.log" >&2
    fail "SMTP dialogue with hello"
}

rm -rf "$tmp"
echo "ok: hello built against the installed SDK and loaded by modmta"
