/*
 * smtpc: the SMTP and LMTP client engine of deliver_smtp and deliver_lmtp.
 * A static library linked into both modules: no ABI promise.
 *
 * Design
 * - A session (smtpc_session) is one connection to one server. smtpc_open()
 *   connects, reads the greeting and says EHLO (HELO when EHLO gets a 5xx,
 *   SMTP only) or LHLO, and parses the extensions. The caller's policy then
 *   picks smtpc_starttls() (which says EHLO again) and smtpc_auth(), and runs
 *   transactions with smtpc_txn_run(): MAIL, every RCPT and DATA in one
 *   flush when the server offers PIPELINING (RFC 2920; at most
 *   SMTPC_PIPE_WINDOW commands in flight, a bound on the replies that
 *   wait in the socket buffers), else in lock-step; then the content,
 *   dot-stuffed from the queue file.
 * - Every recipient ends with one result (struct smtpc_reply): the reply
 *   that decided it (its RCPT TO refusal; else the end of DATA reply, one
 *   for all under SMTP, one each in RCPT order under LMTP, RFC 2033), or,
 *   when no reply can decide it, a local reason with code 0: the
 *   conversation failed ("lost connection with mx1.remote.test[192.0.2.1]
 *   while sending RCPT TO", esc 4.4.2) or a check refused to send
 *   (5.3.4 the message is over the server's SIZE, 5.6.7 SMTPUTF8 needed but
 *   not offered). smtpc_reply_class() tells 2, 4 or 5 for both kinds.
 * - A session whose conversation failed, or that got a 421, is dead: only
 *   smtpc_close() is left. A usable one may serve another transaction or
 *   go back to a connection cache (smtpc_cache_*), which sends RSET before
 *   handing it out again, as Postfix's smtp does. A transaction left open
 *   (MAIL accepted, nothing delivered) is reset the same way, lazily: a
 *   session that is closed next only says QUIT.
 * - QUIT is sent without waiting for its reply (Postfix's
 *   smtp_skip_quit_response).
 * - Replies: every line is kept, joined with "\n", without the code, the
 *   separator and the enhanced status code (when the first line has one,
 *   RFC 2034 and RFC 3463, it is taken off each line that repeats it). A
 *   line is at most SMTPC_LINE_MAX octets (longer ones are cut there), a
 *   reply at most SMTPC_LINES_MAX lines; a reply whose lines do not share
 *   one code, a code out of 200-599, or a bare CR or LF is a protocol error
 *   (the session dies, esc 4.5.0).
 * - Timeouts are RFC 5321 section 4.5.3.2's unless the caller shortens
 *   them (struct smtpc_timeouts); the daemon's stop ends a wait within a
 *   second (modmta_conn_connect's ctx), and is reported as a time-out.
 * - Threads: a session is used by one thread at a time (the cache hands
 *   it over); the cache is thread-safe. Nothing here logs: the module logs
 *   the results, and credentials never leave smtpc_auth().
 */
#ifndef SMTPC_H
#define SMTPC_H

#include <stddef.h>
#include <sys/socket.h>

#include <modmta/modmta.h>

#define SMTPC_LINE_MAX 2000    /* octets of one reply line kept */
#define SMTPC_LINES_MAX 100    /* lines of one reply */
/* Commands in flight at once when pipelining: their replies (usually 30
 * octets each) must fit in the socket buffers, or server and client would
 * both block writing. 100 covers MAIL, DATA and 98 recipients. */
#define SMTPC_PIPE_WINDOW 100

typedef enum smtpc_role {
    SMTPC_SMTP = 0,
    SMTPC_LMTP = 1,
} smtpc_role;

/* EHLO (LHLO) extensions, the bits of smtpc_ext(). */
enum {
    SMTPC_EXT_PIPELINING = 1 << 0,
    SMTPC_EXT_SIZE = 1 << 1,
    SMTPC_EXT_8BITMIME = 1 << 2,
    SMTPC_EXT_SMTPUTF8 = 1 << 3,
    SMTPC_EXT_DSN = 1 << 4,
    SMTPC_EXT_STARTTLS = 1 << 5,
    SMTPC_EXT_AUTH = 1 << 6,
    SMTPC_EXT_ENHANCEDSTATUSCODES = 1 << 7,
};

/* AUTH mechanisms the engine speaks (offered ones: struct smtpc_ehlo). */
enum {
    SMTPC_AUTH_PLAIN = 1 << 0,
    SMTPC_AUTH_LOGIN = 1 << 1,
};

/* What an EHLO reply offers. */
struct smtpc_ehlo {
    unsigned ext;                  /* SMTPC_EXT_* */
    unsigned auth;                 /* SMTPC_AUTH_* among the AUTH list */
    unsigned long long size_max;   /* SIZE's value; 0: no limit given */
};

