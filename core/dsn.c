/*
 * RFC 3464 delivery status notifications: see dsn.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "dsn.h"

#define DSN_HEADERS_MAX (256 * 1024)  /* original headers quoted at most */
#define DSN_TEXT_MAX 900              /* a diagnostic, within 998 octets */
#define DSN_BOUNDARY_MAX 70

/* Formatted output to a queue writer; the first error sticks. */
struct dsn_out {
    queue_writer *w;
    int err;
};

static void
dsn_put(struct dsn_out *o, const char *s, size_t len)
{
    if (o->err == 0)
        o->err = queue_writer_write(o->w, s, len);
}

static void dsn_printf(struct dsn_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
dsn_printf(struct dsn_out *o, const char *fmt, ...)
{
    char buf[1024], *big = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->err = MODMTA_E_INVAL;
        return;
    }
    if ((size_t)n >= sizeof(buf)) {
        va_start(ap, fmt);
        n = vasprintf(&big, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->err = MODMTA_E_NOMEM;
            return;
        }
    }
    dsn_put(o, big != NULL ? big : buf, (size_t)n);
    free(big);
}

int
dsn_rcpt_due(const queue_rcpt *r)
{
    return r->state == QRCPT_FAILED && !r->dsn_sent && !r->no_dsn;
}

const char *
dsn_rcpt_sender(const queue_env *env, const queue_rcpt *r)
{
    return r->sender != NULL ? r->sender :
           env->sender != NULL ? env->sender : "";
}

/* Due, and reported to `to` (NULL: whoever its sender is). */
static int
dsn_rcpt_due_to(const queue_env *env, const queue_rcpt *r, const char *to)
{
    return dsn_rcpt_due(r) &&
           (to == NULL || strcmp(dsn_rcpt_sender(env, r), to) == 0);
}

size_t
dsn_mark_sent(queue_env *env)
{
    return dsn_mark_sent_to(env, NULL);
}

size_t
dsn_mark_sent_to(queue_env *env, const char *to)
{
    size_t n = 0;

    for (size_t i = 0; i < env->nrcpts; i++) {
        if (dsn_rcpt_due_to(env, &env->rcpts[i], to)) {
            env->rcpts[i].dsn_sent = 1;
            n++;
        }
    }
    return n;
}

/* Copy s into out for a header field: no control characters (they would
 * end the field or smuggle a new one), at most outlen - 1 octets. */
