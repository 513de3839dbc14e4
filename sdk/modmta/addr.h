/*
 * modmta SDK: RFC 5321 address parsing.
 *
 * Parses a reverse-path or forward-path as it appears after "MAIL FROM:"
 * or "RCPT TO:": "<local@domain>", "<>", "<@a,@b:local@domain>" (the
 * source route is parsed and dropped, RFC 5321 section 4.1.2 and C.2).
 * Local parts may be dot-atoms or quoted strings. Limits: local part 64
 * octets, domain 255, whole path 256 (RFC 5321 section 4.5.3.1).
 */
#ifndef MODMTA_ADDR_H
#define MODMTA_ADDR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MODMTA_ADDR_LOCAL_MAX 64
#define MODMTA_ADDR_DOMAIN_MAX 255
#define MODMTA_ADDR_PATH_MAX 256
/* Bound of an envelope address as modules set it (canonical, quotes and
 * all), in octets with its terminating NUL. */
#define MODMTA_ADDR_ENVELOPE_MAX 512

enum {
    MODMTA_ADDR_ALLOW_NULL = 1u << 0,  /* accept "<>" (reverse-path) */
    MODMTA_ADDR_UTF8 = 1u << 1,        /* SMTPUTF8: allow UTF-8 octets */
    MODMTA_ADDR_NO_BRACKETS = 1u << 2, /* accept a bare local@domain */
    MODMTA_ADDR_ALLOW_NODOMAIN = 1u << 3, /* "<postmaster>" and the like */
};

typedef struct modmta_addr {
    /* Local part as it means: quotes and backslash escapes removed. */
    char local[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    /* Domain, lower-cased, without trailing dot; "[1.2.3.4]" kept as is
     * for address literals; "" for the null path or no domain. */
    char domain[MODMTA_ADDR_DOMAIN_MAX + 1];
    int is_null;    /* "<>" */
    int quoted;     /* local part was a quoted string */
    int had_route;  /* a source route was present (and dropped) */
    int is_literal; /* domain is an address literal */
} modmta_addr;

/* Parse the path at `in`. On success return 0 and set *end_r (if not
 * NULL) to the first octet after the path (the ESMTP parameters follow).
 * Errors: MODMTA_E_INVAL (syntax), MODMTA_E_LIMIT (a length limit). */
int modmta_addr_parse(const char *in, unsigned flags, modmta_addr *out,
                      const char **end_r);

/* The address as one string, local part re-quoted when it needs it
 * ("\"a b\"@example.com"); "" for the null path. Returns the length,
 * or MODMTA_E_LIMIT when it does not fit. */
int modmta_addr_format(const modmta_addr *a, char *buf, size_t len);

/* Split "local@domain" (already canonical, as hooks receive it) at its
 * last '@' outside double quotes: "\"a@b\"@c" gives "\"a@b\"" and "c",
 * "\"x@evil.test\"" gives itself and no domain. The local part is kept
 * as written (quotes included). Domain is "" when there is none. 0 or
 * MODMTA_E_INVAL. */
int modmta_addr_split(const char *addr, char *local, size_t llen,
                      char *domain, size_t dlen);

/* ABI 1.6: split off the address extension, as Postfix's
 * recipient_delimiter does. addr is "local@domain" (canonical, as hooks
 * receive it) or a bare local part; delims the delimiter characters
 * (modmta_host_recipient_delimiter(): several allowed, the first of any
 * of them in the local part cuts it). "user+lists@example.org" with "+"
 * gives base "user@example.org" and ext "lists" (delimiter dropped);
 * "a+b+c" gives "a" and "b+c"; "user+" gives "user" and "". Returns 1
 * when split; 0 when not (base a copy of addr, ext ""): delims NULL or
 * "", none of them in the local part, one at its very start ("+lists"
 * is a name), a local part that is not made of atext and dots only
 * (quoted, or holding a space, a quote, an '@'), "postmaster",
 * "mailer-daemon", and with '-' "owner-*" and "*-request". The local
 * part ends at the last '@': hand a local part that may hold an '@' as
 * the whole canonical address. MODMTA_E_LIMIT when base (blen)
 * or ext (elen) is too small, MODMTA_E_INVAL for NULL arguments. Look
 * the full address up first, then base: an exact entry wins. */
int modmta_addr_split_extension(const char *addr, const char *delims,
                                char *base, size_t blen, char *ext,
                                size_t elen);

/* 1 if addr may stand in the envelope (a queue file, a maildrop file,
 * an SMTP command, a pipe's prefix): shorter than
 * MODMTA_ADDR_ENVELOPE_MAX, no control characters, no '<' or '>'. Every
 * envelope setter of the SDK checks it (since 1.6). */
int modmta_addr_envelope_ok(const char *addr);

/* 1 if two domains are equal ignoring case and a trailing dot. */
int modmta_domain_equal(const char *a, const char *b);

#ifdef __cplusplus
}
#endif

#endif