/* Milliseconds each step may wait; smtpc_timeouts_default() fills RFC
 * 5321 section 4.5.3.2's and Postfix's. A write or flush gets the
 * timeout of the command it sends; content gets data_block_ms per block
 * (16 KiB). */
struct smtpc_timeouts {
    int connect_ms;    /* 30 s (Postfix's smtp_connect_timeout) */
    int greeting_ms;   /* 5 min: the initial 220 */
    int helo_ms;       /* 5 min: EHLO, HELO, LHLO (smtp_helo_timeout) */
    int starttls_ms;   /* 5 min: its reply, and the handshake */
    int auth_ms;       /* 5 min: each AUTH exchange */
    int mail_ms;       /* 5 min: MAIL FROM */
    int rcpt_ms;       /* 5 min: RCPT TO */
    int data_ms;       /* 2 min: DATA's 354 */
    int data_block_ms; /* 3 min: each block of content sent */
    int data_end_ms;   /* 10 min: the reply(ies) to the final "." */
    int rset_ms;       /* 20 s: RSET (smtp_rset_timeout), and sending QUIT */
};

struct smtpc_cache;

/* How a session is made. Copied by smtpc_open(). */
struct smtpc_opts {
    smtpc_role role;
    const char *helo;              /* our name, for EHLO/HELO/LHLO */
    struct smtpc_timeouts timeouts;
    struct smtpc_cache *cache;     /* counts the connection, or NULL */
};

/* A reply, or a local reason (code 0). */
struct smtpc_reply {
    int code;                      /* 200-599; 0: no reply decided it */
    char esc[16];                  /* enhanced status code, "" if none */
    const char *stage;             /* what it answered (static): "greeting",
                                    * "EHLO", "HELO", "LHLO", "STARTTLS",
                                    * "AUTH", "MAIL FROM", "RCPT TO", "DATA",
                                    * "end of DATA", "RSET"; NULL: while
                                    * connecting */
    char *text;                    /* malloc'ed, never NULL once filled */
};

/* Results of the session-level calls. Each fills the caller's struct
 * smtpc_reply (its former content is not freed: clear it after use). */
typedef enum smtpc_rc {
    SMTPC_OK = 0,
    SMTPC_REFUSED = 1,       /* the server said no: r is its reply (a 421
                              * also kills the session) */
    SMTPC_FAILED = 2,        /* the conversation failed (lost, timed out,
                              * malformed): r->code 0, session dead */
    SMTPC_NOT_OFFERED = 3,   /* STARTTLS, or AUTH with PLAIN or LOGIN, is
                              * not offered: nothing was sent */
    SMTPC_TLS_FAILED = 4,    /* the TLS handshake failed: session dead */
    SMTPC_TLS_UNVERIFIED = 5, /* VERIFY: the certificate did not verify
                              * (r->text says why): session dead */
    SMTPC_NOT_ALLOWED = 6,   /* AUTH without TLS: nothing was sent */
} smtpc_rc;

typedef struct smtpc_session smtpc_session;
typedef struct smtpc_txn smtpc_txn;
typedef struct smtpc_cache smtpc_cache;

/* ---- replies ---- */
/* 2, 4 or 5: the reply's class; for a local reason its esc's class (4
 * when it has none). */
int smtpc_reply_class(const struct smtpc_reply *r);
/* Free r's text; r may be filled again. */
void smtpc_reply_clear(struct smtpc_reply *r);
/* The length of the enhanced status code (RFC 3463: "5.1.1", 1 to 3
 * digits after each dot) at the start of s, of the class of code (250,
 * 451 ...), followed by a space or the end of s; 0 if there is none. */
size_t smtpc_esc_len(const char *s, size_t len, int code);

/* ---- sessions ---- */
void smtpc_timeouts_default(struct smtpc_timeouts *t);

/* Connect to sa, read the greeting, EHLO (or LHLO; HELO after an EHLO 5xx
 * for SMTP). name is the server's name for messages and the results
 * ("mx1.remote.test", "[192.0.2.1]"). NULL on failure, r then filled
 * (the caller clears it): code 0 when no server answered (stage NULL:
 * connecting, esc 4.4.1), or the greeting's or EHLO's refusal (QUIT is
 * sent). r is cleared on success. ctx links the connection to the
 * daemon's stop (may be NULL). */
smtpc_session *smtpc_open(modmta_ctx *ctx, const struct smtpc_opts *o,
                          const char *name, const struct sockaddr *sa,
                          socklen_t salen, struct smtpc_reply *r);
/* The same over a UNIX socket (LMTP); the path is the server's name. */
smtpc_session *smtpc_open_unix(modmta_ctx *ctx, const struct smtpc_opts *o,
                               const char *path, struct smtpc_reply *r);
/* QUIT (unless dead), close, free. NULL is ignored. */
void smtpc_close(smtpc_session *s);

