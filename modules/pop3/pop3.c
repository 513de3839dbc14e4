/*
 * pop3: POP3 (RFC 1939, 2449, 2595, 5034) for the mboxes store_mbox
 * writes. A listener with "protocol": "pop3" hands its connections to
 * serve(). See README.md.
 *
 * The mailbox is locked (modmta/mbox.h, as store_mbox locks it) only
 * while it is indexed at login and while deletions are applied at QUIT,
 * so deliveries go on during a session. A session holds its mailbox's
 * lease in the shared state (pop3_lease.c) from login to QUIT or
 * disconnect: a second session on the mailbox, on any node sharing the
 * store, gets [IN-USE]. Failed logins, LOGIN-DELAY and POP-before-SMTP's
 * addresses are in the shared state too (modmta/shared.h): one count
 * for every node, kept across reloads. Key names are in README.md.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "pop3_cmd.h"
#include "pop3_lease.h"
#include "pop3_mbox.h"

#define POP3_LINE_MAX 1024   /* a command (RFC 2449: 255) */
#define POP3_ERRORS_MAX 10   /* bad commands before we hang up */
#define POP3_LEASE_MS 60000      /* a mailbox lease's TTL */
#define POP3_POPB4_DEFAULT 1800  /* "pop_before_smtp": true (DRAC's) */
#define POP3_POPB4_MAX 604800    /* a week */
#define POP3_STALE_LOCK_MAX 31536000 /* a year */
#define POP3_KEY_MAX MODMTA_SHARED_KEY_MAX

struct pop3_conf {
    char *directory;
    char *passdb;
    int allow_plaintext_loopback;
    long long max_failures;
    long long lockout;
    long long timeout;
    long long lock_timeout;
    long long stale_lock;
    long long login_delay;
    json_t *pop_before_smtp;
};

struct pop3_inst {
    struct pop3_conf c;
    const modmta_host *h;
    modmta_passdb *db;
    int secrets;           /* the passdb gives secrets: APOP, CRAM-MD5 */
    modmta_lockout *limit; /* failed logins per client (shared) */
    struct pop3_leases *leases; /* the sessions' mailbox leases */
    long long popb4_s;     /* POP-before-SMTP's TTL; 0: off */
};

enum pop3_state { POP3_AUTHORIZATION, POP3_TRANSACTION, POP3_DONE };

struct pop3_sess {
    struct pop3_inst *in;
    modmta_ctx *ctx;
    modmta_conn *conn;
    enum pop3_state state;
    int errors;
    char user[POP3_ARG_MAX + 1]; /* from USER, or the logged-in user */
    char box[65];                /* mailbox file name */
    char stamp[400];             /* APOP's greeting timestamp, or "" */
    char path[4096];
    int fd;
    struct pop3_lease *lease;    /* the mailbox's, while logged in */
    struct pop3_index ix;
    char line[MODMTA_SASL_LINE_MAX + 1]; /* a command or an AUTH answer */
};

