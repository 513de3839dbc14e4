/*
 * modmta SDK: the module descriptor, verdicts and hooks.
 *
 * A module is a shared object that exports exactly one symbol,
 * `modmta_descriptor`, declared with MODMTA_MODULE:
 *
 *     MODMTA_MODULE = {
 *         .abi = MODMTA_ABI_VERSION, .size = sizeof(modmta_module),
 *         .sig = MODMTA_BUILD_SIG, .name = "hello", .version = "1.0.0",
 *         .create = hello_create, .destroy = hello_destroy,
 *         .on_rcpt = hello_on_rcpt,
 *     };
 *
 * Every struct and enum here is append-only: fields are only ever added at
 * the end, values never renumbered. Any other change bumps
 * MODMTA_ABI_MAJOR. The loader accepts a module whose major equals its
 * own and whose minor is not newer; `size` tells it which fields the
 * module knows about.
 *
 * Threads: hooks run on session threads (and deliver on delivery threads)
 * concurrently. An instance is read-only once create() has returned;
 * per-session state goes into modmta_ctx_set_data().
 */
#ifndef MODMTA_MODULE_H
#define MODMTA_MODULE_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <jansson.h>

#include <modmta/err.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MODMTA_ABI_MAJOR 1
#define MODMTA_ABI_MINOR 6
#define MODMTA_ABI_VERSION ((MODMTA_ABI_MAJOR << 16) | MODMTA_ABI_MINOR)
#define MODMTA_ABI_GET_MAJOR(v) (((uint32_t)(v)) >> 16)
#define MODMTA_ABI_GET_MINOR(v) (((uint32_t)(v)) & 0xffffu)

/* Binary compatibility signature: pointer, time_t and off_t sizes. */
#define MODMTA_BUILD_SIG                                                   \
    ((uint32_t)(sizeof(void *) | (sizeof(time_t) << 8) |                  \
                (sizeof(off_t) << 16) | (0x4du << 24)))

#define MODMTA_DESCRIPTOR_SYMBOL "modmta_descriptor"

#if defined(__GNUC__)
#define MODMTA_EXPORT __attribute__((visibility("default")))
#else
#define MODMTA_EXPORT
#endif

#define MODMTA_MODULE MODMTA_EXPORT const modmta_module modmta_descriptor

typedef struct modmta_ctx modmta_ctx;   /* a session, transaction or delivery */
typedef struct modmta_host modmta_host; /* what the core tells a module */
typedef struct modmta_conn modmta_conn; /* a client connection (sdk/conn.h) */

/* Hook verdicts, as libmilter's. Append-only. */
typedef enum modmta_verdict {
    MODMTA_CONTINUE = 0, /* no opinion: next module */
    MODMTA_ACCEPT = 1,   /* this step is decided (at RCPT: recipient claimed) */
    MODMTA_REJECT = 2,   /* 5xx */
    MODMTA_TEMPFAIL = 3, /* 4xx */
    MODMTA_DISCARD = 4,  /* accept and drop (message, or recipient at RCPT) */
} modmta_verdict;

/* Results of deliver() and of each recipient of deliver_msg().
 * Append-only. */
typedef enum modmta_dstatus {
    MODMTA_DELIVERED = 0, /* final delivery (a mailbox, an LMTP store): a
                           * sender who asked NOTIFY=SUCCESS gets
                           * "Action: delivered" */
    MODMTA_DEFERRED = 1,  /* retry later */
    MODMTA_FAILED = 2,    /* permanent: the sender gets a DSN */
    MODMTA_DECLINED = 3,  /* not mine: next module (deliver() only) */
    /* ABI 1.3 */
    MODMTA_RELAYED = 4,   /* accepted by a next hop that does not offer
                           * DSN (RFC 3461): NOTIFY=SUCCESS gets
                           * "Action: relayed" */
    MODMTA_RELAYED_DSN = 5, /* accepted by a next hop that took the DSN
                             * request over: no notice from here */
} modmta_dstatus;

/* Capabilities: actions a module may take, declared up front (libmilter's
 * SMFIF_*). An action without its capability fails with MODMTA_E_PERM. */
enum {
    MODMTA_CAP_ADDHDRS = 1u << 0,    /* modmta_hdr_add (on_data) */
    MODMTA_CAP_CHGHDRS = 1u << 1,    /* modmta_hdr_change/delete (on_data) */
    MODMTA_CAP_CHGFROM = 1u << 2,    /* modmta_sender_set (on_mail, on_data) */
    MODMTA_CAP_ADDRCPT = 1u << 3,    /* modmta_rcpt_add (on_rcpt, on_data) */
    MODMTA_CAP_DELRCPT = 1u << 4,    /* modmta_rcpt_remove (on_data) */
    MODMTA_CAP_QUARANTINE = 1u << 5, /* modmta_quarantine (on_data) */
    MODMTA_CAP_REWRITE = 1u << 6,    /* modmta_rcpt_rewrite (on_rcpt) */
    /* ABI 1.6 */
    MODMTA_CAP_CHGBODY = 1u << 7,    /* modmta_body_replace (on_data) */
};

