/*
 * The local submission client (see submit_client.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "submit_client.h"

#define SUBMIT_LINE_MAX 1024
#define SUBMIT_OUT_MAX 16384

struct submit_io {
    int fd;
    FILE *trace;
    char in[SUBMIT_LINE_MAX * 4];
    size_t inlen;
    char out[SUBMIT_OUT_MAX];
    size_t outlen;
    int failed;
};

static int
submit_flush(struct submit_io *io)
{
    size_t off = 0;

    while (!io->failed && off < io->outlen) {
        ssize_t n = send(io->fd, io->out + off, io->outlen - off,
                         MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            io->failed = 1;
        else
            off += (size_t)n;
    }
    io->outlen = 0;
    return io->failed ? -1 : 0;
}

static void
submit_put(struct submit_io *io, const char *p, size_t len)
{
    while (len > 0 && !io->failed) {
        size_t n = sizeof(io->out) - io->outlen;

        if (n > len)
            n = len;
        memcpy(io->out + io->outlen, p, n);
        io->outlen += n;
        p += n;
        len -= n;
        if (io->outlen == sizeof(io->out))
            submit_flush(io);
    }
}

__attribute__((format(printf, 2, 3))) static void
submit_cmd(struct submit_io *io, const char *fmt, ...)
{
    char line[SUBMIT_LINE_MAX];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 2) {
        io->failed = 1;
        return;
    }
    if (io->trace != NULL)
        fprintf(io->trace, ">>> %s\n", line);
    memcpy(line + n, "\r\n", 2);
    submit_put(io, line, (size_t)n + 2);
    submit_flush(io);
}

/* One reply line into line (CRLF stripped); -1 on EOF or error. */
static int
submit_line(struct submit_io *io, char *line, size_t size)
{
    for (;;) {
        char *nl = memchr(io->in, '\n', io->inlen);
        ssize_t n;

        if (nl != NULL) {
            size_t len = (size_t)(nl - io->in);

            snprintf(line, size, "%.*s", (int)len, io->in);
            line[strcspn(line, "\r")] = '\0';
            memmove(io->in, nl + 1, io->inlen - len - 1);
            io->inlen -= len + 1;
            return 0;
        }
        if (io->inlen == sizeof(io->in))
            return -1;
        n = recv(io->fd, io->in + io->inlen, sizeof(io->in) - io->inlen, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        io->inlen += (size_t)n;
    }
}

/* A whole (multi-line) reply: its code, its last line in r->reply;
 * -1 on I/O failure or garbage. */
static int
submit_reply(struct submit_io *io, struct submit_result *r)
{
    char line[SUBMIT_LINE_MAX];

    if (io->failed)
        return -1;
    for (;;) {
        if (submit_line(io, line, sizeof(line)) < 0) {
            snprintf(r->reply, sizeof(r->reply), "connection lost");
            return -1;
        }
        if (io->trace != NULL)
            fprintf(io->trace, "<<< %s\n", line);
        if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
            (line[3] != '\0' && line[3] != ' ' && line[3] != '-')) {
            snprintf(r->reply, sizeof(r->reply), "bad reply: %.80s", line);
            return -1;
        }
        if (line[3] != '-') {
            snprintf(r->reply, sizeof(r->reply), "%.*s",
                     (int)sizeof(r->reply) - 1, line);
            return atoi(line);
        }
    }
}

/* The message, CRLF line ends and dot-stuffed, then ".". */
static void
submit_data(struct submit_io *io, const char *p, size_t len)
{
    while (len > 0) {
        const char *nl = memchr(p, '\n', len);
        size_t n = nl != NULL ? (size_t)(nl - p) : len;
        size_t body = n > 0 && p[n - 1] == '\r' ? n - 1 : n;

        if (body > 0 && p[0] == '.')
            submit_put(io, ".", 1);
        submit_put(io, p, body);
        submit_put(io, "\r\n", 2);
        if (nl == NULL)
            break;
        p += n + 1;
        len -= n + 1;
    }
    submit_put(io, ".\r\n", 3);
    submit_flush(io);
}

static int
submit_refused(struct submit_result *r, const char *rcpt, int code)
{
    char **p = realloc(r->refused, (r->nrefused + 1) * sizeof(*p));

    if (p == NULL)
        return -1;
    r->refused = p;
    if (asprintf(&p[r->nrefused], "<%s>: %s", rcpt, r->reply) < 0)
        return -1;
    r->nrefused++;
    r->refused_perm |= code >= 500;
    return 0;
}

static enum submit_status
submit_end(struct submit_io *io, struct submit_result *r, int code)
{
    char keep[sizeof(r->reply)];
    struct submit_result dummy;

    if (code < 0)
        return r->status = SUBMIT_IO;
    memcpy(keep, r->reply, sizeof(keep));
    submit_cmd(io, "QUIT");
    submit_reply(io, &dummy);
    memcpy(r->reply, keep, sizeof(keep));
    if (code >= 200 && code < 300)
        return r->status = SUBMIT_QUEUED;
    return r->status = code >= 500 ? SUBMIT_PERM : SUBMIT_TEMP;
}

static enum submit_status
submit_run(struct submit_io *io, const char *helo,
           const struct submit_msg *m, struct submit_result *r)
{
    size_t accepted = 0, temp = 0;
    int code;

    if ((code = submit_reply(io, r)) != 220)
        return submit_end(io, r, code < 0 ? -1 : code);
    submit_cmd(io, "EHLO %s", helo);
    if ((code = submit_reply(io, r)) != 250)
        return submit_end(io, r, code);
    submit_cmd(io, "MAIL FROM:<%s>", m->sender);
    if ((code = submit_reply(io, r)) != 250)
        return submit_end(io, r, code);
    for (size_t i = 0; i < m->nrcpts; i++) {
        submit_cmd(io, "RCPT TO:<%s>", m->rcpts[i]);
        code = submit_reply(io, r);
        if (code < 0)
            return submit_end(io, r, -1);
        if (code / 100 == 2)
            accepted++;
        else if (submit_refused(r, m->rcpts[i], code) < 0)
            return submit_end(io, r, -1);
        temp += code / 100 == 4;
    }
    if (accepted == 0)
        return submit_end(io, r, temp > 0 ? 451 : 550);
    submit_cmd(io, "DATA");
    if ((code = submit_reply(io, r)) != 354)
        return submit_end(io, r, code);
    submit_data(io, m->data, m->len);
    code = submit_reply(io, r);
    return submit_end(io, r, code);
}

enum submit_status
submit_client_send(int fd, const char *helo, const struct submit_msg *m,
                   struct submit_result *r, FILE *trace)
{
    struct submit_io *io = calloc(1, sizeof(*io));

    memset(r, 0, sizeof(*r));
    if (io == NULL) {
        snprintf(r->reply, sizeof(r->reply), "out of memory");
        return r->status = SUBMIT_IO;
    }
    io->fd = fd;
    io->trace = trace;
    submit_run(io, helo, m, r);
    free(io);
    return r->status;
}

void
submit_result_free(struct submit_result *r)
{
    for (size_t i = 0; i < r->nrefused; i++)
        free(r->refused[i]);
    free(r->refused);
    r->refused = NULL;
    r->nrefused = 0;
}
