/* The addresses this daemon's SMTP listeners answer on: see own_addrs.h. */
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "own_addrs.h"

struct own_list {
    struct sockaddr_storage *a;
    size_t n, cap;
};

static int
own_push(struct own_list *l, const struct sockaddr *sa, socklen_t len,
         in_port_t port)
{
    struct sockaddr_storage *na;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        na = realloc(l->a, l->cap * sizeof(*na));
        if (na == NULL)
            return -1;
        l->a = na;
    }
    memset(&l->a[l->n], 0, sizeof(l->a[l->n]));
    memcpy(&l->a[l->n], sa, len);
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)&l->a[l->n])->sin_port = port;
    else
        ((struct sockaddr_in6 *)&l->a[l->n])->sin6_port = port;
    l->n++;
    return 0;
}

static int
own_is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
               htonl(INADDR_ANY);
    return ss->ss_family == AF_INET6 &&
           IN6_IS_ADDR_UNSPECIFIED(
               &((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static in_port_t
own_port(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET
               ? ((const struct sockaddr_in *)ss)->sin_port
               : ((const struct sockaddr_in6 *)ss)->sin6_port;
}

static socklen_t
own_len(int family)
{
    return family == AF_INET ? sizeof(struct sockaddr_in)
                             : sizeof(struct sockaddr_in6);
}

/* A wildcard listener: each interface address of its family. */
static int
own_expand(struct own_list *l, const struct ifaddrs *ifs,
           const struct sockaddr_storage *ss)
{
    for (const struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != ss->ss_family)
            continue;
        if (own_push(l, i->ifa_addr, own_len(ss->ss_family),
                     own_port(ss)) < 0)
            return -1;
    }
    return 0;
}

struct sockaddr_storage *
own_addrs_build(const struct config *cfg, size_t *n_r)
{
    struct own_list l = {0};
    struct ifaddrs *ifs = NULL;
    int failed = 0;

    for (size_t i = 0; i < cfg->nlisteners && !failed; i++) {
        const struct config_listener *cl = &cfg->listeners[i];

        if (strcmp(cl->protocol, "smtp") != 0 || cl->salen == 0)
            continue;
        if (own_push(&l, (const struct sockaddr *)&cl->sa, cl->salen,
                     own_port(&cl->sa)) < 0) {
            failed = 1;
            break;
        }
        if (!own_is_wildcard(&cl->sa))
            continue;
        if (ifs == NULL && getifaddrs(&ifs) < 0)
            ifs = NULL;
        if (ifs != NULL && own_expand(&l, ifs, &cl->sa) < 0)
            failed = 1;
    }
    if (ifs != NULL)
        freeifaddrs(ifs);
    if (failed) {
        free(l.a);
        l.a = NULL;
        l.n = 0;
    }
    *n_r = l.n;
    return l.a;
}
