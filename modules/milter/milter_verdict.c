/* milter: reading a milter's replies to one event and mapping the final
 * one to a modmta verdict (milter_session.h).
 *
 * The mapping cannot open a relay: ACCEPT means "no objection", never
 * "recipient claimed", so it is CONTINUE and the chain goes on to
 * relay_access and the stores; it only stops this milter's calls (for
 * the session before MAIL, for the message after). DISCARD discards the
 * whole message, whatever the stage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "milter_session.h"

static int
milter_is_mod(int code)
{
    return code != 0 && strchr("+-2behimq", code) != NULL;
}

/* A final reply: the verdict, with the peer's and session's state. */
static modmta_verdict
milter_final(modmta_ctx *ctx, struct milter_sess *s, struct milter_peer *p,
             enum milter_stage st)
{
    int before_mail = st == MILTER_ST_CONNECT || st == MILTER_ST_HELO ||
                      st == MILTER_ST_UNKNOWN;
    int r;

    switch (p->conn.code) {
    case MILTER_R_CONTINUE:
        return MODMTA_CONTINUE;
    case MILTER_R_ACCEPT:
    case MILTER_R_DISCARD:
        /* An unknown command cannot succeed, nor carry a message. */
        if (st == MILTER_ST_UNKNOWN)
            return MODMTA_CONTINUE;
        break;
    default:
        break;
    }
    switch (p->conn.code) {
    case MILTER_R_ACCEPT:
        if (before_mail)
            p->session_done = 1;
        else if (st != MILTER_ST_RCPT)
            p->txn_done = 1;
        return MODMTA_CONTINUE;
    case MILTER_R_DISCARD:
        if (before_mail)
            s->discard_session = 1;
        else
            s->discard_txn = 1;
        p->txn_done = !before_mail;
        return MODMTA_DISCARD;
    case MILTER_R_REJECT:
        modmta_reply(ctx, before_mail ? 554 : 550, "5.7.1",
                     "Command rejected");
        return MODMTA_REJECT;
    case MILTER_R_TEMPFAIL:
        modmta_reply(ctx, 451, "4.7.1", "Service unavailable - try again "
                     "later");
        return MODMTA_TEMPFAIL;
    case MILTER_R_REPLYCODE:
        r = milter_replycode(ctx, (char *)p->conn.data);
        if (r >= 0)
            return (modmta_verdict)r;
        return milter_peer_fail(ctx, p, "malformed reply code", 0);
    case MILTER_R_SKIP:
        if (st == MILTER_ST_BODY && (p->proto & MILTER_P_SKIP)) {
            p->skip_body = 1;
            return MODMTA_CONTINUE;
        }
        return milter_peer_fail(ctx, p, "SKIP outside the body", 0);
    case MILTER_R_SHUTDOWN:
    case MILTER_R_CONNFAIL:
        modmta_log(ctx, MODMTA_LOG_WARN, "milter=%s closes the session",
                   p->spec->name);
        milter_peer_close(p);
        p->failed = 1;
        modmta_reply(ctx, 421, "4.7.0", "Server closing connection");
        return MODMTA_TEMPFAIL;
    default:
        return milter_peer_fail(ctx, p, "unexpected reply", 0);
    }
}

modmta_verdict
milter_exchange(modmta_ctx *ctx, struct milter_sess *s, struct milter_peer *p,
                enum milter_stage st, int noreply, int timeout_ms)
{
    modmta_verdict v;
    int r, code;

    p->at_rest = 0; /* the milter leaves its last state */
    if (noreply && p->conn.out.len < MILTER_CHUNK_64K) {
        p->at_rest = st == MILTER_ST_UNKNOWN;
        return MODMTA_CONTINUE; /* sent with the next one that waits */
    }
    r = milter_conn_flush(&p->conn, milter_timeout(ctx, timeout_ms));
    if (r < 0)
        return milter_peer_fail(ctx, p, "write", r);
    if (noreply) {
        p->at_rest = st == MILTER_ST_UNKNOWN;
        return MODMTA_CONTINUE;
    }
    for (;;) {
        r = milter_conn_read(&p->conn, milter_timeout(ctx, timeout_ms));
        if (r < 0)
            return milter_peer_fail(ctx, p, r == MODMTA_E_INVAL
                                    ? "malformed packet" : "read",
                                    r == MODMTA_E_INVAL ? 0 : r);
        if (p->conn.code == MILTER_R_PROGRESS)
            continue; /* and the time limit starts over */
        if (!milter_is_mod(p->conn.code)) {
            code = p->conn.code;
            v = milter_final(ctx, s, p, st);
            /* libmilter rests after UNKNOWN, but ACCEPT sends it back
             * to HELO. */
            p->at_rest = st == MILTER_ST_UNKNOWN && !p->failed &&
                         code != MILTER_R_ACCEPT;
            return v;
        }
        if (st != MILTER_ST_EOM)
            return milter_peer_fail(ctx, p, "modification before end of "
                                    "message", 0);
        code = p->conn.code;
        r = milter_mods_apply(ctx, p);
        if (r == -1)
            return milter_peer_fail(ctx, p, "modification not negotiated "
                                    "or malformed", 0);
        if (r < 0) {
            /* Its other replies are unread: the connection is done. */
            modmta_log(ctx, MODMTA_LOG_ERR, "milter=%s error=\"could not "
                       "apply modification '%c'\"", p->spec->name, code);
            milter_peer_close(p);
            p->failed = 1;
            modmta_reply(ctx, 451, "4.3.0", "Error: message modification "
                         "failed");
            return MODMTA_TEMPFAIL;
        }
    }
}
