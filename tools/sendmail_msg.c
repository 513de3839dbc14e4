/*
 * The message as sendmail(8) edits it before submission: reading stdin,
 * the header block, -t's recipients, Bcc removal, added fields.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sendmail.h"

static int
sm_reserve(struct sm_buf *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 8192;
    char *p;

    if (b->len + more + 1 <= b->cap)
        return 0;
    while (cap < b->len + more + 1)
        cap *= 2;
    if ((p = realloc(b->p, cap)) == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int
sm_append(struct sm_buf *b, const char *p, size_t n)
{
    if (sm_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* What the daemon's SMTP session would refuse (554 5.5.0), made
 * acceptable as sendmail programs do: a bare CR (an old Mac line end)
 * becomes a line end, a NUL is dropped. Returns the new length. */
static size_t
sm_clean_line(char *p, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\0')
            continue;
        p[o++] = p[i] == '\r' ? '\n' : p[i];
    }
    return o;
}

int
sm_read_message(FILE *in, int ignore_dots, long long max, struct sm_buf *b)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int first = 1, rc = 0;

    while ((n = getline(&line, &cap, in)) > 0) {
        size_t body = (size_t)n;

        /* Lines end in LF here; the CRs before it are dropped. */
        if (line[body - 1] == '\n')
            body--;
        while (body > 0 && line[body - 1] == '\r')
            body--;
        if (!ignore_dots && body == 1 && line[0] == '.')
            break;
        if (first && body >= 5 && memcmp(line, "From ", 5) == 0) {
            first = 0;
            continue;
        }
        first = 0;
        if (max > 0 && (long long)(b->len + body + 1) > max) {
            rc = -2;
            break;
        }
        body = sm_clean_line(line, body);
        if (sm_append(b, line, body) < 0 || sm_append(b, "\n", 1) < 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    /* getline() failing for want of memory sets no error flag: a message
     * cut short there must not be sent as if it had ended */
    if (rc == 0 && n < 0 && (ferror(in) || !feof(in)))
        rc = -3;
    if (rc == 0 && b->p == NULL && sm_append(b, "", 0) < 0)
        rc = -1;
    return rc;
}

size_t
sm_header_len(const char *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        const char *nl = memchr(p + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - p) + 1 : len;

        if (end - i == 1)           /* the empty line */
            return end;
        i = end;
    }
    return len;
}

/* The field starting at hdr[i] is called name: its value's offset. */
static int
sm_field_is(const char *hdr, size_t i, size_t len, const char *name,
            size_t *value_r)
{
    size_t n = strlen(name);

    if (i + n >= len || strncasecmp(hdr + i, name, n) != 0)
        return 0;
    for (i += n; i < len && (hdr[i] == ' ' || hdr[i] == '\t'); i++)
        ;
    if (i >= len || hdr[i] != ':')
        return 0;
    *value_r = i + 1;
    return 1;
}

/* The end of the field starting at i: past its continuation lines. */
static size_t
sm_field_end(const char *hdr, size_t i, size_t len)
{
    for (;;) {
        const char *nl = memchr(hdr + i, '\n', len - i);

        if (nl == NULL)
            return len;
        i = (size_t)(nl - hdr) + 1;
        if (i >= len || (hdr[i] != ' ' && hdr[i] != '\t'))
            return i;
    }
}

char *
sm_qualify(const char *addr, const char *domain)
{
    char *s;

    if (strchr(addr, '@') != NULL || domain == NULL || addr[0] == '\0')
        return strdup(addr);
    if (asprintf(&s, "%s@%s", addr, domain) < 0)
        return NULL;
    return s;
}

