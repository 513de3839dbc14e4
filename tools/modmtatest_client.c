/*
 * The client side of modmtatest's session: what a mail client sends,
 * one command at a time (no pipelining, so each hook call belongs to the
 * command sent last), each command and its reply recorded as a step.
 * The message goes as SMTP carries it: every line ended by CRLF (a file
 * with LF line ends is converted; a bare CR inside a line is sent as it
 * is, and the session refuses it as the daemon would), dot-stuffed, then
 * "." alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "modmtatest.h"

#define MT_LINE_MAX 4096

struct mt_conn {
    int fd;
    char buf[MT_LINE_MAX];
    size_t len, off;
};

/* The EHLO keywords that change what the client sends. */
struct mt_ext {
    int size, eightbit, utf8;
};

/* The message as DATA carries it. */
struct mt_wire {
    char *buf;                    /* dot-stuffed, ".\r\n" included */
    size_t len;
    size_t size;                  /* unstuffed: what SIZE= declares */
};

static ssize_t mt_readline(struct mt_conn *c, char *line, size_t cap);
static int mt_reply(struct mt *t, struct mt_conn *c, long step);
static int mt_write(int fd, const char *buf, size_t n);
static int mt_command(struct mt *t, struct mt_conn *c, const char *cmd);
static void mt_ehlo_ext(const struct mt *t, long step, struct mt_ext *e);
static int mt_wire(const char *msg, size_t len, struct mt_wire *w);
static int mt_8bit(const char *s, size_t n);
static int mt_mail(struct mt *t, struct mt_conn *c, const struct mt_ext *e,
                   const struct mt_wire *w);
static int mt_data(struct mt *t, struct mt_conn *c, const struct mt_wire *w);
static int mt_transaction(struct mt *t, struct mt_conn *c,
                          const struct mt_wire *w);

/* One line without its CRLF (cut at cap - 1), or -1 at end of input. */
static ssize_t
mt_readline(struct mt_conn *c, char *line, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    char ch;

    for (;;) {
        if (c->off == c->len) {
            do
                r = read(c->fd, c->buf, sizeof(c->buf));
            while (r < 0 && errno == EINTR);
            if (r <= 0)
                return -1;
            c->len = (size_t)r;
            c->off = 0;
        }
        ch = c->buf[c->off++];
        if (ch == '\n')
            break;
        if (n + 1 < cap)
            line[n++] = ch;
    }
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    return (ssize_t)n;
}

/* Read one reply (all its lines) into step. Its code, or 0 when the
 * session closed the connection first. */
static int
mt_reply(struct mt *t, struct mt_conn *c, long step)
{
    char line[MT_LINE_MAX], **lines = NULL, **n, *copy;
    size_t nlines = 0;
    int code = 0, more = 1;

    while (more && mt_readline(c, line, sizeof(line)) >= 0) {
        code = atoi(line);
        more = strlen(line) >= 4 && line[3] == '-';
        copy = strdup(strlen(line) >= 4 ? line + 4 : "");
        n = realloc(lines, (nlines + 1) * sizeof(*n));
        if (copy == NULL || n == NULL) {
            free(copy);
            lines = n != NULL ? n : lines;
            continue;
        }
        lines = n;
        lines[nlines++] = copy;
    }
    if (more)
        code = 0;
    pthread_mutex_lock(&t->lock);
    t->steps[step].code = code;
    t->steps[step].lines = lines;
    t->steps[step].nlines = nlines;
    pthread_mutex_unlock(&t->lock);
    return code;
}

static int
mt_write(int fd, const char *buf, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Send cmd as a new step; the reply's code, 0 when the connection is
 * gone, -1 out of memory. */
static int
mt_command(struct mt *t, struct mt_conn *c, const char *cmd)
{
    long step = mt_step_new(t, cmd);

    if (step < 0)
        return -1;
    if (mt_write(c->fd, cmd, strlen(cmd)) < 0 ||
        mt_write(c->fd, "\r\n", 2) < 0)
        return 0;
    return mt_reply(t, c, step);
}

static void
mt_ehlo_ext(const struct mt *t, long step, struct mt_ext *e)
{
    const struct mt_step *st = &t->steps[step];

    memset(e, 0, sizeof(*e));
    for (size_t i = 1; i < st->nlines; i++) {
        const char *kw = st->lines[i];

        e->size |= strncasecmp(kw, "SIZE", 4) == 0 &&
                   (kw[4] == '\0' || kw[4] == ' ');
        e->eightbit |= strcasecmp(kw, "8BITMIME") == 0;
        e->utf8 |= strcasecmp(kw, "SMTPUTF8") == 0;
    }
}

/* The message as DATA carries it. 0, or -1 out of memory. */
static int
mt_wire(const char *msg, size_t len, struct mt_wire *w)
{
    const char *p = msg, *end = msg + len, *nl;
    char *o;
    size_t l;

    /* at worst every line is "." + LF: 4 octets out of 2, plus ".\r\n" */
    if ((w->buf = malloc(len * 2 + 8)) == NULL)
        return -1;
    o = w->buf;
    w->size = 0;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        if (l > 0 && nl != NULL && p[l - 1] == '\r')
            l--;
        if (l > 0 && p[0] == '.')
            *o++ = '.';
        memcpy(o, p, l);
        o += l;
        memcpy(o, "\r\n", 2);
        o += 2;
        w->size += l + 2;
        p = nl != NULL ? nl + 1 : end;
    }
    memcpy(o, ".\r\n", 3);
    w->len = (size_t)(o - w->buf) + 3;
    return 0;
}

