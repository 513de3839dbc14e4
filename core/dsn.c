/*
 * RFC 3464 delivery status notifications: see dsn.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <modmta/log.h>

#include "dsn.h"
#include "smtp_cmd.h"

#define DSN_HEADERS_MAX (256 * 1024)  /* original headers quoted at most */
#define DSN_TEXT_MAX 2048             /* a reason or diagnostic, at most */
#define DSN_ADDR_MAX 1024
#define DSN_FOLD 78          /* fold lines here where words allow */
#define DSN_LINE_MAX 998     /* and always here (RFC 5322 2.1.1) */
#define DSN_BOUNDARY_MAX 70

/* Formatted output to a queue writer; the first error sticks. */
struct dsn_out {
    queue_writer *w;
    int err;
};

/* One recipient of a report and what it says about it. */
struct dsn_item {
    const queue_rcpt *r;
    enum dsn_action act;
};

/* One report being written. */
struct dsn_report {
    struct dsn_out o;
    const queue_env *env;
    const struct dsn_params *p;
    struct dsn_item *items;
    size_t n;
    enum dsn_action worst;
    int full;            /* the whole message goes back (RET=FULL) */
    int eight_bit;       /* the quoted part may hold 8-bit octets */
    char host[256];
    char boundary[DSN_BOUNDARY_MAX + 1];
};

static const char *const dsn_action_names[] = {
    [DSN_ACT_DELIVERED] = "delivered",
    [DSN_ACT_RELAYED] = "relayed",
    [DSN_ACT_DELAYED] = "delayed",
    [DSN_ACT_FAILED] = "failed",
};

static const char *const dsn_subjects[] = {
    [DSN_ACT_DELIVERED] = "Successful Mail Delivery Report",
    [DSN_ACT_RELAYED] = "Successful Mail Delivery Report",
    [DSN_ACT_DELAYED] = "Delayed Mail (still being retried)",
    [DSN_ACT_FAILED] = "Undelivered Mail Returned to Sender",
};

/* The reason given when the recipient has none recorded. */
static const char *const dsn_default_reason[] = {
    [DSN_ACT_DELIVERED] = "delivered",
    [DSN_ACT_RELAYED] = "relayed",
    [DSN_ACT_DELAYED] = "delivery temporarily deferred",
    [DSN_ACT_FAILED] = "delivery failed",
};

static const char *const dsn_default_status[] = {
    [DSN_ACT_DELIVERED] = "2.0.0",
    [DSN_ACT_RELAYED] = "2.0.0",
    [DSN_ACT_DELAYED] = "4.0.0",
    [DSN_ACT_FAILED] = "5.0.0",
};

