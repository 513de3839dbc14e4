/*
 * SMTP command line parsing (see smtp_cmd.h).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <modmta/err.h>

#include "queue_env.h"
#include "smtp_cmd.h"

static void smtp_cmd_status(struct smtp_status *st, int code, const char *esc,
                            const char *text);
static int smtp_cmd_parse_params(char *p, struct smtp_path *path,
                                 struct smtp_status *st);
static int smtp_cmd_parse_param(char *tok, struct smtp_param *out);
static int smtp_cmd_has_utf8(const char *s);
static int smtp_cmd_hex(int c);
static int smtp_cmd_envid_ok(const char *v);
static int smtp_cmd_notify(const char *v, unsigned *bits_r);
static int smtp_cmd_orcpt_ok(const char *v);

static void
smtp_cmd_status(struct smtp_status *st, int code, const char *esc,
                const char *text)
{
    st->code = code;
    st->esc = esc;
    st->text = text;
}

size_t
smtp_cmd_line_max(const char *verb)
{
    if (strcmp(verb, "AUTH") == 0)
        return SMTP_AUTH_LINE_MAX;
    if (strcmp(verb, "MAIL") == 0)
        return SMTP_MAIL_LINE_MAX;
    if (strcmp(verb, "RCPT") == 0)
        return SMTP_RCPT_LINE_MAX;
    return SMTP_LINE_MAX;
}

int
smtp_cmd_parse(char *line, struct smtp_cmd *cmd)
{
    size_t n = 0, end;
    char *p = line;

    while (isalpha((unsigned char)*p)) {
        if (n == SMTP_VERB_MAX - 1)
            return -1;
        cmd->verb[n++] = (char)toupper((unsigned char)*p++);
    }
    cmd->verb[n] = '\0';
    if (n == 0 || (*p != '\0' && *p != ' '))
        return -1;
    while (*p == ' ')
        p++;
    end = strlen(p);
    while (end > 0 && p[end - 1] == ' ')
        p[--end] = '\0';
    cmd->args = p;
    return 0;
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 4.1.2);
 * esmtp-value octets may be UTF-8 (RFC 6531 3.3). */
static int
smtp_cmd_parse_param(char *tok, struct smtp_param *out)
{
    char *p = tok;

    if (!isalnum((unsigned char)*p))
        return -1;
    for (; *p != '\0' && *p != '='; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-')
            return -1;
        *p = (char)toupper((unsigned char)*p);
    }
    out->keyword = tok;
    out->value = NULL;
    if (*p == '\0')
        return 0;
    *p++ = '\0';
    if (*p == '\0')
        return -1;
    out->value = p;
    for (; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == '=' || c <= ' ' || c == 0x7f)
            return -1;
    }
    return 0;
}

static int
smtp_cmd_parse_params(char *p, struct smtp_path *path, struct smtp_status *st)
{
    char *tok;
    size_t i;

    path->nparams = 0;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return 0;
        tok = p;
        while (*p != '\0' && *p != ' ')
            p++;
        if (*p == ' ')
            *p++ = '\0';
        if (path->nparams == SMTP_PARAMS_MAX) {
            smtp_cmd_status(st, 501, "5.5.4", "Too many parameters");
            return -1;
        }
        if (smtp_cmd_parse_param(tok, &path->params[path->nparams]) < 0) {
            smtp_cmd_status(st, 501, "5.5.4", "Syntax error in parameters");
            return -1;
        }
        for (i = 0; i < path->nparams; i++) {
            if (strcmp(path->params[i].keyword,
                       path->params[path->nparams].keyword) == 0) {
                smtp_cmd_status(st, 501, "5.5.4", "Duplicate parameter");
                return -1;
            }
        }
        path->nparams++;
    }
}

