/*
 * passdb "saslauthd:PATH": ask Cyrus saslauthd over its UNIX socket.
 *
 * The wire protocol: the client sends four counted strings (login,
 * password, service, realm), each a 16-bit big-endian length followed by
 * the octets; saslauthd answers one counted string starting with "OK" or
 * "NO", then closes. One connection per request, with a timeout, so a
 * stuck saslauthd is a temporary failure.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <modmta/log.h>
#include <modmta/passdb.h>

#include "passdb_priv.h"

#define SASLAUTHD_TIMEOUT_MS 10000
#define SASLAUTHD_FIELD_MAX 1024 /* what saslauthd reads per field */

struct passdb_saslauthd {
    struct sockaddr_un sa;
    char service[32];
};

static void *saslauthd_open(const char *arg, const char *json_path,
                            modmta_err *err_r);
static int saslauthd_verify(void *state, const char *user,
                            const char *password, size_t len);
static void saslauthd_close(void *state);

const modmta_passdb_backend passdb_saslauthd_backend = {
    .type = "saslauthd",
    .open = saslauthd_open,
    .verify = saslauthd_verify,
    .close = saslauthd_close,
};

static void *
saslauthd_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    struct passdb_saslauthd *p = calloc(1, sizeof(*p));
    struct stat st;
    int n;

    if (p == NULL) {
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    /* A directory (saslauthd's -m) holds the socket "mux". */
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode))
        n = snprintf(p->sa.sun_path, sizeof(p->sa.sun_path), "%s/mux", arg);
    else
        n = snprintf(p->sa.sun_path, sizeof(p->sa.sun_path), "%s", arg);
    if (arg[0] != '/' || n < 0 || (size_t)n >= sizeof(p->sa.sun_path)) {
        modmta_err_set(err_r, json_path, "saslauthd: need an absolute "
                       "socket path shorter than %zu octets",
                       sizeof(p->sa.sun_path));
        free(p);
        return NULL;
    }
    p->sa.sun_family = AF_UNIX;
    snprintf(p->service, sizeof(p->service), "smtp");
    return p;
}

static long
saslauthd_ms_left(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline->tv_sec - now.tv_sec) * 1000
           + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Wait for fd to be ready for events; 0 or MODMTA_E_TEMP. */
static int
saslauthd_wait(int fd, short events, const struct timespec *deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    long left;
    int r;

    do {
        left = saslauthd_ms_left(deadline);
        if (left <= 0)
            return MODMTA_E_TEMP;
        r = poll(&pfd, 1, (int)left);
    } while (r < 0 && errno == EINTR);
    return r == 1 ? 0 : MODMTA_E_TEMP;
}

static int
saslauthd_send(int fd, const unsigned char *buf, size_t len,
               const struct timespec *deadline)
{
    ssize_t n;

    while (len > 0) {
        if (saslauthd_wait(fd, POLLOUT, deadline) < 0)
            return MODMTA_E_TEMP;
        n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return MODMTA_E_TEMP;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
saslauthd_recv(int fd, unsigned char *buf, size_t len,
               const struct timespec *deadline)
{
    ssize_t n;

    while (len > 0) {
        if (saslauthd_wait(fd, POLLIN, deadline) < 0)
            return MODMTA_E_TEMP;
        n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return MODMTA_E_TEMP;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Append a counted string; 0 or MODMTA_E_INVAL when too long. */
static int
saslauthd_put(unsigned char *buf, size_t *off, const char *s, size_t len)
{
    if (len > SASLAUTHD_FIELD_MAX)
        return MODMTA_E_INVAL;
    buf[(*off)++] = (unsigned char)(len >> 8);
    buf[(*off)++] = (unsigned char)(len & 0xff);
    memcpy(buf + *off, s, len);
    *off += len;
    return 0;
}

/* The request for user "login@realm" (or "login"); length or <0. */
static long
saslauthd_request(const struct passdb_saslauthd *p, const char *user,
                  const char *password, size_t len, unsigned char *buf)
{
    const char *at = strrchr(user, '@');
    size_t off = 0, ulen = at != NULL ? (size_t)(at - user) : strlen(user);
    const char *realm = at != NULL ? at + 1 : "";

    if (saslauthd_put(buf, &off, user, ulen) < 0
        || saslauthd_put(buf, &off, password, len) < 0
        || saslauthd_put(buf, &off, p->service, strlen(p->service)) < 0
        || saslauthd_put(buf, &off, realm, strlen(realm)) < 0)
        return MODMTA_E_INVAL;
    return (long)off;
}

static int
saslauthd_exchange(const struct passdb_saslauthd *p, const unsigned char *req,
                   size_t reqlen, char *answer, size_t cap)
{
    struct timespec deadline;
    unsigned char hdr[2];
    size_t n;
    int fd, rc = MODMTA_E_TEMP;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += SASLAUTHD_TIMEOUT_MS / 1000;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return MODMTA_E_TEMP;
    if (connect(fd, (const struct sockaddr *)&p->sa, sizeof(p->sa)) < 0) {
        modmta_logf(MODMTA_LOG_WARN, "passdb: saslauthd %s: %s",
                    p->sa.sun_path, strerror(errno));
        goto out;
    }
    if (saslauthd_send(fd, req, reqlen, &deadline) < 0
        || saslauthd_recv(fd, hdr, 2, &deadline) < 0)
        goto out;
    n = ((size_t)hdr[0] << 8) | hdr[1];
    if (n >= cap || saslauthd_recv(fd, (unsigned char *)answer, n,
                                   &deadline) < 0)
        goto out;
    answer[n] = '\0';
    rc = 0;
out:
    close(fd);
    return rc;
}

static int
saslauthd_verify(void *state, const char *user, const char *password,
                 size_t len)
{
    const struct passdb_saslauthd *p = state;
    unsigned char req[4 * (SASLAUTHD_FIELD_MAX + 2)];
    char answer[1024];
    long reqlen = saslauthd_request(p, user, password, len, req);
    int rc;

    if (reqlen < 0)
        return 0; /* longer than saslauthd accepts: cannot be right */
    rc = saslauthd_exchange(p, req, (size_t)reqlen, answer, sizeof(answer));
    memset(req, 0, sizeof(req));
    if (rc < 0)
        return MODMTA_E_TEMP;
    if (strncmp(answer, "OK", 2) == 0)
        return 1;
    if (strncmp(answer, "NO", 2) == 0)
        return 0;
    modmta_logf(MODMTA_LOG_WARN, "passdb: saslauthd %s: unexpected answer",
                p->sa.sun_path);
    return MODMTA_E_TEMP;
}

static void
saslauthd_close(void *state)
{
    free(state);
}
