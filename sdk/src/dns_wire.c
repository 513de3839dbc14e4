/*
 * Domain names and record data (RFC 1035 section 3): the names callers
 * give, and the rdata libunbound hands over in wire format (names in it
 * uncompressed: unbound expands them when it stores an answer).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_priv.h"

static int dns_wire_label_char(int c);
static int dns_wire_name(const unsigned char *p, size_t len,
                         struct dns_rr *rr);
static int dns_wire_txt(const unsigned char *p, size_t len,
                        struct dns_rr *rr);

/* What a label of a looked-up name may hold: LDH, and '_' for service
 * names (_25._tcp, _domainkey). */
static int
dns_wire_label_char(int c)
{
    return isascii(c) && (isalnum(c) || c == '-' || c == '_');
}

int
dns_wire_name_check(const char *name, char buf[DNS_NAME_MAX + 1])
{
    size_t len = name != NULL ? strlen(name) : 0;
    size_t label = 0;

    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_NAME_MAX)
        return MODMTA_E_INVAL;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '.') {
            if (label == 0)
                return MODMTA_E_INVAL;
            label = 0;
        } else if (!dns_wire_label_char((unsigned char)name[i]) ||
                   ++label > 63) {
            return MODMTA_E_INVAL;
        }
    }
    if (label == 0)             /* "a.." */
        return MODMTA_E_INVAL;
    memcpy(buf, name, len);
    buf[len] = '\0';
    return 0;
}

int
dns_wire_name_text(const unsigned char *p, size_t len, char *out)
{
    size_t pos = 0, o = 0;

    for (;;) {
        size_t l;

        if (pos >= len || pos > 254)
            return -1;
        l = p[pos++];
        if (l == 0)
            break;
        /* 0xc0: a compression pointer, never in rdata given to us */
        if (l > 63 || pos + l > len || pos + l > 255)
            return -1;
        if (o > 0)
            out[o++] = '.';
        for (size_t i = 0; i < l; i++) {
            int c = p[pos + i];

            if (isascii(c) && (isalnum(c) || strchr("-_*/", c) != NULL))
                out[o++] = (char)c;
            else
                o += (size_t)sprintf(out + o, "\\%03d", c);
        }
        pos += l;
    }
    out[o] = '\0';
    return (int)pos;
}

/* PTR, CNAME: one name filling the data. */
static int
dns_wire_name(const unsigned char *p, size_t len, struct dns_rr *rr)
{
    char text[DNS_TEXT_MAX];
    int used = dns_wire_name_text(p, len, text);

    if (used < 0 || (size_t)used != len)
        return MODMTA_E_TEMP;
    return (rr->text = strdup(text)) != NULL ? 0 : MODMTA_E_NOMEM;
}

/* TXT: character-strings (a length octet, then that many octets), given
 * concatenated as SPF (RFC 7208 3.3) and DKIM (RFC 6376 3.6.2.2) read
 * them. */
static int
dns_wire_txt(const unsigned char *p, size_t len, struct dns_rr *rr)
{
    size_t pos = 0, o = 0;

    if (len == 0 || (rr->text = malloc(len)) == NULL)
        return len == 0 ? MODMTA_E_TEMP : MODMTA_E_NOMEM;
    while (pos < len) {
        size_t l = p[pos++];

        if (pos + l > len)
            return MODMTA_E_TEMP;
        memcpy(rr->text + o, p + pos, l);
        o += l;
        pos += l;
    }
    rr->text[o] = '\0';
    return 0;
}

int
dns_wire_rdata(int type, const unsigned char *p, size_t len,
               struct dns_rr *rr)
{
    char text[DNS_TEXT_MAX];
    int used;

    memset(rr, 0, sizeof(*rr));
    switch (type) {
    case MODMTA_DNS_A:
    case MODMTA_DNS_AAAA:
        if (len != (type == MODMTA_DNS_A ? 4u : 16u))
            return MODMTA_E_TEMP;
        inet_ntop(type == MODMTA_DNS_A ? AF_INET : AF_INET6, p, text,
                  sizeof(text));
        return (rr->text = strdup(text)) != NULL ? 0 : MODMTA_E_NOMEM;
    case MODMTA_DNS_CNAME:
    case MODMTA_DNS_PTR:
        return dns_wire_name(p, len, rr);
    case MODMTA_DNS_MX:
        if (len < 3 || (used = dns_wire_name_text(p + 2, len - 2, text)) < 0
            || (size_t)used != len - 2)
            return MODMTA_E_TEMP;
        rr->pref = p[0] << 8 | p[1];
        return (rr->text = strdup(text)) != NULL ? 0 : MODMTA_E_NOMEM;
    case MODMTA_DNS_TXT:
        return dns_wire_txt(p, len, rr);
    case MODMTA_DNS_TLSA:
        if (len < 3)
            return MODMTA_E_TEMP;
        rr->usage = p[0];
        rr->selector = p[1];
        rr->mtype = p[2];
        rr->len = len - 3;
        /* one more octet: malloc(0) may give NULL */
        if ((rr->data = malloc(rr->len + 1)) == NULL)
            return MODMTA_E_NOMEM;
        memcpy(rr->data, p + 3, rr->len);
        return 0;
    default:
        return 0;               /* counted, not parsed */
    }
}

void
dns_wire_rr_clear(struct dns_rr *rr)
{
    free(rr->text);
    free(rr->data);
    memset(rr, 0, sizeof(*rr));
}
