/*
 * The context's ABI 1.6 part: session details for milter macros, header
 * insertion, body replacement, ESMTP parameters on a sender change and
 * on an added recipient, multi-line replies. See ctx.h, ctx_priv.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "ctx_priv.h"

#define PH(p) (1u << MODMTA_PHASE_##p)
#define PARAMS_MAX 16       /* parameters in one call */
#define PARAMS_LEN 1024     /* octets of the whole string */

/* As ctx.c's: the phase, then the running module's capability. */
static int
stream_may(const modmta_ctx *ctx, unsigned cap, unsigned phases)
{
    if (ctx == NULL)
        return MODMTA_E_INVAL;
    if (!(phases & (1u << ctx->phase)))
        return MODMTA_E_STATE;
    if (ctx->mod != NULL && cap != 0 && !(ctx->mod->caps & cap))
        return MODMTA_E_PERM;
    return 0;
}

/* ---- session details ---- */

const char *
modmta_local_addr(const modmta_ctx *ctx)
{
    return ctx->local_addr[0] != '\0' ? ctx->local_addr : NULL;
}

int
modmta_local_port(const modmta_ctx *ctx)
{
    return ctx->local_port;
}

const char *
modmta_auth_mech(const modmta_ctx *ctx)
{
    return ctx->auth_user != NULL ? ctx->auth_mech : NULL;
}

const char *
modmta_tls_version(const modmta_ctx *ctx)
{
    return ctx->tls ? ctx->tls_version : NULL;
}

const char *
modmta_tls_cipher(const modmta_ctx *ctx)
{
    return ctx->tls ? ctx->tls_cipher : NULL;
}

int
modmta_tls_cipher_bits(const modmta_ctx *ctx)
{
    return ctx->tls ? ctx->tls_bits : 0;
}

off_t
modmta_body_size(const modmta_ctx *ctx)
{
    return ctx->body_size;
}

void
modmta_ctx_set_local(modmta_ctx *ctx, const struct sockaddr *sa,
                     socklen_t salen)
{
    ctx->local_addr[0] = '\0';
    ctx->local_port = 0;
    if (sa != NULL && sa->sa_family == AF_INET &&
        salen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const void *)sa;

        inet_ntop(AF_INET, &in->sin_addr, ctx->local_addr,
                  sizeof(ctx->local_addr));
        ctx->local_port = ntohs(in->sin_port);
    } else if (sa != NULL && sa->sa_family == AF_INET6 &&
               salen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const void *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, ctx->local_addr,
                  sizeof(ctx->local_addr));
        ctx->local_port = ntohs(in6->sin6_port);
    }
}

void
modmta_ctx_set_auth_mech(modmta_ctx *ctx, const char *mech)
{
    ctx->auth_mech = mech != NULL ? modmta_arena_strdup(ctx->sess_arena, mech)
                                  : NULL;
}

void
modmta_ctx_set_tls_info(modmta_ctx *ctx, const char *version,
                        const char *cipher, int bits)
{
    ctx->tls_version = version != NULL
                       ? modmta_arena_strdup(ctx->sess_arena, version) : NULL;
    ctx->tls_cipher = cipher != NULL
                      ? modmta_arena_strdup(ctx->sess_arena, cipher) : NULL;
    ctx->tls_bits = bits;
}

void
modmta_ctx_set_body_size(modmta_ctx *ctx, off_t size)
{
    ctx->body_size = size;
}

/* ---- header insertion ---- */

int
modmta_hdr_insert(modmta_ctx *ctx, size_t index, const char *name,
                  const char *value)
{
    size_t live = 0, at, n0;
    struct ctx_hdr h;
    int r;

    /* hdr_add checks capability, phase, name and value, and appends */
    n0 = ctx != NULL ? ctx->nhdrs : 0;
    if ((r = modmta_hdr_add(ctx, name, value)) < 0)
        return r;
    h = ctx->hdrs[n0];
    /* the slot before the index-th live header (deleted ones skipped) */
    for (at = 0; at < n0; at++) {
        if (ctx->hdrs[at].deleted)
            continue;
        if (live++ == index)
            break;
    }
    memmove(&ctx->hdrs[at + 1], &ctx->hdrs[at], (n0 - at) * sizeof(h));
    ctx->hdrs[at] = h;
    return 0;
}

/* ---- ESMTP parameters ---- */

/* xtext (RFC 3461 4): "!" to "~" but "+" and "=", or "+" and two
 * upper-case hex digits. */
