/*
 * The recipients transports claimed: grouped by (instance, destination,
 * envelope sender) into jobs of at most queue.destination_recipients,
 * each one deliver_msg() call, run by the dispatcher (or here when the
 * attempt has none). A job copies its results into the envelope under
 * the run's lock; the last job to end finishes the attempt.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "chain.h"
#include "ctx_priv.h"
#include "deliver_priv.h"
#include "queue_env.h"

struct deliver_job {
    struct deliver_run *run;
    size_t inst;
    char *dest;
    const char *sender;         /* borrowed from env */
    char key[DISPATCH_KEY_MAX + 1]; /* the dispatcher's "instance/dest" */
    size_t *rcpts;              /* indices in env->rcpts */
    size_t n, cap;
};

static void deliver_job_run(void *arg);
static void deliver_job_skip(void *arg, const char *reason);
static void deliver_job_cancel(void *arg);

static const struct dispatch_ops deliver_job_ops = {
    .run = deliver_job_run,
    .skip = deliver_job_skip,
    .cancel = deliver_job_cancel,
};

static void
deliver_job_free(struct deliver_job *j)
{
    if (j == NULL)
        return;
    free(j->dest);
    free(j->rcpts);
    free(j);
}

/* "instance/dest"; one too long for the dispatcher keeps its start and
 * ends with a hash of the whole, so that it stays one key per
 * destination. */
static void
deliver_job_key(char key[DISPATCH_KEY_MAX + 1], const char *inst,
                const char *dest)
{
    uint64_t h = 14695981039346656037ULL;   /* FNV-1a */
    int n = snprintf(key, DISPATCH_KEY_MAX + 1, "%s/%s", inst, dest);
    const char *p;

    if (n >= 0 && n <= DISPATCH_KEY_MAX)
        return;
    for (p = inst; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    for (p = dest; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    snprintf(key + DISPATCH_KEY_MAX - 17, 18, "#%016llx",
             (unsigned long long)h);
}

/* The job of the same instance, destination and sender that has room,
 * or a new one appended to *jobs. NULL out of memory. */
static struct deliver_job *
deliver_job_for(struct deliver_run *run, struct deliver_job ***jobs,
                size_t *njobs, const struct deliver_claim *c)
{
    const char *sender = deliver_rcpt_sender(run->env,
                                              &run->env->rcpts[c->rcpt]);
    size_t max = (size_t)run->gen->cfg->queue.destination_recipients;
    struct deliver_job *j, **nj;

    for (size_t i = 0; i < *njobs; i++) {
        j = (*jobs)[i];
        if (j->inst == c->inst && j->n < max && strcmp(j->dest, c->dest) == 0
            && strcmp(j->sender, sender) == 0)
            return j;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL ||
        (j->dest = strdup(c->dest)) == NULL ||
        (nj = realloc(*jobs, (*njobs + 1) * sizeof(*nj))) == NULL) {
        deliver_job_free(j);
        return NULL;
    }
    j->run = run;
    j->inst = c->inst;
    j->sender = sender;
    deliver_job_key(j->key, chain_instance_at(run->gen->chain, c->inst),
                    c->dest);
    *jobs = nj;
    (*jobs)[(*njobs)++] = j;
    return j;
}

static int
deliver_job_add(struct deliver_job *j, size_t rcpt)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 4;
        size_t *r = realloc(j->rcpts, cap * sizeof(*r));

        if (r == NULL)
            return MODMTA_E_NOMEM;
        j->rcpts = r;
        j->cap = cap;
    }
    j->rcpts[j->n++] = rcpt;
    return 0;
}

/* Defer every recipient of j with a local reason (no server reached). */
static void
deliver_job_defer_all(struct deliver_job *j, const char *esc,
                      const char *text)
{
    struct deliver_res res = {.status = MODMTA_DEFERRED, .esc = esc,
                              .text = text};

    res.relay = "none";         /* no server took part (Postfix's word) */
    for (size_t i = 0; i < j->n; i++)
        deliver_result(j->run, &j->run->env->rcpts[j->rcpts[i]], &res);
}

/* A job ended. */
static void
deliver_job_end(struct deliver_job *j)
{
    struct deliver_run *run = j->run;

    deliver_job_free(j);
    deliver_run_unref(run);
}

/* Copy deliver_msg()'s report into the envelope (lock held). */
static void
deliver_job_collect(struct deliver_job *j, modmta_ctx *ctx)
{
    for (size_t i = 0; i < j->n; i++) {
        const struct ctx_dlv_rcpt *g = &ctx->dlv[i];
        /* without a server: "none", as Postfix logs it */
        struct deliver_res res = {.relay = "none"};

        if (!g->has_result) {
            res.status = MODMTA_DEFERRED;
            res.code = 451;
            res.esc = "4.3.0";
            res.text = "no result from the transport";
        } else {
            res.status = g->status;
            res.code = g->code;
            res.esc = g->esc;
            res.stage = g->stage;
            res.text = g->text;
        }
        if (g->has_result && g->remote != NULL) {
            res.remote.name = g->remote->name;
            res.remote.addr = g->remote->addr;
            res.remote.port = g->remote->port;
            res.remote.tls_version = g->remote->tls_version;
            res.remote.tls_cipher = g->remote->tls_cipher;
        }
        deliver_result(j->run, &j->run->env->rcpts[j->rcpts[i]], &res);
    }
}

