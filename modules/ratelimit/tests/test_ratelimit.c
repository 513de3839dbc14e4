/*
 * Unit tests of the ratelimit module, on the SDK fakes and the process's
 * memory store: each limit accepts below it and refuses at it, starts
 * afresh in its next window, counts only what was queued or accepted and
 * leaves no key for what it gave back, gives back only into the window
 * it counted in, client_connections' places (renewed while held, a dead
 * node's expiring), IPv6 clients per /64, IDN domains, exemptions, a
 * store outage (tempfail and continue), config errors. Every test runs
 * under an instance name of its own, so its keys are its own.
 *
 * The windows are numbered by time(), wrapped at link time
 * (-Wl,--wrap=time): the tests set the clock; the build gives
 * client_connections' places a TTL of 3 s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include <modmta/modmta.h>
#include <fake.h>

#include "ratelimit.h"

extern const modmta_module modmta_descriptor;

#define SESSIONS_MAX 8

/* The wall clock the module sees: 12:30 on some day, mid-window. */
static time_t clock_now = 1700000000 / 3600 * 3600 + 1800;

time_t __wrap_time(time_t *t);

time_t
__wrap_time(time_t *t)
{
    if (t != NULL)
        *t = clock_now;
    return clock_now;
}

struct fx {
    char name[32];
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx[SESSIONS_MAX];
    unsigned nqid, nsess;
};

static int
setup(void **state)
{
    static unsigned n;
    struct fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    snprintf(fx->name, sizeof(fx->name), "rl%u", ++n);
    fx->host = modmta_test_host_new(fx->name, "localhost", NULL);
    *state = fx;
    return fx->host == NULL;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    for (size_t i = 0; i < SESSIONS_MAX; i++)
        modmta_test_ctx_free(fx->ctx[i]);
    modmta_test_release(&modmta_descriptor, fx->inst, NULL, fx->host);
    free(fx);
    return 0;
}

static void
create(struct fx *fx, const char *conf)
{
    fx->inst = modmta_test_create_ok(&modmta_descriptor, conf, fx->host);
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- a session, step by step ---- */

/* Session i from ip: on_connect's verdict. */
static modmta_verdict
connect_from(struct fx *fx, size_t i, const char *ip)
{
    char id[32];

    assert_null(fx->ctx[i]);
    fx->ctx[i] = modmta_test_ctx_new(fx->host, ip);
    assert_non_null(fx->ctx[i]);
    snprintf(id, sizeof(id), "S%u", ++fx->nsess);
    modmta_test_set_session_id(fx->ctx[i], id);
    modmta_test_enter(fx->ctx[i], MODMTA_PHASE_CONNECT, &modmta_descriptor,
                      fx->inst);
    return modmta_descriptor.on_connect(fx->inst, fx->ctx[i]);
}

static void
disconnect(struct fx *fx, size_t i)
{
    modmta_test_enter(fx->ctx[i], MODMTA_PHASE_DISCONNECT,
                      &modmta_descriptor, fx->inst);
    modmta_descriptor.on_disconnect(fx->inst, fx->ctx[i]);
    modmta_test_ctx_free(fx->ctx[i]);
    fx->ctx[i] = NULL;
}

/* A new transaction (a queue ID of its own) from sender. */
static modmta_verdict
mail(struct fx *fx, size_t i, const char *sender)
{
    char qid[32];

    snprintf(qid, sizeof(qid), "QID%u", ++fx->nqid);
    modmta_test_set_sender(fx->ctx[i], qid, sender);
    modmta_test_enter(fx->ctx[i], MODMTA_PHASE_MAIL, &modmta_descriptor,
                      fx->inst);
    return modmta_descriptor.on_mail(fx->inst, fx->ctx[i], sender);
}

/* RCPT; when ratelimit lets it through, a later module accepts it
 * (accepted 1: it joins the envelope) or refuses it (0). */
static modmta_verdict
rcpt(struct fx *fx, size_t i, const char *addr, int accepted)
{
    modmta_verdict v;

    modmta_test_enter(fx->ctx[i], MODMTA_PHASE_RCPT, &modmta_descriptor,
                      fx->inst);
    v = modmta_descriptor.on_rcpt(fx->inst, fx->ctx[i], addr);
    if (v == MODMTA_CONTINUE && accepted)
        modmta_test_add_rcpt(fx->ctx[i], addr);
    return v;
}

/* The end of DATA and the commit. */
static void
queued(struct fx *fx, size_t i)
{
    modmta_test_enter(fx->ctx[i], MODMTA_PHASE_DATA, &modmta_descriptor,
                      fx->inst);
    assert_int_equal(modmta_descriptor.on_data(fx->inst, fx->ctx[i]),
                     MODMTA_CONTINUE);
    modmta_test_enter(fx->ctx[i], MODMTA_PHASE_QUEUED, &modmta_descriptor,
                      fx->inst);
    modmta_descriptor.on_queued(fx->inst, fx->ctx[i]);
}

/* One queued message from sender to rcpt_addr. */
static void
send_one(struct fx *fx, size_t i, const char *sender, const char *rcpt_addr)
{
    assert_int_equal(mail(fx, i, sender), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, i, rcpt_addr, 1), MODMTA_CONTINUE);
    queued(fx, i);
}

