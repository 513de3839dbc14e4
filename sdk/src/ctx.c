/*
 * The hook context: getters modules use, actions checked against the
 * running module's capabilities and the phase (libmilter's mi_sendok),
 * and the setters the core uses to fill it. See ctx_priv.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <modmta/addr.h>
#include <modmta/log.h>

#include "ctx_priv.h"

/* Grow a malloc'ed pointer array by one slot. */
static int
ctx_grow(void *arrp, size_t *n, size_t *cap, size_t elem)
{
    void **arr = arrp;
    size_t ncap;
    void *p;

    if (*n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 8;
    p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return MODMTA_E_NOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int
ctx_push_str(modmta_ctx *ctx, char ***arr, size_t *n, size_t *cap,
             const char *s)
{
    char *copy;

    if (ctx_grow(arr, n, cap, sizeof(char *)) < 0)
        return MODMTA_E_NOMEM;
    copy = modmta_arena_strdup(ctx->txn_arena, s);
    if (copy == NULL)
        return MODMTA_E_NOMEM;
    (*arr)[(*n)++] = copy;
    return 0;
}

/* May the running module take an action needing `cap` in one of the
 * phases of `phases` (a bit mask of 1u << phase)? The core itself (no
 * module running) may always. */
static int
ctx_may(const modmta_ctx *ctx, unsigned cap, unsigned phases)
{
    if (ctx == NULL)
        return MODMTA_E_INVAL;
    if (!(phases & (1u << ctx->phase)))
        return MODMTA_E_STATE;
    if (ctx->mod != NULL && cap != 0 && !(ctx->mod->caps & cap))
        return MODMTA_E_PERM;
    return 0;
}

#define PH(p) (1u << MODMTA_PHASE_##p)

/* ---- life ---- */

modmta_ctx *
modmta_ctx_new(const modmta_host *core_host)
{
    modmta_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->host = core_host;
    ctx->body_fd = -1;
    ctx->body_size = -1;
    ctx->txn_arena = modmta_arena_new();
    ctx->sess_arena = modmta_arena_new();
    if (ctx->txn_arena == NULL || ctx->sess_arena == NULL) {
        modmta_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

static void
ctx_free_txn_arrays(modmta_ctx *ctx)
{
    free(ctx->params);
    free(ctx->rcpts);
    free(ctx->rewrites);
    free(ctx->added);
    free(ctx->removed);
    free(ctx->nodsn);
    free(ctx->rsenders);
    free(ctx->hdrs);
    free(ctx->rparams);
}

void
modmta_ctx_free(modmta_ctx *ctx)
{
    size_t i;

    if (ctx == NULL)
        return;
    for (i = 0; i < ctx->ndata; i++)
        if (ctx->data[i].free_fn != NULL && ctx->data[i].data != NULL)
            ctx->data[i].free_fn(ctx->data[i].data);
    free(ctx->data);
    free(ctx->ehlo);
    modmta_ctx_body_drop(ctx);
    ctx_free_txn_arrays(ctx);
    modmta_arena_free(ctx->txn_arena);
    modmta_arena_free(ctx->sess_arena);
    free(ctx);
}

void
modmta_ctx_txn_reset(modmta_ctx *ctx)
{
    struct modmta_arena *a;

    modmta_ctx_body_drop(ctx); /* before its path goes with the arena */
    a = modmta_arena_new();
    if (a != NULL) {
        modmta_arena_free(ctx->txn_arena);
        ctx->txn_arena = a;
    }
    /* On OOM the old arena is kept: it is still valid, only larger. */
    ctx_free_txn_arrays(ctx);
    ctx->queue_id[0] = '\0';
    ctx->sender = NULL;
    ctx->params = NULL;
    ctx->nparams = 0;
    ctx->rcpts = NULL;
    ctx->nrcpts = ctx->rcpts_cap = 0;
    ctx->rcpt_original = NULL;
    ctx->rcpt_rewritten = 0;
    ctx->rewrites = NULL;
    ctx->nrewrites = ctx->rewrites_cap = 0;
    ctx->added = NULL;
    ctx->nadded = ctx->added_cap = 0;
    ctx->removed = NULL;
    ctx->nremoved = ctx->removed_cap = 0;
    ctx->nodsn = NULL;
    ctx->nnodsn = ctx->nodsn_cap = 0;
    ctx->rewrite_sender = NULL;
    ctx->rsenders = NULL;
    ctx->nrsenders = ctx->rsenders_cap = 0;
    ctx->hdrs = NULL;
    ctx->nhdrs = ctx->hdrs_cap = 0;
    ctx->hdrs_dirty = 0;
    ctx->message_path = NULL;
    ctx->message_size = 0;
    ctx->quarantine = NULL;
    ctx->sender_changed = 0;
    ctx->maybe_done = 0;
    ctx->arrival = 0;
    ctx->dlv_orcpt = NULL;
    ctx->dlv_route = NULL;
    ctx->dlv = NULL;
    ctx->ndlv = 0;
    ctx->dlv_remote = NULL;
    ctx->dlv_dest_down = 0;
    ctx->notes = NULL;
    ctx->nnotes = 0;
    ctx->body_path = NULL;
    ctx->body_size = -1;
    ctx->rparams = NULL;
    ctx->nrparams = ctx->rparams_cap = 0;
    modmta_ctx_reply_clear(ctx);
}

void
modmta_ctx_enter(modmta_ctx *ctx, modmta_phase phase,
                 const modmta_module *mod, const void *inst,
                 const modmta_host *host)
{
    ctx->phase = phase;
    ctx->mod = mod;
    ctx->inst = inst;
    if (host != NULL)
        ctx->host = host;
    modmta_ctx_reply_clear(ctx);
    ctx->nrewrites = 0;
    ctx->rewrite_sender = NULL;
}

void
modmta_ctx_reply_clear(modmta_ctx *ctx)
{
    ctx->reply_code = 0;
    ctx->reply_esc[0] = '\0';
    ctx->reply_text[0] = '\0';
    ctx->reply_nlines = 0;
}

void
modmta_ctx_reply_default(modmta_ctx *ctx, int code, const char *esc,
                         const char *text)
{
    if (ctx->reply_code != 0)
        return;
    ctx->reply_code = code;
    snprintf(ctx->reply_esc, sizeof(ctx->reply_esc), "%s", esc ? esc : "");
    snprintf(ctx->reply_text, sizeof(ctx->reply_text), "%s", text);
}

/* ---- setters ---- */

void
modmta_ctx_set_session(modmta_ctx *ctx, const char *id,
                       const struct sockaddr *sa, socklen_t salen,
                       const char *client_name, const char *listener)
{
    snprintf(ctx->session_id, sizeof(ctx->session_id), "%s", id);
    ctx->client_addr[0] = '\0';
    ctx->client_port = 0;
    if (sa != NULL && salen <= sizeof(ctx->client_sa)) {
        memcpy(&ctx->client_sa, sa, salen);
        ctx->client_salen = salen;
        if (sa->sa_family == AF_INET) {
            const struct sockaddr_in *in = (const void *)sa;
            inet_ntop(AF_INET, &in->sin_addr, ctx->client_addr,
                      sizeof(ctx->client_addr));
            ctx->client_port = ntohs(in->sin_port);
        } else if (sa->sa_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const void *)sa;
            inet_ntop(AF_INET6, &in6->sin6_addr, ctx->client_addr,
                      sizeof(ctx->client_addr));
            ctx->client_port = ntohs(in6->sin6_port);
        }
    }
    if (ctx->client_addr[0] == '\0')
        snprintf(ctx->client_addr, sizeof(ctx->client_addr), "local");
    ctx->client_name = modmta_arena_strdup(ctx->sess_arena,
                                           client_name ? client_name
                                                       : "unknown");
    ctx->listener = modmta_arena_strdup(ctx->sess_arena,
                                        listener ? listener : "");
}

void
modmta_ctx_set_helo(modmta_ctx *ctx, const char *helo, int esmtp)
{
    size_t n = helo != NULL ? strlen(helo) + 1 : 0;

    /* The buffer is reused: a client repeating EHLO must not grow the
     * session's memory (the arena frees only at disconnect). */
    if (helo == NULL) {
        ctx->helo = NULL;
    } else if (n <= ctx->helo_cap && ctx->helo != NULL) {
        memcpy(ctx->helo, helo, n);
    } else {
        ctx->helo = modmta_arena_strdup(ctx->sess_arena, helo);
        ctx->helo_cap = ctx->helo != NULL ? n : 0;
    }
    ctx->esmtp = esmtp;
}

void
modmta_ctx_set_tls(modmta_ctx *ctx, int tls)
{
    ctx->tls = tls;
}

void
modmta_ctx_set_sender(modmta_ctx *ctx, const char *queue_id,
                      const char *sender)
{
    snprintf(ctx->queue_id, sizeof(ctx->queue_id), "%s",
             queue_id ? queue_id : "");
    ctx->sender = modmta_arena_strdup(ctx->txn_arena, sender ? sender : "");
    ctx->nrcpts = 0;
}

int
modmta_ctx_add_param(modmta_ctx *ctx, const char *name, const char *value)
{
    struct ctx_param *p;
    size_t cap = ctx->nparams;

    /* params grows one by one: a MAIL command has a handful at most. */
    p = realloc(ctx->params, (cap + 1) * sizeof(*p));
    if (p == NULL)
        return MODMTA_E_NOMEM;
    ctx->params = p;
    p[cap].name = modmta_arena_strdup(ctx->txn_arena, name);
    p[cap].value = modmta_arena_strdup(ctx->txn_arena, value ? value : "");
    if (p[cap].name == NULL || p[cap].value == NULL)
        return MODMTA_E_NOMEM;
    ctx->nparams++;
    return 0;
}

int
modmta_ctx_has_rcpt(const modmta_ctx *ctx, const char *rcpt)
{
    size_t i;

    for (i = 0; i < ctx->nrcpts; i++)
        if (strcasecmp(ctx->rcpts[i], rcpt) == 0)
            return 1;
    return 0;
}

int
modmta_ctx_add_rcpt(modmta_ctx *ctx, const char *rcpt)
{
    int r;

    if (modmta_ctx_has_rcpt(ctx, rcpt))
        return 0;
    r = ctx_push_str(ctx, &ctx->rcpts, &ctx->nrcpts, &ctx->rcpts_cap, rcpt);
    return r < 0 ? r : 1;
}

/* Index of rcpt in the per-recipient senders, or -1. */
static long
ctx_rsender_find(const modmta_ctx *ctx, const char *rcpt)
{
    size_t i;

    for (i = 0; i < ctx->nrsenders; i++)
        if (strcasecmp(ctx->rsenders[i].rcpt, rcpt) == 0)
            return (long)i;
    return -1;
}

int
modmta_ctx_set_rcpt_sender(modmta_ctx *ctx, const char *rcpt,
                           const char *sender)
{
    long i = ctx_rsender_find(ctx, rcpt);
    struct ctx_rsender *rs;

    if (i < 0) {
        if (ctx_grow(&ctx->rsenders, &ctx->nrsenders, &ctx->rsenders_cap,
                     sizeof(*rs)) < 0)
            return MODMTA_E_NOMEM;
        i = (long)ctx->nrsenders;
        ctx->rsenders[i].rcpt = modmta_arena_strdup(ctx->txn_arena, rcpt);
        if (ctx->rsenders[i].rcpt == NULL)
            return MODMTA_E_NOMEM;
    }
    rs = &ctx->rsenders[i];
    rs->sender = modmta_arena_strdup(ctx->txn_arena, sender);
    if (rs->sender == NULL)
        return MODMTA_E_NOMEM;
    if ((size_t)i == ctx->nrsenders)
        ctx->nrsenders++;
    return 0;
}

const char *
modmta_ctx_rcpt_sender(const modmta_ctx *ctx, const char *rcpt)
{
    long i = ctx_rsender_find(ctx, rcpt);

    return i >= 0 ? ctx->rsenders[i].sender : NULL;
}

static void
ctx_rsender_drop(modmta_ctx *ctx, const char *rcpt)
{
    long i = ctx_rsender_find(ctx, rcpt);

    if (i < 0)
        return;
    memmove(&ctx->rsenders[i], &ctx->rsenders[i + 1],
            (ctx->nrsenders - (size_t)i - 1) * sizeof(*ctx->rsenders));
    ctx->nrsenders--;
}

void
modmta_ctx_remove_rcpt(modmta_ctx *ctx, const char *rcpt)
{
    size_t i;

    ctx_rsender_drop(ctx, rcpt);
    for (i = 0; i < ctx->nrcpts; i++) {
        if (strcasecmp(ctx->rcpts[i], rcpt) == 0) {
            memmove(&ctx->rcpts[i], &ctx->rcpts[i + 1],
                    (ctx->nrcpts - i - 1) * sizeof(char *));
            ctx->nrcpts--;
            return;
        }
    }
}

/* Index of rcpt in the no-DSN list, or -1. */
static long
ctx_nodsn_find(const modmta_ctx *ctx, const char *rcpt)
{
    size_t i;

    for (i = 0; i < ctx->nnodsn; i++)
        if (strcasecmp(ctx->nodsn[i], rcpt) == 0)
            return (long)i;
    return -1;
}

int
modmta_ctx_rcpt_no_dsn(const modmta_ctx *ctx, const char *rcpt)
{
    return ctx_nodsn_find(ctx, rcpt) >= 0;
}

void
modmta_ctx_set_rcpt_eval(modmta_ctx *ctx, const char *original,
                         int rewritten)
{
    ctx->rcpt_original = original;
    ctx->rcpt_rewritten = rewritten;
}

int
modmta_ctx_add_header(modmta_ctx *ctx, const char *name, const char *value)
{
    struct ctx_hdr *h;

    if (ctx_grow(&ctx->hdrs, &ctx->nhdrs, &ctx->hdrs_cap, sizeof(*h)) < 0)
        return MODMTA_E_NOMEM;
    h = &ctx->hdrs[ctx->nhdrs];
    h->name = modmta_arena_strdup(ctx->txn_arena, name);
    h->value = modmta_arena_strdup(ctx->txn_arena, value);
    h->deleted = 0;
    h->changed = 0;
    if (h->name == NULL || h->value == NULL)
        return MODMTA_E_NOMEM;
    ctx->nhdrs++;
    return 0;
}

void
modmta_ctx_set_message(modmta_ctx *ctx, const char *path, off_t size)
{
    ctx->message_path = modmta_arena_strdup(ctx->txn_arena, path);
    ctx->message_size = size;
}

void
modmta_ctx_set_delivery(modmta_ctx *ctx, const char *queue_id,
                        const char *sender, time_t arrival, int maybe_done)
{
    modmta_ctx_set_sender(ctx, queue_id, sender);
    ctx->arrival = arrival;
    ctx->maybe_done = maybe_done;
}

long
modmta_ctx_headers_serialize(const modmta_ctx *ctx, char **buf_r)
{
    size_t i, len = 0, off = 0;
    char *buf;

    for (i = 0; i < ctx->nhdrs; i++)
        if (!ctx->hdrs[i].deleted)
            len += strlen(ctx->hdrs[i].name) + strlen(ctx->hdrs[i].value) + 4;
    buf = malloc(len + 1);
    if (buf == NULL)
        return MODMTA_E_NOMEM;
    for (i = 0; i < ctx->nhdrs; i++) {
        const struct ctx_hdr *h = &ctx->hdrs[i];
        if (h->deleted)
            continue;
        off += (size_t)sprintf(buf + off, "%s: %s\r\n", h->name, h->value);
    }
    *buf_r = buf;
    return (long)off;
}

/* ---- getters ---- */

modmta_phase
modmta_ctx_phase(const modmta_ctx *ctx)
{
    return ctx->phase;
}

const char *
modmta_session_id(const modmta_ctx *ctx)
{
    return ctx->session_id;
}

const char *
modmta_client_addr(const modmta_ctx *ctx)
{
    return ctx->client_addr;
}

int
modmta_client_port(const modmta_ctx *ctx)
{
    return ctx->client_port;
}

const struct sockaddr *
modmta_client_sockaddr(const modmta_ctx *ctx, socklen_t *len_r)
{
    if (len_r != NULL)
        *len_r = ctx->client_salen;
    return ctx->client_salen ? (const struct sockaddr *)&ctx->client_sa
                             : NULL;
}

const char *
modmta_client_name(const modmta_ctx *ctx)
{
    return ctx->client_name ? ctx->client_name : "unknown";
}

const char *
modmta_listener_name(const modmta_ctx *ctx)
{
    return ctx->listener ? ctx->listener : "";
}

const char *
modmta_helo(const modmta_ctx *ctx)
{
    return ctx->helo;
}

int
modmta_is_esmtp(const modmta_ctx *ctx)
{
    return ctx->esmtp;
}

int
modmta_is_tls(const modmta_ctx *ctx)
{
    return ctx->tls;
}

const char *
modmta_auth_user(const modmta_ctx *ctx)
{
    return ctx->auth_user;
}

int
modmta_set_auth_user(modmta_ctx *ctx, const char *user)
{
    int r = ctx_may(ctx, 0, PH(VERB) | PH(AUTH));

    if (r < 0)
        return r;
    ctx->auth_user = user ? modmta_arena_strdup(ctx->sess_arena, user) : NULL;
    return user != NULL && ctx->auth_user == NULL ? MODMTA_E_NOMEM : 0;
}

int
modmta_set_auth_tried(modmta_ctx *ctx, const char *user)
{
    int r = ctx_may(ctx, 0, PH(VERB));

    if (r < 0)
        return r;
    ctx->auth_tried = user ? modmta_arena_strdup(ctx->sess_arena, user)
                           : NULL;
    return user != NULL && ctx->auth_tried == NULL ? MODMTA_E_NOMEM : 0;
}

const modmta_host *
modmta_ctx_host(const modmta_ctx *ctx)
{
    return ctx->host;
}

const char *
modmta_queue_id(const modmta_ctx *ctx)
{
    return ctx->queue_id[0] ? ctx->queue_id : NULL;
}

const char *
modmta_sender(const modmta_ctx *ctx)
{
    return ctx->sender;
}

const char *
modmta_mail_param(const modmta_ctx *ctx, const char *name)
{
    size_t i;

    for (i = 0; i < ctx->nparams; i++)
        if (strcasecmp(ctx->params[i].name, name) == 0)
            return ctx->params[i].value;
    return NULL;
}

size_t
modmta_rcpt_count(const modmta_ctx *ctx)
{
    return ctx->nrcpts;
}

const char *
modmta_rcpt_at(const modmta_ctx *ctx, size_t i)
{
    return i < ctx->nrcpts ? ctx->rcpts[i] : NULL;
}

int
modmta_rcpt_is_rewritten(const modmta_ctx *ctx)
{
    return ctx->rcpt_rewritten;
}

const char *
modmta_rcpt_original(const modmta_ctx *ctx)
{
    return ctx->rcpt_original;
}

size_t
modmta_hdr_count(const modmta_ctx *ctx)
{
    return ctx->nhdrs;
}

int
modmta_hdr_at(const modmta_ctx *ctx, size_t i, const char **name_r,
              const char **value_r)
{
    if (i >= ctx->nhdrs)
        return MODMTA_E_NOTFOUND;
    *name_r = ctx->hdrs[i].name;
    *value_r = ctx->hdrs[i].deleted ? NULL : ctx->hdrs[i].value;
    return 0;
}

/* Index in hdrs of the idx-th live header called name, or -1. */
static long
ctx_hdr_find(const modmta_ctx *ctx, const char *name, size_t idx)
{
    size_t i;

    for (i = 0; i < ctx->nhdrs; i++) {
        if (ctx->hdrs[i].deleted || strcasecmp(ctx->hdrs[i].name, name))
            continue;
        if (idx-- == 0)
            return (long)i;
    }
    return -1;
}

const char *
modmta_hdr_get(const modmta_ctx *ctx, const char *name, size_t idx)
{
    long i = ctx_hdr_find(ctx, name, idx);

    return i < 0 ? NULL : ctx->hdrs[i].value;
}

const char *
modmta_message_path(const modmta_ctx *ctx)
{
    return ctx->message_path;
}

off_t
modmta_message_size(const modmta_ctx *ctx)
{
    return ctx->message_size;
}

int
modmta_dlv_maybe_done(const modmta_ctx *ctx)
{
    return ctx->maybe_done;
}

time_t
modmta_dlv_arrival(const modmta_ctx *ctx)
{
    return ctx->arrival;
}

const char *
modmta_dlv_original_rcpt(const modmta_ctx *ctx)
{
    return ctx->dlv_orcpt;
}

void
modmta_ctx_set_dlv_orcpt(modmta_ctx *ctx, const char *orcpt)
{
    ctx->dlv_orcpt = orcpt != NULL ? modmta_arena_strdup(ctx->txn_arena,
                                                         orcpt)
                                   : NULL;
}

/* ---- actions ---- */

/* A header name is 1*ftext (RFC 5322 2.2: printable, not colon). */
static int
ctx_hdr_name_ok(const char *name)
{
    const unsigned char *p = (const unsigned char *)name;

    if (*p == '\0')
        return 0;
    for (; *p; p++)
        if (*p < 33 || *p > 126 || *p == ':')
            return 0;
    return 1;
}

/* A value may be folded but must not smuggle a line end that is not
 * followed by white space (that would start a new header). */
static int
ctx_hdr_value_ok(const char *v)
{
    size_t i;

    for (i = 0; v[i]; i++) {
        if (v[i] == '\r' &&
            (v[i + 1] != '\n' || (v[i + 2] != ' ' && v[i + 2] != '\t')))
            return 0;
        if (v[i] == '\n' && (i == 0 || v[i - 1] != '\r'))
            return 0;
    }
    return 1;
}

int
modmta_hdr_add(modmta_ctx *ctx, const char *name, const char *value)
{
    int r = ctx_may(ctx, MODMTA_CAP_ADDHDRS, PH(DATA));

    if (r < 0)
        return r;
    if (name == NULL || value == NULL || !ctx_hdr_name_ok(name) ||
        !ctx_hdr_value_ok(value))
        return MODMTA_E_INVAL;
    r = modmta_ctx_add_header(ctx, name, value);
    if (r == 0) {
        ctx->hdrs[ctx->nhdrs - 1].changed = 1;
        ctx->hdrs_dirty = 1;
    }
    return r;
}

int
modmta_hdr_change(modmta_ctx *ctx, const char *name, size_t idx,
                  const char *value)
{
    int r = ctx_may(ctx, MODMTA_CAP_CHGHDRS, PH(DATA));
    long i;

    if (r < 0)
        return r;
    if (name == NULL || (value != NULL && !ctx_hdr_value_ok(value)))
        return MODMTA_E_INVAL;
    i = ctx_hdr_find(ctx, name, idx);
    if (i < 0)
        return MODMTA_E_NOTFOUND;
    if (value == NULL) {
        ctx->hdrs[i].deleted = 1;
    } else {
        ctx->hdrs[i].value = modmta_arena_strdup(ctx->txn_arena, value);
        if (ctx->hdrs[i].value == NULL)
            return MODMTA_E_NOMEM;
    }
    ctx->hdrs[i].changed = 1;
    ctx->hdrs_dirty = 1;
    return 0;
}

int
modmta_hdr_delete(modmta_ctx *ctx, const char *name, size_t idx)
{
    return modmta_hdr_change(ctx, name, idx, NULL);
}

int
modmta_sender_set(modmta_ctx *ctx, const char *addr)
{
    int r = ctx_may(ctx, MODMTA_CAP_CHGFROM, PH(MAIL) | PH(DATA));

    if (r < 0)
        return r;
    if (addr != NULL && !modmta_addr_envelope_ok(addr))
        return MODMTA_E_INVAL;
    ctx->sender = modmta_arena_strdup(ctx->txn_arena, addr ? addr : "");
    if (ctx->sender == NULL)
        return MODMTA_E_NOMEM;
    ctx->sender_changed = 1;
    return 0;
}

int
modmta_rcpt_add(modmta_ctx *ctx, const char *addr)
{
    return modmta_rcpt_add_flags(ctx, addr, 0);
}

/* A plain add of an address wins over an earlier no-DSN add of it, and a
 * no-DSN add of a recipient the envelope already holds changes nothing:
 * whoever asked for the address normally keeps the notifications. */
static int
ctx_nodsn_note(modmta_ctx *ctx, const char *addr, unsigned flags)
{
    long i = ctx_nodsn_find(ctx, addr);

    if (!(flags & MODMTA_RCPT_NO_DSN)) {
        if (i >= 0)
            memmove(&ctx->nodsn[i], &ctx->nodsn[i + 1],
                    (ctx->nnodsn - (size_t)i - 1) * sizeof(char *));
        ctx->nnodsn -= i >= 0;
        return 0;
    }
    if (i >= 0 || modmta_ctx_has_rcpt(ctx, addr))
        return 0;
    return ctx_push_str(ctx, &ctx->nodsn, &ctx->nnodsn, &ctx->nodsn_cap,
                        addr);
}

int
modmta_rcpt_add_flags(modmta_ctx *ctx, const char *addr, unsigned flags)
{
    int r = ctx_may(ctx, MODMTA_CAP_ADDRCPT, PH(RCPT) | PH(DATA));

    if (r < 0)
        return r;
    if (addr == NULL || *addr == '\0' || !modmta_addr_envelope_ok(addr) ||
        (flags & ~MODMTA_RCPT_NO_DSN))
        return MODMTA_E_INVAL;
    r = ctx_nodsn_note(ctx, addr, flags);
    if (r < 0)
        return r;
    return ctx_push_str(ctx, &ctx->added, &ctx->nadded, &ctx->added_cap,
                        addr);
}

int
modmta_rcpt_remove(modmta_ctx *ctx, const char *addr)
{
    int r = ctx_may(ctx, MODMTA_CAP_DELRCPT, PH(DATA));

    if (r < 0)
        return r;
    return ctx_push_str(ctx, &ctx->removed, &ctx->nremoved,
                        &ctx->removed_cap, addr);
}

int
modmta_rcpt_rewrite(modmta_ctx *ctx, const char *addr)
{
    int r = ctx_may(ctx, MODMTA_CAP_REWRITE, PH(RCPT));

    if (r < 0)
        return r;
    if (addr == NULL || *addr == '\0' || !modmta_addr_envelope_ok(addr))
        return MODMTA_E_INVAL;
    return ctx_push_str(ctx, &ctx->rewrites, &ctx->nrewrites,
                        &ctx->rewrites_cap, addr);
}

int
modmta_rcpt_rewrite_sender(modmta_ctx *ctx, const char *sender)
{
    int r = ctx_may(ctx, MODMTA_CAP_REWRITE, PH(RCPT));

    if (r < 0)
        return r;
    if (sender == NULL || !modmta_addr_envelope_ok(sender))
        return MODMTA_E_INVAL;
    ctx->rewrite_sender = modmta_arena_strdup(ctx->txn_arena, sender);
    return ctx->rewrite_sender != NULL ? 0 : MODMTA_E_NOMEM;
}

int
modmta_quarantine(modmta_ctx *ctx, const char *reason)
{
    int r = ctx_may(ctx, MODMTA_CAP_QUARANTINE, PH(DATA));

    if (r < 0)
        return r;
    ctx->quarantine = modmta_arena_strdup(ctx->txn_arena,
                                          reason ? reason : "quarantined");
    return ctx->quarantine ? 0 : MODMTA_E_NOMEM;
}

int
modmta_reply(modmta_ctx *ctx, int code, const char *esc, const char *fmt, ...)
{
    va_list ap;
    char *p;

    if (ctx == NULL || code < 200 || code > 599)
        return MODMTA_E_INVAL;
    if (esc != NULL && (esc[0] < '2' || esc[0] > '5' ||
                        esc[0] != '0' + code / 100))
        return MODMTA_E_INVAL;
    ctx->reply_code = code;
    ctx->reply_nlines = 0;
    snprintf(ctx->reply_esc, sizeof(ctx->reply_esc), "%s", esc ? esc : "");
    va_start(ap, fmt);
    vsnprintf(ctx->reply_text, sizeof(ctx->reply_text), fmt, ap);
    va_end(ap);
    /* A reply is one line: line ends would let a module inject replies. */
    for (p = ctx->reply_text; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    return 0;
}

int
modmta_ehlo_add(modmta_ctx *ctx, const char *keyword)
{
    int r = ctx_may(ctx, 0, PH(EHLO));
    char *copy;

    if (r < 0)
        return r;
    if (keyword == NULL || *keyword == '\0' || strpbrk(keyword, "\r\n"))
        return MODMTA_E_INVAL;
    if (ctx_grow(&ctx->ehlo, &ctx->nehlo, &ctx->ehlo_cap, sizeof(char *)) < 0)
        return MODMTA_E_NOMEM;
    /* In the transaction arena: EHLO resets the transaction first, so
     * repeated EHLOs do not accumulate keywords. */
    copy = modmta_arena_strdup(ctx->txn_arena, keyword);
    if (copy == NULL)
        return MODMTA_E_NOMEM;
    ctx->ehlo[ctx->nehlo++] = copy;
    return 0;
}

/* ---- memory ---- */

void *
modmta_txn_alloc(modmta_ctx *ctx, size_t n)
{
    return modmta_arena_alloc(ctx->txn_arena, n);
}

char *
modmta_txn_strdup(modmta_ctx *ctx, const char *s)
{
    return modmta_arena_strdup(ctx->txn_arena, s);
}

void *
modmta_sess_alloc(modmta_ctx *ctx, size_t n)
{
    return modmta_arena_alloc(ctx->sess_arena, n);
}

char *
modmta_sess_strdup(modmta_ctx *ctx, const char *s)
{
    return modmta_arena_strdup(ctx->sess_arena, s);
}

int
modmta_ctx_set_data(modmta_ctx *ctx, const void *inst, void *data,
                    void (*free_fn)(void *))
{
    size_t i;

    for (i = 0; i < ctx->ndata; i++) {
        if (ctx->data[i].inst != inst)
            continue;
        if (ctx->data[i].free_fn != NULL && ctx->data[i].data != NULL &&
            ctx->data[i].data != data)
            ctx->data[i].free_fn(ctx->data[i].data);
        ctx->data[i].data = data;
        ctx->data[i].free_fn = free_fn;
        return 0;
    }
    if (ctx_grow(&ctx->data, &ctx->ndata, &ctx->data_cap,
                 sizeof(struct ctx_data)) < 0)
        return MODMTA_E_NOMEM;
    ctx->data[ctx->ndata].inst = inst;
    ctx->data[ctx->ndata].data = data;
    ctx->data[ctx->ndata].free_fn = free_fn;
    ctx->ndata++;
    return 0;
}

void *
modmta_ctx_get_data(const modmta_ctx *ctx, const void *inst)
{
    size_t i;

    for (i = 0; i < ctx->ndata; i++)
        if (ctx->data[i].inst == inst)
            return ctx->data[i].data;
    return NULL;
}

void
modmta_free(void *p)
{
    free(p);
}
