/*
 * milter: a Sendmail milter protocol (version 6) client, so the milters
 * sites already run (opendkim, opendmarc, rspamd, clamav-milter) take
 * part in the chain. See README.md for the configuration and for how
 * each milter reply maps to a verdict.
 */
#include <stdlib.h>
#include <string.h>

#include <modmta/conf.h>
#include <modmta/ctx.h>
#include <modmta/log.h>
#include <modmta/module.h>

#include "milter_conf.h"
#include "milter_pool.h"
#include "milter_session.h"

struct milter_inst {
    struct milter_conf conf;
    struct milter_pool *pools; /* one per milter (used with "reuse") */
};

/* Queues the command packet of one event. */
typedef int (*milter_put_fn)(modmta_ctx *ctx, struct milter_buf *b,
                             const char *arg);

static void
milter_destroy(void *inst)
{
    struct milter_inst *in = inst;

    for (size_t i = 0; in->pools != NULL && i < in->conf.n; i++)
        milter_pool_free(&in->pools[i]);
    free(in->pools);
    milter_conf_free(&in->conf);
    free(in);
}

static void *
milter_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    struct milter_inst *in = calloc(1, sizeof(*in));
    int ok;

    if (in == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    if (milter_conf_parse(conf, host, &in->conf, err_r) < 0) {
        free(in);
        return NULL;
    }
    in->pools = calloc(in->conf.n, sizeof(*in->pools));
    ok = in->pools != NULL;
    for (size_t i = 0; ok && i < in->conf.n; i++)
        if (in->conf.milters[i].reuse)
            ok = milter_pool_init(&in->pools[i], &in->conf.milters[i]) == 0;
    if (!ok) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        milter_destroy(in);
        return NULL;
    }
    return in;
}

/* ABORT an open transaction, QUIT; or QUIT_NC and back to the pool.
 * Done again (a no-op) when the session's data is freed. */
static void
milter_sess_release(struct milter_sess *s, int timeout_ms)
{
    long long deadline = milter_pool_deadline(timeout_ms); /* for all */

    for (size_t i = 0; i < s->n; i++)
        milter_pool_release(s->peers[i].pool, &s->peers[i], deadline);
}

/* On every exit path, even one that never reached on_disconnect. */
static void
milter_sess_free(void *data)
{
    struct milter_sess *s = data;

    milter_sess_release(s, 1000);
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < MILTER_M_COUNT; j++)
            free(s->peers[i].macros[j]);
    }
    free(s->peers);
    free(s);
}

/* Run one event through every milter until one decides. `txn`: an event
 * of the transaction (a milter that accepted the message hears no
 * more). */
static modmta_verdict
milter_event(modmta_ctx *ctx, struct milter_sess *s, enum milter_stage st,
             uint32_t no_flag, uint32_t nr_flag, milter_put_fn put,
             const char *arg)
{
    int txn = st != MILTER_ST_CONNECT && st != MILTER_ST_HELO &&
              st != MILTER_ST_UNKNOWN;
    modmta_verdict v;

    for (size_t i = 0; i < s->n; i++) {
        struct milter_peer *p = &s->peers[i];

        /* A milter that failed before MAIL: its default action from
         * MAIL on, so the client is greeted and told at MAIL (as
         * Postfix's delayed rejects). */
        if (p->failed) {
            v = txn ? milter_default_verdict(ctx, p) : MODMTA_CONTINUE;
            if (v != MODMTA_CONTINUE)
                return v;
            continue;
        }
        if (p->session_done || (txn && p->txn_done) || (p->proto & no_flag))
            continue;
        if (milter_macros_put(ctx, p, st, st == MILTER_ST_RCPT ? arg : NULL) <
                0 ||
            put(ctx, &p->conn.out, arg) < 0) {
            modmta_reply(ctx, 451, "4.3.0", "Error: out of memory");
            return MODMTA_TEMPFAIL;
        }
        v = milter_exchange(ctx, s, p, st, (p->proto & nr_flag) != 0,
                            p->spec->command_ms);
        if (!txn && p->failed)
            v = MODMTA_CONTINUE;
        if (v != MODMTA_CONTINUE)
            return v;
    }
    return MODMTA_CONTINUE;
}

