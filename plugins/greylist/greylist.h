/*
 * greylist: RFC 6647 greylisting in the shared state (README.md).
 * Internal to the plugin; its unit test includes it to set the clock.
 */
#ifndef GREYLIST_H
#define GREYLIST_H

#include <netinet/in.h>

#include <modmta/modmta.h>

#define GREYLIST_KEY_MAX 128

/* One "exempt" network: family, address and prefix length. */
struct greylist_net {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits;
};

struct greylist {
    long delay;              /* seconds before a retry passes */
    long expire;             /* seconds a triplet is remembered */
    int on_error_continue;   /* store errors: pass instead of 451 */
    struct greylist_net *exempt;
    size_t nexempt;
    long long (*now_ms)(void); /* wall clock: shared by every node */
};

/* Parse "192.0.2.0/24", "2001:db8::/32" or a bare address. 0 or
 * MODMTA_E_INVAL. */
int greylist_net_parse(const char *text, struct greylist_net *out);
/* 1 if sa is inside one of nets (an IPv4-mapped IPv6 address counts as
 * IPv4). */
int greylist_net_match(const struct greylist_net *nets, size_t n,
                       const struct sockaddr *sa);
/* The client's network, as the triplet keeps it: the /24 of an IPv4
 * address, the /64 of an IPv6 one ("192.0.2.0/24", "2001:db8:1:2::/64").
 * 0 or MODMTA_E_INVAL. */
int greylist_net_client(const struct sockaddr *sa, char *buf, size_t len);

/* The store key of a triplet: "greylist:" NET ":" and a 128-bit hash of
 * the lower-cased sender and recipient, so its length is bounded
 * whatever the addresses. 0 or MODMTA_E_LIMIT. */
int greylist_key(const char *net, const char *sender, const char *rcpt,
                 char *buf, size_t len);

#endif
