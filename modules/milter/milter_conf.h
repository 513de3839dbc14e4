/*
 * milter: the module's configuration.
 *   {"module": "milter", "milters": [{"socket": "inet:127.0.0.1:8891",
 *     "name": "opendkim", "timeouts": {"connect": "30s", "command": "30s",
 *     "message": "5m"}, "default_action": "tempfail",
 *     "protocol_steps": ["connect", "helo", ...], "reuse": false,
 *     "pool_size": 16, "idle_timeout": "60s"}]}
 */
#ifndef MILTER_CONF_H
#define MILTER_CONF_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <jansson.h>

#include <modmta/module.h>

/* What a dead, slow or misbehaving milter's step counts as. */
enum milter_default {
    MILTER_DEFAULT_TEMPFAIL = 0,
    MILTER_DEFAULT_ACCEPT = 1,
    MILTER_DEFAULT_REJECT = 2,
};

/* The largest pool_size. */
#define MILTER_POOL_MAX 1024

struct milter_spec {
    char name[128];                /* for the log; default the socket */
    struct sockaddr_storage addr;  /* inet:, inet6: or unix: */
    socklen_t addrlen;
    int connect_ms;
    int command_ms;
    int message_ms;                /* body chunks and end of message */
    enum milter_default def;
    uint32_t steps_off;            /* MILTER_P_NO* never sent */
    int reuse;                     /* QUIT_NC and an idle pool */
    int pool_size;                 /* idle connections kept, at most */
    int idle_ms;                   /* how long one is kept idle */
};

struct milter_conf {
    struct milter_spec *milters;
    size_t n;
};

/* 0, or MODMTA_E_CONFIG / MODMTA_E_NOMEM with err_r naming the key. */
int milter_conf_parse(const json_t *conf, const modmta_host *host,
                      struct milter_conf *out, modmta_err *err_r);
void milter_conf_free(struct milter_conf *c);

/* A milters[].socket, split: nothing is looked up yet. */
struct milter_sockspec {
    int family;                    /* AF_UNIX, AF_INET or AF_INET6 */
    char host[256];                /* a numeric address, a name or a path */
    in_port_t port;                /* network order; 0 for AF_UNIX */
};

/* "inet:HOST:PORT", "inet:[HOST]:PORT", "inet:PORT@HOST",
 * "inet:PORT@[HOST]" (HOST a dotted-quad IPv4 address or a name; an IPv6
 * address there, bracketed in HOST:PORT, makes it AF_INET6),
 * "inet6:[ADDR]:PORT", "inet6:PORT@ADDR", "inet6:PORT@[ADDR]" (ADDR a
 * numeric IPv6 address or a name), "unix:/path", "local:/path": 0, or
 * -1 when malformed. Never a lookup. */
int milter_conf_socket_split(const char *s, struct milter_sockspec *sp);
/* sp's address: a numeric one as it is, else the first address of the
 * family getaddrinfo finds for the name (a lookup, which may wait for
 * DNS). 0 or an EAI_* code. */
int milter_conf_resolve(const struct milter_sockspec *sp,
                        struct sockaddr_storage *ss, socklen_t *len_r);
/* "500ms", "30s", "5m", "1h" or an integer of seconds: milliseconds, or
 * -1 when malformed or not 1 ms to 1 h. */
long long milter_conf_duration(const json_t *v);

#endif
