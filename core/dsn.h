/*
 * Delivery status notifications (dsn.c): RFC 3464 reports of failed
 * recipients, queued like any other message, from the null sender <>
 * (so that a DSN can never cause another one) to the original sender.
 *
 * A DSN covers every recipient with state QRCPT_FAILED, dsn_sent == 0 and
 * no_dsn == 0 (a no_dsn recipient, e.g. a bcc copy, fails silently).
 * A recipient with its own envelope sender (queue_rcpt.sender, a list's
 * owner-NAME) is reported to that sender: one DSN per distinct sender,
 * none for <> (dsn_bounce_to).
 * The report is multipart/report; report-type=delivery-status with three
 * parts: a text/plain explanation, the message/delivery-status fields
 * (RFC 3464 section 2) and the original headers (text/rfc822-headers).
 * Lines end in CRLF.
 */
#ifndef MODMTA_CORE_DSN_H
#define MODMTA_CORE_DSN_H

#include <time.h>

#include "queue.h"

/* dsn_bounce results besides the negative MODMTA_E_* codes. */
enum dsn_result {
    DSN_QUEUED = 0,       /* a DSN was committed; its ID is in id_r */
    DSN_NONE = 1,         /* no failed recipient awaits a DSN; none queued */
    DSN_NULL_SENDER = 2,  /* the sender is <>: never bounce, nothing queued */
};

/* Build and commit the DSN for env (whose content is at content_path),
 * reported by `hostname` at `now`. On DSN_QUEUED, id_r holds the new
 * message's ID (the caller submits it to the scheduler). On any result
 * >= 0 the caller then marks the covered recipients (dsn_mark_sent) and
 * saves env with queue_update; a crash in between sends the DSN twice,
 * which is better than not at all. On error nothing was queued. */
int dsn_bounce(queue *q, const queue_env *env, const char *content_path,
               const char *hostname, time_t now, char id_r[QUEUE_ID_MAX]);

/* The same for the failed recipients whose effective sender
 * (dsn_rcpt_sender) is `to`, reported to `to` (the To: header): DSN_NONE
 * when there are none, else DSN_NULL_SENDER when `to` is "" (<>). The
 * DSN's envelope recipients are rcpts[0..nrcpts) (what `to` expands to,
 * e.g. an owner-NAME alias), or `to` alone when nrcpts is 0. dsn_bounce
 * is dsn_bounce_to(env->sender, no rcpts). */
int dsn_bounce_to(queue *q, const queue_env *env, const char *to,
                  char *const *rcpts, size_t nrcpts,
                  const char *content_path, const char *hostname, time_t now,
                  char id_r[QUEUE_ID_MAX]);

/* Where failures of r are reported: its own sender, else the message's
 * ("" for <>). */
const char *dsn_rcpt_sender(const queue_env *env, const queue_rcpt *r);

/* 1 if a DSN must still be sent for r (failed, not yet reported, and
 * not a recipient whose failures are never reported: no_dsn). */
int dsn_rcpt_due(const queue_rcpt *r);

/* Set dsn_sent on every recipient dsn_rcpt_due() selects; returns how
 * many. */
size_t dsn_mark_sent(queue_env *env);
/* The same for those whose effective sender is `to`. */
size_t dsn_mark_sent_to(queue_env *env, const char *to);

#endif