static int
param_xtext(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (; *s != '\0'; s++) {
        if (*s == '+') {
            if (!strchr("0123456789ABCDEF", s[1]) || s[1] == '\0' ||
                !strchr("0123456789ABCDEF", s[2]) || s[2] == '\0')
                return 0;
            s += 2;
        } else if (*s < '!' || *s > '~' || *s == '=') {
            return 0;
        }
    }
    return 1;
}

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY. */
static int
param_notify(const char *v)
{
    static const char *const words[] = {"SUCCESS", "FAILURE", "DELAY"};
    unsigned seen = 0;
    const char *p = v, *e;

    if (strcasecmp(v, "NEVER") == 0)
        return 1;
    do {
        size_t k, len;

        e = strchr(p, ',');
        len = e != NULL ? (size_t)(e - p) : strlen(p);
        for (k = 0; k < 3; k++)
            if (strlen(words[k]) == len && strncasecmp(p, words[k], len) == 0)
                break;
        if (k == 3 || (seen & (1u << k)))
            return 0;
        seen |= 1u << k;
        p = e != NULL ? e + 1 : NULL;
    } while (p != NULL);
    return 1;
}

/* ORCPT=addr-type;xtext, at most 500 octets. */
static int
param_orcpt(const char *v)
{
    const char *semi = strchr(v, ';');

    if (semi == NULL || semi == v || strlen(v) > 500)
        return 0;
    for (const char *p = v; p < semi; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-'))
            return 0;
    return param_xtext(semi + 1, 500);
}

/* One "KEY[=value]" a module may set; val NULL when none. */
static int
param_ok(const char *key, const char *val, int mail)
{
    if (mail && strcasecmp(key, "BODY") == 0)
        return val != NULL && (strcasecmp(val, "7BIT") == 0 ||
                               strcasecmp(val, "8BITMIME") == 0 ||
                               strcasecmp(val, "BINARYMIME") == 0);
    if (mail && strcasecmp(key, "RET") == 0)
        return val != NULL && (strcasecmp(val, "FULL") == 0 ||
                               strcasecmp(val, "HDRS") == 0);
    if (mail && strcasecmp(key, "ENVID") == 0)
        return val != NULL && param_xtext(val, 100);
    if (mail && strcasecmp(key, "SMTPUTF8") == 0)
        return val == NULL;
    if (mail && strcasecmp(key, "SIZE") == 0)
        return val != NULL && *val != '\0' &&
               strspn(val, "0123456789") == strlen(val) && strlen(val) < 19;
    if (!mail && strcasecmp(key, "NOTIFY") == 0)
        return val != NULL && param_notify(val);
    if (!mail && strcasecmp(key, "ORCPT") == 0)
        return val != NULL && param_orcpt(val);
    return 0;
}

/* Split params (copied into buf) into up to PARAMS_MAX keys and values,
 * checking each: the count, or MODMTA_E_INVAL. */
static int
params_split(const char *params, int mail, char *buf, char **keys,
             char **vals)
{
    int n = 0;
    char *save = NULL, *tok, *eq;

    if (params == NULL)
        return 0;
    if (strlen(params) >= PARAMS_LEN)
        return MODMTA_E_INVAL;
    strcpy(buf, params);
    for (tok = strtok_r(buf, " ", &save); tok != NULL;
         tok = strtok_r(NULL, " ", &save)) {
        if (n == PARAMS_MAX)
            return MODMTA_E_INVAL;
        eq = strchr(tok, '=');
        if (eq != NULL)
            *eq++ = '\0';
        if (!param_ok(tok, eq, mail))
            return MODMTA_E_INVAL;
        for (int k = 0; k < n; k++)
            if (strcasecmp(keys[k], tok) == 0)
                return MODMTA_E_INVAL;
        keys[n] = tok;
        vals[n++] = eq;
    }
    return n;
}

int
modmta_ctx_params_check(const char *params, int mail)
{
    char buf[PARAMS_LEN], *keys[PARAMS_MAX], *vals[PARAMS_MAX];
    int n = params_split(params, mail, buf, keys, vals);

    return n < 0 ? n : 0;
}

static void
params_upper(char *s)
{
    for (; *s != '\0'; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 'a' + 'A');
}

int
modmta_sender_set_params(modmta_ctx *ctx, const char *addr,
                         const char *params)
{
    char buf[PARAMS_LEN], *keys[PARAMS_MAX], *vals[PARAMS_MAX];
    int n, r = stream_may(ctx, MODMTA_CAP_CHGFROM, PH(MAIL) | PH(DATA));

    if (r < 0)
        return r;
    if ((n = params_split(params, 1, buf, keys, vals)) < 0)
        return n;
    if ((r = modmta_sender_set(ctx, addr)) < 0)
        return r;
    /* the new sender's parameters replace the client's */
    free(ctx->params);
    ctx->params = NULL;
    ctx->nparams = 0;
    for (int i = 0; i < n; i++) {
        if (strcasecmp(keys[i], "SIZE") == 0)
            continue;
        params_upper(keys[i]);
        if (strcmp(keys[i], "RET") == 0 || strcmp(keys[i], "BODY") == 0)
            params_upper(vals[i]);
        if ((r = modmta_ctx_add_param(ctx, keys[i], vals[i])) < 0)
            return r;
    }
    return 0;
}

int
modmta_rcpt_add_params(modmta_ctx *ctx, const char *addr, const char *params)
{
    char buf[PARAMS_LEN], *keys[PARAMS_MAX], *vals[PARAMS_MAX];
    struct ctx_rparam *rp;
    int n, r = stream_may(ctx, MODMTA_CAP_ADDRCPT, PH(RCPT) | PH(DATA));

    if (r < 0)
        return r;
    if ((n = params_split(params, 0, buf, keys, vals)) < 0)
        return n;
    if ((r = modmta_rcpt_add(ctx, addr)) < 0)
        return r;
    if (n == 0)
        return 0;
    if (ctx->nrparams == ctx->rparams_cap) {
        size_t cap = ctx->rparams_cap ? ctx->rparams_cap * 2 : 4;

        rp = realloc(ctx->rparams, cap * sizeof(*rp));
        if (rp == NULL)
            return MODMTA_E_NOMEM;
        ctx->rparams = rp;
        ctx->rparams_cap = cap;
    }
    rp = &ctx->rparams[ctx->nrparams];
    memset(rp, 0, sizeof(*rp));
    rp->rcpt = modmta_arena_strdup(ctx->txn_arena, addr);
    if (rp->rcpt == NULL)
        return MODMTA_E_NOMEM;
    for (int i = 0; i < n; i++) {
        char **slot = strcasecmp(keys[i], "NOTIFY") == 0 ? &rp->notify
                                                         : &rp->orcpt;

        if (slot == &rp->notify)
            params_upper(vals[i]);
        *slot = modmta_arena_strdup(ctx->txn_arena, vals[i]);
        if (*slot == NULL)
            return MODMTA_E_NOMEM;
    }
    ctx->nrparams++;
    return 0;
}

const struct ctx_rparam *
modmta_ctx_rcpt_params(const modmta_ctx *ctx, const char *rcpt)
{
    /* the last call for an address counts */
    for (size_t i = ctx->nrparams; i-- > 0;)
        if (strcasecmp(ctx->rparams[i].rcpt, rcpt) == 0)
            return &ctx->rparams[i];
    return NULL;
}

/* ---- body replacement ---- */

void
modmta_ctx_set_body_path(modmta_ctx *ctx, const char *path)
{
    modmta_ctx_body_drop(ctx);
    ctx->body_path = path != NULL ? modmta_arena_strdup(ctx->txn_arena, path)
                                  : NULL;
}

void
modmta_ctx_body_drop(modmta_ctx *ctx)
{
    if (ctx->body_fd >= 0) {
        close(ctx->body_fd);
        if (ctx->body_path != NULL)
            unlink(ctx->body_path);
    }
    ctx->body_fd = -1;
    ctx->body_err = 0;
}

int
modmta_body_replace(modmta_ctx *ctx, const void *buf, size_t len)
{
    const char *p = buf;
    ssize_t w;
    int r = stream_may(ctx, MODMTA_CAP_CHGBODY, PH(DATA));

    if (r < 0)
        return r;
    if (buf == NULL && len > 0)
        return MODMTA_E_INVAL;
    if (ctx->body_path == NULL)
        return MODMTA_E_STATE;
    if (ctx->body_err != 0)
        return ctx->body_err;
    if (ctx->body_fd < 0) {
        ctx->body_fd = open(ctx->body_path, O_RDWR | O_CREAT | O_TRUNC |
                            O_CLOEXEC | O_NOFOLLOW, 0600);
        if (ctx->body_fd < 0)
            return modmta_err_from_errno(errno);
    }
    while (len > 0) {
        w = write(ctx->body_fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ctx->body_err = w < 0 ? modmta_err_from_errno(errno)
                                  : MODMTA_E_IO;
            return ctx->body_err;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---- multi-line replies ---- */

int
modmta_reply_lines(modmta_ctx *ctx, int code, const char *esc,
                   const char *const *lines, size_t n)
{
    size_t off = 0, len;
    int r;

    if (ctx == NULL || lines == NULL || n == 0 ||
        n > MODMTA_REPLY_LINES_MAX)
        return MODMTA_E_INVAL;
    for (size_t i = 0; i < n; i++) {
        if (lines[i] == NULL || strlen(lines[i]) > MODMTA_REPLY_LINE_MAX)
            return MODMTA_E_INVAL;
        for (const unsigned char *p = (const void *)lines[i]; *p; p++)
            if (*p < ' ' || *p > '~')
                return MODMTA_E_INVAL;
    }
    if ((r = modmta_reply(ctx, code, esc, "%s", lines[0])) < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        len = strlen(lines[i]);
        memcpy(ctx->reply_multi + off, lines[i], len);
        off += len;
        ctx->reply_multi[off++] = i + 1 < n ? '\n' : '\0';
    }
    ctx->reply_nlines = n;
    return 0;
}
