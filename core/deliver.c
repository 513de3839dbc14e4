/*
 * One delivery attempt on one queued message: see deliver.h. The
 * recipients go through the deliver chain here; what transports claim
 * becomes jobs (deliver_job.c); the attempt is finished by whoever drops
 * the run's last reference (deliver_run_unref): saving, DSNs, removal or
 * back-off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "chain.h"
#include "ctx_priv.h"
#include "deliver_priv.h"
#include "dsn.h"

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

const char *
deliver_rcpt_sender(const queue_env *env, const queue_rcpt *r)
{
    return r->sender != NULL ? r->sender :
           env->sender != NULL ? env->sender : "";
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

modmta_ctx *
deliver_ctx_new(struct deliver_run *run, const char *sender)
{
    const queue_env *env = run->env;
    modmta_ctx *ctx = modmta_ctx_new(run->gen->host);

    if (ctx == NULL)
        return NULL;
    modmta_ctx_set_delivery(ctx, env->id, sender, env->arrival,
                            env->recovered);
    modmta_ctx_set_message(ctx, run->path, env->size);
    /* A transport's connections give up when the dispatcher stops. */
    if (run->d != NULL)
        ctx->interrupt = dispatch_interrupt(run->d);
    for (size_t i = 0; i < env->nparams; i++)
        if (modmta_ctx_add_param(ctx, env->params[i].name,
                                 env->params[i].value) < 0)
            goto nomem;
    if (env->auth_param != NULL &&
        modmta_ctx_add_param(ctx, "AUTH", env->auth_param) < 0)
        goto nomem;
    for (size_t i = 0; i < env->nnotes; i++)
        if (modmta_ctx_note_put(ctx, env->notes[i].name, env->notes[i].str,
                                env->notes[i].num) < 0)
            goto nomem;
    return ctx;
nomem:
    modmta_ctx_free(ctx);
    return NULL;
}

/* Run one pending recipient through the chain: delivered or decided now,
 * or claimed by a transport (then *claimed is filled and 1 returned). */
static int
deliver_route_rcpt(struct deliver_run *run, queue_rcpt *r,
                   struct deliver_claim *claimed, modmta_ctx **keep_r)
{
    modmta_ctx *ctx = deliver_ctx_new(run, deliver_rcpt_sender(run->env,
                                                                 r));
    struct chain_route route;
    struct deliver_res res = {0};

    if (ctx == NULL) {
        res.status = MODMTA_DEFERRED;
        res.esc = "4.3.0";
        res.text = "out of memory";
        deliver_result(run, r, &res);
        return 0;
    }
    modmta_ctx_set_dlv_orcpt(ctx, r->orcpt);
    chain_route(run->gen->chain, ctx, r->addr, &route);
    if (route.claimed) {
        claimed->inst = route.inst;
        claimed->dest = route.dest;     /* lives in ctx: kept by caller */
        *keep_r = ctx;
        return 1;
    }
    res.status = route.status;
    res.code = ctx->reply_code;
    res.esc = ctx->reply_esc;
    res.text = ctx->reply_text;
    res.relay = ctx->decided_by;
    if (route.discarded)
        modmta_logf(MODMTA_LOG_INFO, "%s: to=<%s> discarded by %s",
                    run->env->id, r->addr, ctx->decided_by);
    deliver_result(run, r, &res);
    modmta_ctx_free(ctx);
    return 0;
}

/* Route every pending recipient; hand the claimed ones to the jobs. */
static void
deliver_route(struct deliver_run *run)
{
    queue_env *env = run->env;
    struct deliver_claim *claims = calloc(env->nrcpts ? env->nrcpts : 1,
                                          sizeof(*claims));
    modmta_ctx **ctxs = calloc(env->nrcpts ? env->nrcpts : 1,
                               sizeof(*ctxs));
    size_t n = 0;

    if (claims == NULL || ctxs == NULL) {
        free(claims);
        free(ctxs);
        deliver_retry_later(&run->out, DELIVER_RETRY_ERROR);
        run->out.deferred = 1;
        return;
    }
    /* No job runs yet: the envelope is this thread's alone. */
    for (size_t i = 0; i < env->nrcpts; i++) {
        if (env->rcpts[i].state != QRCPT_PENDING)
            continue;
        claims[n].rcpt = i;
        if (deliver_route_rcpt(run, &env->rcpts[i], &claims[n],
                               &ctxs[n]))
            n++;
    }
    deliver_jobs_start(run, claims, n);
    for (size_t i = 0; i < n; i++)
        modmta_ctx_free(ctxs[i]);
    free(claims);
    free(ctxs);
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
        memcpy(run->out.dsn_id, id, sizeof(id));
        run->out.dsn_sent++;
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
    char text[1300];

    for (size_t i = 0; i < run->env->nrcpts; i++) {
        queue_rcpt *r = &run->env->rcpts[i];
        struct deliver_res res = {.status = MODMTA_FAILED, .esc = "4.4.7",
                                  .text = text, .relay = "none"};

        if (r->state != QRCPT_PENDING)
            continue;
        snprintf(text, sizeof(text), "message expired in queue (%s)",
                 r->status != NULL ? r->status : "no attempt made");
        deliver_result(run, r, &res);
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
        deliver_retry_later(&run->out, DELIVER_RETRY_ERROR);
        return;
    }
    modmta_logf(MODMTA_LOG_INFO, "%s: removed", run->env->id);
    run->out.result = DELIVER_REMOVED;
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
        deliver_retry_later(&run->out, DELIVER_RETRY_ERROR);
        return;
    }
    run->out.result = DELIVER_RETRY;
    run->out.next_retry = env->next_retry;
}

