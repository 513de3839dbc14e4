/*
 * header_checks_match: the first rule of a table matching a string, and
 * its text with the pattern's groups put in ($1, ${1}, $$ for a $).
 */
#include <stdlib.h>
#include <string.h>

#include "header_checks.h"

#define HC_GROUPS 10

/* r->text with $N replaced by group N of s (empty when the group took
 * no part in the match). NULL when out of memory. */
static char *
hc_expand(const struct hc_rule *r, const char *s, const regmatch_t *m)
{
    size_t cap = strlen(r->text) + 1, len = 0;
    char *out = malloc(cap);

    for (const char *p = r->text; out != NULL && *p != '\0'; ) {
        const char *add = p;
        size_t n = 1;

        if (p[0] == '$' && p[1] == '$') {
            p += 2;
        } else if (p[0] == '$') {
            /* checked at load: a group of the pattern */
            char *end;
            unsigned long g = strtoul(p + 1 + (p[1] == '{'), &end, 10);

            p = end + (p[1] == '{');
            add = s + m[g].rm_so;
            n = m[g].rm_so < 0 ? 0 : (size_t)(m[g].rm_eo - m[g].rm_so);
        } else {
            p++;
        }
        if (len + n + 1 > cap) {
            char *grown = realloc(out, cap = (len + n + 1) * 2);

            if (grown == NULL) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + len, add, n);
        len += n;
    }
    if (out != NULL)
        out[len] = '\0';
    return out;
}

int
hc_match(const struct hc_table *t, const char *s,
         const struct hc_rule **rule_r, char **text_r)
{
    regmatch_t m[HC_GROUPS];
    size_t i = 0;

    while (i < t->n) {
        const struct hc_rule *r = &t->rules[i];
        int hit;

        if (r->kind == HC_ENDIF) {
            i++;
            continue;
        }
        hit = regexec(&r->re, s, HC_GROUPS, m, 0) == 0;
        if (r->kind == HC_IF) {
            i = hit != r->negate ? i + 1 : r->endif + 1;
            continue;
        }
        if (hit == r->negate) {
            i++;
            continue;
        }
        *rule_r = r;
        *text_r = hc_expand(r, s, m);
        return *text_r != NULL ? 1 : MODMTA_E_NOMEM;
    }
    return 0;
}
