# shellcheck shell=bash
# What bench/run.sh (local delivery) and bench/relay.sh (relaying) share:
# the set-up, modmta's start and stop, one recorded load, the profile.
# Source it after setting the script's own defaults; not run on its own.
#
# The script defines, before it calls these:
#   modmta_config      writes $WORK/modmta.json (with modmta_write_config)
#   LOAD_TARGET=(...)  loadgen.py's delivery arguments (--mbox ... or
#                      -t ... --sink-log ... --sink-port ...)
#   LOAD_RESET         a command run before each load (reset_mbox or :)
#   KNOBS              the script's settings, for env.txt
set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED_BENCH=${SHARED_BENCH:-$BENCH_DIR/../../shared/bench}
SHARED_BENCH=$(cd "$SHARED_BENCH" && pwd) || {
    echo "shared bench scripts not found; set SHARED_BENCH" >&2; exit 1; }
# shellcheck source=/dev/null
source "$SHARED_BENCH/common.sh"
require_root

SRC=$(cd "$BENCH_DIR/.." && pwd)
MSGS=${MSGS:-2000}
SIZE=${SIZE:-4096}
REPS=${REPS:-3}
SERVERS=${SERVERS:-"postfix modmta"}
POSTFIX_PORT=${POSTFIX_PORT:-2525}
MODMTA_PORT=${MODMTA_PORT:-2600}
PF_MAXPROC=${PF_MAXPROC:-300}
FD_NEED=${FD_NEED:-1024}
BUILD=${BUILD:-/tmp/build-bench}
WORK=${WORK:-/tmp/modmta-bench}
RESULTS=${RESULTS:-$WORK/results/$(date +%Y%m%d-%H%M%S)}
MODMTA=$BUILD/core/modmta
MODMTA_CG=${MODMTA_CG:-modmta}   # the cgroup modmta runs in
LOAD_RESET=${LOAD_RESET:-reset_mbox}

# --- set-up -----------------------------------------------------------------
setup() {
    if ! command -v smtp-source >/dev/null || ! id "$BENCH_USER" >/dev/null 2>&1
    then
        log "installing postfix, smtp-source and user $BENCH_USER"
        "$SHARED_BENCH/install.sh" || die "install.sh failed"
    fi
    # /var/mail is root:mail 2775. modmta runs as $BENCH_USER and must create
    # the mailbox and its dot-lock there, as Debian's setgid-mail MUAs do.
    if ! id -nG "$BENCH_USER" | grep -qw mail; then
        adduser "$BENCH_USER" mail >/dev/null || die "adduser $BENCH_USER mail"
    fi
    if [ ! -f "$BUILD/build.ninja" ]; then
        meson setup "$BUILD" "$SRC" -Dbuildtype=release -Dtests=disabled \
            >/dev/null || die "meson setup failed"
    fi
    ninja -C "$BUILD" >/dev/null || die "build failed (ninja -C $BUILD)"
    [ "$(ulimit -Hn)" -ge "$FD_NEED" ] && ulimit -n "$FD_NEED"
    [ "$(ulimit -n)" -ge "$FD_NEED" ] || log "ulimit -n $(ulimit -n) < $FD_NEED"
    mkdir -p "$RESULTS" "$WORK"
}

write_env() {
    {
        date -Is; uname -srm; echo "cpus $(nproc)"; grep MemTotal /proc/meminfo
        grep -m1 'model name' /proc/cpuinfo
        echo "postfix $(postconf -dh mail_version 2>/dev/null)"
        echo "$("$MODMTA" --version 2>&1 | head -1)" \
             "(git $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null))"
        echo "$KNOBS MODMTA_WORKERS=${MODMTA_WORKERS:-default}"
        echo "loadavg $(cat /proc/loadavg)"
    } > "$RESULTS/env.txt" 2>&1
}

# --- modmta -----------------------------------------------------------------
# modmta_write_config MODULE_DIRS MODULES [SECTIONS]: $WORK/modmta.json,
# the same for every bench but for its module directories (JSON strings,
# comma separated), its chain (JSON objects, comma separated) and extra
# top-level sections (each followed by a comma); checked.
modmta_write_config() {
    local queue=""
    [ -n "${MODMTA_WORKERS:-}" ] &&
        queue="\"queue\": {\"workers\": $MODMTA_WORKERS},"
    cat > "$WORK/modmta.json" <<EOF
{
  "hostname": "$BENCH_DOMAIN",
  "user": "$BENCH_USER",
  "spool": "$WORK/spool",
  "module_path": [$1],
  "local_domains": ["$BENCH_DOMAIN"],
  "limits": {"max_sessions": 2000, "max_sessions_per_client": 2000},
  $queue
  ${3:-}
  "listen": [{"name": "smtp", "address": "127.0.0.1:$MODMTA_PORT"}],
  "modules": [
    $2
  ]
}
EOF
    "$MODMTA" --check-config -c "$WORK/modmta.json" >/dev/null \
        || die "modmta rejects $WORK/modmta.json"
}

modmta_pid() {
    local p
    p=$(cat "$WORK/modmta.pid" 2>/dev/null) || return 1
    pid_alive "$p" && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = modmta ] \
        && echo "$p"
}

modmta_start() {
    modmta_pid >/dev/null && return 0
    port_in_use "$MODMTA_PORT" && die "port $MODMTA_PORT busy"
    modmta_config
    rm -rf "$WORK/spool"
    install -d -o "$BENCH_USER" -g "$BENCH_USER" -m 700 "$WORK/spool"
    cg_spawn "$MODMTA_CG" "$WORK/modmta.pid" \
        "$SHARED_BENCH/with-loopback-dns.sh" \
        "$MODMTA" -c "$WORK/modmta.json" >> "$WORK/modmta.log" 2>&1 < /dev/null
    wait_port "$MODMTA_PORT" 20 || die "modmta did not open $MODMTA_PORT" \
        "(see $WORK/modmta.log)"
    log "modmta pid $(modmta_pid) on 127.0.0.1:$MODMTA_PORT"
}