static const modmta_option pop3_opts[] = {
    MODMTA_OPTION_STRING("directory", struct pop3_conf, directory,
                         MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_STRING("passdb", struct pop3_conf, passdb,
                         MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_BOOL("allow_plaintext_loopback", struct pop3_conf,
                       allow_plaintext_loopback, 0),
    MODMTA_OPTION_RANGE("max_failures", struct pop3_conf, max_failures, 0,
                        0, MODMTA_LOCKOUT_FAILURES_MAX),
    MODMTA_OPTION_SECONDS("lockout", struct pop3_conf, lockout, 0, 0,
                          MODMTA_LOCKOUT_SECONDS_MAX),
    /* RFC 1939: the autologout timer is at least 10 minutes. */
    MODMTA_OPTION_SECONDS("timeout", struct pop3_conf, timeout, 0, 600,
                          86400),
    MODMTA_OPTION_SECONDS("lock_timeout", struct pop3_conf, lock_timeout, 0,
                          0, 3600),
    MODMTA_OPTION_SECONDS("stale_lock", struct pop3_conf, stale_lock, 0, 10,
                          POP3_STALE_LOCK_MAX),
    MODMTA_OPTION_SECONDS("login_delay", struct pop3_conf, login_delay, 0, 0,
                          86400),
    MODMTA_OPTION_JSON("pop_before_smtp", struct pop3_conf, pop_before_smtp,
                       0),
    MODMTA_OPTION_END
};

/* ---- configuration ---- */

static void
pop3_destroy(void *p)
{
    struct pop3_inst *in = p;

    if (in == NULL)
        return;
    modmta_passdb_close(in->db);
    modmta_conf_free_options(pop3_opts, &in->c);
    modmta_lockout_free(in->limit);
    pop3_leases_free(in->leases);
    free(in);
}

/* "pop_before_smtp": false or absent (0: off), true (DRAC's 30
 * minutes), seconds or a time with a unit; -1 if none of those. */
static long long
pop3_popb4_conf(const json_t *v)
{
    long long n = -1;

    if (v == NULL || json_is_false(v))
        return 0;
    if (json_is_true(v))
        return POP3_POPB4_DEFAULT;
    if (json_is_integer(v))
        n = json_integer_value(v);
    else if (json_is_string(v) &&
             modmta_parse_duration_ms(json_string_value(v), &n) == 0)
        n = n % 1000 == 0 ? n / 1000 : -1;
    return n >= 1 && n <= POP3_POPB4_MAX ? n : -1;
}

/* What the table cannot say; each error recorded, -1 if any. */
static int
pop3_conf_check(struct pop3_inst *in, const modmta_host *h,
                modmta_err *err_r)
{
    char path[300];
    int rc = 0;

    if (in->c.directory[0] == '\0') {
        snprintf(path, sizeof(path), "%s.directory", modmta_host_path(h));
        rc = modmta_conf_error(h, err_r, path, "must not be empty");
    }
    if ((in->popb4_s = pop3_popb4_conf(in->c.pop_before_smtp)) < 0) {
        snprintf(path, sizeof(path), "%s.pop_before_smtp",
                 modmta_host_path(h));
        rc = modmta_conf_error(h, err_r, path, "expected true, false, or a "
                               "time from 1 to 604800 seconds (\"30m\", "
                               "\"2h\")");
    }
    return rc < 0 ? -1 : 0;
}

static void *
pop3_create(const json_t *conf, const modmta_host *h, modmta_err *err_r)
{
    struct pop3_inst *in = calloc(1, sizeof(*in));
    char path[300];

    if (in == NULL) {
        modmta_err_set(err_r, modmta_host_path(h), "out of memory");
        return NULL;
    }
    in->h = h;
    in->c.allow_plaintext_loopback = 1;
    in->c.max_failures = 5;
    in->c.lockout = 300;
    in->c.timeout = 600;
    in->c.lock_timeout = 30;
    in->c.stale_lock = 300;
    if (modmta_conf_parse_options(conf, h, pop3_opts, &in->c, err_r) < 0 ||
        pop3_conf_check(in, h, err_r) < 0) {
        pop3_destroy(in);
        return NULL;
    }
    snprintf(path, sizeof(path), "%s.passdb", modmta_host_path(h));
    in->db = modmta_passdb_open_host(in->c.passdb, h, path, err_r);
    if (in->db != NULL)
        in->limit = modmta_lockout_new_shared(h, modmta_host_instance(h),
                                              (unsigned)in->c.max_failures,
                                              (unsigned)in->c.lockout,
                                              err_r);
    if (in->limit != NULL &&
        (in->leases = pop3_leases_new(h, POP3_LEASE_MS)) == NULL)
        modmta_err_set(err_r, modmta_host_path(h), "out of memory");
    if (in->leases == NULL) {
        pop3_destroy(in);
        return NULL;
    }
    in->secrets = modmta_passdb_has_secrets(in->db);
    return in;
}

/* ---- shared state: LOGIN-DELAY, POP-before-SMTP ---- */

/* "pop3:INSTANCE:WHAT:BOX" into key. */
static const char *
pop3_key(const struct pop3_sess *s, const char *what, char *key)
{
    snprintf(key, POP3_KEY_MAX, "pop3:%s:%s:%s",
             modmta_host_instance(s->in->h), what, s->box);
    return key;
}

/* RFC 2449 LOGIN-DELAY: 0 when the login to s->box may go on, 1 when
 * the last login to it was less than login_delay seconds ago, <0 when
 * the shared state cannot say. It only looks: a login starts the
 * window once it has succeeded (pop3_login_delay_start), so a right
 * password refused for another reason ([IN-USE], [SYS/TEMP]) does not. */
static int
pop3_login_early(struct pop3_sess *s)
{
    char key[POP3_KEY_MAX];

    if (s->in->c.login_delay == 0)
        return 0;
    return modmta_shared_get(modmta_host_shared(s->in->h),
                             pop3_key(s, "delay", key), NULL);
}

/* A login succeeded: the window of s->box starts, login_delay seconds
 * (the key's TTL). 0, or <0 when it cannot be recorded. */
static int
pop3_login_delay_start(struct pop3_sess *s)
{
    char key[POP3_KEY_MAX];

    if (s->in->c.login_delay == 0)
        return 0;
    return modmta_shared_set(modmta_host_shared(s->in->h),
                             pop3_key(s, "delay", key), "1",
                             (long)s->in->c.login_delay * 1000);
}

/* POP-before-SMTP: open relaying from the client's address for popb4_s
 * seconds (relay_access's "pop_before_smtp"; the key is the contract,
 * README.md). name: the user, safe to log. */
static void
pop3_popb4_record(struct pop3_sess *s, const char *name)
{
    const char *addr = modmta_client_addr(s->ctx);
    char text[INET6_ADDRSTRLEN], key[POP3_KEY_MAX];
    struct in6_addr a6;
    struct in_addr a4;
    int r;

    if (s->in->popb4_s == 0)
        return;
    /* as inet_ntop writes it, an IPv4-mapped address as IPv4 */
    if (inet_pton(AF_INET6, addr, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6))
            inet_ntop(AF_INET, &a6.s6_addr[12], text, sizeof(text));
        else
            inet_ntop(AF_INET6, &a6, text, sizeof(text));
    } else if (inet_pton(AF_INET, addr, &a4) == 1) {
        inet_ntop(AF_INET, &a4, text, sizeof(text));
    } else {
        return; /* "local": no address to open */
    }
    snprintf(key, sizeof(key), "popb4smtp:%s", text);
    r = modmta_shared_set(modmta_host_shared(s->in->h), key, name,
                          (long)s->in->popb4_s * 1000);
    if (r < 0)
        modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 pop-before-smtp "
                   "client=[%s] error=\"%s\"", addr, modmta_strerror(r));
}