static void
refused(const struct fx *fx, size_t i, modmta_verdict v, int code,
        const char *esc, const char *text)
{
    assert_int_equal(v, MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx[i]), code);
    assert_string_equal(modmta_test_reply_esc(fx->ctx[i]), esc);
    if (text != NULL)
        assert_string_equal(modmta_test_reply_text(fx->ctx[i]), text);
}

/* The length of the windows of tag's limit. */
static long
window_of(const char *tag)
{
    return strcmp(tag, "connrate") == 0 ? 60 : 3600;
}

/* The key of tag's counter for subject in the window now. */
static void
key_now(const struct fx *fx, const char *tag, const char *subject,
        char *key, size_t n)
{
    snprintf(key, n, "ratelimit:%s:%s:%lld:%s", fx->name, tag,
             (long long)(clock_now / window_of(tag)), subject);
}

/* That counter: -1 when there is no key at all (never made, or given
 * back to nothing), else its value. */
static long long
stored(const struct fx *fx, const char *tag, const char *subject)
{
    char key[600], *v = NULL;
    long long n = -1;
    int rc;

    key_now(fx, tag, subject, key, sizeof(key));
    rc = modmta_shared_get(modmta_host_shared(fx->host), key, &v);
    assert_true(rc >= 0);
    if (rc == 1)
        n = strtoll(v, NULL, 10);
    modmta_free(v);
    return n;
}

/* The same, 0 for no key. */
static long long
counter(const struct fx *fx, const char *tag, const char *subject)
{
    long long n = stored(fx, tag, subject);

    return n < 0 ? 0 : n;
}

/* The clock moves to the start of the next window of that length. */
static void
next_window(long window_s)
{
    clock_now = (clock_now / window_s + 1) * window_s;
}

/* The sessions client has open in client_connections (a probe joins
 * the gauge with no limit, and leaves). */
static long long
places(const struct fx *fx, const char *client)
{
    modmta_shared *sh = modmta_host_shared(fx->host);
    char key[300];
    long long n = 0;

    snprintf(key, sizeof(key), "ratelimit:%s:conn:%s", fx->name, client);
    assert_int_equal(modmta_shared_gauge_join(sh, key, "probe/0", 0, 60000,
                                              &n), 1);
    assert_int_equal(modmta_shared_gauge_leave(sh, key, "probe/0"), 1);
    return n - 1;
}

/* ---- connections ---- */

static void
test_concurrent_connections(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"client_connections\": 2}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(connect_from(fx, 1, "192.0.2.1"), MODMTA_CONTINUE);
    refused(fx, 2, connect_from(fx, 2, "192.0.2.1"), 421, "4.7.0",
            "Error: too many connections from 192.0.2.1 (at most 2 at "
            "once)");
    /* the refused session is not counted, and its end takes nothing */
    assert_int_equal(places(fx, "192.0.2.1"), 2);
    disconnect(fx, 2);
    assert_int_equal(places(fx, "192.0.2.1"), 2);
    /* another client has its own count */
    assert_int_equal(connect_from(fx, 3, "192.0.2.2"), MODMTA_CONTINUE);
    disconnect(fx, 0);
    assert_int_equal(places(fx, "192.0.2.1"), 1);
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    disconnect(fx, 0);
    disconnect(fx, 1);
    disconnect(fx, 3);
    assert_int_equal(places(fx, "192.0.2.1"), 0);
    assert_int_equal(places(fx, "192.0.2.2"), 0);
}