static int
milter_put_connect(modmta_ctx *ctx, struct milter_buf *b, const char *arg)
{
    const char *name = modmta_client_name(ctx);
    const char *addr = modmta_client_addr(ctx);
    char host[300];

    (void)arg;
    /* An unverified client is known by its address, as Postfix does. */
    if (name == NULL || strcmp(name, "unknown") == 0) {
        snprintf(host, sizeof(host), "[%s]", addr);
        name = host;
    }
    if (milter_pkt_begin(b, MILTER_C_CONNECT) < 0 ||
        milter_pkt_str(b, name) < 0 ||
        milter_pkt_bytes(b, strchr(addr, ':') ? "6" : "4", 1) < 0 ||
        milter_pkt_u16(b, (uint16_t)modmta_client_port(ctx)) < 0 ||
        milter_pkt_str(b, addr) < 0)
        return -1;
    milter_pkt_end(b);
    return 0;
}

static int
milter_put_helo(modmta_ctx *ctx, struct milter_buf *b, const char *arg)
{
    (void)ctx;
    if (milter_pkt_begin(b, MILTER_C_HELO) < 0 || milter_pkt_str(b, arg) < 0)
        return -1;
    milter_pkt_end(b);
    return 0;
}

/* "<addr>" and, for MAIL, the ESMTP parameters the client gave. */
static int
milter_put_path(struct milter_buf *b, int cmd, const char *addr,
                modmta_ctx *ctx)
{
    static const char *const params[] = {"SIZE", "BODY", "AUTH", "RET",
                                         "ENVID", "SMTPUTF8", NULL};
    const char *v;

    if (milter_pkt_begin(b, cmd) < 0 || milter_pkt_bytes(b, "<", 1) < 0 ||
        milter_pkt_bytes(b, addr, strlen(addr)) < 0 ||
        milter_pkt_str(b, ">") < 0)
        return -1;
    for (size_t i = 0; cmd == MILTER_C_MAIL && params[i]; i++) {
        v = modmta_mail_param(ctx, params[i]);
        if (v == NULL)
            continue;
        if (milter_pkt_bytes(b, params[i], strlen(params[i])) < 0 ||
            (v[0] && (milter_pkt_bytes(b, "=", 1) < 0 ||
                      milter_pkt_bytes(b, v, strlen(v)) < 0)) ||
            milter_pkt_bytes(b, "", 1) < 0)
            return -1;
    }
    milter_pkt_end(b);
    return 0;
}

static int
milter_put_mail(modmta_ctx *ctx, struct milter_buf *b, const char *arg)
{
    return milter_put_path(b, MILTER_C_MAIL, arg, ctx);
}

static int
milter_put_rcpt(modmta_ctx *ctx, struct milter_buf *b, const char *arg)
{
    return milter_put_path(b, MILTER_C_RCPT, arg, ctx);
}

static int
milter_put_unknown(modmta_ctx *ctx, struct milter_buf *b, const char *arg)
{
    (void)ctx;
    if (milter_pkt_begin(b, MILTER_C_UNKNOWN) < 0 ||
        milter_pkt_str(b, arg) < 0)
        return -1;
    milter_pkt_end(b);
    return 0;
}

/* The session's state, made (connections opened, CONNECT sent) by the
 * first hook that runs. NULL with *v_r set when that fails. */
