/*
 * auth_sasl: SMTP AUTH (RFC 4954) with PLAIN (RFC 4616), LOGIN and
 * CRAM-MD5 (RFC 2195) against a passdb (file:, saslauthd:).
 *
 * AUTH is offered and accepted only under TLS, or from a loopback client
 * when "allow_plaintext_loopback" is set. A client (an IPv4 address or an
 * IPv6 /64) that fails "max_failures" times within one window of
 * "lockout" seconds (a fixed window from its first failure) gets 421 and
 * is refused AUTH for "lockout" seconds; a good login does not reset the
 * count. That limiter (libmodmta's modmta_lockout_new_shared) counts in
 * the shared state (modmta/shared.h) under the instance's name: across
 * the nodes sharing a Redis, and across reloads. The mechanisms
 * themselves (decoding, parsing, checking the credentials) are
 * libmodmta's (modmta/sasl.h), shared with pop3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/modmta.h>


/* How one exchange ended. */
enum auth_result {
    AUTH_OK, AUTH_FAIL, AUTH_CANCEL, AUTH_BAD64, AUTH_SYNTAX, AUTH_TOOLONG,
    AUTH_TEMP, AUTH_GONE,
};

struct auth_conf {
    char *passdb;
    unsigned mechanisms; /* bits of AUTH_MECHS */
    int allow_plaintext_loopback;
    long long max_failures;
    long long lockout;
    long long timeout;
};

struct auth_inst {
    struct auth_conf c;
    modmta_passdb *db;
    unsigned mechs;  /* MODMTA_SASL_* */
    char ehlo[64];
    modmta_lockout *limit; /* failed logins per client */
};

/* One exchange in progress. */
struct auth_x {
    struct auth_inst *in;
    modmta_ctx *ctx;
    modmta_conn *conn;
    char user[MODMTA_SASL_FIELD_MAX + 1];
    char buf[MODMTA_SASL_LINE_MAX + 1];
};

/* The names of "mechanisms", in the order of their bits in
 * auth_conf.mechanisms and of the EHLO keyword. */
#define AUTH_MECHS "PLAIN", "LOGIN", "CRAM-MD5"