/* The text part's paragraph before each action's recipients. */
static const char *const dsn_intros[] = {
    [DSN_ACT_FAILED] =
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. The reasons are\r\n"
        "given below.\r\n",
    [DSN_ACT_DELAYED] =
        "This is a warning only: you do not need to send your message\r\n"
        "again. It could not be delivered yet to the recipients below\r\n"
        "and is still being retried.\r\n",
    [DSN_ACT_DELIVERED] =
        "Your message was delivered to the recipients below, as you\r\n"
        "asked to be told.\r\n",
    [DSN_ACT_RELAYED] =
        "Your message was passed on to the recipients below, as you\r\n"
        "asked to be told, to a mail system that sends no delivery\r\n"
        "notices: you may hear nothing more about it, even if it\r\n"
        "fails there.\r\n",
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

/* Write prefix and text as lines folded at spaces: within DSN_FOLD
 * octets where the words allow, always within DSN_LINE_MAX (a longer
 * word is cut). Continuation lines start with indent. text holds no
 * control characters (dsn_clean). */
static void
dsn_put_folded(struct dsn_out *o, const char *prefix, const char *text,
               const char *indent)
{
    size_t col = strlen(prefix), ilen = strlen(indent);
    const char *p = text;

    dsn_put(o, prefix, col);
    while (*p != '\0') {
        const char *w = p + strspn(p, " ");
        size_t wlen = strcspn(w, " "), k;

        if (*w == '\0')
            break;        /* trailing spaces: no blank line */
        if (col > ilen && col + (size_t)(w - p) + wlen > DSN_FOLD) {
            dsn_printf(o, "\r\n%s", indent);
            col = ilen;
        } else {
            dsn_put(o, p, (size_t)(w - p));
            col += (size_t)(w - p);
        }
        while (wlen > 0) {
            k = wlen < DSN_LINE_MAX - col ? wlen : DSN_LINE_MAX - col;
            dsn_put(o, w, k);
            col += k;
            w += k;
            wlen -= k;
            if (wlen > 0) {
                dsn_printf(o, "\r\n%s", indent);
                col = ilen;
            }
        }
        p = w;
    }
    dsn_put(o, "\r\n", 2);
}

/* ---- what is due ---- */

enum dsn_action
dsn_rcpt_due(const queue_env *env, const queue_rcpt *r, time_t now,
             long delay_warning)
{
    unsigned n = r->notify;

    if (r->no_dsn || (n & QNOTIFY_NEVER) != 0)
        return DSN_ACT_NONE;
    switch (r->state) {
    case QRCPT_FAILED:
        return !r->dsn_sent && (n == 0 || (n & QNOTIFY_FAILURE) != 0)
                   ? DSN_ACT_FAILED : DSN_ACT_NONE;
    case QRCPT_DELIVERED:
        if (r->dsn_sent || (n & QNOTIFY_SUCCESS) == 0)
            return DSN_ACT_NONE;
        return r->relayed ? DSN_ACT_RELAYED : DSN_ACT_DELIVERED;
    case QRCPT_PENDING:
        return delay_warning > 0 && !r->delay_sent &&
                       (n == 0 || (n & QNOTIFY_DELAY) != 0) &&
                       now - env->arrival >= delay_warning
                   ? DSN_ACT_DELAYED : DSN_ACT_NONE;
    }
    return DSN_ACT_NONE;
}

const char *
dsn_rcpt_sender(const queue_env *env, const queue_rcpt *r)
{
    return r->sender != NULL ? r->sender :
           env->sender != NULL ? env->sender : "";
}

/* The action due for r in a report to `to`. */
static enum dsn_action
dsn_due_to(const queue_env *env, const queue_rcpt *r, const char *to,
           time_t now, long delay_warning)
{
    if (strcmp(dsn_rcpt_sender(env, r), to) != 0)
        return DSN_ACT_NONE;
    return dsn_rcpt_due(env, r, now, delay_warning);
}

enum dsn_action
dsn_worst_to(const queue_env *env, const char *to, time_t now,
             long delay_warning)
{
    enum dsn_action worst = DSN_ACT_NONE, a;

    for (size_t i = 0; i < env->nrcpts; i++) {
        a = dsn_due_to(env, &env->rcpts[i], to, now, delay_warning);
        if (a > worst)
            worst = a;
    }
    return worst;
}

size_t
dsn_mark_sent_to(queue_env *env, const char *to, time_t now,
                 long delay_warning)
{
    size_t n = 0;

    for (size_t i = 0; i < env->nrcpts; i++) {
        queue_rcpt *r = &env->rcpts[i];
        enum dsn_action a = dsn_due_to(env, r, to, now, delay_warning);

        if (a == DSN_ACT_DELAYED)
            r->delay_sent = 1;
        else if (a != DSN_ACT_NONE)
            r->dsn_sent = 1;
        n += a != DSN_ACT_NONE;
    }
    return n;
}

/* ---- the recipients' fields ---- */

/* Copy s into out for a header field: no control characters (they would
 * end the field or smuggle a new one; a multi-line reply's line breaks
 * become spaces), at most outlen - 1 octets. */
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

/* 1 if text starts with a reply code ("550 ..."). */
static int
dsn_has_code(const char *text)
{
    return text != NULL && dsn_digits(text, 3, 3) &&
           text[0] >= '2' && text[0] <= '5' &&
           (text[3] == ' ' || text[3] == '-');
}

/* The enhanced status code of r: its esc, else the one that starts its
 * status text ("5.1.1 ..." or, after a reply code, "550 5.1.1 ..."),
 * else the action's default. */
static void
dsn_status(const queue_rcpt *r, enum dsn_action act, char out[16])
{
    const char *p = r->status != NULL ? r->status : "";
    int a, b;

    if (r->esc != NULL && r->esc[0] != '\0' && strlen(r->esc) < 16) {
        snprintf(out, 16, "%s", r->esc);
        return;
    }
    if (dsn_has_code(p))
        p += 4;
    if ((p[0] >= '2' && p[0] <= '5') && p[1] == '.' &&
        (a = dsn_digits(p + 2, 1, 3)) != 0 && p[2 + a] == '.' &&
        (b = dsn_digits(p + 3 + a, 1, 3)) != 0 &&
        (p[3 + a + b] == '\0' || p[3 + a + b] == ' ')) {
        snprintf(out, 16, "%.*s", 3 + a + b, p);
        return;
    }
    snprintf(out, 16, "%s", dsn_default_status[act]);
}

/* The last reply as "CODE ESC text" (cleaned), or NULL when r has no
 * reply code: then a status that starts with one ("550 5.1.1 ...", as
 * version 1 envelopes hold it). */
static const char *
dsn_diagnostic(const queue_rcpt *r, char *out, size_t len)
{
    char raw[DSN_TEXT_MAX];

    if (r->code != 0) {
        snprintf(raw, sizeof(raw), "%d%s%s%s%s", r->code,
                 r->esc != NULL ? " " : "", r->esc != NULL ? r->esc : "",
                 r->text != NULL ? " " : "", r->text != NULL ? r->text : "");
        return dsn_clean(raw, out, len);
    }
    if (dsn_has_code(r->status))
        return dsn_clean(r->status, out, len);
    return NULL;
}

/* What happened to r, in words: its status as the queue shows it, else
 * its last reply, else the action's default. */
static const char *
dsn_reason(const queue_rcpt *r, enum dsn_action act, char *out, size_t len)
{
    if (r->status != NULL)
        return dsn_clean(r->status, out, len);
    if (dsn_diagnostic(r, out, len) != NULL)
        return out;
    if (r->text != NULL)
        return dsn_clean(r->text, out, len);
    return dsn_clean(dsn_default_reason[act], out, len);
}

/* Original-Recipient (RFC 3464 2.3.1) into type and addr: the client's
 * ORCPT, its xtext decoded; else the address the client gave when it
 * differs from the final one. 0 when there is none. */
static int
dsn_original(const queue_rcpt *r, char type[32], char *addr, size_t len)
{
    const char *semi = r->orcpt_param != NULL ? strchr(r->orcpt_param, ';')
                                              : NULL;
    char dec[DSN_ADDR_MAX];
    int tlen = semi != NULL ? (int)(semi - r->orcpt_param) : 0;

    if (semi != NULL && tlen < 32) {
        snprintf(type, 32, "%.*s", tlen, r->orcpt_param);
        /* a utf-8 address (RFC 6533) is already in its ASCII form */
        if (strcasecmp(type, "utf-8") == 0) {
            dsn_clean(semi + 1, addr, len);
            return 1;
        }
        if (smtp_cmd_xtext_decode(semi + 1, dec, sizeof(dec)) > 0) {
            dsn_clean(dec, addr, len);
            return 1;
        }
    }
    if (r->orcpt != NULL && strcmp(r->orcpt, r->addr) != 0) {
        snprintf(type, 32, "rfc822");
        dsn_clean(r->orcpt, addr, len);
        return 1;
    }
    return 0;
}

/* ---- the report ---- */

/* A MAIL parameter of the original message, or NULL. */
static const char *
dsn_param(const queue_env *env, const char *name)
{
    for (size_t i = 0; i < env->nparams; i++)
        if (strcasecmp(env->params[i].name, name) == 0)
            return env->params[i].value != NULL ? env->params[i].value : "";
    return NULL;
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

/* A time span in words, in the largest unit that keeps it above 1. */
static void
dsn_span(long secs, char *buf, size_t len)
{
    static const struct {
        long secs;
        const char *unit;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}};
    size_t i;

    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (secs >= 2 * units[i].secs)
            break;
    if (i == sizeof(units) / sizeof(units[0]))
        snprintf(buf, len, "%ld second%s", secs, secs == 1 ? "" : "s");
    else
        snprintf(buf, len, "%ld %ss", secs / units[i].secs, units[i].unit);
}

static void
dsn_write_headers(struct dsn_report *rep, const char *to_addr)
{
    char date[64], to[DSN_ADDR_MAX];

    dsn_date(rep->p->now, date, sizeof(date));
    dsn_printf(&rep->o, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n"
               "To: <%s>\r\n"
               "Subject: %s\r\n"
               "Date: %s\r\n"
               "Message-ID: <%s@%s>\r\n"
               "Auto-Submitted: auto-replied\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: multipart/report; report-type=delivery-status;"
               "\r\n\tboundary=\"%s\"\r\n"
               "\r\n"
               "This is a MIME-encapsulated message.\r\n\r\n",
               rep->host, dsn_clean(to_addr, to, sizeof(to)),
               dsn_subjects[rep->worst], date, queue_writer_id(rep->o.w),
               rep->host, rep->boundary);
}

/* "<addr> (expanded from <orig>): reason" */
static void
dsn_write_text_rcpt(struct dsn_report *rep, const struct dsn_item *it)
{
    const queue_rcpt *r = it->r;
    char addr[DSN_ADDR_MAX], orig[DSN_ADDR_MAX], head[2 * DSN_ADDR_MAX + 40];
    char reason[DSN_TEXT_MAX];

    dsn_clean(r->addr, addr, sizeof(addr));
    if (r->orcpt != NULL && strcmp(r->orcpt, r->addr) != 0)
        snprintf(head, sizeof(head), "<%s> (expanded from <%s>): ", addr,
                 dsn_clean(r->orcpt, orig, sizeof(orig)));
    else
        snprintf(head, sizeof(head), "<%s>: ", addr);
    dsn_put_folded(&rep->o, head,
                   dsn_reason(r, it->act, reason, sizeof(reason)), "    ");
}

static void
dsn_write_text(struct dsn_report *rep)
{
    static const enum dsn_action order[] = {
        DSN_ACT_FAILED, DSN_ACT_DELAYED, DSN_ACT_DELIVERED, DSN_ACT_RELAYED,
    };
    char age[64], life[64];

    dsn_printf(&rep->o, "--%s\r\n"
               "Content-Description: Notification\r\n"
               "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
               "This is the mail system at host %s.\r\n\r\n",
               rep->boundary, rep->host);
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        size_t n = 0;

        for (size_t i = 0; i < rep->n; i++)
            n += rep->items[i].act == order[k];
        if (n == 0)
            continue;
        dsn_printf(&rep->o, "%s", dsn_intros[order[k]]);
        if (order[k] == DSN_ACT_DELAYED) {
            dsn_span(rep->p->now - rep->env->arrival, age, sizeof(age));
            dsn_span(rep->p->lifetime, life, sizeof(life));
            dsn_printf(&rep->o, "It has been in the queue for %s; it will "
                       "be retried until\r\nit is %s old.\r\n", age, life);
        }
        dsn_printf(&rep->o, "\r\n");
        for (size_t i = 0; i < rep->n; i++)
            if (rep->items[i].act == order[k])
                dsn_write_text_rcpt(rep, &rep->items[i]);
        dsn_printf(&rep->o, "\r\n");
    }
}

