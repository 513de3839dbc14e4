/*
 * ratelimit: limits per client address (concurrent connections,
 * connections per minute), per sender or authenticated user (messages
 * and recipients per hour) and per recipient domain (recipients per
 * hour), counted in the shared state (modmta/shared.h): in the process
 * on one node, in Redis across every node sharing it. A connection
 * limit answers 421 4.7.0 and the session ends; a message or recipient
 * limit answers 450 4.7.1 to that MAIL or RCPT. See README.md for the
 * keys, the counting rules and what a store outage does.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <idn2.h>

#include "ratelimit.h"

struct ratelimit_limit {
    const char *name; /* the option, in logs */
    const char *tag;  /* in the key */
    long window_s;    /* 0: a gauge (client_connections) */
    int code;         /* the refusal */
    const char *esc;
    int keep_refused; /* a refused event counts too */
};

static const struct ratelimit_limit ratelimit_limits[RATELIMIT_NKINDS] = {
    [RATELIMIT_CONN] = { "client_connections", "conn", 0, 421, "4.7.0", 0 },
    /* Every attempt counts, refused ones too (as Postfix's anvil): a
     * client that keeps hammering stays refused. */
    [RATELIMIT_CONN_RATE] = { "client_connections_per_minute", "connrate",
                              60, 421, "4.7.0", 1 },
    [RATELIMIT_MSG] = { "sender_messages_per_hour", "msg", 3600, 450,
                        "4.7.1", 0 },
    [RATELIMIT_RCPT] = { "sender_recipients_per_hour", "rcpt", 3600, 450,
                         "4.7.1", 0 },
    [RATELIMIT_DOMAIN] = { "domain_recipients_per_hour", "domain", 3600,
                           450, "4.7.1", 0 },
};

static const modmta_option ratelimit_opts[] = {
    MODMTA_OPTION_INT("client_connections", struct ratelimit_conf,
                      max[RATELIMIT_CONN], 0),
    MODMTA_OPTION_INT("client_connections_per_minute", struct ratelimit_conf,
                      max[RATELIMIT_CONN_RATE], 0),
    MODMTA_OPTION_INT("sender_messages_per_hour", struct ratelimit_conf,
                      max[RATELIMIT_MSG], 0),
    MODMTA_OPTION_INT("sender_recipients_per_hour", struct ratelimit_conf,
                      max[RATELIMIT_RCPT], 0),
    MODMTA_OPTION_INT("domain_recipients_per_hour", struct ratelimit_conf,
                      max[RATELIMIT_DOMAIN], 0),
    MODMTA_OPTION_STRLIST("exempt_networks", struct ratelimit_conf,
                          exempt_networks, 0),
    MODMTA_OPTION_STRLIST("exempt_users", struct ratelimit_conf, exempt_users,
                          0),
    MODMTA_OPTION_ENUM("on_error", struct ratelimit_conf, on_error, 0,
                       "tempfail", "continue"),
    MODMTA_OPTION_END
};

/* ---- configuration ---- */

static void
ratelimit_destroy(void *inst)
{
    struct ratelimit *rl = inst;

    if (rl == NULL)
        return;
    ratelimit_conns_free(rl->conns);
    modmta_conf_free_options(ratelimit_opts, &rl->conf);
    free(rl->nets);
    free(rl);
}

static void *
ratelimit_create(const json_t *conf, const modmta_host *host,
                 modmta_err *err_r)
{
    const char *path = modmta_host_path(host);
    struct ratelimit *rl = calloc(1, sizeof(*rl));

    if (rl == NULL) {
        modmta_err_set(err_r, path, "out of memory");
        return NULL;
    }
    rl->name = modmta_host_instance(host);
    rl->host = host;
    if (modmta_conf_parse_options(conf, host, ratelimit_opts, &rl->conf,
                                  err_r) < 0 ||
        ratelimit_nets_parse(rl, path, err_r) < 0) {
        ratelimit_destroy(rl);
        return NULL;
    }
    rl->on_error_continue = rl->conf.on_error == 1;
    if ((rl->conns = ratelimit_conns_new(host, RATELIMIT_CONN_TTL_MS)) ==
        NULL) {
        modmta_err_set(err_r, path, "out of memory");
        ratelimit_destroy(rl);
        return NULL;
    }
    return rl;
}

