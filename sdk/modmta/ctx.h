/*
 * modmta SDK: what a hook can see and do through its context.
 *
 * One modmta_ctx exists per SMTP session (and one per delivery attempt).
 * Every string it returns is borrowed: valid during the hook call only,
 * unless said otherwise. Copy what you keep into an arena
 * (modmta_txn_strdup, modmta_sess_strdup) or into data registered with a
 * destructor (modmta_ctx_set_data).
 */
#ifndef MODMTA_CTX_H
#define MODMTA_CTX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <modmta/module.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Phases, in session order. Append-only. */
typedef enum modmta_phase {
    MODMTA_PHASE_NONE = 0,
    MODMTA_PHASE_CONNECT = 1,
    MODMTA_PHASE_HELO = 2,
    MODMTA_PHASE_AUTH = 3,
    MODMTA_PHASE_MAIL = 4,
    MODMTA_PHASE_RCPT = 5,
    MODMTA_PHASE_DATA = 6,   /* on_data: end of message, milter actions */
    MODMTA_PHASE_QUEUED = 7,
    MODMTA_PHASE_DELIVER = 8,
    MODMTA_PHASE_DISCONNECT = 9,
    MODMTA_PHASE_VERB = 10,  /* inside a module-registered verb */
    MODMTA_PHASE_EHLO = 11,  /* inside ehlo(): modmta_ehlo_add allowed */
    MODMTA_PHASE_SERVE = 12, /* inside serve() */
    MODMTA_PHASE_ROUTE = 13, /* ABI 1.3: inside route() */
    MODMTA_PHASE_STREAM = 14, /* ABI 1.6: on_header, on_eoh, on_body */
    MODMTA_PHASE_ABORT = 15,  /* ABI 1.6: on_abort */
} modmta_phase;

modmta_phase modmta_ctx_phase(const modmta_ctx *ctx);

/* ---- session ---- */
const char *modmta_session_id(const modmta_ctx *ctx);
const char *modmta_client_addr(const modmta_ctx *ctx); /* "192.0.2.1", "::1" */
int modmta_client_port(const modmta_ctx *ctx);
const struct sockaddr *modmta_client_sockaddr(const modmta_ctx *ctx,
                                              socklen_t *len_r);
/* Reverse name confirmed by a forward lookup, or "unknown". */
const char *modmta_client_name(const modmta_ctx *ctx);
const char *modmta_listener_name(const modmta_ctx *ctx);
const char *modmta_helo(const modmta_ctx *ctx); /* NULL before HELO/EHLO */
int modmta_is_esmtp(const modmta_ctx *ctx);
int modmta_is_tls(const modmta_ctx *ctx);
/* Authenticated identity, or NULL. */
const char *modmta_auth_user(const modmta_ctx *ctx);

/* ---- session details (ABI 1.6; milter's macros) ---- */
/* The address and port the client connected to ("192.0.2.25", "::1");
 * NULL and 0 when unknown (a UNIX socket). */
const char *modmta_local_addr(const modmta_ctx *ctx);
int modmta_local_port(const modmta_ctx *ctx);
/* The SASL mechanism of a successful AUTH ("PLAIN"); "LOCAL" for a
 * local submission (sendmail, pickup), where modmta_auth_user() is the
 * caller's login name, not a SASL identity; NULL when not
 * authenticated. */
const char *modmta_auth_mech(const modmta_ctx *ctx);
/* The session's TLS protocol ("TLSv1.3"), cipher name and the cipher's
 * secret bits; NULL, NULL, 0 without TLS. */
const char *modmta_tls_version(const modmta_ctx *ctx);
const char *modmta_tls_cipher(const modmta_ctx *ctx);
int modmta_tls_cipher_bits(const modmta_ctx *ctx);
/* Set the authenticated identity (a verb handler, e.g. AUTH). */
int modmta_set_auth_user(modmta_ctx *ctx, const char *user);
const modmta_host *modmta_ctx_host(const modmta_ctx *ctx);

