/*
 * The SMTP server session (see smtp_session.h).
 *
 * Shape (OpenSMTPD's): an explicit state, changed only by smtp_enter();
 * a table {verb, minimum state, handler}; each handler checks syntax,
 * runs the hook chain, then proceeds. RSET and the end of DATA free only
 * the transaction. Replies are queued and sent when the input buffer is
 * empty or before the session blocks (conn.c), so pipelined commands get
 * their replies in one write (RFC 2920).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <modmta/log.h>

#include "chain.h"
#include "conn_priv.h"
#include "ctx_priv.h"
#include "fd_budget.h"
#include "queue_env.h"
#include "smtp_cmd.h"
#include "smtp_data.h"
#include "smtp_session.h"
#include "smtp_stream.h"
#include "stress.h"

enum smtp_state {
    SMTP_ST_GREETED = 0, /* before HELO/EHLO */
    SMTP_ST_HELO,        /* after HELO/EHLO, no transaction */
    SMTP_ST_MAIL,        /* MAIL accepted */
    SMTP_ST_RCPT,        /* at least one RCPT accepted */
    SMTP_ST_QUIT,        /* the session ends */
};

/* What the client said about one final recipient (one record each):
 * the RCPT TO address that produced it and its DSN parameters (RFC
 * 3461), which a recipient an alias or virtual expanded inherits. */
struct smtp_rcpt_rec {
    char *addr;           /* the final recipient */
    char *orcpt;          /* the client's address (queue_rcpt.orcpt) */
    char *orcpt_param;    /* ORCPT= as given, NULL */
    unsigned notify;      /* QNOTIFY_*, 0: not given */
};

struct smtp_session {
    const struct smtp_session_args *a;
    generation *gen;
    const struct config *cfg;
    const struct config_limits *lim;
    modmta_conn *conn;
    modmta_ctx *ctx;
    enum smtp_state state;
    int denied;                 /* REJECT at connect: only QUIT (503) */
    int connected;              /* the connect hooks ran */
    char addr[64];
    char name[256];
    char helo[256];
    char uidtag[32];            /* " uid=N" on a local session's lines */
    int esmtp;
    int helo_rejected;   /* the last HELO/EHLO was refused by a module */
    unsigned long ncmds;
    long nerrors;
    long njunk;                 /* commands that move no mail forward */
    /* transaction */
    queue_writer *w;
    struct smtp_mail_opts mopts;
    int discard;                /* a hook said DISCARD */
    size_t naccepted;           /* RCPT commands answered 250 */
    struct smtp_rcpt_rec *recs;
    size_t nrecs, recs_cap;
    int txn_open;               /* MAIL accepted, end of DATA not read:
                                 * a reset is an abort (on_abort) */
    char line[SMTP_AUTH_LINE_MAX + 1];
};

struct smtp_handler {
    const char *verb;
    enum smtp_state min;
    const char *seq_text;       /* 503 text when below min */
    int (*fn)(struct smtp_session *s, char *args);
};

