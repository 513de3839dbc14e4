/*
 * Making a Redis connection (redis_priv.h): our own non-blocking connect
 * with a deadline (hiredis 0.14 would resolve the address with
 * getaddrinfo and leave the socket inheritable by the programs a
 * delivery runs), handed to hiredis as a blocking context; then AUTH and
 * SELECT. With Sentinel, the sentinels are asked in turn for the
 * master's address and the answer is checked with ROLE, so a stale
 * sentinel or an old master that became a replica is never written to.
 * Each sentinel gets its share of the time left (and no more than the
 * connect timeout), so one that hangs cannot keep the others from being
 * asked, and the next connect starts past the last one that failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "redis_priv.h"

static int redis_conn_port(const char *s, in_port_t *port_r);
static int redis_conn_socket(const struct redis_addr *a, long long deadline,
                             char *why, size_t whylen);
static int redis_conn_left(long long deadline);
static redisContext *redis_conn_direct(const struct redis_cfg *cfg,
                                       const struct redis_addr *a,
                                       long long deadline, char *why,
                                       size_t whylen);
static int redis_conn_expect(redisContext *c, int argc, const char **argv,
                             const char *what, const char *want, char *why,
                             size_t whylen);
static int redis_conn_ask(const struct redis_cfg *cfg,
                          const struct redis_addr *sentinel,
                          long long deadline, struct redis_addr *master,
                          char *why, size_t whylen);

long long
redis_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
redis_conn_port(const char *s, in_port_t *port_r)
{
    long n = 0;

    if (*s == '\0' || strlen(s) > 5)
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        n = n * 10 + (*s - '0');
    }
    if (n < 1 || n > 65535)
        return -1;
    *port_r = htons((in_port_t)n);
    return 0;
}

int
redis_conn_parse(const char *s, struct redis_addr *a, char *why,
                 size_t whylen)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
    struct sockaddr_un *su = (struct sockaddr_un *)&a->ss;
    char host[INET6_ADDRSTRLEN];
    const char *end, *port;
    size_t hlen;
    int v6 = s[0] == '[';

    memset(a, 0, sizeof(*a));
    if (strlen(s) >= sizeof(a->text)) {
        snprintf(why, whylen, "too long");
        return -1;
    }
    memcpy(a->text, s, strlen(s) + 1);
    if (s[0] == '/') {
        if (strlen(s) >= sizeof(su->sun_path)) {
            snprintf(why, whylen, "longer than %zu bytes, the limit of a "
                     "socket path", sizeof(su->sun_path) - 1);
            return -1;
        }
        su->sun_family = AF_UNIX;
        memcpy(su->sun_path, s, strlen(s) + 1);
        a->len = sizeof(*su);
        return 0;
    }
    end = v6 ? strchr(s, ']') : strrchr(s, ':');
    if (end == NULL || (v6 && end[1] != ':') ||
        (!v6 && memchr(s, ':', (size_t)(end - s)) != NULL)) {
        snprintf(why, whylen, "expected \"IP:port\", \"[IPv6]:port\" or "
                 "the absolute path of a socket");
        return -1;
    }
    port = v6 ? end + 2 : end + 1;
    hlen = (size_t)(end - s) - (size_t)v6;
    if (hlen == 0 || hlen >= sizeof(host)) {
        snprintf(why, whylen, "expected an IP address before the port");
        return -1;
    }
    memcpy(host, s + v6, hlen);
    host[hlen] = '\0';
    if (redis_conn_port(port, v6 ? &s6->sin6_port : &s4->sin_port) < 0) {
        snprintf(why, whylen, "expected a port from 1 to 65535");
        return -1;
    }
    if (v6 && inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        a->len = sizeof(*s6);
    } else if (!v6 && inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        a->len = sizeof(*s4);
    } else {
        snprintf(why, whylen, "\"%s\" is not an IPv%d address (names are "
                 "never resolved)", host, v6 ? 6 : 4);
        return -1;
    }
    return 0;
}

/* Milliseconds left before deadline, at least 1; 0 when it has passed. */
static int
redis_conn_left(long long deadline)
{
    long long left = deadline - redis_now_ms();

    if (left <= 0)
        return 0;
    return left > 3600000 ? 3600000 : (int)left;
}

