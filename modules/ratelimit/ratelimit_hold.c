/*
 * ratelimit: what one session has counted. A message or a recipient is
 * added to its counters when it is asked for (at MAIL, at RCPT), so
 * that parallel sessions on every node see it at once and a limit is
 * never overshot; it is held there for the transaction, and given back
 * when the transaction ends without being queued, or when the RCPT turns
 * out refused by a later module. Only a queued message keeps its counts.
 * A hold names the exact key counted, window included: a give-back
 * after that window ended finds no key and makes none
 * (modmta_shared_decr), so it never lowers a later window's count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

/* The session's end: its place in client_connections too, if
 * on_disconnect did not give it back (it always runs in the daemon). */
static void
ratelimit_sess_free(void *p)
{
    struct ratelimit_sess *s = p;

    (void)ratelimit_conn_leave(s->rl->conns, &s->conn);
    for (size_t i = 0; i < s->nholds; i++)
        free(s->holds[i].key);
    free(s->holds);
    free(s);
}

struct ratelimit_sess *
ratelimit_sess_get(const struct ratelimit *rl, modmta_ctx *ctx)
{
    struct ratelimit_sess *s = modmta_ctx_get_data(ctx, rl);

    if (s != NULL)
        return s;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    if (modmta_ctx_set_data(ctx, rl, s, ratelimit_sess_free) < 0) {
        free(s);
        return NULL;
    }
    s->rl = rl;
    ratelimit_client_key(modmta_client_addr(ctx), s->client);
    s->exempt = ratelimit_client_exempt(rl, modmta_client_addr(ctx));
    return s;
}

static modmta_shared *
ratelimit_store(const modmta_ctx *ctx)
{
    return modmta_host_shared(modmta_ctx_host(ctx));
}

int
ratelimit_incr(modmta_ctx *ctx, const char *key, long left_s,
               long long *value_r)
{
    return modmta_shared_incr(ratelimit_store(ctx), key, 1, left_s,
                              value_r);
}

void
ratelimit_give_back(modmta_ctx *ctx, const char *key, long long n)
{
    int rc;

    if (n <= 0)
        return;
    rc = modmta_shared_decr(ratelimit_store(ctx), key, n);
    if (rc < 0)
        modmta_log(ctx, MODMTA_LOG_WARN, "store error: key=%s give_back=%lld "
                   "error=\"%s\" (counted until its window ends)", key, n,
                   modmta_strerror(rc));
}

long
ratelimit_hold_add(struct ratelimit_sess *s, modmta_ctx *ctx,
                   const char *key)
{
    struct ratelimit_hold *h;
    size_t i;

    for (i = 0; i < s->nholds; i++)
        if (strcmp(s->holds[i].key, key) == 0) {
            s->holds[i].n++;
            return (long)i;
        }
    if (s->nholds == s->cap) {
        h = realloc(s->holds, (s->cap * 2 + 4) * sizeof(*h));
        if (h == NULL)
            goto nomem;
        s->holds = h;
        s->cap = s->cap * 2 + 4;
    }
    if ((s->holds[i].key = strdup(key)) == NULL)
        goto nomem;
    s->holds[i].n = 1;
    s->nholds++;
    return (long)i;
nomem:
    ratelimit_give_back(ctx, key, 1);
    return MODMTA_E_NOMEM;
}

void
ratelimit_txn_end(struct ratelimit_sess *s, modmta_ctx *ctx)
{
    for (size_t i = 0; i < s->nholds; i++) {
        ratelimit_give_back(ctx, s->holds[i].key, s->holds[i].n);
        free(s->holds[i].key);
    }
    s->nholds = 0;
    s->nlast = 0;
    s->in_txn = 0;
}

int
ratelimit_txn(struct ratelimit_sess *s, modmta_ctx *ctx)
{
    const char *qid = modmta_queue_id(ctx);

    if (qid == NULL)
        qid = "";
    if (s->in_txn && strcmp(s->qid, qid) == 0)
        return 0;
    ratelimit_txn_end(s, ctx);
    s->in_txn = 1;
    snprintf(s->qid, sizeof(s->qid), "%s", qid);
    s->who[0] = '\0';
    s->who_text[0] = '\0';
    s->txn_exempt = s->exempt;
    return 1;
}

void
ratelimit_rcpt_settle(struct ratelimit_sess *s, modmta_ctx *ctx)
{
    struct ratelimit_hold *h;
    size_t t;

    /* highest index first: dropping a hold moves the last one in */
    if (s->nlast == 2 && s->last[0] < s->last[1]) {
        t = s->last[0];
        s->last[0] = s->last[1];
        s->last[1] = t;
    }
    if (s->nlast > 0 && modmta_rcpt_count(ctx) <= s->last_nrcpts)
        for (size_t i = 0; i < s->nlast; i++) {
            h = &s->holds[s->last[i]];
            ratelimit_give_back(ctx, h->key, 1);
            /* a hold of nothing goes: refused recipients to ever new
             * domains must not grow the session */
            if (--h->n == 0) {
                free(h->key);
                *h = s->holds[--s->nholds];
            }
        }
    s->nlast = 0;
}

void
ratelimit_txn_queued(struct ratelimit_sess *s)
{
    for (size_t i = 0; i < s->nholds; i++)
        free(s->holds[i].key);
    s->nholds = 0;
    s->nlast = 0;
    s->in_txn = 0;
}
