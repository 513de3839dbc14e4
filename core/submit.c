/*
 * The local submission socket (see submit.h). One accepting thread; each
 * connection gets a detached thread that reads the request line and then
 * serves it, so a silent client holds up no one else.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <modmta/log.h>

#include "control.h"
#include "submit.h"

struct submit {
    char *path;
    int fd;
    int stop_pipe[2];
    pthread_t thread;
    queue *q;
    local_session_fn fn;
    void *arg;
    pthread_mutex_t lock;        /* guards active and users */
    pthread_cond_t idle;
    unsigned long active;
    struct submit_user {
        uid_t uid;
        unsigned n;              /* its connections */
    } users[SUBMIT_CLIENTS_MAX];
    size_t nusers;
};

struct submit_conn {
    submit *s;
    int fd;
    uid_t uid;
};

void
submit_user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd pw, *res = NULL;
    char tmp[4096];

    if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res != NULL)
        snprintf(buf, len, "%s", pw.pw_name);
    else
        snprintf(buf, len, "%lu", (unsigned long)uid);
}

/* The request line, read byte by byte so that nothing of the SMTP
 * dialogue after it is consumed here. */
static int
submit_read_request(int fd, char *line, size_t size)
{
    size_t len = 0;

    while (len + 1 < size) {
        ssize_t n = recv(fd, line + len, 1, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        if (line[len] == '\n') {
            line[len] = '\0';
            line[strcspn(line, "\r")] = '\0';
            return 0;
        }
        len++;
    }
    return -1;
}

static void
submit_write(int fd, const char *p)
{
    size_t len = strlen(p);

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void
submit_showq(submit *s, int fd, uid_t uid)
{
    /* Quarantine reasons are the postmaster's business. */
    char *resp = control_showq(s->q, uid == 0 || uid == geteuid());

    modmta_logf(MODMTA_LOG_DEBUG, "submit: showq uid=%lu",
                (unsigned long)uid);
    submit_write(fd, resp != NULL ? resp : "error: out of memory\n");
    free(resp);
}

static void
submit_serve(submit *s, int fd)
{
    struct timeval tv = {CONTROL_TIMEOUT, 0}, none = {0, 0};
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    char line[SUBMIT_REQUEST_MAX], user[256], id[QUEUE_ID_MAX];

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
        submit_read_request(fd, line, sizeof(line)) < 0) {
        close(fd);
        return;
    }
    if (strcmp(line, "showq") == 0) {
        submit_showq(s, fd, cred.uid);
        close(fd);
        return;
    }
    if (strcmp(line, "submit") != 0) {
        submit_write(fd, "error: unknown request\n");
        close(fd);
        return;
    }
    /* The session keeps its own timeouts. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
    submit_user_name(cred.uid, user, sizeof(user));
    queue_new_id(id);
    modmta_logf(MODMTA_LOG_INFO, "%s: local submission uid=%lu user=%s "
                "pid=%ld", id, (unsigned long)cred.uid, user,
                (long)cred.pid);
    s->fn(s->arg, fd, cred.uid, user, id);
}

static void *
submit_conn_thread(void *arg)
{
    struct submit_conn *c = arg;
    submit *s = c->s;

    submit_serve(s, c->fd);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nusers; i++) {
        if (s->users[i].uid != c->uid)
            continue;
        if (--s->users[i].n == 0)
            s->users[i] = s->users[--s->nusers];
        break;
    }
    free(c);
    if (--s->active == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* The count of uid's connections, made when it has none; NULL when the
 * user holds its share. Under s->lock. */
static struct submit_user *
submit_user_slot(submit *s, uid_t uid)
{
    for (size_t i = 0; i < s->nusers; i++)
        if (s->users[i].uid == uid)
            return s->users[i].n < SUBMIT_CLIENTS_PER_UID ? &s->users[i]
                                                          : NULL;
    if (s->nusers == SUBMIT_CLIENTS_MAX)
        return NULL;
    s->users[s->nusers] = (struct submit_user){.uid = uid};
    return &s->users[s->nusers++];
}

/* Over SUBMIT_CLIENTS_MAX, or SUBMIT_CLIENTS_PER_UID for the caller's
 * uid, the connection is just closed: sendmail then leaves the message
 * in the maildrop. */
static void
submit_spawn(submit *s, int fd)
{
    struct submit_conn *c = malloc(sizeof(*c));
    struct submit_user *u = NULL;
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    pthread_attr_t attr;
    pthread_t t;
    int ok = 0, known = c != NULL &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0;

    pthread_mutex_lock(&s->lock);
    if (known && s->active < SUBMIT_CLIENTS_MAX &&
        (u = submit_user_slot(s, cred.uid)) != NULL) {
        c->s = s;
        c->fd = fd;
        c->uid = cred.uid;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&t, &attr, submit_conn_thread, c) == 0;
        pthread_attr_destroy(&attr);
        s->active += ok;
        u->n += ok;
        if (!ok && u->n == 0)
            *u = s->users[--s->nusers];
    } else if (known && s->active < SUBMIT_CLIENTS_MAX) {
        modmta_logf(MODMTA_LOG_WARN, "submit: uid=%lu holds %d "
                    "connections: one more refused",
                    (unsigned long)cred.uid, SUBMIT_CLIENTS_PER_UID);
    }
    pthread_mutex_unlock(&s->lock);
    if (!ok) {
        free(c);
        close(fd);
    }
}

static void *
submit_accept_loop(void *arg)
{
    submit *s = arg;
    struct pollfd pfd[2] = {{.fd = s->fd, .events = POLLIN},
                            {.fd = s->stop_pipe[0], .events = POLLIN}};

    for (;;) {
        int fd;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            modmta_logf(MODMTA_LOG_ERR, "submit: poll: %s", strerror(errno));
            return NULL;
        }
        if (pfd[1].revents != 0)
            return NULL;
        if ((fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
            submit_spawn(s, fd);
    }
}

/* mkdir (if missing) and chmod: the modes are the access rules. */
static int
submit_dir(const char *path, mode_t mode, modmta_err *err_r)
{
    if ((mkdir(path, mode) < 0 && errno != EEXIST) || chmod(path, mode) < 0) {
        modmta_err_set(err_r, "$.local_submission", "%s: %s", path,
                       strerror(errno));
        return -1;
    }
    return 0;
}

/* The socket's directory: made when missing, and 0755 when it is ours
 * (the daemon's umask made it 0700). */
static int
submit_socket_dir(const char *path, modmta_err *err_r)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct stat st;
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
        return 0;
    *slash = '\0';
    if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || stat(dir, &st) < 0 ||
        (st.st_uid == geteuid() && chmod(dir, 0755) < 0)) {
        modmta_err_set(err_r, "$.local_submission.socket", "%s: %s", dir,
                       strerror(errno));
        return -1;
    }
    return 0;
}

