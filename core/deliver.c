/*
 * Delivery of one queued message: see deliver.h for the rules.
 * The caller (a scheduler worker) owns the message while this runs, so
 * the envelope read here is not written by anyone else meanwhile.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "chain.h"
#include "ctx_priv.h"
#include "deliver.h"
#include "dsn.h"
#include "generation.h"

/* One attempt on one message. */
struct deliver_run {
    queue *q;
    generation *gen;
    queue_env *env;
    char path[PATH_MAX];        /* the content */
    struct deliver_outcome *out;
};

static const char *const deliver_esc_default[] = {
    [MODMTA_DELIVERED] = "2.0.0",
    [MODMTA_DEFERRED] = "4.0.0",
    [MODMTA_FAILED] = "5.0.0",
};
static const char *const deliver_text_default[] = {
    [MODMTA_DELIVERED] = "delivered",
    [MODMTA_DEFERRED] = "delivery deferred",
    [MODMTA_FAILED] = "delivery failed",
};
static const char *const deliver_log_status[] = {
    [MODMTA_DELIVERED] = "sent",
    [MODMTA_DEFERRED] = "deferred",
    [MODMTA_FAILED] = "bounced",
};

long
deliver_backoff(int attempts, long retry_min, long retry_max)
{
    long delay = retry_min > 0 ? retry_min : 1;
    long cap = retry_max > delay ? retry_max : delay;

    for (int i = 1; i < attempts && delay < cap; i++)
        delay = delay > cap / 2 ? cap : delay * 2;
    return delay;
}

static void
deliver_retry_later(struct deliver_outcome *out, long delay)
{
    out->result = DELIVER_RETRY;
    out->next_retry = time(NULL) + delay;
}

/* Replace a recipient's status text; on allocation failure keep the old
 * one (the status is informative, the state is what matters). */
static void
deliver_set_status(queue_rcpt *r, const char *text)
{
    char *s = strdup(text);

    if (s == NULL)
        return;
    free(r->status);
    r->status = s;
}

static void
deliver_log(const struct deliver_run *run, const queue_rcpt *r,
            const char *relay, modmta_dstatus st, const char *reason)
{
    modmta_logf(st == MODMTA_DEFERRED ? MODMTA_LOG_NOTICE : MODMTA_LOG_INFO,
                "%s: to=<%s> relay=%s delay=%ld status=%s (%s)",
                run->env->id, r->addr, relay,
                (long)(time(NULL) - run->env->arrival),
                deliver_log_status[st], reason);
}

static int
deliver_save(struct deliver_run *run)
{
    int rc = queue_update(run->q, run->env);

    if (rc < 0)
        modmta_logf(MODMTA_LOG_ERR, "%s: cannot update envelope: %s",
                    run->env->id, modmta_strerror(rc));
    return rc;
}

/* The module that decided, as the chain left it in the ctx. */
static const char *
deliver_relay(const modmta_ctx *ctx)
{
    return ctx->decided_by != NULL ? ctx->decided_by : "none";
}

/* Run one pending recipient through the deliver chain. */
static void
deliver_rcpt(struct deliver_run *run, queue_rcpt *r)
{
    char reason[600];
    modmta_ctx *ctx = modmta_ctx_new(run->gen->host);
    modmta_dstatus st;

    if (ctx == NULL) {
        deliver_set_status(r, "4.3.0 out of memory");
        run->out->deferred++;
        return;
    }
    modmta_ctx_set_delivery(ctx, run->env->id,
                            r->sender != NULL ? r->sender : run->env->sender,
                            run->env->arrival, run->env->recovered);
    modmta_ctx_set_message(ctx, run->path, run->env->size);
    modmta_ctx_set_dlv_orcpt(ctx, r->orcpt);
    st = chain_deliver(run->gen->chain, ctx, r->addr);
    if (st != MODMTA_DELIVERED && st != MODMTA_FAILED)
        st = MODMTA_DEFERRED;
    snprintf(reason, sizeof(reason), "%s %s",
             ctx->reply_esc[0] ? ctx->reply_esc : deliver_esc_default[st],
             ctx->reply_text[0] ? ctx->reply_text : deliver_text_default[st]);
    deliver_log(run, r, deliver_relay(ctx), st, reason);
    modmta_ctx_free(ctx);

    deliver_set_status(r, reason);
    if (st == MODMTA_DEFERRED) {
        run->out->deferred++;
        return;
    }
    if (st == MODMTA_DELIVERED) {
        r->state = QRCPT_DELIVERED;
        run->out->delivered++;
    } else {
        r->state = QRCPT_FAILED;
        run->out->bounced++;
        if (r->no_dsn)
            modmta_logf(MODMTA_LOG_INFO, "%s: to=<%s> no DSN (notify=never)",
                        run->env->id, r->addr);
    }
    /* Not saved here: the envelope is written once after the attempt, or
     * the message removed. A crash in between repeats the attempt with
     * modmta_dlv_maybe_done() set (the message is "recovered"), and the
     * mailbox de-duplicates; saving per recipient would cost a file
     * create and an fsync per delivery. */
}