static const char *smtp_state_name(enum smtp_state st);
static void smtp_enter(struct smtp_session *s, enum smtp_state st);
static void smtp_reply(struct smtp_session *s, int code, const char *esc,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void smtp_reply_ctx(struct smtp_session *s, modmta_verdict v);
static void smtp_log_reject(struct smtp_session *s, const char *what,
                            const char *arg);
static void smtp_tx_reset(struct smtp_session *s);
static int smtp_command_timeout_ms(const struct smtp_session *s);
static const char *smtp_proto(const struct smtp_session *s);
static void smtp_auth_as(struct smtp_session *s);
static void smtp_local_auth(struct smtp_session *s);
static enum config_tls_mode smtp_tls_mode(const struct smtp_session *s);
static int smtp_helo_common(struct smtp_session *s, char *args, int esmtp);
static int smtp_helo(struct smtp_session *s, char *args);
static int smtp_ehlo(struct smtp_session *s, char *args);
static int smtp_mail(struct smtp_session *s, char *args);
static int smtp_rcpt(struct smtp_session *s, char *args);
static int smtp_data(struct smtp_session *s, char *args);
static int smtp_data_finish(struct smtp_session *s, struct smtp_data *d);
static int smtp_commit(struct smtp_session *s);
static int smtp_rset(struct smtp_session *s, char *args);
static int smtp_noop(struct smtp_session *s, char *args);
static int smtp_quit(struct smtp_session *s, char *args);
static int smtp_help(struct smtp_session *s, char *args);
static int smtp_vrfy(struct smtp_session *s, char *args);
static int smtp_expn(struct smtp_session *s, char *args);
static int smtp_starttls(struct smtp_session *s, char *args);
static int smtp_notimpl(struct smtp_session *s, char *args);
static int smtp_command(struct smtp_session *s, char *line, size_t len);
static void smtp_loop(struct smtp_session *s);
static int smtp_greet(struct smtp_session *s);
static void smtp_log_timeout(const struct smtp_session *s, const char *where);
static void smtp_client_names(struct smtp_session *s);
static void smtp_tls_info(struct smtp_session *s);
static void smtp_local_addr(struct smtp_session *s);
static int smtp_data_edits(struct smtp_session *s, const struct smtp_data *d);
static int smtp_setup(struct smtp_session *s);
static void smtp_teardown(struct smtp_session *s);

/* Past this many HELO/EHLO/RSET/NOOP/HELP/VRFY/EXPN since the session
 * began or last queued a message, each more counts as an error (Postfix's
 * smtpd_junk_command_limit): a client cannot keep a session busy forever
 * without sending mail. */
#define SMTP_JUNK_LIMIT 100

static const char *const smtp_junk_verbs[] = {
    "HELO", "EHLO", "RSET", "NOOP", "HELP", "VRFY", "EXPN", NULL
};

static const struct smtp_handler smtp_handlers[] = {
    {"HELO", SMTP_ST_GREETED, NULL, smtp_helo},
    {"EHLO", SMTP_ST_GREETED, NULL, smtp_ehlo},
    {"MAIL", SMTP_ST_GREETED, NULL, smtp_mail},
    {"RCPT", SMTP_ST_MAIL, "Error: need MAIL command", smtp_rcpt},
    {"DATA", SMTP_ST_RCPT, "Error: need RCPT command", smtp_data},
    {"RSET", SMTP_ST_GREETED, NULL, smtp_rset},
    {"NOOP", SMTP_ST_GREETED, NULL, smtp_noop},
    {"QUIT", SMTP_ST_GREETED, NULL, smtp_quit},
    {"HELP", SMTP_ST_GREETED, NULL, smtp_help},
    {"VRFY", SMTP_ST_GREETED, NULL, smtp_vrfy},
    {"EXPN", SMTP_ST_GREETED, NULL, smtp_expn},
    {"STARTTLS", SMTP_ST_GREETED, NULL, smtp_starttls},
    {"TURN", SMTP_ST_GREETED, NULL, smtp_notimpl},
    {"ATRN", SMTP_ST_GREETED, NULL, smtp_notimpl},
    {"ETRN", SMTP_ST_GREETED, NULL, smtp_notimpl},
    {"BDAT", SMTP_ST_GREETED, NULL, smtp_notimpl},
    {"SEND", SMTP_ST_GREETED, NULL, smtp_notimpl},
    {"SOML", SMTP_ST_GREETED, NULL, smtp_notimpl},
    {"SAML", SMTP_ST_GREETED, NULL, smtp_notimpl},
};

static const char *
smtp_state_name(enum smtp_state st)
{
    static const char *const names[] = {"GREETED", "HELO", "MAIL", "RCPT",
                                        "QUIT"};

    return names[st];
}

/* The only place the state changes. */
static void
smtp_enter(struct smtp_session *s, enum smtp_state st)
{
    if (modmta_log_enabled(MODMTA_LOG_DEBUG))
        modmta_logf(MODMTA_LOG_DEBUG, "%s: smtp state %s -> %s",
                    s->a->session_id, smtp_state_name(s->state),
                    smtp_state_name(st));
    s->state = st;
}

/* Queue a reply. Lines of text are separated by '\n' (multi-line reply);
 * control characters are replaced so no text can inject a reply. */
static void
smtp_reply(struct smtp_session *s, int code, const char *esc,
           const char *fmt, ...)
{
    char text[MODMTA_REPLY_LINES_MAX * (MODMTA_REPLY_LINE_MAX + 1)], *p, *nl;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    for (p = text; *p != '\0'; p++)
        if ((unsigned char)*p < ' ' && *p != '\n')
            *p = '?';
    if (code >= 400 && code != 421)
        s->nerrors++;
    p = text;
    do {
        nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        modmta_conn_printf(s->conn, "%d%c%s%s%s\r\n", code,
                           nl != NULL ? '-' : ' ', esc != NULL ? esc : "",
                           esc != NULL ? " " : "", p);
        if (nl != NULL)
            p = nl + 1;
    } while (nl != NULL);
}

/* Send the reply a hook chain or a verb left in the ctx, after a sanity
 * check of its class against the verdict. A 421 ends the session once
 * sent, at any step, as Postfix's smtpd does: the transaction in progress
 * is dropped (the teardown aborts it), nothing committed is touched. */
static void
smtp_reply_ctx(struct smtp_session *s, modmta_verdict v)
{
    modmta_ctx *c = s->ctx;
    int cls = v == MODMTA_REJECT ? 5 : v == MODMTA_TEMPFAIL ? 4 : 2;
    char esc[16];

    if (c->reply_code / 100 != cls) {
        modmta_ctx_reply_clear(c);
        if (cls == 5)
            modmta_ctx_reply_default(c, 550, "5.7.1", "Rejected");
        else if (cls == 4)
            modmta_ctx_reply_default(c, 451, "4.3.0", "Try again later");
        else
            modmta_ctx_reply_default(c, 250, "2.0.0", "Ok");
    }
    if (c->reply_esc[0] != '\0')
        snprintf(esc, sizeof(esc), "%s", c->reply_esc);
    else
        snprintf(esc, sizeof(esc), "%d.0.0", cls);
    smtp_reply(s, c->reply_code, esc, "%s",
               c->reply_nlines > 0 ? c->reply_multi : c->reply_text);
    if (c->reply_code == 421)
        smtp_enter(s, SMTP_ST_QUIT);
}

static void
smtp_log_reject(struct smtp_session *s, const char *what, const char *arg)
{
    const modmta_ctx *c = s->ctx;

    modmta_logf(MODMTA_LOG_INFO, "%s: reject: %s from %s[%s]: %d %s %s; "
                "from=<%s> to=<%s> proto=%s helo=<%s>",
                c->queue_id[0] ? c->queue_id : s->a->session_id, what,
                s->name, s->addr, c->reply_code, c->reply_esc, c->reply_text,
                c->sender != NULL ? c->sender : "",
                arg != NULL ? arg : "", smtp_proto(s), s->helo);
}

/* Drop the transaction (RSET, new EHLO, end of DATA); an open one is
 * aborted first (the modules' on_abort). */
static void
smtp_tx_reset(struct smtp_session *s)
{
    size_t i;

    if (s->txn_open) {
        s->txn_open = 0;
        chain_abort(s->gen->chain, s->ctx);
    }
    if (s->w != NULL) {
        queue_writer_abort(s->w);
        s->w = NULL;
    }
    for (i = 0; i < s->nrecs; i++) {
        free(s->recs[i].addr);
        free(s->recs[i].orcpt);
        free(s->recs[i].orcpt_param);
    }
    s->nrecs = 0;
    s->naccepted = 0;
    s->discard = 0;
    memset(&s->mopts, 0, sizeof(s->mopts));
    modmta_ctx_txn_reset(s->ctx);
    if (s->state > SMTP_ST_HELO && s->state != SMTP_ST_QUIT)
        smtp_enter(s, SMTP_ST_HELO);
}

static const char *
smtp_proto(const struct smtp_session *s)
{
    static const char *const p[] = {"ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"};

    if (s->a->local_user != NULL)
        return "LOCAL";
    if (!s->esmtp)
        return "SMTP";
    return p[(modmta_conn_is_tls(s->conn) ? 1 : 0)
             | (s->ctx->auth_user != NULL ? 2 : 0)];
}

/* ---- HELO, EHLO ---- */

/* The listener's TLS mode; none for a local session, which borrows a
 * listener's settings but runs over a UNIX socket the kernel vouches
 * for (no STARTTLS offered or required). */
static enum config_tls_mode
smtp_tls_mode(const struct smtp_session *s)
{
    return s->a->local_user != NULL ? TLS_NONE : s->a->listener->tls;
}

/* A local session: the kernel vouched for the uid, so its login name
 * counts as authenticated from the start (relaying as Postfix's pickup
 * does, and every module that trusts AUTH trusts it). */
static void
smtp_local_auth(struct smtp_session *s)
{
    /* "LOCAL" tells modules this login is a local account (the kernel's
     * word), not a SASL identity of the same name. */
    modmta_ctx_set_auth_mech(s->ctx, "LOCAL");
    s->ctx->auth_user = modmta_sess_strdup(s->ctx, s->a->local_user);
    if (s->ctx->auth_user != NULL)
        chain_auth(s->gen->chain, s->ctx, s->ctx->auth_user, 1);
}

/* smtp_session_args.auth_as: the AUTH taken as done. */
static void
smtp_auth_as(struct smtp_session *s)
{
    s->ctx->auth_user = modmta_sess_strdup(s->ctx, s->a->auth_as);
    if (s->ctx->auth_user != NULL)
        chain_auth(s->gen->chain, s->ctx, s->ctx->auth_user, 1);
}

static int
smtp_helo_common(struct smtp_session *s, char *args, int esmtp)
{
    modmta_verdict v;
    const char *p;

    for (p = args; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            break;
    if (*args == '\0' || *p != '\0' || p - args > 255) {
        smtp_reply(s, 501, "5.5.4", "Syntax: %s hostname",
                   esmtp ? "EHLO" : "HELO");
        return 0;
    }
    smtp_tx_reset(s);
    v = chain_helo(s->gen->chain, s->ctx, args);
    if (v == MODMTA_REJECT || v == MODMTA_TEMPFAIL) {
        smtp_reply_ctx(s, v);
        smtp_log_reject(s, esmtp ? "EHLO" : "HELO", args);
        s->helo_rejected = 1;
        return 0;
    }
    s->helo_rejected = 0;
    snprintf(s->helo, sizeof(s->helo), "%s", args);
    s->esmtp = esmtp;
    modmta_ctx_set_helo(s->ctx, s->helo, esmtp);
    smtp_enter(s, SMTP_ST_HELO);
    if (s->a->auth_as != NULL && s->ctx->auth_user == NULL)
        smtp_auth_as(s);
    return 1;
}

static int
smtp_helo(struct smtp_session *s, char *args)
{
    if (smtp_helo_common(s, args, 0))
        smtp_reply(s, 250, NULL, "%s", s->cfg->hostname);
    return 0;
}

static int
smtp_ehlo(struct smtp_session *s, char *args)
{
    enum config_tls_mode tm = smtp_tls_mode(s);
    size_t i;

    if (!smtp_helo_common(s, args, 1))
        return 0;
    /* RFC 2034: the EHLO response carries no enhanced status code. */
    modmta_conn_printf(s->conn, "250-%s\r\n250-PIPELINING\r\n",
                       s->cfg->hostname);
    if (s->lim->message_size > 0)
        modmta_conn_printf(s->conn, "250-SIZE %lld\r\n",
                           s->lim->message_size);
    else
        modmta_conn_printf(s->conn, "250-SIZE\r\n");
    modmta_conn_printf(s->conn, "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n");
    if (modmta_conn_tls_available(s->conn) && tm != TLS_NONE
        && tm != TLS_IMPLICIT)
        modmta_conn_printf(s->conn, "250-STARTTLS\r\n");
    modmta_conn_printf(s->conn, "250-DSN\r\n");
    s->ctx->nehlo = 0; /* keywords of an earlier EHLO */
    chain_ehlo(s->gen->chain, s->ctx);
    for (i = 0; i < s->ctx->nehlo; i++)
        modmta_conn_printf(s->conn, "250-%s\r\n", s->ctx->ehlo[i]);
    modmta_conn_printf(s->conn, "250 SMTPUTF8\r\n");
    return 0;
}

/* ---- the transaction ---- */

/* The domain for paths that come without one; NULL: strict paths. */
static const char *
smtp_qualify(const struct smtp_session *s)
{
    return s->cfg->smtp.strict_envelopes ? NULL : s->cfg->hostname;
}

/* The checked MAIL parameters into the ctx, where modules and the
 * commit read them. 0, or -1 when out of memory. */
static int
smtp_mail_params(struct smtp_session *s, struct smtp_path *path)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < path->nparams; i++) {
        const char *kw = path->params[i].keyword;
        char *val = path->params[i].value, *auth = NULL;

        /* AUTH=: trusted only from an authenticated client (RFC 4954) */
        if (strcmp(kw, "AUTH") == 0) {
            auth = smtp_cmd_auth_mailbox(val, s->ctx->auth_user != NULL);
            if (auth == NULL)
                return -1;
            val = auth;
        }
        /* Keywords as values: kept in their canonical (upper) case. */
        if (strcmp(kw, "BODY") == 0 || strcmp(kw, "RET") == 0)
            for (char *p = val; *p != '\0'; p++)
                *p = (char)toupper((unsigned char)*p);
        rc = modmta_ctx_add_param(s->ctx, kw, val);
        free(auth);
    }
    return rc < 0 ? -1 : 0;
}