/* ---- transaction ---- */
/* Queue ID of the current transaction (known from MAIL on), or NULL. */
const char *modmta_queue_id(const modmta_ctx *ctx);
/* Envelope sender without brackets; "" for the null sender <>. */
const char *modmta_sender(const modmta_ctx *ctx);
/* Value of a MAIL FROM parameter ("SIZE", "BODY", "AUTH"...), NULL if
 * absent, "" if given without a value. */
const char *modmta_mail_param(const modmta_ctx *ctx, const char *name);
size_t modmta_rcpt_count(const modmta_ctx *ctx);
const char *modmta_rcpt_at(const modmta_ctx *ctx, size_t i);

/* At on_rcpt: 1 if the recipient being examined came from a rewrite by a
 * module (alias, virtual) rather than from the client. */
int modmta_rcpt_is_rewritten(const modmta_ctx *ctx);
/* At on_rcpt: the address the client gave for this recipient. */
const char *modmta_rcpt_original(const modmta_ctx *ctx);

/* At on_rcpt, with MODMTA_CAP_REWRITE: replace the recipient being examined
 * by `addr` (call once per target). Return MODMTA_ACCEPT after the calls;
 * the core runs the chain again on each target, with depth and loop
 * limits. */
int modmta_rcpt_rewrite(modmta_ctx *ctx, const char *addr);
/* At on_rcpt, with MODMTA_CAP_REWRITE, in the call that rewrites: the
 * envelope sender ("" = <>) of the targets of this call and of everything
 * they expand to (a nested expansion that sets its own wins), as Sendmail
 * and Postfix use owner-NAME for a list: bounces for those recipients go
 * there. The message's other recipients keep its sender. Ignored when the
 * call rewrites nothing; called twice, the last one counts. */
int modmta_rcpt_rewrite_sender(modmta_ctx *ctx, const char *sender);

/* ---- message (on_data, on_queued, deliver) ---- */
size_t modmta_hdr_count(const modmta_ctx *ctx);
/* i-th header in message order; name and value borrowed. The value is
 * what follows the colon, leading white space dropped, folding (CRLF
 * followed by white space) kept as received, no final CRLF. */
int modmta_hdr_at(const modmta_ctx *ctx, size_t i, const char **name_r,
                  const char **value_r);
/* Value of the idx-th (0-based) header called `name` (any case), or NULL. */
const char *modmta_hdr_get(const modmta_ctx *ctx, const char *name,
                           size_t idx);
/* Path of the spooled message (headers and body, CRLF line ends, not
 * dot-stuffed) and its size. */
const char *modmta_message_path(const modmta_ctx *ctx);
off_t modmta_message_size(const modmta_ctx *ctx);
/* ABI 1.6: the body's size (octets after the empty line that ends the
 * header block, as received): known in the streaming hooks (the whole
 * message is spooled when they run) and at on_data; -1 before. */
off_t modmta_body_size(const modmta_ctx *ctx);

/* ---- milter actions (on_data unless said otherwise) ----
 * Each checks the module's declared capability (MODMTA_E_PERM) and the
 * phase (MODMTA_E_STATE). The envelope setters (sender, recipients,
 * rewrites) refuse an address that modmta_addr_envelope_ok rejects
 * (MODMTA_E_INVAL: control characters, '<', '>', over-long). */
int modmta_hdr_add(modmta_ctx *ctx, const char *name, const char *value);
/* Change the idx-th header called name; value NULL deletes it. */
int modmta_hdr_change(modmta_ctx *ctx, const char *name, size_t idx,
                      const char *value);
int modmta_hdr_delete(modmta_ctx *ctx, const char *name, size_t idx);
int modmta_sender_set(modmta_ctx *ctx, const char *addr); /* "" = <> */
int modmta_rcpt_add(modmta_ctx *ctx, const char *addr);   /* also on_rcpt */
int modmta_rcpt_remove(modmta_ctx *ctx, const char *addr);
int modmta_quarantine(modmta_ctx *ctx, const char *reason);

/* Flags of modmta_rcpt_add_flags. Append-only. */
enum {
    /* Never notify the sender about this recipient (RFC 3461
     * NOTIFY=NEVER): a permanent failure is logged and dropped, no DSN.
     * For copies the sender did not ask for (bcc, archive). A recipient
     * already in the envelope keeps its notifications. */
    MODMTA_RCPT_NO_DSN = 1u << 0,
};
/* modmta_rcpt_add with MODMTA_RCPT_* flags (same capability and phases).
 * MODMTA_E_INVAL for an unknown flag. */
