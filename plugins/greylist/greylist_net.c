/*
 * greylist_net: networks, for "exempt" and for the client part of the
 * triplet.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "greylist.h"

/* sa's address into addr (16 octets) with its family; an IPv4-mapped
 * IPv6 address becomes IPv4. 0, or -1 for another family. */
static int
greylist_net_addr(const struct sockaddr *sa, unsigned char *addr,
                  int *family_r)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                              0xff, 0xff };

    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        *family_r = AF_INET;
        return 0;
    }
    if (sa->sa_family != AF_INET6)
        return -1;
    memcpy(addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    *family_r = AF_INET6;
    if (memcmp(addr, mapped, sizeof(mapped)) == 0) {
        memmove(addr, addr + 12, 4);
        *family_r = AF_INET;
    }
    return 0;
}

/* 1 if the first bits of a and b are equal. */
static int
greylist_net_prefix_eq(const unsigned char *a, const unsigned char *b,
                       unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return ((a[whole] ^ b[whole]) & (0xff00u >> rest)) == 0;
}

/* An IPv4-mapped network (::ffff:192.0.2.0/120) as the IPv4 network it
 * names: clients in that form are matched as IPv4 (greylist_net_addr). */
static int
greylist_net_unmap(struct greylist_net *n)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                              0xff, 0xff };

    if (n->family != AF_INET6 || memcmp(n->addr, mapped, 12) != 0)
        return 0;
    if (n->bits < 96)
        return MODMTA_E_INVAL;  /* wider than the mapped range */
    memmove(n->addr, n->addr + 12, 4);
    memset(n->addr + 4, 0, 12);
    n->family = AF_INET;
    n->bits -= 96;
    return 0;
}

int
greylist_net_parse(const char *text, struct greylist_net *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t hlen = slash != NULL ? (size_t)(slash - text) : strlen(text);
    unsigned max;

    if (hlen == 0 || hlen >= sizeof(host))
        return MODMTA_E_INVAL;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, host, out->addr) == 1)
        out->family = AF_INET6;
    else
        return MODMTA_E_INVAL;
    max = out->family == AF_INET ? 32 : 128;
    out->bits = max;
    if (slash != NULL) {
        char *end;
        unsigned long b;

        if (slash[1] < '0' || slash[1] > '9')
            return MODMTA_E_INVAL;
        b = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || b > max)
            return MODMTA_E_INVAL;
        out->bits = (unsigned)b;
    }
    /* host bits set under the prefix: a typo, refuse it */
    for (unsigned i = out->bits; i < max; i++)
        if (out->addr[i / 8] & (0x80u >> (i % 8)))
            return MODMTA_E_INVAL;
    return greylist_net_unmap(out);
}

int
greylist_net_match(const struct greylist_net *nets, size_t n,
                   const struct sockaddr *sa)
{
    unsigned char addr[16];
    int family;

    if (sa == NULL || greylist_net_addr(sa, addr, &family) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (nets[i].family == family &&
            greylist_net_prefix_eq(nets[i].addr, addr, nets[i].bits))
            return 1;
    return 0;
}

int
greylist_net_client(const struct sockaddr *sa, char *buf, size_t len)
{
    unsigned char addr[16];
    char text[INET6_ADDRSTRLEN];
    int family, bits;

    if (sa == NULL || greylist_net_addr(sa, addr, &family) < 0)
        return MODMTA_E_INVAL;
    if (family == AF_INET) {
        addr[3] = 0;
        bits = 24;
    } else {
        memset(addr + 8, 0, 8);
        bits = 64;
    }
    if (inet_ntop(family, addr, text, sizeof(text)) == NULL)
        return MODMTA_E_INVAL;
    if ((size_t)snprintf(buf, len, "%s/%d", text, bits) >= len)
        return MODMTA_E_LIMIT;
    return 0;
}
