/*
 * RFC 5321 path parsing (section 4.1.2), with the length limits of
 * section 4.5.3.1 and the SMTPUTF8 extension (RFC 6531) behind a flag.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include <modmta/addr.h>
#include <modmta/err.h>

/* Parser state: the input cursor and the caller's flags. */
struct addr_parser {
    const unsigned char *p;
    unsigned flags;
};

/* Needed by the source route, which is a list of domains. */
static int addr_parse_domain(struct addr_parser *ps, char *buf, size_t size,
                             int *literal_r);

static int
addr_is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int
addr_is_ldh(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

/* Length of the well-formed UTF-8 sequence at p (2 to 4), or 0: rejects
 * overlong forms, surrogates and code points above U+10FFFF. */
static size_t
addr_utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t n, i;
    unsigned lo = 0x80, hi = 0xBF;

    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

/* One UTF-8 character at the cursor, copied to buf (bounded by *len_r
 * against size). Returns the octet count, or 0 if not allowed here. */
static size_t
addr_take_utf8(struct addr_parser *ps, char *buf, size_t size,
               size_t *len_r)
{
    size_t n, i;

    if (!(ps->flags & MODMTA_ADDR_UTF8))
        return 0;
    n = addr_utf8_len(ps->p);
    for (i = 0; i < n; i++, (*len_r)++)
        if (*len_r + 1 < size)
            buf[*len_r] = (char)ps->p[i];
    ps->p += n;
    return n;
}

/* "@a,@b:" — each hop is a domain; the route itself is dropped. */
static int
addr_parse_route(struct addr_parser *ps)
{
    char hop[MODMTA_ADDR_DOMAIN_MAX + 1];
    int literal, rc;

    for (;;) {
        if (*ps->p != '@')
            return MODMTA_E_INVAL;
        ps->p++;
        rc = addr_parse_domain(ps, hop, sizeof(hop), &literal);
        if (rc < 0)
            return rc;
        if (*ps->p == ':') {
            ps->p++;
            return 0;
        }
        if (*ps->p != ',')
            return MODMTA_E_INVAL;
        ps->p++;
    }
}

static int
addr_parse_quoted(struct addr_parser *ps, modmta_addr *out, size_t *len_r)
{
    size_t n = 0;
    unsigned char c;

    ps->p++; /* opening quote */
    for (;;) {
        c = *ps->p;
        if (c == '"')
            break;
        if (c == '\\') {
            c = ps->p[1];
            if (c < 0x20 || c > 0x7E)
                return MODMTA_E_INVAL;
            ps->p += 2;
        } else if (c >= 0x80) {
            if (addr_take_utf8(ps, out->local, sizeof(out->local), &n) == 0)
                return MODMTA_E_INVAL;
            continue;
        } else if (c < 0x20 || c > 0x7E) {
            return MODMTA_E_INVAL; /* controls, NUL: unbalanced quote */
        } else {
            ps->p++;
        }
        if (n + 1 < sizeof(out->local))
            out->local[n] = (char)c;
        n++;
    }
    ps->p++; /* closing quote */
    *len_r = n;
    out->quoted = 1;
    return 0;
}

static int
addr_parse_dot_atom(struct addr_parser *ps, modmta_addr *out, size_t *len_r)
{
    size_t n = 0, atom = 0;
    unsigned char c;

    for (;;) {
        c = *ps->p;
        if (addr_is_atext(c)) {
            if (n + 1 < sizeof(out->local))
                out->local[n] = (char)c;
            n++;
            atom++;
            ps->p++;
        } else if (c >= 0x80) {
            if (addr_take_utf8(ps, out->local, sizeof(out->local), &n) == 0)
                return MODMTA_E_INVAL;
            atom++;
        } else if (c == '.' && atom > 0) {
            if (n + 1 < sizeof(out->local))
                out->local[n] = '.';
            n++;
            atom = 0;
            ps->p++;
        } else {
            break;
        }
    }
    if (atom == 0) /* empty, or a trailing dot */
        return MODMTA_E_INVAL;
    *len_r = n;
    return 0;
}

static int
addr_parse_local(struct addr_parser *ps, modmta_addr *out)
{
    const unsigned char *start = ps->p;
    size_t n;
    int rc;

    if (*ps->p == '"')
        rc = addr_parse_quoted(ps, out, &n);
    else
        rc = addr_parse_dot_atom(ps, out, &n);
    if (rc < 0)
        return rc;
    /* The limit counts octets as transmitted, quotes and escapes
     * included (RFC 5321 section 4.5.3.1.1). */
    if ((size_t)(ps->p - start) > MODMTA_ADDR_LOCAL_MAX)
        return MODMTA_E_LIMIT;
    out->local[n] = '\0';
    return 0;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]"; kept as written. */
static int
addr_parse_literal(struct addr_parser *ps, char *buf, size_t size)
{
    const char *start = (const char *)ps->p + 1;
    const char *close = strchr(start, ']');
    char ip[64];
    size_t len;
    int af = AF_INET;
    unsigned char bin[16];

    if (close == NULL)
        return MODMTA_E_INVAL;
    len = (size_t)(close - start);
    if (len > 5 && strncasecmp(start, "IPv6:", 5) == 0) {
        af = AF_INET6;
        start += 5;
        len -= 5;
    }
    if (len == 0 || len >= sizeof(ip))
        return MODMTA_E_INVAL;
    memcpy(ip, start, len);
    ip[len] = '\0';
    if (inet_pton(af, ip, bin) != 1)
        return MODMTA_E_INVAL;
    len = (size_t)(close + 1 - (const char *)ps->p);
    if (len >= size)
        return MODMTA_E_LIMIT;
    memcpy(buf, ps->p, len);
    buf[len] = '\0';
    ps->p += len;
    return 0;
}

/* One LDH label (or a U-label with the UTF-8 flag) appended to buf. */
static int
addr_parse_label(struct addr_parser *ps, char *buf, size_t size,
                 size_t *len_r)
{
    const unsigned char *start = ps->p;
    size_t len;
    unsigned char c;

    for (;;) {
        c = *ps->p;
        if (addr_is_ldh(c)) {
            if (*len_r + 1 < size)
                buf[*len_r] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            (*len_r)++;
            ps->p++;
        } else if (c >= 0x80) {
            if (addr_take_utf8(ps, buf, size, len_r) == 0)
                return MODMTA_E_INVAL;
        } else {
            break;
        }
    }
    len = (size_t)(ps->p - start);
    if (len == 0)
        return MODMTA_E_INVAL;
    if (start[0] == '-' || ps->p[-1] == '-')
        return MODMTA_E_INVAL;
    if (len > 63)
        return MODMTA_E_LIMIT;
    return 0;
}

static int
addr_parse_domain(struct addr_parser *ps, char *buf, size_t size,
                  int *literal_r)
{
    size_t n = 0;
    int rc;

    *literal_r = 0;
    if (*ps->p == '[') {
        *literal_r = 1;
        return addr_parse_literal(ps, buf, size);
    }
    for (;;) {
        rc = addr_parse_label(ps, buf, size, &n);
        if (rc < 0)
            return rc;
        if (*ps->p != '.')
            break;
        ps->p++;
        if (!addr_is_ldh(*ps->p) && *ps->p < 0x80)
            break; /* a single trailing dot, dropped */
        if (n + 1 < size)
            buf[n] = '.';
        n++;
    }
    if (n >= size)
        return MODMTA_E_LIMIT;
    buf[n] = '\0';
    return 0;
}

static int
addr_parse_mailbox(struct addr_parser *ps, modmta_addr *out)
{
    int rc;

    rc = addr_parse_local(ps, out);
    if (rc < 0)
        return rc;
    if (*ps->p != '@')
        return (ps->flags & MODMTA_ADDR_ALLOW_NODOMAIN) ? 0 : MODMTA_E_INVAL;
    ps->p++;
    return addr_parse_domain(ps, out->domain, sizeof(out->domain),
                             &out->is_literal);
}

int
modmta_addr_parse(const char *in, unsigned flags, modmta_addr *out,
                  const char **end_r)
{
    struct addr_parser ps = {(const unsigned char *)in, flags};
    int bracket, rc;

    if (in == NULL || out == NULL)
        return MODMTA_E_INVAL;
    memset(out, 0, sizeof(*out));
    bracket = *ps.p == '<';
    if (!bracket && !(flags & MODMTA_ADDR_NO_BRACKETS))
        return MODMTA_E_INVAL;
    if (bracket) {
        ps.p++;
        if (*ps.p == '>') {
            if (!(flags & MODMTA_ADDR_ALLOW_NULL))
                return MODMTA_E_INVAL;
            out->is_null = 1;
        } else if (*ps.p == '@') {
            rc = addr_parse_route(&ps);
            if (rc < 0)
                return rc;
            out->had_route = 1;
        }
    }
    if (!out->is_null) {
        rc = addr_parse_mailbox(&ps, out);
        if (rc < 0)
            return rc;
    }
    if (bracket) {
        if (*ps.p != '>')
            return MODMTA_E_INVAL;
        ps.p++;
    } else if (*ps.p != '\0' && *ps.p != ' ' && *ps.p != '\t') {
        return MODMTA_E_INVAL;
    }
    if ((size_t)((const char *)ps.p - in) > MODMTA_ADDR_PATH_MAX)
        return MODMTA_E_LIMIT;
    if (end_r != NULL)
        *end_r = (const char *)ps.p;
    return 0;
}

static int
addr_local_is_dot_atom(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    int atom = 0;

    for (; *p != '\0'; p++) {
        if (addr_is_atext(*p) || *p >= 0x80)
            atom = 1;
        else if (*p == '.' && atom)
            atom = 0;
        else
            return 0;
    }
    return atom;
}

int
modmta_addr_format(const modmta_addr *a, char *buf, size_t len)
{
    size_t n = 0;
    const char *s;
    int quote;

#define ADDR_PUT(c)                                                          \
    do {                                                                     \
        if (n + 1 >= len)                                                    \
            return MODMTA_E_LIMIT;                                           \
        buf[n++] = (c);                                                      \
    } while (0)

    if (len == 0)
        return MODMTA_E_LIMIT;
    if (!a->is_null) {
        quote = !addr_local_is_dot_atom(a->local);
        if (quote)
            ADDR_PUT('"');
        for (s = a->local; *s != '\0'; s++) {
            if (quote && (*s == '"' || *s == '\\'))
                ADDR_PUT('\\');
            ADDR_PUT(*s);
        }
        if (quote)
            ADDR_PUT('"');
        if (a->domain[0] != '\0') {
            ADDR_PUT('@');
            for (s = a->domain; *s != '\0'; s++)
                ADDR_PUT(*s);
        }
    }
#undef ADDR_PUT
    buf[n] = '\0';
    return (int)n;
}

/* The last '@' outside a quoted string ("\"a@b\"@c" splits after the
 * quotes; "\"x@evil.test\"" has no domain), else NULL. */
static const char *
addr_last_at(const char *s)
{
    const char *at = NULL;
    int quoted = 0;

    for (; *s != '\0'; s++) {
        if (*s == '"')
            quoted = !quoted;
        else if (quoted && *s == '\\' && s[1] != '\0')
            s++;
        else if (!quoted && *s == '@')
            at = s;
    }
    return at;
}

int
modmta_addr_split(const char *addr, char *local, size_t llen, char *domain,
                  size_t dlen)
{
    const char *at;
    size_t ln, dn;

    if (addr == NULL)
        return MODMTA_E_INVAL;
    at = addr_last_at(addr);
    ln = at != NULL ? (size_t)(at - addr) : strlen(addr);
    dn = at != NULL ? strlen(at + 1) : 0;
    if (ln >= llen || dn >= dlen)
        return MODMTA_E_INVAL;
    memcpy(local, addr, ln);
    local[ln] = '\0';
    if (dn > 0)
        memcpy(domain, at + 1, dn);
    domain[dn] = '\0';
    return 0;
}

/* Length of a domain without one trailing dot. */
static size_t
addr_domain_len(const char *d)
{
    size_t n = strlen(d);

    return n > 0 && d[n - 1] == '.' ? n - 1 : n;
}

int
modmta_domain_equal(const char *a, const char *b)
{
    size_t n;

    if (a == NULL || b == NULL)
        return 0;
    n = addr_domain_len(a);
    return n == addr_domain_len(b) && strncasecmp(a, b, n) == 0;
}

int
modmta_addr_envelope_ok(const char *addr)
{
    if (addr == NULL || strlen(addr) >= MODMTA_ADDR_ENVELOPE_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        if (*p < ' ' || *p == 0x7f || *p == '<' || *p == '>')
            return 0;
    return 1;
}