/* The sessions of a node that died count until their TTL ends; the
 * sessions held here are renewed past it. */
static void
test_connections_expire_and_renew(void **state)
{
    struct fx *fx = *state;
    modmta_shared *sh = modmta_host_shared(fx->host);
    char key[64];
    long long n;

    create(fx, "{\"client_connections\": 2}");
    snprintf(key, sizeof(key), "ratelimit:%s:conn:192.0.2.1", fx->name);
    /* another node's session, whose node stops renewing it */
    assert_int_equal(modmta_shared_gauge_join(sh, key, "dead.test/S1", 0,
                                              RATELIMIT_CONN_TTL_MS, &n), 1);
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    refused(fx, 1, connect_from(fx, 1, "192.0.2.1"), 421, "4.7.0", NULL);
    disconnect(fx, 1);
    /* twice the TTL: the dead node's place is gone, ours renewed */
    sleep_ms(2 * RATELIMIT_CONN_TTL_MS + 500);
    assert_int_equal(places(fx, "192.0.2.1"), 1);
    assert_int_equal(connect_from(fx, 1, "192.0.2.1"), MODMTA_CONTINUE);
    refused(fx, 2, connect_from(fx, 2, "192.0.2.1"), 421, "4.7.0", NULL);
    disconnect(fx, 0);
    disconnect(fx, 1);
    disconnect(fx, 2);
    assert_int_equal(places(fx, "192.0.2.1"), 0);
}

/* An IPv6 client is its /64; IPv4-mapped IPv6 is the IPv4 address. */
static void
test_connections_ipv6(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"client_connections\": 1}");
    assert_int_equal(connect_from(fx, 0, "2001:db8:1:2::1"),
                     MODMTA_CONTINUE);
    refused(fx, 1, connect_from(fx, 1, "2001:db8:1:2:ffff::9"), 421,
            "4.7.0", "Error: too many connections from 2001:db8:1:2::/64 "
            "(at most 1 at once)");
    assert_int_equal(connect_from(fx, 2, "2001:db8:1:3::1"),
                     MODMTA_CONTINUE);
    assert_int_equal(places(fx, "2001:db8:1:2::/64"), 1);
    assert_int_equal(connect_from(fx, 3, "192.0.2.9"), MODMTA_CONTINUE);
    refused(fx, 4, connect_from(fx, 4, "::ffff:192.0.2.9"), 421, "4.7.0",
            NULL);
}

static void
test_connection_rate(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"client_connections_per_minute\": 3}");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
        disconnect(fx, 0);
    }
    refused(fx, 0, connect_from(fx, 0, "192.0.2.1"), 421, "4.7.0",
            "Error: too many connections from 192.0.2.1 (at most 3 per "
            "minute)");
    disconnect(fx, 0);
    /* attempts count, refused ones too */
    refused(fx, 0, connect_from(fx, 0, "192.0.2.1"), 421, "4.7.0", NULL);
    disconnect(fx, 0);
    assert_int_equal(counter(fx, "connrate", "192.0.2.1"), 5);
    /* the minute is over */
    next_window(60);
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(counter(fx, "connrate", "192.0.2.1"), 1);
}

/* ---- messages ---- */

