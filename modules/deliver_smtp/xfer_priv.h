/* What xfer.c and xfer_servers.c share (see xfer.h). */
#ifndef DELIVER_SMTP_XFER_PRIV_H
#define DELIVER_SMTP_XFER_PRIV_H

#include <sys/socket.h>

#include "nexthop.h"
#include "xfer.h"

/* The resolver lists at most 10 hosts of 5 addresses per family: all of
 * them fit, so the loop cut sees every one. */
#define XFER_SERVERS_MAX 128

struct xfer_server {
    char name[NEXTHOP_HOST_MAX];   /* MX host name, host, or socket path */
    int pref;
    struct sockaddr_storage sa;
    socklen_t salen;               /* 0 for a UNIX socket */
    char addr[64];                 /* "192.0.2.1" */
    const char *unix_path;         /* LMTP over a UNIX socket, or NULL */
};

struct xfer_servers {
    struct xfer_server s[XFER_SERVERS_MAX];
    size_t n;
    /* when none can be listed: what every recipient gets */
    modmta_dstatus status;
    char esc[16];
    char text[600];
};

/* List the servers of nh (port: default_port unless nh has one). 0, or
 * -1 with the reason in sv (status, esc, text). */
int xfer_servers_get(struct xfer_servers *sv, modmta_ctx *ctx,
                     const struct nexthop *nh, int default_port);

#endif
