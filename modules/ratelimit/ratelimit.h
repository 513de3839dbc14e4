/*
 * ratelimit's parts (module-internal): ratelimit.c holds the options and
 * the hooks, ratelimit_client.c the client's key and the exempt
 * networks, ratelimit_hold.c what a session has counted and gives back,
 * ratelimit_conn.c the sessions open at once.
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <netinet/in.h>

#include <modmta/modmta.h>

/* The limits. A windowed limit counts in "<instance>:<tag>:<window>:
 * <subject>", <window> the window's number (Unix time / its length, so
 * every node names the same one); client_connections is the gauge
 * "<instance>:conn:<subject>". */
enum ratelimit_kind {
    RATELIMIT_CONN = 0,  /* client_connections (tag "conn") */
    RATELIMIT_CONN_RATE, /* client_connections_per_minute ("connrate") */
    RATELIMIT_MSG,       /* sender_messages_per_hour ("msg") */
    RATELIMIT_RCPT,      /* sender_recipients_per_hour ("rcpt") */
    RATELIMIT_DOMAIN,    /* domain_recipients_per_hour ("domain") */
    RATELIMIT_NKINDS
};

/* "2001:db8:1:2::/64": the longest client key. */
#define RATELIMIT_CLIENT_MAX (INET6_ADDRSTRLEN + 4)

/* An exempt network. */
struct ratelimit_net {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
};

struct ratelimit_conf {
    long long max[RATELIMIT_NKINDS]; /* 0: no limit */
    char **exempt_networks;
    char **exempt_users;
    int on_error;      /* 0 "tempfail", 1 "continue" */
};

struct ratelimit {
    struct ratelimit_conf conf;
    const char *name; /* the instance name, in every key */
    const modmta_host *host;
    struct ratelimit_net *nets;
    size_t nnets;
    int on_error_continue; /* "on_error": "continue" */
    struct ratelimit_conns *conns; /* client_connections' places */
};

/* ---- ratelimit_client.c ---- */

/* Parse conf.exempt_networks into rl->nets. 0, or <0 with err_r naming
 * the entry at fault under path. */
int ratelimit_nets_parse(struct ratelimit *rl, const char *path,
                         modmta_err *err_r);
/* 1 if the client address (modmta_client_addr) is in an exempt network. */
int ratelimit_client_exempt(const struct ratelimit *rl, const char *addr);
/* The subject of the client limits: the IPv4 address (also for an
 * IPv4-mapped IPv6 one), the IPv6 /64 ("2001:db8:1:2::/64"), or any
 * other string as it is ("local"); RATELIMIT_CLIENT_MAX octets. */
void ratelimit_client_key(const char *addr, char key[RATELIMIT_CLIENT_MAX]);

/* ---- ratelimit_conn.c ----
 * client_connections is a gauge (modmta_shared_gauge_join): each session
 * counted is a member "HOSTNAME/SESSION-ID" of "<instance>:conn:<client>"
 * with a TTL of RATELIMIT_CONN_TTL_MS, which a renewer thread of the
 * instance (started by the first place taken) renews every third of it
 * while the session lasts; the session leaves at its end. The sessions
 * of a node that died stop counting when their TTL ends. */
#ifndef RATELIMIT_CONN_TTL_MS
#define RATELIMIT_CONN_TTL_MS 300000
#endif

/* A session's place in the gauge (in its struct ratelimit_sess). */
struct ratelimit_conn {
    struct ratelimit_conn *prev, *next;
    char key[MODMTA_SHARED_KEY_MAX];
    char member[MODMTA_SHARED_KEY_MAX];
    int busy;   /* the renewer is renewing it now */
    int linked; /* joined: renewed until it leaves */
};

struct ratelimit_conns;

/* The places of an instance in h's shared state, with a TTL of ttl_ms
 * (at least 3 ms). NULL out of memory. */
struct ratelimit_conns *ratelimit_conns_new(const modmta_host *h,
                                            long ttl_ms);
/* Stop the renewer; every place must have left. */
void ratelimit_conns_free(struct ratelimit_conns *cs);
/* Join the gauge c->key as c->member (both filled by the caller) unless
 * max members are in: 1 joined (renewed until it leaves), 0 full,
 * *count_r the members; <0 a store error or MODMTA_E_NOMEM. */
int ratelimit_conn_join(struct ratelimit_conns *cs, struct ratelimit_conn *c,
                        long long max, long long *count_r);
/* Leave the gauge if joined (waits for a renewal of c that is running):
 * the store's answer (1, 0, <0), 0 when c had not joined. */
int ratelimit_conn_leave(struct ratelimit_conns *cs,
                         struct ratelimit_conn *c);

/* ---- ratelimit_hold.c ---- */

/* A counter the open transaction added to, given back unless the
 * message is queued: the exact key counted, with its window. */
struct ratelimit_hold {
    char *key;
    long long n;
};

/* One session's state (modmta_ctx_set_data). */
struct ratelimit_sess {
    const struct ratelimit *rl;
    char client[RATELIMIT_CLIENT_MAX];
    int exempt;       /* client in exempt_networks */
    struct ratelimit_conn conn; /* in client_connections until the end */
    /* the transaction the holds belong to (its queue ID) */
    int in_txn;
    char qid[64];
    char who[MODMTA_SHARED_KEY_MAX]; /* "user:NAME" or "from:ADDR" as a
                                      * key part, "" for none */
    char who_text[300];              /* "user NAME", "sender ADDR" */
    int txn_exempt;                  /* exempt_users, or client exempt */
    struct ratelimit_hold *holds;
    size_t nholds, cap;
    /* the last RCPT, its outcome not seen yet: the holds it added to
     * and the envelope's size before it */
    size_t last[2], nlast;
    size_t last_nrcpts;
};

/* The session's state, made at the first call; NULL when out of
 * memory. */
struct ratelimit_sess *ratelimit_sess_get(const struct ratelimit *rl,
                                          modmta_ctx *ctx);
/* Add 1 to the counter key, which ends in left_s seconds if this makes
 * it. 0 with the new value, or <0 (the store failed). */
int ratelimit_incr(modmta_ctx *ctx, const char *key, long left_s,
                   long long *value_r);
/* Take n back from key, the exact counter it was added to (a hold of a
 * transaction that was not queued, a refused event): a counter whose
 * window ended is not made again, one brought to 0 goes; a failure is
 * logged. */
void ratelimit_give_back(modmta_ctx *ctx, const char *key, long long n);
/* Record one addition to key in the open transaction: the index of its
 * hold, or <0 when out of memory (then given back at once). */
long ratelimit_hold_add(struct ratelimit_sess *s, modmta_ctx *ctx,
                        const char *key);
/* Bring s to ctx's transaction: when the holds belong to another (it
 * ended without being queued), give them back. 1 if the transaction is
 * new to s, 0 if it is the one s holds for. */
int ratelimit_txn(struct ratelimit_sess *s, modmta_ctx *ctx);
/* The last RCPT's outcome: when the envelope did not grow, it was
 * refused (or dropped, or named a recipient already there): give its
 * holds back. */
void ratelimit_rcpt_settle(struct ratelimit_sess *s, modmta_ctx *ctx);
/* The transaction is over (the session ends): give every hold back. */
void ratelimit_txn_end(struct ratelimit_sess *s, modmta_ctx *ctx);
/* The message is queued: what the transaction holds stays counted. */
void ratelimit_txn_queued(struct ratelimit_sess *s);

#endif
