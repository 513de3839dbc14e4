#!/usr/bin/env bash
# The relay benchmark: modmta against Postfix relaying to one fast sink,
# side by side in one run (issue 9, point 9).
#
#   sudo bench/relay.sh               # set-up, sink, both servers, summary
#
# A downstream Postfix smtp-sink (-c: it counts) listens on
# 127.0.0.1:$SINK_PORT for the whole run. Both servers (Postfix on
# 127.0.0.1:$POSTFIX_PORT, modmta on 127.0.0.1:$MODMTA_PORT) relay for
# loopback clients and send remote.test to [127.0.0.1]:$SINK_PORT with
# their SMTP client and its connection cache. Both are started and warmed
# up (200 messages at c=10 each, not recorded); then, at each of $CONCS
# concurrent connections, $REPS rounds of one load per server, in the
# order of $SERVERS and reversed at every round: smtp-source -t
# user@remote.test with $MSGS messages of $SIZE octets (one inbound
# connection per message), timed until the sink has received all $MSGS
# (loadgen.py --sink-log), the server's peak RSS sampled. Then each
# server's log and queue are checked (every message sent once, nothing
# deferred, bounced or left queued, no warning) and both are stopped. The
# summary (bench/relay_summary.py) is printed and written with the raw
# JSON lines to $RESULTS.
#
# Postfix is the shared anchor instance (postfix.sh: mynetworks =
# 127.0.0.0/8, default_transport and relay_transport = error) with one line
# added, transport_maps = inline:{remote.test=smtp:[127.0.0.1]:$SINK_PORT}:
# every other domain still cannot leave. Its connection cache is its
# default (smtp_connection_cache_on_demand = yes). modmta runs relay_access
# (mynetworks 127.0.0.0/8) and deliver_smtp with the same transport entry,
# its connection cache on (the default). The sink, both servers and
# everything they start run behind with-loopback-dns.sh; a bracketed IP
# next hop needs no DNS.
#
# Environment (defaults in brackets):
#   CONCS ["10 50"]  MSGS [2000]  SIZE [4096]  REPS [3]
#   SERVERS ["postfix modmta"]
#   POSTFIX_PORT [2535]  MODMTA_PORT [2610]  SINK_PORT [2627]
#   BUILD [/tmp/build-bench] (built here with -Dbuildtype=release if needed)
#   WORK [/tmp/modmta-bench-relay] (configs, spool, logs, sink counters)
#   ANCHOR_WORK [$WORK/anchor] (the Postfix instance, postfix.sh's state)
#   RESULTS [$WORK/results/<timestamp>]
#   MODMTA_WORKERS [unset: modmta's default] queue.workers
#   SHARED_BENCH [bench/../../shared/bench]
#   PROFILE [0]  1 = after modmta's recorded loads, two more unrecorded
#                c=50 loads under `perf record -g` and `strace -c -w -f`
#   CEILING [1]  1 = at the end, one load at each of CONCS from smtp-source
#                straight into the sink (no server): the ceiling
CONCS=${CONCS:-"10 50"}
POSTFIX_PORT=${POSTFIX_PORT:-2535}
MODMTA_PORT=${MODMTA_PORT:-2610}
SINK_PORT=${SINK_PORT:-2627}
WORK=${WORK:-/tmp/modmta-bench-relay}
export ANCHOR_WORK=${ANCHOR_WORK:-$WORK/anchor}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

RCPT_DOMAIN=remote.test
NEXTHOP="smtp:[127.0.0.1]:$SINK_PORT"
SINK_LOG=$WORK/sink.counters
KNOBS="RELAY CONCS=$CONCS MSGS=$MSGS SIZE=$SIZE REPS=$REPS SINK_PORT=$SINK_PORT"
LOAD_TARGET=(-t "user@$RCPT_DOMAIN" --sink-log "$SINK_LOG"
             --sink-port "$SINK_PORT")
LOAD_RESET=:
PF_CONF=$ANCHOR_WORK/postfix/etc
PF_MAILLOG=$ANCHOR_WORK/postfix/log/maillog

modmta_config() {
    modmta_write_config \
        "\"$BUILD/modules/relay_access\", \"$BUILD/modules/deliver_smtp\"" \
        "{\"module\": \"relay_access\", \"mynetworks\": [\"127.0.0.0/8\"]},
    {\"module\": \"deliver_smtp\",
     \"transport\": {\"$RCPT_DOMAIN\": \"$NEXTHOP\"}}"
}

# postfix_relay_conf: the anchor instance (just set up) relays remote.test
# to the sink; its effective settings go to the results.
postfix_relay_conf() {
    postconf -c "$PF_CONF" -e \
        "transport_maps = inline:{ $RCPT_DOMAIN=$NEXTHOP }" ||
        die "postconf -c $PF_CONF failed"
    {
        postconf -c "$PF_CONF" -n
        echo "# defaults in effect:"
        postconf -c "$PF_CONF" smtp_connection_cache_on_demand \
            smtp_connection_cache_time_limit \
            smtp_connection_reuse_time_limit \
            smtp_connection_reuse_count_limit \
            default_destination_concurrency_limit default_process_limit \
            smtpd_relay_restrictions smtp_tls_security_level
    } > "$RESULTS/postfix-main.cf"
}

# --- the sink ---------------------------------------------------------------
sink_pid() {
    local p
    p=$(cat "$WORK/sink.pid" 2>/dev/null) || return 1
    pid_alive "$p" && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = smtp-sink ] \
        && echo "$p"
}

