/*
 * The session: connect, greeting, EHLO/HELO or LHLO and the extensions,
 * STARTTLS, AUTH, RSET, QUIT. Transactions are in smtpc_txn.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "smtpc_priv.h"

static smtpc_session *smtpc_new(const struct smtpc_opts *o,
                                const char *name, const char *addr,
                                int port);
static void smtpc_connect_why(modmta_err *err, const char *name,
                              const char *addr, int port);
static smtpc_session *smtpc_start(smtpc_session *s, modmta_conn *conn,
                                  const modmta_err *err,
                                  const struct smtpc_opts *o,
                                  struct smtpc_reply *r);
static smtpc_rc smtpc_hello(smtpc_session *s, struct smtpc_reply *r);
static void smtpc_ehlo_word(struct smtpc_ehlo *e, const char *kw,
                            size_t kwlen, const char *args);
static char *smtpc_b64(const char *const *parts, size_t n);
static smtpc_rc smtpc_auth_step(smtpc_session *s, const char *prefix,
                                char *resp, int more, struct smtpc_reply *r);

long long
smtpc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
smtpc_timeouts_default(struct smtpc_timeouts *t)
{
    t->connect_ms = 30 * 1000;
    t->greeting_ms = 300 * 1000;
    t->helo_ms = 300 * 1000;
    t->starttls_ms = 300 * 1000;
    t->auth_ms = 300 * 1000;
    t->mail_ms = 300 * 1000;
    t->rcpt_ms = 300 * 1000;
    t->data_ms = 120 * 1000;
    t->data_block_ms = 180 * 1000;
    t->data_end_ms = 600 * 1000;
    t->rset_ms = 20 * 1000;
}

/* ---- EHLO keywords ---- */

static void
smtpc_ehlo_word(struct smtpc_ehlo *e, const char *kw, size_t kwlen,
                const char *args)
{
    static const struct {
        const char *kw;
        unsigned bit;
    } words[] = {
        {"PIPELINING", SMTPC_EXT_PIPELINING},
        {"SIZE", SMTPC_EXT_SIZE},
        {"8BITMIME", SMTPC_EXT_8BITMIME},
        {"SMTPUTF8", SMTPC_EXT_SMTPUTF8},
        {"DSN", SMTPC_EXT_DSN},
        {"STARTTLS", SMTPC_EXT_STARTTLS},
        {"AUTH", SMTPC_EXT_AUTH},
        {"ENHANCEDSTATUSCODES", SMTPC_EXT_ENHANCEDSTATUSCODES},
    };
    unsigned long long v;
    size_t i, n;
    char *end;

    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i].kw) == kwlen
            && strncasecmp(kw, words[i].kw, kwlen) == 0)
            break;
    if (i == sizeof(words) / sizeof(words[0]))
        return;
    e->ext |= words[i].bit;
    if (words[i].bit == SMTPC_EXT_SIZE && isdigit((unsigned char)*args)) {
        v = strtoull(args, &end, 10);
        /* unparsable or absurd: no limit, as if SIZE had no value */
        e->size_max = (*end == '\0' || *end == ' ') && v < (1ULL << 62)
                          ? v : 0;
    }
    while (words[i].bit == SMTPC_EXT_AUTH && *args != '\0') {
        n = strcspn(args, " ");
        if (n == 5 && strncasecmp(args, "PLAIN", 5) == 0)
            e->auth |= SMTPC_AUTH_PLAIN;
        else if (n == 5 && strncasecmp(args, "LOGIN", 5) == 0)
            e->auth |= SMTPC_AUTH_LOGIN;
        args += n;
        args += strspn(args, " ");
    }
}

void
smtpc_ehlo_parse(struct smtpc_ehlo *e, const char *text)
{
    const char *line = strchr(text, '\n'), *kw;
    char buf[SMTPC_LINE_MAX + 1];
    size_t n, kwlen;

    memset(e, 0, sizeof(*e));
    while (line != NULL) {
        line++;
        n = strcspn(line, "\n");
        if (n > SMTPC_LINE_MAX)
            n = SMTPC_LINE_MAX;
        memcpy(buf, line, n);
        buf[n] = '\0';
        kw = buf + strspn(buf, " ");
        /* "AUTH=PLAIN LOGIN": the form before RFC 2554 was final */
        kwlen = strcspn(kw, " =");
        smtpc_ehlo_word(e, kw, kwlen,
                        kw + kwlen + strspn(kw + kwlen, " ="));
        line = strchr(line, '\n');
    }
}

/* ---- commands ---- */