/* RFC 3464 2.3, in the order of its grammar. */
static void
dsn_write_rcpt(struct dsn_report *rep, const struct dsn_item *it)
{
    const queue_rcpt *r = it->r;
    char addr[DSN_ADDR_MAX], type[32], status[16], date[64];
    char text[DSN_TEXT_MAX];
    struct dsn_out *o = &rep->o;

    dsn_printf(o, "\r\n");
    if (dsn_original(r, type, addr, sizeof(addr)))
        dsn_printf(o, "Original-Recipient: %s; %s\r\n", type, addr);
    dsn_status(r, it->act, status);
    dsn_printf(o, "Final-Recipient: rfc822; %s\r\nAction: %s\r\n"
               "Status: %s\r\n", dsn_clean(r->addr, addr, sizeof(addr)),
               dsn_action_names[it->act], status);
    if (r->remote != NULL)
        dsn_printf(o, "Remote-MTA: %s; %s\r\n",
                   r->remote[0] == '/' ? "x-unix" : "dns",
                   dsn_clean(r->remote, addr, sizeof(addr)));
    if (dsn_diagnostic(r, text, sizeof(text)) != NULL)
        dsn_put_folded(o, "Diagnostic-Code: smtp; ", text, " ");
    else if (r->text != NULL || r->status != NULL)
        /* A local reason (no server's reply): Postfix's X-Postfix. */
        dsn_put_folded(o, "Diagnostic-Code: X-modmta; ",
                       dsn_clean(r->text != NULL ? r->text : r->status, text,
                                 sizeof(text)), " ");
    /* This attempt's time: the report follows it. */
    if (r->status != NULL || r->code != 0 || r->text != NULL) {
        dsn_date(rep->p->now, date, sizeof(date));
        dsn_printf(o, "Last-Attempt-Date: %s\r\n", date);
    }
    if (it->act == DSN_ACT_DELAYED) {
        dsn_date(rep->env->arrival + rep->p->lifetime, date, sizeof(date));
        dsn_printf(o, "Will-Retry-Until: %s\r\n", date);
    }
}