static const char *
dsn_clean(const char *s, char *out, size_t outlen)
{
    size_t i = 0;

    for (; s != NULL && *s != '\0' && i + 1 < outlen; s++) {
        unsigned char c = (unsigned char)*s;

        out[i++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[i] = '\0';
    return out;
}

static int
dsn_digits(const char *s, int min, int max)
{
    int n = 0;

    while (n <= max && s[n] >= '0' && s[n] <= '9')
        n++;
    return n >= min && n <= max ? n : 0;
}

/* The enhanced status code that starts text ("5.1.1 ..." or, after a
 * basic reply code, "550 5.1.1 ..."), else 5.0.0. */
static void
dsn_status(const char *text, char out[16])
{
    const char *p = text != NULL ? text : "";
    int a, b;

    if (dsn_digits(p, 3, 3) && (p[3] == ' ' || p[3] == '-'))
        p += 4;
    if ((p[0] == '4' || p[0] == '5') && p[1] == '.' &&
        (a = dsn_digits(p + 2, 1, 3)) != 0 && p[2 + a] == '.' &&
        (b = dsn_digits(p + 3 + a, 1, 3)) != 0 &&
        (p[3 + a + b] == '\0' || p[3 + a + b] == ' ')) {
        snprintf(out, 16, "%.*s", 3 + a + b, p);
        return;
    }
    snprintf(out, 16, "5.0.0");
}

/* RFC 5322 date, in English whatever the locale. */
static void
dsn_date(time_t t, char *buf, size_t len)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu",
                                       "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May",
                                         "Jun", "Jul", "Aug", "Sep", "Oct",
                                         "Nov", "Dec"};
    struct tm tm;
    long off;

    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;
    snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
             days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
             off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

static void
dsn_write_headers(struct dsn_out *o, const char *to_addr, const char *host,
                  const char *boundary, time_t now)
{
    char date[64], to[512];

    dsn_date(now, date, sizeof(date));
    dsn_printf(o, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n"
               "To: <%s>\r\n"
               "Subject: Undelivered Mail Returned to Sender\r\n"
               "Date: %s\r\n"
               "Message-ID: <%s@%s>\r\n"
               "Auto-Submitted: auto-replied\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: multipart/report; report-type=delivery-status;"
               "\r\n\tboundary=\"%s\"\r\n"
               "\r\n"
               "This is a MIME-encapsulated message.\r\n\r\n",
               host, dsn_clean(to_addr, to, sizeof(to)), date,
               queue_writer_id(o->w), host, boundary);
}

static void
dsn_write_text(struct dsn_out *o, const queue_env *env, const char *to,
               const char *host, const char *boundary)
{
    char addr[512], text[DSN_TEXT_MAX];

    dsn_printf(o, "--%s\r\n"
               "Content-Description: Notification\r\n"
               "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
               "This is the mail system at host %s.\r\n\r\n"
               "I'm sorry to have to inform you that your message could not"
               "\r\nbe delivered to one or more recipients. The reasons are"
               "\r\ngiven below.\r\n\r\n", boundary, host);
    for (size_t i = 0; i < env->nrcpts; i++) {
        const queue_rcpt *r = &env->rcpts[i];

        if (!dsn_rcpt_due_to(env, r, to))
            continue;
        dsn_printf(o, "<%s>: %s\r\n",
                   dsn_clean(r->addr, addr, sizeof(addr)),
                   dsn_clean(r->status != NULL ? r->status :
                             "delivery failed", text, sizeof(text)));
    }
    dsn_printf(o, "\r\n");
}

static void
dsn_write_rcpt(struct dsn_out *o, const queue_rcpt *r)
{
    char addr[512], orcpt[512], status[16], text[DSN_TEXT_MAX];

    dsn_clean(r->addr, addr, sizeof(addr));
    dsn_status(r->status, status);
    dsn_printf(o, "\r\nFinal-Recipient: rfc822; %s\r\n", addr);
    if (r->orcpt != NULL && strcmp(r->orcpt, r->addr) != 0)
        dsn_printf(o, "Original-Recipient: rfc822; %s\r\n",
                   dsn_clean(r->orcpt, orcpt, sizeof(orcpt)));
    dsn_printf(o, "Action: failed\r\nStatus: %s\r\n"
               "Diagnostic-Code: smtp; %s\r\n", status,
               dsn_clean(r->status != NULL ? r->status : "delivery failed",
                         text, sizeof(text)));
}

static void
dsn_write_report(struct dsn_out *o, const queue_env *env, const char *to,
                 const char *host, const char *boundary)
{
    char date[64], helo[256];

    dsn_date(env->arrival, date, sizeof(date));
    dsn_printf(o, "--%s\r\n"
               "Content-Description: Delivery report\r\n"
               "Content-Type: message/delivery-status\r\n\r\n"
               "Reporting-MTA: dns; %s\r\n", boundary, host);
    if (env->helo != NULL && env->helo[0] != '\0')
        dsn_printf(o, "Received-From-MTA: dns; %s\r\n",
                   dsn_clean(env->helo, helo, sizeof(helo)));
    dsn_printf(o, "Arrival-Date: %s\r\n", date);
    for (size_t i = 0; i < env->nrcpts; i++)
        if (dsn_rcpt_due_to(env, &env->rcpts[i], to))
            dsn_write_rcpt(o, &env->rcpts[i]);
    dsn_printf(o, "\r\n");
}

/* The original header block (up to the first empty line), CRLF ended.
 * Unreadable content leaves the part empty: the report matters more. */
static void
dsn_write_orig(struct dsn_out *o, const char *content_path,
               const char *boundary)
{
    FILE *f = fopen(content_path, "re");
    char *line = NULL;
    size_t cap = 0, total = 0;
    ssize_t n;

    dsn_printf(o, "--%s\r\n"
               "Content-Description: Undelivered Message Headers\r\n"
               "Content-Type: text/rfc822-headers\r\n\r\n", boundary);
    if (f == NULL) {
        modmta_logf(MODMTA_LOG_WARN, "dsn: cannot read %s: %s",
                    content_path, strerror(errno));
        return;
    }
    while ((n = getline(&line, &cap, f)) > 0 && total < DSN_HEADERS_MAX) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (n == 0)
            break;
        dsn_put(o, line, (size_t)n);
        dsn_put(o, "\r\n", 2);
        total += (size_t)n + 2;
    }
    free(line);
    fclose(f);
}

