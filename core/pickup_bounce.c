/*
 * Pickup's bounces (see pickup_bounce.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "dsn.h"
#include "pickup_bounce.h"

void
pickup_refusal_parse(const char *line, struct pickup_refusal *out)
{
    const char *end = strstr(line, ">: ");

    memset(out, 0, sizeof(*out));
    out->reply = "";
    if (line[0] != '<' || end == NULL ||
        (size_t)(end - line) > sizeof(out->addr))
        return;
    snprintf(out->addr, sizeof(out->addr), "%.*s", (int)(end - line - 1),
             line + 1);
    out->reply = end + 3;
    if (out->reply[0] >= '2' && out->reply[0] <= '5')
        out->code = atoi(out->reply);
}

int
pickup_bounce(queue *q, scheduler *sched, const char *hostname,
              long lifetime, const struct submit_msg *m, time_t arrival,
              char *const *rcpts, char *const *replies, size_t n)
{
    queue_rcpt *r;
    queue_env env = {
        .sender = (char *)m->sender, .arrival = arrival,
        .client_addr = "local", .helo = "", .protocol = "LOCAL",
    };
    struct dsn_params p = {.hostname = hostname, .now = time(NULL),
                           .lifetime = lifetime};
    char id[QUEUE_ID_MAX];
    modmta_err err;
    queue_writer *w;
    int rc;

    if (m->sender[0] == '\0' || n == 0)
        return 0;
    /* The report quotes the message's header from a content file: the
     * message is written as a queue file that is never committed. */
    if ((w = queue_writer_new(q, &err)) == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "pickup: bounce: %s", err.msg);
        return MODMTA_E_IO;
    }
    if ((r = calloc(n, sizeof(*r))) == NULL) {
        queue_writer_abort(w);
        return MODMTA_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        r[i].addr = rcpts[i];
        r[i].orcpt = rcpts[i];
        r[i].state = QRCPT_FAILED;
        r[i].status = replies[i];
    }
    env.rcpts = r;
    env.nrcpts = n;
    snprintf(env.id, sizeof(env.id), "%s", queue_writer_id(w));
    rc = queue_writer_write(w, m->data, m->len);
    /* (the path flushes what was written) */
    p.content_path = queue_writer_path(w);
    if (rc == 0)
        rc = dsn_report_to(q, &env, m->sender, NULL, 0, &p, id);
    queue_writer_abort(w);
    free(r);
    if (rc == DSN_QUEUED) {
        modmta_logf(MODMTA_LOG_INFO, "pickup: sender non-delivery "
                    "notification: %s", id);
        scheduler_submit(sched, id);
    }
    return rc < 0 ? rc : 0;
}
