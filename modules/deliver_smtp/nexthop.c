/* Next hops: see nexthop.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexthop.h"
#include "smtpc.h"

static int
nexthop_fail(char *why, size_t len, const char *fmt, const char *s)
{
    snprintf(why, len, fmt, s);
    return -1;
}

/* A host name or an address literal's inside: letters, digits, '.', '-',
 * '_', ':' (IPv6), no spaces or controls. */
static int
nexthop_host_ok(const char *s, size_t n, int literal)
{
    if (n == 0 || n >= NEXTHOP_HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!isalnum(c) && c != '.' && c != '-' && c != '_' &&
            !(literal && c == ':'))
            return 0;
    }
    return 1;
}

static int
nexthop_port(const char *s, int *port)
{
    char *end;
    long p;

    if (*s < '0' || *s > '9')
        return -1;
    p = strtol(s, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

/* "[host]:port", "[host]", "host:port", "host" or "" into nh. */
static int
nexthop_inet(const char *s, int brackets_mean_no_mx, struct nexthop *nh,
             char *why, size_t len)
{
    const char *end, *colon;
    size_t n;

    nh->mx = 1;
    if (*s == '\0')
        return 0;
    if (*s == '[') {
        if ((end = strchr(s, ']')) == NULL)
            return nexthop_fail(why, len, "\"%s\": no closing ']'", s);
        n = (size_t)(end - s - 1);
        if (!nexthop_host_ok(s + 1, n, 1))
            return nexthop_fail(why, len, "\"%s\": not a host", s);
        memcpy(nh->host, s + 1, n);
        nh->host[n] = '\0';
        nh->mx = !brackets_mean_no_mx;
        s = end + 1;
        if (*s == '\0')
            return 0;
        if (*s != ':' || nexthop_port(s + 1, &nh->port) < 0)
            return nexthop_fail(why, len, "\"%s\": expected :port after "
                                "the host", s);
        return 0;
    }
    colon = strrchr(s, ':');
    n = colon != NULL ? (size_t)(colon - s) : strlen(s);
    if (!nexthop_host_ok(s, n, 0))
        return nexthop_fail(why, len, "\"%s\": not a host name (an IPv6 "
                            "address goes in brackets)", s);
    memcpy(nh->host, s, n);
    nh->host[n] = '\0';
    if (colon != NULL && nexthop_port(colon + 1, &nh->port) < 0)
        return nexthop_fail(why, len, "\"%s\": bad port", s);
    return 0;
}

static int
nexthop_error(const char *s, struct nexthop *nh, char *why, size_t len)
{
    /* "5.1.2 text" or "4.4.1 text": an enhanced status code first */
    size_t n = s[0] == '4' || s[0] == '5'
                   ? smtpc_esc_len(s, strlen(s), (s[0] - '0') * 100)
                   : 0;

    if (n == 0 || n >= sizeof(nh->esc))
        return nexthop_fail(why, len, "error:%s: expected an enhanced "
                            "status code (\"5.1.2 text\")", s);
    memcpy(nh->esc, s, n);
    nh->esc[n] = '\0';
    s += n;
    while (*s == ' ')
        s++;
    snprintf(nh->text, sizeof(nh->text), "%s",
             *s ? s : "delivery refused by the transport table");
    for (char *p = nh->text; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    return 0;
}

/* A socket path that can stand in a destination string: absolute,
 * printable, no spaces, room for the NUL in sun_path. */
static int
nexthop_path_ok(const char *p)
{
    if (p[0] != '/' || strlen(p) >= NEXTHOP_PATH_MAX)
        return 0;
    for (; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p == 0x7f)
            return 0;
    return 1;
}

int
nexthop_parse(const char *s, int bare, struct nexthop *nh, char *why,
              size_t len)
{
    memset(nh, 0, sizeof(*nh));
    if (strcmp(s, "local") == 0) {
        nh->kind = NEXTHOP_LOCAL;
        return 0;
    }
    if (strncmp(s, "error:", 6) == 0) {
        nh->kind = NEXTHOP_ERROR;
        return nexthop_error(s + 6, nh, why, len);
    }
    if (strncmp(s, "lmtp:unix:", 10) == 0) {
        nh->kind = NEXTHOP_LMTP_UNIX;
        if (!nexthop_path_ok(s + 10))
            return nexthop_fail(why, len, "\"%s\": expected an absolute "
                                "socket path of at most 107 octets, "
                                "without spaces", s);
        snprintf(nh->path, sizeof(nh->path), "%s", s + 10);
        return 0;
    }
    if (strncmp(s, "lmtp:inet:", 10) == 0) {
        nh->kind = NEXTHOP_LMTP_INET;
        if (nexthop_inet(s + 10, 0, nh, why, len) < 0)
            return -1;
        if (nh->host[0] == '\0' || nh->port == 0)
            return nexthop_fail(why, len, "\"%s\": expected "
                                "lmtp:inet:host:port", s);
        nh->mx = 0;
        return 0;
    }
    if (strcmp(s, "smtp") == 0)
        s = "smtp:";
    if (strncmp(s, "smtp:", 5) == 0)
        s += 5;
    else if (!bare)
        return nexthop_fail(why, len, "\"%s\": expected smtp:..., "
                            "lmtp:inet:..., lmtp:unix:..., error:... or "
                            "local", s);
    nh->kind = NEXTHOP_SMTP;
    return nexthop_inet(s, 1, nh, why, len);
}

int
nexthop_format(const struct nexthop *nh, const char *domain, char *buf,
               size_t len)
{
    const char *host = nh->host[0] ? nh->host : domain;
    int n;

    switch (nh->kind) {
    case NEXTHOP_LMTP_UNIX:
        n = snprintf(buf, len, "lmtp:unix:%s", nh->path);
        break;
    case NEXTHOP_LMTP_INET:
        n = strchr(host, ':') != NULL
                ? snprintf(buf, len, "lmtp:inet:[%s]:%d", host, nh->port)
                : snprintf(buf, len, "lmtp:inet:%s:%d", host, nh->port);
        break;
    case NEXTHOP_SMTP:
        if (!nh->mx)
            n = nh->port ? snprintf(buf, len, "[%s]:%d", host, nh->port)
                         : snprintf(buf, len, "[%s]", host);
        else
            n = nh->port ? snprintf(buf, len, "%s:%d", host, nh->port)
                         : snprintf(buf, len, "%s", host);
        break;
    default:
        return -1;
    }
    return n < 0 || (size_t)n >= len ? -1 : 0;
}