/* An SMTP verb a module handles (AUTH is one). The handler may talk to the
 * client through `conn` (e.g. 334 challenges) and ends with a verdict; the
 * final reply is the one set with modmta_reply(), else a core default
 * (250 for ACCEPT/CONTINUE, 550 for REJECT, 454 for TEMPFAIL). */
typedef struct modmta_verb {
    const char *name; /* upper case, e.g. "AUTH" */
    modmta_verdict (*handler)(void *inst, modmta_ctx *ctx, modmta_conn *conn,
                              const char *args);
} modmta_verb;

/* ABI 1.6: an entry of the descriptor's `commands` table, sized so it can
 * grow (append-only), written with the macros:
 *   static const modmta_command auth_commands[] = {
 *       MODMTA_COMMAND("AUTH", auth_verb), MODMTA_COMMAND_END
 *   };
 * The core looks a command up in `commands`, else in `verbs`. */
typedef struct modmta_command {
    size_t size;      /* sizeof(modmta_command) (the macros set it) */
    const char *name; /* upper case; NULL ends the table */
    modmta_verdict (*handler)(void *inst, modmta_ctx *ctx, modmta_conn *conn,
                              const char *args);
} modmta_command;

#define MODMTA_COMMAND(name, handler) \
    { sizeof(modmta_command), (name), (handler) }
#define MODMTA_COMMAND_END { sizeof(modmta_command), NULL, NULL }

