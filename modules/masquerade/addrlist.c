/*
 * RFC 5322 address-list tokenizer: see addrlist.h. Two passes: a lexer
 * turns the value into tokens (atoms, quoted strings, domain literals,
 * specials), dropping white space, folding and comments; a parser walks
 * the tokens, splitting the list at top-level commas and groups.
 */
#include <stdlib.h>
#include <string.h>

#include <modmta/err.h>

#include "addrlist.h"

enum addrlist_tok_type {
    ADDRLIST_ATOM,    /* 1*atext (8-bit octets allowed: RFC 6532) */
    ADDRLIST_QSTR,    /* "..." */
    ADDRLIST_DLIT,    /* [...] */
    ADDRLIST_SPECIAL, /* one of < > : ; @ , . */
};

struct addrlist_tok {
    enum addrlist_tok_type type;
    char c;          /* the special */
    size_t start, end;
};

struct addrlist_p {
    const char *v;
    struct addrlist_tok *t;
    size_t n;
    addrlist *out;
};

static int
addrlist_is_special(char c)
{
    return strchr("<>:;@,.", c) != NULL;
}

static int
addrlist_is_atext(unsigned char c)
{
    if (c >= 0x80)
        return 1;
    if (c <= 0x20 || c == 0x7f)
        return 0;
    return strchr("()<>[]:;@\\,.\"", c) == NULL;
}

static int
addrlist_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip a comment starting at v[*i] == '(' (nested, with quoted pairs). */
static int
addrlist_skip_comment(const char *v, size_t *i)
{
    size_t depth = 0;

    for (; v[*i] != '\0'; (*i)++) {
        if (v[*i] == '\\') {
            if (v[++*i] == '\0')
                break;
        } else if (v[*i] == '(') {
            depth++;
        } else if (v[*i] == ')' && --depth == 0) {
            (*i)++;
            return 0;
        }
    }
    return MODMTA_E_INVAL;
}

/* Skip a quoted string or a domain literal opened at v[*i]. */
static int
addrlist_skip_quoted(const char *v, size_t *i, char close)
{
    for ((*i)++; v[*i] != '\0'; (*i)++) {
        if (v[*i] == '\\') {
            if (v[++*i] == '\0')
                break;
        } else if (close == ']' && v[*i] == '[') {
            return MODMTA_E_INVAL;
        } else if (v[*i] == close) {
            (*i)++;
            return 0;
        }
    }
    return MODMTA_E_INVAL;
}

/* One token at v[*i] (white space and comments already skipped). */
static int
addrlist_lex_one(const char *v, size_t *i, struct addrlist_tok *t)
{
    unsigned char c = (unsigned char)v[*i];

    t->start = *i;
    t->c = 0;
    if (c == '"' || c == '[') {
        t->type = c == '"' ? ADDRLIST_QSTR : ADDRLIST_DLIT;
        if (addrlist_skip_quoted(v, i, c == '"' ? '"' : ']') < 0)
            return MODMTA_E_INVAL;
    } else if (addrlist_is_special((char)c)) {
        t->type = ADDRLIST_SPECIAL;
        t->c = (char)c;
        (*i)++;
    } else if (addrlist_is_atext(c)) {
        t->type = ADDRLIST_ATOM;
        while (addrlist_is_atext((unsigned char)v[*i]))
            (*i)++;
    } else {
        return MODMTA_E_INVAL; /* ) ] \ or a control character */
    }
    t->end = *i;
    return 0;
}

static int
addrlist_lex(const char *v, struct addrlist_tok *t, size_t *n_r)
{
    size_t i = 0, n = 0;

    for (;;) {
        while (addrlist_is_ws(v[i]))
            i++;
        if (v[i] == '(') {
            if (addrlist_skip_comment(v, &i) < 0)
                return MODMTA_E_INVAL;
            continue;
        }
        if (v[i] == '\0')
            break;
        if (n == ADDRLIST_TOKENS_MAX)
            return MODMTA_E_LIMIT;
        if (addrlist_lex_one(v, &i, &t[n]) < 0)
            return MODMTA_E_INVAL;
        n++;
    }
    *n_r = n;
    return 0;
}

static int
addrlist_sp(const struct addrlist_p *p, size_t k, char c)
{
    return k < p->n && p->t[k].type == ADDRLIST_SPECIAL && p->t[k].c == c;
}