/* ---- keys, replies, logs ---- */

/* prefix + s as a key part: ASCII lower case; space, control octets and
 * '%' as %XX (a key holds none of the first two). Cut at n. */
static void
ratelimit_key_part(char *out, size_t n, const char *prefix, const char *s)
{
    size_t len = strlen(prefix) < n ? strlen(prefix) : n - 1;
    unsigned char c;

    memcpy(out, prefix, len);
    for (; *s != '\0' && len + 4 <= n; s++) {
        c = (unsigned char)*s;
        if (c <= ' ' || c == 0x7f || c == '%')
            len += (size_t)snprintf(out + len, n - len, "%%%02X", c);
        else
            out[len++] = (char)tolower(c);
    }
    out[len] = '\0';
}

/* The key of limit k for subject now, "ratelimit:INSTANCE:TAG:SUBJECT",
 * the module's own namespace first whatever the instance is named (the
 * shared state reserves it); a windowed limit's has the window's number
 * before the subject, and *left_r then gets the seconds left in it. */
static void
ratelimit_key(const struct ratelimit *rl, enum ratelimit_kind k,
              const char *subject, char key[MODMTA_SHARED_KEY_MAX],
              long *left_r)
{
    long window_s = ratelimit_limits[k].window_s;
    time_t now;

    if (window_s == 0) {
        snprintf(key, MODMTA_SHARED_KEY_MAX, "ratelimit:%s:%s:%s", rl->name,
                 ratelimit_limits[k].tag, subject);
        return;
    }
    now = time(NULL);
    *left_r = window_s - (long)(now % window_s);
    snprintf(key, MODMTA_SHARED_KEY_MAX, "ratelimit:%s:%s:%lld:%s",
             rl->name, ratelimit_limits[k].tag, (long long)(now / window_s),
             subject);
}

/* The refusal: Postfix's words for the client limits. */
static modmta_verdict
ratelimit_refuse(const struct ratelimit *rl, modmta_ctx *ctx,
                 enum ratelimit_kind k, const char *shown, const char *key,
                 long long count)
{
    const struct ratelimit_limit *l = &ratelimit_limits[k];
    long long max = rl->conf.max[k];

    modmta_log(ctx, MODMTA_LOG_NOTICE, "refuse: limit=%s key=%s count=%lld "
               "max=%lld client=%s[%s]", l->name, key, count, max,
               modmta_client_name(ctx), modmta_client_addr(ctx));
    switch (k) {
    case RATELIMIT_CONN:
        modmta_reply(ctx, l->code, l->esc, "Error: too many connections "
                     "from %s (at most %lld at once)", shown, max);
        break;
    case RATELIMIT_CONN_RATE:
        modmta_reply(ctx, l->code, l->esc, "Error: too many connections "
                     "from %s (at most %lld per minute)", shown, max);
        break;
    default:
        modmta_reply(ctx, l->code, l->esc, "Error: %s exceeded %lld %s%s "
                     "per hour", shown, max,
                     k == RATELIMIT_MSG ? "message" : "recipient",
                     max == 1 ? "" : "s");
        break;
    }
    return MODMTA_TEMPFAIL;
}

/* The store failed: tempfail (451 4.3.0; 421 at connect, the only 4xx
 * a greeting can be) or, with "on_error": "continue", let it through
 * uncounted. Logged either way. */
static modmta_verdict
ratelimit_store_failed(const struct ratelimit *rl, modmta_ctx *ctx,
                       enum ratelimit_kind k, const char *key, int rc)
{
    modmta_log(ctx, MODMTA_LOG_WARN, "store error: limit=%s key=%s "
               "error=\"%s\" action=%s", ratelimit_limits[k].name, key,
               modmta_strerror(rc),
               rl->on_error_continue ? "continue" : "tempfail");
    if (rl->on_error_continue)
        return MODMTA_CONTINUE;
    modmta_reply(ctx, modmta_ctx_phase(ctx) == MODMTA_PHASE_CONNECT ? 421
                                                                     : 451,
                 "4.3.0", "Error: rate limits unavailable, try again later");
    return MODMTA_TEMPFAIL;
}