typedef struct modmta_module {
    uint32_t abi;         /* MODMTA_ABI_VERSION */
    uint32_t size;        /* sizeof(modmta_module) as the module saw it */
    uint32_t sig;         /* MODMTA_BUILD_SIG */
    const char *name;     /* module name as written in "module" */
    const char *version;  /* the module's own version string */
    uint32_t caps;        /* MODMTA_CAP_* */

    /* Validate `conf` (borrowed; json_incref to keep), return an instance.
     * On error return NULL and fill err_r, naming the JSON key at fault
     * (modmta_host_path() gives this instance's path). Runs unprivileged. */
    void *(*create)(const json_t *conf, const modmta_host *host,
                    modmta_err *err_r);
    void (*destroy)(void *inst);

    /* Session hooks, each optional. Arguments are borrowed. */
    modmta_verdict (*on_connect)(void *inst, modmta_ctx *ctx);
    modmta_verdict (*on_helo)(void *inst, modmta_ctx *ctx, const char *helo);
    modmta_verdict (*on_auth)(void *inst, modmta_ctx *ctx, const char *user,
                              int success);
    modmta_verdict (*on_mail)(void *inst, modmta_ctx *ctx, const char *sender);
    modmta_verdict (*on_rcpt)(void *inst, modmta_ctx *ctx, const char *rcpt);
    modmta_verdict (*on_data)(void *inst, modmta_ctx *ctx);
    modmta_verdict (*on_queued)(void *inst, modmta_ctx *ctx);
    modmta_dstatus (*deliver)(void *inst, modmta_ctx *ctx, const char *rcpt);
    void (*on_disconnect)(void *inst, modmta_ctx *ctx);

    /* Extensions. ehlo() adds keywords with modmta_ehlo_add(); verbs is
     * terminated by an entry whose name is NULL. */
    void (*ehlo)(void *inst, modmta_ctx *ctx);
    const modmta_verb *verbs;
    /* Own a listener's whole protocol ("protocol": "<module name>").
     * Returns when the client is done; the core closes the connection. */
    void (*serve)(void *inst, modmta_ctx *ctx, modmta_conn *conn);

    /* Once per process, optional: after dlopen, before exit. */
    int (*load)(modmta_err *err_r);
    void (*unload)(void);

    /* ABI 1.1, optional: 1 if this instance receives mail for `domain`
     * (always lower case, no trailing dot), e.g. virtual alias domains.
     * Such domains are inbound (modmta_is_inbound_domain), not relayed.
     * Called on any thread: read the instance only. */
    int (*owns_domain)(void *inst, const char *domain);

    /* ABI 1.3, optional: message-level delivery, for a transport (SMTP,
     * LMTP). route() runs on a delivery worker for each pending
     * recipient, in chain order with deliver(): it may only look up
     * tables (no network). Return MODMTA_ACCEPT to claim the recipient,
     * naming its destination with modmta_dlv_route() (default: the
     * recipient's domain); MODMTA_CONTINUE: not mine, next module;
     * MODMTA_REJECT / MODMTA_TEMPFAIL: fail / defer it now (reply set
     * with modmta_reply()); MODMTA_DISCARD: drop it (logged).
     * The core groups the recipients an instance claimed by destination
     * and envelope sender, and calls deliver_msg() once per group (at
     * most queue.destination_recipients recipients) on an outbound
     * thread, with at most queue.destination_concurrency calls per
     * destination at once. deliver_msg() reports every recipient with
     * modmta_dlv_result() (ctx.h); one left without a result is
     * deferred. An instance with route() is never called through
     * deliver(). */
    modmta_verdict (*route)(void *inst, modmta_ctx *ctx, const char *rcpt);
    void (*deliver_msg)(void *inst, modmta_ctx *ctx, const char *dest);

    /* ABI 1.6, optional: the SMTP commands this module handles, a sized
     * table (modmta_command) ended by MODMTA_COMMAND_END; replaces
     * `verbs` (still read when this is NULL). */
    const modmta_command *commands;

    /* ABI 1.6, optional: the message as a stream (milter's header, eoh
     * and body steps), phase MODMTA_PHASE_STREAM. Once the end of DATA
     * is read and the message spooled, before on_data: on_header for
     * each header field in message order (the core's Received: first),
     * name and value as modmta_hdr_at gives them (a folded field's value
     * keeps its CRLF WSP, raw); then on_eoh; then on_body for each body
     * chunk (CRLF line ends, not dot-stuffed, at most 65535 octets: one
     * milter body packet), and a last on_body with chunk NULL and len 0:
     * the end of the body (modmta_body_size() is its total). The modules are called in chain
     * order for each step. CONTINUE: go on. ACCEPT: this module wants
     * no more of this message's stream (it still gets on_data).
     * REJECT, TEMPFAIL, DISCARD: the stream stops for every module and
     * the verdict is the message's at the end of DATA, with this
     * module's reply; on_data is not run. */
    modmta_verdict (*on_header)(void *inst, modmta_ctx *ctx,
                                const char *name, const char *value);
    modmta_verdict (*on_eoh)(void *inst, modmta_ctx *ctx);
    modmta_verdict (*on_body)(void *inst, modmta_ctx *ctx,
                              const unsigned char *chunk, size_t len);
    /* ABI 1.6, optional, phase MODMTA_PHASE_ABORT: the open transaction
     * (MAIL was accepted) ends without reaching the end of DATA: RSET,
     * HELO/EHLO, STARTTLS, QUIT, or the client going away (a disconnect
     * or timeout, even in the middle of DATA). (A MAIL inside a
     * transaction is refused, 503: it aborts nothing.) Called
     * before the transaction's data is dropped, in chain order, for
     * every instance that has it. Not called once the end of DATA was
     * read (the message was queued or refused). */
    void (*on_abort)(void *inst, modmta_ctx *ctx);
    /* ABI 1.6, optional, phase MODMTA_PHASE_VERB: a command neither the
     * core nor a module's verb knows, the line as the client sent it
     * (trailing spaces dropped), before the core's reply, in chain
     * order until one decides. REJECT or TEMPFAIL: the client gets this
     * module's reply (a 5xx or 4xx; else the core's default for the
     * class). CONTINUE, ACCEPT, DISCARD: the core's 500 5.5.1. Either
     * way it counts against the session's error limit; no module can
     * make an unknown command succeed. */
    modmta_verdict (*on_unknown)(void *inst, modmta_ctx *ctx,
                                 const char *line);
} modmta_module;

/* ---- what the core tells a module (valid for the instance's life) ---- */

const char *modmta_host_instance(const modmta_host *h); /* instance name */
const char *modmta_host_path(const modmta_host *h);     /* "$.modules[3]" */
const char *modmta_host_hostname(const modmta_host *h);
const char *modmta_host_spool(const modmta_host *h);
/* 1 if domain (any case, trailing dot ignored) is in local_domains. */
int modmta_host_is_local_domain(const modmta_host *h, const char *domain);
/* 1 if the daemon runs as root before dropping privileges. */
int modmta_host_is_root(const modmta_host *h);
/* ABI 1.6: the core's "recipient_delimiter" (one or more characters,
 * "+" or "+-"), "" when none is configured. Give it to
 * modmta_addr_split_extension() (addr.h). */
const char *modmta_host_recipient_delimiter(const modmta_host *h);
/* ABI 1.3: 1 if sa (address and port) reaches one of this daemon's SMTP
 * listeners: a listener's exact address, or, for a wildcard listener
 * (0.0.0.0, ::), an address of one of the machine's interfaces on its
 * port. Mail sent there would loop (RFC 5321 5.1, 5.4.6). Another
 * server on another loopback address is not this host. */
int modmta_host_is_own_address(const modmta_host *h,
                               const struct sockaddr *sa, socklen_t len);

#ifdef __cplusplus
}
#endif

#endif