int modmta_rcpt_add_flags(modmta_ctx *ctx, const char *addr, unsigned flags);

/* ---- milter actions of ABI 1.6 ---- */
/* With MODMTA_CAP_ADDHDRS, at on_data: insert a header so that it is the
 * index-th (0-based) of the message's headers as they stand (the core's
 * Received: is the first); an index past the end appends. As libmilter's
 * smfi_insheader. MODMTA_E_INVAL for a bad name (RFC 5322 ftext) or a
 * value with a bare CR or LF. */
int modmta_hdr_insert(modmta_ctx *ctx, size_t index, const char *name,
                      const char *value);
/* modmta_sender_set with the ESMTP parameters of the new sender (space
 * separated "KEYWORD[=value]", NULL or "" for none), which replace the
 * client's MAIL FROM parameters: BODY, SMTPUTF8, RET, ENVID (SIZE is
 * accepted and ignored). MODMTA_E_INVAL for another keyword or a bad
 * value. Same capability and phases as modmta_sender_set. */
int modmta_sender_set_params(modmta_ctx *ctx, const char *addr,
                             const char *params);
/* modmta_rcpt_add with the RCPT TO parameters of the added recipient
 * (NOTIFY, ORCPT; as modmta_sender_set_params). The queue keeps them:
 * the recipient's DSNs follow them. Same capability and phases as
 * modmta_rcpt_add. */
int modmta_rcpt_add_params(modmta_ctx *ctx, const char *addr,
                           const char *params);
/* With MODMTA_CAP_CHGBODY, at on_data: replace the message body (what
 * follows the header block's empty line). The first call of a
 * transaction starts the new body, each call appends len octets to it
 * (CRLF line ends; the core does not dot-stuff or check it). It is
 * written to a file in the queue as it comes and becomes the queued
 * body at the end of DATA. Modules after this one still see the
 * received body through modmta_message_path. MODMTA_E_IO,
 * MODMTA_E_NOSPACE when it cannot be written. */
int modmta_body_replace(modmta_ctx *ctx, const void *buf, size_t len);

/* ---- delivery (deliver hook) ---- */
/* 1 when this attempt follows a crash: the recipient may already have
 * received the message (a mailbox can check for the queue ID). */
int modmta_dlv_maybe_done(const modmta_ctx *ctx);
/* Arrival time of the message. */
time_t modmta_dlv_arrival(const modmta_ctx *ctx);
/* The address the client gave for this recipient, before any rewriting
 * (alias, virtual): for X-Original-To. NULL when unknown. */
const char *modmta_dlv_original_rcpt(const modmta_ctx *ctx);

/* ---- message-level delivery (ABI 1.3: route, deliver_msg) ---- */
/* In route(): the destination of the recipient being routed, a short
 * printable string ("remote.test", "[10.0.0.1]:587",
 * "lmtp:unix:/run/dovecot/lmtp"). Recipients one instance routes to the
 * same destination (with the same envelope sender) are handed to one
 * deliver_msg() call; the core bounds the calls per destination and
 * suspends a destination that is down. Default: the recipient's domain.
 * MODMTA_E_INVAL for an empty or over-long (255) destination. */
int modmta_dlv_route(modmta_ctx *ctx, const char *dest);

/* In deliver_msg(): the group's recipients (borrowed, valid during the
 * call). The envelope sender is modmta_sender(ctx); the MAIL FROM
 * parameters a next hop needs ("BODY", "SMTPUTF8", "RET", "ENVID",
 * "AUTH") are modmta_mail_param(ctx, name), at delivery as at MAIL. */
size_t modmta_dlv_rcpt_count(const modmta_ctx *ctx);
const char *modmta_dlv_rcpt_at(const modmta_ctx *ctx, size_t i);
/* An RCPT TO parameter the client gave for recipient i ("NOTIFY",
 * "ORCPT"), as given (xtext still encoded), NULL if absent. A recipient
 * an alias expanded keeps its client recipient's. */
