/*
 * One group to one destination: the walk over its servers, TLS and
 * credentials per policy, the transaction, a result per recipient. See
 * xfer.h for the rules.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xfer_priv.h"

/* What a delivery walks with. */
struct xfer_walk {
    const struct xfer_conf *c;
    modmta_ctx *ctx;
    const char *dest;
    const struct nexthop *nh;
    smtpc_role role;
    enum xfer_tls level;
    char *creds;                   /* "user:password" (malloc), or NULL */
    int sessions;                  /* conversations started */
    int reached;                   /* a server got past the greeting */
    int txns;                      /* transactions run */
    int need_utf8;                 /* the message needs SMTPUTF8 */
    /* the last failure, for every recipient if no server takes them */
    modmta_dstatus last_status;
    char last_esc[16];
    char last_text[1200];
};

static const char *const xfer_tls_names[] = {
    [XFER_TLS_NONE] = "none", [XFER_TLS_MAY] = "may",
    [XFER_TLS_ENCRYPT] = "encrypt", [XFER_TLS_VERIFY] = "verify",
};

int
xfer_tls_level(const char *s, enum xfer_tls *level)
{
    for (int i = XFER_TLS_NONE; i <= XFER_TLS_VERIFY; i++)
        if (strcmp(s, xfer_tls_names[i]) == 0) {
            *level = (enum xfer_tls)i;
            return 0;
        }
    return -1;
}

int
xfer_conf_error(const modmta_host *h, modmta_err *err_r, const char *key,
                const char *msg)
{
    char path[300];

    snprintf(path, sizeof(path), "%s.%s", modmta_host_path(h), key);
    modmta_conf_error(h, err_r, path, "%s", msg);
    return -1;
}

int
xfer_conf_helo(const char *helo, const modmta_host *h, modmta_err *err_r)
{
    size_t n;

    if (helo == NULL)
        return 0;
    n = strlen(helo);
    if (n == 0 || n > 255 ||
        strspn(helo, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "0123456789.-_:[]") != n)
        return xfer_conf_error(h, err_r, "helo_name", "expected a host name "
                               "or an address literal ([192.0.2.1])");
    return 0;
}

void
xfer_timeouts(struct smtpc_timeouts *t, long long connect_s,
              long long command_s, long long data_s)
{
    int cmd = (int)command_s * 1000;

    smtpc_timeouts_default(t);
    t->connect_ms = (int)connect_s * 1000;
    t->greeting_ms = t->helo_ms = t->starttls_ms = t->auth_ms = cmd;
    t->mail_ms = t->rcpt_ms = cmd;
    if (t->data_ms > cmd)
        t->data_ms = cmd;
    t->data_end_ms = (int)data_s * 1000;
}

/* Every recipient gets the same result (no transaction took place). */
static void
xfer_all(modmta_ctx *ctx, modmta_dstatus st, const char *esc,
         const char *text)
{
    for (size_t i = 0; i < modmta_dlv_rcpt_count(ctx); i++)
        modmta_dlv_result(ctx, i, st, 0, esc, NULL, text);
}