static size_t
deliver_pending(const queue_env *env)
{
    size_t n = 0;

    for (size_t i = 0; i < env->nrcpts; i++)
        n += env->rcpts[i].state == QRCPT_PENDING;
    return n;
}

/* The first recipient a notice is due for (dsn_rcpt_due), or NULL. */
static const queue_rcpt *
deliver_dsn_due(const queue_env *env, const struct dsn_params *p)
{
    for (size_t i = 0; i < env->nrcpts; i++)
        if (dsn_rcpt_due(env, &env->rcpts[i], p->now, p->delay_warning) !=
            DSN_ACT_NONE)
            return &env->rcpts[i];
    return NULL;
}

/* `to` run through the RCPT chain, as mail to it would be, so that an
 * alias (a list's owner-NAME) reaches its targets: a ctx whose rcpts are
 * the DSN's envelope recipients, none when the chain did not accept `to`
 * (then the DSN goes to `to` itself). NULL when out of memory. */
static modmta_ctx *
deliver_dsn_rcpts(struct deliver_run *run, const char *to)
{
    modmta_ctx *ctx = modmta_ctx_new(run->gen->host);
    modmta_verdict v;

    if (ctx == NULL || to[0] == '\0')
        return ctx;
    modmta_ctx_set_sender(ctx, run->env->id, "");
    v = chain_rcpt(run->gen->chain, ctx, to, &run->gen->cfg->limits);
    if (v != MODMTA_ACCEPT) {
        modmta_logf(MODMTA_LOG_INFO, "%s: DSN to <%s> not expanded "
                    "(%d %s %s): sent to it as is", run->env->id, to,
                    ctx->reply_code, ctx->reply_esc, ctx->reply_text);
        ctx->nrcpts = 0;
    }
    return ctx;
}

/* Queue one DSN for the recipients of sender `to` that one is due for. */
static int
deliver_dsn_to(struct deliver_run *run, const char *to,
               const struct dsn_params *p)
{
    static const char *const kinds[] = {
        [DSN_ACT_DELIVERED] = "delivery status",
        [DSN_ACT_RELAYED] = "delivery status",
        [DSN_ACT_DELAYED] = "delay",
        [DSN_ACT_FAILED] = "non-delivery",
    };
    enum dsn_action worst = dsn_worst_to(run->env, to, p->now,
                                         p->delay_warning);
    char id[QUEUE_ID_MAX];
    modmta_ctx *ctx = deliver_dsn_rcpts(run, to);
    int rc;

    if (ctx == NULL)
        return MODMTA_E_NOMEM;
    rc = dsn_report_to(run->q, run->env, to, ctx->rcpts, ctx->nrcpts, p, id);
    modmta_ctx_free(ctx);

    if (rc < 0) {
        modmta_logf(MODMTA_LOG_ERR, "%s: cannot queue DSN to <%s>: %s",
                    run->env->id, to, modmta_strerror(rc));
        return rc;
    }
    if (rc == DSN_QUEUED) {
        modmta_logf(MODMTA_LOG_INFO, "%s: sender %s notification: %s",
                    run->env->id, kinds[worst], id);
        memcpy(run->out->dsn_id, id, sizeof(id));
        run->out->dsn_sent++;
    } else if (rc == DSN_NULL_SENDER) {
        modmta_logf(MODMTA_LOG_INFO, "%s: sender is <>, no DSN",
                    run->env->id);
    }
    dsn_mark_sent_to(run->env, to, p->now, p->delay_warning);
    return 0;
}

/* Queue the DSNs due after this attempt (failures, successes asked for
 * with NOTIFY=SUCCESS, delay warnings): one per distinct envelope sender
 * (a list's owner gets its members'), none for <> (never bounce a
 * bounce). 0 when nothing is left to report, <0 when a DSN could not be
 * queued: the message must then stay so that the report is not lost
 * (those already queued are saved as sent). */