static struct milter_sess *
milter_sess_get(struct milter_inst *in, modmta_ctx *ctx, modmta_verdict *v_r)
{
    struct milter_sess *s = modmta_ctx_get_data(ctx, in);

    *v_r = MODMTA_CONTINUE;
    if (s != NULL)
        return s;
    s = calloc(1, sizeof(*s));
    if (s != NULL)
        s->peers = calloc(in->conf.n, sizeof(*s->peers));
    if (s == NULL || s->peers == NULL ||
        modmta_ctx_set_data(ctx, in, s, milter_sess_free) < 0) {
        if (s != NULL)
            free(s->peers);
        free(s);
        modmta_reply(ctx, 451, "4.3.0", "Error: out of memory");
        *v_r = MODMTA_TEMPFAIL;
        return NULL;
    }
    s->n = in->conf.n;
    for (size_t i = 0; i < s->n; i++) {
        s->peers[i].spec = &in->conf.milters[i];
        if (s->peers[i].spec->reuse)
            s->peers[i].pool = &in->pools[i];
        milter_peer_open(ctx, &s->peers[i]);
    }
    *v_r = milter_event(ctx, s, MILTER_ST_CONNECT, MILTER_P_NOCONNECT,
                        MILTER_P_NR_CONN, milter_put_connect, NULL);
    if (*v_r == MODMTA_DISCARD)
        *v_r = MODMTA_CONTINUE; /* every message of the session */
    return s;
}

static modmta_verdict
milter_on_connect(void *inst, modmta_ctx *ctx)
{
    modmta_verdict v;

    milter_sess_get(inst, ctx, &v);
    return v;
}

static modmta_verdict
milter_on_helo(void *inst, modmta_ctx *ctx, const char *helo)
{
    modmta_verdict v;
    struct milter_sess *s = milter_sess_get(inst, ctx, &v);

    if (s == NULL || v != MODMTA_CONTINUE)
        return v;
    v = milter_event(ctx, s, MILTER_ST_HELO, MILTER_P_NOHELO,
                     MILTER_P_NR_HELO, milter_put_helo, helo);
    return v == MODMTA_DISCARD ? MODMTA_CONTINUE : v;
}

/* A transaction begins: ABORT what the milters still hold of the last
 * one, then MAIL. Run by on_mail, or by on_rcpt or on_data when a module
 * before this one decided MAIL (ACCEPT) and this on_mail never ran. */
static modmta_verdict
milter_txn_begin(modmta_ctx *ctx, struct milter_sess *s, const char *sender)
{
    s->discard_txn = 0;
    s->txn_open = 1;
    if (s->discard_session)
        return MODMTA_DISCARD;
    for (size_t i = 0; i < s->n; i++) {
        struct milter_peer *p = &s->peers[i];

        if (p->in_txn && !p->failed &&
            milter_pkt_empty(&p->conn.out, MILTER_C_ABORT) < 0) {
            modmta_reply(ctx, 451, "4.3.0", "Error: out of memory");
            return MODMTA_TEMPFAIL;
        }
        p->in_txn = !p->failed && !p->session_done;
        p->txn_done = 0;
    }
    return milter_event(ctx, s, MILTER_ST_MAIL, MILTER_P_NOMAIL,
                        MILTER_P_NR_MAIL, milter_put_mail, sender);
}

static modmta_verdict
milter_on_mail(void *inst, modmta_ctx *ctx, const char *sender)
{
    modmta_verdict v;
    struct milter_sess *s = milter_sess_get(inst, ctx, &v);

    if (s == NULL || v != MODMTA_CONTINUE)
        return v;
    return milter_txn_begin(ctx, s, sender);
}

/* The session and its open transaction, for the steps after MAIL. NULL
 * with *v_r set when they cannot be had (or *v_r is not CONTINUE). */
static struct milter_sess *
milter_txn_get(struct milter_inst *in, modmta_ctx *ctx, modmta_verdict *v_r)
{
    struct milter_sess *s = milter_sess_get(in, ctx, v_r);

    if (s != NULL && *v_r == MODMTA_CONTINUE && !s->txn_open)
        *v_r = milter_txn_begin(ctx, s, modmta_sender(ctx));
    return *v_r == MODMTA_CONTINUE ? s : NULL;
}