static const modmta_option auth_opts[] = {
    MODMTA_OPTION_STRING("passdb", struct auth_conf, passdb,
                         MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_ENUMSET("mechanisms", struct auth_conf, mechanisms,
                          MODMTA_OPT_ANYCASE, AUTH_MECHS),
    MODMTA_OPTION_BOOL("allow_plaintext_loopback", struct auth_conf,
                       allow_plaintext_loopback, 0),
    MODMTA_OPTION_RANGE("max_failures", struct auth_conf, max_failures, 0,
                        0, MODMTA_LOCKOUT_FAILURES_MAX),
    MODMTA_OPTION_SECONDS("lockout", struct auth_conf, lockout, 0, 0,
                          MODMTA_LOCKOUT_SECONDS_MAX),
    MODMTA_OPTION_SECONDS("timeout", struct auth_conf, timeout, 0, 1, 3600),
    MODMTA_OPTION_END
};

/* ---- configuration ---- */

static int
auth_mechs_parse(struct auth_inst *in, const modmta_host *h,
                 modmta_err *err_r)
{
    static const char *const names[] = {AUTH_MECHS};
    char path[300];
    size_t i, len;

    snprintf(path, sizeof(path), "%s.mechanisms", modmta_host_path(h));
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (in->c.mechanisms & (1u << i))
            in->mechs |= modmta_sasl_mech(names[i]);
    if (in->mechs == 0)
        return modmta_conf_error(h, err_r, path, "no mechanism");
    if ((in->mechs & MODMTA_SASL_CRAM_MD5)
        && !modmta_passdb_has_secrets(in->db))
        return modmta_conf_error(h, err_r, path, "CRAM-MD5 needs a passdb "
                                 "that keeps clear-text secrets; %s does not",
                                 modmta_passdb_name(in->db));
    len = (size_t)snprintf(in->ehlo, sizeof(in->ehlo), "AUTH");
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (in->c.mechanisms & (1u << i))
            len += (size_t)snprintf(in->ehlo + len, sizeof(in->ehlo) - len,
                                    " %s", names[i]);
    return 0;
}

static void
auth_destroy(void *p)
{
    struct auth_inst *in = p;

    if (in == NULL)
        return;
    modmta_passdb_close(in->db);
    modmta_conf_free_options(auth_opts, &in->c);
    modmta_lockout_free(in->limit);
    free(in);
}

/* The failed-login limiter of max_failures and lockout. */
static int
auth_limit_new(struct auth_inst *in, const modmta_host *h, modmta_err *err_r)
{
    in->limit = modmta_lockout_new_shared(h, modmta_host_instance(h),
                                          (unsigned)in->c.max_failures,
                                          (unsigned)in->c.lockout, err_r);
    return in->limit != NULL ? 0 : -1;
}

static void *
auth_create(const json_t *conf, const modmta_host *h, modmta_err *err_r)
{
    struct auth_inst *in = calloc(1, sizeof(*in));
    char path[300];

    if (in == NULL) {
        modmta_err_set(err_r, modmta_host_path(h), "out of memory");
        return NULL;
    }
    in->c.max_failures = 5;
    in->c.lockout = 300;
    in->c.timeout = 300;
    in->c.mechanisms = 1u << 0 | 1u << 1; /* PLAIN LOGIN */
    if (modmta_conf_parse_options(conf, h, auth_opts, &in->c, err_r) < 0) {
        auth_destroy(in);
        return NULL;
    }
    snprintf(path, sizeof(path), "%s.passdb", modmta_host_path(h));
    in->db = modmta_passdb_open_host(in->c.passdb, h, path, err_r);
    if (in->db == NULL || auth_mechs_parse(in, h, err_r) < 0) {
        auth_destroy(in);
        return NULL;
    }
    if (auth_limit_new(in, h, err_r) < 0) {
        auth_destroy(in);
        return NULL;
    }
    return in;
}

/* ---- policy ---- */

static int
auth_is_loopback(const modmta_ctx *ctx)
{
    const char *a = modmta_client_addr(ctx);

    return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0
           || strncmp(a, "::ffff:127.", 11) == 0;
}

static int
auth_allowed(const struct auth_inst *in, const modmta_ctx *ctx)
{
    return modmta_is_tls(ctx)
           || (in->c.allow_plaintext_loopback && auth_is_loopback(ctx));
}

static void
auth_ehlo(void *inst, modmta_ctx *ctx)
{
    struct auth_inst *in = inst;

    if (auth_allowed(in, ctx) && modmta_auth_user(ctx) == NULL)
        modmta_ehlo_add(ctx, in->ehlo);
}

/* ---- the exchange ---- */

/* Send a 334 challenge and read the answer into x->buf: its length, or a
 * negative auth_result. */
static long
auth_round(struct auth_x *x, const char *b64)
{
    ssize_t n;

    modmta_conn_printf(x->conn, "334 %s\r\n", b64);
    if (modmta_conn_flush(x->conn) < 0)
        return -AUTH_GONE;
    n = modmta_conn_readline(x->conn, x->buf, sizeof(x->buf),
                             (int)x->in->c.timeout * 1000);
    if (n == MODMTA_E_LIMIT)
        return -AUTH_TOOLONG;
    if (n < 0)
        return n == MODMTA_E_INVAL ? -AUTH_SYNTAX : -AUTH_GONE;
    return n;
}

/* Run the SASL exchange of mech (ir: the initial response or NULL) to
 * its end and check the credentials. */
static enum auth_result
auth_exchange(struct auth_x *x, unsigned mech, const char *ir)
{
    const char *host = modmta_host_hostname(modmta_ctx_host(x->ctx));
    modmta_sasl *s = modmta_sasl_new(mech, host);
    int r = s != NULL ? modmta_sasl_start(s, ir) : MODMTA_E_NOMEM;
    long n = 0;

    while (r == MODMTA_SASL_NEXT
           && (n = auth_round(x, modmta_sasl_challenge(s))) >= 0)
        r = modmta_sasl_step(s, x->buf, (size_t)n);
    if (r == MODMTA_SASL_DONE)
        r = modmta_sasl_verify(s, x->in->db);
    if (s != NULL)
        snprintf(x->user, sizeof(x->user), "%s", modmta_sasl_user(s));
    modmta_sasl_free(s);
    memset(x->buf, 0, sizeof(x->buf));
    if (n < 0)
        return (enum auth_result)-n;
    switch (r) {
    case 1:
        return AUTH_OK;
    case 0:
    case MODMTA_SASL_AUTHZ: /* one user acting as another: a failure */
        return AUTH_FAIL;
    case MODMTA_SASL_CANCEL:
        return AUTH_CANCEL;
    case MODMTA_SASL_BAD64:
        return AUTH_BAD64;
    case MODMTA_SASL_MALFORMED:
        return AUTH_SYNTAX;
    default:
        return AUTH_TEMP;
    }
}

/* A user name safe to log: printable ASCII, at most 64 octets. */
static void
auth_log_name(const char *in, char *out, size_t cap)
{
    size_t i;

    for (i = 0; in[i] != '\0' && i + 1 < cap && i < 64; i++)
        out[i] = in[i] > ' ' && in[i] < 0x7f && in[i] != '"' ? in[i] : '?';
    out[i] = '\0';
}

/* 421 (the session ends): the client is locked. */
static modmta_verdict
auth_reply_locked(modmta_ctx *ctx, const char *what)
{
    modmta_reply(ctx, 421, "4.7.0", "%s Too many failed authentications, "
                 "%s", modmta_host_hostname(modmta_ctx_host(ctx)), what);
    return MODMTA_TEMPFAIL;
}

/* 454: the failure count cannot be read or written (shared state
 * unreachable), or the table is full of locked clients. */
static modmta_verdict
auth_reply_full(modmta_ctx *ctx)
{
    modmta_reply(ctx, 454, "4.7.0", "Temporary authentication failure");
    return MODMTA_TEMPFAIL;
}

static modmta_verdict
auth_failed(struct auth_x *x, const char *mech)
{
    const char *addr = modmta_client_addr(x->ctx);
    char name[80], why[64] = "";
    unsigned n;
    int r = modmta_lockout_fail(x->in->limit, addr, &n);
    int locked = r == MODMTA_LOCKOUT_HIT || r == MODMTA_LOCKOUT_LOCKED;

    if (locked)
        snprintf(why, sizeof(why), " locked=yes");
    else if (r < 0)
        snprintf(why, sizeof(why), " error=\"%s\"", modmta_strerror(r));
    else if (r != MODMTA_LOCKOUT_COUNTED)
        snprintf(why, sizeof(why), " table=full");
    auth_log_name(x->user, name, sizeof(name));
    modmta_log(x->ctx, MODMTA_LOG_NOTICE, "auth failed client=[%s] "
               "user=\"%s\" mech=%s failures=%u%s", addr, name, mech, n,
               why);
    modmta_set_auth_tried(x->ctx, x->user);
    if (locked)
        return auth_reply_locked(x->ctx, "closing connection");
    if (r != MODMTA_LOCKOUT_COUNTED)
        return auth_reply_full(x->ctx);
    modmta_reply(x->ctx, 535, "5.7.8",
                 "Authentication credentials invalid");
    return MODMTA_REJECT;
}

static modmta_verdict
auth_finish(struct auth_x *x, enum auth_result r, const char *mech)
{
    char name[80];
    int lock;

    switch (r) {
    case AUTH_OK:
        /* locked by a parallel session meanwhile: a right guess then
         * must not show either; nor when that cannot be known */
        lock = modmta_lockout_check(x->in->limit, modmta_client_addr(x->ctx));
        if (lock == MODMTA_LOCKOUT_LOCKED)
            return auth_reply_locked(x->ctx, "closing connection");
        if (lock != MODMTA_LOCKOUT_OPEN)
            return auth_reply_full(x->ctx);
        if (modmta_set_auth_user(x->ctx, x->user) < 0)
            break;
        auth_log_name(x->user, name, sizeof(name));
        modmta_log(x->ctx, MODMTA_LOG_INFO, "auth ok client=[%s] user=\"%s\""
                   " mech=%s", modmta_client_addr(x->ctx), name, mech);
        modmta_reply(x->ctx, 235, "2.7.0", "Authentication successful");
        return MODMTA_ACCEPT;
    case AUTH_FAIL:
        return auth_failed(x, mech);
    case AUTH_CANCEL:
        modmta_reply(x->ctx, 501, "5.7.0", "Authentication aborted");
        return MODMTA_REJECT;
    case AUTH_BAD64:
        modmta_reply(x->ctx, 501, "5.5.2", "Cannot decode base64 response");
        return MODMTA_REJECT;
    case AUTH_SYNTAX:
        modmta_reply(x->ctx, 501, "5.5.2", "Malformed authentication data");
        return MODMTA_REJECT;
    case AUTH_TOOLONG:
        modmta_reply(x->ctx, 500, "5.5.6", "Authentication Exchange line "
                     "is too long");
        return MODMTA_REJECT;
    case AUTH_GONE:
        modmta_reply(x->ctx, 421, "4.4.2", "Connection lost");
        return MODMTA_TEMPFAIL;
    case AUTH_TEMP:
        break;
    }
    modmta_log(x->ctx, MODMTA_LOG_WARN, "auth tempfail passdb=%s",
               modmta_passdb_name(x->in->db));
    modmta_reply(x->ctx, 454, "4.7.0", "Temporary authentication failure");
    return MODMTA_TEMPFAIL;
}

/* Refusals before any exchange; MODMTA_CONTINUE when AUTH may go on. */
static modmta_verdict
auth_precheck(struct auth_inst *in, modmta_ctx *ctx)
{
    int r;

    if (!auth_allowed(in, ctx)) {
        modmta_reply(ctx, 538, "5.7.11", "Encryption required for "
                     "requested authentication mechanism");
        return MODMTA_REJECT;
    }
    if (modmta_helo(ctx) == NULL || !modmta_is_esmtp(ctx)) {
        modmta_reply(ctx, 503, "5.5.1", "Error: send EHLO first");
        return MODMTA_REJECT;
    }
    if (modmta_auth_user(ctx) != NULL) {
        modmta_reply(ctx, 503, "5.5.1", "Error: already authenticated");
        return MODMTA_REJECT;
    }
    if (modmta_sender(ctx) != NULL) {
        modmta_reply(ctx, 503, "5.5.1", "Error: MAIL transaction in "
                     "progress");
        return MODMTA_REJECT;
    }
    switch ((r = modmta_lockout_check(in->limit, modmta_client_addr(ctx)))) {
    case MODMTA_LOCKOUT_OPEN:
        return MODMTA_CONTINUE;
    case MODMTA_LOCKOUT_LOCKED:
        modmta_log(ctx, MODMTA_LOG_NOTICE, "auth refused client=[%s] "
                   "reason=lockout", modmta_client_addr(ctx));
        return auth_reply_locked(ctx, "try again later");
    default: /* the shared state is unreachable (or FULL) */
        modmta_log(ctx, MODMTA_LOG_WARN, "auth refused client=[%s] "
                   "reason=lockout-unknown error=\"%s\"",
                   modmta_client_addr(ctx), modmta_strerror(r));
        return auth_reply_full(ctx);
    }
}

static modmta_verdict
auth_verb(void *inst, modmta_ctx *ctx, modmta_conn *conn, const char *args)
{
    struct auth_inst *in = inst;
    char mech[32];
    const char *sp = strchr(args, ' '), *ir = NULL;
    size_t mlen = sp != NULL ? (size_t)(sp - args) : strlen(args);
    struct auth_x *x;
    enum auth_result r;
    unsigned m;
    modmta_verdict v = auth_precheck(in, ctx);

    if (v != MODMTA_CONTINUE)
        return v;
    if (mlen == 0 || mlen >= sizeof(mech)
        || (sp != NULL && (sp[1] == '\0' || strchr(sp + 1, ' ') != NULL))) {
        modmta_reply(ctx, 501, "5.5.4", "Syntax: AUTH mechanism "
                     "[initial-response]");
        return MODMTA_REJECT;
    }
    memcpy(mech, args, mlen);
    mech[mlen] = '\0';
    ir = sp != NULL ? sp + 1 : NULL;
    if ((m = modmta_sasl_mech(mech) & in->mechs) == 0) {
        modmta_reply(ctx, 504, "5.5.4", "Unrecognized authentication type");
        return MODMTA_REJECT;
    }
    if ((x = calloc(1, sizeof(*x))) == NULL)
        return MODMTA_TEMPFAIL;
    x->in = in;
    x->ctx = ctx;
    x->conn = conn;
    r = auth_exchange(x, m, ir);
    v = auth_finish(x, r, modmta_sasl_mech_name(m));
    memset(x, 0, sizeof(*x));
    free(x);
    return v;
}

static const modmta_command auth_commands[] = {
    MODMTA_COMMAND("AUTH", auth_verb),
    MODMTA_COMMAND_END
};

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "auth_sasl",
    .version = "1.0.0",
    .create = auth_create,
    .destroy = auth_destroy,
    .ehlo = auth_ehlo,
    .commands = auth_commands,
};
