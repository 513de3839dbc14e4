/*
 * One transaction: the checks before sending, MAIL, RCPT..., DATA (one
 * flush with PIPELINING, RFC 2920; lock-step without), the content, and
 * the replies to the final "." (one under SMTP, one per accepted
 * recipient under LMTP, RFC 2033 section 4.2). Every recipient ends with
 * exactly one result (smtpc.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtpc_priv.h"

struct smtpc_txn {
    size_t n;
    const struct smtpc_reply **result;  /* per recipient; NULL: pending */
    unsigned char *accepted;            /* per recipient: RCPT got 2xx */
    struct smtpc_reply **kept;          /* the replies results point to */
    size_t nkept, kept_cap;
    int data_sent;
};

/* The envelope's progress. Command k is MAIL (0), RCPT k-1 (1..n) or
 * DATA (n+1). */
struct smtpc_env {
    const struct smtpc_msg *m;
    off_t size;
    size_t ncmd, sent, got;
    size_t naccepted;
    int mail_ok;
    int mail_done;
    const struct smtpc_reply *mail;     /* MAIL's refusal */
    struct smtpc_reply data;            /* DATA's reply */
    int data_done;
};

static char smtpc_txn_nomem_text[] = "out of memory";
static const struct smtpc_reply smtpc_txn_nomem = {
    0, "4.3.0", NULL, smtpc_txn_nomem_text,
};

static smtpc_txn *smtpc_txn_new(size_t n);
static const struct smtpc_reply *smtpc_txn_keep(smtpc_txn *t,
                                                struct smtpc_reply *r);
static void smtpc_txn_rest(smtpc_txn *t, struct smtpc_reply *r);
static void smtpc_txn_fail(smtpc_txn *t, const char *stage, const char *esc,
                           const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int smtpc_txn_add(char *buf, size_t len, size_t *pos,
                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int smtpc_txn_param(char *buf, size_t len, size_t *pos,
                           const char *name, const char *value);
static int smtpc_txn_read(smtpc_session *s, const char *stage,
                          int timeout_ms, struct smtpc_reply *r);
static const char *smtpc_txn_stage(const struct smtpc_env *e, size_t k);
static int smtpc_txn_timeout(const smtpc_session *s,
                             const struct smtpc_env *e, size_t k);
static int smtpc_txn_queue(smtpc_session *s, smtpc_txn *t,
                           struct smtpc_env *e);
static int smtpc_txn_answer(smtpc_session *s, smtpc_txn *t,
                            struct smtpc_env *e, struct smtpc_reply *r);
static int smtpc_txn_envelope(smtpc_session *s, smtpc_txn *t,
                              struct smtpc_env *e);
static int smtpc_txn_dot(smtpc_session *s, struct smtpc_reply *r);
static void smtpc_txn_content(smtpc_session *s, smtpc_txn *t, int fd);
static int smtpc_txn_checks(smtpc_session *s, smtpc_txn *t,
                            const struct smtpc_msg *m, off_t size);
static void smtpc_txn_finish(smtpc_session *s, smtpc_txn *t,
                             struct smtpc_env *e, int fd);
static int smtpc_txn_addr(const char *addr);

/* ---- results ---- */

static smtpc_txn *
smtpc_txn_new(size_t n)
{
    smtpc_txn *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->n = n;
    /* MAIL, n RCPT, DATA, n ends, one local reason: at most 2n + 3 */
    t->kept_cap = 2 * n + 4;
    t->result = calloc(n + 1, sizeof(*t->result));
    t->accepted = calloc(n + 1, 1);
    t->kept = calloc(t->kept_cap, sizeof(*t->kept));
    if (t->result == NULL || t->accepted == NULL || t->kept == NULL) {
        smtpc_txn_free(t);
        return NULL;
    }
    return t;
}

/* Move r into t: its stable copy, or the static "out of memory". */
static const struct smtpc_reply *
smtpc_txn_keep(smtpc_txn *t, struct smtpc_reply *r)
{
    struct smtpc_reply *k = NULL;

    if (t->nkept < t->kept_cap)
        k = malloc(sizeof(*k));
    if (k == NULL) {
        smtpc_reply_clear(r);
        return &smtpc_txn_nomem;
    }
    *k = *r;
    memset(r, 0, sizeof(*r));
    t->kept[t->nkept++] = k;
    return k;
}

/* Every recipient still without a result gets r. */
static void
smtpc_txn_rest(smtpc_txn *t, struct smtpc_reply *r)
{
    const struct smtpc_reply *k = NULL;
    size_t i;

    for (i = 0; i < t->n; i++) {
        if (t->result[i] != NULL)
            continue;
        if (k == NULL)
            k = smtpc_txn_keep(t, r);
        t->result[i] = k;
    }
    smtpc_reply_clear(r);
}

/* Every recipient still without a result gets a local reason. */
static void
smtpc_txn_fail(smtpc_txn *t, const char *stage, const char *esc,
               const char *fmt, ...)
{
    struct smtpc_reply r;
    va_list ap;
    int n;

    memset(&r, 0, sizeof(r));
    snprintf(r.esc, sizeof(r.esc), "%s", esc);
    r.stage = stage;
    va_start(ap, fmt);
    n = vasprintf(&r.text, fmt, ap);
    va_end(ap);
    if (n < 0) {
        r.text = NULL;
        for (n = 0; (size_t)n < t->n; n++)
            if (t->result[n] == NULL)
                t->result[n] = &smtpc_txn_nomem;
        return;
    }
    smtpc_txn_rest(t, &r);
}

const struct smtpc_reply *
smtpc_txn_result(const smtpc_txn *t, size_t i)
{
    return i < t->n && t->result[i] != NULL ? t->result[i]
                                            : &smtpc_txn_nomem;
}

int
smtpc_txn_data_sent(const smtpc_txn *t)
{
    return t->data_sent;
}

void
smtpc_txn_free(smtpc_txn *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->nkept; i++) {
        smtpc_reply_clear(t->kept[i]);
        free(t->kept[i]);
    }
    free(t->kept);
    free(t->result);
    free(t->accepted);
    free(t);
}

/* ---- command lines ---- */

/* Append to buf at *pos; -1 when it does not fit. */
static int
smtpc_txn_add(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *pos)
        return -1;
    *pos += (size_t)n;
    return 0;
}