/* A connected blocking socket, or -1 with why filled. */
static int
redis_conn_socket(const struct redis_addr *a, long long deadline, char *why,
                  size_t whylen)
{
    struct pollfd p;
    socklen_t len = sizeof(int);
    int fd, err = 0, one = 1, n;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            err = errno;    /* a UNIX socket with a full backlog: EAGAIN */
        } else {
            p.fd = fd;
            p.events = POLLOUT;
            while ((n = poll(&p, 1, redis_conn_left(deadline))) < 0 &&
                   errno == EINTR)
                ;
            if (n == 0)
                err = ETIMEDOUT;
            else if (n < 0 ||
                     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        }
    }
    if (err == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
        err = errno;
    if (err != 0) {
        snprintf(why, whylen, "connect: %s", strerror(err));
        close(fd);
        return -1;
    }
    if (a->ss.ss_family != AF_UNIX)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int
redis_conn_timeout(redisContext *c, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    return redisSetTimeout(c, tv) == REDIS_OK ? 0 : -1;
}

redisReply *
redis_conn_command(redisContext *c, int argc, const char **argv,
                   const size_t *lens, char *why, size_t whylen)
{
    redisReply *reply;

    errno = 0;
    reply = redisCommandArgv(c, argc, argv, lens);
    if (reply == NULL) {
        /* SO_RCVTIMEO expired: hiredis says "Resource temporarily
         * unavailable" */
        if (c->err == REDIS_ERR_IO &&
            (errno == EAGAIN || errno == EWOULDBLOCK))
            snprintf(why, whylen, "%s: timed out", argv[0]);
        else
            snprintf(why, whylen, "%s: %s", argv[0],
                     c->err != 0 ? c->errstr : "no reply");
    }
    return reply;
}

/* Run a command whose answer must be the status want (or, want NULL, an
 * array whose first element is what the ROLE check wants: "master").
 * 0, or -1 with why filled. */
static int
redis_conn_expect(redisContext *c, int argc, const char **argv,
                  const char *what, const char *want, char *why,
                  size_t whylen)
{
    redisReply *r = redis_conn_command(c, argc, argv, NULL, why, whylen);
    int ok;

    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, whylen, "%s: %s", what, r->str);
        freeReplyObject(r);
        return -1;
    }
    if (want != NULL)
        ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, want) == 0;
    else
        ok = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(r->element[0]->str, "master") == 0;
    if (!ok)
        snprintf(why, whylen, "%s: %s", what,
                 want != NULL ? "unexpected answer" : "not a master");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* A connection to the server at a, past AUTH, SELECT and (Sentinel) the
 * ROLE check; NULL with why filled. */
static redisContext *
redis_conn_direct(const struct redis_cfg *cfg, const struct redis_addr *a,
                  long long deadline, char *why, size_t whylen)
{
    long long cdeadline = redis_now_ms() + cfg->connect_timeout_ms;
    const char *argv[2];
    char db[24], what[256];
    redisContext *c;
    int fd, left;

    fd = redis_conn_socket(a, cdeadline < deadline ? cdeadline : deadline,
                           what, sizeof(what));
    if (fd < 0) {
        snprintf(why, whylen, "%s: %s", a->text, what);
        return NULL;
    }
    if ((c = redisConnectFd(fd)) == NULL) {
        close(fd);
        snprintf(why, whylen, "%s: out of memory", a->text);
        return NULL;
    }
    left = redis_conn_left(deadline);
    if (left == 0 || redis_conn_timeout(c, left) < 0) {
        snprintf(what, sizeof(what), "timed out");
        goto fail;
    }
    argv[0] = "AUTH";
    argv[1] = cfg->password;                    /* never in a message */
    if (cfg->password != NULL &&
        redis_conn_expect(c, 2, argv, "AUTH", "OK", what, sizeof(what)) < 0)
        goto fail;
    snprintf(db, sizeof(db), "%lld", cfg->db);
    argv[0] = "SELECT";
    argv[1] = db;
    if (cfg->db != 0 &&
        redis_conn_expect(c, 2, argv, "SELECT", "OK", what, sizeof(what)) < 0)
        goto fail;
    argv[0] = "ROLE";
    if (cfg->nsentinels > 0 &&
        redis_conn_expect(c, 1, argv, "ROLE", NULL, what, sizeof(what)) < 0)
        goto fail;
    return c;
fail:
    snprintf(why, whylen, "%s: %s", a->text, what);
    redisFree(c);
    return NULL;
}