static int
deliver_dsn(struct deliver_run *run)
{
    const struct config_queue *qc = &run->gen->cfg->queue;
    /* One time for the whole pass: what is due must not change midway. */
    const struct dsn_params p = {
        .content_path = run->path, .hostname = run->gen->cfg->hostname,
        .now = time(NULL), .delay_warning = qc->delay_warning,
        .lifetime = qc->lifetime,
    };
    const queue_rcpt *r;
    int rc = 0, any = 0, saved;

    /* The sender string belongs to env, which marking does not change. */
    while (rc == 0 && (r = deliver_dsn_due(run->env, &p)) != NULL) {
        rc = deliver_dsn_to(run, dsn_rcpt_sender(run->env, r), &p);
        any |= rc == 0;
    }
    if (any && (saved = deliver_save(run)) < 0 && rc == 0)
        rc = saved;
    return rc;
}

/* Past queue.lifetime: every pending recipient fails with 4.4.7. */
static void
deliver_expire(struct deliver_run *run)
{
    char reason[600];

    for (size_t i = 0; i < run->env->nrcpts; i++) {
        queue_rcpt *r = &run->env->rcpts[i];

        if (r->state != QRCPT_PENDING)
            continue;
        snprintf(reason, sizeof(reason),
                 "4.4.7 message expired in queue (%s)",
                 r->status != NULL ? r->status : "no attempt made");
        deliver_set_status(r, reason);
        r->state = QRCPT_FAILED;
        run->out->bounced++;
        deliver_log(run, r, "none", MODMTA_FAILED, reason);
    }
    deliver_save(run);
}

static void
deliver_remove(struct deliver_run *run)
{
    int rc = queue_remove(run->q, run->env->id);

    if (rc < 0 && rc != MODMTA_E_NOTFOUND) {
        modmta_logf(MODMTA_LOG_ERR, "%s: cannot remove: %s", run->env->id,
                    modmta_strerror(rc));
        /* Keep what was delivered, or the retry would deliver it again. */
        deliver_save(run);
        deliver_retry_later(run->out, DELIVER_RETRY_ERROR);
        return;
    }
    modmta_logf(MODMTA_LOG_INFO, "%s: removed", run->env->id);
    run->out->result = DELIVER_REMOVED;
}

static void
deliver_reschedule(struct deliver_run *run)
{
    const struct config_queue *qc = &run->gen->cfg->queue;
    queue_env *env = run->env;

    env->attempts++;
    env->next_retry = time(NULL) +
                      deliver_backoff(env->attempts, qc->retry_min,
                                      qc->retry_max);
    if (deliver_save(run) < 0) {
        deliver_retry_later(run->out, DELIVER_RETRY_ERROR);
        return;
    }
    run->out->result = DELIVER_RETRY;
    run->out->next_retry = env->next_retry;
}

static void
deliver_env(struct deliver_run *run)
{
    queue_env *env = run->env;
    int rc = queue_content_path(run->q, env->id, run->path,
                                sizeof(run->path));

    if (rc < 0) {
        deliver_retry_later(run->out, DELIVER_RETRY_ERROR);
        return;
    }
    for (size_t i = 0; i < env->nrcpts; i++)
        if (env->rcpts[i].state == QRCPT_PENDING)
            deliver_rcpt(run, &env->rcpts[i]);

    if (deliver_pending(env) > 0 &&
        env->arrival + run->gen->cfg->queue.lifetime < time(NULL))
        deliver_expire(run);
    if (deliver_dsn(run) < 0) {
        deliver_retry_later(run->out, DELIVER_RETRY_ERROR);
        return;
    }
    if (deliver_pending(env) == 0)
        deliver_remove(run);
    else
        deliver_reschedule(run);
}

void
deliver_message(queue *q, const char *id, struct deliver_outcome *out)
{
    struct deliver_run run = {.q = q, .out = out};
    int rc;

    memset(out, 0, sizeof(*out));
    rc = queue_load(q, id, &run.env);
    if (rc == MODMTA_E_NOTFOUND) {
        out->result = DELIVER_GONE;
        return;
    }
    if (rc < 0) {
        modmta_logf(MODMTA_LOG_ERR, "%s: cannot load envelope: %s", id,
                    modmta_strerror(rc));
        deliver_retry_later(out, DELIVER_RETRY_ERROR);
        return;
    }
    if (run.env->quarantine != NULL) {
        out->result = DELIVER_QUARANTINED;
    } else if (run.env->held) {
        out->result = DELIVER_HELD;
    } else if ((run.gen = generation_acquire()) == NULL) {
        deliver_retry_later(out, DELIVER_RETRY_ERROR);
    } else {
        deliver_env(&run);
        generation_release(run.gen);
    }
    queue_env_free(run.env);
}