int
smtpc_send(smtpc_session *s, const char *line, const char *stage,
           int timeout_ms, struct smtpc_reply *r)
{
    int rc;

    modmta_conn_set_timeout(s->conn, timeout_ms);
    if ((rc = modmta_conn_printf(s->conn, "%s\r\n", line)) < 0
        || (rc = modmta_conn_flush(s->conn)) < 0)
        return smtpc_reply_lost(s, rc, stage, NULL, r);
    return 0;
}

int
smtpc_command(smtpc_session *s, const char *line, const char *stage,
              int timeout_ms, struct smtpc_reply *r)
{
    int rc = smtpc_send(s, line, stage, timeout_ms, r);

    return rc != 0 ? rc : smtpc_reply_read(s, stage, timeout_ms, r);
}

/* EHLO (LHLO), HELO after an EHLO 5xx (SMTP). The extensions are
 * forgotten first: after STARTTLS only the new list counts. */
static smtpc_rc
smtpc_hello(smtpc_session *s, struct smtpc_reply *r)
{
    const char *verb = s->role == SMTPC_LMTP ? "LHLO" : "EHLO";
    char line[SMTPC_CMD_MAX];

    memset(&s->ehlo, 0, sizeof(s->ehlo));
    snprintf(line, sizeof(line), "%s %s", verb, s->helo);
    if (smtpc_command(s, line, verb, s->to.helo_ms, r) != 0)
        return SMTPC_FAILED;
    if (r->code / 100 == 2) {
        smtpc_ehlo_parse(&s->ehlo, r->text);
        return SMTPC_OK;
    }
    if (r->code / 100 != 5 || s->role == SMTPC_LMTP)
        return SMTPC_REFUSED;
    smtpc_reply_clear(r);
    snprintf(line, sizeof(line), "HELO %s", s->helo);
    if (smtpc_command(s, line, "HELO", s->to.helo_ms, r) != 0)
        return SMTPC_FAILED;
    return r->code / 100 == 2 ? SMTPC_OK : SMTPC_REFUSED;
}

/* ---- sessions ---- */

static smtpc_session *
smtpc_new(const struct smtpc_opts *o, const char *name, const char *addr,
          int port)
{
    smtpc_session *s = calloc(1, sizeof(*s));
    int n;

    if (s == NULL)
        return NULL;
    s->role = o->role;
    s->to = o->timeouts;
    s->port = port;
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    s->helo = strdup(o->helo != NULL ? o->helo : "localhost");
    s->name = strdup(name);
    n = *addr != '\0' ? asprintf(&s->peer, "%s[%s]", name, addr)
                      : asprintf(&s->peer, "%s", name);
    if (n < 0)
        s->peer = NULL;
    if (s->helo == NULL || s->name == NULL || s->peer == NULL) {
        smtpc_close(s);
        return NULL;
    }
    return s;
}

/* The connection is made (or not: conn NULL, err says why): greeting and
 * hello. */
static smtpc_session *
smtpc_start(smtpc_session *s, modmta_conn *conn, const modmta_err *err,
            const struct smtpc_opts *o, struct smtpc_reply *r)
{
    memset(r, 0, sizeof(*r));
    if (s == NULL || conn == NULL) {
        if (s == NULL)
            smtpc_reply_local(r, NULL, "4.3.0", "out of memory");
        else
            smtpc_reply_local(r, NULL, "4.4.1", "%s", err->msg);
        modmta_conn_close(conn);
        smtpc_close(s);
        return NULL;
    }
    s->conn = conn;
    s->opened_ms = smtpc_now_ms();
    if (o->cache != NULL)
        smtpc_cache_count_open(o->cache);
    /* A refused greeting (or EHLO) is answered with QUIT (RFC 5321
     * section 3.1) by smtpc_close(), unless the server is gone. */
    if (smtpc_reply_read(s, "greeting", s->to.greeting_ms, r) != 0
        || r->code / 100 != 2)
        goto fail;
    smtpc_reply_clear(r);
    if (smtpc_hello(s, r) != SMTPC_OK)
        goto fail;
    smtpc_reply_clear(r);
    return s;
fail:
    smtpc_close(s);
    return NULL;
}

/* A failed connect as Postfix reports it, with the server's name:
 * "connect to mx1.remote.test[192.0.2.1]:25: Connection refused" (the
 * SDK's message names the address only). */
static void
smtpc_connect_why(modmta_err *err, const char *name, const char *addr,
                  int port)
{
    const char *why = strstr(err->msg, ": ");
    char msg[sizeof(err->msg)];

    snprintf(msg, sizeof(msg), "connect to %s[%s]:%d%s", name, addr, port,
             why != NULL ? why : ": failed");
    memcpy(err->msg, msg, sizeof(msg));
}

