/*
 * greylist_key: the store key of a triplet. Addresses may be 256 octets
 * each and hold spaces (quoted local parts) that a key may not: they are
 * hashed. A collision could only let a message through unchecked, so a
 * keyless 128-bit FNV-1a (two 64-bit lanes) is enough; the network stays
 * readable for an administrator looking at the store.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>

#include "greylist.h"

#define FNV_PRIME 0x100000001b3ull

/* Feed s lower-cased, then a NUL as separator, into both lanes. */
static void
greylist_key_feed(uint64_t h[2], const char *s)
{
    for (;; s++) {
        unsigned char c = (unsigned char)tolower((unsigned char)*s);

        h[0] = (h[0] ^ c) * FNV_PRIME;
        h[1] = (h[1] ^ (unsigned char)~c) * FNV_PRIME;
        if (c == '\0')
            return;
    }
}

int
greylist_key(const char *net, const char *sender, const char *rcpt,
             char *buf, size_t len)
{
    uint64_t h[2] = { 0xcbf29ce484222325ull, 0x84222325cbf29ce4ull };

    greylist_key_feed(h, sender);
    greylist_key_feed(h, rcpt);
    if ((size_t)snprintf(buf, len, "greylist:%s:%016llx%016llx", net,
                         (unsigned long long)h[0],
                         (unsigned long long)h[1]) >= len)
        return MODMTA_E_LIMIT;
    return 0;
}
