/*
 * The chain tracer (see modmtatest.h). Before a hook call it keeps what
 * the call may change in the ctx; after it, it records the call in its
 * step, with the difference as actions. Arena strings are never freed
 * or overwritten during a transaction, so a pointer that changed is a
 * value a module set (a header, the sender, a note's string).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx_priv.h"
#include "modmtatest.h"

struct mt_snap_hdr {
    const char *name;    /* the entry's identity: a change keeps it */
    const char *value;
    int deleted;
};

struct mt_snap {
    struct timespec t0;
    const char *sender;
    const char *quarantine;
    const char *auth_user;
    size_t nadded, nremoved;
    int body_replaced;
    struct mt_snap_hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    struct ctx_note notes[MODMTA_NOTES_MAX]; /* the ctx's, shallow */
    size_t nnotes;
};

static int mt_trace_snap(struct mt_snap *sn, const modmta_ctx *ctx);
static int mt_action(struct mt_call *c, const char *kind, const char *fmt,
                     ...) __attribute__((format(printf, 3, 4)));
static int mt_trace_rcpt(struct mt_call *c, const modmta_ctx *ctx,
                         const struct mt_snap *sn);
static int mt_trace_message(struct mt_call *c, const modmta_ctx *ctx,
                            const struct mt_snap *sn);
static int mt_trace_notes(struct mt_call *c, const modmta_ctx *ctx,
                          const struct mt_snap *sn);
static void mt_call_free(struct mt_call *c);
static void mt_trace_record(struct mt *t, struct mt_call *c);