const char *modmta_dlv_rcpt_param(const modmta_ctx *ctx, size_t i,
                                  const char *name);
/* The address the client gave for recipient i before rewriting, or NULL
 * (as modmta_dlv_original_rcpt for deliver()). */
const char *modmta_dlv_rcpt_original(const modmta_ctx *ctx, size_t i);

/* The server the results set after this call came from: its name (an MX
 * host name, "[10.0.0.1]", a socket path), its address ("192.0.2.1",
 * NULL for a UNIX socket) and port (0 for a UNIX socket). name NULL:
 * none (nothing was reached). Shown as relay=name[addr]:port in the
 * log, as "host name[addr] said: ..." in modmtactl queue, and as
 * Remote-MTA in a DSN. */
int modmta_dlv_remote(modmta_ctx *ctx, const char *name, const char *addr,
                      int port);
/* The TLS protocol and cipher of the connection to that server, for the
 * log line (NULL, NULL: not TLS). */
int modmta_dlv_remote_tls(modmta_ctx *ctx, const char *version,
                          const char *cipher);
/* The result for recipient i: MODMTA_DELIVERED, MODMTA_RELAYED,
 * MODMTA_RELAYED_DSN, MODMTA_DEFERRED or MODMTA_FAILED, with the reply
 * that decided it: code 200-599 (its class must match the status), or 0
 * when there was no reply (text is then the local reason: "connect to
 * mx1.remote.test[192.0.2.1]:25: Connection refused"); esc the enhanced
 * status code or NULL; stage the command the reply answered ("MAIL
 * FROM", "RCPT TO", "end of DATA", "greeting") or NULL; text the reply's
 * text, the lines of a multi-line reply joined with "\n". The last call
 * for i counts. MODMTA_E_INVAL for a bad index, status or code. */
int modmta_dlv_result(modmta_ctx *ctx, size_t i, modmta_dstatus status,
                      int code, const char *esc, const char *stage,
                      const char *text);
/* The destination is down: no server could be reached, or every one
 * refused at the greeting. The core defers the destination's other
 * waiting deliveries without trying them, until queue.retry_min has
 * passed or an administrator flushes the queue. */
int modmta_dlv_dest_down(modmta_ctx *ctx);

/* ---- replies ----
 * Set the reply for the current step; the core sends it. code is 2xx-5xx,
 * esc an enhanced status code ("5.7.1") or NULL for the core's default.
 * At deliver, the text becomes the delivery status reason. */