smtpc_session *
smtpc_open(modmta_ctx *ctx, const struct smtpc_opts *o, const char *name,
           const struct sockaddr *sa, socklen_t salen, struct smtpc_reply *r)
{
    char addr[INET6_ADDRSTRLEN] = "?";
    smtpc_session *s;
    modmta_conn *c = NULL;
    modmta_err err;
    int port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
        port = ntohs(s4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
        port = ntohs(s6->sin6_port);
    }
    s = smtpc_new(o, name, addr, port);
    if (s != NULL &&
        (c = modmta_conn_connect(ctx, sa, salen, o->timeouts.connect_ms,
                                 &err)) == NULL)
        smtpc_connect_why(&err, name, addr, port);
    return smtpc_start(s, c, &err, o, r);
}

smtpc_session *
smtpc_open_unix(modmta_ctx *ctx, const struct smtpc_opts *o,
                const char *path, struct smtpc_reply *r)
{
    smtpc_session *s = smtpc_new(o, path, "", 0);
    modmta_conn *c = NULL;
    modmta_err err;

    if (s != NULL)
        c = modmta_conn_connect_unix(ctx, path, o->timeouts.connect_ms,
                                     &err);
    return smtpc_start(s, c, &err, o, r);
}

void
smtpc_close(smtpc_session *s)
{
    if (s == NULL)
        return;
    if (s->conn != NULL && !s->dead) {
        modmta_conn_set_timeout(s->conn, s->to.rset_ms);
        if (modmta_conn_printf(s->conn, "QUIT\r\n") == 0)
            (void)modmta_conn_flush(s->conn);
    }
    modmta_conn_close(s->conn);
    free(s->helo);
    free(s->name);
    free(s->peer);
    free(s);
}

smtpc_rc
smtpc_rset(smtpc_session *s, struct smtpc_reply *r)
{
    if (smtpc_command(s, "RSET", "RSET", s->to.rset_ms, r) != 0)
        return SMTPC_FAILED;
    if (r->code != 250) {
        s->dead = 1;
        return SMTPC_REFUSED;
    }
    s->open_txn = 0;
    return SMTPC_OK;
}

/* ---- STARTTLS ---- */

smtpc_rc
smtpc_starttls(smtpc_session *s, modmta_tls_client *t, const char *peer_name,
               modmta_tls_verify verify, struct smtpc_reply *r)
{
    modmta_err err;
    int rc;

    memset(r, 0, sizeof(*r));
    if (modmta_conn_is_tls(s->conn))
        return SMTPC_OK;
    if (!(s->ehlo.ext & SMTPC_EXT_STARTTLS)) {
        smtpc_reply_local(r, "STARTTLS", "4.7.4",
                          "STARTTLS not offered by %s", s->peer);
        return SMTPC_NOT_OFFERED;
    }
    if (smtpc_command(s, "STARTTLS", "STARTTLS", s->to.starttls_ms, r) != 0)
        return SMTPC_FAILED;
    if (r->code / 100 != 2)
        return SMTPC_REFUSED;
    smtpc_reply_clear(r);
    rc = modmta_conn_starttls_client(s->conn, t, peer_name, verify,
                                     s->to.starttls_ms, &err);
    if (rc < 0) {
        s->dead = 1;
        smtpc_reply_local(r, "STARTTLS", "4.7.5", "TLS with %s: %s",
                          s->peer, err.msg);
        return rc == MODMTA_E_PERM ? SMTPC_TLS_UNVERIFIED : SMTPC_TLS_FAILED;
    }
    return smtpc_hello(s, r);
}

/* ---- AUTH (RFC 4954) ---- */

/* base64 of the n parts joined with NULs, malloc'ed (the raw octets are
 * wiped); NULL when out of memory. */
static char *
smtpc_b64(const char *const *parts, size_t n)
{
    size_t i, len = n - 1, o = 0;
    unsigned char *raw;
    char *out;

    for (i = 0; i < n; i++)
        len += strlen(parts[i]);
    raw = malloc(len + 1);
    out = malloc(MODMTA_BASE64_ENCODED_LEN(len) + 1);
    if (raw == NULL || out == NULL) {
        free(raw);
        free(out);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (i > 0)
            raw[o++] = '\0';
        memcpy(raw + o, parts[i], strlen(parts[i]));
        o += strlen(parts[i]);
    }
    modmta_base64_encode(raw, len, out, MODMTA_BASE64_ENCODED_LEN(len) + 1);
    OPENSSL_cleanse(raw, len);
    free(raw);
    return out;
}

