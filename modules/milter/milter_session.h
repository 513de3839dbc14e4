/*
 * milter: the state of one SMTP session's conversations with the
 * instance's milters. One connection per milter per session, opened at
 * connect (or taken from the milter's idle pool, milter_pool.h) and
 * reused by every transaction of the session (an ABORT between them),
 * closed with QUIT or pooled after QUIT_NC at disconnect.
 */
#ifndef MILTER_SESSION_H
#define MILTER_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <modmta/ctx.h>

#include "milter_conf.h"
#include "milter_conn.h"
#include "milter_proto.h"

struct milter_pool;

struct milter_peer {
    const struct milter_spec *spec;
    struct milter_pool *pool; /* its idle connections (NULL: no reuse) */
    struct milter_conn conn;
    int failed;       /* dead, slow or misbehaving: its default_action */
    int session_done; /* ACCEPT before MAIL: nothing more this session */
    int txn_done;     /* ACCEPT, DISCARD or a reject of the message */
    int in_txn;       /* MAIL sent, neither end of message nor ABORT */
    int skip_body;    /* SKIP: the rest of the body is not sent */
    int at_rest;      /* last: an answered EOM or UNKNOWN (QUIT_NC ok) */
    uint32_t version; /* negotiated protocol version */
    uint32_t actions; /* negotiated MILTER_A_* */
    uint32_t proto;   /* negotiated MILTER_P_* (and protocol_steps) */
    size_t chunk;     /* largest body chunk */
    char *macros[MILTER_M_COUNT]; /* SETSYMLIST lists (NULL: defaults) */
};

struct milter_sess {
    struct milter_peer *peers;
    size_t n;
    int discard_session; /* DISCARD before MAIL: every message */
    int discard_txn;     /* DISCARD in this transaction */
    int txn_open;        /* MAIL was sent for the current transaction */
};

/* Which event an exchange is: the stage of its macros and what the
 * milter's replies mean. */
enum milter_stage {
    MILTER_ST_CONNECT,
    MILTER_ST_HELO,
    MILTER_ST_MAIL,
    MILTER_ST_RCPT,
    MILTER_ST_DATA,
    MILTER_ST_HEADER,
    MILTER_ST_EOH,
    MILTER_ST_BODY,
    MILTER_ST_EOM,
    MILTER_ST_UNKNOWN, /* an unknown SMTP command: no macros */
};

/* Take a pooled connection, or open one and negotiate; on failure the
 * peer is marked failed (logged). */
void milter_peer_open(modmta_ctx *ctx, struct milter_peer *p);
/* ABORT when a transaction is open, then QUIT; close. */
void milter_peer_quit(struct milter_peer *p, int timeout_ms);
void milter_peer_close(struct milter_peer *p);
/* A failure: logged with the milter's name, the connection closed, and
 * from now on its default_action. Returns that verdict (reply set). */
modmta_verdict milter_peer_fail(modmta_ctx *ctx, struct milter_peer *p,
                                const char *what, int err);
/* The verdict of a failed milter (reply set). */
modmta_verdict milter_default_verdict(modmta_ctx *ctx,
                                      const struct milter_peer *p);

/* Queue the stage's macros (the milter's SETSYMLIST list or the
 * defaults); arg is the recipient at RCPT. 0 or -1 out of memory. */
int milter_macros_put(modmta_ctx *ctx, struct milter_peer *p,
                      enum milter_stage st, const char *arg);

/* Flush what is queued and, unless the milter said it will not reply
 * (noreply), read replies until a final one: the verdict, the reply
 * set, the session's DISCARD flags and the peer's state updated. At
 * end of message, modification replies are applied as they come. */
modmta_verdict milter_exchange(modmta_ctx *ctx, struct milter_sess *s,
                               struct milter_peer *p, enum milter_stage st,
                               int noreply, int timeout_ms);
/* Apply one modification reply (the peer's last packet): 0, -1 when the
 * milter did not negotiate it or it is malformed (misbehaviour), -2 when
 * modmta could not do it (a local error). */
int milter_mods_apply(modmta_ctx *ctx, struct milter_peer *p);

/* A milter's reply code and text ("550 5.7.1 text", multi-line with
 * CRLF between lines) set as the reply: MODMTA_REJECT for 5xx,
 * MODMTA_TEMPFAIL for 4xx, -1 when it is not a 4xx or 5xx reply. s is
 * cut into lines in place. */
int milter_replycode(modmta_ctx *ctx, char *s);
/* A header value from a milter as modmta stores one (folding with CRLF
 * and white space; HDR_LEADSPC's leading space dropped): malloc'ed, or
 * NULL out of memory. */
char *milter_header_value(uint32_t proto, const char *v);

/* The time limit of a wait: ms, or less if the hook's budget ends
 * sooner. */
int milter_timeout(const modmta_ctx *ctx, int ms);

/* The end of DATA for one milter: DATA, headers, EOH, body, EOM, read
 * from the spooled message. */
modmta_verdict milter_message(modmta_ctx *ctx, struct milter_sess *s,
                              struct milter_peer *p);

#endif
