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

/* ---- milter actions (on_data unless said otherwise) ----
 * Each checks the module's declared capability (MODMTA_E_PERM) and the
 * phase (MODMTA_E_STATE). */
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

/* ---- delivery (deliver hook) ---- */
/* 1 when this attempt follows a crash: the recipient may already have
 * received the message (a mailbox can check for the queue ID). */
int modmta_dlv_maybe_done(const modmta_ctx *ctx);
/* Arrival time of the message. */
time_t modmta_dlv_arrival(const modmta_ctx *ctx);

/* ---- replies ----
 * Set the reply for the current step; the core sends it. code is 2xx-5xx,
 * esc an enhanced status code ("5.7.1") or NULL for the core's default.
 * At deliver, the text becomes the delivery status reason. */
int modmta_reply(modmta_ctx *ctx, int code, const char *esc, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

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

#ifdef __cplusplus
}
#endif

#endif