/* Ask one sentinel for the master's address: 0 with *master, or -1 with
 * why filled. A sentinel that answers a host name is not followed
 * (names are never resolved: announce IP addresses). */
static int
redis_conn_ask(const struct redis_cfg *cfg, const struct redis_addr *sentinel,
               long long deadline, struct redis_addr *master, char *why,
               size_t whylen)
{
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", cfg->master};
    struct redis_cfg scfg = {.connect_timeout_ms = cfg->connect_timeout_ms};
    char addr[INET6_ADDRSTRLEN + 16], what[256];
    redisContext *c;
    redisReply *r;
    int rc = -1;

    /* a sentinel gets no AUTH, SELECT or ROLE */
    if ((c = redis_conn_direct(&scfg, sentinel, deadline, why, whylen)) ==
        NULL)
        return -1;
    if ((r = redis_conn_command(c, 3, argv, NULL, what, sizeof(what))) ==
        NULL) {
        snprintf(why, whylen, "sentinel %s: %s", sentinel->text, what);
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, whylen, "sentinel %s: %s", sentinel->text, r->str);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               r->element[0]->type != REDIS_REPLY_STRING ||
               r->element[1]->type != REDIS_REPLY_STRING) {
        snprintf(why, whylen, "sentinel %s: does not know master \"%s\"",
                 sentinel->text, cfg->master);
    } else {
        snprintf(addr, sizeof(addr),
                 strchr(r->element[0]->str, ':') ? "[%s]:%s" : "%s:%s",
                 r->element[0]->str, r->element[1]->str);
        rc = redis_conn_parse(addr, master, what, sizeof(what));
        if (rc < 0)
            snprintf(why, whylen, "sentinel %s: master \"%s\" at %s: %s",
                     sentinel->text, cfg->master, addr, what);
    }
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

redisContext *
redis_conn_open(const struct redis_cfg *cfg, long long deadline_ms,
                size_t *sentinel, char where_r[REDIS_WHERE_MAX], char *why,
                size_t whylen)
{
    struct redis_addr master;
    redisContext *c;
    char what[384];

    if (cfg->nsentinels == 0) {
        memcpy(where_r, cfg->address.text, REDIS_WHERE_MAX);
        return redis_conn_direct(cfg, &cfg->address, deadline_ms, why,
                                 whylen);
    }
    snprintf(why, whylen, "no sentinel answered");
    for (size_t i = 0, first = *sentinel; i < cfg->nsentinels; i++) {
        size_t k = (first + i) % cfg->nsentinels;
        long long budget = redis_conn_left(deadline_ms);

        if (budget == 0)
            break;
        /* A sentinel that takes the connection and never answers must
         * leave time to ask the others. */
        budget /= (long long)(cfg->nsentinels - i);
        if (budget > cfg->connect_timeout_ms)
            budget = cfg->connect_timeout_ms;
        /* the next call starts past one that failed */
        *sentinel = (k + 1) % cfg->nsentinels;
        if (redis_conn_ask(cfg, &cfg->sentinels[k],
                           redis_now_ms() + (budget > 0 ? budget : 1),
                           &master, why, whylen) < 0)
            continue;
        c = redis_conn_direct(cfg, &master, deadline_ms, what,
                              sizeof(what));
        if (c != NULL) {
            memcpy(where_r, master.text, REDIS_WHERE_MAX);
            *sentinel = k;
            return c;
        }
        snprintf(why, whylen, "master \"%s\" (said sentinel %s) %s",
                 cfg->master, cfg->sentinels[k].text, what);
    }
    return NULL;
}
