#!/usr/bin/env bash
# DKIM signing through a milter: modmta's milter module against Postfix's
# smtpd_milters, both on the same opendkim, side by side in one run
# (issue 12, point 6).
#
#   sudo bench/milter_dkim.sh        # set-up, opendkim, both, summary
#
# opendkim (Debian's) runs in the foreground on 127.0.0.1:$DKIM_PORT in a
# cgroup of its own, mode "s", signing for $BENCH_DOMAIN with a 2048-bit
# key made by opendkim-genkey (InternalHosts 127.0.0.1: smtp-source's mail
# is signed). Postfix (the shared postfix.sh instance) gets
# "smtpd_milters = inet:127.0.0.1:$DKIM_PORT" and
# "milter_default_action = tempfail"; modmta runs the milter module with
# the same socket ahead of store_mbox, reusing its connections across
# sessions (QUIT_NC, "reuse": true, pool_size 64) unless
# MILTER_REUSE=false. Both are warmed up (200 messages at c=10, not
# recorded); then at each of $CONCS, $REPS rounds of one load per
# server, the order reversed each round: smtp-source with $MSGS messages
# of $SIZE octets from sender@$BENCH_DOMAIN, one connection per message,
# timed until the mailbox holds them all. After each load the mailbox's
# DKIM-Signature fields are counted (every message must be signed) and
# opendkim's CPU time over the load is recorded. The summary
# (bench/milter_dkim_summary.py) is printed and written with the raw JSON
# lines to $RESULTS.
#
# Environment (defaults in brackets):
#   CONCS ["50"]  MSGS [2000]  SIZE [4096]  REPS [1]  MILTER_REUSE [true]
#   PROFILE [0]: 1 adds, after the recorded loads, one more load per
#     server under a machine-wide perf record (not recorded): the CPU by
#     process and the hottest symbols, in $RESULTS/profile-machine-*.txt;
#     then modmta's own profile (lib.sh's profile_run: perf, strace -c)
#   POSTFIX_PORT [2535]  MODMTA_PORT [2630]  DKIM_PORT [8895]
#   BUILD [/tmp/build-bench-milter]  WORK [/tmp/modmta-bench-milter]
#   RESULTS [$WORK/results/<timestamp>]  SHARED_BENCH [bench/../../shared/bench]
CONCS=${CONCS:-"50"}
REPS=${REPS:-1}
MILTER_REUSE=${MILTER_REUSE:-true}
POSTFIX_PORT=${POSTFIX_PORT:-2535}
MODMTA_PORT=${MODMTA_PORT:-2630}
DKIM_PORT=${DKIM_PORT:-8895}
BUILD=${BUILD:-/tmp/build-bench-milter}
WORK=${WORK:-/tmp/modmta-bench-milter}
# postfix.sh's instance lives here, apart from other benches'
export ANCHOR_WORK=${ANCHOR_WORK:-$WORK/anchor}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
KNOBS="MILTER_DKIM CONCS=$CONCS MSGS=$MSGS SIZE=$SIZE REPS=$REPS \
MILTER_REUSE=$MILTER_REUSE"
LOAD_TARGET=(--mbox "$BENCH_MBOX")
LOAD_RESET=reset_mbox
DKIM_DIR=$WORK/opendkim

