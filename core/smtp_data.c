/*
 * The DATA reader (see smtp_data.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modmta/err.h>

#include "conn_priv.h"
#include "ctx_priv.h"
#include "smtp_data.h"
#include "stress.h"

/* Output buffer; one input chunk yields at most twice its size. */
#define DATA_OUT 65536

enum data_state {
    D_BOL = 0, /* at the start of a line (after CRLF, or at the start) */
    D_DOT,     /* "." at the start of a line */
    D_DOTCR,   /* ".\r" at the start of a line */
    D_MID,     /* inside a line */
    D_CR,      /* "\r" inside a line */
};

static size_t data_scan(struct smtp_data *d, const char *in, size_t n,
                        char *out, size_t *olen_r, int *end_r);
static void data_write(struct smtp_data *d, const char *buf, size_t n);
static void data_hdr_feed(struct smtp_data *d, const char *p, size_t n);
static void data_release(struct smtp_data *d, const char *prepend,
                         size_t plen, const char *chunk, size_t n,
                         int in_hbuf, int end);
static int data_hdr_line(struct smtp_data *d, size_t end);
static void data_hdr_end(struct smtp_data *d, size_t at);
static int data_hdr_parse(struct smtp_data *d);

/* Run the line state machine over n input octets, writing the unstuffed
 * content to out. Returns the octets consumed (all of them, or up to the
 * final LF of CRLF.CRLF when the end is seen: *end_r = 1). */
static size_t
data_scan(struct smtp_data *d, const char *in, size_t n, char *out,
          size_t *olen_r, int *end_r)
{
    char *o = out;
    size_t i = 0, run;
    char c;

    *end_r = 0;
    while (i < n) {
        c = in[i++];
        switch (d->state) {
        case D_BOL:
            if (c == '.') {
                d->state = D_DOT;
                continue;
            }
            break;
        case D_DOT:
            if (c == '\r') {
                d->state = D_DOTCR;
                continue;
            }
            break; /* the stuffed dot is dropped */
        case D_DOTCR:
            if (c == '\n') {
                *end_r = 1;
                *olen_r = (size_t)(o - out);
                return i;
            }
            d->bad_eol = 1; /* ".\r" and no LF: a bare CR */
            *o++ = '\r';
            break;
        case D_CR:
            if (c == '\n') {
                *o++ = '\r';
                *o++ = '\n';
                d->state = D_BOL;
                continue;
            }
            d->bad_eol = 1;
            *o++ = '\r';
            break;
        default:
            break;
        }
        /* inside a line: c is its next octet */
        if (c == '\r') {
            d->state = D_CR;
            continue;
        }
        if (c == '\n')
            d->bad_eol = 1;
        if (c == '\0')
            d->bad_nul = 1;
        *o++ = c;
        d->state = D_MID;
        /* fast path: copy the plain run that follows */
        for (run = 0; i + run < n && in[i + run] != '\r'
                      && in[i + run] != '\n'; run++)
            ;
        if (memchr(in + i, '\0', run) != NULL)
            d->bad_nul = 1;
        memcpy(o, in + i, run);
        o += run;
        i += run;
    }
    *olen_r = (size_t)(o - out);
    return i;
}

static void
data_write(struct smtp_data *d, const char *buf, size_t n)
{
    int rc;

    if (n == 0 || d->too_big || d->bad_eol || d->bad_nul ||
        d->write_err != 0)
        return;
    rc = queue_writer_write(d->w, buf, n);
    if (rc < 0)
        d->write_err = rc;
}

static void
data_hdr_end(struct smtp_data *d, size_t at)
{
    d->in_hdrs = 0;
    d->hdr_len = (long long)at;
}

/* Classify the line hbuf[line_start, end): 1 when the header block goes
 * on, 0 when it ended before this line. */