long
mt_step_new(struct mt *t, const char *command)
{
    struct mt_step *n;
    long idx = -1;

    pthread_mutex_lock(&t->lock);
    n = realloc(t->steps, (t->nsteps + 1) * sizeof(*n));
    if (n != NULL) {
        t->steps = n;
        memset(&n[t->nsteps], 0, sizeof(*n));
        n[t->nsteps].command = command != NULL ? strdup(command) : NULL;
        if (command == NULL || n[t->nsteps].command != NULL) {
            idx = (long)t->nsteps++;
            t->cur = (size_t)idx;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return idx;
}

static void
mt_call_free(struct mt_call *c)
{
    for (size_t i = 0; i < c->nactions; i++)
        free(c->actions[i].value);
    free(c->actions);
    free(c->instance);
    free(c->arg);
    free(c->text);
}

void
mt_trace_free(struct mt *t)
{
    for (size_t i = 0; i < t->nsteps; i++) {
        struct mt_step *st = &t->steps[i];

        for (size_t j = 0; j < st->ncalls; j++)
            mt_call_free(&st->calls[j]);
        for (size_t j = 0; j < st->nlines; j++)
            free(st->lines[j]);
        free(st->calls);
        free(st->lines);
        free(st->command);
    }
    free(t->steps);
    t->steps = NULL;
    t->nsteps = 0;
    if (t->snap != NULL)
        free(t->snap->hdrs);
    free(t->snap);
    t->snap = NULL;
}

/* What a call may change, before it. 0, or -1 out of memory. */
static int
mt_trace_snap(struct mt_snap *sn, const modmta_ctx *ctx)
{
    struct mt_snap_hdr *h;

    sn->sender = ctx->sender;
    sn->quarantine = ctx->quarantine;
    sn->auth_user = ctx->auth_user;
    sn->nadded = ctx->nadded;
    sn->nremoved = ctx->nremoved;
    sn->body_replaced = ctx->body_fd >= 0;
    if (ctx->nhdrs > sn->hdrs_cap) {
        h = realloc(sn->hdrs, ctx->nhdrs * sizeof(*h));
        if (h == NULL)
            return -1;
        sn->hdrs = h;
        sn->hdrs_cap = ctx->nhdrs;
    }
    sn->nhdrs = ctx->nhdrs;
    for (size_t i = 0; i < ctx->nhdrs; i++) {
        sn->hdrs[i].name = ctx->hdrs[i].name;
        sn->hdrs[i].value = ctx->hdrs[i].value;
        sn->hdrs[i].deleted = ctx->hdrs[i].deleted;
    }
    sn->nnotes = ctx->nnotes;
    if (ctx->nnotes > 0)
        memcpy(sn->notes, ctx->notes, ctx->nnotes * sizeof(*ctx->notes));
    clock_gettime(CLOCK_MONOTONIC, &sn->t0);
    return 0;
}

static int
mt_action(struct mt_call *c, const char *kind, const char *fmt, ...)
{
    struct mt_action *n = realloc(c->actions,
                                  (c->nactions + 1) * sizeof(*n));
    va_list ap;
    int rc;

    if (n == NULL)
        return -1;
    c->actions = n;
    n[c->nactions].kind = kind;
    va_start(ap, fmt);
    rc = vasprintf(&n[c->nactions].value, fmt, ap);
    va_end(ap);
    if (rc < 0)
        return -1;
    c->nactions++;
    return 0;
}

/* on_rcpt: what the chain does with the address (claim, rewrite,
 * discard) and what the module added. */
static int
mt_trace_rcpt(struct mt_call *c, const modmta_ctx *ctx,
              const struct mt_snap *sn)
{
    const char *ignored = c->verdict == MODMTA_ACCEPT ? ""
                          : " (ignored: not ACCEPT)";
    int rc = 0;

    if (c->verdict == MODMTA_ACCEPT && ctx->nrewrites == 0)
        rc |= mt_action(c, "claim", "<%s>", c->arg);
    if (c->verdict == MODMTA_DISCARD)
        rc |= mt_action(c, "discard", "<%s>", c->arg);
    for (size_t i = 0; i < ctx->nrewrites; i++)
        rc |= mt_action(c, "rewrite", "<%s>%s", ctx->rewrites[i], ignored);
    if (ctx->rewrite_sender != NULL)
        rc |= mt_action(c, "rewrite_sender", "<%s>%s", ctx->rewrite_sender,
                        ignored);
    for (size_t i = sn->nadded; i < ctx->nadded; i++)
        rc |= mt_action(c, "add_rcpt", "<%s>%s", ctx->added[i],
                        modmta_ctx_rcpt_no_dsn(ctx, ctx->added[i])
                            ? " (no DSN)" : "");
    return rc;
}

/* The milter actions (on_data), and the sender at on_mail. */
static int
mt_trace_message(struct mt_call *c, const modmta_ctx *ctx,
                 const struct mt_snap *sn)
{
    const struct ctx_hdr *h;
    const struct mt_snap_hdr *old;
    int rc = 0;

    if (strcmp(c->hook, "on_rcpt") != 0) /* mt_trace_rcpt did those */
        for (size_t i = sn->nadded; i < ctx->nadded; i++)
            rc |= mt_action(c, "add_rcpt", "<%s>", ctx->added[i]);
    for (size_t i = sn->nremoved; i < ctx->nremoved; i++)
        rc |= mt_action(c, "remove_rcpt", "<%s>", ctx->removed[i]);
    if (ctx->sender != sn->sender && sn->sender != NULL)
        rc |= mt_action(c, "sender", "<%s>", ctx->sender);
    /* Headers are never reordered: an entry not in the snapshot's order
     * was inserted (or added at the end). */
    for (size_t i = 0, j = 0; i < ctx->nhdrs; i++) {
        h = &ctx->hdrs[i];
        if (j >= sn->nhdrs) {
            rc |= mt_action(c, "add_header", "%s: %s", h->name, h->value);
            continue;
        }
        if (h->name != sn->hdrs[j].name) {
            rc |= mt_action(c, "insert_header", "%zu %s: %s", i, h->name,
                            h->value);
            continue;
        }
        old = &sn->hdrs[j++];
        if (h->deleted && !old->deleted)
            rc |= mt_action(c, "delete_header", "%s: %s", h->name,
                            old->value);
        else if (!h->deleted && h->value != old->value)
            rc |= mt_action(c, "change_header", "%s: %s", h->name,
                            h->value);
    }
    if (ctx->body_fd >= 0 && !sn->body_replaced)
        rc |= mt_action(c, "replace_body", "%s", "(a new body)");
    if (ctx->quarantine != sn->quarantine && ctx->quarantine != NULL)
        rc |= mt_action(c, "quarantine", "%s", ctx->quarantine);
    if (ctx->auth_user != sn->auth_user)
        rc |= mt_action(c, "auth_user", "%s",
                        ctx->auth_user != NULL ? ctx->auth_user : "(none)");
    return rc;
}

/* Notes set or changed: a new slot, a new string, a new integer. */
static int
mt_trace_notes(struct mt_call *c, const modmta_ctx *ctx,
               const struct mt_snap *sn)
{
    const struct ctx_note *n, *o;
    int rc = 0;

    for (size_t i = 0; i < ctx->nnotes; i++) {
        n = &ctx->notes[i];
        o = i < sn->nnotes ? &sn->notes[i] : NULL;
        if (o != NULL && o->str == n->str && o->num == n->num)
            continue;
        if (n->str != NULL)
            rc |= mt_action(c, "note", "%s=\"%s\"", n->name, n->str);
        else
            rc |= mt_action(c, "note", "%s=%lld", n->name, n->num);
    }
    return rc;
}

/* Into its step: on_queued runs after the client has its 250 (it may
 * have sent QUIT already), so its calls go with the end of data. */
static void
mt_trace_record(struct mt *t, struct mt_call *c)
{
    struct mt_step *st;
    struct mt_call *n;

    pthread_mutex_lock(&t->lock);
    st = &t->steps[strcmp(c->hook, "on_queued") == 0 && t->have_data_step
                   ? t->data_step : t->cur];
    n = realloc(st->calls, (st->ncalls + 1) * sizeof(*n));
    if (n != NULL) {
        st->calls = n;
        n[st->ncalls++] = *c;
    }
    pthread_mutex_unlock(&t->lock);
    if (n == NULL) {
        fprintf(stderr, "modmtatest: out of memory: a hook call is not "
                "shown\n");
        mt_call_free(c);
    }
}

void
mt_trace(void *arg, modmta_ctx *ctx, const struct chain_call *call)
{
    struct mt *t = arg;
    struct mt_call c;
    struct timespec t1;
    int rc;

    if (t->snap == NULL && (t->snap = calloc(1, sizeof(*t->snap))) == NULL)
        return;
    if (!call->after) {
        if (mt_trace_snap(t->snap, ctx) < 0)
            fprintf(stderr, "modmtatest: out of memory: actions of "
                    "%s %s not shown\n", call->instance, call->hook);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    memset(&c, 0, sizeof(c));
    c.hook = call->hook;
    c.success = call->success;
    c.returned = call->returned;
    c.verdict = call->verdict;
    c.timed_out = call->timed_out;
    c.code = ctx->reply_code;
    snprintf(c.esc, sizeof(c.esc), "%s", ctx->reply_esc);
    c.ms = (double)(t1.tv_sec - t->snap->t0.tv_sec) * 1e3 +
           (double)(t1.tv_nsec - t->snap->t0.tv_nsec) / 1e6;
    c.instance = strdup(call->instance);
    c.arg = call->arg != NULL ? strdup(call->arg) : NULL;
    c.text = c.code != 0 ? strdup(ctx->reply_text) : NULL;
    rc = c.instance == NULL || (call->arg != NULL && c.arg == NULL) ||
         (c.code != 0 && c.text == NULL);
    if (strcmp(call->hook, "on_rcpt") == 0)
        rc |= mt_trace_rcpt(&c, ctx, t->snap);
    rc |= mt_trace_message(&c, ctx, t->snap);
    rc |= mt_trace_notes(&c, ctx, t->snap);
    if (strcmp(call->hook, "route") == 0 && ctx->dlv_route != NULL)
        rc |= mt_action(&c, "route", "%s", ctx->dlv_route);
    if (rc != 0) {
        fprintf(stderr, "modmtatest: out of memory: %s %s not shown\n",
                call->instance, call->hook);
        mt_call_free(&c);
        return;
    }
    mt_trace_record(t, &c);
}