/* " NAME=value": value non-empty, without spaces or control characters
 * (it came as the client gave it; it must stay one parameter). */
static int
smtpc_txn_param(char *buf, size_t len, size_t *pos, const char *name,
                const char *value)
{
    const unsigned char *v;

    if (value == NULL)
        return 0;
    if (*value == '\0')
        return -1;
    for (v = (const unsigned char *)value; *v != '\0'; v++)
        if (*v <= ' ' || *v == 0x7f)
            return -1;
    return smtpc_txn_add(buf, len, pos, " %s=%s", name, value);
}

/* An address between <>: no control characters (a CR or LF would end
 * the command). */
static int
smtpc_txn_addr(const char *addr)
{
    const unsigned char *a;

    for (a = (const unsigned char *)addr; *a != '\0'; a++)
        if (*a < ' ' || *a == 0x7f)
            return -1;
    return 0;
}

int
smtpc_txn_mail_line(char *buf, size_t len, const struct smtpc_msg *m,
                    const struct smtpc_ehlo *e, off_t size)
{
    size_t pos = 0;
    int bad = 0;

    if (smtpc_txn_addr(m->sender) < 0
        || smtpc_txn_add(buf, len, &pos, "MAIL FROM:<%s>", m->sender) < 0)
        return -1;
    if (e->ext & SMTPC_EXT_SIZE)
        bad |= smtpc_txn_add(buf, len, &pos, " SIZE=%lld", (long long)size);
    if (m->need_8bit && (e->ext & SMTPC_EXT_8BITMIME))
        bad |= smtpc_txn_add(buf, len, &pos, " BODY=8BITMIME");
    if (m->need_smtputf8 && (e->ext & SMTPC_EXT_SMTPUTF8))
        bad |= smtpc_txn_add(buf, len, &pos, " SMTPUTF8");
    if (e->ext & SMTPC_EXT_DSN) {
        bad |= smtpc_txn_param(buf, len, &pos, "RET", m->ret);
        bad |= smtpc_txn_param(buf, len, &pos, "ENVID", m->envid);
    }
    if (e->ext & SMTPC_EXT_AUTH)
        bad |= smtpc_txn_param(buf, len, &pos, "AUTH", m->auth);
    return bad ? -1 : 0;
}