static modmta_verdict
milter_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct milter_sess *s;
    modmta_verdict v;

    /* Milters hear the client's recipients, not alias expansions. */
    if (modmta_rcpt_is_rewritten(ctx))
        return MODMTA_CONTINUE;
    s = milter_txn_get(inst, ctx, &v);
    if (s == NULL)
        return v;
    if (s->discard_session || s->discard_txn)
        return MODMTA_DISCARD;
    return milter_event(ctx, s, MILTER_ST_RCPT, MILTER_P_NORCPT,
                        MILTER_P_NR_RCPT, milter_put_rcpt, rcpt);
}

static modmta_verdict
milter_on_data(void *inst, modmta_ctx *ctx)
{
    modmta_verdict v;
    struct milter_sess *s = milter_txn_get(inst, ctx, &v);

    if (s == NULL)
        return v;
    s->txn_open = 0; /* the transaction ends here, whatever the verdict */
    if (s->discard_session || s->discard_txn)
        return MODMTA_DISCARD;
    for (size_t i = 0; i < s->n; i++) {
        struct milter_peer *p = &s->peers[i];

        if (p->failed)
            v = milter_default_verdict(ctx, p);
        else if (p->session_done || p->txn_done)
            continue;
        else
            v = milter_message(ctx, s, p);
        if (v != MODMTA_CONTINUE)
            return v;
    }
    return MODMTA_CONTINUE;
}

/* A command modmta does not know: the milters hear it (unless they
 * asked for NOUNKNOWN); one's reject or tempfail is the client's reply,
 * anything else leaves the core's 500. */
static modmta_verdict
milter_on_unknown(void *inst, modmta_ctx *ctx, const char *line)
{
    modmta_verdict v;
    struct milter_sess *s = milter_sess_get(inst, ctx, &v);

    if (s == NULL || v != MODMTA_CONTINUE)
        return v;
    v = milter_event(ctx, s, MILTER_ST_UNKNOWN, MILTER_P_NOUNKNOWN,
                     MILTER_P_NR_UNKN, milter_put_unknown, line);
    return v == MODMTA_REJECT || v == MODMTA_TEMPFAIL ? v : MODMTA_CONTINUE;
}

/* RSET, a new MAIL, a disconnect mid-transaction: the milters hear ABORT
 * (sent with the next command, or at QUIT). */
static void
milter_on_abort(void *inst, modmta_ctx *ctx)
{
    struct milter_sess *s = modmta_ctx_get_data(ctx, inst);

    if (s != NULL)
        s->txn_open = 0;
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        struct milter_peer *p = &s->peers[i];

        if (p->in_txn && !p->failed &&
            milter_pkt_empty(&p->conn.out, MILTER_C_ABORT) == 0)
            p->in_txn = p->at_rest = 0;
    }
}

/* The connections go back to the pool before the core logs the
 * disconnect, so the client's next session can take them. */
static void
milter_on_disconnect(void *inst, modmta_ctx *ctx)
{
    struct milter_sess *s = modmta_ctx_get_data(ctx, inst);

    if (s != NULL)
        milter_sess_release(s, modmta_ctx_time_left(ctx, 1000));
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "milter",
    .version = "1.0.0",
    .caps = MODMTA_CAP_ADDHDRS | MODMTA_CAP_CHGHDRS | MODMTA_CAP_CHGFROM |
            MODMTA_CAP_ADDRCPT | MODMTA_CAP_DELRCPT | MODMTA_CAP_QUARANTINE |
            MODMTA_CAP_CHGBODY,
    .create = milter_create,
    .destroy = milter_destroy,
    .on_connect = milter_on_connect,
    .on_helo = milter_on_helo,
    .on_mail = milter_on_mail,
    .on_rcpt = milter_on_rcpt,
    .on_data = milter_on_data,
    .on_abort = milter_on_abort,
    .on_disconnect = milter_on_disconnect,
    .on_unknown = milter_on_unknown,
};