static int
addrlist_word(const struct addrlist_p *p, size_t k)
{
    return k < p->n && (p->t[k].type == ADDRLIST_ATOM ||
                        p->t[k].type == ADDRLIST_QSTR);
}

/* A display name: one or more words (dots allowed: obs-phrase). */
static int
addrlist_phrase(const struct addrlist_p *p, size_t from, size_t to)
{
    size_t k;

    if (from >= to)
        return 0;
    for (k = from; k < to; k++)
        if (!addrlist_word(p, k) && !addrlist_sp(p, k, '.'))
            return 0;
    return 1;
}

/* Append the text of token k to buf (of size len, used *pos), quotes and
 * backslashes of a quoted string removed. */
static int
addrlist_append(const struct addrlist_p *p, size_t k, char *buf, size_t len,
                size_t *pos)
{
    const struct addrlist_tok *t = &p->t[k];
    size_t i = t->start, end = t->end;

    if (t->type == ADDRLIST_QSTR) {
        i++;
        end--;
    }
    for (; i < end; i++) {
        if (t->type == ADDRLIST_QSTR && p->v[i] == '\\')
            i++;
        if (*pos + 1 >= len)
            return MODMTA_E_LIMIT;
        buf[(*pos)++] = p->v[i];
    }
    buf[*pos] = '\0';
    return 0;
}

/* local-part: word *("." word) from *k; fills a->local. */
static int
addrlist_local(const struct addrlist_p *p, size_t *k, size_t to,
               addrlist_addr *a)
{
    size_t pos = 0;
    int rc;

    a->local[0] = '\0';
    for (;;) {
        if (*k >= to || !addrlist_word(p, *k))
            return MODMTA_E_INVAL;
        if ((rc = addrlist_append(p, (*k)++, a->local, sizeof(a->local),
                                  &pos)) < 0)
            return rc;
        if (*k >= to || !addrlist_sp(p, *k, '.'))
            return 0;
        if ((rc = addrlist_append(p, (*k)++, a->local, sizeof(a->local),
                                  &pos)) < 0)
            return rc;
    }
}

/* domain: a literal, or atom *("." atom), exactly filling [k, to). */
static int
addrlist_domain(const struct addrlist_p *p, size_t k, size_t to,
                addrlist_addr *a)
{
    size_t pos = 0;
    int rc;

    if (k < to && p->t[k].type == ADDRLIST_DLIT)
        return k + 1 == to ? addrlist_append(p, k, a->domain,
                                             sizeof(a->domain), &pos)
                           : MODMTA_E_INVAL;
    for (;;) {
        if (k >= to || p->t[k].type != ADDRLIST_ATOM)
            return MODMTA_E_INVAL;
        if ((rc = addrlist_append(p, k++, a->domain, sizeof(a->domain),
                                  &pos)) < 0)
            return rc;
        if (k == to)
            return 0;
        if (!addrlist_sp(p, k, '.'))
            return MODMTA_E_INVAL;
        if ((rc = addrlist_append(p, k++, a->domain, sizeof(a->domain),
                                  &pos)) < 0)
            return rc;
    }
}

/* addr-spec (or a bare local part) filling [from, to). */
static int
addrlist_addrspec(struct addrlist_p *p, size_t from, size_t to, int angle,
                  int group)
{
    addrlist_addr *a;
    size_t k = from;
    int rc;

    if (p->out->n == ADDRLIST_ADDRS_MAX)
        return MODMTA_E_LIMIT;
    a = &p->out->addrs[p->out->n];
    a->domain[0] = '\0';
    if ((rc = addrlist_local(p, &k, to, a)) < 0)
        return rc;
    a->start = p->t[from].start;
    a->local_end = p->t[k - 1].end;
    a->end = p->t[to - 1].end;
    a->angle = angle;
    a->group = group;
    if (k < to) {
        if (!addrlist_sp(p, k, '@'))
            return MODMTA_E_INVAL;
        if ((rc = addrlist_domain(p, k + 1, to, a)) < 0)
            return rc;
    }
    p->out->n++;
    return 0;
}

/* One mailbox: [display-name] "<" [route ":"] addr-spec ">", or a bare
 * addr-spec. "<>" holds no address and is skipped. */