/* ---- output ---- */

static void pop3_say(struct pop3_sess *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
pop3_say(struct pop3_sess *s, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    modmta_conn_printf(s->conn, "%s\r\n", buf);
}

static int
pop3_put(const char *buf, size_t len, void *arg)
{
    return modmta_conn_write(arg, buf, len);
}

static int
pop3_loopback(const modmta_ctx *ctx)
{
    const char *a = modmta_client_addr(ctx);

    return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
           strncmp(a, "::ffff:127.", 11) == 0;
}

/* The context's TLS flag is the core's (implicit TLS); STLS is ours. */
static int
pop3_tls(const struct pop3_sess *s)
{
    return modmta_is_tls(s->ctx) || modmta_conn_is_tls(s->conn);
}

/* Plaintext passwords (USER/PASS, AUTH) allowed on this connection? */
static int
pop3_login_allowed(const struct pop3_sess *s)
{
    return pop3_tls(s) ||
           (s->in->c.allow_plaintext_loopback && pop3_loopback(s->ctx));
}

/* A name safe to log. */
static void
pop3_log_name(const char *in, char *out, size_t cap)
{
    size_t i;

    for (i = 0; in[i] != '\0' && i + 1 < cap && i < 64; i++)
        out[i] = in[i] > ' ' && in[i] < 0x7f && in[i] != '"' ? in[i] : '?';
    out[i] = '\0';
}

static void
pop3_capa(struct pop3_sess *s)
{
    int auth = s->state == POP3_AUTHORIZATION;

    pop3_say(s, "+OK Capability list follows");
    pop3_say(s, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
                "PIPELINING\r\nIMPLEMENTATION modmta");
    if (auth && pop3_login_allowed(s))
        pop3_say(s, "USER\r\nSASL PLAIN LOGIN%s",
                 s->in->secrets ? " CRAM-MD5" : "");
    else if (auth && s->in->secrets)
        pop3_say(s, "SASL CRAM-MD5");
    if (s->in->c.login_delay > 0)
        pop3_say(s, "LOGIN-DELAY %lld", s->in->c.login_delay);
    if (auth && !pop3_tls(s) &&
        modmta_conn_tls_available(s->conn))
        pop3_say(s, "STLS");
    pop3_say(s, ".");
}

/* ---- logging in ---- */

/* Take the lease of s->box for this session ("HOSTNAME/SESSION-ID");
 * replies when it cannot. */
static int
pop3_maildrop_lease(struct pop3_sess *s)
{
    char key[POP3_KEY_MAX], owner[POP3_KEY_MAX];
    int r;

    snprintf(owner, sizeof(owner), "%s/%s", modmta_host_hostname(s->in->h),
             modmta_session_id(s->ctx));
    r = pop3_lease_take(s->in->leases, pop3_key(s, "lease", key), owner,
                        &s->lease);
    if (r == 1)
        return 0;
    if (r == 0) {
        pop3_say(s, "-ERR [IN-USE] Mailbox already in use");
        return -1;
    }
    modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 lease key=%s error=\"%s\"",
               key, modmta_strerror(r));
    pop3_say(s, "-ERR [SYS/TEMP] Cannot open mailbox");
    return -1;
}

/* Give the mailbox up: its descriptor and its lease. */
static void
pop3_maildrop_close(struct pop3_sess *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    pop3_lease_drop(s->in->leases, s->lease);
    s->lease = NULL;
}