static void
test_sender_messages(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"sender_messages_per_hour\": 2}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    send_one(fx, 0, "alice@example.org", "bob@localhost");
    send_one(fx, 0, "Alice@Example.ORG", "bob@localhost");
    refused(fx, 0, mail(fx, 0, "alice@example.org"), 450, "4.7.1",
            "Error: sender alice@example.org exceeded 2 messages per hour");
    assert_int_equal(counter(fx, "msg", "from:alice@example.org"), 2);
    /* another sender, in a parallel session too */
    assert_int_equal(connect_from(fx, 1, "192.0.2.2"), MODMTA_CONTINUE);
    send_one(fx, 1, "carol@example.org", "bob@localhost");
    /* the hour is over */
    next_window(3600);
    send_one(fx, 0, "alice@example.org", "bob@localhost");
    assert_int_equal(counter(fx, "msg", "from:alice@example.org"), 1);
}

/* An authenticated client counts as its user, whatever its senders; the
 * same address unauthenticated is another count (a forger cannot spend
 * the user's quota). */
static void
test_user_messages(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"sender_messages_per_hour\": 1}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    modmta_test_set_auth(fx->ctx[0], "Bob");
    send_one(fx, 0, "bob@example.org", "x@localhost");
    refused(fx, 0, mail(fx, 0, "other@example.org"), 450, "4.7.1",
            "Error: user Bob exceeded 1 message per hour");
    assert_int_equal(counter(fx, "msg", "user:bob"), 1);
    assert_int_equal(connect_from(fx, 1, "192.0.2.2"), MODMTA_CONTINUE);
    send_one(fx, 1, "bob@example.org", "x@localhost");
    assert_int_equal(counter(fx, "msg", "from:bob@example.org"), 1);
}

/* A transaction that is not queued gives its message back: at the next
 * MAIL, and at disconnect; counters given back to nothing are gone, not
 * kept at 0 for the rest of their window. */
static void
test_unqueued_gives_back(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"sender_messages_per_hour\": 1, "
               "\"sender_recipients_per_hour\": 2, "
               "\"domain_recipients_per_hour\": 2}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "r1@example.net", 1), MODMTA_CONTINUE);
    assert_int_equal(counter(fx, "msg", "from:a@example.org"), 1);
    assert_int_equal(counter(fx, "rcpt", "from:a@example.org"), 1);
    assert_int_equal(counter(fx, "domain", "example.net"), 1);
    /* RSET, a new MAIL: the first one is given back */
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    assert_int_equal(counter(fx, "msg", "from:a@example.org"), 1);
    assert_int_equal(stored(fx, "rcpt", "from:a@example.org"), -1);
    assert_int_equal(stored(fx, "domain", "example.net"), -1);
    assert_int_equal(rcpt(fx, 0, "r2@example.net", 1), MODMTA_CONTINUE);
    disconnect(fx, 0);
    assert_int_equal(stored(fx, "msg", "from:a@example.org"), -1);
    assert_int_equal(stored(fx, "rcpt", "from:a@example.org"), -1);
    assert_int_equal(stored(fx, "domain", "example.net"), -1);
}

/* A client naming ever new recipients that are refused (by a later
 * module, or by the limit), and giving up transactions, leaves no key
 * behind: what was counted for them went back to nothing. */
static void
test_refused_leave_no_key(void **state)
{
    struct fx *fx = *state;
    const struct ratelimit_sess *sess;
    char addr[64], domain[64];

    create(fx, "{\"sender_messages_per_hour\": 5, "
               "\"sender_recipients_per_hour\": 100, "
               "\"domain_recipients_per_hour\": 1}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    for (int i = 0; i < 50; i++) {
        snprintf(addr, sizeof(addr), "x@d%d.example", i);
        assert_int_equal(rcpt(fx, 0, addr, 0), MODMTA_CONTINUE);
    }
    /* nor does the session keep a hold for each: the message's, and
     * the last RCPT's two, whose outcome is not known yet */
    sess = modmta_ctx_get_data(fx->ctx[0], fx->inst);
    assert_int_equal(sess->nholds, 3);
    /* the limit's own refusal: the domain's count stays at the limit,
     * the sender's goes back */
    assert_int_equal(rcpt(fx, 0, "x@full.example", 1), MODMTA_CONTINUE);
    refused(fx, 0, rcpt(fx, 0, "y@full.example", 1), 450, "4.7.1", NULL);
    assert_int_equal(counter(fx, "rcpt", "from:a@example.org"), 1);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "x@last.example", 0), MODMTA_CONTINUE);
    disconnect(fx, 0);
    for (int i = 0; i < 50; i++) {
        snprintf(domain, sizeof(domain), "d%d.example", i);
        assert_int_equal(stored(fx, "domain", domain), -1);
    }
    assert_int_equal(stored(fx, "domain", "full.example"), -1);
    assert_int_equal(stored(fx, "domain", "last.example"), -1);
    assert_int_equal(stored(fx, "rcpt", "from:a@example.org"), -1);
    assert_int_equal(stored(fx, "msg", "from:a@example.org"), -1);
}