modmta_stop() {
    local p
    if p=$(modmta_pid); then stop_pid "$p" '^modmta$' 20; fi
    cg_reap "$MODMTA_CG"
}

# --- both -------------------------------------------------------------------
ctl() {   # ctl SERVER start|stop|setup|pid|cgroup
    case $1 in
        postfix) PORT=$POSTFIX_PORT SMTPD_MAXPROC=$PF_MAXPROC \
                     "$SHARED_BENCH/postfix.sh" "$2" ;;
        modmta)
            case $2 in
                start) modmta_start ;;
                stop) modmta_stop ;;
                setup) : ;;
                pid) modmta_pid ;;
                cgroup) cg_dir "$MODMTA_CG" ;;
            esac ;;
        *) die "unknown server $1" ;;
    esac
}

port_of() {
    if [ "$1" = postfix ]; then echo "$POSTFIX_PORT"
    else echo "$MODMTA_PORT"; fi
}

# Where CPU and memory are read: the cgroup, or the process tree.
acct_args() {
    local cg pid
    cg=$(ctl "$1" cgroup)
    if [ -n "$cg" ] && [ -d "$cg" ]; then echo "--cgroup $cg"
    elif pid=$(ctl "$1" pid); then echo "--server-pid $pid"
    fi
}

RUNNING=""   # the servers started and not yet stopped
cleanup() {
    local srv
    for srv in $RUNNING; do
        log "stopping $srv"; ctl "$srv" stop
    done
    RUNNING=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# load_run SERVER CONC MSGS RECORD(0|1)
load_run() {
    local srv=$1 conc=$2 n=$3 record=$4 sampler="" pid rc
    local acct; acct=$(acct_args "$srv")
    $LOAD_RESET
    if [ "$record" = 1 ]; then
        # restart the kernel's peak-RSS counter (VmHWM) for this load
        pid=$(ctl "$srv" pid) && echo 5 > "/proc/$pid/clear_refs" 2>/dev/null
        # shellcheck disable=SC2086
        python3 "$BENCH_DIR/peakrss.py" $acct --label "$srv c=$conc" \
            --json "$RESULTS/peak.jsonl" > /dev/null &
        sampler=$!
    fi
    local out=()
    [ "$record" = 1 ] && out=(--json "$RESULTS/load.jsonl")
    # shellcheck disable=SC2086
    python3 "$SHARED_BENCH/loadgen.py" --port "$(port_of "$srv")" -c "$conc" \
        -m "$n" -l "$SIZE" "${LOAD_TARGET[@]}" $acct --label "$srv" \
        --timeout 600 --stall 60 "${out[@]}" > "$WORK/last-load.json"
    rc=$?
    if [ -n "$sampler" ]; then kill -TERM "$sampler"; wait "$sampler"; fi
    [ "$record" = 1 ] && python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
sink = r.get("sink_conn_per_msg")
print("   accept %s/s  e2e %s/s  delivered %s  cpu %ss  busy %s%%%s  ok=%s" % (
    r["accept_rate"], r["e2e_rate"], r["delivered"], r["server_cpu_s"],
    r["machine_busy_pct"], "" if sink is None else "  sink conn/msg %s" % sink,
    r["ok"]))' "$WORK/last-load.json" >&2
    return $rc
}

# idle_run SERVER N: restart SERVER and hold N connections that each read
# their banner; PSS before and during into $RESULTS/idle.jsonl.
idle_run() {
    local srv=$1 n=$2
    ctl "$srv" stop >/dev/null 2>&1
    ctl "$srv" start >/dev/null || die "$srv did not restart"
    sleep 1
    log "$srv: $n idle connections"
    local acct; acct=$(acct_args "$srv")
    # shellcheck disable=SC2086
    python3 "$SHARED_BENCH/idleconns.py" --port "$(port_of "$srv")" -n "$n" \
        --banner-timeout 60 --label "$srv" $acct \
        --json "$RESULTS/idle.jsonl" >/dev/null || log "$srv: idle test failed"
    tail -n1 "$RESULTS/idle.jsonl" >&2
}

# profile_run SERVER: where the daemon's time goes at c=50 (not recorded)
profile_run() {
    local srv=$1 pid tracer
    pid=$(ctl "$srv" pid) || return 1
    log "$srv: profiling c=50 (perf, then strace)"
    perf record -g -p "$pid" -o "$WORK/perf.data" >/dev/null 2>&1 &
    tracer=$!; sleep 1
    load_run "$srv" 50 "$MSGS" 0 || log "$srv: profiled run not ok"
    kill -INT "$tracer"; wait "$tracer"
    perf report -i "$WORK/perf.data" --children --sort sym --stdio -g none \
        2>/dev/null | grep '%' | head -60 > "$RESULTS/profile-perf-$srv.txt"
    perf report -i "$WORK/perf.data" --no-children --sort sym --stdio \
        -g caller,0.5,2 2>/dev/null | grep -v '^$' | head -120 \
        >> "$RESULTS/profile-perf-$srv.txt"
    strace -c -w -f -p "$pid" -o "$RESULTS/profile-strace-$srv.txt" \
        2>/dev/null &
    tracer=$!; sleep 1
    load_run "$srv" 50 "$MSGS" 0 || log "$srv: traced run not ok"
    kill -INT "$tracer"; wait "$tracer"
}