/* RFC 3464 2.2, in the order of its grammar. */
static void
dsn_write_report(struct dsn_report *rep)
{
    const queue_env *env = rep->env;
    const char *envid = dsn_param(env, "ENVID");
    char date[64], text[DSN_TEXT_MAX], helo[256];

    dsn_printf(&rep->o, "--%s\r\n"
               "Content-Description: Delivery report\r\n"
               "Content-Type: message/delivery-status\r\n\r\n",
               rep->boundary);
    /* the ENVID as the client gave it, xtext (RFC 3464 2.2.1) */
    if (envid != NULL && envid[0] != '\0')
        dsn_printf(&rep->o, "Original-Envelope-Id: %s\r\n",
                   dsn_clean(envid, text, sizeof(text)));
    dsn_printf(&rep->o, "Reporting-MTA: dns; %s\r\n", rep->host);
    if (env->helo != NULL && env->helo[0] != '\0')
        dsn_printf(&rep->o, "Received-From-MTA: dns; %s\r\n",
                   dsn_clean(env->helo, helo, sizeof(helo)));
    dsn_date(env->arrival, date, sizeof(date));
    dsn_printf(&rep->o, "Arrival-Date: %s\r\n", date);
    for (size_t i = 0; i < rep->n; i++)
        dsn_write_rcpt(rep, &rep->items[i]);
    dsn_printf(&rep->o, "\r\n");
}