/* A count given back after its window ended is not taken from the next
 * window: the window it was counted in is over, and nothing is made. */
static void
test_give_back_after_window(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"sender_messages_per_hour\": 1}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    next_window(3600);
    /* the next hour: another session sends its one message */
    assert_int_equal(connect_from(fx, 1, "192.0.2.2"), MODMTA_CONTINUE);
    send_one(fx, 1, "a@example.org", "b@localhost");
    /* the first hour's transaction ends unqueued */
    disconnect(fx, 0);
    assert_int_equal(counter(fx, "msg", "from:a@example.org"), 1);
    refused(fx, 1, mail(fx, 1, "a@example.org"), 450, "4.7.1", NULL);
    /* a give-back within its window still counts there */
    next_window(3600);
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    disconnect(fx, 0);
    send_one(fx, 1, "a@example.org", "b@localhost");
    refused(fx, 1, mail(fx, 1, "a@example.org"), 450, "4.7.1", NULL);
}

/* ---- recipients ---- */

static void
test_sender_recipients(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"sender_recipients_per_hour\": 3}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "r1@localhost", 1), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "r2@localhost", 1), MODMTA_CONTINUE);
    /* refused by a later module, then named twice: counted once */
    assert_int_equal(rcpt(fx, 0, "unknown@localhost", 0), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "r2@localhost", 1), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "r3@localhost", 1), MODMTA_CONTINUE);
    assert_int_equal(counter(fx, "rcpt", "from:a@example.org"), 3);
    refused(fx, 0, rcpt(fx, 0, "r4@localhost", 1), 450, "4.7.1",
            "Error: sender a@example.org exceeded 3 recipients per hour");
    queued(fx, 0);
    assert_int_equal(counter(fx, "rcpt", "from:a@example.org"), 3);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    refused(fx, 0, rcpt(fx, 0, "r5@localhost", 1), 450, "4.7.1", NULL);
    next_window(3600);
    assert_int_equal(rcpt(fx, 0, "r5@localhost", 1), MODMTA_CONTINUE);
}

/* The last RCPT refused by a later module, then the end of DATA: it is
 * not counted. */
static void
test_last_rcpt_refused(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"sender_recipients_per_hour\": 5}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "r1@localhost", 1), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "unknown@localhost", 0), MODMTA_CONTINUE);
    queued(fx, 0);
    disconnect(fx, 0);
    assert_int_equal(counter(fx, "rcpt", "from:a@example.org"), 1);
}

static void
test_domain_recipients(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"domain_recipients_per_hour\": 2, "
               "\"sender_recipients_per_hour\": 10}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "x@example.com", 1), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "y@Example.COM.", 1), MODMTA_CONTINUE);
    refused(fx, 0, rcpt(fx, 0, "z@example.com", 1), 450, "4.7.1",
            "Error: domain example.com exceeded 2 recipients per hour");
    /* what the refused RCPT took from the sender's count went back */
    assert_int_equal(counter(fx, "rcpt", "from:a@example.org"), 2);
    assert_int_equal(counter(fx, "domain", "example.com"), 2);
    assert_int_equal(rcpt(fx, 0, "z@example.net", 1), MODMTA_CONTINUE);
    queued(fx, 0);
    /* a domain is everybody's: another client, another sender, <> */
    assert_int_equal(connect_from(fx, 1, "192.0.2.2"), MODMTA_CONTINUE);
    assert_int_equal(mail(fx, 1, ""), MODMTA_CONTINUE);
    refused(fx, 1, rcpt(fx, 1, "w@example.com", 1), 450, "4.7.1", NULL);
}