static int
smtp_mail(struct smtp_session *s, char *args)
{
    struct smtp_path path;
    struct smtp_status st;
    modmta_err err;
    modmta_verdict v;
    char why[160];

    if (s->state >= SMTP_ST_MAIL) {
        smtp_reply(s, 503, "5.5.1", "Error: nested MAIL command");
        return 0;
    }
    /* A HELO a module refused is not skipped by sending none. */
    if (s->helo_rejected ||
        (s->state == SMTP_ST_GREETED && s->cfg->smtp.helo_required)) {
        smtp_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
        return 0;
    }
    if (smtp_tls_mode(s) == TLS_STARTTLS_REQUIRED
        && !modmta_conn_is_tls(s->conn)) {
        smtp_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
        return 0;
    }
    if (s->a->listener->auth == AUTH_REQUIRED && s->ctx->auth_user == NULL) {
        smtp_reply(s, 530, "5.7.0", "Authentication required");
        return 0;
    }
    if (smtp_cmd_parse_path(args, 1, smtp_qualify(s), &path, &st) < 0
        || smtp_cmd_check_mail(&path, s->lim->message_size, &s->mopts,
                               &st) < 0) {
        smtp_reply(s, st.code, st.esc, "%s", st.text);
        return 0;
    }
    s->w = queue_writer_new(s->a->queue, &err);
    if (s->w == NULL) {
        int full = modmta_err_from_errno(errno) == MODMTA_E_NOSPACE;

        modmta_logf(MODMTA_LOG_ERR, "%s: cannot start a message: %s",
                    s->a->session_id, err.msg);
        if (full)
            smtp_reply(s, 452, "4.3.1", "Error: insufficient system storage");
        else
            smtp_reply(s, 451, "4.3.0", "Error: queue file write error");
        return 0;
    }
    /* The spool file counts against the descriptor budget like the
     * session: idle transactions must not spend the reserve. */
    if (fd_budget_over(queue_writer_fd(s->w), s->cfg, why, sizeof(why))) {
        queue_writer_abort(s->w);
        s->w = NULL;
        modmta_logf(MODMTA_LOG_WARN, "%s: cannot start a message: %s",
                    s->a->session_id, why);
        smtp_reply(s, 452, "4.3.1", "Error: insufficient system resources, "
                   "try again later");
        return 0;
    }
    modmta_ctx_set_sender(s->ctx, queue_writer_id(s->w), path.str);
    if (smtp_mail_params(s, &path) < 0) {
        smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        smtp_tx_reset(s);
        return 0;
    }
    v = chain_mail(s->gen->chain, s->ctx, path.str);
    if (v == MODMTA_REJECT || v == MODMTA_TEMPFAIL) {
        smtp_reply_ctx(s, v);
        smtp_log_reject(s, "MAIL", NULL);
        smtp_tx_reset(s);
        return 0;
    }
    s->discard = v == MODMTA_DISCARD;
    s->txn_open = 1;
    smtp_enter(s, SMTP_ST_MAIL);
    smtp_reply(s, 250, "2.1.0", "Ok");
    return 0;
}

/* Remember which client recipient, with which DSN parameters, produced
 * rcpts[from..]. 0, or -1 when out of memory (then the records of this
 * RCPT are dropped). */