static int
submit_listen(submit *s, modmta_err *err_r)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;

    memcpy(sun.sun_path, s->path, strlen(s->path) + 1);
    /* Only a socket is replaced: the control socket's start already
     * found no other daemon on this spool. */
    if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(s->path);
    if ((s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(s->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        chmod(s->path, 0666) < 0 || listen(s->fd, 64) < 0) {
        modmta_err_set(err_r, "$.local_submission.socket", "%s: %s",
                       s->path, strerror(errno));
        return -1;
    }
    return 0;
}

submit *
submit_start(const struct config *cfg, queue *q, local_session_fn fn,
             void *arg, modmta_err *err_r)
{
    submit *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->path = strdup(cfg->local.socket)) == NULL) {
        free(s);
        modmta_err_set(err_r, NULL, "submit: out of memory");
        return NULL;
    }
    s->fd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->q = q;
    s->fn = fn;
    s->arg = arg;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (submit_dir(cfg->spool, 0711, err_r) < 0 ||
        submit_dir(cfg->local.maildrop, 03733, err_r) < 0 ||
        submit_socket_dir(s->path, err_r) < 0 || submit_listen(s, err_r) < 0)
        goto fail;
    if (pipe2(s->stop_pipe, O_CLOEXEC) < 0 ||
        pthread_create(&s->thread, NULL, submit_accept_loop, s) != 0) {
        modmta_err_set(err_r, NULL, "submit: cannot start: %s",
                       strerror(errno));
        unlink(s->path);
        goto fail;
    }
    return s;
fail:
    for (int i = 0; i < 2; i++)
        if (s->stop_pipe[i] >= 0)
            close(s->stop_pipe[i]);
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    free(s);
    return NULL;
}

unsigned long
submit_stop(submit *s, int grace_s)
{
    struct timespec ts;
    unsigned long left;

    if (s == NULL)
        return 0;
    while (write(s->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(s->thread, NULL);
    close(s->fd);
    unlink(s->path);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += grace_s;
    pthread_mutex_lock(&s->lock);
    while (s->active > 0 &&
           pthread_cond_timedwait(&s->idle, &s->lock, &ts) == 0)
        ;
    left = s->active;
    pthread_mutex_unlock(&s->lock);
    if (left > 0)
        return left;
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    free(s->path);
    free(s);
    return 0;
}