/* An IDN counts once, however written: U-label, A-label, case. */
static void
test_domain_idn(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"domain_recipients_per_hour\": 3}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "x@b\xc3\xbc" "cher.example", 1),
                     MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "y@xn--bcher-kva.example", 1),
                     MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, 0, "z@B\xc3\x9c" "CHER.example.", 1),
                     MODMTA_CONTINUE);
    assert_int_equal(counter(fx, "domain", "xn--bcher-kva.example"), 3);
    refused(fx, 0, rcpt(fx, 0, "w@XN--BCHER-KVA.EXAMPLE", 1), 450, "4.7.1",
            "Error: domain xn--bcher-kva.example exceeded 3 recipients per "
            "hour");
}

/* <> has no sender count: bounces come from everywhere. */
static void
test_null_sender(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"sender_messages_per_hour\": 1, "
               "\"sender_recipients_per_hour\": 1}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mail(fx, 0, ""), MODMTA_CONTINUE);
        assert_int_equal(rcpt(fx, 0, "a@localhost", 1), MODMTA_CONTINUE);
        assert_int_equal(rcpt(fx, 0, "b@localhost", 1), MODMTA_CONTINUE);
        queued(fx, 0);
    }
}

/* A sender whose address holds a space (a quoted local part), a '%' and
 * upper case: one key part, lower case, escaped. */
static void
test_key_escaping(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"sender_messages_per_hour\": 1}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    send_one(fx, 0, "\"John Smith%x\"@Example.ORG", "b@localhost");
    assert_int_equal(counter(fx, "msg",
                             "from:\"john%20smith%25x\"@example.org"), 1);
    refused(fx, 0, mail(fx, 0, "\"john smith%x\"@example.org"), 450,
            "4.7.1", "Error: sender \"john smith%x\"@example.org exceeded "
            "1 message per hour");
}

/* ---- exemptions ---- */

static void
test_exempt(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"client_connections\": 1, \"sender_messages_per_hour\": 1,"
               " \"domain_recipients_per_hour\": 1,"
               " \"exempt_networks\": [\"10.0.0.0/8\", \"2001:db8::/32\","
               " \"192.0.2.77\"], \"exempt_users\": [\"relay\"]}");
    /* exempt networks: never limited, never counted */
    assert_int_equal(connect_from(fx, 0, "10.1.2.3"), MODMTA_CONTINUE);
    assert_int_equal(connect_from(fx, 1, "10.1.2.3"), MODMTA_CONTINUE);
    assert_int_equal(connect_from(fx, 2, "2001:db8:5::1"), MODMTA_CONTINUE);
    assert_int_equal(connect_from(fx, 3, "2001:db8:5::1"), MODMTA_CONTINUE);
    assert_int_equal(connect_from(fx, 4, "192.0.2.77"), MODMTA_CONTINUE);
    assert_int_equal(connect_from(fx, 5, "192.0.2.77"), MODMTA_CONTINUE);
    send_one(fx, 0, "a@example.org", "x@example.com");
    send_one(fx, 0, "a@example.org", "x@example.com");
    assert_int_equal(places(fx, "10.1.2.3"), 0);
    assert_int_equal(counter(fx, "msg", "from:a@example.org"), 0);
    /* an exempt user: not limited, after connecting like anyone */
    assert_int_equal(connect_from(fx, 6, "192.0.2.1"), MODMTA_CONTINUE);
    refused(fx, 7, connect_from(fx, 7, "192.0.2.1"), 421, "4.7.0", NULL);
    modmta_test_set_auth(fx->ctx[6], "relay");
    send_one(fx, 6, "a@example.org", "x@example.com");
    send_one(fx, 6, "a@example.org", "x@example.com");
    assert_int_equal(counter(fx, "msg", "user:relay"), 0);
    assert_int_equal(counter(fx, "domain", "example.com"), 0);
    /* another user is */
    modmta_test_set_auth(fx->ctx[6], "relay2");
    send_one(fx, 6, "a@example.org", "x@example.com");
    refused(fx, 6, mail(fx, 6, "a@example.org"), 450, "4.7.1", NULL);
}