static int
smtp_rcpt_record(struct smtp_session *s, size_t from, const char *orcpt,
                 const struct smtp_rcpt_opts *o)
{
    size_t n0 = s->nrecs, i;
    struct smtp_rcpt_rec *n, *r;

    for (i = from; i < s->ctx->nrcpts; i++) {
        if (s->nrecs == s->recs_cap) {
            n = realloc(s->recs, (s->recs_cap * 2 + 8) * sizeof(*n));
            if (n == NULL)
                goto nomem;
            s->recs = n;
            s->recs_cap = s->recs_cap * 2 + 8;
        }
        r = &s->recs[s->nrecs++];
        r->addr = strdup(s->ctx->rcpts[i]);
        r->orcpt = strdup(orcpt);
        r->orcpt_param = o->orcpt != NULL ? strdup(o->orcpt) : NULL;
        r->notify = o->notify;
        if (r->addr == NULL || r->orcpt == NULL ||
            (o->orcpt != NULL && r->orcpt_param == NULL))
            goto nomem;
    }
    return 0;
nomem:
    while (s->nrecs > n0) {
        r = &s->recs[--s->nrecs];
        free(r->addr);
        free(r->orcpt);
        free(r->orcpt_param);
    }
    return -1;
}

/* The record of final recipient addr, or NULL (a recipient a module
 * added at end of data). */
static const struct smtp_rcpt_rec *
smtp_rcpt_find(const struct smtp_session *s, const char *addr)
{
    for (size_t i = 0; i < s->nrecs; i++)
        if (strcmp(s->recs[i].addr, addr) == 0)
            return &s->recs[i];
    return NULL;
}

static int
smtp_rcpt(struct smtp_session *s, char *args)
{
    struct smtp_path path;
    struct smtp_status st;
    struct smtp_rcpt_opts o;
    modmta_verdict v;
    size_t before;

    if (smtp_cmd_parse_path(args, 0, smtp_qualify(s), &path, &st) < 0
        || smtp_cmd_check_rcpt(&path, s->mopts.utf8, &o, &st) < 0) {
        smtp_reply(s, st.code, st.esc, "%s", st.text);
        return 0;
    }
    if (s->lim->recipients > 0
        && (long)s->naccepted >= s->lim->recipients) {
        smtp_reply(s, 452, "4.5.3", "Error: too many recipients");
        return 0;
    }
    before = s->ctx->nrcpts;
    v = chain_rcpt(s->gen->chain, s->ctx, path.str, s->lim);
    if (v == MODMTA_REJECT || v == MODMTA_TEMPFAIL) {
        smtp_reply_ctx(s, v);
        smtp_log_reject(s, "RCPT", path.str);
        return 0;
    }
    if (smtp_rcpt_record(s, before, path.str, &o) < 0) {
        while (s->ctx->nrcpts > before)
            modmta_ctx_remove_rcpt(s->ctx,
                                   s->ctx->rcpts[s->ctx->nrcpts - 1]);
        smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        return 0;
    }
    s->naccepted++;
    smtp_enter(s, SMTP_ST_RCPT);
    smtp_reply(s, 250, "2.1.5", "Ok");
    return 0;
}

static int
smtp_data(struct smtp_session *s, char *args)
{
    struct smtp_data d;
    const char *rcpt;
    char *rcvd;
    int rc;

    if (*args != '\0') {
        smtp_reply(s, 501, "5.5.4", "Syntax: DATA");
        return 0;
    }
    rcpt = s->naccepted == 1 && s->ctx->nrcpts == 1 ? s->ctx->rcpts[0]
                                                    : NULL;
    /* Without HELO (smtp.helo_required off), the client's name stands in
     * for it, as Sendmail writes it. */
    if (s->a->local_user != NULL)
        rcvd = smtp_data_received_local(s->cfg->hostname,
                                        (unsigned long)s->a->local_uid,
                                        s->ctx->queue_id, rcpt);
    else
        rcvd = smtp_data_received(s->helo[0] != '\0' ? s->helo : s->name,
                                  s->name, s->addr, s->cfg->hostname,
                                  smtp_proto(s),
                                  modmta_conn_tls_version(s->conn),
                                  modmta_conn_tls_cipher(s->conn),
                                  s->ctx->queue_id, rcpt);
    if (rcvd == NULL) {
        smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        return 0;
    }
    smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    if (modmta_conn_flush(s->conn) < 0) {
        free(rcvd);
        return -1;
    }
    memset(&d, 0, sizeof(d));
    d.conn = s->conn;
    d.w = s->w;
    d.ctx = s->ctx;
    d.limit = s->lim->message_size;
    d.timeout_ms = (int)s->lim->data_timeout * 1000;
    d.stress_timeout_ms = (int)s->lim->stress_timeout * 1000;
    d.total_ms = (long long)s->lim->data_total_timeout * 1000;
    rc = smtp_data_read(&d, rcvd, strlen(rcvd));
    free(rcvd);
    if (rc == 0)
        s->txn_open = 0; /* the end of DATA: queued or refused, no abort */
    if (rc == MODMTA_E_TIMEOUT) {
        smtp_log_timeout(s, "DATA");
        smtp_reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
                   s->cfg->hostname);
    }
    if (rc == 0)
        rc = smtp_data_finish(s, &d);
    smtp_data_done(&d);
    smtp_tx_reset(s);
    return rc < 0 ? -1 : 0;
}

/* The Received: fields of the message, ours included: the hops it made
 * (RFC 5321 6.3). */
static long
smtp_hops(const modmta_ctx *c)
{
    long n = 0;

    for (size_t i = 0; i < c->nhdrs; i++)
        n += !c->hdrs[i].deleted &&
             strcasecmp(c->hdrs[i].name, "Received") == 0;
    return n;
}

/* The streaming hooks, then on_data (unless a streaming hook decided):
 * the message's verdict, its reply in the ctx. */