/* Shutdown cut the attempt short, or a destination had no room: keep
 * what was decided and count no attempt (the message is not at fault).
 * Shutdown leaves the rest for the next start (a recovered message is
 * due at once); a full destination is tried again in a minute. */
static void
deliver_cut_short(struct deliver_run *run)
{
    if (run->decided && deliver_save(run) < 0) {
        deliver_retry_later(&run->out, DELIVER_RETRY_ERROR);
        return;
    }
    if (run->throttled) {
        deliver_retry_later(&run->out, DELIVER_RETRY_ERROR);
        return;
    }
    run->out.result = DELIVER_RETRY;
    run->out.next_retry = run->env->next_retry;
}

/* No job left: what every attempt ends with. */
static void
deliver_finish(struct deliver_run *run)
{
    queue_env *env = run->env;

    if (deliver_pending(env) > 0 && !run->cancelled &&
        env->arrival + run->gen->cfg->queue.lifetime < time(NULL))
        deliver_expire(run);
    if (deliver_dsn(run) < 0) {
        /* Keep what this attempt delivered, or the retry would deliver
         * it again (the report is what is retried). */
        deliver_save(run);
        deliver_retry_later(&run->out, DELIVER_RETRY_ERROR);
    } else if (deliver_pending(env) == 0)
        deliver_remove(run);
    else if (run->cancelled || run->throttled)
        deliver_cut_short(run);
    else
        deliver_reschedule(run);
}

static void
deliver_run_free(struct deliver_run *run)
{
    if (run->gen != NULL)
        generation_release(run->gen);
    queue_env_free(run->env);
    pthread_mutex_destroy(&run->lock);
    free(run);
}

/* The outcome goes out; the run is freed. */
static void
deliver_end(struct deliver_run *run)
{
    char id[QUEUE_ID_MAX];
    struct deliver_outcome out = run->out;
    deliver_done_fn *done = run->done;
    void *arg = run->done_arg;

    snprintf(id, sizeof(id), "%s", run->id);
    deliver_run_free(run);
    done(arg, id, &out);
}

void
deliver_run_unref(struct deliver_run *run)
{
    size_t left;

    pthread_mutex_lock(&run->lock);
    left = --run->jobs_left;
    pthread_mutex_unlock(&run->lock);
    if (left > 0)
        return;
    deliver_finish(run);
    deliver_end(run);
}

void
deliver_start(queue *q, dispatch *d, const char *id, deliver_done_fn *done,
              void *arg)
{
    struct deliver_run *run = calloc(1, sizeof(*run));
    struct deliver_outcome out = {0};
    int rc;

    if (run == NULL) {
        deliver_retry_later(&out, DELIVER_RETRY_ERROR);
        done(arg, id, &out);
        return;
    }
    snprintf(run->id, sizeof(run->id), "%s", id);
    run->q = q;
    run->d = d;
    run->done = done;
    run->done_arg = arg;
    run->jobs_left = 1;             /* the starter's reference */
    pthread_mutex_init(&run->lock, NULL);
    rc = queue_load(q, id, &run->env);
    if (rc == MODMTA_E_NOTFOUND) {
        run->out.result = DELIVER_GONE;
    } else if (rc < 0) {
        modmta_logf(MODMTA_LOG_ERR, "%s: cannot load envelope: %s", id,
                    modmta_strerror(rc));
        deliver_retry_later(&run->out, DELIVER_RETRY_ERROR);
    } else if (run->env->quarantine != NULL) {
        run->out.result = DELIVER_QUARANTINED;
    } else if (run->env->held) {
        run->out.result = DELIVER_HELD;
    } else if ((run->gen = generation_acquire()) == NULL) {
        deliver_retry_later(&run->out, DELIVER_RETRY_ERROR);
    } else if (queue_content_path(q, id, run->path, sizeof(run->path)) < 0) {
        deliver_retry_later(&run->out, DELIVER_RETRY_ERROR);
    } else {
        deliver_route(run);
        deliver_run_unref(run);
        return;
    }
    deliver_end(run);
}

static void
deliver_copy_out(void *arg, const char *id, const struct deliver_outcome *out)
{
    (void)id;
    *(struct deliver_outcome *)arg = *out;
}

void
deliver_message(queue *q, const char *id, struct deliver_outcome *out)
{
    memset(out, 0, sizeof(*out));
    deliver_start(q, NULL, id, deliver_copy_out, out);
}
