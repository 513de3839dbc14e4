/*
 * header_checks_table: a file in Postfix's regexp_table(5) format.
 *
 *   # comment
 *   /pattern/flags ACTION text      first matching line wins
 *   !/pattern/flags ACTION text     matches when pattern does not
 *   if /pattern/flags               the lines up to endif only for
 *   endif                           strings matching it (nests)
 *
 * A line starting with white space continues the previous one. The
 * delimiter is any punctuation character; flags toggle case folding
 * (i, on by default), extended syntax (x, on) and multi-line mode (m,
 * off: ^ and $ also match at the newlines of a folded header).
 * Patterns are POSIX regular expressions, as Postfix's regexp: tables.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "header_checks.h"

#define HC_NESTING_MAX 64

struct hc_parse {
    const char *path;
    unsigned line;       /* first physical line of the logical line */
    enum hc_file file;
    struct hc_table *t;
    size_t open[HC_NESTING_MAX]; /* indexes of the open ifs */
    size_t nopen;
    modmta_err *err_r;
};

static const struct {
    const char *name;
    enum hc_action action;
    int headers_only;
} hc_actions[] = {
    { "DUNNO", HC_DUNNO, 0 },     { "OK", HC_DUNNO, 0 },
    { "REJECT", HC_REJECT, 0 },   { "DISCARD", HC_DISCARD, 0 },
    { "HOLD", HC_HOLD, 0 },       { "WARN", HC_WARN, 0 },
    { "INFO", HC_INFO, 0 },       { "PREPEND", HC_PREPEND, 1 },
    { "REPLACE", HC_REPLACE, 1 }, { "IGNORE", HC_IGNORE, 1 },
};

/* Postfix actions this plugin does not do, named in the error. */
static const char *const hc_unsupported[] = {
    "BCC", "FILTER", "REDIRECT", "STRIP", "PASS", NULL
};

const char *
hc_action_name(enum hc_action a)
{
    for (size_t i = 0; i < sizeof(hc_actions) / sizeof(hc_actions[0]); i++)
        if (hc_actions[i].action == a)
            return hc_actions[i].name;
    return "?";
}

static int
hc_fail(struct hc_parse *p, const char *what, const char *arg)
{
    modmta_err_set(p->err_r, NULL, "%s:%u: %s%s", p->path, p->line, what,
                   arg != NULL ? arg : "");
    return MODMTA_E_CONFIG;
}

/* Parse "/pattern/flags" at *sp into r->re; *sp moves past the flags. */
static int
hc_pattern(struct hc_parse *p, char **sp, struct hc_rule *r)
{
    char *s = *sp, delim, *end;
    int cflags = REG_EXTENDED | REG_ICASE, e;
    char msg[128];

    if (*s == '!') {
        r->negate = 1;
        s++;
    }
    delim = *s;
    if (delim == '\0' || !ispunct((unsigned char)delim) || delim == '\\')
        return hc_fail(p, "expected a pattern such as /text/", NULL);
    for (end = s + 1; *end != '\0' && *end != delim; end++)
        if (*end == '\\' && end[1] != '\0')
            end++;
    if (*end != delim)
        return hc_fail(p, "missing the closing delimiter of the pattern",
                       NULL);
    *end++ = '\0';
    for (; *end != '\0' && !isspace((unsigned char)*end); end++) {
        if (*end == 'i')
            cflags ^= REG_ICASE;
        else if (*end == 'x')
            cflags ^= REG_EXTENDED;
        else if (*end == 'm')
            cflags ^= REG_NEWLINE;
        else
            return hc_fail(p, "unknown pattern flag (i, x or m): ",
                           (char[]){ *end, '\0' });
    }
    e = regcomp(&r->re, s + 1, cflags);
    if (e != 0) {
        regerror(e, NULL, msg, sizeof(msg));
        return hc_fail(p, "bad regular expression: ", msg);
    }
    while (isspace((unsigned char)*end))
        end++;
    *sp = end;
    return 0;
}