int
smtpc_txn_rcpt_line(char *buf, size_t len, const struct smtpc_rcpt *r,
                    const struct smtpc_ehlo *e)
{
    size_t pos = 0;
    int bad = 0;

    if (*r->addr == '\0' || smtpc_txn_addr(r->addr) < 0
        || smtpc_txn_add(buf, len, &pos, "RCPT TO:<%s>", r->addr) < 0)
        return -1;
    if (e->ext & SMTPC_EXT_DSN) {
        bad |= smtpc_txn_param(buf, len, &pos, "NOTIFY", r->notify);
        bad |= smtpc_txn_param(buf, len, &pos, "ORCPT", r->orcpt);
    }
    return bad ? -1 : 0;
}

/* ---- the envelope ---- */

/* Read a reply; one of a kind no command here gets (a 3xx other than
 * DATA's 354, or a 2xx to DATA) is a protocol error. */
static int
smtpc_txn_read(smtpc_session *s, const char *stage, int timeout_ms,
               struct smtpc_reply *r)
{
    int is_data = strcmp(stage, "DATA") == 0, code;

    if (smtpc_reply_read(s, stage, timeout_ms, r) != 0)
        return SMTPC_FAILED;
    code = r->code;
    if (code / 100 != 3 && !(is_data && code / 100 == 2))
        return 0;
    if (is_data && code == 354)
        return 0;
    smtpc_reply_clear(r);
    s->dead = 1;
    smtpc_reply_local(r, stage, "4.5.0",
                      "protocol error with %s: reply %d to %s", s->peer,
                      code, stage);
    return SMTPC_FAILED;
}

static const char *
smtpc_txn_stage(const struct smtpc_env *e, size_t k)
{
    return k == 0 ? "MAIL FROM" : k == e->ncmd - 1 ? "DATA" : "RCPT TO";
}

static int
smtpc_txn_timeout(const smtpc_session *s, const struct smtpc_env *e,
                  size_t k)
{
    return k == 0 ? s->to.mail_ms : k == e->ncmd - 1 ? s->to.data_ms
                                                     : s->to.rcpt_ms;
}

/* Queue the commands that may go now: up to the window (1 in lock-step),
 * none after MAIL was refused, no DATA when every RCPT reply is known and
 * none accepted. A recipient whose line cannot be built fails here.
 * 0, or SMTPC_FAILED when the connection failed. */
static int
smtpc_txn_queue(smtpc_session *s, smtpc_txn *t, struct smtpc_env *e)
{
    size_t window = (s->ehlo.ext & SMTPC_EXT_PIPELINING) ? SMTPC_PIPE_WINDOW
                                                         : 1;
    char line[SMTPC_CMD_MAX];
    struct smtpc_reply r;
    size_t k;
    int rc;

    /* a write may flush when the buffer fills */
    modmta_conn_set_timeout(s->conn, smtpc_txn_timeout(s, e, e->got));
    while (e->sent < e->ncmd && e->sent - e->got < window) {
        k = e->sent;
        if (e->mail_done && !e->mail_ok)
            return 0;
        if (k == e->ncmd - 1 && e->got == k && e->naccepted == 0)
            return 0;
        if (k == 0)
            rc = smtpc_txn_mail_line(line, sizeof(line), e->m, &s->ehlo,
                                     e->size);
        else if (k < e->ncmd - 1)
            rc = smtpc_txn_rcpt_line(line, sizeof(line), &e->m->rcpts[k - 1],
                                     &s->ehlo);
        else
            rc = snprintf(line, sizeof(line), "DATA") < 0 ? -1 : 0;
        e->sent++;
        if (rc < 0) { /* only a recipient: MAIL was checked before */
            memset(&r, 0, sizeof(r));
            smtpc_reply_local(&r, "RCPT TO", "5.5.4",
                              "invalid or over-long RCPT TO command");
            t->result[k - 1] = smtpc_txn_keep(t, &r);
            continue;
        }
        if ((rc = modmta_conn_printf(s->conn, "%s\r\n", line)) < 0) {
            memset(&r, 0, sizeof(r));
            smtpc_reply_lost(s, rc, smtpc_txn_stage(e, e->got), NULL, &r);
            smtpc_txn_rest(t, &r);
            return SMTPC_FAILED;
        }
    }
    return 0;
}

/* The reply r to command e->got. 0 to go on; SMTPC_FAILED after a 421
 * (the server is closing: its reply is the result of everyone left). */