static int
data_hdr_line(struct smtp_data *d, size_t end)
{
    const char *l = d->hbuf + d->line_start;
    size_t len = end - d->line_start, i;

    if (len <= 2) {
        data_hdr_end(d, d->line_start); /* the empty line */
        return 0;
    }
    if (l[0] == ' ' || l[0] == '\t') {
        /* not a continuation of our Received: header */
        if (d->line_start == d->first) {
            data_hdr_end(d, d->line_start);
            return 0;
        }
        d->line_start = end; /* folded continuation */
        return 1;
    }
    /* field-name = 1*ftext, ftext = %d33-57 / %d59-126 (RFC 5322) */
    for (i = 0; i < len && l[i] != ':'; i++) {
        if ((unsigned char)l[i] < 33 || (unsigned char)l[i] > 126) {
            data_hdr_end(d, d->line_start);
            return 0;
        }
    }
    if (i == 0 || i == len) {
        data_hdr_end(d, d->line_start);
        return 0;
    }
    if (++d->nfields > SMTP_DATA_HDR_FIELDS) {
        data_hdr_end(d, d->line_start);
        return 0;
    }
    d->cur_hdr = d->line_start;
    d->line_start = end;
    return 1;
}

/* Where the header block ends when it outgrows the buffer: before the
 * field being read (it may go on), or, when the client's first line is
 * that big, right after our Received: header, the rest being body. */
static size_t
data_hdr_cut(const struct smtp_data *d)
{
    return d->line_start == d->first ? d->first : d->cur_hdr;
}

static void
data_hdr_feed(struct smtp_data *d, const char *p, size_t n)
{
    size_t k, old = d->hlen;
    char *nb;

    if (d->hlen + n > SMTP_DATA_HDR_MAX) {
        data_hdr_end(d, data_hdr_cut(d));
        return;
    }
    if (d->hlen + n > d->hcap) {
        d->hcap = d->hcap == 0 ? 8192 : d->hcap;
        while (d->hcap < d->hlen + n)
            d->hcap *= 2;
        nb = realloc(d->hbuf, d->hcap);
        if (nb == NULL) {
            data_hdr_end(d, data_hdr_cut(d));
            return;
        }
        d->hbuf = nb;
    }
    memcpy(d->hbuf + d->hlen, p, n);
    d->hlen += n;
    for (k = old; k < d->hlen; k++)
        if (d->hbuf[k] == '\n' && !data_hdr_line(d, k + 1))
            return;
}

/* Until the client's first line is known to be a header field or not,
 * its octets wait in hbuf and our Received: header is not written yet:
 * a message that starts with its body (a how-to's "telnet" message) then
 * gets the empty line that ends the header block after our header, as
 * Postfix's cleanup and Sendmail add it; without it the body's first
 * line would read as a header. in_hbuf: the chunk went into hbuf. */
static void
data_release(struct smtp_data *d, const char *prepend, size_t plen,
             const char *chunk, size_t n, int in_hbuf, int end)
{
    const char *c0 = d->hlen > d->first ? d->hbuf + d->first
                     : !in_hbuf && n > 0 ? chunk : NULL;

    if (in_hbuf && !end && d->in_hdrs && d->line_start <= d->first)
        return; /* the first line is not complete yet */
    d->held = 0;
    data_write(d, prepend, plen);
    if (!d->in_hdrs && d->hdr_len == (long long)d->first && c0 != NULL &&
        *c0 != '\r')
        data_write(d, "\r\n", 2);
    data_write(d, d->hbuf + d->first, d->hlen - d->first);
    if (!in_hbuf)
        data_write(d, chunk, n);
}

/* Split hbuf[0, hdr_len) into fields and add them to the ctx. */
static int
data_hdr_parse(struct smtp_data *d)
{
    size_t pos = 0, end, next, colon;
    char *b = d->hbuf;
    int rc;

    while (pos < (size_t)d->hdr_len) {
        /* the field runs to the next line not starting with WSP */
        end = pos;
        for (;;) {
            next = (size_t)((char *)memchr(b + end, '\n',
                                           (size_t)d->hdr_len - end) - b) + 1;
            end = next;
            if (end >= (size_t)d->hdr_len || (b[end] != ' '
                                              && b[end] != '\t'))
                break;
        }
        colon = (size_t)((char *)memchr(b + pos, ':', end - pos) - b);
        b[colon] = '\0';
        b[end - 2] = '\0'; /* the CR of the final CRLF */
        /* One SP after the colon is the separator the ctx's serializer
         * writes back ("Name: value"); the rest of the value is raw. */
        if (b[colon + 1] == ' ')
            colon++;
        rc = modmta_ctx_add_header(d->ctx, b + pos, b + colon + 1);
        if (rc < 0)
            return rc;
        pos = end;
    }
    return 0;
}

