/*
 * Reading and parsing replies (RFC 5321 section 4.2): multi-line replies
 * with one code, the enhanced status code (RFC 3463) taken off the text,
 * bounds (smtpc.h), and the local reasons that stand in for a reply when
 * the conversation fails.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtpc_priv.h"

/* The text of a reply whose text could not be allocated. */
static char smtpc_reply_nomem[] = "out of memory";

static int smtpc_rparse_append(struct smtpc_rparse *p, const char *s,
                               size_t len);
static const char *smtpc_reply_doing(const char *stage, char *buf,
                                     size_t len);

int
smtpc_reply_class(const struct smtpc_reply *r)
{
    if (r->code != 0)
        return r->code / 100;
    return r->esc[0] == '2' || r->esc[0] == '5' ? r->esc[0] - '0' : 4;
}

void
smtpc_reply_clear(struct smtpc_reply *r)
{
    if (r->text != smtpc_reply_nomem)
        free(r->text);
    memset(r, 0, sizeof(*r));
}

size_t
smtpc_esc_len(const char *s, size_t len, int code)
{
    size_t i = 1, part, digits;

    if (len < 5 || s[0] != '0' + code / 100 || s[1] != '.')
        return 0;
    for (part = 0; part < 2; part++) {
        i++;
        for (digits = 0; i < len && isdigit((unsigned char)s[i]); i++)
            digits++;
        if (digits < 1 || digits > 3)
            return 0;
        if (part == 0 && (i >= len || s[i] != '.'))
            return 0;
    }
    if (i < len && s[i] != ' ')
        return 0;
    return i;
}

static int
smtpc_rparse_append(struct smtpc_rparse *p, const char *s, size_t len)
{
    size_t need = p->len + len + 2;
    char *t;

    if (need > p->cap) {
        if (need < 2 * p->cap)
            need = 2 * p->cap;
        if ((t = realloc(p->text, need)) == NULL)
            return -1;
        p->text = t;
        p->cap = need;
    }
    if (p->nlines > 1)
        p->text[p->len++] = '\n';
    memcpy(p->text + p->len, s, len);
    p->len += len;
    p->text[p->len] = '\0';
    return 0;
}

int
smtpc_rparse_line(struct smtpc_rparse *p, const char *line, size_t len)
{
    const char *text;
    size_t n, tlen;
    int code, last;

    if (len < 3 || !isdigit((unsigned char)line[0])
        || !isdigit((unsigned char)line[1])
        || !isdigit((unsigned char)line[2])) {
        p->error = "a reply line without a code";
        return -1;
    }
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code < 200 || code > 599) {
        p->error = "a reply code out of 200-599";
        return -1;
    }
    if (len > 3 && line[3] != ' ' && line[3] != '-') {
        p->error = "a reply code not followed by a space or '-'";
        return -1;
    }
    if (memchr(line, '\0', len) != NULL) {
        p->error = "a NUL in a reply";
        return -1;
    }
    if (p->nlines > 0 && code != p->code) {
        p->error = "reply lines with different codes";
        return -1;
    }
    if (p->nlines >= SMTPC_LINES_MAX) {
        p->error = "a reply longer than 100 lines";
        return -1;
    }
    last = len == 3 || line[3] == ' ';
    text = len > 4 ? line + 4 : "";
    tlen = len > 4 ? len - 4 : 0;
    if (p->nlines == 0) {
        p->code = code;
        n = smtpc_esc_len(text, tlen, code);
        if (n > 0 && n < sizeof(p->esc)) {
            memcpy(p->esc, text, n);
            p->esc[n] = '\0';
        }
    }
    n = strlen(p->esc);
    if (n > 0 && tlen >= n && memcmp(text, p->esc, n) == 0
        && (tlen == n || text[n] == ' ')) {
        text += tlen == n ? n : n + 1;
        tlen -= tlen == n ? n : n + 1;
    }
    p->nlines++;
    if (smtpc_rparse_append(p, text, tlen) < 0)
        return -2;
    return last;
}

