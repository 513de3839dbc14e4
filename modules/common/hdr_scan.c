/*
 * Header-section scanning for the local stores (see hdr_scan.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <modmta/err.h>

#include "hdr_scan.h"

/* A header longer than this is cut: the rest cannot matter. */
#define HDR_SCAN_MAX 65536

size_t
hdr_scan_chomp(const char *line, size_t n)
{
    if (n > 0 && line[n - 1] == '\n')
        n--;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    return n;
}

/* 1 if value (a header value, unfolded) names addr, with or without
 * angle brackets and surrounding white space. */
static int
hdr_scan_names(const char *value, size_t n, const char *addr)
{
    size_t alen = strlen(addr);

    while (n > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        n--;
    }
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t' ||
                     value[n - 1] == '\r' || value[n - 1] == '\n'))
        n--;
    if (n >= 2 && value[0] == '<' && value[n - 1] == '>') {
        value++;
        n -= 2;
    }
    return n == alen && strncasecmp(value, addr, n) == 0;
}

static int
hdr_scan_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* 1 if value holds "id QUEUEID" as words (the core's Received header). */
static int
hdr_scan_has_id(const char *value, size_t n, const char *qid)
{
    size_t qlen = strlen(qid), i, j;

    for (i = 0; i + 2 < n; i++) {
        if ((i > 0 && !hdr_scan_is_space(value[i - 1])) ||
            strncasecmp(value + i, "id", 2) != 0 ||
            !hdr_scan_is_space(value[i + 2]))
            continue;
        for (j = i + 2; j < n && hdr_scan_is_space(value[j]); j++)
            ;
        if (n - j >= qlen && memcmp(value + j, qid, qlen) == 0 &&
            (j + qlen == n || hdr_scan_is_space(value[j + qlen]) ||
             value[j + qlen] == ';' || value[j + qlen] == ')'))
            return 1;
    }
    return 0;
}

void
hdr_scan_flush(hdr_scan *sc)
{
    const char *colon;
    size_t nlen;

    if (sc->hdr_len == 0)
        return;
    colon = memchr(sc->hdr, ':', sc->hdr_len);
    if (colon != NULL) {
        const char *value = colon + 1;
        size_t vlen = sc->hdr_len - (size_t)(value - sc->hdr);

        nlen = (size_t)(colon - sc->hdr);
        while (nlen > 0 && (sc->hdr[nlen - 1] == ' ' ||
                            sc->hdr[nlen - 1] == '\t'))
            nlen--;
        if (nlen == 12 && strncasecmp(sc->hdr, "Delivered-To", 12) == 0 &&
            hdr_scan_names(value, vlen, sc->rcpt))
            sc->saw_rcpt = 1;
        if (sc->queue_id != NULL &&
            hdr_scan_has_id(value, vlen, sc->queue_id))
            sc->saw_id = 1;
    }
    sc->hdr_len = 0;
}

static int
hdr_scan_add(hdr_scan *sc, const char *s, size_t n)
{
    if (sc->hdr_len + n > HDR_SCAN_MAX)
        n = HDR_SCAN_MAX - sc->hdr_len;
    if (sc->hdr_len + n > sc->hdr_cap) {
        size_t cap = sc->hdr_len + n + 256;
        char *p = realloc(sc->hdr, cap);

        if (p == NULL)
            return MODMTA_E_NOMEM;
        sc->hdr = p;
        sc->hdr_cap = cap;
    }
    memcpy(sc->hdr + sc->hdr_len, s, n);
    sc->hdr_len += n;
    return 0;
}

int
hdr_scan_line(hdr_scan *sc, const char *line, size_t n)
{
    if (n == 0) {
        hdr_scan_flush(sc);
        return 1;
    }
    if (line[0] == ' ' || line[0] == '\t') {
        if (sc->hdr_len == 0)
            return 0; /* continuation of nothing */
        return hdr_scan_add(sc, line, n);
    }
    hdr_scan_flush(sc);
    return hdr_scan_add(sc, line, n);
}

int
hdr_scan_has_loop(const char *message, const char *rcpt)
{
    hdr_scan sc = { .rcpt = rcpt };
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    FILE *in = fopen(message, "re");

    if (in == NULL)
        return MODMTA_E_IO;
    while (rc == 0 && (n = getline(&line, &cap, in)) > 0)
        rc = hdr_scan_line(&sc, line, hdr_scan_chomp(line, (size_t)n));
    /* getline() failing for want of memory sets no error flag: short of
     * the end is an error too, not a shorter file */
    if (rc == 0 && (ferror(in) || !feof(in)))
        rc = MODMTA_E_IO;
    if (rc == 0)
        hdr_scan_flush(&sc); /* no blank line before EOF */
    free(line);
    free(sc.hdr);
    fclose(in);
    return rc < 0 ? rc : sc.saw_rcpt;
}
