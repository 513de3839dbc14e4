#!/usr/bin/env bash
# An hour at a steady mixed load (issue 14, point 5): plain, STARTTLS,
# STARTTLS+AUTH, RSETs and refused commands in rotation, a `reload` every
# minute; throughput, latency percentiles, RSS, threads and open files
# sampled over time and plotted to $RESULTS/soak.png; at the end every
# accepted message must be in the mailbox once, byte-exact.
#
#   sudo bench/soak.sh                 # one hour
#   DURATION=600 sudo bench/soak.sh    # ten minutes
#
# modmta (release build in $BUILD) runs on 127.0.0.1:$MODMTA_PORT as
# user bench with a self-signed certificate, auth_sasl on a file passdb
# ({CRYPT}$y$, as a site would have it) and store_mbox into /var/mail.
# bench/soak_load.py drives it ($CLIENTS threads sharing $RATE
# transactions a second, one connection each) and samples /proc every
# $SAMPLE s; bench/soak_summary.py writes summary.md and soak.png
# (Debian's python3-matplotlib, installed if missing).
#
# Environment (defaults in brackets):
#   DURATION [3600]  RATE [20]  CLIENTS [8]  SAMPLE [10]  RELOAD_EVERY [60]
#   MODMTA_PORT [2640]  BUILD [/tmp/build-bench]  WORK [/tmp/modmta-soak]
#   RESULTS [$WORK/results/<timestamp>]
DURATION=${DURATION:-3600}
RATE=${RATE:-20}
CLIENTS=${CLIENTS:-8}
SAMPLE=${SAMPLE:-10}
RELOAD_EVERY=${RELOAD_EVERY:-60}
MODMTA_PORT=${MODMTA_PORT:-2640}
WORK=${WORK:-/tmp/modmta-soak}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
KNOBS="SOAK DURATION=$DURATION RATE=$RATE CLIENTS=$CLIENTS"
SOAK_PASSWORD=soak-secret

modmta_config() {
    modmta_write_config "\"$BUILD/modules/auth_sasl\", \
\"$BUILD/modules/store_mbox\"" "{\"module\": \"auth_sasl\",
     \"passdb\": \"file:$WORK/passdb\"},
    {\"module\": \"store_mbox\", \"directory\": \"/var/mail\",
     \"users\": \"any\"}" "\"tls\": {\"cert\": \"$WORK/cert.pem\",
     \"key\": \"$WORK/key.pem\"},"
}

soak_setup() {
    [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import matplotlib' \
        2>/dev/null || apt-get install -y -q python3-matplotlib >/dev/null ||
        die "cannot install python3-matplotlib"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench.test \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null ||
        die "openssl req failed"
    printf '%s\n' "$SOAK_PASSWORD" |
        "$BUILD/tools/modmtactl" passwd "soak@$BENCH_DOMAIN" > "$WORK/passdb" ||
        die "modmtactl passwd failed"
    chown "$BENCH_USER" "$WORK/key.pem" "$WORK/passdb"
}

setup
soak_setup
write_env
reset_mbox
ctl modmta start
RUNNING="modmta"
log "soak: ${DURATION}s at $RATE transactions/s, reload every ${RELOAD_EVERY}s"
rc=0
python3 "$BENCH_DIR/soak_load.py" --port "$MODMTA_PORT" \
    --pid "$(modmta_pid)" --user "soak@$BENCH_DOMAIN" \
    --password "$SOAK_PASSWORD" --domain "$BENCH_DOMAIN" \
    --duration "$DURATION" --rate "$RATE" --clients "$CLIENTS" \
    --sample "$SAMPLE" --reload-every "$RELOAD_EVERY" \
    --reload-cmd "$BUILD/tools/modmtactl -c $WORK/modmta.json reload" \
    --out "$RESULTS" || rc=1
# the last messages accepted reach the mailbox
sleep 5
/usr/bin/python3 "$BENCH_DIR/soak_summary.py" "$RESULTS" "$BENCH_MBOX" ||
    rc=1
log "results in $RESULTS (summary.md, soak.png, samples.csv)"
exit $rc