/* The whole original message, as stored (CRLF lines). */
static void
dsn_copy_message(struct dsn_report *rep, int fd)
{
    char buf[65536], last = '\n';
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        dsn_put(&rep->o, buf, (size_t)n);
        last = buf[n - 1];
    }
    if (n < 0)
        modmta_logf(MODMTA_LOG_WARN, "dsn: cannot read %s: %s",
                    rep->p->content_path, strerror(errno));
    if (last != '\n')
        dsn_put(&rep->o, "\r\n", 2);
}

/* The original header block (up to the first empty line), CRLF ended. */
static void
dsn_copy_headers(struct dsn_report *rep, int fd)
{
    FILE *f = fdopen(fd, "r");
    char *line = NULL;
    size_t cap = 0, total = 0;
    ssize_t n;

    if (f == NULL) {
        close(fd);
        return;
    }
    while ((n = getline(&line, &cap, f)) > 0 && total < DSN_HEADERS_MAX) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (n == 0)
            break;
        dsn_put(&rep->o, line, (size_t)n);
        dsn_put(&rep->o, "\r\n", 2);
        total += (size_t)n + 2;
    }
    free(line);
    fclose(f);
}

/* The third part: the message itself (RET=FULL, a failure reported) or
 * its headers. Unreadable content leaves the part empty: the report
 * matters more. */