static modmta_verdict
smtp_data_hooks(struct smtp_session *s, const struct smtp_data *d)
{
    modmta_ctx *c = s->ctx;
    const char *path = queue_writer_path(s->w);
    char body[PATH_MAX];
    modmta_verdict v;
    off_t off;
    int fd;

    modmta_ctx_set_message(c, path, queue_writer_size(s->w));
    /* modmta_body_replace writes next to the queue file (tmp/: a crash
     * leaves nothing queue_open does not clean) */
    /* ID.msg becomes ID.body (copied first: "%.*s" of path trips gcc's
     * -Wformat-truncation under ASan) */
    snprintf(body, sizeof(body), "%s", path);
    snprintf(body + strlen(body) - 4, sizeof(body) - (strlen(body) - 4),
             ".body");
    modmta_ctx_set_body_path(c, body);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    off = fd >= 0 ? smtp_stream_body_offset(fd, (off_t)d->hdr_len) : -1;
    if (off < 0) {
        modmta_logf(MODMTA_LOG_ERR, "%s: %s: %s", c->queue_id, path,
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        modmta_ctx_reply_default(c, 451, "4.3.0",
                                 "Error: queue file read error");
        return MODMTA_TEMPFAIL;
    }
    v = smtp_stream_run(s->gen->chain, c, fd, off);
    close(fd);
    if (v != MODMTA_CONTINUE)
        return v;
    return chain_data(s->gen->chain, c);
}

/* The header edits and a replaced body, applied to the queue file in
 * one rebuild. 0, or <0. */
static int
smtp_data_edits(struct smtp_session *s, const struct smtp_data *d)
{
    modmta_ctx *c = s->ctx;
    char *hdr;
    long hlen;
    int rc;

    if (c->body_err != 0)
        return c->body_err; /* a body half written is not queued */
    if (!c->hdrs_dirty && c->body_fd < 0)
        return 0;
    hlen = modmta_ctx_headers_serialize(c, &hdr);
    if (hlen < 0)
        return (int)hlen;
    rc = queue_writer_rebuild(s->w, (off_t)d->hdr_len, hdr, (size_t)hlen,
                              c->body_fd);
    free(hdr);
    return rc;
}

/* After the end of data: the size and line-end verdicts, the hop count,
 * the streaming hooks and on_data, the milter actions, then the
 * commit. */
static int
smtp_data_finish(struct smtp_session *s, struct smtp_data *d)
{
    modmta_ctx *c = s->ctx;
    size_t nadded = c->nadded, nremoved = c->nremoved, i;
    modmta_verdict v;

    if (d->bad_eol) {
        smtp_reply(s, 554, "5.5.0", "Error: bare CR or LF not allowed in "
                   "message content");
        return 0;
    }
    if (d->too_big) {
        smtp_reply(s, 552, "5.3.4", "Error: message size exceeds limit");
        return 0;
    }
    if (d->bad_nul) {
        smtp_reply(s, 554, "5.6.0", "Error: NUL character not allowed in "
                   "message content");
        return 0;
    }
    if (d->write_err != 0) {
        if (d->write_err == MODMTA_E_NOSPACE)
            smtp_reply(s, 452, "4.3.1", "Error: insufficient system storage");
        else
            smtp_reply(s, 451, "4.3.0", "Error: queue file write error");
        return 0;
    }
    if (smtp_hops(c) > s->lim->max_hops) {
        /* A mail loop, most likely: refused, so the sending MTA bounces
         * it, as Sendmail does (Postfix bounces it itself). */
        modmta_logf(MODMTA_LOG_NOTICE, "%s: reject: DATA from %s[%s]: "
                    "554 5.4.6 Too many hops: %ld Received: fields, "
                    "limit %ld; from=<%s>", c->queue_id, s->name, s->addr,
                    smtp_hops(c), s->lim->max_hops, c->sender);
        smtp_reply(s, 554, "5.4.6", "Too many hops");
        return 0;
    }
    v = smtp_data_hooks(s, d);
    if (v == MODMTA_REJECT || v == MODMTA_TEMPFAIL) {
        smtp_reply_ctx(s, v);
        smtp_log_reject(s, "DATA", NULL);
        return 0;
    }
    if (v == MODMTA_DISCARD)
        s->discard = 1;
    for (i = nremoved; i < c->nremoved; i++)
        modmta_ctx_remove_rcpt(c, c->removed[i]);
    for (i = nadded; i < c->nadded; i++)
        modmta_ctx_add_rcpt(c, c->added[i]);
    if (s->discard || c->nrcpts == 0) {
        modmta_logf(MODMTA_LOG_INFO, "%s: discard: from=<%s> nrcpt=%zu",
                    c->queue_id, c->sender, c->nrcpts);
        smtp_reply(s, 250, "2.0.0", "Ok: queued as %s", c->queue_id);
        return 0;
    }
    if (smtp_data_edits(s, d) < 0) {
        smtp_reply(s, 451, "4.3.0", "Error: queue file write error");
        return 0;
    }
    return smtp_commit(s);
}

/* The MAIL parameters a next hop needs (queue_env.params), in the order
 * given; the strings are the ctx's. */
static const char *const smtp_kept_params[] = {
    "BODY", "SMTPUTF8", "RET", "ENVID", NULL
};

static size_t
smtp_commit_params(const modmta_ctx *c, queue_param *out)
{
    size_t n = 0;

    for (size_t i = 0; i < c->nparams && n < SMTP_PARAMS_MAX; i++)
        for (size_t k = 0; smtp_kept_params[k] != NULL; k++)
            if (strcmp(c->params[i].name, smtp_kept_params[k]) == 0) {
                out[n].name = c->params[i].name;
                out[n++].value = c->params[i].value;
            }
    return n;
}

/* The RCPT parameters a module gave a recipient it added
 * (modmta_rcpt_add_params, checked there). */
static void
smtp_commit_added_params(const modmta_ctx *c, queue_rcpt *r)
{
    const struct ctx_rparam *rp = modmta_ctx_rcpt_params(c, r->addr);
    const char *p, *e;

    if (rp == NULL)
        return;
    r->orcpt_param = rp->orcpt;
    for (p = rp->notify; p != NULL; p = *e != '\0' ? e + 1 : NULL) {
        e = p + strcspn(p, ",");
        r->notify |= queue_env_notify_bit(p, (size_t)(e - p));
    }
}

/* The envelope recipients, pointing into the ctx and the records. A
 * recipient a module added never to be notified about (a bcc copy)
 * carries no DSN parameters: they were the client's for another one. */
static void
smtp_commit_rcpts(const struct smtp_session *s, queue_rcpt *out)
{
    const modmta_ctx *c = s->ctx;
    const struct smtp_rcpt_rec *rec;

    for (size_t i = 0; i < c->nrcpts; i++) {
        queue_rcpt *r = &out[i];

        r->addr = c->rcpts[i];
        r->state = QRCPT_PENDING;
        r->no_dsn = modmta_ctx_rcpt_no_dsn(c, c->rcpts[i]);
        r->sender = (char *)modmta_ctx_rcpt_sender(c, c->rcpts[i]);
        if ((rec = smtp_rcpt_find(s, c->rcpts[i])) == NULL) {
            smtp_commit_added_params(c, r);
            continue;
        }
        r->orcpt = rec->orcpt;
        /* A list's member (its own sender, owner-NAME) is the list's
         * business from here: the client's NOTIFY and ORCPT stop at the
         * expansion (RFC 3461 6.2.7.3), so a stranger cannot make the
         * list's owner receive a success notice per member. */
        if (!r->no_dsn && r->sender == NULL) {
            r->notify = rec->notify;
            r->orcpt_param = rec->orcpt_param;
        }
    }
}

static int
smtp_commit(struct smtp_session *s)
{
    modmta_ctx *c = s->ctx;
    queue_param params[SMTP_PARAMS_MAX];
    queue_note notes[MODMTA_NOTES_MAX];
    queue_env env;
    char id[QUEUE_ID_MAX];
    int rc;

    memset(&env, 0, sizeof(env));
    env.rcpts = calloc(c->nrcpts, sizeof(*env.rcpts));
    if (env.rcpts == NULL) {
        smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        return 0;
    }
    /* The uid goes into the envelope with the message (a note, so
     * that queue-side tools and on_queued hooks read it alike). */
    if (s->a->local_user != NULL &&
        modmta_ctx_note_put(c, "local_uid", NULL,
                            (long long)s->a->local_uid) < 0) {
        free(env.rcpts);
        smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        return 0;
    }
    for (size_t i = 0; i < c->nnotes; i++)
        notes[i] = (queue_note){c->notes[i].name, c->notes[i].str,
                                c->notes[i].num};
    env.notes = c->nnotes > 0 ? notes : NULL;
    env.nnotes = c->nnotes;
    smtp_commit_rcpts(s, env.rcpts);
    env.nrcpts = c->nrcpts;
    env.nparams = smtp_commit_params(c, params);
    env.params = env.nparams > 0 ? params : NULL;
    env.sender = c->sender;
    env.arrival = time(NULL);
    env.client_addr = s->addr;
    env.client_name = s->name;
    env.helo = s->helo;
    env.protocol = (char *)smtp_proto(s);
    env.auth_user = c->auth_user;
    env.auth_param = (char *)modmta_mail_param(c, "AUTH");
    env.quarantine = c->quarantine;
    env.size = queue_writer_size(s->w);
    snprintf(id, sizeof(id), "%s", queue_writer_id(s->w));
    rc = queue_writer_commit(s->w, &env);
    s->w = NULL; /* freed by commit, whatever the result */
    free(env.rcpts);
    if (rc < 0) {
        modmta_logf(MODMTA_LOG_ERR, "%s: commit failed: %s", id,
                    modmta_strerror(rc));
        if (rc == MODMTA_E_NOSPACE)
            smtp_reply(s, 452, "4.3.1", "Error: insufficient system storage");
        else
            smtp_reply(s, 451, "4.3.0", "Error: queue file write error");
        return 0;
    }
    modmta_logf(MODMTA_LOG_INFO, "%s: from=<%s> size=%lld nrcpt=%zu%s%s",
                id, c->sender, (long long)env.size, c->nrcpts,
                c->quarantine != NULL ? " (quarantined)" : "", s->uidtag);
    smtp_reply(s, 250, "2.0.0", "Ok: queued as %s", id);
    /* The message is durable: the client hears so now, not after the
     * on_queued hooks (a write error shows at the next read). */
    modmta_conn_flush(s->conn);
    /* A client that delivers mail is forgiven its junk and its errors,
     * as Postfix's smtpd does: an MTA reusing one connection for
     * hundreds of messages sends an RSET before each. */
    s->njunk = 0;
    s->nerrors = 0;
    chain_queued(s->gen->chain, c);
    if (s->a->sched != NULL && c->quarantine == NULL)
        scheduler_submit(s->a->sched, id);
    return 0;
}

/* ---- the other verbs ---- */

static int
smtp_rset(struct smtp_session *s, char *args)
{
    smtp_tx_reset(s);
    smtp_reply(s, 250, "2.0.0", "Ok");
    return 0;
}

static int
smtp_noop(struct smtp_session *s, char *args)
{
    smtp_reply(s, 250, "2.0.0", "Ok");
    return 0;
}

static int
smtp_quit(struct smtp_session *s, char *args)
{
    smtp_reply(s, 221, "2.0.0", "Bye");
    smtp_enter(s, SMTP_ST_QUIT);
    return 0;
}

static int
smtp_help(struct smtp_session *s, char *args)
{
    smtp_reply(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA RSET "
               "NOOP QUIT HELP VRFY STARTTLS");
    return 0;
}

static int
smtp_vrfy(struct smtp_session *s, char *args)
{
    if (*args == '\0') {
        smtp_reply(s, 501, "5.5.4", "Syntax: VRFY address");
        return 0;
    }
    /* RFC 5321 3.5.3: 252, and nothing disclosed. */
    smtp_reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept message "
               "and attempt delivery");
    return 0;
}

