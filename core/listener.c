/*
 * Accept loops and the session table. See listener.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include <modmta/log.h>

#include "fd_budget.h"
#include "generation.h"
#include "listener.h"
#include "queue.h"
#include "stress.h"

#define SESSION_STACK (512 * 1024)
#define CLIENT_BUCKETS 1024
#define PARK_MAX 64              /* session threads kept between sessions */
#define PARK_SECS 10             /* how long one waits for a connection */

struct client_count {
    struct client_count *next;
    char addr[64];
    long n;
};

struct live_session {
    struct live_session *prev, *next;
    int fd;                      /* -1 once the session is closing it */
};

struct session_start;

/* A session thread between two sessions, on its own stack, waiting for
 * listener_spawn to hand it the next connection. */
struct parked {
    struct parked *next;
    pthread_cond_t wake;
    struct session_start *s;     /* the connection handed over */
};

struct listener {
    struct listener_set *set;
    char *name;
    char *address;
    int fd;
    pthread_t thread;
    int started;
    /* accept() out of descriptors or memory: logged at most once in
     * ACCEPT_WARN_SECS (monotonic seconds, 0: never), with the count of
     * the failures in between */
    time_t warned;
    unsigned long unwarned;
};

struct listener_set {
    struct listener *l;
    size_t n;
    int stop_pipe[2];            /* written once to stop accept loops */
    listener_session_fn fn;
    void *arg;
    pthread_mutex_t lock;        /* guards everything below */
    pthread_cond_t idle;
    unsigned long active;
    struct client_count *clients[CLIENT_BUCKETS];
    struct live_session *live;
    struct parked *parked;       /* the most recently parked first */
    unsigned nparked;
    int dismissed;               /* draining: no thread parks any more */
    /* the bounds of the last admission, for stress_update on release */
    long max, fd_budget, stress_pct;
    unsigned long fd_base;       /* descriptors open besides sessions */
};

struct session_start {
    struct listener *l;
    int fd;                      /* the session's; it calls
                                    listener_session_closing first */
    struct sockaddr_storage peer;
    socklen_t peerlen;
    char addr[64];
    struct live_session live;
    char id[QUEUE_ID_MAX];
};

static void *listener_accept_loop(void *arg);

static void
listener_peer_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf,
                  len);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr,
                  buf, len);
    else
        snprintf(buf, len, "local");
}

static unsigned
listener_hash(const char *s)
{
    unsigned h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % CLIENT_BUCKETS;
}

/* Count a new session from addr unless a limit is reached (lock held). */
static int
listener_admit(struct listener_set *ls, const char *addr, long max,
               long max_client)
{
    struct client_count **pp = &ls->clients[listener_hash(addr)], *c;

    for (c = *pp; c != NULL; c = c->next)
        if (strcmp(c->addr, addr) == 0)
            break;
    if ((max > 0 && ls->active >= (unsigned long)max) ||
        (max_client > 0 && c != NULL && c->n >= max_client))
        return 0;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            return 0;
        snprintf(c->addr, sizeof(c->addr), "%s", addr);
        c->next = *pp;
        *pp = c;
    }
    c->n++;
    ls->active++;
    return 1;
}

/* Stress from the session count and the descriptors in use (lock
 * held). */
static void
listener_stress(struct listener_set *ls)
{
    stress_update(ls->active, ls->max, ls->active + ls->fd_base,
                  ls->fd_budget, ls->stress_pct);
}

/* The session's counts and its place in the live list (lock held). */
static void
listener_release_locked(struct listener_set *ls, struct session_start *s)
{
    struct client_count **pp = &ls->clients[listener_hash(s->addr)], *c;

    for (; (c = *pp) != NULL; pp = &c->next) {
        if (strcmp(c->addr, s->addr) == 0) {
            if (--c->n == 0) {
                *pp = c->next;
                free(c);
            }
            break;
        }
    }
    if (s->live.prev != NULL)
        s->live.prev->next = s->live.next;
    else
        ls->live = s->live.next;
    if (s->live.next != NULL)
        s->live.next->prev = s->live.prev;
    if (--ls->active == 0)
        pthread_cond_broadcast(&ls->idle);
    listener_stress(ls);
}

static void
listener_release(struct listener_set *ls, struct session_start *s)
{
    pthread_mutex_lock(&ls->lock);
    listener_release_locked(ls, s);
    pthread_mutex_unlock(&ls->lock);
}

