/*
 * ratelimit's parts (module-internal): ratelimit.c holds the options and
 * the hooks, ratelimit_client.c the client's key and the exempt
 * networks, ratelimit_hold.c what a session has counted and gives back.
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <netinet/in.h>

#include <modmta/modmta.h>

/* The limits; each has its counter key "<instance>:<tag>:<subject>". */
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
    char *on_error;
};

struct ratelimit {
    struct ratelimit_conf conf;
    const char *name; /* the instance name, in every key */
    struct ratelimit_net *nets;
    size_t nnets;
    int on_error_continue; /* "on_error": "continue" */
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

/* ---- ratelimit_hold.c ---- */

/* A counter the open transaction added to, given back unless the
 * message is queued. */
struct ratelimit_hold {
    char *key;
    long window_s;
    long long n;
};

/* One session's state (modmta_ctx_set_data). */
struct ratelimit_sess {
    char client[RATELIMIT_CLIENT_MAX];
    int exempt;       /* client in exempt_networks */
    int conn_held;    /* counted in client_connections until disconnect */
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
/* Add 1 to the counter key; its window starts with the first addition.
 * 0 with the new value, or <0 (the store failed). */
int ratelimit_incr(modmta_ctx *ctx, const char *key, long window_s,
                   long long *value_r);
/* Take n back from key, a counter of window_s (a hold of a transaction
 * that was not queued, a session that ends); a failure is logged. */
void ratelimit_give_back(modmta_ctx *ctx, const char *key, long long n,
                         long window_s);
/* Record one addition to key (window_s) in the open transaction: the
 * index of its hold, or <0 when out of memory (then given back at
 * once). */
long ratelimit_hold_add(struct ratelimit_sess *s, modmta_ctx *ctx,
                        const char *key, long window_s);
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