/* STARTTLS, the handshake with t at level verify (peer_name: the name to
 * verify and send as SNI, the MX host name), then EHLO again. SMTPC_OK;
 * SMTPC_NOT_OFFERED (r: a local reason, 4.7.4; the session is fine);
 * SMTPC_REFUSED (r: the reply; the session goes on in clear);
 * SMTPC_TLS_FAILED, SMTPC_TLS_UNVERIFIED (r: local, 4.7.5); SMTPC_FAILED,
 * or EHLO's failure after the handshake. OK at once if already TLS. */
smtpc_rc smtpc_starttls(smtpc_session *s, modmta_tls_client *t,
                        const char *peer_name, modmta_tls_verify verify,
                        struct smtpc_reply *r);
/* AUTH with user and password: PLAIN if offered, else LOGIN. Refused
 * without TLS (SMTPC_NOT_ALLOWED: credentials never go in clear). r holds
 * the final reply (235 on success). */
smtpc_rc smtpc_auth(smtpc_session *s, const char *user, const char *pass,
                    struct smtpc_reply *r);
/* RSET, and 250 checked: SMTPC_OK, SMTPC_REFUSED (then the session is
 * marked dead: it cannot be trusted for another transaction), or
 * SMTPC_FAILED. */
smtpc_rc smtpc_rset(smtpc_session *s, struct smtpc_reply *r);

/* 1 when another transaction may run (alive; an open transaction is reset
 * first). */
int smtpc_usable(const smtpc_session *s);
unsigned smtpc_ext(const smtpc_session *s);
const struct smtpc_ehlo *smtpc_ehlo(const smtpc_session *s);
/* The server: its name as given, its address ("192.0.2.1"; NULL over a
 * UNIX socket) and port (0), and "name[address]" for messages. */
const char *smtpc_name(const smtpc_session *s);
const char *smtpc_addr(const smtpc_session *s);
int smtpc_port(const smtpc_session *s);
const char *smtpc_peer(const smtpc_session *s);
/* The connection (TLS version, cipher, verified). */
modmta_conn *smtpc_conn(const smtpc_session *s);
/* Transactions run on it so far. */
unsigned smtpc_txn_count(const smtpc_session *s);

/* ---- transactions ---- */
struct smtpc_rcpt {
    const char *addr;              /* without <> */
    const char *notify;            /* NOTIFY= value as given, or NULL */
    const char *orcpt;             /* ORCPT= value (xtext), or NULL */
};

/* One message for one group of recipients. Parameter values are sent as
 * given (the queue keeps them as the client gave them, xtext encoded). */
struct smtpc_msg {
    const char *sender;            /* "" for <> */
    const char *path;              /* the content: CRLF lines, not stuffed */
    int need_8bit;                 /* BODY=8BITMIME when offered */
    int need_smtputf8;             /* SMTPUTF8; refused (5.6.7) if not
                                    * offered */
    const char *ret;               /* RET= (with DSN), or NULL */
    const char *envid;             /* ENVID= (with DSN), or NULL */
    const char *auth;              /* AUTH= (when AUTH is offered), or NULL */
    const struct smtpc_rcpt *rcpts;
    size_t nrcpts;
};

/* Run one transaction on s. The results are per recipient, in m->rcpts'
 * order; NULL only when out of memory before anything was sent. s may be
 * dead afterwards (smtpc_usable). */
smtpc_txn *smtpc_txn_run(smtpc_session *s, const struct smtpc_msg *m);
/* Recipient i's result (never NULL; valid until smtpc_txn_free). */
const struct smtpc_reply *smtpc_txn_result(const smtpc_txn *t, size_t i);
/* 1 if the content went out and the server answered the final "." for
 * at least one recipient. */
int smtpc_txn_data_sent(const smtpc_txn *t);
void smtpc_txn_free(smtpc_txn *t);

/* ---- the connection cache ----
 * Idle sessions by key (the caller's destination, "remote.test"). A
 * session idle longer than idle_ms (Postfix's
 * smtp_connection_cache_time_limit, 2 s) or connected longer than
 * max_age_ms ago (smtp_connection_reuse_time_limit, 300 s) is closed
 * instead of reused; a reaper thread, started by the first put, closes
 * them as they expire. */
smtpc_cache *smtpc_cache_new(int idle_ms, int max_age_ms);
/* A usable session for key, checked with RSET (a failing one is closed
 * and the next tried), or NULL. */
smtpc_session *smtpc_cache_get(smtpc_cache *c, const char *key);
/* Keep s for key (the cache owns it): closed instead when it is not
 * usable or too old. */
void smtpc_cache_put(smtpc_cache *c, const char *key, smtpc_session *s);
/* Connections opened with this cache in their smtpc_opts, and sessions
 * handed out again by smtpc_cache_get. */
void smtpc_cache_stats(smtpc_cache *c, unsigned long *opened_r,
                       unsigned long *reused_r);
/* Close every session (QUIT), stop the reaper, free. NULL is ignored. */
void smtpc_cache_free(smtpc_cache *c);

#endif
