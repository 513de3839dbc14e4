/*
 * Next hops: where a group of recipients goes, as written in a transport
 * map entry or a relayhost, and as the destination string route() hands
 * the core (which gives it back to deliver_msg). One syntax for all,
 * Postfix's transport(5):
 *
 *   smtp:[host]:port   that host (no MX lookup), port (default: "port")
 *   smtp:[192.0.2.1]   an address literal; [IPv6:2001:db8::1] too
 *   smtp:host:port     the MX hosts of host
 *   smtp:              (or "smtp") the MX hosts of the recipient's domain
 *   lmtp:inet:host:port   LMTP over TCP to host (no MX lookup)
 *   lmtp:unix:/path       LMTP over a UNIX socket
 *   error:5.1.2 text   fail the recipient (a 4.x.x code defers it)
 *   local              not this transport: the next module delivers
 *
 * A relayhost is the part after "smtp:". The destination string is the
 * canonical form (nexthop_format): "[host]:port", "host" or "host:port"
 * (MX lookup), "lmtp:inet:host:port", "lmtp:unix:/path".
 */
#ifndef DELIVER_SMTP_NEXTHOP_H
#define DELIVER_SMTP_NEXTHOP_H

#define NEXTHOP_HOST_MAX 256
#define NEXTHOP_PATH_MAX 108           /* sun_path */
#define NEXTHOP_TEXT_MAX 400

enum nexthop_kind {
    NEXTHOP_SMTP = 0,
    NEXTHOP_LMTP_INET,
    NEXTHOP_LMTP_UNIX,
    NEXTHOP_ERROR,
    NEXTHOP_LOCAL,
};

struct nexthop {
    enum nexthop_kind kind;
    char host[NEXTHOP_HOST_MAX];  /* "" (SMTP): the recipient's domain */
    int mx;                       /* SMTP: look up host's MX records */
    int port;                     /* 0: the transport's default */
    char path[NEXTHOP_PATH_MAX];  /* LMTP over a UNIX socket */
    char esc[16];                 /* error: "5.1.2" */
    char text[NEXTHOP_TEXT_MAX];  /* error: its text */
};

/* Parse a transport map value or, with `bare` set, a relayhost or a
 * destination string (no "smtp:" needed). 0, or -1 with why (a message
 * for the config error or the log). */
int nexthop_parse(const char *s, int bare, struct nexthop *nh,
                  char *why, size_t whylen);
/* The destination string of an SMTP or LMTP next hop, for route(); a
 * nexthop with an empty host takes `domain`. -1 if it does not fit. */
int nexthop_format(const struct nexthop *nh, const char *domain, char *buf,
                   size_t len);

#endif
