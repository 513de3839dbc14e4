/*
 * ratelimit: who the client is for its limits (an IPv4 address or an
 * IPv6 /64, as modmta/lockout.h counts), and the exempt networks.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

/* Text address into family and bytes; IPv4-mapped IPv6 is IPv4. */
static int
ratelimit_ip(const char *s, int *family_r, unsigned char addr[16])
{
    if (inet_pton(AF_INET, s, addr) == 1) {
        *family_r = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, addr) != 1)
        return -1;
    *family_r = AF_INET6;
    if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)addr)) {
        memmove(addr, addr + 12, 4);
        *family_r = AF_INET;
    }
    return 0;
}

/* "ADDRESS/PREFIX", or "ADDRESS" for one host. An IPv4-mapped IPv6
 * network is refused: clients so mapped are matched as IPv4, so it
 * would never match (write it as IPv4). */
static int
ratelimit_net_parse(const char *s, struct ratelimit_net *n)
{
    char text[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
    char *end;
    long p;

    if (len >= sizeof(text))
        return -1;
    memcpy(text, s, len);
    text[len] = '\0';
    if (ratelimit_ip(text, &n->family, n->addr) < 0 ||
        (n->family == AF_INET && strchr(text, ':') != NULL))
        return -1;
    n->prefix = n->family == AF_INET ? 32 : 128;
    if (slash == NULL)
        return 0;
    p = strtol(slash + 1, &end, 10);
    if (slash[1] < '0' || slash[1] > '9' || *end != '\0' ||
        p > (long)n->prefix)
        return -1;
    n->prefix = (unsigned)p;
    return 0;
}

int
ratelimit_nets_parse(struct ratelimit *rl, const char *path,
                     modmta_err *err_r)
{
    char **list = rl->conf.exempt_networks, epath[300];
    size_t n = 0, i;

    while (list != NULL && list[n] != NULL)
        n++;
    if (n == 0)
        return 0;
    if ((rl->nets = calloc(n, sizeof(*rl->nets))) == NULL) {
        modmta_err_set(err_r, path, "out of memory");
        return MODMTA_E_NOMEM;
    }
    for (i = 0; i < n; i++) {
        if (ratelimit_net_parse(list[i], &rl->nets[i]) < 0) {
            snprintf(epath, sizeof(epath), "%s.exempt_networks[%zu]", path,
                     i);
            modmta_err_set(err_r, epath, "invalid network \"%s\" "
                           "(expected ADDRESS/PREFIX, IPv4 or IPv6)",
                           list[i]);
            return MODMTA_E_CONFIG;
        }
    }
    rl->nnets = n;
    return 0;
}

static int
ratelimit_net_match(const struct ratelimit_net *n, int family,
                    const unsigned char *addr)
{
    unsigned whole = n->prefix / 8, rest = n->prefix % 8;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));

    if (family != n->family || memcmp(addr, n->addr, whole) != 0)
        return 0;
    return rest == 0 || ((addr[whole] ^ n->addr[whole]) & mask) == 0;
}

int
ratelimit_client_exempt(const struct ratelimit *rl, const char *addr)
{
    unsigned char a[16];
    int family;

    if (ratelimit_ip(addr, &family, a) < 0)
        return 0;
    for (size_t i = 0; i < rl->nnets; i++)
        if (ratelimit_net_match(&rl->nets[i], family, a))
            return 1;
    return 0;
}

/* IPv6: the /64, since a host usually holds a whole /64 and could
 * otherwise open each connection from a fresh address. */
void
ratelimit_client_key(const char *addr, char key[RATELIMIT_CLIENT_MAX])
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN];
    int family;

    if (ratelimit_ip(addr, &family, a) < 0) {
        snprintf(key, RATELIMIT_CLIENT_MAX, "%s", addr);
        return;
    }
    if (family == AF_INET) {
        inet_ntop(AF_INET, a, key, RATELIMIT_CLIENT_MAX);
        return;
    }
    memset(a + 8, 0, 8);
    inet_ntop(AF_INET6, a, text, sizeof(text));
    snprintf(key, RATELIMIT_CLIENT_MAX, "%s/64", text);
}
