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
 * the nodes sharing a Redis, and across reloads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>

#include <modmta/modmta.h>

#include "sasl_mech.h"

#define AUTH_LINE_MAX 12288 /* RFC 4954 4: 12288 octets per line */

enum auth_mech { AUTH_PLAIN = 1, AUTH_LOGIN = 2, AUTH_CRAM = 4 };

/* How one exchange ended. */
enum auth_result {
    AUTH_OK, AUTH_FAIL, AUTH_CANCEL, AUTH_BAD64, AUTH_SYNTAX, AUTH_TOOLONG,
    AUTH_TEMP, AUTH_GONE,
};

struct auth_conf {
    char *passdb;
    char **mechanisms;
    int allow_plaintext_loopback;
    long long max_failures;
    long long lockout;
    long long timeout;
};

struct auth_inst {
    struct auth_conf c;
    modmta_passdb *db;
    unsigned mechs;
    char ehlo[64];
    modmta_lockout *limit; /* failed logins per client */
};

/* One exchange in progress. */
struct auth_x {
    struct auth_inst *in;
    modmta_ctx *ctx;
    modmta_conn *conn;
    char user[SASL_FIELD_MAX + 1];
    char buf[AUTH_LINE_MAX + 1];
    char dec[AUTH_LINE_MAX];
};

static const modmta_opt auth_opts[] = {
    {"passdb", MODMTA_OPT_STRING, offsetof(struct auth_conf, passdb),
     MODMTA_OPT_REQUIRED},
    {"mechanisms", MODMTA_OPT_STRLIST,
     offsetof(struct auth_conf, mechanisms), 0},
    {"allow_plaintext_loopback", MODMTA_OPT_BOOL,
     offsetof(struct auth_conf, allow_plaintext_loopback), 0},
    {"max_failures", MODMTA_OPT_INT, offsetof(struct auth_conf, max_failures),
     0},
    {"lockout", MODMTA_OPT_INT, offsetof(struct auth_conf, lockout), 0},
    {"timeout", MODMTA_OPT_INT, offsetof(struct auth_conf, timeout), 0},
    {NULL, 0, 0, 0},
};

/* ---- configuration ---- */

static int
auth_mechs_parse(struct auth_inst *in, const modmta_host *h,
                 modmta_err *err_r)
{
    static const char *const names[] = {"PLAIN", "LOGIN", "CRAM-MD5"};
    char path[300];
    size_t i, j;

    snprintf(path, sizeof(path), "%s.mechanisms", modmta_host_path(h));
    if (in->c.mechanisms == NULL) {
        in->mechs = AUTH_PLAIN | AUTH_LOGIN;
    } else {
        for (i = 0; in->c.mechanisms[i] != NULL; i++) {
            for (j = 0; j < 3; j++)
                if (strcasecmp(in->c.mechanisms[i], names[j]) == 0)
                    break;
            if (j == 3) {
                modmta_err_set(err_r, path, "unknown mechanism \"%s\" "
                               "(PLAIN, LOGIN, CRAM-MD5)",
                               in->c.mechanisms[i]);
                return -1;
            }
            in->mechs |= 1u << j; /* AUTH_PLAIN, AUTH_LOGIN, AUTH_CRAM */
        }
    }
    if (in->mechs == 0) {
        modmta_err_set(err_r, path, "no mechanism");
        return -1;
    }
    if ((in->mechs & AUTH_CRAM) && !modmta_passdb_has_secrets(in->db)) {
        modmta_err_set(err_r, path, "CRAM-MD5 needs a passdb that keeps "
                       "clear-text secrets; %s does not",
                       modmta_passdb_name(in->db));
        return -1;
    }
    snprintf(in->ehlo, sizeof(in->ehlo), "AUTH%s%s%s",
             in->mechs & AUTH_PLAIN ? " PLAIN" : "",
             in->mechs & AUTH_LOGIN ? " LOGIN" : "",
             in->mechs & AUTH_CRAM ? " CRAM-MD5" : "");
    return 0;
}

