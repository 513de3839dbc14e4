/*
 * greylist: RFC 6647 greylisting, written against the public SDK only.
 * A recipient whose triplet (client network, sender, recipient) was not
 * seen for "delay" gets 450 4.7.1; a retry after the delay passes, and
 * the triplet then passes for "expire", refreshed by every pass. The
 * triplets are in the shared state, so with Redis any node accepts the
 * retry. README.md has the keys and the choices.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greylist.h"

#define GREYLIST_DELAY_DEFAULT (5 * 60)
#define GREYLIST_EXPIRE_DEFAULT (35 * 86400)
#define GREYLIST_SECONDS_MAX (366L * 86400)
#define GREYLIST_PASSED "pass"

struct greylist_conf {
    long long delay;
    long long expire;
    char **exempt;
    int on_error;          /* GREYLIST_ON_ERROR names */
};

enum { GREYLIST_TEMPFAIL, GREYLIST_CONTINUE };

static const modmta_option greylist_opts[] = {
    MODMTA_OPTION_SECONDS("delay", struct greylist_conf, delay, 0, 1,
                          GREYLIST_SECONDS_MAX),
    MODMTA_OPTION_SECONDS("expire", struct greylist_conf, expire, 0, 1,
                          GREYLIST_SECONDS_MAX),
    MODMTA_OPTION_STRLIST("exempt", struct greylist_conf, exempt, 0),
    MODMTA_OPTION_ENUM("on_error", struct greylist_conf, on_error, 0,
                       [GREYLIST_TEMPFAIL] = "tempfail",
                       [GREYLIST_CONTINUE] = "continue"),
    MODMTA_OPTION_END
};

static void greylist_destroy(void *inst);

/* Milliseconds since the epoch: every node reads the same clock. */
static long long
greylist_wall_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Check the parsed section into gl, every error recorded. 0 or
 * MODMTA_E_CONFIG. */
static int
greylist_configure(struct greylist *gl, const struct greylist_conf *c,
                   const modmta_host *host, modmta_err *err_r)
{
    const char *path = modmta_host_path(host);
    char key[300];
    size_t n = 0;
    int rc = 0;

    gl->delay = (long)c->delay;
    gl->expire = (long)c->expire;
    gl->on_error_continue = c->on_error == GREYLIST_CONTINUE;
    if (gl->expire <= gl->delay) {
        snprintf(key, sizeof(key), "%s.expire", path);
        rc = modmta_conf_error(host, err_r, key, "must be longer than delay "
                               "(%lds)", gl->delay);
    }
    while (c->exempt != NULL && c->exempt[n] != NULL)
        n++;
    if (n == 0)
        return rc;
    gl->exempt = calloc(n, sizeof(*gl->exempt));
    if (gl->exempt == NULL)
        return modmta_conf_error(host, err_r, path, "out of memory");
    for (gl->nexempt = 0; gl->nexempt < n; gl->nexempt++) {
        if (greylist_net_parse(c->exempt[gl->nexempt],
                               &gl->exempt[gl->nexempt]) < 0) {
            snprintf(key, sizeof(key), "%s.exempt[%zu]", path, gl->nexempt);
            rc = modmta_conf_error(host, err_r, key, "expected an address or "
                                   "a network (\"192.0.2.0/24\"), got \"%s\"",
                                   c->exempt[gl->nexempt]);
        }
    }
    return rc;
}