/* "ID.TIME/HOST", at most 70 characters (RFC 2046), only characters
 * that need no care. The new ID makes it unpredictable to the original
 * sender, whose headers are quoted in the third part. */
static void
dsn_boundary(const char *id, time_t now, const char *host, char *out,
             size_t len)
{
    int n = snprintf(out, len, "%s.%lld/", id, (long long)now);

    for (; n > 0 && (size_t)n + 1 < len && *host != '\0'; host++, n++) {
        char c = *host;

        out[n] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' ? c : '-';
    }
    if (n > 0)
        out[n] = '\0';
}

static int
dsn_commit(queue_writer *w, const char *to, char *const *rcpts,
           size_t nrcpts, const char *host, time_t now,
           char id_r[QUEUE_ID_MAX])
{
    /* The strings are only read by the commit. */
    queue_rcpt *r = calloc(nrcpts > 0 ? nrcpts : 1, sizeof(*r));
    queue_env dsn = {
        .sender = "", .rcpts = r, .nrcpts = nrcpts > 0 ? nrcpts : 1,
        .arrival = now, .client_addr = "local", .client_name = (char *)host,
        .helo = (char *)host, .protocol = "local",
    };
    int rc;

    if (r == NULL) {
        queue_writer_abort(w);
        return MODMTA_E_NOMEM;
    }
    for (size_t i = 0; i < dsn.nrcpts; i++) {
        r[i].addr = nrcpts > 0 ? rcpts[i] : (char *)to;
        r[i].orcpt = (char *)to;
        r[i].state = QRCPT_PENDING;
    }
    rc = queue_writer_commit(w, &dsn);
    free(r);
    if (rc == 0)
        snprintf(id_r, QUEUE_ID_MAX, "%s", dsn.id);
    return rc;
}

int
dsn_bounce(queue *q, const queue_env *env, const char *content_path,
           const char *hostname, time_t now, char id_r[QUEUE_ID_MAX])
{
    return dsn_bounce_to(q, env, env->sender != NULL ? env->sender : "",
                         NULL, 0, content_path, hostname, now, id_r);
}

int
dsn_bounce_to(queue *q, const queue_env *env, const char *to,
              char *const *rcpts, size_t nrcpts, const char *content_path,
              const char *hostname, time_t now, char id_r[QUEUE_ID_MAX])
{
    char host[256], boundary[DSN_BOUNDARY_MAX + 1];
    struct dsn_out o = {0};
    size_t due = 0;
    modmta_err err;

    id_r[0] = '\0';
    for (size_t i = 0; i < env->nrcpts; i++)
        due += (size_t)dsn_rcpt_due_to(env, &env->rcpts[i], to);
    if (due == 0)
        return DSN_NONE;
    if (to[0] == '\0')
        return DSN_NULL_SENDER;
    o.w = queue_writer_new(q, &err);
    if (o.w == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "%s: dsn: %s", env->id, err.msg);
        return MODMTA_E_IO;
    }
    dsn_clean(hostname, host, sizeof(host));
    dsn_boundary(queue_writer_id(o.w), now, host, boundary,
                 sizeof(boundary));
    dsn_write_headers(&o, to, host, boundary, now);
    dsn_write_text(&o, env, to, host, boundary);
    dsn_write_report(&o, env, to, host, boundary);
    dsn_write_orig(&o, content_path, boundary);
    dsn_printf(&o, "\r\n--%s--\r\n", boundary);
    if (o.err != 0) {
        queue_writer_abort(o.w);
        return o.err;
    }
    return dsn_commit(o.w, to, rcpts, nrcpts, host, now, id_r);
}