/* Open and index the mailbox of s->user; replies on failure. */
static int
pop3_maildrop(struct pop3_sess *s)
{
    struct pop3_inst *in = s->in;
    off_t cut;
    int rc;

    snprintf(s->path, sizeof(s->path), "%s/%s", in->c.directory, s->box);
    if (pop3_maildrop_lease(s) < 0)
        return -1;
    rc = pop3_mbox_load(s->path, (int)in->c.lock_timeout * 1000,
                        (int)in->c.stale_lock, &s->fd, &s->ix, &cut);
    if (rc == 0 && cut > 0)
        modmta_log(s->ctx, MODMTA_LOG_NOTICE, "pop3 repair mailbox=%s "
                   "reason=\"interrupted delivery: %lld octets cut\"",
                   s->path, (long long)cut);
    if (rc == 0)
        return 0;
    modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 mailbox=%s error=%s", s->path,
               modmta_strerror(rc));
    pop3_maildrop_close(s);
    if (rc == MODMTA_E_TIMEOUT)
        pop3_say(s, "-ERR [IN-USE] Mailbox locked, try again later");
    else
        pop3_say(s, "-ERR [SYS/TEMP] Cannot open mailbox");
    return -1;
}

/* The client is locked out (failed logins): say so and hang up. */
static void
pop3_locked_out(struct pop3_sess *s)
{
    pop3_say(s, "-ERR [SYS/TEMP] Too many failed logins, try later");
    s->state = POP3_DONE;
}

/* The limiter cannot say whether the client is locked (the shared state
 * is unreachable): refuse for now. */
static void
pop3_login_unknown(struct pop3_sess *s, int r)
{
    modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 login refused client=[%s] "
               "reason=lockout-unknown error=\"%s\"",
               modmta_client_addr(s->ctx), modmta_strerror(r));
    pop3_say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
}

/* Is the client free to log in (not locked out)? 0, or -1 (replied:
 * locked, or the limiter cannot say). */
static int
pop3_login_open(struct pop3_sess *s)
{
    int r = modmta_lockout_check(s->in->limit, modmta_client_addr(s->ctx));

    if (r == MODMTA_LOCKOUT_OPEN)
        return 0;
    if (r == MODMTA_LOCKOUT_LOCKED)
        pop3_locked_out(s);
    else
        pop3_login_unknown(s, r);
    return -1;
}

/* Count a failed login (name: the user, safe to log); answer it. */
static void
pop3_login_failed(struct pop3_sess *s, const char *name, const char *mech)
{
    const char *addr = modmta_client_addr(s->ctx);
    char why[64] = "";
    int r = modmta_lockout_fail(s->in->limit, addr, NULL);
    int locked = r == MODMTA_LOCKOUT_HIT || r == MODMTA_LOCKOUT_LOCKED;

    if (locked)
        snprintf(why, sizeof(why), " locked=yes");
    else if (r < 0)
        snprintf(why, sizeof(why), " error=\"%s\"", modmta_strerror(r));
    else if (r != MODMTA_LOCKOUT_COUNTED)
        snprintf(why, sizeof(why), " table=full");
    modmta_log(s->ctx, MODMTA_LOG_NOTICE, "pop3 login failed client=[%s] "
               "user=\"%s\" mech=%s%s", addr, name, mech, why);
    if (locked || r == MODMTA_LOCKOUT_COUNTED)
        pop3_say(s, "-ERR [AUTH] Invalid credentials");
    else /* not counted: refused until it can be */
        pop3_say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
    if (locked)
        s->state = POP3_DONE;
}

/* After right credentials, the refusals still due: a lock that parallel
 * sessions got meanwhile (a right guess then must not show either; nor
 * when that cannot be known), RFC 2449 LOGIN-DELAY. 0 when the login
 * may go on, -1 when refused (replied). */
static int
pop3_login_recheck(struct pop3_sess *s, const char *name, const char *mech)
{
    const char *addr = modmta_client_addr(s->ctx);
    int r;

    if (pop3_login_open(s) < 0)
        return -1;
    if ((r = pop3_login_early(s)) < 0) {
        modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 login-delay client=[%s] "
                   "error=\"%s\"", addr, modmta_strerror(r));
        pop3_say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
        return -1;
    }
    if (r == 1) {
        modmta_log(s->ctx, MODMTA_LOG_NOTICE, "pop3 login too soon "
                   "client=[%s] user=\"%s\" mech=%s", addr, name, mech);
        pop3_say(s, "-ERR [LOGIN-DELAY] Logged in less than %lld seconds "
                 "ago", s->in->c.login_delay);
        return -1;
    }
    return 0;
}

/* Finish a login whose credentials checked out as r (1 right, 0 wrong,
 * <0 passdb trouble); s->box holds the mailbox name when r is 1. */