static void
auth_destroy(void *p)
{
    struct auth_inst *in = p;

    if (in == NULL)
        return;
    modmta_passdb_close(in->db);
    modmta_conf_free(auth_opts, &in->c);
    modmta_lockout_free(in->limit);
    free(in);
}

/* The failed-login limiter of max_failures and lockout. */
static int
auth_limit_new(struct auth_inst *in, const modmta_host *h, modmta_err *err_r)
{
    char path[300];
    const char *key = NULL;
    unsigned max = 0;

    if (in->c.max_failures > MODMTA_LOCKOUT_FAILURES_MAX) {
        key = "max_failures";
        max = MODMTA_LOCKOUT_FAILURES_MAX;
    } else if (in->c.lockout > MODMTA_LOCKOUT_SECONDS_MAX) {
        key = "lockout";
        max = MODMTA_LOCKOUT_SECONDS_MAX;
    }
    if (key != NULL) {
        snprintf(path, sizeof(path), "%s.%s", modmta_host_path(h), key);
        modmta_err_set(err_r, path, "expected at most %u", max);
        return -1;
    }
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
    if (modmta_conf_parse(conf, h, auth_opts, &in->c, err_r) < 0) {
        auth_destroy(in);
        return NULL;
    }
    snprintf(path, sizeof(path), "%s.passdb", modmta_host_path(h));
    in->db = modmta_passdb_open_host(in->c.passdb, h, path, err_r);
    if (in->db == NULL || auth_mechs_parse(in, h, err_r) < 0) {
        auth_destroy(in);
        return NULL;
    }
    if (in->c.timeout == 0 || in->c.timeout > 3600) {
        snprintf(path, sizeof(path), "%s.timeout", modmta_host_path(h));
        modmta_err_set(err_r, path, "expected 1 to 3600 seconds");
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

/* Send a 334 challenge (b64 text) and read the answer, decoded into
 * x->dec; returns its length or a negative auth_result. */
static long
auth_round(struct auth_x *x, const char *b64)
{
    ssize_t n;
    long d;

    modmta_conn_printf(x->conn, "334 %s\r\n", b64);
    if (modmta_conn_flush(x->conn) < 0)
        return -AUTH_GONE;
    n = modmta_conn_readline(x->conn, x->buf, sizeof(x->buf),
                             (int)x->in->c.timeout * 1000);
    if (n == MODMTA_E_LIMIT)
        return -AUTH_TOOLONG;
    if (n < 0)
        return n == MODMTA_E_INVAL ? -AUTH_SYNTAX : -AUTH_GONE;
    if (n == 1 && x->buf[0] == '*')
        return -AUTH_CANCEL;
    d = sasl_b64_decode(x->buf, (size_t)n, x->dec, sizeof(x->dec));
    return d < 0 ? -AUTH_BAD64 : d;
}

/* Decode an initial response ("=" is an empty one). */
static long
auth_initial(struct auth_x *x, const char *ir)
{
    long d;

    if (strcmp(ir, "=") == 0) {
        x->dec[0] = '\0';
        return 0;
    }
    d = sasl_b64_decode(ir, strlen(ir), x->dec, sizeof(x->dec));
    return d < 0 ? -AUTH_BAD64 : d;
}

static enum auth_result
auth_check(struct auth_x *x, const char *user, const char *pw, size_t len)
{
    int r;

    snprintf(x->user, sizeof(x->user), "%s", user);
    r = modmta_passdb_verify(x->in->db, user, pw, len);
    return r < 0 ? AUTH_TEMP : r == 1 ? AUTH_OK : AUTH_FAIL;
}

static enum auth_result
auth_plain(struct auth_x *x, const char *ir)
{
    struct sasl_plain p;
    enum auth_result res;
    long n = ir != NULL ? auth_initial(x, ir) : auth_round(x, "");
    int r;

    if (n < 0)
        return (enum auth_result)-n;
    r = sasl_plain_parse(x->dec, (size_t)n, &p);
    if (r == MODMTA_E_PERM) {
        snprintf(x->user, sizeof(x->user), "%s", p.authcid);
        return AUTH_FAIL;
    }
    if (r < 0)
        return AUTH_SYNTAX;
    res = auth_check(x, p.authcid, p.passwd, p.passwd_len);
    memset(x->dec, 0, sizeof(x->dec));
    return res;
}

static enum auth_result
auth_login(struct auth_x *x, const char *ir)
{
    enum auth_result res;
    char user[SASL_FIELD_MAX + 1];
    long n;

    /* "VXNlcm5hbWU6" is "Username:", "UGFzc3dvcmQ6" "Password:" */
    n = ir != NULL ? auth_initial(x, ir) : auth_round(x, "VXNlcm5hbWU6");
    if (n < 0)
        return (enum auth_result)-n;
    if (n == 0 || n > SASL_FIELD_MAX || strlen(x->dec) != (size_t)n)
        return AUTH_SYNTAX;
    memcpy(user, x->dec, (size_t)n + 1);
    n = auth_round(x, "UGFzc3dvcmQ6");
    if (n < 0)
        return (enum auth_result)-n;
    if (n == 0 || n > SASL_FIELD_MAX) {
        snprintf(x->user, sizeof(x->user), "%s", user);
        return AUTH_FAIL;
    }
    res = auth_check(x, user, x->dec, (size_t)n);
    memset(x->dec, 0, sizeof(x->dec));
    return res;
}

static enum auth_result
auth_cram(struct auth_x *x, const char *ir)
{
    char chal[128], b64[200], *user, *digest, *secret = NULL;
    unsigned long long rnd;
    long n;
    int r;

    if (ir != NULL)
        return AUTH_SYNTAX; /* RFC 2195: the server speaks first */
    if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
        return AUTH_TEMP;
    snprintf(chal, sizeof(chal), "<%llu.%ld@%s>", rnd, (long)time(NULL),
             modmta_host_hostname(modmta_ctx_host(x->ctx)));
    sasl_b64_encode(chal, strlen(chal), b64, sizeof(b64));
    n = auth_round(x, b64);
    if (n < 0)
        return (enum auth_result)-n;
    if (sasl_cram_parse(x->dec, (size_t)n, &user, &digest) < 0)
        return AUTH_SYNTAX;
    snprintf(x->user, sizeof(x->user), "%s", user);
    r = modmta_passdb_secret(x->in->db, user, &secret);
    if (r < 0)
        return AUTH_TEMP;
    if (r == 0) {
        /* the HMAC an existing user costs: unknown users do not show */
        (void)sasl_cram_check(chal, "modmta-dummy-secret", digest);
        return AUTH_FAIL;
    }
    r = sasl_cram_check(chal, secret, digest);
    modmta_passdb_secret_free(secret);
    return r < 0 ? AUTH_TEMP : r == 1 ? AUTH_OK : AUTH_FAIL;
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
    x = calloc(1, sizeof(*x));
    if (x == NULL)
        return MODMTA_TEMPFAIL;
    x->in = in;
    x->ctx = ctx;
    x->conn = conn;
    if (strcasecmp(mech, "PLAIN") == 0 && (in->mechs & AUTH_PLAIN)) {
        r = auth_plain(x, ir);
    } else if (strcasecmp(mech, "LOGIN") == 0 && (in->mechs & AUTH_LOGIN)) {
        r = auth_login(x, ir);
    } else if (strcasecmp(mech, "CRAM-MD5") == 0 && (in->mechs & AUTH_CRAM)) {
        r = auth_cram(x, ir);
    } else {
        free(x);
        modmta_reply(ctx, 504, "5.5.4", "Unrecognized authentication type");
        return MODMTA_REJECT;
    }
    for (size_t i = 0; mech[i] != '\0'; i++)
        mech[i] = (char)(mech[i] >= 'a' && mech[i] <= 'z' ? mech[i] - 32
                                                           : mech[i]);
    v = auth_finish(x, r, mech);
    memset(x, 0, sizeof(*x));
    free(x);
    return v;
}

static const modmta_verb auth_verbs[] = {
    {"AUTH", auth_verb},
    {NULL, NULL},
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
    .verbs = auth_verbs,
};