void
smtpc_rparse_take(struct smtpc_rparse *p, const char *stage,
                  struct smtpc_reply *r)
{
    r->code = p->code;
    memcpy(r->esc, p->esc, sizeof(r->esc));
    r->stage = stage;
    r->text = p->text != NULL ? p->text : strdup("");
    if (r->text == NULL)
        r->text = smtpc_reply_nomem;
    p->text = NULL;
    smtpc_rparse_free(p);
}

void
smtpc_rparse_free(struct smtpc_rparse *p)
{
    free(p->text);
    memset(p, 0, sizeof(*p));
}

int
smtpc_reply_local(struct smtpc_reply *r, const char *stage, const char *esc,
                  const char *fmt, ...)
{
    va_list ap;
    int n;

    r->code = 0;
    snprintf(r->esc, sizeof(r->esc), "%s", esc);
    r->stage = stage;
    va_start(ap, fmt);
    n = vasprintf(&r->text, fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->text = smtpc_reply_nomem;
        return -1;
    }
    return 0;
}

/* What the client was doing at stage, for "lost connection ... while". */
static const char *
smtpc_reply_doing(const char *stage, char *buf, size_t len)
{
    if (stage != NULL && strcmp(stage, "greeting") == 0)
        return "receiving the initial server greeting";
    snprintf(buf, len, "sending %s", stage != NULL ? stage : "a command");
    return buf;
}

int
smtpc_reply_lost(smtpc_session *s, int rc, const char *stage,
                 const char *doing, struct smtpc_reply *r)
{
    char buf[64];

    if (doing == NULL)
        doing = smtpc_reply_doing(stage, buf, sizeof(buf));
    s->dead = 1;
    if (rc == MODMTA_E_TIMEOUT)
        smtpc_reply_local(r, stage, "4.4.2",
                          "conversation with %s timed out while %s",
                          s->peer, doing);
    else
        smtpc_reply_local(r, stage, "4.4.2",
                          "lost connection with %s while %s", s->peer,
                          doing);
    return SMTPC_FAILED;
}

int
smtpc_reply_read(smtpc_session *s, const char *stage, int timeout_ms,
                 struct smtpc_reply *r)
{
    struct smtpc_rparse p;
    char line[SMTPC_LINE_MAX + 5], buf[64];
    ssize_t n;
    int rc;

    struct timespec start, now;
    long left = timeout_ms;

    memset(&p, 0, sizeof(p));
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        /* One deadline for the whole reply: a server that trickles
         * continuation lines gets no more time than one that is silent. */
        clock_gettime(CLOCK_MONOTONIC, &now);
        left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000L +
                             (now.tv_nsec - start.tv_nsec) / 1000000L);
        n = left <= 0 ? MODMTA_E_TIMEOUT
                      : modmta_conn_readline(s->conn, line, sizeof(line),
                                             (int)left);
        if (n == MODMTA_E_LIMIT) {
            n = (ssize_t)sizeof(line) - 1; /* cut at SMTPC_LINE_MAX */
        } else if (n == MODMTA_E_INVAL) {
            p.error = "a bare CR or LF in a reply";
            rc = -1;
            break;
        } else if (n < 0) {
            smtpc_rparse_free(&p);
            return smtpc_reply_lost(s, (int)n, stage, NULL, r);
        }
        rc = smtpc_rparse_line(&p, line, (size_t)n);
    } while (rc == 0);
    if (rc < 0) {
        s->dead = 1;
        if (rc == -2)
            smtpc_reply_local(r, stage, "4.3.0", "out of memory");
        else
            smtpc_reply_local(r, stage, "4.5.0",
                              "protocol error with %s while %s: %s",
                              s->peer,
                              smtpc_reply_doing(stage, buf, sizeof(buf)),
                              p.error);
        smtpc_rparse_free(&p);
        return SMTPC_FAILED;
    }
    smtpc_rparse_take(&p, stage, r);
    if (r->code == 421)
        s->dead = 1;
    return 0;
}