/* Count one event of limit k for subject (a key part). CONTINUE with
 * *counted_r 1 when counted below the limit (key then names the
 * counter); TEMPFAIL with the reply set when over it (the event is not
 * counted, but by keep_refused limits) or when the store failed;
 * CONTINUE uncounted after a store failure with "on_error":
 * "continue". */
static modmta_verdict
ratelimit_count(const struct ratelimit *rl, modmta_ctx *ctx,
                enum ratelimit_kind k, const char *subject, const char *shown,
                char key[MODMTA_SHARED_KEY_MAX], int *counted_r)
{
    long left_s = 0;
    long long v;
    int rc;

    *counted_r = 0;
    ratelimit_key(rl, k, subject, key, &left_s);
    if ((rc = ratelimit_incr(ctx, key, left_s, &v)) < 0)
        return ratelimit_store_failed(rl, ctx, k, key, rc);
    if (v > rl->conf.max[k]) {
        if (!ratelimit_limits[k].keep_refused)
            ratelimit_give_back(ctx, key, 1);
        return ratelimit_refuse(rl, ctx, k, shown, key, v);
    }
    *counted_r = 1;
    return MODMTA_CONTINUE;
}

static modmta_verdict
ratelimit_nomem(modmta_ctx *ctx)
{
    modmta_reply(ctx, modmta_ctx_phase(ctx) == MODMTA_PHASE_CONNECT ? 421
                                                                     : 451,
                 "4.3.0", "Error: out of memory");
    return MODMTA_TEMPFAIL;
}

/* Count one event of limit k into the open transaction's holds. */
static modmta_verdict
ratelimit_count_held(const struct ratelimit *rl, modmta_ctx *ctx,
                     struct ratelimit_sess *s, enum ratelimit_kind k,
                     const char *subject, const char *shown)
{
    char key[MODMTA_SHARED_KEY_MAX];
    modmta_verdict v;
    int counted;
    long i;

    v = ratelimit_count(rl, ctx, k, subject, shown, key, &counted);
    if (!counted)
        return v;
    i = ratelimit_hold_add(s, ctx, key);
    if (i < 0)
        return ratelimit_nomem(ctx);
    if (modmta_ctx_phase(ctx) == MODMTA_PHASE_RCPT)
        s->last[s->nlast++] = (size_t)i;
    return MODMTA_CONTINUE;
}

/* ---- the sender of a transaction ---- */

static int
ratelimit_user_exempt(const struct ratelimit *rl, const char *user)
{
    for (char **u = rl->conf.exempt_users; u != NULL && *u != NULL; u++)
        if (strcmp(*u, user) == 0)
            return 1;
    return 0;
}

/* Whom the transaction's sender limits count: the authenticated user,
 * else the envelope sender; none for <> (bounces come from every
 * server's postmaster: one quota for all of them would be wrong). */
static void
ratelimit_txn_who(const struct ratelimit *rl, struct ratelimit_sess *s,
                  modmta_ctx *ctx)
{
    const char *user = modmta_auth_user(ctx);
    const char *sender = modmta_sender(ctx);

    if (user != NULL) {
        s->txn_exempt |= ratelimit_user_exempt(rl, user);
        ratelimit_key_part(s->who, sizeof(s->who), "user:", user);
        snprintf(s->who_text, sizeof(s->who_text), "user %s", user);
    } else if (sender != NULL && *sender != '\0') {
        ratelimit_key_part(s->who, sizeof(s->who), "from:", sender);
        snprintf(s->who_text, sizeof(s->who_text), "sender %s", sender);
    }
}