/* The reason a destination is down: the first deferred recipient's. */
static const char *
deliver_job_down_reason(const struct deliver_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        const queue_rcpt *r = &j->run->env->rcpts[j->rcpts[i]];

        if (r->state == QRCPT_PENDING && r->status != NULL)
            return r->status;
    }
    return "no server reached";
}

static void
deliver_job_run(void *arg)
{
    struct deliver_job *j = arg;
    struct deliver_run *run = j->run;
    modmta_ctx *ctx = deliver_ctx_new(run, j->sender);
    struct ctx_dlv_rcpt *g = ctx != NULL ? modmta_ctx_dlv_group(ctx, j->n)
                                         : NULL;
    char notify[64];

    if (g == NULL) {
        pthread_mutex_lock(&run->lock);
        deliver_job_defer_all(j, "4.3.0", "out of memory");
        pthread_mutex_unlock(&run->lock);
        modmta_ctx_free(ctx);
        deliver_job_end(j);
        return;
    }
    /* The envelope's strings are read, not written, while jobs run:
     * results are copied in under the lock, after the call. */
    for (size_t i = 0; i < j->n; i++) {
        const queue_rcpt *r = &run->env->rcpts[j->rcpts[i]];

        g[i].addr = r->addr;
        g[i].original = r->orcpt;
        g[i].notify = r->notify != 0
            ? modmta_txn_strdup(ctx, queue_env_notify_str(r->notify, notify,
                                                          sizeof(notify)))
            : NULL;
        g[i].orcpt_param = r->orcpt_param;
    }
    chain_deliver_msg(run->gen->chain, j->inst, ctx, j->dest);
    pthread_mutex_lock(&run->lock);
    deliver_job_collect(j, ctx);
    if (ctx->dlv_dest_down && run->d != NULL)
        dispatch_mark_down(run->d, j->key, run->gen->cfg->queue.retry_min,
                           deliver_job_down_reason(j));
    pthread_mutex_unlock(&run->lock);
    modmta_ctx_free(ctx);
    deliver_job_end(j);
}

static void
deliver_job_skip(void *arg, const char *reason)
{
    struct deliver_job *j = arg;
    char text[1100];

    snprintf(text, sizeof(text), "delivery temporarily suspended: %s",
             reason);
    pthread_mutex_lock(&j->run->lock);
    deliver_job_defer_all(j, "4.4.1", text);
    pthread_mutex_unlock(&j->run->lock);
    deliver_job_end(j);
}

/* Shutdown: the recipients stay as the envelope has them. */
static void
deliver_job_cancel(void *arg)
{
    struct deliver_job *j = arg;

    pthread_mutex_lock(&j->run->lock);
    j->run->cancelled = 1;
    pthread_mutex_unlock(&j->run->lock);
    deliver_job_end(j);
}

void
deliver_jobs_start(struct deliver_run *run,
                   const struct deliver_claim *claims, size_t n)
{
    struct deliver_job **jobs = NULL, *j;
    size_t njobs = 0;
    int limit = (int)run->gen->cfg->queue.destination_concurrency, rc;

    for (size_t i = 0; i < n; i++) {
        j = deliver_job_for(run, &jobs, &njobs, &claims[i]);
        if (j == NULL || deliver_job_add(j, claims[i].rcpt) < 0) {
            struct deliver_res res = {.status = MODMTA_DEFERRED,
                                      .esc = "4.3.0",
                                      .text = "out of memory"};

            deliver_result(run, &run->env->rcpts[claims[i].rcpt], &res);
        }
    }
    for (size_t i = 0; i < njobs; i++) {
        j = jobs[i];
        if (j->n == 0) {
            deliver_job_free(j);
            continue;
        }
        pthread_mutex_lock(&run->lock);
        run->jobs_left++;
        pthread_mutex_unlock(&run->lock);
        if (run->d == NULL) {
            deliver_job_run(j);
            continue;
        }
        rc = dispatch_submit(run->d, j->key, limit, &deliver_job_ops, j);
        if (rc == 0)
            continue;
        pthread_mutex_lock(&run->lock);
        if (rc == MODMTA_E_LIMIT) {
            deliver_job_defer_all(j, "4.4.5", "too many deliveries waiting "
                                  "for this destination");
            run->throttled = 1;
        }
        else
            deliver_job_defer_all(j, "4.3.0", "cannot queue the delivery");
        pthread_mutex_unlock(&run->lock);
        deliver_job_end(j);
    }
    free(jobs);
}