static int
addrlist_mailbox(struct addrlist_p *p, size_t from, size_t to, int group)
{
    size_t a, b, k;

    for (a = from; a < to && !addrlist_sp(p, a, '<'); a++)
        ;
    if (a == to)
        return addrlist_addrspec(p, from, to, 0, group);
    if (a > from && !addrlist_phrase(p, from, a))
        return MODMTA_E_INVAL;
    b = to - 1;
    if (b <= a || !addrlist_sp(p, b, '>'))
        return MODMTA_E_INVAL;
    for (k = a + 1; k < b; k++)
        if (addrlist_sp(p, k, '<') || addrlist_sp(p, k, '>'))
            return MODMTA_E_INVAL;
    if (b == a + 1)
        return 0;
    /* obs-route: "@a,@b:" before the address */
    for (k = b; k > a + 1 && !addrlist_sp(p, k - 1, ':'); k--)
        ;
    if (k > a + 1 && !addrlist_sp(p, a + 1, '@'))
        return MODMTA_E_INVAL;
    return addrlist_addrspec(p, k > a + 1 ? k : a + 1, b, 1, group);
}

/* End of the element starting at `from`: the next top-level ',' or ';'
 * (or ':' opening a group when not in one). */
static size_t
addrlist_element_end(const struct addrlist_p *p, size_t from, int in_group,
                     int *colon_r)
{
    size_t e;
    int angle = 0;

    *colon_r = 0;
    for (e = from; e < p->n; e++) {
        if (addrlist_sp(p, e, '<'))
            angle = 1;
        else if (addrlist_sp(p, e, '>'))
            angle = 0;
        else if (angle)
            continue;
        else if (addrlist_sp(p, e, ',') || addrlist_sp(p, e, ';'))
            break;
        else if (addrlist_sp(p, e, ':') && !in_group) {
            *colon_r = 1;
            break;
        }
    }
    return e;
}

static int
addrlist_walk(struct addrlist_p *p)
{
    size_t pos = 0, e;
    int in_group = 0, colon, rc;

    while (pos < p->n) {
        if (addrlist_sp(p, pos, ',')) {
            pos++;
            continue;
        }
        if (addrlist_sp(p, pos, ';')) {
            if (!in_group)
                return MODMTA_E_INVAL;
            in_group = 0;
            pos++;
            continue;
        }
        e = addrlist_element_end(p, pos, in_group, &colon);
        if (colon) {
            if (!addrlist_phrase(p, pos, e))
                return MODMTA_E_INVAL;
            in_group = 1;
            pos = e + 1;
            continue;
        }
        if ((rc = addrlist_mailbox(p, pos, e, in_group)) < 0)
            return rc;
        pos = e;
    }
    return in_group ? MODMTA_E_INVAL : 0;
}

int
addrlist_parse(const char *value, addrlist *out)
{
    struct addrlist_p p = {.v = value, .out = out};
    int rc;

    out->n = 0;
    if (value == NULL)
        return MODMTA_E_INVAL;
    if (strlen(value) > ADDRLIST_VALUE_MAX)
        return MODMTA_E_LIMIT;
    p.t = malloc(ADDRLIST_TOKENS_MAX * sizeof(*p.t));
    if (p.t == NULL)
        return MODMTA_E_NOMEM;
    rc = addrlist_lex(value, p.t, &p.n);
    if (rc == 0)
        rc = addrlist_walk(&p);
    free(p.t);
    if (rc < 0)
        out->n = 0;
    return rc;
}

int
addrlist_splice(const char *value, const addrlist *l,
                const char *const *repl, char **out_r)
{
    size_t len = strlen(value) + 1, i, pos = 0, off = 0, n;
    char *out;

    for (i = 0; i < l->n; i++)
        if (repl[i] != NULL)
            len += strlen(repl[i]);
    out = malloc(len);
    if (out == NULL)
        return MODMTA_E_NOMEM;
    for (i = 0; i < l->n; i++) {
        if (repl[i] == NULL)
            continue;
        n = l->addrs[i].start - pos;
        memcpy(out + off, value + pos, n);
        off += n;
        n = strlen(repl[i]);
        memcpy(out + off, repl[i], n);
        off += n;
        pos = l->addrs[i].end;
    }
    strcpy(out + off, value + pos);
    *out_r = out;
    return 0;
}