static void
xfer_fail_walk(struct xfer_walk *w, modmta_dstatus st, const char *esc,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Remember why this server could not take the mail. */
static void
xfer_fail_walk(struct xfer_walk *w, modmta_dstatus st, const char *esc,
               const char *fmt, ...)
{
    va_list ap;

    w->last_status = st;
    snprintf(w->last_esc, sizeof(w->last_esc), "%s", esc);
    va_start(ap, fmt);
    vsnprintf(w->last_text, sizeof(w->last_text), fmt, ap);
    va_end(ap);
    for (char *p = w->last_text; *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
}

/* A server's refusal or a failed conversation, as the last reason. */
static void
xfer_fail_reply(struct xfer_walk *w, const char *peer,
                const struct smtpc_reply *r, const char *what)
{
    if (r->code == 0)
        xfer_fail_walk(w, MODMTA_DEFERRED, r->esc[0] ? r->esc : "4.4.1",
                       "%s", r->text != NULL ? r->text : what);
    else
        xfer_fail_walk(w, MODMTA_DEFERRED, r->code / 100 == 5 ? "4.4.0"
                       : r->esc[0] ? r->esc : "4.4.0",
                       "host %s %s: %d%s%s %s", peer, what, r->code,
                       r->esc[0] ? " " : "", r->esc,
                       r->text != NULL ? r->text : "");
}

/* The level for this destination: the policy map's (by next-hop host or
 * domain), else the instance's; at least encrypt with credentials. -1
 * when the policy cannot be read. */
static int
xfer_policy(struct xfer_walk *w)
{
    const struct xfer_conf *c = w->c;
    char *v = NULL;
    int rc;

    w->level = c->tls_level;
    if (w->nh->kind == NEXTHOP_LMTP_UNIX) {
        w->level = XFER_TLS_NONE;
        return 0;
    }
    if (c->tls_policy != NULL) {
        rc = modmta_map_lookup(c->tls_policy, w->nh->host, &v);
        if (rc < 0)
            return -1;
        if (rc > 0 && xfer_tls_level(v, &w->level) < 0)
            w->level = XFER_TLS_VERIFY;   /* unknown: the safest reading */
        modmta_free(v);
    }
    if (c->auth != NULL) {
        rc = modmta_map_lookup(c->auth, w->dest, &w->creds);
        if (rc == 0)
            rc = modmta_map_lookup(c->auth, w->nh->host, &w->creds);
        if (rc < 0)
            return -1;
        if (rc > 0 && w->level < XFER_TLS_ENCRYPT)
            w->level = XFER_TLS_ENCRYPT;
    }
    return 0;
}

/* STARTTLS as the level asks. 1: go on (TLS or allowed in clear); 0:
 * this server will not do (s closed, the reason kept); -1: a failed
 * handshake at "may": the caller retries in clear. */
static int
xfer_tls(struct xfer_walk *w, smtpc_session *s, const char *peer_name)
{
    struct smtpc_reply r = {0};
    modmta_tls_verify v = w->level == XFER_TLS_VERIFY ? MODMTA_TLS_VERIFY
                                                      : MODMTA_TLS_ENCRYPT;
    smtpc_rc rc;

    if (w->level == XFER_TLS_NONE)
        return 1;
    rc = smtpc_starttls(s, w->c->tls, peer_name, v, &r);
    if (rc == SMTPC_OK) {
        smtpc_reply_clear(&r);          /* the second EHLO's reply */
        return 1;
    }
    /* REFUSED after the handshake is the second EHLO's refusal: the
     * session is in TLS without a greeting accepted, at any level. */
    if (rc == SMTPC_REFUSED && modmta_conn_is_tls(smtpc_conn(s))) {
        xfer_fail_reply(w, smtpc_peer(s), &r, "refused to talk to me "
                        "after STARTTLS");
        smtpc_reply_clear(&r);
        smtpc_close(s);
        return 0;
    }
    if (w->level == XFER_TLS_MAY) {
        if ((rc == SMTPC_NOT_OFFERED || rc == SMTPC_REFUSED) &&
            smtpc_usable(s)) {
            smtpc_reply_clear(&r);
            return 1;                   /* on in clear */
        }
        /* a 421 to STARTTLS, or a failed handshake: keep why, then the
         * caller may try again in clear */
        xfer_fail_reply(w, smtpc_peer(s), &r, "refused STARTTLS");
        smtpc_reply_clear(&r);
        smtpc_close(s);
        return rc == SMTPC_TLS_FAILED || rc == SMTPC_TLS_UNVERIFIED ? -1 : 0;
    }
    if (rc == SMTPC_NOT_OFFERED)
        xfer_fail_walk(w, MODMTA_DEFERRED, "4.7.4", "TLS is required, but "
                       "was not offered by host %s", smtpc_peer(s));
    else if (rc == SMTPC_TLS_UNVERIFIED)
        xfer_fail_walk(w, MODMTA_DEFERRED, "4.7.5", "Server certificate "
                       "not verified: host %s: %s", smtpc_peer(s),
                       r.text != NULL ? r.text : "");
    else
        xfer_fail_reply(w, smtpc_peer(s), &r, "refused STARTTLS");
    smtpc_reply_clear(&r);
    smtpc_close(s);
    return 0;
}

/* AUTH with the next hop's credentials, when it offers AUTH. 1 to go on,
 * 0 when refused (s closed, the reason kept). */
static int
xfer_auth(struct xfer_walk *w, smtpc_session *s)
{
    struct smtpc_reply r = {0};
    char *colon;
    smtpc_rc rc;

    if (w->creds == NULL || !(smtpc_ext(s) & SMTPC_EXT_AUTH))
        return 1;
    colon = strchr(w->creds, ':');
    if (colon == NULL) {
        xfer_fail_walk(w, MODMTA_DEFERRED, "4.7.0", "credentials for %s "
                       "are not \"user:password\"", w->dest);
        smtpc_close(s);
        return 0;
    }
    *colon = '\0';
    rc = smtpc_auth(s, w->creds, colon + 1, &r);
    *colon = ':';
    if (rc == SMTPC_OK || rc == SMTPC_NOT_OFFERED) {
        smtpc_reply_clear(&r);
        return 1;
    }
    xfer_fail_reply(w, smtpc_peer(s), &r, "said (SASL authentication "
                    "failed)");
    smtpc_reply_clear(&r);
    smtpc_close(s);
    return 0;
}

/* A session with server sv, TLS and AUTH done as the policy asks; NULL
 * with the reason kept. */
static smtpc_session *
xfer_open(struct xfer_walk *w, const struct xfer_server *sv, int clear)
{
    struct smtpc_opts o = {.role = w->role, .helo = w->c->helo,
                           .timeouts = w->c->timeouts, .cache = w->c->cache};
    struct smtpc_reply r = {0};
    enum xfer_tls level = w->level;
    smtpc_session *s;
    int rc;

    s = sv->unix_path != NULL
            ? smtpc_open_unix(w->ctx, &o, sv->unix_path, &r)
            : smtpc_open(w->ctx, &o, sv->name,
                         (const struct sockaddr *)&sv->sa, sv->salen, &r);
    if (r.code != 0 || s != NULL)
        w->sessions++;
    if (s == NULL) {
        char peer[NEXTHOP_HOST_MAX + 70];

        snprintf(peer, sizeof(peer), sv->unix_path ? "%s" : "%s[%s]",
                 sv->name, sv->addr);
        xfer_fail_reply(w, peer, &r, "refused to talk to me");
        smtpc_reply_clear(&r);
        return NULL;
    }
    w->reached = 1;
    if (clear)
        w->level = XFER_TLS_NONE;
    rc = xfer_tls(w, s, sv->name);
    w->level = level;
    if (rc < 0) {
        /* "may": the same server once more, in clear; that retry does
         * not use up the session budget of the walk */
        w->sessions--;
        return xfer_open(w, sv, 1);
    }
    if (rc == 0 || !xfer_auth(w, s))
        return NULL;
    return s;
}

/* The AUTH= value to pass on, xtext-encoded (RFC 3461 4), or "<>". */
static char *
xfer_xtext(modmta_ctx *ctx, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out, *o;

    if (v == NULL || strcmp(v, "<>") == 0)
        return v != NULL ? modmta_txn_strdup(ctx, "<>") : NULL;
    if ((out = modmta_txn_alloc(ctx, strlen(v) * 3 + 1)) == NULL)
        return NULL;
    for (o = out; *v != '\0'; v++) {
        unsigned char ch = (unsigned char)*v;

        if (ch < 33 || ch > 126 || ch == '+' || ch == '=') {
            *o++ = '+';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    *o = '\0';
    return out;
}

static modmta_dstatus
xfer_status(const struct xfer_walk *w, smtpc_session *s, int cls)
{
    if (cls == 5)
        return MODMTA_FAILED;
    if (cls != 2)
        return MODMTA_DEFERRED;
    if (w->role == SMTPC_LMTP)
        return MODMTA_DELIVERED;
    return smtpc_ext(s) & SMTPC_EXT_DSN ? MODMTA_RELAYED_DSN
                                        : MODMTA_RELAYED;
}

/* RFC 5321 4.5.3.1.10: "452 too many recipients" at RCPT means "send
 * the others in another transaction", not "try later". */
static int
xfer_too_many(const struct smtpc_reply *r)
{
    return r->code == 452 && r->stage != NULL &&
           strcmp(r->stage, "RCPT TO") == 0 &&
           (r->esc[0] == '\0' || strcmp(r->esc, "4.5.3") == 0);
}

/* A temporary failure another server may not have (Postfix tries the
 * next MX for these): any 4xx, a lost or timed-out conversation — but
 * not one lost after the final ".", where this server may have the
 * message already (trying another now would send it twice). */
static int
xfer_soft(const struct smtpc_reply *r)
{
    if (smtpc_reply_class(r) != 4)
        return 0;
    return r->code != 0 || r->stage == NULL ||
           strcmp(r->stage, "end of DATA") != 0;
}

static int
xfer_has_8bit(const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

/* Does the message need SMTPUTF8 (RFC 6531)? Asking for it is not
 * needing it: only a UTF-8 address or header field does (Postfix
 * delivers the rest to servers without SMTPUTF8 as plain mail). */
static int
xfer_needs_utf8(modmta_ctx *ctx)
{
    char line[1024];
    FILE *f;
    int need = 0;

    if (modmta_mail_param(ctx, "SMTPUTF8") == NULL)
        return 0;
    if (xfer_has_8bit(modmta_sender(ctx)))
        return 1;
    for (size_t i = 0; i < modmta_dlv_rcpt_count(ctx); i++)
        if (xfer_has_8bit(modmta_dlv_rcpt_at(ctx, i)))
            return 1;
    if ((f = fopen(modmta_message_path(ctx), "re")) == NULL)
        return 1;                   /* cannot tell: keep the promise */
    while (!need && fgets(line, sizeof(line), f) != NULL &&
           strcmp(line, "\r\n") != 0 && strcmp(line, "\n") != 0)
        need = xfer_has_8bit(line);
    fclose(f);
    return need;
}

/* ORCPT for recipient i when the client gave none: the address before
 * an alias or virtual rewrote it (Postfix does the same), so that a
 * next hop's report names what the sender wrote. NULL: none to add. */
static const char *
xfer_orcpt(modmta_ctx *ctx, size_t i)
{
    const char *given = modmta_dlv_rcpt_param(ctx, i, "ORCPT");
    const char *orig = modmta_dlv_rcpt_original(ctx, i);
    char *x, *v;

    if (given != NULL || orig == NULL ||
        strcmp(orig, modmta_dlv_rcpt_at(ctx, i)) == 0 || xfer_has_8bit(orig))
        return given;
    if ((x = xfer_xtext(ctx, orig)) == NULL ||
        (v = modmta_txn_alloc(ctx, strlen(x) + 8)) == NULL)
        return NULL;
    memcpy(v, "rfc822;", 7);
    memcpy(v + 7, x, strlen(x) + 1);
    return v;
}

/* One transaction on s for the recipients idx[0..n) and their results;
 * soft[k] tells whether recipient k failed in a way another server may
 * not. Returns how many got "too many recipients" (moved to the front
 * of idx), or -1 when out of memory before anything was sent. */
static long
xfer_txn(struct xfer_walk *w, smtpc_session *s, size_t *idx, size_t n,
         char *soft)
{
    modmta_ctx *ctx = w->ctx;
    struct smtpc_rcpt *rcpts = modmta_txn_alloc(ctx, n * sizeof(*rcpts));
    const char *body = modmta_mail_param(ctx, "BODY");
    struct smtpc_msg m = {
        .sender = modmta_sender(ctx), .path = modmta_message_path(ctx),
        .need_8bit = body != NULL && strcasecmp(body, "8BITMIME") == 0,
        .need_smtputf8 = w->need_utf8,
        .ret = modmta_mail_param(ctx, "RET"),
        .envid = modmta_mail_param(ctx, "ENVID"),
        .auth = xfer_xtext(ctx, modmta_mail_param(ctx, "AUTH")),
        .rcpts = rcpts, .nrcpts = n,
    };
    modmta_conn *conn = smtpc_conn(s);
    size_t again = 0;
    smtpc_txn *t;

    for (size_t i = 0; rcpts != NULL && i < n; i++) {
        rcpts[i].addr = modmta_dlv_rcpt_at(ctx, idx[i]);
        rcpts[i].notify = modmta_dlv_rcpt_param(ctx, idx[i], "NOTIFY");
        rcpts[i].orcpt = xfer_orcpt(ctx, idx[i]);
    }
    if (rcpts == NULL || (t = smtpc_txn_run(s, &m)) == NULL)
        return -1;
    w->txns++;
    modmta_dlv_remote(ctx, smtpc_name(s), smtpc_addr(s), smtpc_port(s));
    if (modmta_conn_is_tls(conn))
        modmta_dlv_remote_tls(ctx, modmta_conn_tls_version(conn),
                              modmta_conn_tls_cipher(conn));
    for (size_t i = 0; i < n; i++) {
        const struct smtpc_reply *r = smtpc_txn_result(t, i);
        modmta_dstatus st = xfer_status(w, s, smtpc_reply_class(r));

        /* A server's enhanced code of the wrong class is dropped. */
        if (modmta_dlv_result(ctx, idx[i], st, r->code,
                              r->esc[0] ? r->esc : NULL, r->stage,
                              r->text) < 0)
            modmta_dlv_result(ctx, idx[i], st, r->code, NULL, r->stage,
                              r->text);
        soft[idx[i]] = (char)xfer_soft(r);
        if (xfer_too_many(r))
            idx[again++] = idx[i];  /* again <= i: nothing is lost */
    }
    smtpc_txn_free(t);
    return (long)again;
}

/* The transactions for idx[0..n) on s: one, and another for the
 * recipients refused with "too many recipients" as long as each takes
 * some (Postfix does the same); s then goes back to the cache or is
 * closed. 0, or -1 when out of memory before anything was sent. */
static int
xfer_send(struct xfer_walk *w, smtpc_session *s, size_t *idx, size_t n,
          char *soft)
{
    long again = xfer_txn(w, s, idx, n, soft);

    if (again < 0) {
        smtpc_close(s);
        return -1;
    }
    /* Each round took at least one recipient, or it stops. */
    while (again > 0 && (size_t)again < n && smtpc_usable(s)) {
        n = (size_t)again;
        again = xfer_txn(w, s, idx, n, soft);
    }
    if (w->c->cache != NULL && smtpc_usable(s))
        smtpc_cache_put(w->c->cache, w->dest, s);
    else
        smtpc_close(s);
    return 0;
}

/* A cached session meets the TLS level asked now (a policy file may
 * have changed since it was opened). */
static int
xfer_cached_ok(const struct xfer_walk *w, smtpc_session *s)
{
    modmta_conn *c = smtpc_conn(s);

    if (w->level == XFER_TLS_VERIFY)
        return modmta_conn_tls_verified(c);
    if (w->level == XFER_TLS_ENCRYPT)
        return modmta_conn_is_tls(c);
    return 1;
}

/* The recipients still to try elsewhere, to the front of idx. */
static size_t
xfer_still_soft(size_t *idx, size_t n, const char *soft)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (soft[idx[i]])
            idx[k++] = idx[i];
    return k;
}

/* The servers in turn: a cached session first, then each address, as
 * long as recipients remain that another server may take (Postfix's
 * smtp walks the MX list the same way). */
static void
xfer_walk(struct xfer_walk *w, const struct xfer_servers *sv)
{
    size_t n = modmta_dlv_rcpt_count(w->ctx);
    size_t *idx = modmta_txn_alloc(w->ctx, n * sizeof(*idx));
    char *soft = modmta_txn_alloc(w->ctx, n);
    smtpc_session *s = NULL;
    size_t tried = 0;

    if (idx == NULL || soft == NULL) {
        xfer_all(w->ctx, MODMTA_DEFERRED, "4.3.0", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (w->c->cache != NULL &&
        (s = smtpc_cache_get(w->c->cache, w->dest)) != NULL) {
        w->reached = 1;
        if (!xfer_cached_ok(w, s))
            smtpc_close(s);
        else if (xfer_send(w, s, idx, n, soft) == 0)
            n = xfer_still_soft(idx, n, soft);
    }
    for (size_t i = 0; i < sv->n && n > 0; i++) {
        if (tried++ >= (size_t)w->c->max_addrs ||
            w->sessions >= w->c->max_sessions)
            break;
        if ((s = xfer_open(w, &sv->s[i], 0)) != NULL &&
            xfer_send(w, s, idx, n, soft) == 0)
            n = xfer_still_soft(idx, n, soft);
    }
    if (w->txns > 0)
        return;                     /* each has a server's result */
    if (w->last_text[0] == '\0')
        xfer_fail_walk(w, MODMTA_DEFERRED, "4.3.0", "out of memory");
    xfer_all(w->ctx, w->last_status, w->last_esc, w->last_text);
    if (!w->reached)
        modmta_dlv_dest_down(w->ctx);
}

void
xfer_deliver(const struct xfer_conf *c, modmta_ctx *ctx, const char *dest)
{
    struct xfer_walk w = {.c = c, .ctx = ctx, .dest = dest,
                          .last_status = MODMTA_DEFERRED};
    struct xfer_servers *sv = calloc(1, sizeof(*sv));
    struct nexthop nh;
    char why[300] = "not an SMTP or LMTP next hop";

    if (sv == NULL) {
        xfer_all(ctx, MODMTA_DEFERRED, "4.3.0", "out of memory");
        return;
    }
    if (nexthop_parse(dest, 1, &nh, why, sizeof(why)) < 0 ||
        nh.kind == NEXTHOP_ERROR || nh.kind == NEXTHOP_LOCAL) {
        modmta_log(ctx, MODMTA_LOG_ERR, "bad destination %s: %s", dest,
                   why);
        xfer_all(ctx, MODMTA_DEFERRED, "4.3.5", "bad destination");
    } else if (xfer_servers_get(sv, ctx, &nh, c->port) < 0) {
        xfer_all(ctx, sv->status, sv->esc, sv->text);
    } else {
        w.nh = &nh;
        w.role = nh.kind == NEXTHOP_SMTP ? SMTPC_SMTP : SMTPC_LMTP;
        if (xfer_policy(&w) < 0)
            xfer_all(ctx, MODMTA_DEFERRED, "4.3.0", "cannot read the TLS "
                     "policy or credentials table");
        else {
            w.need_utf8 = xfer_needs_utf8(ctx);
            xfer_walk(&w, sv);
        }
    }
    modmta_free(w.creds);
    free(sv);
}