/* 1 if s has an octet over 127. */
static int
mt_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] > 127)
            return 1;
    return 0;
}

/* MAIL FROM with the parameters a client would give: SIZE, BODY for
 * 8-bit content, SMTPUTF8 for UTF-8 addresses (when offered). */
static int
mt_mail(struct mt *t, struct mt_conn *c, const struct mt_ext *e,
        const struct mt_wire *w)
{
    char *cmd, size[48] = "";
    int utf8 = mt_8bit(t->o.sender, strlen(t->o.sender)), code;

    for (size_t i = 0; i < t->o.nrcpts; i++)
        utf8 |= mt_8bit(t->o.rcpts[i], strlen(t->o.rcpts[i]));
    if (e->size)
        snprintf(size, sizeof(size), " SIZE=%zu", w->size);
    if (asprintf(&cmd, "MAIL FROM:<%s>%s%s%s", t->o.sender, size,
                 e->eightbit && mt_8bit(t->msg, t->msglen)
                     ? " BODY=8BITMIME" : "",
                 e->utf8 && utf8 ? " SMTPUTF8" : "") < 0)
        return -1;
    code = mt_command(t, c, cmd);
    free(cmd);
    return code;
}

/* DATA, the message, its final reply. */
static int
mt_data(struct mt *t, struct mt_conn *c, const struct mt_wire *w)
{
    int code = mt_command(t, c, "DATA");
    long step;

    if (code != 354)
        return code;
    if ((step = mt_step_new(t, ".")) < 0)
        return -1;
    pthread_mutex_lock(&t->lock);
    t->data_step = (size_t)step;
    t->have_data_step = 1;
    pthread_mutex_unlock(&t->lock);
    return mt_write(c->fd, w->buf, w->len) < 0 ? 0 : mt_reply(t, c, step);
}

/* EHLO, MAIL, each RCPT (all of them, whatever the replies), DATA when
 * one was accepted. The code of the last reply, 0 when the connection
 * is gone, -1 out of memory. */
static int
mt_transaction(struct mt *t, struct mt_conn *c, const struct mt_wire *w)
{
    struct mt_ext ext;
    size_t accepted = 0;
    char *cmd;
    int code;

    if (asprintf(&cmd, "EHLO %s", t->o.helo) < 0)
        return -1;
    code = mt_command(t, c, cmd);
    free(cmd);
    if (code / 100 != 2)
        return code;
    mt_ehlo_ext(t, (long)t->nsteps - 1, &ext);
    if ((code = mt_mail(t, c, &ext, w)) / 100 != 2)
        return code;
    for (size_t i = 0; i < t->o.nrcpts; i++) {
        if (asprintf(&cmd, "RCPT TO:<%s>", t->o.rcpts[i]) < 0)
            return -1;
        code = mt_command(t, c, cmd);
        free(cmd);
        if (code <= 0 || code == 421)
            return code;
        accepted += code / 100 == 2;
    }
    return accepted > 0 ? mt_data(t, c, w) : code;
}

void
mt_dialogue(struct mt *t, int fd)
{
    struct mt_conn c = {.fd = fd};
    struct mt_wire w;
    int code;

    if (mt_wire(t->msg, t->msglen, &w) < 0) {
        fprintf(stderr, "modmtatest: out of memory\n");
        return;
    }
    /* the greeting: the connection step exists from the start */
    code = mt_reply(t, &c, 0);
    if (code == 220)
        code = mt_transaction(t, &c, &w);
    if (code > 0 && code != 421)
        mt_command(t, &c, "QUIT");
    free(w.buf);
}