static int
smtp_cmd_has_utf8(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

/* Give a path without a domain the domain qualify (lower-cased), as
 * Postfix's append_at_myorigin does: "root" becomes "root@<hostname>".
 * A recipient "postmaster" stays as it is: RFC 5321 4.5.1 wants it to
 * reach this server's postmaster even when the host name is not a local
 * domain. A sender always gets a domain: it may be relayed. */
static void
smtp_cmd_qualify(modmta_addr *a, int is_mail, const char *qualify)
{
    size_t i;

    if (a->is_null || a->domain[0] != '\0'
        || (!is_mail && strcasecmp(a->local, "postmaster") == 0))
        return;
    for (i = 0; qualify[i] != '\0' && i + 1 < sizeof(a->domain); i++)
        a->domain[i] = (char)tolower((unsigned char)qualify[i]);
    a->domain[i] = '\0';
}

int
smtp_cmd_parse_path(char *args, int is_mail, const char *qualify,
                    struct smtp_path *p, struct smtp_status *st)
{
    const char *kw = is_mail ? "FROM:" : "TO:";
    size_t kwlen = strlen(kw);
    unsigned flags = MODMTA_ADDR_UTF8;
    const char *end;

    memset(p, 0, sizeof(*p));
    if (strncasecmp(args, kw, kwlen) != 0) {
        smtp_cmd_status(st, 501, "5.5.4", is_mail
                        ? "Syntax: MAIL FROM:<address>"
                        : "Syntax: RCPT TO:<address>");
        return -1;
    }
    args += kwlen;
    while (*args == ' ')    /* "MAIL FROM: <a@b>": common, tolerated */
        args++;
    flags |= is_mail ? MODMTA_ADDR_ALLOW_NULL : MODMTA_ADDR_ALLOW_NODOMAIN;
    if (qualify != NULL)
        flags |= MODMTA_ADDR_NO_BRACKETS | MODMTA_ADDR_ALLOW_NODOMAIN;
    if (modmta_addr_parse(args, flags, &p->addr, &end) < 0
        || (*end != '\0' && *end != ' '))
        goto bad;
    /* RFC 5321 4.5.1: only <postmaster> may come without a domain. */
    if (qualify == NULL && !is_mail && p->addr.domain[0] == '\0'
        && strcasecmp(p->addr.local, "postmaster") != 0)
        goto bad;
    if (qualify != NULL)
        smtp_cmd_qualify(&p->addr, is_mail, qualify);
    if (modmta_addr_format(&p->addr, p->str, sizeof(p->str)) < 0)
        goto bad;
    p->utf8 = smtp_cmd_has_utf8(p->str);
    return smtp_cmd_parse_params((char *)end, p, st);
bad:
    if (is_mail)
        smtp_cmd_status(st, 501, "5.1.7", "Bad sender address syntax");
    else
        smtp_cmd_status(st, 501, "5.1.3", "Bad recipient address syntax");
    return -1;
}

int
smtp_cmd_is_xtext(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '+') {
            if (!isxdigit((unsigned char)s[1]) || islower((unsigned char)s[1])
                || !isxdigit((unsigned char)s[2])
                || islower((unsigned char)s[2]))
                return 0;
            s += 2;
        } else if (c < 33 || c > 126 || c == '=') {
            return 0;
        }
    }
    return 1;
}

int
smtp_cmd_check_mail(const struct smtp_path *p, long long size_limit,
                    struct smtp_mail_opts *o, struct smtp_status *st)
{
    const struct smtp_param *pa;
    size_t i;

    memset(o, 0, sizeof(*o));
    for (i = 0; i < p->nparams; i++) {
        pa = &p->params[i];
        if (strcmp(pa->keyword, "SIZE") == 0) {
            /* size-value = 1*20DIGIT (RFC 1870): a value too large for
             * 64 bits is still well-formed, and over any limit. */
            if (pa->value == NULL || strlen(pa->value) > 20 ||
                strspn(pa->value, "0123456789") != strlen(pa->value) ||
                pa->value[0] == '\0')
                goto syntax;
            errno = 0;
            o->size = strtoll(pa->value, NULL, 10);
            if (errno == ERANGE)
                o->size = LLONG_MAX;
            if (size_limit > 0 && o->size > size_limit) {
                smtp_cmd_status(st, 552, "5.3.4",
                                "Message size exceeds fixed limit");
                return -1;
            }
        } else if (strcmp(pa->keyword, "BODY") == 0) {
            if (pa->value == NULL)
                goto syntax;
            if (strcasecmp(pa->value, "8BITMIME") == 0) {
                o->body8 = 1;
            } else if (strcasecmp(pa->value, "7BIT") != 0) {
                smtp_cmd_status(st, 504, "5.5.4", "Unsupported BODY type");
                return -1;
            }
        } else if (strcmp(pa->keyword, "SMTPUTF8") == 0) {
            if (pa->value != NULL)
                goto syntax;
            o->utf8 = 1;
        } else if (strcmp(pa->keyword, "AUTH") == 0) {
            if (pa->value == NULL || (strcmp(pa->value, "<>") != 0
                                      && !smtp_cmd_is_xtext(pa->value)))
                goto syntax;
        } else if (strcmp(pa->keyword, "RET") == 0) {
            if (pa->value == NULL || (strcasecmp(pa->value, "FULL") != 0 &&
                                      strcasecmp(pa->value, "HDRS") != 0)) {
                smtp_cmd_status(st, 501, "5.5.4", "Bad RET parameter syntax");
                return -1;
            }
        } else if (strcmp(pa->keyword, "ENVID") == 0) {
            if (!smtp_cmd_envid_ok(pa->value)) {
                smtp_cmd_status(st, 501, "5.5.4",
                                "Bad ENVID parameter syntax");
                return -1;
            }
        } else {
            smtp_cmd_status(st, 555, "5.5.4", "Unsupported parameter");
            return -1;
        }
    }
    if (p->utf8 && !o->utf8) {
        smtp_cmd_status(st, 553, "5.6.7", "SMTPUTF8 required for a UTF-8 "
                        "address");
        return -1;
    }
    return 0;
syntax:
    smtp_cmd_status(st, 501, "5.5.4", "Syntax error in parameters");
    return -1;
}