modmta_config() {
    modmta_write_config "\"$BUILD/modules/milter\", \
\"$BUILD/modules/store_mbox\"" "{\"module\": \"milter\",
     \"milters\": [{\"socket\": \"inet:127.0.0.1:$DKIM_PORT\",
                    \"name\": \"opendkim\", \"reuse\": $MILTER_REUSE,
                    \"pool_size\": 64}]},
    {\"module\": \"store_mbox\", \"directory\": \"/var/mail\",
     \"users\": \"any\"}"
}

# --- opendkim ---------------------------------------------------------------
dkim_start() {
    command -v opendkim >/dev/null || apt-get install -y -q opendkim \
        opendkim-tools >/dev/null || die "cannot install opendkim"
    port_in_use "$DKIM_PORT" && die "port $DKIM_PORT busy"
    rm -rf "$DKIM_DIR"; mkdir -p "$DKIM_DIR"
    opendkim-genkey -b 2048 -D "$DKIM_DIR" -d "$BENCH_DOMAIN" -s bench ||
        die "opendkim-genkey failed"
    cat > "$DKIM_DIR/opendkim.conf" <<CONF
Syslog no
Mode s
Domain $BENCH_DOMAIN
Selector bench
KeyFile $DKIM_DIR/bench.private
Socket inet:$DKIM_PORT@127.0.0.1
InternalHosts 127.0.0.1
RequireSafeKeys no
CONF
    cg_spawn opendkim-bench "$DKIM_DIR/opendkim.pid" \
        "$SHARED_BENCH/with-loopback-dns.sh" \
        opendkim -f -x "$DKIM_DIR/opendkim.conf" \
        >> "$DKIM_DIR/opendkim.log" 2>&1 < /dev/null
    wait_port "$DKIM_PORT" 20 || die "opendkim did not listen (see" \
        "$DKIM_DIR/opendkim.log)"
    log "opendkim on 127.0.0.1:$DKIM_PORT"
}

dkim_stop() { cg_reap opendkim-bench; }

# opendkim's CPU seconds so far (its cgroup)
dkim_cpu() {
    python3 - "$(cg_dir opendkim-bench)" <<'PY'
import sys
try:
    with open(sys.argv[1] + "/cpuacct.usage") as f:
        print(int(f.read()) / 1e9)
except OSError:
    with open(sys.argv[1] + "/cpu.stat") as f:
        print(int(f.readline().split()[1]) / 1e6)
PY
}

postfix_milter() {
    ctl postfix setup >/dev/null
    postconf -c "$ANCHOR_WORK/postfix/etc" -e \
        "smtpd_milters = inet:127.0.0.1:$DKIM_PORT" \
        "milter_default_action = tempfail" "milter_protocol = 6" ||
        die "postconf failed"
}

bench_cleanup() {
    cleanup
    dkim_stop
}
trap bench_cleanup EXIT

# load SERVER CONC: one recorded load, its signatures and opendkim's CPU
load() {
    local srv=$1 conc=$2 c0 c1 delivered signed
    c0=$(dkim_cpu)
    load_run "$srv" "$conc" "$MSGS" 1 || log "$srv: run not ok"
    c1=$(dkim_cpu)
    delivered=$(mbox_count)
    signed=$(grep -c '^DKIM-Signature:' "$BENCH_MBOX" || true)
    log "$srv: $signed of $delivered delivered messages signed"
    printf '{"label": "%s", "concurrency": %d, "delivered": %d, "signed": %d}\n' \
        "$srv" "$conc" "$delivered" "$signed" >> "$RESULTS/signed.jsonl"
    python3 -c 'import json, sys; print(json.dumps({"label": sys.argv[1],
        "cpu_s": round(float(sys.argv[3]) - float(sys.argv[2]), 3)}))' \
        "$srv" "$c0" "$c1" >> "$RESULTS/opendkim.jsonl"
}

# machine_profile SERVER: one load at c=50 under a machine-wide perf record:
# the whole machine's CPU by process (the server, opendkim, smtp-source,
# the kernel's threads), then the hottest symbols of each
machine_profile() {
    local srv=$1 tracer out=$RESULTS/profile-machine-$1.txt
    log "$srv: machine-wide profile at c=50 (not recorded)"
    perf record -a -g -o "$WORK/perf-$srv.data" >/dev/null 2>&1 &
    tracer=$!; sleep 1
    load_run "$srv" 50 "$MSGS" 0 || log "$srv: profiled run not ok"
    kill -INT "$tracer"; wait "$tracer"
    perf report -i "$WORK/perf-$srv.data" --no-children --sort comm \
        --stdio -g none 2>/dev/null | grep '%' > "$out"
    perf report -i "$WORK/perf-$srv.data" --no-children \
        --sort comm,dso,sym --stdio -g none 2>/dev/null | grep '%' |
        head -80 >> "$out"
    [ -s "$out" ] || log "$srv: perf recorded nothing (perf_event_paranoid?)"
    rm -f "$WORK/perf-$srv.data"
}

# --- the run ----------------------------------------------------------------
[ "${PROFILE:-0}" = 1 ] && ! command -v perf >/dev/null &&
    die "PROFILE=1 needs perf"
setup
write_env
log "results in $RESULTS"
dkim_start
for srv in postfix modmta; do
    ctl "$srv" stop >/dev/null 2>&1
    [ "$srv" = postfix ] && postfix_milter
    rm -f "$BENCH_MBOX" "$BENCH_MBOX.lock"
    RUNNING="$RUNNING $srv"
    ctl "$srv" start || die "$srv failed to start"
    load_run "$srv" 10 200 0 || log "$srv: warm-up incomplete"
done
order="postfix modmta"
for conc in $CONCS; do
    for rep in $(seq 1 "$REPS"); do
        for srv in $order; do
            log "$srv c=$conc m=$MSGS rep $rep/$REPS"
            load "$srv" "$conc"
        done
        reversed=""
        for srv in $order; do reversed="$srv $reversed"; done
        order=$reversed
    done
done
if [ "${PROFILE:-0}" = 1 ]; then
    for srv in postfix modmta; do machine_profile "$srv"; done
    profile_run modmta   # and modmta alone: perf, then strace -c
fi
for srv in postfix modmta; do ctl "$srv" stop; done
RUNNING=""
dkim_stop
reset_mbox

python3 "$BENCH_DIR/milter_dkim_summary.py" "$RESULTS" |
    tee "$RESULTS/summary.md"
cat "$RESULTS/env.txt"
log "results in $RESULTS"
