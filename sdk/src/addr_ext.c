/* Address extensions: Postfix's recipient_delimiter split (addr.h). */
#include <string.h>
#include <strings.h>

#include "modmta/addr.h"
#include "modmta/err.h"

/* Names Postfix never splits: the mailer's own, and (for a '-'
 * delimiter) list owners and request addresses, whose '-' is part of
 * the name. */
static int
addr_ext_reserved(const char *local, size_t len, char delim)
{
    static const char req[] = "-request";
    size_t rlen = sizeof(req) - 1;

    if ((len == 10 && strncasecmp(local, "postmaster", 10) == 0) ||
        (len == 13 && strncasecmp(local, "mailer-daemon", 13) == 0))
        return 1;
    if (delim != '-')
        return 0;
    return (len > 6 && strncasecmp(local, "owner-", 6) == 0) ||
           (len > rlen && strncasecmp(local + len - rlen, req, rlen) == 0);
}

/* Where the local part of addr ends: its last '@', or its end. */
static size_t
addr_ext_local_len(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at != NULL ? (size_t)(at - addr) : strlen(addr);
}

/* 1 if the len bytes of local are all atext or '.' (RFC 5322; bytes
 * above 127 are UTF-8, RFC 6531): a local part written the same quoted
 * or not. Anything else (a quote, a space, an '@' of a bare unquoted
 * local part) is never cut, so every module sees one name whatever form
 * it is handed. */
static int
addr_ext_dot_atom(const char *local, size_t len)
{
    static const char specials[] = "!#$%&'*+-/=?^_`{|}~.";
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)local[i];

        if (!(c >= 0x80 || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(specials, c) != NULL))
            return 0;
    }
    return 1;
}

int
modmta_addr_split_extension(const char *addr, const char *delims,
                            char *base, size_t blen, char *ext, size_t elen)
{
    size_t llen, cut, xlen;

    if (addr == NULL || base == NULL || ext == NULL || elen == 0)
        return MODMTA_E_INVAL;
    llen = addr_ext_local_len(addr);
    cut = llen;
    /* A local part needing quotes is taken as a whole: its delimiter
     * may be quoted text, and a split one would need re-quoting. */
    if (delims != NULL && *delims != '\0' &&
        addr_ext_dot_atom(addr, llen)) {
        cut = strcspn(addr, delims);
        if (cut >= llen || cut == 0 ||
            addr_ext_reserved(addr, llen, addr[cut]))
            cut = llen;
    }
    if (cut == llen) {
        if (strlen(addr) >= blen)
            return MODMTA_E_LIMIT;
        memcpy(base, addr, strlen(addr) + 1);
        ext[0] = '\0';
        return 0;
    }
    xlen = llen - cut - 1;
    if (xlen >= elen || strlen(addr) - xlen - 1 >= blen)
        return MODMTA_E_LIMIT;
    memcpy(ext, addr + cut + 1, xlen);
    ext[xlen] = '\0';
    memcpy(base, addr, cut);
    memcpy(base + cut, addr + llen, strlen(addr + llen) + 1);
    return 1;
}
