/*
 * Delivery status notifications (dsn.c): RFC 3464 reports, queued like
 * any other message, from the null sender <> (so that a DSN can never
 * cause another one) to the sender of the recipients they report on.
 *
 * After each delivery attempt the delivery code asks, for each recipient,
 * which action is due now (dsn_rcpt_due), following the recipient's RFC
 * 3461 NOTIFY:
 *   failed     state FAILED, not yet reported; unless NOTIFY was given
 *              without FAILURE;
 *   delivered  state DELIVERED, not yet reported, NOTIFY has SUCCESS;
 *   relayed    the same for a recipient handed to a next hop that does
 *              not offer DSN (queue_rcpt.relayed);
 *   delayed    state PENDING, the message older than queue.delay_warning
 *              (0: never), not yet warned (delay_sent), NOTIFY not given
 *              or with DELAY.
 * Nothing is ever due for a recipient with NOTIFY=NEVER or no_dsn (a
 * module's copy: bcc, archive). A recipient whose next hop took over the
 * DSN request is marked dsn_sent by the delivery code: nothing from here.
 *
 * A recipient with its own envelope sender (queue_rcpt.sender, a list's
 * owner-NAME) is reported to that sender: one report per attempt and
 * distinct sender, listing every recipient due for it (actions mixed),
 * none for <> (dsn_report_to).
 * The report is multipart/report; report-type=delivery-status with three
 * parts: a text/plain explanation, the message/delivery-status fields
 * (RFC 3464 section 2), and the original message (message/rfc822, when
 * the sender asked RET=FULL and the report has a failure) or its headers
 * (text/rfc822-headers). Lines end in CRLF.
 */
#ifndef MODMTA_CORE_DSN_H
#define MODMTA_CORE_DSN_H

#include <time.h>

#include "queue.h"

/* dsn_report_to results besides the negative MODMTA_E_* codes. */
enum dsn_result {
    DSN_QUEUED = 0,       /* a DSN was committed; its ID is in id_r */
    DSN_NONE = 1,         /* nothing is due for this sender; none queued */
    DSN_NULL_SENDER = 2,  /* the sender is <>: never reported to */
};

/* RFC 3464 Action values, ordered by weight: the heaviest in a report
 * names it (its Subject). */
enum dsn_action {
    DSN_ACT_NONE = 0,     /* nothing due */
    DSN_ACT_DELIVERED,
    DSN_ACT_RELAYED,
    DSN_ACT_DELAYED,
    DSN_ACT_FAILED,
};

/* What the reports of one attempt are built from, besides the envelope. */
struct dsn_params {
    const char *content_path;   /* the original message */
    const char *hostname;       /* Reporting-MTA, From: MAILER-DAEMON@ */
    time_t now;                 /* the attempt's time: what is due */
    long delay_warning;         /* queue.delay_warning, 0: none */
    long lifetime;              /* queue.lifetime: Will-Retry-Until */
};

/* The action due now for recipient r of env (see above). */
enum dsn_action dsn_rcpt_due(const queue_env *env, const queue_rcpt *r,
                             time_t now, long delay_warning);

/* Where notices about r go: its own sender, else the message's ("" for
 * <>). */
const char *dsn_rcpt_sender(const queue_env *env, const queue_rcpt *r);

/* The heaviest action due for the recipients whose effective sender is
 * `to`; DSN_ACT_NONE when none. */
enum dsn_action dsn_worst_to(const queue_env *env, const char *to,
                             time_t now, long delay_warning);

/* Build and commit one report to `to` covering every recipient whose
 * effective sender (dsn_rcpt_sender) is `to` and whose action is due at
 * p->now: DSN_NONE when there are none, else DSN_NULL_SENDER when `to`
 * is "" (<>). The report's envelope recipients are rcpts[0..nrcpts)
 * (what `to` expands to, e.g. an owner-NAME alias), or `to` alone when
 * nrcpts is 0. On DSN_QUEUED, id_r holds the new message's ID (the
 * caller submits it to the scheduler). On any result >= 0 the caller
 * then marks the covered recipients (dsn_mark_sent_to, same now) and
 * saves env with queue_update; a crash in between sends the report
 * twice, which is better than not at all. On error nothing was queued.
 */
int dsn_report_to(queue *q, const queue_env *env, const char *to,
                  char *const *rcpts, size_t nrcpts,
                  const struct dsn_params *p, char id_r[QUEUE_ID_MAX]);

/* Mark what dsn_report_to covered for `to`: dsn_sent for a final action
 * (failed, delivered, relayed), delay_sent for a delay. Returns how many
 * recipients were marked. */
size_t dsn_mark_sent_to(queue_env *env, const char *to, time_t now,
                        long delay_warning);

#endif