static int
smtp_expn(struct smtp_session *s, char *args)
{
    smtp_reply(s, 502, "5.5.1", "Error: EXPN not available");
    return 0;
}

static int
smtp_starttls(struct smtp_session *s, char *args)
{
    enum config_tls_mode tm = smtp_tls_mode(s);
    int rc;

    if (modmta_conn_is_tls(s->conn)) {
        smtp_reply(s, 503, "5.5.1", "Error: TLS already active");
        return 0;
    }
    if (!modmta_conn_tls_available(s->conn) || tm == TLS_NONE) {
        smtp_reply(s, 502, "5.5.1", "Error: STARTTLS not available");
        return 0;
    }
    if (*args != '\0') {
        smtp_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
        return 0;
    }
    /* Commands pipelined after STARTTLS were sent in clear and must never
     * run as if sent under TLS (CVE-2011-0411): refuse the session. */
    if (modmta_conn_pending(s->conn) > 0) {
        smtp_reply(s, 554, "5.5.1", "Error: pipelined input after "
                   "STARTTLS");
        modmta_logf(MODMTA_LOG_NOTICE, "%s: pipelined input after STARTTLS "
                    "from %s[%s]", s->a->session_id, s->name, s->addr);
        return -1;
    }
    smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
    /* The handshake's timeout is fixed at its start, stress or not. */
    rc = modmta_conn_starttls(s->conn, smtp_command_timeout_ms(s));
    if (rc < 0) {
        modmta_logf(MODMTA_LOG_NOTICE, "%s: TLS handshake failed with "
                    "%s[%s]: %s", s->a->session_id, s->name, s->addr,
                    modmta_strerror(rc));
        return -1;
    }
    /* RFC 3207 4.2: forget everything learnt from the client. */
    smtp_tx_reset(s);
    s->helo[0] = '\0';
    s->esmtp = 0;
    modmta_ctx_set_helo(s->ctx, NULL, 0);
    s->ctx->auth_user = NULL;
    modmta_ctx_set_auth_mech(s->ctx, NULL);
    smtp_tls_info(s);
    smtp_enter(s, SMTP_ST_GREETED);
    modmta_logf(MODMTA_LOG_INFO, "%s: starttls from=%s[%s] version=%s "
                "cipher=%s", s->a->session_id, s->name, s->addr,
                modmta_conn_tls_version(s->conn),
                modmta_conn_tls_cipher(s->conn));
    return 0;
}

static int
smtp_notimpl(struct smtp_session *s, char *args)
{
    smtp_reply(s, 502, "5.5.1", "Error: command not implemented");
    return 0;
}

/* ---- the loop ---- */

/* After an AUTH verb (its reply sent): run the on_auth hooks with the
 * outcome, RFC 4954 style notification; their verdict is not used. */
/* The mechanism of a successful AUTH: its first argument, upper case. */
static void
smtp_auth_mech(struct smtp_session *s, const char *args)
{
    char mech[32];
    size_t n = 0;

    for (; args[n] != '\0' && args[n] != ' ' && n + 1 < sizeof(mech); n++)
        mech[n] = (char)toupper((unsigned char)args[n]);
    mech[n] = '\0';
    modmta_ctx_set_auth_mech(s->ctx, n > 0 ? mech : NULL);
}

static void
smtp_auth_hooks(struct smtp_session *s, int had_user)
{
    modmta_ctx *c = s->ctx;

    if (!had_user && c->auth_user != NULL)
        chain_auth(s->gen->chain, c, c->auth_user, 1);
    else if (c->auth_tried != NULL)
        chain_auth(s->gen->chain, c, c->auth_tried, 0);
    c->auth_tried = NULL;
}

