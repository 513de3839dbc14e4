#!/usr/bin/env bash
# The cost of Redis: one recipient expanded through a redis: alias map
# against the same alias read from an aliases(5) file, side by side in one
# run (issue 10, point 10).
#
#   sudo bench/redis_alias.sh         # set-up, redis-server, both, summary
#
# Two modmta daemons of the same build: "file" (127.0.0.1:$FILE_PORT) runs
# alias with "map": "aliases:FILE", FILE holding "staff: bench"; "redis"
# (127.0.0.1:$REDIS_MTA_PORT) has a "redis" section naming a redis-server
# this script starts on 127.0.0.1:$REDIS_PORT (no persistence) and runs
# alias with "map": "redis:alias:", the entry set with `modmtactl map set
# redis:alias: staff bench`. Both then deliver with store_mbox into
# /var/mail/bench. Both are started and warmed up (200 messages at c=10
# each, not recorded); then at each of $CONCS, $REPS rounds of one load per
# daemon, the order reversed at every round: smtp-source -t
# staff@bench.test with $MSGS messages of $SIZE octets, one connection per
# message, timed until the mailbox holds them all. Last, each daemon is
# restarted and holds $IDLE_CONNS idle connections (PSS per connection;
# the redis one with its pool configured). Redis' command counts go to
# $RESULTS/redis-commandstats.txt. Both are stopped, the summary
# (bench/redis_alias_summary.py) is printed and written with the raw JSON
# lines to $RESULTS.
#
# Environment (defaults in brackets):
#   CONCS ["10 50"]  MSGS [2000]  SIZE [4096]  REPS [3]  IDLE_CONNS [1000]
#   FILE_PORT [2620]  REDIS_MTA_PORT [2621]  REDIS_PORT [6390]
#   REDIS_POOL [4] the redis section's pool
#   BUILD [/tmp/build-bench]  WORK [/tmp/modmta-bench-redis]
#   RESULTS [$WORK/results/<timestamp>]  SHARED_BENCH [bench/../../shared/bench]
CONCS=${CONCS:-"10 50"}
IDLE_CONNS=${IDLE_CONNS:-1000}
FILE_PORT=${FILE_PORT:-2620}
REDIS_MTA_PORT=${REDIS_MTA_PORT:-2621}
REDIS_PORT=${REDIS_PORT:-6390}
REDIS_POOL=${REDIS_POOL:-4}
WORK=${WORK:-/tmp/modmta-bench-redis}
# modmta admits a session only with descriptors to spare for its files
FD_NEED=$((2 * IDLE_CONNS + 256))
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
BASE=$WORK
KNOBS="REDIS_ALIAS CONCS=$CONCS MSGS=$MSGS SIZE=$SIZE REPS=$REPS"
KNOBS="$KNOBS IDLE_CONNS=$IDLE_CONNS REDIS_POOL=$REDIS_POOL"
LOAD_TARGET=(-t "staff@$BENCH_DOMAIN" --mbox "$BENCH_MBOX")
LOAD_RESET=reset_mbox
MODMTACTL=$BUILD/tools/modmtactl

# variant file|redis: point lib.sh's modmta functions at that daemon.
variant() {
    WORK=$BASE/$1
    MODMTA_CG=modmta-$1
    if [ "$1" = file ]; then MODMTA_PORT=$FILE_PORT
    else MODMTA_PORT=$REDIS_MTA_PORT; fi
    mkdir -p "$WORK"
}

modmta_config() {
    local dirs="\"$BUILD/modules/alias\", \"$BUILD/modules/store_mbox\""
    local store='{"module": "store_mbox", "directory": "/var/mail",
     "users": "any"}'
    if [ "$MODMTA_CG" = modmta-file ]; then
        echo 'staff: bench' > "$WORK/aliases"
        modmta_write_config "$dirs" "{\"module\": \"alias\",
     \"map\": \"aliases:$WORK/aliases\"}, $store"
    else
        modmta_write_config "$dirs" '{"module": "alias",
     "map": "redis:alias:"}, '"$store" "\"redis\": {\"address\":
     \"127.0.0.1:$REDIS_PORT\", \"pool\": $REDIS_POOL},"
    fi
}

# The servers of lib.sh's load_run and idle_run are the two variants.
ctl() {   # ctl file|redis start|stop|setup|pid|cgroup
    variant "$1"
    case $2 in
        start) modmta_start ;;
        stop) modmta_stop ;;
        setup) : ;;
        pid) modmta_pid ;;
        cgroup) cg_dir "$MODMTA_CG" ;;
    esac
}

port_of() { variant "$1"; echo "$MODMTA_PORT"; }

# --- redis-server -----------------------------------------------------------
redis_start() {
    command -v redis-server >/dev/null || apt-get install -y -q \
        redis-server redis-tools >/dev/null || die "cannot install redis"
    port_in_use "$REDIS_PORT" && die "port $REDIS_PORT busy"
    mkdir -p "$BASE/redis"
    cg_spawn redis-bench "$BASE/redis.pid" redis-server --bind 127.0.0.1 \
        --port "$REDIS_PORT" --save '' --appendonly no --dir "$BASE/redis" \
        --logfile "$BASE/redis/redis.log" < /dev/null
    wait_port "$REDIS_PORT" 10 || die "redis-server did not listen"
    log "redis-server on 127.0.0.1:$REDIS_PORT"
}

redis_stop() { cg_reap redis-bench; }

bench_cleanup() {
    cleanup
    redis_stop
}
trap bench_cleanup EXIT

# --- the run ----------------------------------------------------------------
setup
write_env
log "results in $RESULTS"
redis_start
variant redis
modmta_config
"$MODMTACTL" -c "$WORK/modmta.json" map set redis:alias: staff bench ||
    die "modmtactl map set failed"
for srv in file redis; do
    ctl "$srv" stop >/dev/null 2>&1
    RUNNING="$RUNNING $srv"
    ctl "$srv" start || die "$srv failed to start"
    load_run "$srv" 10 200 0 || log "$srv: warm-up incomplete"
done
order="file redis"
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
redis-cli -p "$REDIS_PORT" INFO commandstats \
    > "$RESULTS/redis-commandstats.txt" 2>&1
for srv in file redis; do
    idle_run "$srv" "$IDLE_CONNS"
    ctl "$srv" stop
done
RUNNING=""
redis_stop
reset_mbox

python3 "$BENCH_DIR/redis_alias_summary.py" "$RESULTS" |
    tee "$RESULTS/summary.md"
cat "$RESULTS/env.txt"
log "results in $RESULTS"