static int
smtpc_txn_answer(smtpc_session *s, smtpc_txn *t, struct smtpc_env *e,
                 struct smtpc_reply *r)
{
    size_t k = e->got++;

    if (s->dead) {
        smtpc_txn_rest(t, r);
        return SMTPC_FAILED;
    }
    if (k == 0) {
        e->mail_done = 1;
        e->mail_ok = r->code / 100 == 2;
        s->open_txn = e->mail_ok;
        if (!e->mail_ok)
            e->mail = smtpc_txn_keep(t, r);
    } else if (k == e->ncmd - 1) {
        e->data = *r;
        e->data_done = 1;
        memset(r, 0, sizeof(*r));
    } else if (e->mail_ok && r->code / 100 == 2) {
        t->accepted[k - 1] = 1;
        e->naccepted++;
    } else if (e->mail_ok) {
        t->result[k - 1] = smtpc_txn_keep(t, r);
    }
    smtpc_reply_clear(r); /* what is not kept: after a refused MAIL, the
                           * replies to the RCPTs in flight */
    return 0;
}

/* MAIL, RCPT..., DATA: queue what may go, read the next reply, until
 * everything sent is answered and nothing more may go. 0, or
 * SMTPC_FAILED (every recipient has its result). */
static int
smtpc_txn_envelope(smtpc_session *s, smtpc_txn *t, struct smtpc_env *e)
{
    struct smtpc_reply r;
    const char *stage;
    size_t before;
    int rc, timeout;

    memset(&r, 0, sizeof(r));
    for (;;) {
        before = e->sent;
        if (smtpc_txn_queue(s, t, e) != 0)
            return SMTPC_FAILED;
        /* recipients that failed before being sent have no reply */
        while (e->got < e->sent && e->got > 0 && e->got < e->ncmd - 1
               && t->result[e->got - 1] != NULL)
            e->got++;
        if (e->got == e->sent) {
            if (e->sent == before)
                return 0;
            continue;
        }
        stage = smtpc_txn_stage(e, e->got);
        timeout = smtpc_txn_timeout(s, e, e->got);
        modmta_conn_set_timeout(s->conn, timeout);
        if ((rc = modmta_conn_flush(s->conn)) < 0) {
            smtpc_reply_lost(s, rc, stage, NULL, &r);
            smtpc_txn_rest(t, &r);
            return SMTPC_FAILED;
        }
        if (smtpc_txn_read(s, stage, timeout, &r) != 0) {
            smtpc_txn_rest(t, &r);
            return SMTPC_FAILED;
        }
        if (smtpc_txn_answer(s, t, e, &r) != 0)
            return SMTPC_FAILED;
    }
}

/* DATA got 354 but nothing is to be sent: RFC 2920 section 3.1 wants a
 * lone "." then. Its reply changes no result. 0 or SMTPC_FAILED. */
static int
smtpc_txn_dot(smtpc_session *s, struct smtpc_reply *r)
{
    if (smtpc_send(s, ".", "end of DATA", s->to.data_block_ms, r) != 0
        || smtpc_txn_read(s, "end of DATA", s->to.data_end_ms, r) != 0)
        return SMTPC_FAILED;
    smtpc_reply_clear(r);
    return 0;
}

/* After DATA's 354: the content, then the reply to "." (SMTP) or one per
 * accepted recipient in RCPT order (LMTP). */
static void
smtpc_txn_content(smtpc_session *s, smtpc_txn *t, int fd)
{
    struct smtpc_reply r;
    int rc, err = 0;
    size_t i;

    memset(&r, 0, sizeof(r));
    rc = smtpc_data_send(s, fd, &err);
    if (rc == MODMTA_E_TEMP) {
        /* the content was cut: no "." may follow, the session ends */
        s->dead = 1;
        smtpc_txn_fail(t, "end of DATA", "4.3.0",
                       "cannot read the queued message: %s", strerror(err));
        return;
    }
    if (rc < 0) {
        smtpc_reply_lost(s, rc, "end of DATA", "sending message body", &r);
        smtpc_txn_rest(t, &r);
        return;
    }
    s->open_txn = 0; /* after ".", whatever the replies */
    for (i = 0; i < t->n; i++) {
        if (s->role == SMTPC_LMTP && !t->accepted[i])
            continue;
        if (smtpc_txn_read(s, "end of DATA", s->to.data_end_ms, &r) != 0) {
            smtpc_txn_rest(t, &r);
            return;
        }
        t->data_sent = 1;
        if (s->role == SMTPC_SMTP || s->dead) {
            smtpc_txn_rest(t, &r); /* SMTP: one reply for all; a 421 */
            return;
        }
        t->result[i] = smtpc_txn_keep(t, &r);
    }
}

