/*
 * The context of message-level delivery (ABI 1.3): route() names a
 * recipient's destination, deliver_msg() reads its group and reports a
 * result per recipient. Everything lives in the transaction arena, so a
 * delivery ctx is freed as a whole by the core. See ctx.h and ctx_priv.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctx_priv.h"

#define CTX_DLV_ROUTE_MAX 255
#define CTX_DLV_TEXT_MAX 4096     /* a reply kept, all its lines */

struct ctx_dlv_rcpt *
modmta_ctx_dlv_group(modmta_ctx *ctx, size_t n)
{
    struct ctx_dlv_rcpt *g;

    if (n == 0 || n > SIZE_MAX / sizeof(*g))
        return NULL;
    g = modmta_arena_alloc(ctx->txn_arena, n * sizeof(*g));
    if (g == NULL)
        return NULL;
    memset(g, 0, n * sizeof(*g));
    ctx->dlv = g;
    ctx->ndlv = n;
    return g;
}

static int
ctx_dlv_in(const modmta_ctx *ctx, modmta_phase phase)
{
    if (ctx == NULL)
        return MODMTA_E_INVAL;
    return ctx->phase == phase ? 0 : MODMTA_E_STATE;
}

/* A printable string without spaces or controls (it goes into log lines
 * and keys). */
static int
ctx_dlv_printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s == 0x7f)
            return 0;
    return 1;
}

int
modmta_dlv_route(modmta_ctx *ctx, const char *dest)
{
    int rc = ctx_dlv_in(ctx, MODMTA_PHASE_ROUTE);

    if (rc < 0)
        return rc;
    if (dest == NULL || *dest == '\0' || strlen(dest) > CTX_DLV_ROUTE_MAX ||
        !ctx_dlv_printable(dest))
        return MODMTA_E_INVAL;
    ctx->dlv_route = modmta_arena_strdup(ctx->txn_arena, dest);
    return ctx->dlv_route != NULL ? 0 : MODMTA_E_NOMEM;
}

size_t
modmta_dlv_rcpt_count(const modmta_ctx *ctx)
{
    return ctx->ndlv;
}

const char *
modmta_dlv_rcpt_at(const modmta_ctx *ctx, size_t i)
{
    return i < ctx->ndlv ? ctx->dlv[i].addr : NULL;
}

const char *
modmta_dlv_rcpt_param(const modmta_ctx *ctx, size_t i, const char *name)
{
    if (i >= ctx->ndlv || name == NULL)
        return NULL;
    if (strcasecmp(name, "NOTIFY") == 0)
        return ctx->dlv[i].notify;
    if (strcasecmp(name, "ORCPT") == 0)
        return ctx->dlv[i].orcpt_param;
    return NULL;
}

const char *
modmta_dlv_rcpt_original(const modmta_ctx *ctx, size_t i)
{
    return i < ctx->ndlv ? ctx->dlv[i].original : NULL;
}

static char *
ctx_dlv_strdup(modmta_ctx *ctx, const char *s, size_t max)
{
    size_t len;
    char *d;

    if (s == NULL)
        return NULL;
    len = strnlen(s, max);
    d = modmta_arena_alloc(ctx->txn_arena, len + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

int
modmta_dlv_remote(modmta_ctx *ctx, const char *name, const char *addr,
                  int port)
{
    struct ctx_dlv_remote *r;
    int rc = ctx_dlv_in(ctx, MODMTA_PHASE_DELIVER);

    if (rc < 0)
        return rc;
    if (name == NULL) {
        ctx->dlv_remote = NULL;
        return 0;
    }
    if (port < 0 || port > 65535)
        return MODMTA_E_INVAL;
    r = modmta_arena_alloc(ctx->txn_arena, sizeof(*r));
    if (r == NULL)
        return MODMTA_E_NOMEM;
    memset(r, 0, sizeof(*r));
    r->name = ctx_dlv_strdup(ctx, name, 255);
    r->addr = ctx_dlv_strdup(ctx, addr, 255);
    r->port = port;
    if (r->name == NULL || (addr != NULL && r->addr == NULL))
        return MODMTA_E_NOMEM;
    /* A new record: results already set keep the server they came from. */
    ctx->dlv_remote = r;
    return 0;
}

int
modmta_dlv_remote_tls(modmta_ctx *ctx, const char *version,
                      const char *cipher)
{
    int rc = ctx_dlv_in(ctx, MODMTA_PHASE_DELIVER);

    if (rc < 0)
        return rc;
    if (ctx->dlv_remote == NULL)
        return MODMTA_E_STATE;
    ctx->dlv_remote->tls_version = ctx_dlv_strdup(ctx, version, 32);
    ctx->dlv_remote->tls_cipher = ctx_dlv_strdup(ctx, cipher, 128);
    return 0;
}

/* The reply class each status needs (0: none needed). */
static int
ctx_dlv_class(modmta_dstatus st)
{
    switch (st) {
    case MODMTA_DELIVERED:
    case MODMTA_RELAYED:
    case MODMTA_RELAYED_DSN:
        return 2;
    case MODMTA_DEFERRED:
        return 4;
    case MODMTA_FAILED:
        return 5;
    default:
        return -1;
    }
}

int
modmta_dlv_result(modmta_ctx *ctx, size_t i, modmta_dstatus status,
                  int code, const char *esc, const char *stage,
                  const char *text)
{
    struct ctx_dlv_rcpt *r;
    int cls = ctx_dlv_class(status), rc = ctx_dlv_in(ctx,
                                                     MODMTA_PHASE_DELIVER);

    if (rc < 0)
        return rc;
    if (i >= ctx->ndlv || cls < 0 ||
        (code != 0 && (code < 200 || code > 599 || code / 100 != cls)) ||
        (esc != NULL && (strlen(esc) >= sizeof(r->esc) ||
                         esc[0] - '0' != cls)))
        return MODMTA_E_INVAL;
    r = &ctx->dlv[i];
    r->has_result = 1;
    r->status = status;
    r->code = code;
    memcpy(r->esc, esc != NULL ? esc : "", esc != NULL ? strlen(esc) + 1 : 1);
    r->stage = ctx_dlv_strdup(ctx, stage, 64);
    r->text = ctx_dlv_strdup(ctx, text, CTX_DLV_TEXT_MAX);
    r->remote = ctx->dlv_remote;
    return 0;
}

int
modmta_dlv_dest_down(modmta_ctx *ctx)
{
    int rc = ctx_dlv_in(ctx, MODMTA_PHASE_DELIVER);

    if (rc < 0)
        return rc;
    ctx->dlv_dest_down = 1;
    return 0;
}
