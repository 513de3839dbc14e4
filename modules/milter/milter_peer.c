/* milter: one milter's connection in a session: open and negotiate,
 * fail with the default action, quit (milter_session.h). */
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "milter_pool.h"
#include "milter_session.h"

/* Every action a milter may ask for. */
#define MILTER_OFFER_ACTIONS                                               \
    (MILTER_A_ADDHDRS | MILTER_A_CHGBODY | MILTER_A_ADDRCPT |             \
     MILTER_A_DELRCPT | MILTER_A_CHGHDRS | MILTER_A_QUARANTINE |          \
     MILTER_A_CHGFROM | MILTER_A_ADDRCPT_PAR | MILTER_A_SETSYMLIST)

/* Every step may be left out, every reply may be, SKIP, the leading
 * space of header values and the larger chunks. Not RCPT_REJ: a
 * recipient another module refused never reaches this one. */
#define MILTER_OFFER_PROTO                                                 \
    (MILTER_P_NOCONNECT | MILTER_P_NOHELO | MILTER_P_NOMAIL |             \
     MILTER_P_NORCPT | MILTER_P_NOBODY | MILTER_P_NOHDRS |                \
     MILTER_P_NOEOH | MILTER_P_NR_HDR | MILTER_P_NOUNKNOWN |              \
     MILTER_P_NODATA | MILTER_P_SKIP | MILTER_P_NR_CONN |                 \
     MILTER_P_NR_HELO | MILTER_P_NR_MAIL | MILTER_P_NR_RCPT |             \
     MILTER_P_NR_DATA | MILTER_P_NR_UNKN | MILTER_P_NR_EOH |              \
     MILTER_P_NR_BODY | MILTER_P_HDR_LEADSPC | MILTER_P_MDS_256K |        \
     MILTER_P_MDS_1M)

int
milter_timeout(const modmta_ctx *ctx, int ms)
{
    return modmta_ctx_time_left(ctx, ms);
}

modmta_verdict
milter_default_verdict(modmta_ctx *ctx, const struct milter_peer *p)
{
    switch (p->spec->def) {
    case MILTER_DEFAULT_ACCEPT:
        return MODMTA_CONTINUE;
    case MILTER_DEFAULT_REJECT:
        modmta_reply(ctx, 550, "5.7.1", "Command rejected");
        return MODMTA_REJECT;
    case MILTER_DEFAULT_TEMPFAIL:
    default:
        modmta_reply(ctx, 451, "4.7.1", "Service unavailable - try again "
                     "later");
        return MODMTA_TEMPFAIL;
    }
}

modmta_verdict
milter_peer_fail(modmta_ctx *ctx, struct milter_peer *p, const char *what,
                 int err)
{
    static const char *const names[] = {"tempfail", "accept", "reject"};

    modmta_log(ctx, MODMTA_LOG_WARN, "milter=%s error=\"%s%s%s\" "
               "default_action=%s", p->spec->name, what,
               err ? ": " : "", err ? modmta_strerror(err) : "",
               names[p->spec->def]);
    milter_peer_close(p);
    p->failed = 1;
    return milter_default_verdict(ctx, p);
}

/* The SETSYMLIST part of the OPTNEG reply: stage, list, ... */
static int
milter_peer_symlists(struct milter_peer *p, struct milter_rd *rd)
{
    uint32_t stage;
    const char *list;

    while (rd->left > 0) {
        if (milter_rd_u32(rd, &stage) < 0 || milter_rd_str(rd, &list) < 0 ||
            stage >= MILTER_M_COUNT)
            return -1;
        free(p->macros[stage]);
        p->macros[stage] = strdup(list);
        if (p->macros[stage] == NULL)
            return -1;
    }
    return 0;
}

static int
milter_peer_negotiate(modmta_ctx *ctx, struct milter_peer *p)
{
    struct milter_rd rd;
    uint32_t version, actions, proto;
    int r;

    if (milter_pkt_begin(&p->conn.out, MILTER_C_OPTNEG) < 0 ||
        milter_pkt_u32(&p->conn.out, MILTER_VERSION) < 0 ||
        milter_pkt_u32(&p->conn.out, MILTER_OFFER_ACTIONS) < 0 ||
        milter_pkt_u32(&p->conn.out, MILTER_OFFER_PROTO) < 0)
        return MODMTA_E_NOMEM;
    milter_pkt_end(&p->conn.out);
    r = milter_conn_flush(&p->conn,
                          milter_timeout(ctx, p->spec->command_ms));
    if (r == 0)
        r = milter_conn_read(&p->conn,
                             milter_timeout(ctx, p->spec->command_ms));
    if (r < 0)
        return r;
    rd.p = p->conn.data;
    rd.left = p->conn.len;
    if (p->conn.code != MILTER_C_OPTNEG || milter_rd_u32(&rd, &version) < 0 ||
        milter_rd_u32(&rd, &actions) < 0 || milter_rd_u32(&rd, &proto) < 0 ||
        version < 2 || milter_peer_symlists(p, &rd) < 0)
        return MODMTA_E_INVAL;
    if ((proto & ~(uint32_t)MILTER_OFFER_PROTO) != 0)
        return MODMTA_E_UNSUPPORTED;
    if ((actions & ~(uint32_t)MILTER_OFFER_ACTIONS) != 0)
        modmta_log(ctx, MODMTA_LOG_WARN, "milter=%s actions=0x%x not "
                   "offered: ignored", p->spec->name,
                   (unsigned)(actions & ~(uint32_t)MILTER_OFFER_ACTIONS));
    p->version = version;
    p->actions = actions & MILTER_OFFER_ACTIONS;
    p->proto = proto | p->spec->steps_off;
    p->chunk = proto & MILTER_P_MDS_1M     ? MILTER_CHUNK_1M
               : proto & MILTER_P_MDS_256K ? MILTER_CHUNK_256K
                                           : MILTER_CHUNK_64K;
    return 0;
}

void
milter_peer_open(modmta_ctx *ctx, struct milter_peer *p)
{
    char err[256];
    int r;

    p->conn.fd = -1;
    if (p->pool != NULL && milter_pool_take(p->pool, p))
        return;
    r = milter_conn_open(&p->conn, (const struct sockaddr *)&p->spec->addr,
                         p->spec->addrlen,
                         milter_timeout(ctx, p->spec->connect_ms), err,
                         sizeof(err));
    if (r < 0) {
        milter_peer_fail(ctx, p, err, 0);
        return;
    }
    r = milter_peer_negotiate(ctx, p);
    if (r < 0)
        milter_peer_fail(ctx, p, r == MODMTA_E_INVAL
                                     ? "malformed option negotiation"
                                 : r == MODMTA_E_UNSUPPORTED
                                     ? "protocol flags not offered"
                                     : "option negotiation",
                         r == MODMTA_E_INVAL || r == MODMTA_E_UNSUPPORTED
                             ? 0 : r);
}

void
milter_peer_quit(struct milter_peer *p, int timeout_ms)
{
    if (p->conn.fd < 0)
        return;
    /* After what is queued (an ABORT from on_abort, a no-reply step). */
    if ((!p->in_txn || milter_pkt_empty(&p->conn.out, MILTER_C_ABORT) == 0) &&
        milter_pkt_empty(&p->conn.out, MILTER_C_QUIT) == 0)
        milter_conn_flush(&p->conn, timeout_ms);
    milter_peer_close(p);
}

void
milter_peer_close(struct milter_peer *p)
{
    milter_conn_close(&p->conn);
    p->in_txn = 0;
}