static void
pop3_login_done(struct pop3_sess *s, const char *user, int r,
                const char *mech)
{
    char name[80];

    pop3_log_name(user, name, sizeof(name));
    if (r < 0) {
        modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 tempfail passdb=%s",
                   modmta_passdb_name(s->in->db));
        pop3_say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
        return;
    }
    if (r != 1) {
        pop3_login_failed(s, name, mech);
        return;
    }
    if (pop3_login_recheck(s, name, mech) < 0)
        return;
    snprintf(s->user, sizeof(s->user), "%s", user);
    if (pop3_maildrop(s) < 0) {
        s->state = POP3_DONE;
        return;
    }
    if ((r = pop3_login_delay_start(s)) < 0) {
        modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 login-delay client=[%s] "
                   "error=\"%s\"", modmta_client_addr(s->ctx),
                   modmta_strerror(r));
        pop3_maildrop_close(s);
        pop3_say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
        s->state = POP3_DONE;
        return;
    }
    modmta_log(s->ctx, MODMTA_LOG_INFO, "pop3 login client=[%s] user=\"%s\" "
               "mech=%s messages=%zu", modmta_client_addr(s->ctx), name, mech,
               s->ix.n);
    pop3_popb4_record(s, name);
    s->state = POP3_TRANSACTION;
    pop3_say(s, "+OK Logged in, %zu messages", s->ix.n);
}

static void
pop3_login(struct pop3_sess *s, const char *user, const char *pw,
           size_t len, const char *mech)
{
    int r = 0;

    if (pop3_cmd_mailbox_name(user, s->box) == 0)
        r = modmta_passdb_verify(s->in->db, user, pw, len);
    pop3_login_done(s, user, r, mech);
}

/* APOP: check digest over the greeting's stamp with user's secret. An
 * unknown user costs the same digest, against a dummy secret. */
static void
pop3_login_apop(struct pop3_sess *s, const char *user, const char *digest)
{
    char *secret = NULL;
    int r = 0;

    if (pop3_cmd_mailbox_name(user, s->box) == 0)
        r = modmta_passdb_secret(s->in->db, user, &secret);
    if (r == 1) {
        r = pop3_cmd_apop_check(s->stamp, secret, digest);
        modmta_passdb_secret_free(secret);
    } else if (r == 0) {
        (void)pop3_cmd_apop_check(s->stamp, "modmta-dummy-secret", digest);
    }
    pop3_login_done(s, user, r, "APOP");
}

/* Refusals before a password is looked at; 0 when it may go on.
 * plaintext: the password itself would cross the wire. */
static int
pop3_login_precheck(struct pop3_sess *s, int plaintext)
{
    if (plaintext && !pop3_login_allowed(s)) {
        pop3_say(s, "-ERR Plaintext authentication disallowed, use STLS");
        return -1;
    }
    return pop3_login_open(s);
}

/* One SASL round: "+ challenge", then the client's answer into s->line.
 * Its length, or a negative MODMTA_E_* (MODMTA_E_IO, MODMTA_E_TIMEOUT:
 * the client is gone, the session ends). */
static ssize_t
pop3_sasl_round(struct pop3_sess *s, const char *b64)
{
    ssize_t n;

    pop3_say(s, "+ %s", b64);
    if (modmta_conn_flush(s->conn) < 0)
        return MODMTA_E_IO;
    n = modmta_conn_readline(s->conn, s->line, sizeof(s->line),
                             (int)s->in->c.timeout * 1000);
    if (n == MODMTA_E_IO || n == MODMTA_E_TIMEOUT)
        s->state = POP3_DONE;
    return n;
}

/* The end of a SASL exchange that did not reach the passdb. */
static void
pop3_sasl_refused(struct pop3_sess *s, int r, const char *mech)
{
    switch (r) {
    case MODMTA_SASL_CANCEL:
        pop3_say(s, "-ERR Authentication cancelled");
        break;
    case MODMTA_SASL_BAD64:
        pop3_say(s, "-ERR Invalid base64 data");
        break;
    case MODMTA_SASL_MALFORMED:
        pop3_say(s, "-ERR Malformed %s authentication data", mech);
        break;
    case MODMTA_SASL_AUTHZ:
        pop3_say(s, "-ERR [AUTH] Authorization identity refused");
        break;
    default:
        pop3_say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
        break;
    }
}

/* AUTH mech (ir: the initial response or NULL), libmodmta's exchange
 * with POP3's framing (RFC 5034), then the login. */
