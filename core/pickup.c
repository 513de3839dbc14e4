/*
 * Pickup: the maildrop, scanned (see pickup.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <modmta/log.h>

#include "maildrop.h"
#include "pickup.h"
#include "pickup_bounce.h"
#include "queue.h"
#include "submit_client.h"

#define PICKUP_IO_TIMEOUT 600    /* s: the session's own limits come first */
#define PICKUP_BAD_SUFFIX ".bad"
#define PICKUP_SIZE_MAX (1LL << 30) /* when limits.message_size is 0 */

struct pickup {
    char *dir;
    char *helo;
    long interval;
    long lifetime;               /* queue.lifetime: a file kept longer
                                    than this is set aside */
    long long max_size;
    int stop_pipe[2];
    pthread_t thread;
    local_session_fn fn;
    void *arg;
    queue *q;                    /* bounces of refused recipients */
    scheduler *sched;
};

struct pickup_session {
    pickup *p;
    int fd;
    uid_t uid;
    char user[256];
    char id[QUEUE_ID_MAX];
};

static void *
pickup_session_thread(void *arg)
{
    struct pickup_session *ps = arg;

    ps->p->fn(ps->p->arg, ps->fd, ps->uid, ps->user, ps->id);
    return NULL;
}

/* Feed m to a local session of uid; the session runs on its own thread
 * at the other end of a socketpair. */
static enum submit_status
pickup_feed(pickup *p, const struct submit_msg *m, uid_t uid,
            const char *name, struct submit_result *r)
{
    struct timeval tv = {PICKUP_IO_TIMEOUT, 0};
    struct pickup_session ps = {.p = p, .uid = uid};
    pthread_t t;
    int sv[2];

    memset(r, 0, sizeof(*r));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(r->reply, sizeof(r->reply), "socketpair: %s",
                 strerror(errno));
        return r->status = SUBMIT_IO;
    }
    ps.fd = sv[1];
    submit_user_name(uid, ps.user, sizeof(ps.user));
    queue_new_id(ps.id);
    modmta_logf(MODMTA_LOG_INFO, "%s: pickup file=%s uid=%lu user=%s",
                ps.id, name, (unsigned long)uid, ps.user);
    if (pthread_create(&t, NULL, pickup_session_thread, &ps) != 0) {
        close(sv[0]);
        close(sv[1]);
        snprintf(r->reply, sizeof(r->reply), "cannot start a session");
        return r->status = SUBMIT_IO;
    }
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    submit_client_send(sv[0], p->helo, m, r, NULL);
    /* The session sees the end of input and finishes. */
    close(sv[0]);
    pthread_join(t, NULL);
    return r->status;
}

/* Read a complete file that can be trusted: regular, one link (not a
 * hard link to somebody else's file), group-readable (the writer's
 * "complete" mark), within the size limit. 1 with the text; 0 when not
 * complete yet; -1 when it must be set aside (why in err). */