int modmta_reply(modmta_ctx *ctx, int code, const char *esc, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

/* ABI 1.6: a multi-line reply (RFC 5321 4.2.1): n (1 to
 * MODMTA_REPLY_LINES_MAX) lines of text, each at most
 * MODMTA_REPLY_LINE_MAX octets of printable ASCII (space included), sent as
 * "code-esc text" lines and a last "code esc text". Replaces any reply
 * set before; MODMTA_E_INVAL for a bad code, count or line. */
#define MODMTA_REPLY_LINES_MAX 16
#define MODMTA_REPLY_LINE_MAX 400
int modmta_reply_lines(modmta_ctx *ctx, int code, const char *esc,
                       const char *const *lines, size_t n);

/* Inside ehlo(): add one EHLO keyword line ("AUTH PLAIN LOGIN"). */
int modmta_ehlo_add(modmta_ctx *ctx, const char *keyword);

/* ---- memory ----
 * Transaction arena: freed at RSET, end of transaction, or disconnect.
 * Session arena: freed at disconnect. They return NULL when memory runs
 * out: check, and answer TEMPFAIL. */
void *modmta_txn_alloc(modmta_ctx *ctx, size_t n);
char *modmta_txn_strdup(modmta_ctx *ctx, const char *s);
void *modmta_sess_alloc(modmta_ctx *ctx, size_t n);
char *modmta_sess_strdup(modmta_ctx *ctx, const char *s);

/* Per-session data of one instance; free_fn runs at disconnect on every
 * exit path (and when replaced). */
int modmta_ctx_set_data(modmta_ctx *ctx, const void *inst, void *data,
                        void (*free_fn)(void *));
void *modmta_ctx_get_data(const modmta_ctx *ctx, const void *inst);

/* Free memory the SDK handed over (map lookup results and the like). */
void modmta_free(void *p);

/* Inside an AUTH verb: the identity a failed attempt tried, passed to the
 * on_auth hooks (which the core runs after the verb, with success 1 and
 * modmta_auth_user() when the verb set one, else with success 0 and this
 * identity). */
int modmta_set_auth_tried(modmta_ctx *ctx, const char *user);

/* ---- transaction notes (ABI 1.5) ----
 * Named values one module sets and later modules read, as Haraka's
 * transaction.notes: a score set at on_data by a content check, read by
 * a policy module after it, or at delivery. Notes belong to the
 * transaction: set at on_mail, on_rcpt or on_data (MODMTA_E_STATE
 * elsewhere), read from there on: later hooks of the transaction,
 * on_queued, and route(), deliver() and deliver_msg() of the message,
 * for which the queue envelope keeps them (across restarts). RSET, a new
 * MAIL and the end of the transaction drop them.
 *
 * A name is 1 to MODMTA_NOTE_NAME_MAX octets of letters, digits and
 * "_-.:", case-sensitive; start it with your module's name
 * ("spamcheck.score"). A value is an integer or a UTF-8 string of at
 * most MODMTA_NOTE_VALUE_MAX octets. A transaction holds at most
 * MODMTA_NOTES_MAX notes. Setting a note again replaces it, whoever set
 * it, and may change its type. No capability is needed: a note changes
 * nothing the core does; only modules that read it act on it. */
#define MODMTA_NOTES_MAX 32
#define MODMTA_NOTE_NAME_MAX 64
#define MODMTA_NOTE_VALUE_MAX 1024

/* 0; MODMTA_E_INVAL (a bad name, a NULL value, a value over
 * MODMTA_NOTE_VALUE_MAX or not UTF-8), MODMTA_E_LIMIT (a new name past
 * MODMTA_NOTES_MAX), MODMTA_E_STATE, MODMTA_E_NOMEM. */
int modmta_note_set_str(modmta_ctx *ctx, const char *name, const char *value);
int modmta_note_set_int(modmta_ctx *ctx, const char *name, long long value);
/* 1 with the value in *value_r (may be NULL; a string is borrowed,
 * valid during the hook call), 0 when no note has that name,
 * MODMTA_E_INVAL when it holds the other type or name is not a valid
 * note name. */
int modmta_note_get_str(const modmta_ctx *ctx, const char *name,
                        const char **value_r);
int modmta_note_get_int(const modmta_ctx *ctx, const char *name,
                        long long *value_r);

/* ---- time budgets (ABI 1.5) ----
 * Each call of on_connect ... on_disconnect and route() has a deadline:
 * its start plus the instance's "hook_timeout" (default 30 s). The SDK's
 * own waits (Redis and the shared state, DNS, client connections) end
 * by it, failing with their temporary error (MODMTA_E_TEMP, for a
 * connection MODMTA_E_TIMEOUT). A hook that returns after its deadline
 * has its verdict discarded: the instance's "on_hook_timeout" decides
 * (tempfail: 451 4.3.0; continue: as if it returned MODMTA_CONTINUE).
 * deliver(), deliver_msg(), verbs, ehlo() and serve() have no deadline.
 *
 * The deadline on CLOCK_MONOTONIC in milliseconds (tv_sec * 1000 +
 * tv_nsec / 1000000 of clock_gettime(CLOCK_MONOTONIC)); 0 when the
 * running call has none. */
int64_t modmta_ctx_deadline(const modmta_ctx *ctx);
/* The timeout to give a wait of your own: max_ms (>= 0), or what is
 * left before the deadline if that is less; 0 once it has passed. */
int modmta_ctx_time_left(const modmta_ctx *ctx, int max_ms);

/* 1 if mail for `domain` (any case, trailing dot ignored) is received
 * here rather than relayed: it is in local_domains, or an instance of
 * this generation's chain claims it with owns_domain (module.h), e.g. a
 * virtual alias domain. 0 otherwise, and for NULL or "". */
int modmta_is_inbound_domain(const modmta_ctx *ctx, const char *domain);

#ifdef __cplusplus
}
#endif

#endif