/* ENVID=xtext, at most 100 characters, printable US-ASCII once decoded
 * (RFC 3461 4.4). */
static int
smtp_cmd_envid_ok(const char *v)
{
    char dec[SMTP_ENVID_MAX + 1];
    long n;

    if (v == NULL || strlen(v) > SMTP_ENVID_MAX ||
        (n = smtp_cmd_xtext_decode(v, dec, sizeof(dec))) < 0)
        return 0;
    for (long i = 0; i < n; i++)
        if ((unsigned char)dec[i] < 0x20 || (unsigned char)dec[i] > 0x7e)
            return 0;
    return 1;
}

/* NOTIFY=NEVER, or a comma list of SUCCESS, FAILURE and DELAY, each at
 * most once, in any case (RFC 3461 4.1). 0, or -1. */
static int
smtp_cmd_notify(const char *v, unsigned *bits_r)
{
    const char *p = v, *e;
    unsigned bit;

    *bits_r = 0;
    if (v == NULL)
        return -1;
    do {
        e = strchr(p, ',');
        if (e == NULL)
            e = p + strlen(p);
        bit = queue_env_notify_bit(p, (size_t)(e - p));
        if (bit == 0 || (*bits_r & bit) != 0)
            return -1;
        *bits_r |= bit;
        p = e + 1;
    } while (*e != '\0');
    return (*bits_r & QNOTIFY_NEVER) && *bits_r != QNOTIFY_NEVER ? -1 : 0;
}

/* ORCPT=addr-type;xtext, at most 500 characters (RFC 3461 4.2):
 * addr-type an atom; the address xtext, or for "utf-8" (RFC 6533) the
 * utf-8-addr form, which the parameter syntax already bounds. */
static int
smtp_cmd_orcpt_ok(const char *v)
{
    char dec[SMTP_ORCPT_MAX + 1];
    const char *semi = v != NULL ? strchr(v, ';') : NULL;

    if (semi == NULL || semi == v || semi[1] == '\0' ||
        strlen(v) > SMTP_ORCPT_MAX)
        return 0;
    for (const char *p = v; p < semi; p++)
        if (!isalnum((unsigned char)*p) &&
            strchr("!#$%&'*+-/=?^_`{|}~", *p) == NULL)
            return 0;
    if ((size_t)(semi - v) == 5 && strncasecmp(v, "utf-8", 5) == 0)
        return 1;
    return smtp_cmd_xtext_decode(semi + 1, dec, sizeof(dec)) > 0;
}

int
smtp_cmd_check_rcpt(const struct smtp_path *p, int utf8,
                    struct smtp_rcpt_opts *o, struct smtp_status *st)
{
    const struct smtp_param *pa;

    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < p->nparams; i++) {
        pa = &p->params[i];
        if (strcmp(pa->keyword, "NOTIFY") == 0) {
            if (smtp_cmd_notify(pa->value, &o->notify) < 0) {
                smtp_cmd_status(st, 501, "5.5.4",
                                "Bad NOTIFY parameter syntax");
                return -1;
            }
        } else if (strcmp(pa->keyword, "ORCPT") == 0) {
            if (!smtp_cmd_orcpt_ok(pa->value)) {
                smtp_cmd_status(st, 501, "5.5.4",
                                "Bad ORCPT parameter syntax");
                return -1;
            }
            o->orcpt = pa->value;
        } else {
            smtp_cmd_status(st, 555, "5.5.4", "Unsupported parameter");
            return -1;
        }
    }
    if (p->utf8 && !utf8) {
        smtp_cmd_status(st, 553, "5.6.7", "SMTPUTF8 required for a UTF-8 "
                        "address");
        return -1;
    }
    return 0;
}

static int
smtp_cmd_hex(int c)
{
    return isdigit(c) ? c - '0' : c - 'A' + 10;
}

long
smtp_cmd_xtext_decode(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    int c;

    if (!smtp_cmd_is_xtext(s))
        return -1;
    for (; *s != '\0'; s++) {
        c = (unsigned char)*s;
        if (c == '+') {
            c = smtp_cmd_hex(s[1]) * 16 + smtp_cmd_hex(s[2]);
            s += 2;
        }
        if (c == 0 || n + 1 >= outlen)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return (long)n;
}

char *
smtp_cmd_auth_mailbox(const char *value, int trusted)
{
    size_t len = value != NULL ? strlen(value) + 1 : 1;
    char *out = malloc(len);
    long n;

    if (out == NULL)
        return NULL;
    n = trusted && value != NULL ? smtp_cmd_xtext_decode(value, out, len)
                                 : -1;
    /* A mailbox has no space or control character: anything else is
     * not something to pass on. */
    for (long i = 0; i < n; i++)
        if ((unsigned char)out[i] <= ' ' || out[i] == 127)
            n = -1;
    if (n <= 0 || strchr(out, '@') == NULL || out[0] == '@' ||
        out[n - 1] == '@') {
        free(out);
        return strdup("<>");
    }
    return out;
}
