/*
 * store_maildir: unique names with a delivery token (maildir_name.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildir_name.h"

#define MAILDIR_QID_KEEP 64

int
maildir_name_token(const char *queue_id, const char *rcpt, char *out,
                   size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    char qid[MAILDIR_QID_KEEP + 1];
    size_t i;
    int n;

    for (; *rcpt != '\0'; rcpt++) {
        h ^= (unsigned char)tolower((unsigned char)*rcpt);
        h *= 1099511628211ULL;
    }
    for (i = 0; queue_id[i] != '\0' && i < MAILDIR_QID_KEEP; i++)
        qid[i] = isalnum((unsigned char)queue_id[i]) ? queue_id[i] : '_';
    qid[i] = '\0';
    n = snprintf(out, len, "Q%sR%016llx", qid, (unsigned long long)h);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
maildir_name_unique(const struct timeval *tv, pid_t pid, const char *token,
                    const char *host, char *out, size_t len)
{
    size_t used;
    int n;

    n = snprintf(out, len, "%lld.M%06ldP%ld%s.", (long long)tv->tv_sec,
                 (long)tv->tv_usec, (long)pid, token);
    if (n < 0 || (size_t)n >= len)
        return -1;
    used = (size_t)n;
    for (; *host != '\0'; host++) {
        unsigned char c = (unsigned char)*host;

        if (isalnum(c) || c == '-' || c == '.')
            n = snprintf(out + used, len - used, "%c", c);
        else
            n = snprintf(out + used, len - used, "\\%03o", c);
        if (n < 0 || (size_t)n >= len - used)
            return -1;
        used += (size_t)n;
    }
    return 0;
}

int
maildir_name_final(const char *base, long long size, long long vsize,
                   char *out, size_t len)
{
    int n = snprintf(out, len, "%s,S=%lld,W=%lld", base, size, vsize);

    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
maildir_name_has_token(const char *name, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = name;

    while ((p = strstr(p, token)) != NULL) {
        const char *q = p;

        /* "P<digits>" right before it, '.' right after it */
        while (q > name && isdigit((unsigned char)q[-1]))
            q--;
        if (p[tlen] == '.' && q < p && q > name && q[-1] == 'P')
            return 1;
        p++;
    }
    return 0;
}

long long
maildir_name_size(const char *name)
{
    const char *end = strchr(name, ':'), *p = name;
    long long v;
    char *e;

    if (end == NULL)
        end = name + strlen(name);
    while ((p = strstr(p, ",S=")) != NULL && p < end) {
        p += 3;
        if (!isdigit((unsigned char)*p))
            continue;
        errno = 0;
        v = strtoll(p, &e, 10);
        if ((e == end || *e == ',') && errno == 0)
            return v;
    }
    return -1;
}

int
maildir_folder_name(const char *ext, char *out)
{
    size_t i;

    for (i = 0; ext[i] != '\0'; i++) {
        char c = ext[i];

        if (i >= MAILDIR_FOLDER_MAX)
            return 0;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') &&
                 c != '-' && c != '_')
            return 0;
        out[i] = c;
    }
    out[i] = '\0';
    /* INBOX is the Maildir itself, in any case (IMAP's rule): never
     * a folder ".inbox" beside it */
    return i > 0 && strcmp(out, "inbox") != 0;
}