static int
listener_bind_one(struct listener *l, const struct config_listener *cl,
                  modmta_err *err_r)
{
    int one = 1;

    l->fd = socket(cl->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        goto fail;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (cl->sa.ss_family == AF_INET6)
        setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(l->fd, (const struct sockaddr *)&cl->sa, cl->salen) < 0 ||
        listen(l->fd, 1024) < 0)
        goto fail;
    return 0;
fail:
    modmta_err_set(err_r, NULL, "listener \"%s\": cannot listen on %s: %s",
                   cl->name, cl->address, strerror(errno));
    return MODMTA_E_IO;
}

struct listener_set *
listeners_bind(const struct config *cfg, modmta_err *err_r)
{
    struct listener_set *ls;
    size_t i;

    ls = calloc(1, sizeof(*ls));
    if (ls == NULL || pipe2(ls->stop_pipe, O_CLOEXEC) < 0) {
        modmta_err_set(err_r, NULL, "out of resources: %s", strerror(errno));
        free(ls);
        return NULL;
    }
    pthread_mutex_init(&ls->lock, NULL);
    pthread_cond_init(&ls->idle, NULL);
    ls->l = calloc(cfg->nlisteners, sizeof(*ls->l));
    for (i = 0; ls->l != NULL && i < cfg->nlisteners; i++) {
        ls->l[i].set = ls;
        ls->l[i].fd = -1;
        ls->l[i].name = strdup(cfg->listeners[i].name);
        ls->l[i].address = strdup(cfg->listeners[i].address);
        ls->n++;
        if (ls->l[i].name == NULL || ls->l[i].address == NULL ||
            listener_bind_one(&ls->l[i], &cfg->listeners[i], err_r) < 0) {
            listeners_free(ls);
            return NULL;
        }
    }
    if (ls->l == NULL) {
        modmta_err_set(err_r, NULL, "out of memory");
        listeners_free(ls);
        return NULL;
    }
    return ls;
}

int
listeners_match(const struct listener_set *ls, const struct config *cfg)
{
    size_t i, j;

    if (ls->n != cfg->nlisteners)
        return 0;
    for (i = 0; i < ls->n; i++) {
        for (j = 0; j < cfg->nlisteners; j++)
            if (strcmp(ls->l[i].name, cfg->listeners[j].name) == 0 &&
                strcmp(ls->l[i].address, cfg->listeners[j].address) == 0)
                break;
        if (j == cfg->nlisteners)
            return 0;
    }
    return 1;
}

/* Between sessions (lock held on entry, released): wait up to PARK_SECS
 * for listener_spawn to hand over the next connection, rather than end
 * the thread and create another for it (clone, a new stack's page
 * faults, the stack given back with madvise at exit). NULL: the thread
 * ends, and touches the set no more. */
static struct session_start *
listener_park(struct listener_set *ls)
{
    struct parked p = {.s = NULL}, **pp;
    pthread_condattr_t ca;
    struct timespec ts;

    if (ls->dismissed || ls->nparked >= PARK_MAX) {
        pthread_mutex_unlock(&ls->lock);
        return NULL;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p.wake, &ca);
    pthread_condattr_destroy(&ca);
    p.next = ls->parked;
    ls->parked = &p;
    ls->nparked++;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += PARK_SECS;
    while (p.s == NULL && !ls->dismissed)
        if (pthread_cond_timedwait(&p.wake, &ls->lock, &ts) == ETIMEDOUT)
            break;
    if (p.s == NULL) { /* not handed anything: still listed */
        for (pp = &ls->parked; *pp != &p; pp = &(*pp)->next)
            ;
        *pp = p.next;
        if (--ls->nparked == 0)
            pthread_cond_broadcast(&ls->idle);
    }
    pthread_mutex_unlock(&ls->lock);
    pthread_cond_destroy(&p.wake);
    return p.s;
}

static void *
listener_session_thread(void *arg)
{
    struct session_start *s = arg;
    struct listener_set *ls = s->l->set;

    do {
        ls->fn(ls->arg, s->fd, (const struct sockaddr *)&s->peer,
               s->peerlen, s->l->name, s->id, &s->live);
        /* OpenSSL's per-thread state (its random generators, the error
         * queue) is freed now, not at thread exit: once this session is
         * released, shutdown may finish and the process exit before
         * this detached thread has. */
        OPENSSL_thread_stop();
        /* Released and parked in one hold of the lock: the thread is
         * never neither a session nor parked while the set exists. */
        pthread_mutex_lock(&ls->lock);
        listener_release_locked(ls, s);
        free(s);
        s = listener_park(ls);
    } while (s != NULL);
    return NULL;
}