/* A command neither the core nor a module knows: a module's on_unknown
 * may refuse it with its own reply; none can make it succeed. Either
 * way an error for the session's limit. */
static void
smtp_unknown(struct smtp_session *s, const char *line)
{
    modmta_verdict v = chain_unknown(s->gen->chain, s->ctx, line);

    if (v == MODMTA_REJECT || v == MODMTA_TEMPFAIL)
        smtp_reply_ctx(s, v);
    else
        smtp_reply(s, 500, "5.5.1", "Error: command not recognized");
}

/* One command line: look it up, check the state, run it. -1 ends. */
static int
smtp_command(struct smtp_session *s, char *line, size_t len)
{
    const struct smtp_handler *h = NULL;
    struct smtp_cmd cmd;
    modmta_verdict v;
    void *inst;
    size_t i;
    int had_user;

    if (strlen(line) != len) {
        smtp_reply(s, 500, "5.5.2", "Error: NUL in command");
        return 0;
    }
    if (smtp_cmd_parse(line, &cmd) < 0) {
        smtp_unknown(s, line);
        return 0;
    }
    if (len > smtp_cmd_line_max(cmd.verb) - 2) {
        smtp_reply(s, 500, "5.5.2", "Error: line too long");
        return 0;
    }
    if (s->denied && strcmp(cmd.verb, "QUIT") != 0) {
        smtp_reply(s, 503, "5.5.1", "Error: access denied, send QUIT");
        return 0;
    }
    for (i = 0; i < sizeof(smtp_handlers) / sizeof(smtp_handlers[0]); i++)
        if (strcmp(smtp_handlers[i].verb, cmd.verb) == 0)
            h = &smtp_handlers[i];
    if (h == NULL) {
        if (chain_find_verb(s->gen->chain, cmd.verb, &inst) == NULL) {
            smtp_unknown(s, line); /* trailing spaces dropped */
            return 0;
        }
        had_user = s->ctx->auth_user != NULL;
        v = chain_run_verb(s->gen->chain, s->ctx, s->conn, cmd.verb,
                           cmd.args);
        smtp_reply_ctx(s, v);
        if (strcmp(cmd.verb, "AUTH") == 0) {
            if (!had_user && s->ctx->auth_user != NULL)
                smtp_auth_mech(s, cmd.args);
            smtp_auth_hooks(s, had_user);
        }
        return 0;
    }
    for (i = 0; smtp_junk_verbs[i] != NULL; i++)
        if (strcmp(h->verb, smtp_junk_verbs[i]) == 0 &&
            ++s->njunk > SMTP_JUNK_LIMIT)
            s->nerrors++;
    if (s->state < h->min) {
        smtp_reply(s, 503, "5.5.1", "%s", h->seq_text);
        return 0;
    }
    return h->fn(s, cmd.args);
}

static long long
smtp_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* command_timeout, or limits.stress_timeout under stress (stress.h). */
static int
smtp_command_timeout_ms(const struct smtp_session *s)
{
    return (int)stress_timeout(s->lim->command_timeout,
                               s->lim->stress_timeout) * 1000;
}

static void
smtp_log_timeout(const struct smtp_session *s, const char *where)
{
    modmta_logf(MODMTA_LOG_NOTICE, "%s: timeout %s from=%s[%s]%s",
                s->a->session_id, where, s->name, s->addr,
                stress_active() ? " stress=on" : "");
}

/* Wait for the first octet of the next command in slices of a second, so
 * that a shutdown, or stress mode shortening the timeout, is noticed
 * within one (an idle client admitted before the stress is cut then).
 * Nothing is read here: a partly received line is never lost. 0: input
 * (or an event the next read reports), else MODMTA_E_TIMEOUT / _IO. */
static int
smtp_wait_command(struct smtp_session *s)
{
    const volatile sig_atomic_t *stop = s->a->shutting_down;
    long long since = smtp_now_ms(), left;
    struct pollfd p;
    int n;

    for (;;) {
        if (modmta_conn_pending(s->conn) > 0)
            return 0;
        if (stop != NULL && *stop)
            return MODMTA_E_TIMEOUT;
        left = since + smtp_command_timeout_ms(s) - smtp_now_ms();
        if (left <= 0)
            return MODMTA_E_TIMEOUT;
        /* RFC 2920: no reply is held while the server waits; a client
         * that does not read them has the command timeout too. */
        modmta_conn_set_write_timeout(s->conn, smtp_command_timeout_ms(s));
        if (modmta_conn_flush(s->conn) < 0)
            return MODMTA_E_IO;
        p.fd = modmta_conn_fd(s->conn);
        p.events = POLLIN;
        p.revents = 0;
        n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (n < 0 && errno != EINTR)
            return MODMTA_E_IO;
        if (n > 0)
            return 0;
    }
}

static void
smtp_loop(struct smtp_session *s)
{
    const volatile sig_atomic_t *stop = s->a->shutting_down;
    ssize_t n;

    while (s->state != SMTP_ST_QUIT) {
        if (stop != NULL && *stop) {
            smtp_reply(s, 421, "4.3.2", "%s Service shutting down, closing "
                       "transmission channel", s->cfg->hostname);
            return;
        }
        n = smtp_wait_command(s);
        if (n == 0) {
            /* the line has a whole timeout from its first octet */
            modmta_conn_set_interrupt(s->conn, stop);
            n = modmta_conn_readline(s->conn, s->line, sizeof(s->line),
                                     smtp_command_timeout_ms(s));
            modmta_conn_set_interrupt(s->conn, NULL);
        }
        if (n == MODMTA_E_TIMEOUT || n == MODMTA_E_IO) {
            if (stop != NULL && *stop)
                continue; /* answered above */
            if (n == MODMTA_E_TIMEOUT) {
                smtp_log_timeout(s, "waiting for a command");
                smtp_reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
                           s->cfg->hostname);
            }
            return;
        }
        s->ncmds++;
        if (n == MODMTA_E_LIMIT)
            smtp_reply(s, 500, "5.5.2", "Error: line too long");
        else if (n < 0)
            smtp_reply(s, 500, "5.5.2", "Error: bare CR or LF not allowed");
        else if (smtp_command(s, s->line, (size_t)n) < 0)
            return;
        if (s->lim->errors > 0 && s->nerrors >= s->lim->errors
            && s->state != SMTP_ST_QUIT) {
            smtp_reply(s, 421, "4.7.0", "%s Error: too many errors",
                       s->cfg->hostname);
            return;
        }
    }
}