sink_start() {
    port_in_use "$SINK_PORT" && die "port $SINK_PORT busy"
    # -c: running counters on stdout (loadgen.py reads mesg= and sess=);
    # -u: smtp-sink refuses to run as root; 1000: the listen backlog.
    cg_spawn relay-sink "$WORK/sink.pid" "$SHARED_BENCH/with-loopback-dns.sh" \
        /usr/sbin/smtp-sink -c -u nobody "127.0.0.1:$SINK_PORT" 1000 \
        > "$SINK_LOG" 2> "$WORK/sink.err" < /dev/null
    wait_port "$SINK_PORT" 10 || die "smtp-sink did not listen on $SINK_PORT"
    log "smtp-sink pid $(sink_pid) on 127.0.0.1:$SINK_PORT"
}

sink_stop() {
    local p
    if p=$(sink_pid); then stop_pid "$p" '^smtp-sink$' 5; fi
    cg_reap relay-sink
}

relay_cleanup() {
    cleanup
    sink_stop
}
trap relay_cleanup EXIT

# --- what the server did with every message ---------------------------------
# log_of SERVER: the server's log; queued SERVER: messages in its queue.
log_of() {
    if [ "$1" = postfix ]; then echo "$PF_MAILLOG"
    else echo "$WORK/modmta.log"; fi
}

queued() {
    if [ "$1" = postfix ]; then ctl postfix queue
    else find "$WORK/spool/queue" -type f 2>/dev/null | wc -l; fi
}

# relay_check SERVER INJECTED FIRST_LINE: counts, in the server's log from
# FIRST_LINE on, the deliveries sent, deferred and bounced and the lines
# that are warnings or errors (into $RESULTS/problems-SERVER.log), waits
# up to 10 s for the last "sent" lines and the queue to drain, and appends
# the counts to $RESULTS/check.jsonl.
relay_check() {
    local srv=$1 injected=$2 first=$3 logf sent warn_re
    logf=$(log_of "$srv")
    if [ "$srv" = postfix ]; then warn_re=' (warning|error|fatal|panic): '
    else warn_re=': (warn|err): '; fi
    for _ in $(seq 1 100); do
        sent=$(tail -n +"$first" "$logf" | grep -c 'status=sent')
        [ "$sent" -ge "$injected" ] && [ "$(queued "$srv")" = 0 ] && break
        sleep 0.1
    done
    tail -n +"$first" "$logf" |
        grep -E "status=(deferred|bounced)|$warn_re" \
        > "$RESULTS/problems-$srv.log"
    python3 -c 'import json, sys
label, injected, sent, queued, problems = sys.argv[1:6]
text = open(problems).read()
print(json.dumps({"label": label, "injected": int(injected),
                  "sent": int(sent), "queued_after": int(queued),
                  "deferred": text.count("status=deferred"),
                  "bounced": text.count("status=bounced"),
                  "problem_lines": len(text.splitlines())}))' \
        "$srv" "$injected" "$sent" "$(queued "$srv")" \
        "$RESULTS/problems-$srv.log" | tee -a "$RESULTS/check.jsonl" >&2
}

# ceiling_runs: smtp-source straight into the sink at each of CONCS, once:
# what the client and the sink alone reach on this machine (both servers'
# figures share the CPUs with them). Recorded after the servers' loads,
# which peak.jsonl pairs with by position.
ceiling_runs() {
    local conc
    for conc in $CONCS; do
        log "ceiling: smtp-source -> smtp-sink c=$conc m=$MSGS"
        python3 "$SHARED_BENCH/loadgen.py" --port "$SINK_PORT" -c "$conc" \
            -m "$MSGS" -l "$SIZE" -t "user@$RCPT_DOMAIN" --no-delivery \
            --cgroup "$(cg_dir relay-sink)" --label smtp-sink \
            --json "$RESULTS/load.jsonl" > /dev/null ||
            log "ceiling run not ok"
    done
}

# --- the run ----------------------------------------------------------------
setup
write_env
log "results in $RESULTS"
sink_stop
sink_start
declare -A first    # per server: its first log line of this run
for srv in $SERVERS; do
    ctl "$srv" stop >/dev/null 2>&1
    ctl "$srv" setup >/dev/null 2>&1
    [ "$srv" = postfix ] && postfix_relay_conf
    logf=$(log_of "$srv")
    first[$srv]=1
    [ -f "$logf" ] && first[$srv]=$(( $(wc -l < "$logf") + 1 ))
    RUNNING="$RUNNING $srv"
    ctl "$srv" start || die "$srv failed to start"
    load_run "$srv" 10 200 0 || log "$srv: warm-up incomplete"
done
# Interleaved, the order reversed at every repetition: the servers share
# one file system, whose cost of creating a file depends on what was
# created and deleted before (ext4's inode allocator), and the machine.
order=$SERVERS
for conc in $CONCS; do
    for rep in $(seq 1 "$REPS"); do
        for srv in $order; do
            log "$srv c=$conc m=$MSGS rep $rep/$REPS"
            load_run "$srv" "$conc" "$MSGS" 1 || log "$srv: run not ok"
        done
        reversed=""
        for srv in $order; do reversed="$srv $reversed"; done
        order=$reversed
    done
done
[ "${PROFILE:-0}" = 1 ] && [[ " $SERVERS " == *" modmta "* ]] &&
    profile_run modmta
injected=200
for conc in $CONCS; do injected=$((injected + REPS * MSGS)); done
for srv in $SERVERS; do
    n=$injected
    [ "${PROFILE:-0}" = 1 ] && [ "$srv" = modmta ] && n=$((n + 2 * MSGS))
    relay_check "$srv" "$n" "${first[$srv]}"
done
cleanup
[ "${CEILING:-1}" = 1 ] && ceiling_runs
sink_stop

python3 "$BENCH_DIR/relay_summary.py" "$RESULTS" | tee "$RESULTS/summary.md"
cat "$RESULTS/env.txt"
log "results in $RESULTS"