/* A parked thread takes s: 1, or 0 when none is parked. */
static int
listener_hand_over(struct listener_set *ls, struct session_start *s)
{
    struct parked *p;

    pthread_mutex_lock(&ls->lock);
    p = ls->parked;
    if (p != NULL) {
        ls->parked = p->next;
        if (--ls->nparked == 0)
            pthread_cond_broadcast(&ls->idle);
        p->s = s;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&ls->lock);
    return p != NULL;
}

void
listener_session_closing(void *live)
{
    struct live_session *e = live;
    struct session_start *s;

    if (e == NULL)
        return;
    s = (struct session_start *)((char *)e -
                                 offsetof(struct session_start, live));
    pthread_mutex_lock(&s->l->set->lock);
    e->fd = -1;
    pthread_mutex_unlock(&s->l->set->lock);
}

/* Answer an over-limit client without blocking the accept loop; why
 * names the limit, for the log. */
static void
listener_refuse(int fd, const char *addr, const char *why)
{
    static const char msg[] =
        "421 4.7.0 Error: too many connections, try again later\r\n";

    if (send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        modmta_logf(MODMTA_LOG_DEBUG, "refuse send failed: %s",
                    strerror(errno));
    close(fd);
    modmta_logf(MODMTA_LOG_WARN, "reject: connect from [%s]: 421 4.7.0 %s",
                addr, why);
}

static void
listener_spawn(struct listener *l, struct session_start *s)
{
    struct listener_set *ls = l->set;
    long max = 0, max_client = 0, reserve = 0, pct = 0;
    long nofile = fd_budget_nofile();
    generation *g = generation_acquire();
    pthread_attr_t attr;
    pthread_t t;
    char why[160];
    int e;
    int ok, over = 0;

    listener_peer_addr(&s->peer, s->addr, sizeof(s->addr));
    if (g != NULL) {
        max = g->cfg->limits.max_sessions;
        max_client = g->cfg->limits.max_sessions_per_client;
        pct = g->cfg->limits.stress_threshold;
        reserve = fd_budget_reserve(nofile, g->cfg->queue.workers,
                                    g->cfg->queue.outbound_workers);
        over = fd_budget_over(s->fd, g->cfg, why, sizeof(why));
        generation_release(g);
    }
    if (over) {
        listener_refuse(s->fd, s->addr, why);
        free(s);
        return;
    }
    pthread_mutex_lock(&ls->lock);
    ls->max = max;
    ls->fd_budget = nofile > 0 ? nofile - reserve : 0;
    ls->stress_pct = pct;
    /* The descriptors open besides sessions (start-up ones, spool
     * files, deliveries), as the lowest free number shows now. */
    ls->fd_base = (unsigned long)s->fd > ls->active ?
                  (unsigned long)s->fd - ls->active : 0;
    ok = listener_admit(ls, s->addr, max, max_client);
    listener_stress(ls);
    if (!ok) {
        if (max > 0 && ls->active >= (unsigned long)max)
            snprintf(why, sizeof(why), "too many connections "
                     "(max_sessions=%ld)", max);
        else
            snprintf(why, sizeof(why), "too many connections from one "
                     "client (max_sessions_per_client=%ld)", max_client);
        pthread_mutex_unlock(&ls->lock);
        listener_refuse(s->fd, s->addr, why);
        free(s);
        return;
    }
    s->live.fd = s->fd;
    s->live.prev = NULL;
    s->live.next = ls->live;
    if (ls->live != NULL)
        ls->live->prev = &s->live;
    ls->live = &s->live;
    pthread_mutex_unlock(&ls->lock);
    queue_new_id(s->id);
    if (listener_hand_over(ls, s))
        return;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, SESSION_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if ((e = pthread_create(&t, &attr, listener_session_thread, s)) != 0) {
        modmta_logf(MODMTA_LOG_ERR, "cannot start a session thread: %s",
                    strerror(e));
        listener_release(ls, s);
        close(s->fd);
        free(s);
    }
    pthread_attr_destroy(&attr);
}

#define ACCEPT_WARN_SECS 10

/* Out of descriptors, the listening socket stays readable: the loop
 * retries every 100 ms and would log each time. */
static void
listener_accept_failed(struct listener *l, int e)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (l->warned != 0 && ts.tv_sec - l->warned < ACCEPT_WARN_SECS) {
        l->unwarned++;
        return;
    }
    modmta_logf(MODMTA_LOG_WARN, "accept: listener %s: %s (descriptor limit "
                "%ld; %lu more since the last such line)", l->name,
                strerror(e), fd_budget_nofile(), l->unwarned);
    l->warned = ts.tv_sec > 0 ? ts.tv_sec : 1;
    l->unwarned = 0;
}