/* Every $ of text is $$, $N or ${N} with N a group of r's pattern
 * (none for a negated one). */
static int
hc_check_refs(struct hc_parse *p, const struct hc_rule *r)
{
    for (const char *s = r->text; (s = strchr(s, '$')) != NULL; ) {
        unsigned long n;
        char *end;
        int brace = s[1] == '{';

        if (s[1] == '$') {
            s += 2;
            continue;
        }
        if (!isdigit((unsigned char)s[1 + brace]))
            return hc_fail(p, "a $ must be $$, $N or ${N}", NULL);
        n = strtoul(s + 1 + brace, &end, 10);
        if (brace && *end++ != '}')
            return hc_fail(p, "missing } after ${N", NULL);
        if (r->negate || n == 0 || n > r->re.re_nsub || n > 9)
            return hc_fail(p, "no such group in the pattern: $", s + 1);
        s = end;
    }
    return 0;
}

/* "ACTION text" into r. */
static int
hc_action(struct hc_parse *p, char *s, struct hc_rule *r)
{
    size_t len = strcspn(s, " \t");
    char word[16];

    if (len == 0)
        return hc_fail(p, "missing the action after the pattern", NULL);
    snprintf(word, sizeof(word), "%.*s", (int)(len < 15 ? len : 15), s);
    for (s += len; isspace((unsigned char)*s); s++)
        ;
    r->text = strdup(s);
    if (r->text == NULL)
        return hc_fail(p, "out of memory", NULL);
    if (len == 3 && (word[0] == '4' || word[0] == '5') &&
        isdigit((unsigned char)word[1]) && isdigit((unsigned char)word[2])) {
        r->action = HC_REJECT;
        r->code = atoi(word);
        return hc_check_refs(p, r);
    }
    for (size_t i = 0; i < sizeof(hc_actions) / sizeof(hc_actions[0]); i++) {
        if (len != strlen(hc_actions[i].name) ||
            strncasecmp(word, hc_actions[i].name, len) != 0)
            continue;
        if (hc_actions[i].headers_only && p->file == HC_FILE_BODY)
            return hc_fail(p, "not possible in body_checks (a module "
                           "cannot edit the body): ", hc_actions[i].name);
        r->action = hc_actions[i].action;
        r->code = 550;
        if ((r->action == HC_PREPEND || r->action == HC_REPLACE) &&
            strchr(r->text, ':') == NULL)
            return hc_fail(p, "expected a header \"Name: value\" after ",
                           hc_actions[i].name);
        return hc_check_refs(p, r);
    }
    for (size_t i = 0; hc_unsupported[i] != NULL; i++)
        if (strcasecmp(word, hc_unsupported[i]) == 0)
            return hc_fail(p, "action not supported by this plugin: ",
                           word);
    return hc_fail(p, "unknown action: ", word);
}

/* 1 if s is the keyword kw (any case) followed by white space or the
 * end. */
static int
hc_keyword(const char *s, const char *kw)
{
    size_t n = strlen(kw);

    return strncasecmp(s, kw, n) == 0 &&
           (s[n] == '\0' || isspace((unsigned char)s[n]));
}

static struct hc_rule *
hc_rule_new(struct hc_parse *p)
{
    struct hc_table *t = p->t;
    struct hc_rule *rules = realloc(t->rules, (t->n + 1) * sizeof(*rules));

    if (rules == NULL)
        return NULL;
    t->rules = rules;
    memset(&rules[t->n], 0, sizeof(rules[0]));
    rules[t->n].line = p->line;
    return &rules[t->n++];
}