/* Before anything is sent: what the server's EHLO rules out. 0 to go on,
 * -1 when every recipient has failed. */
static int
smtpc_txn_checks(smtpc_session *s, smtpc_txn *t, const struct smtpc_msg *m,
                 off_t size)
{
    char line[SMTPC_CMD_MAX];

    if ((s->ehlo.ext & SMTPC_EXT_SIZE) && s->ehlo.size_max > 0
        && (unsigned long long)size > s->ehlo.size_max) {
        smtpc_txn_fail(t, "MAIL FROM", "5.3.4",
                       "message size %lld exceeds the size limit %llu of "
                       "%s", (long long)size, s->ehlo.size_max, s->peer);
        return -1;
    }
    if (m->need_smtputf8 && !(s->ehlo.ext & SMTPC_EXT_SMTPUTF8)) {
        smtpc_txn_fail(t, "MAIL FROM", "5.6.7",
                       "SMTPUTF8 is required, but was not offered by %s",
                       s->peer);
        return -1;
    }
    if (smtpc_txn_mail_line(line, sizeof(line), m, &s->ehlo, size) < 0) {
        smtpc_txn_fail(t, "MAIL FROM", "5.5.4",
                       "invalid or over-long MAIL FROM command");
        return -1;
    }
    return 0;
}

/* The envelope is answered: end it as the replies say, or send the
 * content. */
static void
smtpc_txn_finish(smtpc_session *s, smtpc_txn *t, struct smtpc_env *e,
                 int fd)
{
    struct smtpc_reply r;
    size_t i;
    int dot = e->data_done && e->data.code == 354;

    memset(&r, 0, sizeof(r));
    if (!e->mail_ok) {
        for (i = 0; i < t->n; i++)
            if (t->result[i] == NULL)
                t->result[i] = e->mail;
    } else if (e->naccepted > 0 && dot) {
        smtpc_txn_content(s, t, fd);
        return;
    } else if (e->naccepted > 0 && e->data_done) {
        smtpc_txn_rest(t, &e->data); /* DATA refused */
    }
    /* MAIL refused or no recipient: a pipelined DATA that got 354 still
     * needs its "." */
    if (dot && smtpc_txn_dot(s, &r) == 0 && e->mail_ok)
        s->open_txn = 0;
    smtpc_reply_clear(&r);
}

smtpc_txn *
smtpc_txn_run(smtpc_session *s, const struct smtpc_msg *m)
{
    smtpc_txn *t = smtpc_txn_new(m->nrcpts);
    struct smtpc_reply r;
    struct smtpc_env e;
    struct stat st;
    int fd;

    if (t == NULL || m->nrcpts == 0)
        return t;
    memset(&r, 0, sizeof(r));
    if (s->dead) {
        smtpc_txn_fail(t, "MAIL FROM", "4.4.2", "connection with %s is "
                       "closed", s->peer);
        return t;
    }
    fd = open(m->path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        smtpc_txn_fail(t, "MAIL FROM", "4.3.0",
                       "cannot read the queued message: %s",
                       strerror(errno));
        if (fd >= 0)
            close(fd);
        return t;
    }
    if (smtpc_txn_checks(s, t, m, st.st_size) < 0) {
        close(fd);
        return t;
    }
    if (s->open_txn) {
        /* a transaction left open (nothing was delivered): reset it */
        if (smtpc_rset(s, &r) == SMTPC_FAILED)
            smtpc_txn_rest(t, &r);
        else if (r.code != 250)
            smtpc_txn_fail(t, "RSET", "4.4.2", "%s refused RSET: %d %s",
                           s->peer, r.code, r.text);
        smtpc_reply_clear(&r);
        if (s->open_txn) {
            close(fd);
            return t;
        }
    }
    s->ntxn++;
    memset(&e, 0, sizeof(e));
    e.m = m;
    e.size = st.st_size;
    e.ncmd = m->nrcpts + 2;
    if (smtpc_txn_envelope(s, t, &e) == 0)
        smtpc_txn_finish(s, t, &e, fd);
    smtpc_reply_clear(&e.data);
    close(fd);
    return t;
}