static void *
greylist_create(const json_t *conf, const modmta_host *host,
                modmta_err *err_r)
{
    struct greylist_conf c = { .delay = GREYLIST_DELAY_DEFAULT,
                               .expire = GREYLIST_EXPIRE_DEFAULT };
    struct greylist *gl = calloc(1, sizeof(*gl));
    int r;

    if (gl == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    gl->now_ms = greylist_wall_clock;
    r = modmta_conf_parse_options(conf, host, greylist_opts, &c, err_r);
    if (r == 0)
        r = greylist_configure(gl, &c, host, err_r);
    modmta_conf_free_options(greylist_opts, &c);
    if (r < 0) {
        greylist_destroy(gl);
        return NULL;
    }
    return gl;
}

static void
greylist_destroy(void *inst)
{
    struct greylist *gl = inst;

    if (gl == NULL)
        return;
    free(gl->exempt);
    free(gl);
}

/* A store error: 451, or let the recipient through with "on_error":
 * "continue". */
static modmta_verdict
greylist_store_error(const struct greylist *gl, modmta_ctx *ctx,
                     const char *what, int r)
{
    modmta_log(ctx, MODMTA_LOG_WARN, "store error op=%s error=\"%s\" "
               "action=%s", what, modmta_strerror(r),
               gl->on_error_continue ? "continue" : "tempfail");
    if (gl->on_error_continue)
        return MODMTA_CONTINUE;
    modmta_reply(ctx, 451, "4.3.0", "Greylisting unavailable, "
                 "try again later");
    return MODMTA_TEMPFAIL;
}

/* 450 for wait_ms more (rounded up to seconds for the client). */
static modmta_verdict
greylist_defer(modmta_ctx *ctx, const char *rcpt, long long wait_ms)
{
    long long wait = (wait_ms + 999) / 1000;

    modmta_log(ctx, MODMTA_LOG_INFO, "greylisted rcpt=<%s> from=<%s> "
               "retry_in=%llds", rcpt, modmta_sender(ctx), wait);
    modmta_reply(ctx, 450, "4.7.1", "<%s>: Greylisted, please try again "
                 "in %lld seconds", rcpt, wait);
    return MODMTA_TEMPFAIL;
}

/* Remember the triplet as passed for gl->expire. */
static modmta_verdict
greylist_pass(const struct greylist *gl, modmta_ctx *ctx, modmta_shared *s,
              const char *key)
{
    int r = modmta_shared_set(s, key, GREYLIST_PASSED, gl->expire * 1000);

    if (r < 0)
        return greylist_store_error(gl, ctx, "set", r);
    return MODMTA_CONTINUE;
}

/* A triplet not seen yet (or holding a value not ours): remember when. */
static modmta_verdict
greylist_first(const struct greylist *gl, modmta_ctx *ctx, modmta_shared *s,
               const char *key, const char *rcpt, long long now)
{
    char when[32];
    int r;

    snprintf(when, sizeof(when), "%lld", now);
    r = modmta_shared_set(s, key, when, gl->expire * 1000);
    if (r < 0)
        return greylist_store_error(gl, ctx, "set", r);
    return greylist_defer(ctx, rcpt, gl->delay * 1000);
}

static modmta_verdict
greylist_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const struct greylist *gl = inst;
    modmta_shared *s = modmta_host_shared(modmta_ctx_host(ctx));
    const struct sockaddr *sa = modmta_client_sockaddr(ctx, NULL);
    char net[64], key[GREYLIST_KEY_MAX], *v = NULL, *end;
    long long first;
    long long now = gl->now_ms(), wait;
    int r;

    if (modmta_auth_user(ctx) != NULL ||
        greylist_net_match(gl->exempt, gl->nexempt, sa))
        return MODMTA_CONTINUE;
    /* a client without an IP address (a UNIX socket) is local */
    if (greylist_net_client(sa, net, sizeof(net)) < 0 ||
        greylist_key(net, modmta_sender(ctx), rcpt, key, sizeof(key)) < 0)
        return MODMTA_CONTINUE;
    r = modmta_shared_get(s, key, &v);
    if (r == MODMTA_E_INVAL)    /* not a value of ours: start over */
        return greylist_first(gl, ctx, s, key, rcpt, now);
    if (r < 0)
        return greylist_store_error(gl, ctx, "get", r);
    if (r == 0)
        return greylist_first(gl, ctx, s, key, rcpt, now);
    if (strcmp(v, GREYLIST_PASSED) == 0) {
        modmta_free(v);
        return greylist_pass(gl, ctx, s, key);
    }
    errno = 0;
    first = strtoll(v, &end, 10);
    r = *end != '\0' || end == v || errno != 0;
    modmta_free(v);
    /* not a time, one past "expire" ago, or one ahead of this node's
     * clock (the node that wrote it runs fast): start over from now, so
     * no stored value can shorten or stretch the delay */
    if (r || first > now || first < now - gl->expire * 1000)
        return greylist_first(gl, ctx, s, key, rcpt, now);
    wait = first + gl->delay * 1000 - now;
    if (wait > 0)
        return greylist_defer(ctx, rcpt, wait);
    modmta_log(ctx, MODMTA_LOG_INFO, "greylist passed rcpt=<%s> "
               "from=<%s> waited=%llds", rcpt, modmta_sender(ctx),
               (now - first) / 1000);
    return greylist_pass(gl, ctx, s, key);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "greylist",
    .version = "1.0.0",
    .create = greylist_create,
    .destroy = greylist_destroy,
    .on_rcpt = greylist_on_rcpt,
};