/* Connect hooks, the early-talker check, the greeting. 0 to go on. */
static int
smtp_greet(struct smtp_session *s)
{
    const char *host = s->cfg->hostname;
    modmta_verdict v;

    modmta_logf(MODMTA_LOG_INFO, "%s: connect from=%s[%s] listener=%s%s",
                s->a->session_id, s->name, s->addr, s->a->listener->name,
                s->uidtag);
    s->connected = 1;
    v = chain_connect(s->gen->chain, s->ctx);
    if (v == MODMTA_CONTINUE && s->a->local_user != NULL)
        smtp_local_auth(s);
    if (v == MODMTA_TEMPFAIL) {
        modmta_ctx_reply_default(s->ctx, 421, "4.7.0", "Try again later");
        smtp_log_reject(s, "CONNECT", NULL);
        smtp_reply(s, 421, s->ctx->reply_esc[0] ? s->ctx->reply_esc : NULL,
                   "%s %s", host, s->ctx->reply_text);
        return -1;
    }
    /* A local client (sendmail -bs fed from a file) may talk first. */
    if (s->a->local_user == NULL &&
        modmta_conn_input_ready(s->conn, s->a->greet_pause_ms) > 0) {
        modmta_logf(MODMTA_LOG_NOTICE, "%s: early talker from=%s[%s]",
                    s->a->session_id, s->name, s->addr);
        smtp_reply(s, 554, "5.5.0", "%s Error: SMTP protocol "
                   "synchronization", host);
        return -1;
    }
    if (v == MODMTA_REJECT) {
        modmta_ctx_reply_default(s->ctx, 554, "5.7.1", "Access denied");
        smtp_log_reject(s, "CONNECT", NULL);
        /* RFC 5321 3.1: 554 greeting, then 503 to all but QUIT. The
         * enhanced code tells the client why, as Postfix's does. */
        smtp_reply(s, 554, s->ctx->reply_esc[0] ? s->ctx->reply_esc : NULL,
                   "%s %s", host, s->ctx->reply_text);
        s->denied = 1;
        return 0;
    }
    smtp_reply(s, 220, NULL, "%s ESMTP modmta", host);
    return 0;
}

/* TLS is on: tell the ctx its parameters. */
static void
smtp_tls_info(struct smtp_session *s)
{
    modmta_ctx_set_tls(s->ctx, 1);
    modmta_ctx_set_tls_info(s->ctx, modmta_conn_tls_version(s->conn),
                            modmta_conn_tls_cipher(s->conn),
                            modmta_conn_tls_bits(s->conn));
}

/* The address the client connected to (milter's {daemon_addr}). */
static void
smtp_local_addr(struct smtp_session *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(s->a->fd, (struct sockaddr *)&ss, &len) == 0)
        modmta_ctx_set_local(s->ctx, (struct sockaddr *)&ss, len);
}

/* Numeric address, and the reverse name confirmed by a forward lookup. */
static void
smtp_client_names(struct smtp_session *s)
{
    const struct sockaddr *sa = (const struct sockaddr *)&s->a->peer;
    struct addrinfo hints, *res, *ai;
    char fwd[64];

    snprintf(s->addr, sizeof(s->addr), "unknown");
    snprintf(s->name, sizeof(s->name), "unknown");
    if (getnameinfo(sa, s->a->peerlen, s->addr, sizeof(s->addr), NULL, 0,
                    NI_NUMERICHOST) != 0) {
        snprintf(s->addr, sizeof(s->addr), "%s",
                 sa->sa_family == AF_UNIX ? "local" : "unknown");
        return;
    }
    if (s->a->no_rdns || getnameinfo(sa, s->a->peerlen, s->name,
                                     sizeof(s->name), NULL, 0,
                                     NI_NAMEREQD) != 0) {
        snprintf(s->name, sizeof(s->name), "unknown");
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = sa->sa_family;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(s->name, NULL, &hints, &res) == 0) {
        for (ai = res; ai != NULL; ai = ai->ai_next)
            if (getnameinfo(ai->ai_addr, ai->ai_addrlen, fwd, sizeof(fwd),
                            NULL, 0, NI_NUMERICHOST) == 0
                && strcmp(fwd, s->addr) == 0)
                break;
        freeaddrinfo(res);
        if (ai != NULL)
            return;
    }
    snprintf(s->name, sizeof(s->name), "unknown");
}

/* Close the socket without a connection around it. */
static void
smtp_close_fd(const struct smtp_session_args *a)
{
    if (a->closing != NULL)
        a->closing(a->closing_arg);
    close(a->fd);
}

static int
smtp_setup(struct smtp_session *s)
{
    smtp_client_names(s);
    if (s->a->local_user != NULL) {
        snprintf(s->name, sizeof(s->name), "localhost");
        snprintf(s->addr, sizeof(s->addr), "local");
        snprintf(s->uidtag, sizeof(s->uidtag), " uid=%lu",
                 (unsigned long)s->a->local_uid);
    }
    /* "tls": "none" means no TLS at all, for SMTP and for a module's
     * protocol alike (POP3's STLS asks modmta_conn_tls_available). */
    s->conn = modmta_conn_new(s->a->fd, smtp_tls_mode(s) == TLS_NONE
                                            ? NULL : s->gen->tls);
    if (s->conn == NULL) {
        smtp_close_fd(s->a);
        return -1;
    }
    modmta_conn_set_write_timeout(s->conn, smtp_command_timeout_ms(s));
    s->ctx = modmta_ctx_new(s->gen->host);
    if (s->ctx == NULL)
        return -1;
    modmta_ctx_set_session(s->ctx, s->a->session_id,
                           (const struct sockaddr *)&s->a->peer,
                           s->a->peerlen, s->name, s->a->listener->name);
    smtp_local_addr(s);
    if (smtp_tls_mode(s) != TLS_IMPLICIT)
        return 0;
    if (modmta_conn_tls_accept(s->conn, smtp_command_timeout_ms(s)) < 0) {
        modmta_logf(MODMTA_LOG_NOTICE, "%s: TLS handshake failed with "
                    "%s[%s]", s->a->session_id, s->name, s->addr);
        return -1;
    }
    smtp_tls_info(s);
    return 0;
}

static void
smtp_teardown(struct smtp_session *s)
{
    if (s->ctx != NULL) {
        smtp_tx_reset(s);
        if (s->connected) {
            chain_disconnect(s->gen->chain, s->ctx);
            modmta_logf(MODMTA_LOG_INFO, "%s: disconnect from=%s[%s] "
                        "commands=%lu errors=%ld", s->a->session_id, s->name,
                        s->addr, s->ncmds, s->nerrors);
        }
    }
    if (s->conn != NULL) {
        modmta_conn_flush(s->conn);
        if (s->a->closing != NULL)
            s->a->closing(s->a->closing_arg);
        modmta_conn_free(s->conn);
    }
    modmta_ctx_free(s->ctx);
    free(s->recs);
    generation_release(s->gen);
    free(s);
}

void
smtp_session_run(const struct smtp_session_args *a)
{
    struct smtp_session *s;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        smtp_close_fd(a);
        generation_release(a->gen);
        return;
    }
    s->a = a;
    s->gen = a->gen;
    s->cfg = a->gen->cfg;
    s->lim = &s->cfg->limits;
    if (smtp_setup(s) == 0) {
        if (strcmp(a->listener->protocol, "smtp") != 0) {
            chain_serve(s->gen->chain, a->listener->protocol, s->ctx,
                        s->conn);
        } else if (smtp_greet(s) == 0) {
            smtp_loop(s);
        }
    }
    smtp_teardown(s);
}
