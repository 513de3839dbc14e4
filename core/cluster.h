/*
 * Cluster control: `modmtactl reload --cluster` (docs/cluster.md).
 *
 * With a "redis" section every node keeps, in the shared state (under
 * the redis prefix, like every shared key):
 *
 *   ctl:node:HOSTNAME     a lease the node holds (owner: the node's
 *                         identity, cluster.c), renewed every
 *                         CLUSTER_BEAT_S seconds, expiring after
 *                         CLUSTER_NODE_TTL_S: "this node is alive";
 *   ctl:nodes             the host names of the nodes that joined, one a
 *                         line; changed only under the lease
 *                         ctl:nodes:lock, when a node finds its name
 *                         missing (names whose ctl:node key expired are
 *                         dropped then);
 *
 * and listens on the channel ctl:reload. modmtactl publishes a request
 * ID there; each node reloads its own configuration file, as SIGHUP
 * does, and sets ctl:reload:ID:HOSTNAME to "reloaded" or "error: " and
 * its errors joined with "; ", for CLUSTER_RESULT_TTL_S seconds.
 *
 * cluster.c is a node's side (one thread of the daemon's),
 * cluster_registry.c the keys both sides read and write.
 */
#ifndef MODMTA_CORE_CLUSTER_H
#define MODMTA_CORE_CLUSTER_H

#include <stddef.h>

#include <modmta/shared.h>

#include "config.h"
#include "control.h"

#define CLUSTER_CHANNEL "ctl:reload"
#define CLUSTER_BEAT_S 10        /* a node renews its registration */
#define CLUSTER_RETRY_S 1        /* ... or retries while Redis is down */
#define CLUSTER_NODE_TTL_S 30    /* a silent node is forgotten */
#define CLUSTER_RESULT_TTL_S 600 /* a reload's answer is kept */
#define CLUSTER_ID_MAX 64        /* a request ID: letters, digits, '-' */

/* ---- the registry (cluster_registry.c) ---- */

/* Register host for owner (CLUSTER_NODE_TTL_S): take or renew its
 * ctl:node key and see that ctl:nodes lists it. 1 registered; 0 another
 * owner holds the name, *holder_r then its owner (malloc'ed, NULL if it
 * vanished meanwhile); <0 a store error. */
int cluster_registry_join(modmta_shared *s, const char *host,
                          const char *owner, char **holder_r);
/* Give host's ctl:node key back if owner holds it (a clean stop). */
void cluster_registry_leave(modmta_shared *s, const char *host,
                            const char *owner);
/* The names ctl:nodes lists whose ctl:node key is alive, sorted:
 * 0 with *names_r (n_r entries, free with cluster_registry_free), or <0
 * a store error. */
int cluster_registry_live(modmta_shared *s, char ***names_r, size_t *n_r);
void cluster_registry_free(char **names, size_t n);

/* CLOCK_MONOTONIC in milliseconds (the node's beats, modmtactl's
 * wait). */
long long cluster_now_ms(void);
/* 1 when id may be a request ID (1 to CLUSTER_ID_MAX letters, digits
 * and '-'). */
int cluster_id_valid(const char *id);
/* "ctl:reload:ID:HOST" into buf; <0 when it does not fit. */
int cluster_result_key(char *buf, size_t size, const char *id,
                       const char *host);

/* ---- a node (cluster.c) ---- */

typedef struct cluster cluster;

/* Start the node's cluster thread for cfg ("redis" section and
 * "hostname"; without a redis section it waits for one). A request on
 * the channel calls ops->reload on that thread, the code path of SIGHUP
 * and `modmtactl reload`, if the node holds its hostname's registration
 * (a second node with the same name ignores requests); ops is copied.
 * The thread subscribes and registers at once, retrying every
 * CLUSTER_RETRY_S while Redis is down. NULL with err_r filled. */
cluster *cluster_start(const struct control_ops *ops,
                       const struct config *cfg, modmta_err *err_r);
/* A reload installed cfg: follow its redis section and hostname (a
 * changed redis section means a new store and a new subscription, made
 * by the thread after the request being served, if any, was answered).
 * Never blocks on Redis. NULL cl: nothing. */
void cluster_configure(cluster *cl, const struct config *cfg);
/* Unregister (the name is free at once), unsubscribe, join the thread.
 * A request being served finishes first. NULL: nothing. */
void cluster_stop(cluster *cl);

#endif
