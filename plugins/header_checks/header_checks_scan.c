/*
 * header_checks_scan: the lines a table is applied to. Headers one
 * logical header at a time, "Name: value" with a folded header's line
 * breaks as newlines (Postfix's form: the m flag makes ^ and $ match at
 * them); body lines without their CRLF, up to body_checks_size_limit
 * octets of body, as Postfix's body_checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "header_checks_scan.h"

/* "Name: value", CRLF as LF. NULL when out of memory. */
static char *
hc_scan_line(const char *name, const char *value)
{
    size_t nl = strlen(name), n = nl + 2;
    char *s = malloc(nl + strlen(value) + 3);

    if (s == NULL)
        return NULL;
    memcpy(s, name, nl);
    memcpy(s + nl, ": ", 2);
    for (; *value != '\0'; value++)
        if (!(value[0] == '\r' && value[1] == '\n'))
            s[n++] = *value;
    s[n] = '\0';
    return s;
}

/* Which header of its name header i is, as modmta_hdr_change counts
 * (deleted ones skipped). */
static size_t
hc_scan_index(modmta_ctx *ctx, size_t i, const char *name)
{
    const char *n, *v;
    size_t idx = 0;

    for (size_t j = 0; j < i; j++)
        if (modmta_hdr_at(ctx, j, &n, &v) == 0 && v != NULL &&
            strcasecmp(n, name) == 0)
            idx++;
    return idx;
}

/* Apply t to line; 1 ends the inspection, 0 goes on, <0 an error. */
static int
hc_scan_one(struct hc_state *st, const struct hc_table *t, const char *what,
            const char *line, const char *hname, size_t hidx)
{
    const struct hc_rule *rule;
    char *text;
    int r = hc_match(t, line, &rule, &text);

    if (r <= 0)
        return r;
    r = hc_act(st, rule, text, what, line, hname, hidx);
    free(text);
    return r;
}

int
hc_scan_headers(struct hc_state *st, const struct hc_table *t)
{
    size_t n = modmta_hdr_count(st->ctx); /* not the ones we add */
    int r = 0;

    for (size_t i = 0; i < n && r == 0; i++) {
        const char *name, *value;
        char *line, *hname;

        if (modmta_hdr_at(st->ctx, i, &name, &value) < 0 || value == NULL)
            continue;
        line = hc_scan_line(name, value);
        hname = line != NULL ? strndup(line, strlen(name)) : NULL;
        if (hname == NULL)
            r = MODMTA_E_NOMEM;
        else
            r = hc_scan_one(st, t, "header", line, hname,
                            hc_scan_index(st->ctx, i, hname));
        free(hname);
        free(line);
    }
    return r;
}

/* Postfix's line_length_limit: a longer body line is inspected in pieces
 * of this size, as Postfix's cleanup breaks it, so no line costs more
 * memory than this whatever the message holds. */
#define HC_BODY_PIECE_MAX 2048

int
hc_scan_body(struct hc_state *st, const struct hc_table *t, long long limit)
{
    const char *path = modmta_message_path(st->ctx);
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    char piece[HC_BODY_PIECE_MAX + 1];
    long long seen = 0;
    int in_body = 0, at_bol = 1, r = 0;

    if (f == NULL) {
        modmta_log(st->ctx, MODMTA_LOG_ERR, "cannot open the message %s",
                   path != NULL ? path : "(none)");
        return MODMTA_E_IO;
    }
    while (r == 0 && seen < limit && fgets(piece, sizeof(piece), f)) {
        size_t n = strlen(piece);
        int eol = n > 0 && piece[n - 1] == '\n';

        if (eol)
            piece[--n] = '\0';
        if (eol && n > 0 && piece[n - 1] == '\r')
            piece[--n] = '\0';
        if (!in_body) {
            /* the empty line that ends the header block starts a line */
            in_body = at_bol && eol && n == 0;
            at_bol = eol;
            continue;
        }
        seen += (long long)n + (eol ? 2 : 0);
        r = hc_scan_one(st, t, "body", piece, NULL, 0);
        at_bol = eol;
    }
    if (r == 0 && ferror(f))
        r = MODMTA_E_IO;
    fclose(f);
    return r;
}
