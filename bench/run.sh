#!/usr/bin/env bash
# modmta against Postfix, side by side in one run (issue 2, point 10).
#
#   sudo bench/run.sh                 # set-up, both servers, summary
#
# For each server in turn (Postfix on 127.0.0.1:$POSTFIX_PORT delivering to
# the mbox /var/mail/bench with local(8), then modmta on
# 127.0.0.1:$MODMTA_PORT delivering there with store_mbox): start it, warm it
# up (200 messages at c=10, not recorded), run smtp-source at each of $CONCS
# concurrent connections $REPS times with $MSGS messages of $SIZE octets
# (one connection per message), sampling the server's peak RSS during every
# load; restart it and hold $IDLE_CONNS idle connections to measure PSS;
# stop it. The summary (bench/summary.py) is printed and written with the
# raw JSON lines to $RESULTS.
#
# The load, the idle test and the Postfix instance are those of the shared
# anchor scripts ($SHARED_BENCH: loadgen.py, idleconns.py, postfix.sh,
# common.sh, with-loopback-dns.sh); this script and bench/lib.sh (shared
# with bench/relay.sh) only add modmta and the bookkeeping. Every server
# runs behind with-loopback-dns.sh (no DNS leaves the host) and listens on
# 127.0.0.1 only; everything started is stopped on exit.
#
# Environment (defaults in brackets):
#   CONCS ["1 10 50"]  MSGS [2000]  SIZE [4096]  REPS [3]
#   IDLE_CONNS [1000]  PF_IDLE_CONNS [$IDLE_CONNS] idle connections for Postfix
#   SERVERS ["postfix modmta"]   SKIP_IDLE [0]  SKIP_LOAD [0]
#   POSTFIX_PORT [2525]  MODMTA_PORT [2600]
#   BUILD [/tmp/build-bench] (built here with -Dbuildtype=release if needed)
#   WORK [/tmp/modmta-bench] (modmta config, spool, log)
#   RESULTS [$WORK/results/<timestamp>]
#   MODMTA_WORKERS [unset: modmta's default] queue.workers
#   SHARED_BENCH [bench/../../shared/bench]
#   PROFILE [0]  1 = after modmta's recorded loads, two more unrecorded
#                c=50 loads, one under `perf record -g` and one under
#                `strace -c -w -f`; reports in $RESULTS/profile-*.txt
CONCS=${CONCS:-"1 10 50"}
IDLE_CONNS=${IDLE_CONNS:-1000}
PF_IDLE_CONNS=${PF_IDLE_CONNS:-$IDLE_CONNS}
# Postfix forks one smtpd per session: its cap must admit the idle test.
PF_MAXPROC=$((PF_IDLE_CONNS + 50))
[ "$PF_MAXPROC" -lt 300 ] && PF_MAXPROC=300
# One descriptor per idle connection, in modmta and in idleconns.py.
FD_NEED=$((IDLE_CONNS + PF_IDLE_CONNS + 256))
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
KNOBS="CONCS=$CONCS MSGS=$MSGS SIZE=$SIZE REPS=$REPS IDLE_CONNS=$IDLE_CONNS"
KNOBS="$KNOBS PF_IDLE_CONNS=$PF_IDLE_CONNS"
LOAD_TARGET=(--mbox "$BENCH_MBOX")
LOAD_RESET=reset_mbox

modmta_config() {
    modmta_write_config "\"$BUILD/modules/store_mbox\"" \
        '{"module": "store_mbox", "directory": "/var/mail", "users": "any"}'
}

# bench_loads SERVER: the warm-up (200 messages at c=10, not recorded), then
# REPS recorded loads of MSGS messages at each of CONCS; with PROFILE=1 and
# SERVER modmta, the profile.
bench_loads() {
    local srv=$1 conc rep
    load_run "$srv" 10 200 0 || log "$srv: warm-up incomplete"
    for conc in $CONCS; do
        for rep in $(seq 1 "$REPS"); do
            log "$srv c=$conc m=$MSGS rep $rep/$REPS"
            load_run "$srv" "$conc" "$MSGS" 1 || log "$srv: run not ok"
        done
    done
    [ "${PROFILE:-0}" = 1 ] && [ "$srv" = modmta ] && profile_run "$srv"
    return 0
}

# --- the run ----------------------------------------------------------------
setup
write_env
log "results in $RESULTS"
for srv in $SERVERS; do
    log "===== $srv ====="
    ctl "$srv" stop >/dev/null 2>&1
    ctl "$srv" setup >/dev/null 2>&1
    rm -f "$BENCH_MBOX" "$BENCH_MBOX.lock"   # each server creates it its way
    RUNNING=$srv
    ctl "$srv" start || die "$srv failed to start"
    [ "${SKIP_LOAD:-0}" != 1 ] && bench_loads "$srv"
    if [ "${SKIP_IDLE:-0}" != 1 ]; then
        n=$IDLE_CONNS; [ "$srv" = postfix ] && n=$PF_IDLE_CONNS
        idle_run "$srv" "$n"
    fi
    ctl "$srv" stop
    RUNNING=""
done
reset_mbox

python3 "$BENCH_DIR/summary.py" "$RESULTS" | tee "$RESULTS/summary.md"
cat "$RESULTS/env.txt"
log "results in $RESULTS"
