/*
 * modmtactl reload --cluster (modmtactl_cluster.c): ask every node sharing the
 * configuration's Redis to reload, and print each node's answer.
 */
#ifndef MODMTA_TOOLS_MODMTACTL_CLUSTER_H
#define MODMTA_TOOLS_MODMTACTL_CLUSTER_H

#include "config.h"

/* argv: "reload" and its options (--cluster, --timeout SECONDS); cfg
 * the configuration whose "redis" section names the cluster. Returns
 * modmtactl's exit status: 0 every node reloaded, 1 a node failed or
 * did not answer (or none is registered), 2 usage, no redis section,
 * Redis unreachable. */
int ctl_cluster_reload(const struct config *cfg, int argc, char **argv);

#endif