static long long
data_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The wait for the next read: the per-read timeout (shorter under
 * stress), never past the overall deadline (0: none). <= 0: it passed. */
static long long
data_wait_ms(const struct smtp_data *d, long long deadline)
{
    long long t = stress_timeout(d->timeout_ms, d->stress_timeout_ms);

    if (deadline > 0 && deadline - data_now_ms() < t)
        t = deadline - data_now_ms();
    return t;
}

int
smtp_data_read(struct smtp_data *d, const char *prepend, size_t plen)
{
    const char *in;
    char *out;
    size_t used, olen, before;
    ssize_t n;
    int end = 0, rc = 0;
    long long deadline = d->total_ms > 0 ? data_now_ms() + d->total_ms : 0,
              wait;

    d->size = d->hdr_len = 0;
    d->too_big = d->bad_eol = d->bad_nul = d->write_err = 0;
    d->state = D_BOL;
    d->in_hdrs = 1;
    d->hlen = d->line_start = d->cur_hdr = d->nfields = d->first = 0;
    out = malloc(DATA_OUT);
    if (out == NULL)
        return MODMTA_E_NOMEM;
    data_hdr_feed(d, prepend, plen);
    d->first = d->hlen;
    d->held = 1;
    while (!end) {
        wait = data_wait_ms(d, deadline);
        if (wait <= 0) {
            rc = MODMTA_E_TIMEOUT;
            break;
        }
        n = modmta_conn_peek(d->conn, &in, (int)wait);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if ((size_t)n > DATA_OUT / 2)
            n = DATA_OUT / 2;
        used = data_scan(d, in, (size_t)n, out, &olen, &end);
        modmta_conn_consume(d->conn, used);
        d->size += (long long)olen;
        if (d->limit > 0 && d->size > d->limit)
            d->too_big = 1;
        before = d->hlen;
        if (d->in_hdrs && !d->bad_eol && !d->bad_nul && !d->too_big)
            data_hdr_feed(d, out, olen);
        if (d->held)
            data_release(d, prepend, plen, out, olen,
                         d->hlen - before == olen, end);
        else
            data_write(d, out, olen);
    }
    free(out);
    if (rc < 0)
        return rc;
    if (d->in_hdrs)
        data_hdr_end(d, d->line_start);
    if (d->ctx != NULL && !d->bad_eol && !d->bad_nul && !d->too_big
        && (rc = data_hdr_parse(d)) < 0 && d->write_err == 0)
        d->write_err = rc;
    return 0;
}

void
smtp_data_done(struct smtp_data *d)
{
    free(d->hbuf);
    d->hbuf = NULL;
    d->hlen = d->hcap = 0;
}

char *
smtp_data_received(const char *helo, const char *client_name,
                   const char *client_addr, const char *hostname,
                   const char *proto, const char *tls_version,
                   const char *tls_cipher, const char *queue_id,
                   const char *rcpt)
{
    char date[64], tls[160] = "", fr[600] = "";
    struct tm tm;
    time_t now = time(NULL);
    char *s;

    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    if (tls_version != NULL)
        snprintf(tls, sizeof(tls), " (%s with cipher %s)", tls_version,
                 tls_cipher != NULL ? tls_cipher : "unknown");
    if (rcpt != NULL)
        snprintf(fr, sizeof(fr), "\r\n\tfor <%s>", rcpt);
    if (asprintf(&s, "Received: from %s (%s [%s])\r\n\tby %s (modmta) "
                 "with %s%s id %s%s; %s\r\n", helo, client_name, client_addr,
                 hostname, proto, tls, queue_id, fr, date) < 0)
        return NULL;
    return s;
}

char *
smtp_data_received_local(const char *hostname, unsigned long uid,
                         const char *queue_id, const char *rcpt)
{
    char date[64], fr[600] = "";
    struct tm tm;
    time_t now = time(NULL);
    char *s;

    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    if (rcpt != NULL)
        snprintf(fr, sizeof(fr), "\r\n\tfor <%s>", rcpt);
    if (asprintf(&s, "Received: by %s (modmta invoked by uid %lu)\r\n"
                 "\tid %s%s; %s\r\n", hostname, uid, queue_id, fr, date) < 0)
        return NULL;
    return s;
}