/* ---- the store is down ---- */

static void
test_store_down_tempfail(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"client_connections\": 5, "
               "\"sender_messages_per_hour\": 5, "
               "\"domain_recipients_per_hour\": 5}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    assert_int_equal(modmta_test_host_fail_shared(fx->host, 1), 0);
    refused(fx, 1, connect_from(fx, 1, "192.0.2.1"), 421, "4.3.0",
            "Error: rate limits unavailable, try again later");
    refused(fx, 0, mail(fx, 0, "a@example.org"), 451, "4.3.0", NULL);
    assert_int_equal(modmta_test_host_fail_shared(fx->host, 0), 0);
    assert_int_equal(mail(fx, 0, "a@example.org"), MODMTA_CONTINUE);
    assert_int_equal(modmta_test_host_fail_shared(fx->host, 1), 0);
    refused(fx, 0, rcpt(fx, 0, "x@example.com", 1), 451, "4.3.0", NULL);
    /* giving back fails too: logged, the counts stay */
    disconnect(fx, 0);
    disconnect(fx, 1);
    assert_int_equal(modmta_test_host_fail_shared(fx->host, 0), 0);
    assert_int_equal(places(fx, "192.0.2.1"), 1);
    assert_int_equal(counter(fx, "msg", "from:a@example.org"), 1);
}

static void
test_store_down_continue(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"client_connections\": 1, "
               "\"client_connections_per_minute\": 1, "
               "\"sender_messages_per_hour\": 1, "
               "\"sender_recipients_per_hour\": 1, "
               "\"domain_recipients_per_hour\": 1, "
               "\"on_error\": \"continue\"}");
    assert_int_equal(modmta_test_host_fail_shared(fx->host, 1), 0);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(connect_from(fx, i, "192.0.2.1"), MODMTA_CONTINUE);
        send_one(fx, i, "a@example.org", "x@example.com");
        send_one(fx, i, "a@example.org", "x@example.com");
    }
    disconnect(fx, 0);
    assert_int_equal(modmta_test_host_fail_shared(fx->host, 0), 0);
    /* nothing was counted, and session 1 never held a connection */
    disconnect(fx, 1);
    assert_int_equal(places(fx, "192.0.2.1"), 0);
    assert_int_equal(counter(fx, "msg", "from:a@example.org"), 0);
}

/* ---- configuration ---- */

static void
test_config(void **state)
{
    struct fx *fx = *state;

    /* no limit at all: every hook lets everything through */
    create(fx, "{}");
    assert_int_equal(connect_from(fx, 0, "192.0.2.1"), MODMTA_CONTINUE);
    send_one(fx, 0, "a@example.org", "x@example.com");
    modmta_test_create_fails_with(&modmta_descriptor,
                                  "{\"on_error\": \"ignore\"}", fx->host,
                                  "$.modules[0].on_error", "continue");
    modmta_test_create_fails_with(&modmta_descriptor,
                                  "{\"exempt_networks\": [\"10.0.0.0/8\", "
                                  "\"10.0.0.0/33\"]}", fx->host,
                                  "$.modules[0].exempt_networks[1]",
                                  "10.0.0.0/33");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"exempt_networks\": "
                             "[\"::ffff:10.0.0.0/104\"]}",
                             fx->host, "$.modules[0].exempt_networks[0]");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"exempt_networks\": [\"example.org\"]}",
                             fx->host, "$.modules[0].exempt_networks[0]");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"client_connections\": -1}", fx->host,
                             "$.modules[0].client_connections");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"sender_messages_per_hour\": \"10\"}",
                             fx->host,
                             "$.modules[0].sender_messages_per_hour");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"messages_per_hour\": 10}", fx->host,
                             "$.modules[0].messages_per_hour");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connections_expire_and_renew,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections_ipv6, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_rate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sender_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_user_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unqueued_gives_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_leave_no_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_give_back_after_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sender_recipients, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_last_rcpt_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_domain_recipients, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_domain_idn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_down_tempfail, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_down_continue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
