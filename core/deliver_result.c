/*
 * One recipient's result into the envelope: its state, the reply kept for
 * DSNs (code, enhanced code, text, the command, the server), the text
 * mailq shows, the counters and the log line.
 *
 *   local:   "4.2.2 mailbox full"                       (as before 1.3)
 *   remote:  "host mx1.remote.test[192.0.2.1] said: 451 4.3.0 try later
 *            (in reply to RCPT TO command)"              (Postfix's form;
 *            a 2xx is just "250 2.0.0 Ok: queued as X")
 *   no reply: "connect to mx1.remote.test[192.0.2.1]:25: Connection
 *            refused"                                     (the local reason)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "deliver_priv.h"

#define DELIVER_STATUS_MAX 1200     /* mailq text, one line */

static const char *const deliver_esc_default[] = {
    [MODMTA_DELIVERED] = "2.0.0", [MODMTA_DEFERRED] = "4.0.0",
    [MODMTA_FAILED] = "5.0.0", [MODMTA_RELAYED] = "2.0.0",
    [MODMTA_RELAYED_DSN] = "2.0.0",
};
static const char *const deliver_log_status[] = {
    [MODMTA_DELIVERED] = "sent", [MODMTA_DEFERRED] = "deferred",
    [MODMTA_FAILED] = "bounced", [MODMTA_RELAYED] = "sent",
    [MODMTA_RELAYED_DSN] = "sent",
};

/* Replace *field with a copy of s (NULL clears it). On allocation
 * failure keep the old value: the reply is informative, the state is
 * what matters. */
static void
deliver_set(char **field, const char *s)
{
    char *copy = NULL;

    if (s != NULL && *s != '\0' && (copy = strdup(s)) == NULL)
        return;
    free(*field);
    *field = copy;
}

/* A reply's text on one line: line breaks of a multi-line reply and any
 * other control character become spaces. */
static void
deliver_one_line(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

/* "192.0.2.1:25", "[2001:db8::1]:25", or the socket path. */
static void
deliver_addr_port(const struct deliver_remote *rm, char *buf, size_t len)
{
    if (rm->addr == NULL || rm->port == 0)
        snprintf(buf, len, "%s", rm->addr != NULL ? rm->addr : rm->name);
    else if (strchr(rm->addr, ':') != NULL)
        snprintf(buf, len, "[%s]:%d", rm->addr, rm->port);
    else
        snprintf(buf, len, "%s:%d", rm->addr, rm->port);
}

static void
deliver_status_text(const struct deliver_res *res, const char *esc,
                    char *buf, size_t len)
{
    const char *text = res->text != NULL ? res->text : "";
    const struct deliver_remote *rm = &res->remote;

    if (rm->name != NULL && res->code != 0 && res->code / 100 != 2)
        snprintf(buf, len, "host %s[%s] said: %d %s%s%s%s%s%s", rm->name,
                 rm->addr != NULL ? rm->addr : rm->name, res->code, esc,
                 *esc ? " " : "", text, res->stage ? " (in reply to " : "",
                 res->stage ? res->stage : "", res->stage ? " command)" : "");
    else if (rm->name != NULL && res->code != 0)
        snprintf(buf, len, "%d %s%s%s", res->code, esc, *esc ? " " : "",
                 text);
    else if (res->code == 0 && *text != '\0')
        snprintf(buf, len, "%s", text);
    else
        snprintf(buf, len, "%s%s%s", esc, *esc && *text ? " " : "", text);
    deliver_one_line(buf);
}

static void
deliver_log(const struct deliver_run *run, const queue_rcpt *r,
            const struct deliver_res *res, const char *esc,
            const char *status)
{
    const struct deliver_remote *rm = &res->remote;
    char relay[600], tls[200] = "";

    if (rm->name != NULL && rm->addr != NULL)
        snprintf(relay, sizeof(relay), "%s[%s]:%d", rm->name, rm->addr,
                 rm->port);
    else if (rm->name != NULL)
        snprintf(relay, sizeof(relay), "%s", rm->name);
    else {
        snprintf(relay, sizeof(relay), "%s",
                 res->relay != NULL ? res->relay : "none");
    }
    if (rm->tls_version != NULL)
        snprintf(tls, sizeof(tls), " tls=%s/%s", rm->tls_version,
                 rm->tls_cipher != NULL ? rm->tls_cipher : "?");
    modmta_logf(res->status == MODMTA_DEFERRED ? MODMTA_LOG_NOTICE
                                               : MODMTA_LOG_INFO,
                "%s: to=<%s> relay=%s delay=%ld dsn=%s status=%s (%s)%s",
                run->env->id, r->addr, relay,
                (long)(time(NULL) - run->env->arrival), esc,
                deliver_log_status[res->status], status, tls);
}

/* The reply, kept for DSNs and for the next look at the queue. */
static void
deliver_keep_reply(queue_rcpt *r, const struct deliver_res *res,
                   const char *esc)
{
    char ap[300];

    r->code = res->code;
    deliver_set(&r->esc, esc);
    deliver_set(&r->text, res->text);
    deliver_set(&r->stage, res->stage);
    deliver_set(&r->remote, res->remote.name);
    if (res->remote.name != NULL) {
        deliver_addr_port(&res->remote, ap, sizeof(ap));
        deliver_set(&r->remote_addr, ap);
    } else {
        deliver_set(&r->remote_addr, NULL);
    }
}

void
deliver_result(struct deliver_run *run, queue_rcpt *r,
               const struct deliver_res *res)
{
    char status[DELIVER_STATUS_MAX];
    const char *esc = res->esc != NULL && *res->esc ? res->esc
                      : deliver_esc_default[res->status];

    deliver_status_text(res, esc, status, sizeof(status));
    deliver_log(run, r, res, esc, status);
    deliver_keep_reply(r, res, esc);
    deliver_set(&r->status, status);
    switch (res->status) {
    case MODMTA_DEFERRED:
        run->out.deferred++;
        return;
    case MODMTA_FAILED:
        r->state = QRCPT_FAILED;
        run->out.bounced++;
        if (r->no_dsn || (r->notify & QNOTIFY_NEVER))
            modmta_logf(MODMTA_LOG_INFO, "%s: to=<%s> no DSN (notify=never)",
                        run->env->id, r->addr);
        break;
    default:
        r->state = QRCPT_DELIVERED;
        r->relayed = res->status == MODMTA_RELAYED;
        /* The next hop took the DSN request over: nothing to send. */
        if (res->status == MODMTA_RELAYED_DSN)
            r->dsn_sent = 1;
        run->out.delivered++;
        break;
    }
    run->decided = 1;
    /* Not saved here: the envelope is written once when the attempt
     * ends, or the message removed. A crash in between repeats the
     * attempt with modmta_dlv_maybe_done() set (the message is
     * "recovered"), and a mailbox de-duplicates; a remote server may get
     * the message twice, which RFC 5321 section 6.1 accepts. */
}