static void
pop3_sasl(struct pop3_sess *s, unsigned mech, const char *ir)
{
    const char *host = modmta_host_hostname(modmta_ctx_host(s->ctx));
    const char *name = modmta_sasl_mech_name(mech);
    modmta_sasl *x = modmta_sasl_new(mech, host);
    int r = x != NULL ? modmta_sasl_start(x, ir) : MODMTA_E_NOMEM;
    ssize_t n = 0;

    while (r == MODMTA_SASL_NEXT
           && (n = pop3_sasl_round(s, modmta_sasl_challenge(x))) >= 0)
        r = modmta_sasl_step(x, s->line, (size_t)n);
    if (n < 0 && s->state != POP3_DONE)
        r = MODMTA_SASL_BAD64; /* too long, or a bare CR or LF */
    if (r == MODMTA_SASL_DONE) {
        r = 0;
        if (pop3_cmd_mailbox_name(modmta_sasl_user(x), s->box) == 0)
            r = modmta_sasl_verify(x, s->in->db);
        pop3_login_done(s, modmta_sasl_user(x), r, name);
    } else if (s->state != POP3_DONE) {
        pop3_sasl_refused(s, r, name);
    }
    modmta_sasl_free(x);
    memset(s->line, 0, sizeof(s->line));
}

static void
pop3_auth(struct pop3_sess *s, const struct pop3_cmd *c)
{
    const char *ir = c->nargs == 2 ? c->arg[1] : NULL;
    unsigned mech = c->nargs > 0 ? modmta_sasl_mech(c->arg[0]) : 0;

    if (c->nargs == 0) {
        pop3_say(s, "+OK\r\nPLAIN\r\nLOGIN%s\r\n.",
                 s->in->secrets ? "\r\nCRAM-MD5" : "");
        return;
    }
    if (mech == 0 || (mech == MODMTA_SASL_CRAM_MD5 && !s->in->secrets)) {
        pop3_say(s, "-ERR Unsupported authentication mechanism");
        return;
    }
    /* CRAM-MD5 alone keeps the password off the wire */
    if (pop3_login_precheck(s, mech != MODMTA_SASL_CRAM_MD5) == 0)
        pop3_sasl(s, mech, ir);
}

/* APOP (RFC 1939 section 7): only when the greeting had a timestamp.
 * The password never crosses the wire, so TLS is not required. */
static void
pop3_apop(struct pop3_sess *s, const struct pop3_cmd *c)
{
    if (s->stamp[0] == '\0') {
        pop3_say(s, "-ERR APOP not supported");
        return;
    }
    if (c->nargs != 2) {
        pop3_say(s, "-ERR Syntax: APOP name digest");
        return;
    }
    if (pop3_login_precheck(s, 0) == 0)
        pop3_login_apop(s, c->arg[0], c->arg[1]);
}

static void
pop3_stls(struct pop3_sess *s)
{
    if (pop3_tls(s) || !modmta_conn_tls_available(s->conn)) {
        pop3_say(s, "-ERR STLS not available");
        return;
    }
    pop3_say(s, "+OK Begin TLS negotiation");
    if (modmta_conn_flush(s->conn) < 0 ||
        modmta_conn_starttls(s->conn, (int)s->in->c.timeout * 1000) < 0) {
        modmta_log(s->ctx, MODMTA_LOG_NOTICE, "pop3 STLS failed client=[%s]",
                   modmta_client_addr(s->ctx));
        s->state = POP3_DONE;
        return;
    }
    s->user[0] = '\0';
}

static void
pop3_authorization(struct pop3_sess *s, const struct pop3_cmd *c)
{
    switch (c->verb) {
    case POP3_CAPA:
        pop3_capa(s);
        break;
    case POP3_QUIT:
        pop3_say(s, "+OK Bye");
        s->state = POP3_DONE;
        break;
    case POP3_STLS:
        pop3_stls(s);
        break;
    case POP3_AUTH:
        pop3_auth(s, c);
        break;
    case POP3_APOP:
        pop3_apop(s, c);
        break;
    case POP3_USER:
        if (c->nargs != 1) {
            pop3_say(s, "-ERR Syntax: USER name");
        } else if (pop3_login_precheck(s, 1) == 0) {
            snprintf(s->user, sizeof(s->user), "%s", c->arg[0]);
            pop3_say(s, "+OK Send PASS");
        }
        break;
    case POP3_PASS:
        if (s->user[0] == '\0' || c->nargs != 1)
            pop3_say(s, "-ERR Send USER first");
        else if (pop3_login_precheck(s, 1) == 0)
            pop3_login(s, s->user, c->arg[0], strlen(c->arg[0]), "USER");
        if (s->state == POP3_AUTHORIZATION)
            s->user[0] = '\0';
        break;
    default:
        pop3_say(s, "-ERR Not in this state: log in first");
        s->errors++;
        break;
    }
}

/* ---- the transaction ---- */