/* s in ctx's transaction, with its sender worked out when it is new. */
static void
ratelimit_enter_txn(const struct ratelimit *rl, struct ratelimit_sess *s,
                    modmta_ctx *ctx)
{
    if (ratelimit_txn(s, ctx))
        ratelimit_txn_who(rl, s, ctx);
    else
        ratelimit_rcpt_settle(s, ctx);
}

/* ---- hooks ---- */

/* A place in client_connections for the session, "HOSTNAME/SESSION-ID"
 * in the client's gauge, held until the session ends. */
static modmta_verdict
ratelimit_conn_enter(const struct ratelimit *rl, modmta_ctx *ctx,
                     struct ratelimit_sess *s)
{
    long long n = 0;
    int rc;

    ratelimit_key(rl, RATELIMIT_CONN, s->client, s->conn.key, NULL);
    snprintf(s->conn.member, sizeof(s->conn.member), "%s/%s",
             modmta_host_hostname(rl->host), modmta_session_id(ctx));
    rc = ratelimit_conn_join(rl->conns, &s->conn, rl->conf.max[RATELIMIT_CONN],
                             &n);
    if (rc == 1)
        return MODMTA_CONTINUE;
    if (rc == 0)
        return ratelimit_refuse(rl, ctx, RATELIMIT_CONN, s->client,
                                s->conn.key, n + 1);
    if (rc == MODMTA_E_NOMEM)
        return ratelimit_nomem(ctx);
    return ratelimit_store_failed(rl, ctx, RATELIMIT_CONN, s->conn.key, rc);
}

static modmta_verdict
ratelimit_on_connect(void *inst, modmta_ctx *ctx)
{
    struct ratelimit *rl = inst;
    struct ratelimit_sess *s = ratelimit_sess_get(rl, ctx);
    char key[MODMTA_SHARED_KEY_MAX];
    modmta_verdict v;
    int counted;

    if (s == NULL)
        return ratelimit_nomem(ctx);
    if (s->exempt)
        return MODMTA_CONTINUE;
    if (rl->conf.max[RATELIMIT_CONN_RATE] > 0 &&
        (v = ratelimit_count(rl, ctx, RATELIMIT_CONN_RATE, s->client,
                             s->client, key, &counted)) != MODMTA_CONTINUE)
        return v;
    if (rl->conf.max[RATELIMIT_CONN] > 0)
        return ratelimit_conn_enter(rl, ctx, s);
    return MODMTA_CONTINUE;
}

static modmta_verdict
ratelimit_on_mail(void *inst, modmta_ctx *ctx, const char *sender)
{
    struct ratelimit *rl = inst;
    struct ratelimit_sess *s = ratelimit_sess_get(rl, ctx);

    if (s == NULL)
        return ratelimit_nomem(ctx);
    ratelimit_enter_txn(rl, s, ctx);
    if (s->txn_exempt || s->who[0] == '\0' ||
        rl->conf.max[RATELIMIT_MSG] == 0)
        return MODMTA_CONTINUE;
    return ratelimit_count_held(rl, ctx, s, RATELIMIT_MSG, s->who,
                                s->who_text);
}

/* The recipient's domain as a key part: no trailing dot, an IDN in its
 * A-label form (IDNA2008 with UTS #46 mapping, as deliver_smtp routes
 * it), so that "bücher.example" and "xn--bcher-kva.example" are one
 * domain; one that is no valid IDN stays as it is. 0, or -1 when rcpt
 * has no domain. */
static int
ratelimit_domain_part(const char *rcpt, char part[MODMTA_SHARED_KEY_MAX])
{
    char local[MODMTA_ADDR_PATH_MAX * 2], domain[MODMTA_ADDR_DOMAIN_MAX + 1];
    char *ascii = NULL;
    const char *p;
    size_t n;

    if (modmta_addr_split(rcpt, local, sizeof(local), domain,
                          sizeof(domain)) < 0)
        return -1;
    n = strlen(domain);
    if (n > 0 && domain[n - 1] == '.')
        domain[--n] = '\0';
    if (n == 0)
        return -1;
    for (p = domain; *p != '\0' && (unsigned char)*p < 0x80; p++)
        ;
    if (*p != '\0' &&
        idn2_to_ascii_8z(domain, &ascii, IDN2_NONTRANSITIONAL) != IDN2_OK) {
        idn2_free(ascii);
        ascii = NULL;
    }
    ratelimit_key_part(part, MODMTA_SHARED_KEY_MAX, "",
                       ascii != NULL ? ascii : domain);
    idn2_free(ascii);
    return 0;
}