static int
sm_push(char ***list, size_t *n, const char *a, size_t alen,
        const char *domain)
{
    char *raw, *q, **p;

    while (alen > 0 && isspace((unsigned char)*a))
        a++, alen--;
    while (alen > 0 && isspace((unsigned char)a[alen - 1]))
        alen--;
    if (alen == 0)
        return 0;
    if ((raw = strndup(a, alen)) == NULL)
        return -1;
    q = sm_qualify(raw, domain);
    free(raw);
    if (q == NULL || (p = realloc(*list, (*n + 1) * sizeof(*p))) == NULL) {
        free(q);
        return -1;
    }
    p[(*n)++] = q;
    *list = p;
    return 0;
}

/* An address list (RFC 5322 3.4) of one field's value: each mailbox's
 * address — the part in <> if any, else the words outside comments
 * and quotes; a group's name (before ':') is dropped. */
static int
sm_parse_list(const char *v, size_t len, const char *domain, char ***list,
              size_t *n)
{
    char word[1024];
    size_t wl = 0, i;
    int angle = 0, have_angle = 0;
    char addr[1024];
    size_t al = 0;

    for (i = 0; i <= len; i++) {
        char c = i < len ? v[i] : ',';

        if (c == '"' && !angle) {
            for (i++; i < len && v[i] != '"'; i++)
                if (v[i] == '\\')
                    i++;
            continue;
        }
        if (c == '(') {
            int depth = 1;

            for (i++; i < len && depth > 0; i++)
                depth += v[i] == '(' ? 1 : v[i] == ')' ? -1 : 0;
            i--;
            continue;
        }
        if (c == '<') {
            angle = have_angle = 1;
            al = 0;
        } else if (c == '>') {
            angle = 0;
        } else if (angle) {
            if (al < sizeof(addr) - 1)
                addr[al++] = c;
        } else if (c == ':') {
            wl = 0;                     /* a group's name */
        } else if (c == ',' || c == ';') {
            int rc = have_angle ? sm_push(list, n, addr, al, domain)
                                : sm_push(list, n, word, wl, domain);
            if (rc < 0)
                return -1;
            wl = al = 0;
            have_angle = 0;
        } else if (c != '\n' && c != '\r' && wl < sizeof(word) - 1) {
            word[wl++] = c == '\t' ? ' ' : c;
        }
    }
    return 0;
}

int
sm_extract_rcpts(const char *hdr, size_t len, const char *domain,
                 char ***list, size_t *n)
{
    static const char *const fields[] = {"To", "Cc", "Bcc", NULL};
    size_t i = 0;

    while (i < len && hdr[i] != '\n') {
        size_t end = sm_field_end(hdr, i, len), v;

        for (int f = 0; fields[f] != NULL; f++)
            if (sm_field_is(hdr, i, len, fields[f], &v) &&
                sm_parse_list(hdr + v, end - v, domain, list, n) < 0)
                return -1;
        i = end;
    }
    return 0;
}

void
sm_remove_field(struct sm_buf *b, const char *name)
{
    size_t hlen = sm_header_len(b->p, b->len), i = 0, v;

    while (i < hlen && b->p[i] != '\n') {
        size_t end = sm_field_end(b->p, i, hlen);

        if (sm_field_is(b->p, i, hlen, name, &v)) {
            memmove(b->p + i, b->p + end, b->len - end + 1);
            b->len -= end - i;
            hlen -= end - i;
            continue;
        }
        i = end;
    }
}

int
sm_has_field(const struct sm_buf *b, const char *name)
{
    size_t hlen = sm_header_len(b->p, b->len), i = 0, v;

    while (i < hlen && b->p[i] != '\n') {
        if (sm_field_is(b->p, i, hlen, name, &v))
            return 1;
        i = sm_field_end(b->p, i, hlen);
    }
    return 0;
}

int
sm_prepend(struct sm_buf *b, const char *text)
{
    size_t n = strlen(text);

    if (sm_reserve(b, n) < 0)
        return -1;
    memmove(b->p + n, b->p, b->len + 1);
    memcpy(b->p, text, n);
    b->len += n;
    return 0;
}