/* One step of the exchange: send prefix and resp (resp is wiped and
 * freed; NULL: out of memory), read the reply. SMTPC_OK when it is what
 * the step wants: 334 when more follows, 2xx at the end. */
static smtpc_rc
smtpc_auth_step(smtpc_session *s, const char *prefix, char *resp, int more,
                struct smtpc_reply *r)
{
    char *line = NULL;
    int rc;

    smtpc_reply_clear(r);
    if (resp == NULL || asprintf(&line, "%s%s", prefix, resp) < 0) {
        free(resp);
        s->dead = 1; /* an exchange begun cannot be left half-way */
        smtpc_reply_local(r, "AUTH", "4.3.0", "out of memory");
        return SMTPC_FAILED;
    }
    rc = smtpc_command(s, line, "AUTH", s->to.auth_ms, r);
    OPENSSL_cleanse(resp, strlen(resp));
    OPENSSL_cleanse(line, strlen(line));
    free(resp);
    free(line);
    if (rc != 0)
        return SMTPC_FAILED;
    if (more ? r->code == 334 : r->code / 100 == 2)
        return SMTPC_OK;
    return SMTPC_REFUSED;
}

smtpc_rc
smtpc_auth(smtpc_session *s, const char *user, const char *pass,
           struct smtpc_reply *r)
{
    const char *plain[3] = {"", user, pass};
    char *resp;
    smtpc_rc rc;

    memset(r, 0, sizeof(*r));
    if (!modmta_conn_is_tls(s->conn)) {
        smtpc_reply_local(r, "AUTH", "4.7.11",
                          "refusing to send credentials to %s without TLS",
                          s->peer);
        return SMTPC_NOT_ALLOWED;
    }
    if (!(s->ehlo.ext & SMTPC_EXT_AUTH)
        || !(s->ehlo.auth & (SMTPC_AUTH_PLAIN | SMTPC_AUTH_LOGIN))) {
        smtpc_reply_local(r, "AUTH", "4.7.0",
                          "AUTH PLAIN or LOGIN not offered by %s", s->peer);
        return SMTPC_NOT_OFFERED;
    }
    if (strlen(user) + strlen(pass) > SMTPC_CMD_MAX) {
        smtpc_reply_local(r, "AUTH", "4.7.0", "credentials too long");
        return SMTPC_NOT_ALLOWED;
    }
    if (s->ehlo.auth & SMTPC_AUTH_PLAIN) {
        /* RFC 4616: authzid (none), authcid, password */
        resp = smtpc_b64(plain, 3);
        /* the initial response only if the line stays within 512 octets */
        if (resp == NULL || strlen(resp) + sizeof("AUTH PLAIN \r\n") <= 512)
            rc = smtpc_auth_step(s, "AUTH PLAIN ", resp, 0, r);
        else if ((rc = smtpc_auth_step(s, "AUTH PLAIN", strdup(""), 1, r))
                 == SMTPC_OK)
            rc = smtpc_auth_step(s, "", resp, 0, r);
        else
            free(resp);
    } else {
        rc = smtpc_auth_step(s, "AUTH LOGIN", strdup(""), 1, r);
        if (rc == SMTPC_OK)
            rc = smtpc_auth_step(s, "", smtpc_b64(&user, 1), 1, r);
        if (rc == SMTPC_OK)
            rc = smtpc_auth_step(s, "", smtpc_b64(&pass, 1), 0, r);
    }
    if (rc == SMTPC_REFUSED && r->code == 334) {
        /* a challenge where none was due: cancel (RFC 4954 section 4) */
        smtpc_reply_clear(r);
        if (smtpc_command(s, "*", "AUTH", s->to.auth_ms, r) != 0)
            rc = SMTPC_FAILED;
    }
    return rc;
}

/* ---- getters ---- */

int
smtpc_usable(const smtpc_session *s)
{
    return !s->dead;
}

unsigned
smtpc_ext(const smtpc_session *s)
{
    return s->ehlo.ext;
}

const struct smtpc_ehlo *
smtpc_ehlo(const smtpc_session *s)
{
    return &s->ehlo;
}

const char *
smtpc_name(const smtpc_session *s)
{
    return s->name;
}

const char *
smtpc_addr(const smtpc_session *s)
{
    return s->addr[0] != '\0' ? s->addr : NULL;
}

int
smtpc_port(const smtpc_session *s)
{
    return s->port;
}

const char *
smtpc_peer(const smtpc_session *s)
{
    return s->peer;
}

modmta_conn *
smtpc_conn(const smtpc_session *s)
{
    return s->conn;
}

unsigned
smtpc_txn_count(const smtpc_session *s)
{
    return s->ntxn;
}
