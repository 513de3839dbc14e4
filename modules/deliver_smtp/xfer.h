/*
 * xfer: one deliver_msg() call of deliver_smtp or deliver_lmtp — a group
 * of recipients to one destination (nexthop.h) — from the servers to try
 * to the result of each recipient. Part of the smtpc static library.
 *
 * The servers: a UNIX socket; or a host's addresses (no MX lookup:
 * "[host]", lmtp:inet); or the MX hosts of a domain in preference order
 * (RFC 5321 5.1; a null MX fails at once with 5.1.10, a domain that does
 * not exist with 5.1.2, no host with an address with 5.4.4, a DNS
 * failure defers with 4.4.3). An MX that is this daemon (an address and
 * port it listens on) ends the list there: only better MX hosts are
 * tried, and none left is a loop (5.4.6).
 *
 * The walk, as Postfix's smtp does it: a cached session for the
 * destination first; else each address in turn, at most max_addrs of
 * them and max_sessions conversations: an address that does not answer,
 * a 4xx or 5xx greeting or EHLO, or a TLS requirement the server does
 * not meet, moves on to the next. TLS levels (Postfix's
 * smtp_tls_security_level): none; may (STARTTLS when offered; a failed
 * handshake is retried once in clear on the same address); encrypt and
 * verify (required; verify checks the certificate against the trust
 * store and the MX host name). Credentials for the next hop (the auth
 * map) need TLS: with them the level is at least encrypt.
 *
 * Results: a 2xx is DELIVERED over LMTP (final delivery), RELAYED_DSN
 * when the server offers DSN (it got NOTIFY/ORCPT/RET/ENVID), RELAYED
 * otherwise; 4xx DEFERRED; 5xx FAILED. When no server took the
 * transaction, every recipient gets the last reason, and when no server
 * even answered (or each refused the greeting) the destination is
 * reported down.
 */
#ifndef DELIVER_SMTP_XFER_H
#define DELIVER_SMTP_XFER_H

#include <modmta/modmta.h>

#include "smtpc.h"

enum xfer_tls {
    XFER_TLS_NONE = 0,
    XFER_TLS_MAY,
    XFER_TLS_ENCRYPT,
    XFER_TLS_VERIFY,
};

/* An instance's settings (read-only once made). */
struct xfer_conf {
    const char *helo;              /* our name */
    int port;                      /* default port of SMTP next hops */
    enum xfer_tls tls_level;       /* default level */
    modmta_map *tls_policy;        /* next-hop domain -> level, or NULL */
    modmta_tls_client *tls;        /* trust store, protocol floor */
    modmta_map *auth;              /* next hop -> "user:password" */
    smtpc_cache *cache;            /* idle sessions, or NULL */
    struct smtpc_timeouts timeouts;
    int max_addrs;                 /* addresses tried per delivery: 5 */
    int max_sessions;              /* conversations per delivery: 2 */
};

/* "none", "may", "encrypt", "verify" into *level; -1 if none of them. */
int xfer_tls_level(const char *s, enum xfer_tls *level);

/* Config helpers both transports use. xfer_conf_error fills err_r for
 * the instance's key and returns -1; xfer_timeouts sets RFC 5321's
 * timeouts with the connect, command and end-of-data ones given in
 * seconds. */
int xfer_conf_error(const modmta_host *h, modmta_err *err_r,
                    const char *key, const char *msg);
/* helo_name, when set, must be a host name or an address literal: it
 * goes on the EHLO line as it is. 0, or -1 with err_r filled. */
int xfer_conf_helo(const char *helo, const modmta_host *h,
                   modmta_err *err_r);
void xfer_timeouts(struct smtpc_timeouts *t, long long connect_s,
                   long long command_s, long long data_s);

/* Deliver the group in ctx to dest (a destination string), reporting
 * every recipient with modmta_dlv_result. */
void xfer_deliver(const struct xfer_conf *c, modmta_ctx *ctx,
                  const char *dest);

#endif