static void *
listener_accept_loop(void *arg)
{
    struct listener *l = arg;
    struct pollfd pfd[2];
    struct session_start *s;

    pfd[0].fd = l->fd;
    pfd[0].events = POLLIN;
    pfd[1].fd = l->set->stop_pipe[0];
    pfd[1].events = POLLIN;
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents)
            break;
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            usleep(10000);
            continue;
        }
        s->l = l;
        s->peerlen = sizeof(s->peer);
        s->fd = accept4(l->fd, (struct sockaddr *)&s->peer, &s->peerlen,
                        SOCK_CLOEXEC);
        if (s->fd < 0) {
            free(s);
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
                listener_accept_failed(l, errno);
                usleep(100000);
            }
            continue;
        }
        listener_spawn(l, s);
    }
    return NULL;
}

int
listeners_start(struct listener_set *ls, listener_session_fn fn, void *arg,
                modmta_err *err_r)
{
    size_t i;

    ls->fn = fn;
    ls->arg = arg;
    for (i = 0; i < ls->n; i++) {
        if (pthread_create(&ls->l[i].thread, NULL, listener_accept_loop,
                           &ls->l[i]) != 0) {
            modmta_err_set(err_r, NULL, "cannot start listener \"%s\"",
                           ls->l[i].name);
            return MODMTA_E_NOMEM;
        }
        ls->l[i].started = 1;
        modmta_logf(MODMTA_LOG_INFO, "listening name=%s address=%s",
                    ls->l[i].name, ls->l[i].address);
    }
    return 0;
}

void
listeners_stop(struct listener_set *ls)
{
    size_t i;

    if (ls->stop_pipe[1] >= 0 && write(ls->stop_pipe[1], "x", 1) < 0)
        modmta_logf(MODMTA_LOG_ERR, "stop listeners: %s", strerror(errno));
    for (i = 0; i < ls->n; i++) {
        if (ls->l[i].started) {
            pthread_join(ls->l[i].thread, NULL);
            ls->l[i].started = 0;
        }
        if (ls->l[i].fd >= 0) {
            close(ls->l[i].fd);
            ls->l[i].fd = -1;
        }
    }
}

static void
listener_wait(struct listener_set *ls, int seconds)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    while (ls->active > 0)
        if (pthread_cond_timedwait(&ls->idle, &ls->lock, &ts) == ETIMEDOUT)
            break;
}

void
listeners_drain(struct listener_set *ls, int grace_s)
{
    struct live_session *s;
    struct parked *p;

    pthread_mutex_lock(&ls->lock);
    /* Idle sessions notice the flag within a second and answer 421. */
    listener_wait(ls, grace_s);
    /* What is left is stuck in a send or a slow DATA: cut both ways, so a
     * blocked write fails at once too. */
    for (s = ls->live; s != NULL; s = s->next)
        if (s->fd >= 0)
            shutdown(s->fd, SHUT_RDWR);
    listener_wait(ls, 10);
    /* The parked threads end (at once: they only wait), and a session
     * still running ends its thread after it. */
    ls->dismissed = 1;
    for (p = ls->parked; p != NULL; p = p->next)
        pthread_cond_signal(&p->wake);
    while (ls->nparked > 0)
        pthread_cond_wait(&ls->idle, &ls->lock);
    pthread_mutex_unlock(&ls->lock);
}

unsigned long
listeners_active(struct listener_set *ls)
{
    unsigned long n;

    pthread_mutex_lock(&ls->lock);
    n = ls->active;
    pthread_mutex_unlock(&ls->lock);
    return n;
}

void
listeners_free(struct listener_set *ls)
{
    size_t i;

    if (ls == NULL)
        return;
    for (i = 0; i < ls->n; i++) {
        if (ls->l[i].fd >= 0)
            close(ls->l[i].fd);
        free(ls->l[i].name);
        free(ls->l[i].address);
    }
    for (i = 0; i < CLIENT_BUCKETS; i++) {
        struct client_count *c, *next;
        for (c = ls->clients[i]; c != NULL; c = next) {
            next = c->next;
            free(c);
        }
    }
    free(ls->l);
    close(ls->stop_pipe[0]);
    close(ls->stop_pipe[1]);
    pthread_mutex_destroy(&ls->lock);
    pthread_cond_destroy(&ls->idle);
    free(ls);
}