static int
pickup_read(pickup *p, int dfd, const char *name, char **buf_r,
            size_t *len_r, struct stat *st_r, char *err, size_t errlen)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
                    O_CLOEXEC);
    struct stat st;
    size_t off = 0;
    char *buf;

    if (fd < 0) {
        snprintf(err, errlen, "open: %s", strerror(errno));
        return errno == ENOENT ? 0 : -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        snprintf(err, errlen, "not a regular file with one link");
        close(fd);
        return -1;
    }
    if ((st.st_mode & S_IRGRP) == 0) {
        close(fd);
        return 0;
    }
    if (st.st_size > p->max_size + 65536) {
        snprintf(err, errlen, "size %lld over the limit",
                 (long long)st.st_size);
        close(fd);
        return -1;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while (off < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    *buf_r = buf;
    *len_r = off;
    *st_r = st;
    return 1;
}

static void
pickup_set_aside(int dfd, const char *name, const char *why)
{
    char bad[NAME_MAX + 1];

    snprintf(bad, sizeof(bad), "%.*s%s",
             (int)(NAME_MAX - strlen(PICKUP_BAD_SUFFIX)), name,
             PICKUP_BAD_SUFFIX);
    modmta_logf(MODMTA_LOG_ERR, "pickup: file=%s set aside as %s: %s", name,
                bad, why);
    if (renameat(dfd, name, dfd, bad) < 0)
        unlinkat(dfd, name, 0);
}

/* Where the refused recipients go: a 4xx into temp (a new file for the
 * next scan), anything else into perm (a bounce). A message refused as
 * a whole (MAIL, DATA) bounces every recipient with that reply. */
static int
pickup_sort(const struct submit_msg *m, const struct submit_result *r,
            char **temp, size_t *nt, char **perm, char **why, size_t *np)
{
    struct pickup_refusal f;

    *nt = *np = 0;
    if (r->status == SUBMIT_PERM && r->nrefused < m->nrcpts) {
        for (size_t i = 0; i < m->nrcpts; i++) {
            if ((perm[*np] = strdup(m->rcpts[i])) == NULL ||
                (why[*np] = strdup(r->reply)) == NULL)
                return -1;
            (*np)++;
        }
        return 0;
    }
    for (size_t i = 0; i < r->nrefused; i++) {
        pickup_refusal_parse(r->refused[i], &f);
        modmta_logf(MODMTA_LOG_WARN, "pickup: recipient refused: %s",
                    r->refused[i]);
        if (f.code / 100 == 4) {
            if ((temp[*nt] = strdup(f.addr)) == NULL)
                return -1;
            (*nt)++;
        } else {
            if ((perm[*np] = strdup(f.code ? f.addr : r->refused[i])) ==
                    NULL || (why[*np] = strdup(f.reply)) == NULL)
                return -1;
            (*np)++;
        }
    }
    return 0;
}

/* The 4xx recipients into a new file for the next scan, on behalf of
 * uid, dated like the old one (queue.lifetime counts from there). */
static int
pickup_keep(pickup *p, int dfd, const struct submit_msg *m, char **temp,
            size_t nt, uid_t uid, const struct stat *st)
{
    struct submit_msg k = {m->sender, temp, nt, m->data, m->len};
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    char name[NAME_MAX + 1], err[256];

    if (maildrop_write_for(p->dir, &k, (long)uid, name, sizeof(name), err,
                           sizeof(err)) < 0) {
        modmta_logf(MODMTA_LOG_ERR, "pickup: cannot keep %zu recipient(s) "
                    "for later: %s", nt, err);
        return -1;
    }
    utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
    modmta_logf(MODMTA_LOG_INFO, "pickup: %zu recipient(s) kept for the "
                "next scan as file=%s", nt, name);
    return 0;
}

/* After a transaction that ended (queued, or refused for good): bounce
 * the 5xx recipients, keep the 4xx ones, then the file goes; it is set
 * aside when either could not be done. */
static void
pickup_settle(pickup *p, int dfd, const char *name,
              const struct submit_msg *m, const struct submit_result *r,
              uid_t uid, const struct stat *st)
{
    size_t n = m->nrcpts, nt = 0, np = 0;
    char **temp = calloc(n, sizeof(*temp)), **perm = calloc(n, sizeof(*perm));
    char **why = calloc(n, sizeof(*why));
    const char *fail = NULL;

    if (temp == NULL || perm == NULL || why == NULL ||
        pickup_sort(m, r, temp, &nt, perm, why, &np) < 0)
        fail = "out of memory";
    else if (np > 0 && pickup_bounce(p->q, p->sched, p->helo, p->lifetime,
                                     m, st->st_mtime, perm, why, np) < 0)
        fail = "cannot queue a bounce";
    else if (nt > 0 && pickup_keep(p, dfd, m, temp, nt, uid, st) < 0)
        fail = "cannot keep the deferred recipients";
    if (fail != NULL)
        pickup_set_aside(dfd, name, fail);
    else
        unlinkat(dfd, name, 0);
    for (size_t i = 0; i < n; i++) {
        free(temp != NULL ? temp[i] : NULL);
        free(perm != NULL ? perm[i] : NULL);
        free(why != NULL ? why[i] : NULL);
    }
    free(temp);
    free(perm);
    free(why);
}

static void
pickup_one(pickup *p, int dfd, const char *name)
{
    char err[256], *buf = NULL;
    struct submit_result r;
    struct submit_msg m;
    struct stat st;
    size_t len;
    uid_t uid;
    int rc = pickup_read(p, dfd, name, &buf, &len, &st, err, sizeof(err));

    if (rc <= 0) {
        if (rc < 0)
            pickup_set_aside(dfd, name, err);
        return;
    }
    if (maildrop_parse(buf, len, &m, err, sizeof(err)) < 0) {
        pickup_set_aside(dfd, name, err);
        free(buf);
        return;
    }
    /* Only a file the daemon wrote itself may say whose it is. */
    uid = st.st_uid;
    if (st.st_uid == geteuid() && maildrop_uid(buf, len) >= 0)
        uid = (uid_t)maildrop_uid(buf, len);
    switch (pickup_feed(p, &m, uid, name, &r)) {
    case SUBMIT_QUEUED:
    case SUBMIT_PERM:
        pickup_settle(p, dfd, name, &m, &r, uid, &st);
        break;
    default:
        if (time(NULL) - st.st_mtime > p->lifetime) {
            pickup_set_aside(dfd, name, "refused for longer than "
                             "queue.lifetime");
            break;
        }
        modmta_logf(MODMTA_LOG_WARN, "pickup: file=%s kept for the next "
                    "scan: %s", name, r.reply);
        break;
    }
    submit_result_free(&r);
    maildrop_free(&m);
    free(buf);
}

static int
pickup_stopping(pickup *p, int timeout_ms)
{
    struct pollfd pfd = {.fd = p->stop_pipe[0], .events = POLLIN};

    return poll(&pfd, 1, timeout_ms) > 0;
}

static void
pickup_scan(pickup *p)
{
    int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *de;
    DIR *d;

    if (dfd < 0 || (d = fdopendir(dfd)) == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "pickup: %s: %s", p->dir,
                    strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return;
    }
    while ((de = readdir(d)) != NULL && !pickup_stopping(p, 0)) {
        size_t n = strlen(de->d_name);

        if (de->d_name[0] == '.' ||
            (n > strlen(PICKUP_BAD_SUFFIX) &&
             strcmp(de->d_name + n - strlen(PICKUP_BAD_SUFFIX),
                    PICKUP_BAD_SUFFIX) == 0))
            continue;
        pickup_one(p, dfd, de->d_name);
    }
    closedir(d);
}

static void *
pickup_thread(void *arg)
{
    pickup *p = arg;

    do
        pickup_scan(p);
    while (!pickup_stopping(p, (int)(p->interval * 1000)));
    return NULL;
}

pickup *
pickup_start(const struct config *cfg, long long max_size, queue *q,
             scheduler *sched, local_session_fn fn, void *arg,
             modmta_err *err_r)
{
    pickup *p = calloc(1, sizeof(*p));

    if (p == NULL || (p->dir = strdup(cfg->local.maildrop)) == NULL ||
        (p->helo = strdup(cfg->hostname)) == NULL) {
        if (p != NULL)
            free(p->dir);
        free(p);
        modmta_err_set(err_r, NULL, "pickup: out of memory");
        return NULL;
    }
    p->interval = cfg->local.pickup_interval;
    p->lifetime = cfg->queue.lifetime;
    p->max_size = max_size > 0 ? max_size : PICKUP_SIZE_MAX;
    p->fn = fn;
    p->arg = arg;
    p->q = q;
    p->sched = sched;
    if (pipe2(p->stop_pipe, O_CLOEXEC) < 0 ||
        pthread_create(&p->thread, NULL, pickup_thread, p) != 0) {
        modmta_err_set(err_r, NULL, "pickup: cannot start: %s",
                       strerror(errno));
        free(p->dir);
        free(p->helo);
        free(p);
        return NULL;
    }
    return p;
}

void
pickup_stop(pickup *p)
{
    if (p == NULL)
        return;
    while (write(p->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(p->thread, NULL);
    close(p->stop_pipe[0]);
    close(p->stop_pipe[1]);
    free(p->dir);
    free(p->helo);
    free(p);
}
