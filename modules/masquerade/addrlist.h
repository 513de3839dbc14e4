/*
 * A bounded RFC 5322 address-list tokenizer (section 3.4), for the
 * header fields the masquerade module rewrites (From, Sender, Reply-To).
 *
 * It finds every addr-spec in a field value and where it lies, so that a
 * caller can replace one address and keep everything else as written:
 * display names (atoms, quoted strings, encoded words), comments,
 * folding, groups ("team: a@x, b@y;"), lists, angle brackets and the
 * obsolete route ("<@relay:user@host>": the route is kept, only the
 * address after it is the addr-spec). A bare word ("root") is an
 * unqualified addr-spec with an empty domain.
 *
 * Anything else (an unterminated quoted string, comment or literal, a
 * stray special, a missing '>' or ';') is a syntax error: the caller then
 * leaves the field alone rather than guess.
 */
#ifndef MASQUERADE_ADDRLIST_H
#define MASQUERADE_ADDRLIST_H

#include <stddef.h>

#define ADDRLIST_VALUE_MAX 16384 /* longest field value parsed (octets) */
#define ADDRLIST_TOKENS_MAX 2048 /* tokens in one value */
#define ADDRLIST_ADDRS_MAX 64    /* addresses in one value */
#define ADDRLIST_LOCAL_MAX 256   /* local part, unquoted, with its NUL */
#define ADDRLIST_DOMAIN_MAX 256  /* domain, with its NUL */

typedef struct addrlist_addr {
    size_t start;     /* the addr-spec is value[start, end) */
    size_t local_end; /* its local part, as written, is value[start,
                       * local_end) */
    size_t end;
    char local[ADDRLIST_LOCAL_MAX];   /* quotes and escapes removed */
    char domain[ADDRLIST_DOMAIN_MAX]; /* as written; "" when unqualified */
    int angle;        /* written inside <...> */
    int group;        /* member of a group */
} addrlist_addr;

/* About 34 KiB: allocate it, do not put it on a thread's stack. */
typedef struct addrlist {
    addrlist_addr addrs[ADDRLIST_ADDRS_MAX];
    size_t n;
} addrlist;

/* Parse the field value (as modmta_hdr_get gives it: folding kept) into
 * *out. 0, MODMTA_E_INVAL (syntax) or MODMTA_E_LIMIT (a bound above).
 * An empty list (only white space and comments, or only empty groups)
 * is valid and has n == 0. */
int addrlist_parse(const char *value, addrlist *out);

/* A new value (malloc'ed, in *out_r) where the addr-spec of each address
 * i with repl[i] != NULL is replaced by repl[i]; the rest is copied
 * verbatim. repl has l->n entries. 0 or MODMTA_E_NOMEM. */
int addrlist_splice(const char *value, const addrlist *l,
                    const char *const *repl, char **out_r);

#endif