static void
dsn_write_orig(struct dsn_report *rep)
{
    int fd = open(rep->p->content_path, O_RDONLY | O_CLOEXEC);

    dsn_printf(&rep->o, "--%s\r\nContent-Description: %s\r\n"
               "Content-Type: %s\r\n%s\r\n", rep->boundary,
               rep->full ? "Undelivered Message" :
               rep->worst == DSN_ACT_FAILED ? "Undelivered Message Headers"
                                            : "Message Headers",
               rep->full ? "message/rfc822" : "text/rfc822-headers",
               rep->eight_bit ? "Content-Transfer-Encoding: 8bit\r\n" : "");
    if (fd < 0) {
        modmta_logf(MODMTA_LOG_WARN, "dsn: cannot read %s: %s",
                    rep->p->content_path, strerror(errno));
        return;
    }
    if (rep->full) {
        dsn_copy_message(rep, fd);
        close(fd);
    } else {
        dsn_copy_headers(rep, fd);
    }
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

/* The report's envelope: from <>, to rcpts (or `to`); BODY=8BITMIME and
 * SMTPUTF8 when what it quotes needs them. */
static int
dsn_commit(struct dsn_report *rep, const char *to, char *const *rcpts,
           size_t nrcpts, char id_r[QUEUE_ID_MAX])
{
    queue_param params[2];
    /* The strings are only read by the commit. */
    queue_rcpt *r = calloc(nrcpts > 0 ? nrcpts : 1, sizeof(*r));
    queue_env dsn = {
        .sender = "", .rcpts = r, .nrcpts = nrcpts > 0 ? nrcpts : 1,
        .arrival = rep->p->now, .client_addr = "local",
        .client_name = rep->host, .helo = rep->host, .protocol = "local",
        .params = params,
    };
    int rc;

    if (r == NULL) {
        queue_writer_abort(rep->o.w);
        return MODMTA_E_NOMEM;
    }
    for (size_t i = 0; i < dsn.nrcpts; i++) {
        r[i].addr = nrcpts > 0 ? rcpts[i] : (char *)to;
        r[i].orcpt = (char *)to;
        r[i].state = QRCPT_PENDING;
    }
    if (rep->full && dsn_param(rep->env, "BODY") != NULL &&
        strcasecmp(dsn_param(rep->env, "BODY"), "8BITMIME") == 0)
        params[dsn.nparams++] = (queue_param){"BODY", "8BITMIME"};
    if (dsn_param(rep->env, "SMTPUTF8") != NULL)
        params[dsn.nparams++] = (queue_param){"SMTPUTF8", ""};
    rc = queue_writer_commit(rep->o.w, &dsn);
    free(r);
    if (rc == 0)
        snprintf(id_r, QUEUE_ID_MAX, "%s", dsn.id);
    return rc;
}

/* The recipients due for `to`, in envelope order, and their weight. */
static int
dsn_collect(struct dsn_report *rep, const char *to)
{
    const struct dsn_params *p = rep->p;
    const queue_env *env = rep->env;
    const char *ret = dsn_param(env, "RET");

    rep->items = calloc(env->nrcpts > 0 ? env->nrcpts : 1,
                        sizeof(*rep->items));
    if (rep->items == NULL)
        return MODMTA_E_NOMEM;
    for (size_t i = 0; i < env->nrcpts; i++) {
        enum dsn_action a = dsn_due_to(env, &env->rcpts[i], to, p->now,
                                       p->delay_warning);

        if (a == DSN_ACT_NONE)
            continue;
        rep->items[rep->n].r = &env->rcpts[i];
        rep->items[rep->n++].act = a;
        if (a > rep->worst)
            rep->worst = a;
    }
    rep->full = rep->worst == DSN_ACT_FAILED && ret != NULL &&
                strcasecmp(ret, "FULL") == 0;
    rep->eight_bit = dsn_param(env, "SMTPUTF8") != NULL ||
                     (rep->full && dsn_param(env, "BODY") != NULL &&
                      strcasecmp(dsn_param(env, "BODY"), "8BITMIME") == 0);
    return 0;
}

int
dsn_report_to(queue *q, const queue_env *env, const char *to,
              char *const *rcpts, size_t nrcpts, const struct dsn_params *p,
              char id_r[QUEUE_ID_MAX])
{
    struct dsn_report rep = {.env = env, .p = p};
    modmta_err err;
    int rc;

    id_r[0] = '\0';
    if ((rc = dsn_collect(&rep, to)) < 0)
        return rc;
    if (rep.n == 0 || to[0] == '\0') {
        free(rep.items);
        return rep.n == 0 ? DSN_NONE : DSN_NULL_SENDER;
    }
    rep.o.w = queue_writer_new(q, &err);
    if (rep.o.w == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "%s: dsn: %s", env->id, err.msg);
        free(rep.items);
        return MODMTA_E_IO;
    }
    dsn_clean(p->hostname, rep.host, sizeof(rep.host));
    dsn_boundary(queue_writer_id(rep.o.w), p->now, rep.host, rep.boundary,
                 sizeof(rep.boundary));
    dsn_write_headers(&rep, to);
    dsn_write_text(&rep);
    dsn_write_report(&rep);
    dsn_write_orig(&rep);
    dsn_printf(&rep.o, "\r\n--%s--\r\n", rep.boundary);
    if (rep.o.err != 0) {
        queue_writer_abort(rep.o.w);
        rc = rep.o.err;
    } else {
        rc = dsn_commit(&rep, to, rcpts, nrcpts, id_r);
    }
    free(rep.items);
    return rc;
}