/* Message number argument i of c, not deleted; NULL (replied) if bad. */
static struct pop3_msg *
pop3_msg_arg(struct pop3_sess *s, const struct pop3_cmd *c, int i)
{
    unsigned long n = c->nargs > i ? pop3_cmd_num(c->arg[i]) : 0;

    if (n == 0 || n > s->ix.n) {
        pop3_say(s, "-ERR No such message");
        return NULL;
    }
    if (s->ix.msgs[n - 1].deleted) {
        pop3_say(s, "-ERR Message %lu already deleted", n);
        return NULL;
    }
    return &s->ix.msgs[n - 1];
}

static void
pop3_stat(struct pop3_sess *s)
{
    unsigned long long octets = 0;
    size_t i, n = 0;

    for (i = 0; i < s->ix.n; i++)
        if (!s->ix.msgs[i].deleted) {
            n++;
            octets += s->ix.msgs[i].size;
        }
    pop3_say(s, "+OK %zu %llu", n, octets);
}

/* LIST and UIDL: one message, or all of them. */
static void
pop3_list(struct pop3_sess *s, const struct pop3_cmd *c, int uidl)
{
    struct pop3_msg *m;
    size_t i;

    if (c->nargs > 1) {
        pop3_say(s, "-ERR Syntax: %s [msg]", uidl ? "UIDL" : "LIST");
        return;
    }
    if (c->nargs == 1) {
        if ((m = pop3_msg_arg(s, c, 0)) == NULL)
            return;
        if (uidl)
            pop3_say(s, "+OK %zu %s", (size_t)(m - s->ix.msgs) + 1, m->uid);
        else
            pop3_say(s, "+OK %zu %llu", (size_t)(m - s->ix.msgs) + 1,
                     (unsigned long long)m->size);
        return;
    }
    pop3_say(s, "+OK");
    for (i = 0; i < s->ix.n; i++) {
        m = &s->ix.msgs[i];
        if (m->deleted)
            continue;
        if (uidl)
            pop3_say(s, "%zu %s", i + 1, m->uid);
        else
            pop3_say(s, "%zu %llu", i + 1, (unsigned long long)m->size);
    }
    pop3_say(s, ".");
}

static void
pop3_retr(struct pop3_sess *s, const struct pop3_cmd *c, int top)
{
    struct pop3_msg *m;
    long lines = -1;

    if (c->nargs != (top ? 2 : 1)) {
        pop3_say(s, top ? "-ERR Syntax: TOP msg n" : "-ERR Syntax: RETR msg");
        return;
    }
    if (top && (lines = pop3_cmd_lines(c->arg[1])) < 0) {
        pop3_say(s, "-ERR Bad line count");
        return;
    }
    if ((m = pop3_msg_arg(s, c, 0)) == NULL)
        return;
    pop3_say(s, "+OK %llu octets", (unsigned long long)m->size);
    if (pop3_mbox_send(s->fd, m, lines, pop3_put, s->conn) < 0) {
        /* the client cannot tell a cut message from a whole one */
        modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 read failed mailbox=%s",
                   s->path);
        s->state = POP3_DONE;
    }
}

/* Another session has the mailbox (this one's lease expired while the
 * store was out of reach, and was taken): the index may be stale and
 * deletions must not be applied. The session ends. */
static void
pop3_lease_lost(struct pop3_sess *s)
{
    modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 lease lost mailbox=%s",
               s->path);
    pop3_say(s, "-ERR [IN-USE] Mailbox taken by another session, "
             "nothing deleted");
    s->state = POP3_DONE;
}

/* Deletions are applied only under a lease renewed now: the renewer's
 * word may be a third of the TTL old, and another session may have the
 * mailbox since. 1 when they may be, else 0 (replied, the session
 * ends). */
static int
pop3_quit_confirmed(struct pop3_sess *s)
{
    int r = pop3_lease_confirm(s->in->leases, s->lease);

    if (r == 1)
        return 1;
    if (r == 0) {
        pop3_lease_lost(s);
        return 0;
    }
    modmta_log(s->ctx, MODMTA_LOG_WARN, "pop3 quit mailbox=%s deleted=0 "
               "error=\"lease: %s\"", s->path, modmta_strerror(r));
    pop3_say(s, "-ERR [SYS/TEMP] Mailbox lease unconfirmed, nothing "
             "deleted");
    s->state = POP3_DONE;
    return 0;
}

static void
pop3_quit(struct pop3_sess *s)
{
    size_t i, del = 0;
    int rc;

    for (i = 0; i < s->ix.n; i++)
        del += s->ix.msgs[i].deleted != 0;
    if (del > 0 && !pop3_quit_confirmed(s))
        return;
    rc = pop3_mbox_expunge(s->path, &s->ix, (int)s->in->c.lock_timeout * 1000,
                           (int)s->in->c.stale_lock);
    modmta_log(s->ctx, MODMTA_LOG_INFO, "pop3 quit mailbox=%s deleted=%zu%s%s",
               s->path, rc == 0 ? del : 0, rc < 0 ? " error=" : "",
               rc < 0 ? modmta_strerror(rc) : "");
    /* before the reply is flushed: the client may log in again at once */
    pop3_lease_drop(s->in->leases, s->lease);
    s->lease = NULL;
    if (rc < 0)
        pop3_say(s, "-ERR [SYS/TEMP] Deleted messages not removed");
    else
        pop3_say(s, "+OK Bye, %zu messages deleted", del);
    s->state = POP3_DONE;
}

