#!/bin/bash
# A third party can build a module against the INSTALLED SDK, and the
# installed daemon loads it.
#
#   1. build modmta in a private build dir and install it into a temp
#      prefix (the caller's build dir is never touched);
#   2. build sdk/examples/hello against that prefix with pkg-config only,
#      warnings as errors;
#   3. check the module exports exactly one dynamic symbol,
#      modmta_descriptor;
#   4. `modmta --check-config` accepts a config loading hello (from its
#      build dir, then from the installed moduledir) and store_mbox, and
#      names $.modules[0].<key> for a bad hello section;
#   5. run the daemon and talk SMTP to it (tests/sdk/test_hello_smtp.py):
#      the X-Hello header is added, a reject_domains recipient gets 550.
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
run meson setup "$tmp/build" "$src" -Dprefix="$tmp/prefix" -Dtests=disabled
run ninja -C "$tmp/build" install

pc=$(find "$tmp/prefix" -name modmta.pc -print -quit)
[ -n "$pc" ] || fail "no modmta.pc installed under $tmp/prefix"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
modmta=$tmp/prefix/sbin/modmta
[ -x "$modmta" ] || modmta=$tmp/prefix/bin/modmta
[ -x "$modmta" ] || fail "no modmta binary under $tmp/prefix"
modmtactl=$tmp/prefix/bin/modmtactl
# A temp prefix is not in the loader's search path.
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$pcdir"

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

step=symbols
syms=$(nm -D --defined-only "$so" | awk '{ print $NF }')
[ "$syms" = modmta_descriptor ] ||
    fail "expected exactly modmta_descriptor, got: $(echo $syms)"

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