/* One logical line (comments and blank lines already skipped). */
static int
hc_line(struct hc_parse *p, char *s)
{
    struct hc_rule *r = hc_rule_new(p);
    int is_if = hc_keyword(s, "if");

    if (r == NULL)
        return hc_fail(p, "out of memory", NULL);
    if (hc_keyword(s, "endif")) {
        r->kind = HC_ENDIF;
        if (s[5] != '\0')
            return hc_fail(p, "text after endif", NULL);
        if (p->nopen == 0)
            return hc_fail(p, "endif without if", NULL);
        p->t->rules[p->open[--p->nopen]].endif = p->t->n - 1;
        return 0;
    }
    r->kind = is_if ? HC_IF : HC_MATCH;
    r->text = NULL;
    if (is_if)
        for (s += 2; isspace((unsigned char)*s); s++)
            ;
    /* the pattern is compiled once hc_pattern returns 0 */
    if (hc_pattern(p, &s, r) < 0) {
        p->t->n--;
        return MODMTA_E_CONFIG;
    }
    if (!is_if)
        return hc_action(p, s, r);
    if (*s != '\0')
        return hc_fail(p, "text after the pattern of if", NULL);
    if (p->nopen == HC_NESTING_MAX)
        return hc_fail(p, "if nested too deep", NULL);
    p->open[p->nopen++] = p->t->n - 1;
    return 0;
}

/* Read the next logical line into *buf: a line and the lines starting
 * with white space after it, comments and blank lines skipped. 1, 0 at
 * the end, MODMTA_E_CONFIG or MODMTA_E_NOMEM. */
static int
hc_read_logical(FILE *f, struct hc_parse *p, unsigned *lineno, char **buf,
                size_t *blen, char **line, size_t *llen)
{
    size_t used = 0, lead;
    ssize_t n;
    int c;

    for (;;) {
        /* a line starting with white space continues this one */
        if (used > 0) {
            c = getc(f);
            if (c != EOF)
                ungetc(c, f);
            if (c != ' ' && c != '\t')
                return 1;
        }
        n = getline(line, llen, f);
        if (n < 0)
            break;
        ++*lineno;
        while (n > 0 && isspace((unsigned char)(*line)[n - 1]))
            (*line)[--n] = '\0';
        lead = strspn(*line, " \t");
        if ((*line)[lead] == '\0' || (*line)[lead] == '#')
            continue;
        if (used == 0) {
            p->line = *lineno;
            if (lead > 0)
                return hc_fail(p, "continuation line without a line "
                               "before it", NULL);
        }
        if (used + (size_t)n + 1 > *blen) {
            char *nb = realloc(*buf, used + (size_t)n + 1);

            if (nb == NULL)
                return MODMTA_E_NOMEM;
            *buf = nb;
            *blen = used + (size_t)n + 1;
        }
        memcpy(*buf + used, *line, (size_t)n + 1);
        used += (size_t)n;
    }
    return used > 0;
}

void *
hc_table_load(FILE *f, const char *path, void *arg, modmta_err *err_r)
{
    struct hc_parse p = { .path = path, .file = *(enum hc_file *)arg,
                          .err_r = err_r };
    char *buf = NULL, *line = NULL;
    size_t blen = 0, llen = 0;
    unsigned lineno = 0;
    int r;

    p.t = calloc(1, sizeof(*p.t));
    if (p.t == NULL) {
        modmta_err_set(err_r, NULL, "%s: out of memory", path);
        return NULL;
    }
    while ((r = hc_read_logical(f, &p, &lineno, &buf, &blen, &line,
                                &llen)) > 0)
        if ((r = hc_line(&p, buf)) < 0)
            break;
    if (r == 0 && ferror(f))
        r = hc_fail(&p, "read error", NULL);
    if (r == 0 && p.nopen > 0) {
        p.line = p.t->rules[p.open[p.nopen - 1]].line;
        r = hc_fail(&p, "if without endif", NULL);
    }
    if (r == MODMTA_E_NOMEM)
        hc_fail(&p, "out of memory", NULL);
    free(buf);
    free(line);
    if (r < 0) {
        hc_table_free(p.t);
        return NULL;
    }
    return p.t;
}

void
hc_table_free(void *table)
{
    struct hc_table *t = table;

    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        if (t->rules[i].kind != HC_ENDIF)
            regfree(&t->rules[i].re);
        free(t->rules[i].text);
    }
    free(t->rules);
    free(t);
}