static void
pop3_transaction(struct pop3_sess *s, const struct pop3_cmd *c)
{
    struct pop3_msg *m;
    size_t i;

    if (!pop3_lease_held(s->in->leases, s->lease)) {
        pop3_lease_lost(s);
        return;
    }
    switch (c->verb) {
    case POP3_STAT:
        pop3_stat(s);
        break;
    case POP3_LIST:
    case POP3_UIDL:
        pop3_list(s, c, c->verb == POP3_UIDL);
        break;
    case POP3_RETR:
    case POP3_TOP:
        pop3_retr(s, c, c->verb == POP3_TOP);
        break;
    case POP3_DELE:
        if ((m = pop3_msg_arg(s, c, 0)) != NULL) {
            m->deleted = 1;
            pop3_say(s, "+OK Marked for deletion");
        }
        break;
    case POP3_RSET:
        for (i = 0; i < s->ix.n; i++)
            s->ix.msgs[i].deleted = 0;
        pop3_say(s, "+OK %zu messages", s->ix.n);
        break;
    case POP3_NOOP:
        pop3_say(s, "+OK");
        break;
    case POP3_CAPA:
        pop3_capa(s);
        break;
    case POP3_QUIT:
        pop3_quit(s);
        break;
    default:
        pop3_say(s, "-ERR Not in this state");
        s->errors++;
        break;
    }
}

/* ---- the loop ---- */

static void
pop3_command(struct pop3_sess *s, ssize_t n)
{
    struct pop3_cmd c;
    int rc;

    if (n == MODMTA_E_LIMIT) {
        pop3_say(s, "-ERR Line too long");
        s->errors++;
        return;
    }
    if (n == MODMTA_E_INVAL) {
        pop3_say(s, "-ERR Bare CR or LF in command");
        s->errors++;
        return;
    }
    rc = pop3_cmd_parse(s->line, (size_t)n, &c);
    if (rc < 0 || c.verb == POP3_UNKNOWN) {
        pop3_say(s, rc == MODMTA_E_LIMIT ? "-ERR Argument too long"
                    : rc < 0 ? "-ERR Syntax error" : "-ERR Unknown command");
        s->errors++;
        return;
    }
    if (s->state == POP3_AUTHORIZATION)
        pop3_authorization(s, &c);
    else
        pop3_transaction(s, &c);
    memset(&c, 0, sizeof(c)); /* may hold a password */
}

static void
pop3_loop(struct pop3_sess *s)
{
    ssize_t n;

    while (s->state != POP3_DONE) {
        if (modmta_conn_pending(s->conn) == 0 &&
            modmta_conn_flush(s->conn) < 0)
            return;
        n = modmta_conn_readline(s->conn, s->line, POP3_LINE_MAX,
                                 (int)s->in->c.timeout * 1000);
        if (n == MODMTA_E_TIMEOUT) {
            pop3_say(s, "-ERR Autologout; idle for too long");
            break;
        }
        if (n < 0 && n != MODMTA_E_LIMIT && n != MODMTA_E_INVAL)
            return; /* dropped: nothing is deleted */
        pop3_command(s, n);
        if (s->errors >= POP3_ERRORS_MAX) {
            pop3_say(s, "-ERR Too many errors");
            break;
        }
    }
    modmta_conn_flush(s->conn);
}

static void
pop3_serve(void *inst, modmta_ctx *ctx, modmta_conn *conn)
{
    struct pop3_sess *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return;
    s->in = inst;
    s->ctx = ctx;
    s->conn = conn;
    s->fd = -1;
    if (s->in->secrets
        && modmta_sasl_stamp(modmta_host_hostname(modmta_ctx_host(ctx)),
                             s->stamp, sizeof(s->stamp)) < 0)
        s->stamp[0] = '\0';
    pop3_say(s, "+OK %s POP3 ready%s%s",
             modmta_host_hostname(modmta_ctx_host(ctx)),
             s->stamp[0] != '\0' ? " " : "", s->stamp);
    pop3_loop(s);
    pop3_maildrop_close(s);
    pop3_mbox_index_free(&s->ix);
    memset(s, 0, sizeof(*s));
    free(s);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "pop3",
    .version = "1.0.0",
    .create = pop3_create,
    .destroy = pop3_destroy,
    .serve = pop3_serve,
};