/* The recipient's domain counts (none for an address without one). */
static modmta_verdict
ratelimit_rcpt_domain(const struct ratelimit *rl, modmta_ctx *ctx,
                      struct ratelimit_sess *s, const char *rcpt)
{
    char part[MODMTA_SHARED_KEY_MAX], shown[MODMTA_SHARED_KEY_MAX + 8];

    if (ratelimit_domain_part(rcpt, part) < 0)
        return MODMTA_CONTINUE;
    snprintf(shown, sizeof(shown), "domain %s", part);
    return ratelimit_count_held(rl, ctx, s, RATELIMIT_DOMAIN, part, shown);
}

static modmta_verdict
ratelimit_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct ratelimit *rl = inst;
    struct ratelimit_sess *s;
    modmta_verdict v = MODMTA_CONTINUE;

    /* the client's recipients count, not what an alias expands to */
    if (modmta_rcpt_is_rewritten(ctx))
        return MODMTA_CONTINUE;
    if ((s = ratelimit_sess_get(rl, ctx)) == NULL)
        return ratelimit_nomem(ctx);
    ratelimit_enter_txn(rl, s, ctx);
    if (s->txn_exempt)
        return MODMTA_CONTINUE;
    s->last_nrcpts = modmta_rcpt_count(ctx);
    if (s->who[0] != '\0' && rl->conf.max[RATELIMIT_RCPT] > 0)
        v = ratelimit_count_held(rl, ctx, s, RATELIMIT_RCPT, s->who,
                                 s->who_text);
    if (v == MODMTA_CONTINUE && rl->conf.max[RATELIMIT_DOMAIN] > 0)
        v = ratelimit_rcpt_domain(rl, ctx, s, rcpt);
    if (v != MODMTA_CONTINUE)
        ratelimit_rcpt_settle(s, ctx); /* what this RCPT took goes back */
    return v;
}

/* The end of DATA: the last RCPT's outcome is known. */
static modmta_verdict
ratelimit_on_data(void *inst, modmta_ctx *ctx)
{
    struct ratelimit_sess *s = modmta_ctx_get_data(ctx, inst);

    if (s != NULL)
        ratelimit_enter_txn(inst, s, ctx);
    return MODMTA_CONTINUE;
}

static modmta_verdict
ratelimit_on_queued(void *inst, modmta_ctx *ctx)
{
    struct ratelimit_sess *s = modmta_ctx_get_data(ctx, inst);

    if (s != NULL) {
        ratelimit_enter_txn(inst, s, ctx);
        ratelimit_txn_queued(s);
    }
    return MODMTA_CONTINUE;
}

static void
ratelimit_on_disconnect(void *inst, modmta_ctx *ctx)
{
    struct ratelimit *rl = inst;
    struct ratelimit_sess *s = modmta_ctx_get_data(ctx, inst);
    int rc;

    if (s == NULL)
        return;
    ratelimit_txn_end(s, ctx);
    if ((rc = ratelimit_conn_leave(rl->conns, &s->conn)) < 0)
        modmta_log(ctx, MODMTA_LOG_WARN, "store error: key=%s leave "
                   "error=\"%s\" (counted until its TTL ends)", s->conn.key,
                   modmta_strerror(rc));
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "ratelimit",
    .version = "1.0.0",
    .create = ratelimit_create,
    .destroy = ratelimit_destroy,
    .on_connect = ratelimit_on_connect,
    .on_mail = ratelimit_on_mail,
    .on_rcpt = ratelimit_on_rcpt,
    .on_data = ratelimit_on_data,
    .on_queued = ratelimit_on_queued,
    .on_disconnect = ratelimit_on_disconnect,
};
