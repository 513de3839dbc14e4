/*
 * The control socket: see control.h for the protocol.
 * Requests are rare and short, so one thread serves them one at a time;
 * a slow client is bounded by CONTROL_TIMEOUT on both directions.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <modmta/log.h>

#include "control.h"

#define CONTROL_ID_WIDTH 20       /* the queue's IDs are 20 characters */
#define CONTROL_HEADERS_MAX (256 * 1024)

struct control {
    char *path;
    int fd;
    int stop_pipe[2];             /* a byte on [1] stops the thread */
    pthread_t thread;
    queue *q;
    scheduler *s;
    struct control_ops ops;
};

/* A growing response text. */
struct control_buf {
    char *p;
    size_t len, cap;
    int oom;
};

struct control_cmd {
    const char *name;
    int takes_id;
    void (*run)(queue *q, scheduler *s, const struct control_ops *ops,
                const char *id, struct control_buf *b);
};

/* ---- response text ---- */

static void
control_vprintf(struct control_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    if (b->oom)
        return;
    va_copy(ap2, ap);
    n = vsnprintf(b->p != NULL ? b->p + b->len : NULL,
                  b->p != NULL ? b->cap - b->len : 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if (b->p == NULL || b->len + (size_t)n >= b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;

        while (cap <= b->len + (size_t)n)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    }
    b->len += (size_t)n;
}

__attribute__((format(printf, 2, 3))) static void
control_printf(struct control_buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    control_vprintf(b, fmt, ap);
    va_end(ap);
}

/* Start the response over with an error status line. */
__attribute__((format(printf, 2, 3))) static void
control_error(struct control_buf *b, const char *fmt, ...)
{
    va_list ap;

    b->len = 0;
    control_printf(b, "error: ");
    va_start(ap, fmt);
    control_vprintf(b, fmt, ap);
    va_end(ap);
    control_printf(b, "\n");
}

/* ---- queue: the mailq listing ---- */

struct control_listing {
    struct control_buf *b;
    unsigned long long kbytes;
    size_t count;
    int reasons;                 /* show quarantine reasons */
};

static void
control_list_rcpts(struct control_buf *b, const queue_env *env, int indent,
                   int reasons)
{
    const char *last = NULL;

    if (env->quarantine != NULL && reasons)
        control_printf(b, "(quarantined: %s)\n", env->quarantine);
    for (size_t i = 0; i < env->nrcpts; i++) {
        const queue_rcpt *r = &env->rcpts[i];

        if (r->state != QRCPT_PENDING)
            continue;
        if (r->status != NULL && (last == NULL || strcmp(last, r->status)))
            control_printf(b, "(%s)\n", r->status);
        if (r->status != NULL)
            last = r->status;
        control_printf(b, "%*s%s\n", indent, "", r->addr);
    }
}

static int
control_list_one(const queue_env *env, void *arg)
{
    struct control_listing *l = arg;
    char date[32] = "", prefix[128];
    struct tm tm;
    int indent;

    if (localtime_r(&env->arrival, &tm) != NULL)
        strftime(date, sizeof(date), "%a %b %e %H:%M:%S", &tm);
    /* Recipients line up under the sender, whatever the widths. */
    indent = snprintf(prefix, sizeof(prefix), "%-*s%c %8lld %-20s ",
                      CONTROL_ID_WIDTH, env->id,
                      env->held || env->quarantine ? '!' : ' ',
                      (long long)env->size, date);
    control_printf(l->b, "%s%s\n", prefix,
                   env->sender[0] != '\0' ? env->sender : "MAILER-DAEMON");
    control_list_rcpts(l->b, env, indent, l->reasons);
    control_printf(l->b, "\n");
    l->kbytes += ((unsigned long long)env->size + 1023) / 1024;
    l->count++;
    return 0;
}

static void
control_listing_run(queue *q, int reasons, struct control_buf *b)
{
    struct control_buf body = {0};
    struct control_listing l = {.b = &body, .reasons = reasons};
    int rc = queue_foreach(q, control_list_one, &l);

    if (rc < 0) {
        free(body.p);
        control_error(b, "cannot read the queue: %s", modmta_strerror(rc));
        return;
    }
    if (l.count == 0) {
        control_printf(b, "Mail queue is empty\n");
    } else {
        control_printf(b, "%-*s  --Size-- ----Arrival Time---- "
                       "-Sender/Recipient-------\n", CONTROL_ID_WIDTH,
                       "-Queue ID-");
        control_printf(b, "%.*s", (int)body.len, body.p ? body.p : "");
        control_printf(b, "-- %llu Kbytes in %zu Request%s.\n", l.kbytes,
                       l.count, l.count == 1 ? "" : "s");
    }
    b->oom |= body.oom;
    free(body.p);
}

static void
control_cmd_queue(queue *q, scheduler *s, const struct control_ops *ops,
                  const char *id, struct control_buf *b)
{
    control_listing_run(q, 1, b);
}

char *
control_showq(queue *q, int reasons)
{
    struct control_buf b = {0};

    control_printf(&b, "ok\n");
    control_listing_run(q, reasons, &b);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- show ---- */

/* The header block of the content, CRLF turned into LF. */
static void
control_show_headers(queue *q, const char *id, struct control_buf *b)
{
    char path[4096], line[1024];
    size_t total = 0;
    FILE *f;

    if (queue_content_path(q, id, path, sizeof(path)) < 0 ||
        (f = fopen(path, "re")) == NULL) {
        control_printf(b, "(content unreadable)\n");
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL &&
           total < CONTROL_HEADERS_MAX) {
        size_t n = strlen(line);

        total += n;
        if (n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n')
            line[n - 2] = '\n', line[n - 1] = '\0';
        if (line[0] == '\n')
            break;
        control_printf(b, "%s", line);
    }
    fclose(f);
}

static void
control_cmd_show(queue *q, scheduler *s, const struct control_ops *ops,
                 const char *id, struct control_buf *b)
{
    json_error_t jerr;
    json_t *env;
    char *text;
    size_t len;
    int rc = queue_env_read(q, id, &text, &len);

    if (rc == MODMTA_E_NOTFOUND) {
        control_error(b, "%s: no such message", id);
        return;
    }
    if (rc < 0) {
        control_error(b, "%s: cannot read envelope: %s", id,
                      modmta_strerror(rc));
        return;
    }
    env = json_loadb(text, len, 0, &jerr);
    free(text);
    if (env == NULL) {
        control_error(b, "%s: cannot read envelope: %s", id, jerr.text);
        return;
    }
    text = json_dumps(env, JSON_INDENT(2));
    json_decref(env);
    if (text == NULL) {
        b->oom = 1;
        return;
    }
    control_printf(b, "%s\n\n", text);
    free(text);
    control_show_headers(q, id, b);
}

/* ---- actions ---- */

static void
control_cmd_flush(queue *q, scheduler *s, const struct control_ops *ops,
                  const char *id, struct control_buf *b)
{
    scheduler_flush(s);
}

static void
control_cmd_delete(queue *q, scheduler *s, const struct control_ops *ops,
                   const char *id, struct control_buf *b)
{
    int rc = scheduler_delete(s, id), known = rc == 0;

    if (rc == MODMTA_E_TEMP) {
        control_error(b, "%s: being delivered right now; try again when "
                      "the attempt ends", id);
        return;
    }
    rc = queue_remove(q, id);
    if (rc == MODMTA_E_NOTFOUND && !known)
        control_error(b, "%s: no such message", id);
    else if (rc < 0 && rc != MODMTA_E_NOTFOUND)
        control_error(b, "%s: %s", id, modmta_strerror(rc));
    else {
        modmta_logf(MODMTA_LOG_INFO, "%s: removed by modmtactl", id);
        control_printf(b, "%s: deleted\n", id);
    }
}

static void
control_hold(scheduler *s, const char *id, int hold, struct control_buf *b)
{
    int rc = scheduler_hold(s, id, hold);

    if (rc == MODMTA_E_NOTFOUND)
        control_error(b, "%s: no such message", id);
    else if (rc == MODMTA_E_TEMP)
        control_error(b, "%s: being delivered right now; try again when "
                      "the attempt ends", id);
    else if (rc < 0)
        control_error(b, "%s: %s", id, modmta_strerror(rc));
    else
        control_printf(b, "%s: %s\n", id, hold ? "held" : "released");
}

static void
control_cmd_hold(queue *q, scheduler *s, const struct control_ops *ops,
                 const char *id, struct control_buf *b)
{
    control_hold(s, id, 1, b);
}

static void
control_cmd_release(queue *q, scheduler *s, const struct control_ops *ops,
                    const char *id, struct control_buf *b)
{
    control_hold(s, id, 0, b);
}

static void
control_cmd_reload(queue *q, scheduler *s, const struct control_ops *ops,
                   const char *id, struct control_buf *b)
{
    char *errors = NULL;
    int rc;

    if (ops == NULL || ops->reload == NULL) {
        control_error(b, "reload is not available");
        return;
    }
    rc = ops->reload(ops->arg, &errors);
    if (rc < 0) {
        control_error(b, "reload failed, the running configuration stays");
        if (errors != NULL && errors[0] != '\0')
            control_printf(b, "%s%s", errors,
                           errors[strlen(errors) - 1] == '\n' ? "" : "\n");
    } else {
        control_printf(b, "configuration reloaded\n");
    }
    free(errors);
}

static void
control_cmd_stats(queue *q, scheduler *s, const struct control_ops *ops,
                  const char *id, struct control_buf *b)
{
    struct scheduler_stats st;
    json_t *o;
    char *text;

    scheduler_get_stats(s, &st);
    o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                  "received", (json_int_t)st.received,
                  "delivered", (json_int_t)st.delivered,
                  "deferred", (json_int_t)st.deferred,
                  "bounced", (json_int_t)st.bounced,
                  "dsn_sent", (json_int_t)st.dsn_sent,
                  "in_queue", (json_int_t)st.in_queue,
                  "active", (json_int_t)st.active);
    if (o != NULL && ops != NULL && ops->stats != NULL)
        ops->stats(ops->arg, o);
    text = o != NULL ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (text == NULL) {
        b->oom = 1;
        return;
    }
    control_printf(b, "%s\n", text);
    free(text);
}

/* ---- requests ---- */

static const struct control_cmd control_cmds[] = {
    {"queue", 0, control_cmd_queue},
    {"show", 1, control_cmd_show},
    {"flush", 0, control_cmd_flush},
    {"delete", 1, control_cmd_delete},
    {"hold", 1, control_cmd_hold},
    {"release", 1, control_cmd_release},
    {"reload", 0, control_cmd_reload},
    {"stats", 0, control_cmd_stats},
};

static const struct control_cmd *
control_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(control_cmds) / sizeof(*control_cmds); i++)
        if (strlen(control_cmds[i].name) == len &&
            memcmp(control_cmds[i].name, name, len) == 0)
            return &control_cmds[i];
    return NULL;
}

/* Split "CMD [ID]" and check it; the error goes to b. */
static const struct control_cmd *
control_parse(const char *line, char id[QUEUE_ID_MAX], struct control_buf *b)
{
    size_t n = strcspn(line, " ");
    const char *arg = line + n + strspn(line + n, " ");
    const struct control_cmd *cmd = control_find(line, n);

    id[0] = '\0';
    if (cmd == NULL) {
        control_error(b, "unknown command \"%.*s\"", (int)(n < 64 ? n : 64),
                      line);
        return NULL;
    }
    if (!cmd->takes_id) {
        if (*arg == '\0')
            return cmd;
        control_error(b, "%s takes no argument", cmd->name);
        return NULL;
    }
    if (*arg == '\0') {
        control_error(b, "%s needs a queue ID", cmd->name);
        return NULL;
    }
    if (strlen(arg) >= QUEUE_ID_MAX || !queue_id_valid(arg)) {
        control_error(b, "invalid queue ID");
        return NULL;
    }
    memcpy(id, arg, strlen(arg) + 1);
    return cmd;
}

char *
control_execute(queue *q, scheduler *s, const struct control_ops *ops,
                const char *line)
{
    struct control_buf b = {0};
    char id[QUEUE_ID_MAX];
    const struct control_cmd *cmd = control_parse(line, id, &b);

    if (cmd != NULL && s == NULL && cmd->run != control_cmd_queue &&
        cmd->run != control_cmd_show) {
        control_error(&b, "the scheduler is not running");
    } else if (cmd != NULL) {
        control_printf(&b, "ok\n");
        cmd->run(q, s, ops, id, &b);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- the socket ---- */

static int
control_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return MODMTA_E_IO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One request line: to "\n" or the end of the client's writing.
 * MODMTA_E_IO when the client sent nothing at all. */
static int
control_read_line(int fd, char *line, size_t size)
{
    size_t len = 0;

    for (;;) {
        ssize_t n = recv(fd, line + len, size - 1 - len, 0);
        char *nl;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n == 0 && len == 0))
            return MODMTA_E_IO;
        if (n == 0)
            break;
        nl = memchr(line + len, '\n', (size_t)n);
        len += (size_t)n;
        if (nl != NULL) {
            len = (size_t)(nl - line);
            break;
        }
        if (len == size - 1)
            return MODMTA_E_LIMIT;
    }
    line[len] = '\0';
    line[strcspn(line, "\r")] = '\0';
    return 0;
}

/* The socket is 0600 already; this also keeps out a process that got
 * hold of a descriptor some other way. */
static int
control_peer_ok(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return 0;
    return cred.uid == 0 || cred.uid == geteuid();
}

static void
control_serve(control *c, int fd)
{
    struct timeval tv = {CONTROL_TIMEOUT, 0};
    char line[CONTROL_LINE_MAX];
    char *resp = NULL;
    int rc;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (!control_peer_ok(fd)) {
        control_write_all(fd, "error: permission denied\n", 25);
        return;
    }
    rc = control_read_line(fd, line, sizeof(line));
    if (rc == MODMTA_E_LIMIT) {
        control_write_all(fd, "error: request too long\n", 24);
        return;
    }
    if (rc < 0)
        return;
    modmta_logf(MODMTA_LOG_INFO, "control: request=\"%.64s\"", line);
    if ((resp = control_execute(c->q, c->s, &c->ops, line)) == NULL) {
        control_write_all(fd, "error: out of memory\n", 21);
        return;
    }
    control_write_all(fd, resp, strlen(resp));
    free(resp);
}

static void *
control_thread(void *arg)
{
    control *c = arg;
    struct pollfd pfd[2] = {{.fd = c->fd, .events = POLLIN},
                            {.fd = c->stop_pipe[0], .events = POLLIN}};

    for (;;) {
        int fd;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            modmta_logf(MODMTA_LOG_ERR, "control: poll: %s", strerror(errno));
            return NULL;
        }
        if (pfd[1].revents != 0)
            return NULL;
        if ((fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC)) < 0)
            continue;
        control_serve(c, fd);
        close(fd);
    }
}

/* Remove a stale socket left by a crash; refuse anything else. */
static int
control_clear_path(const struct sockaddr_un *sun, modmta_err *err_r)
{
    struct stat st;
    int fd, live;

    if (lstat(sun->sun_path, &st) < 0)
        return errno == ENOENT ? 0 : MODMTA_E_IO;
    if (!S_ISSOCK(st.st_mode)) {
        modmta_err_set(err_r, "$.control_socket", "%s exists and is not a "
                       "socket", sun->sun_path);
        return MODMTA_E_CONFIG;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return MODMTA_E_IO;
    live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
    close(fd);
    if (live) {
        modmta_err_set(err_r, "$.control_socket", "%s: a modmta is already "
                       "running there", sun->sun_path);
        return MODMTA_E_CONFIG;
    }
    return unlink(sun->sun_path) < 0 ? MODMTA_E_IO : 0;
}

static int
control_listen(control *c, modmta_err *err_r)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    mode_t old;
    int rc;

    if (strlen(c->path) >= sizeof(sun.sun_path)) {
        modmta_err_set(err_r, "$.control_socket", "%s: path too long",
                       c->path);
        return MODMTA_E_CONFIG;
    }
    memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
    if ((rc = control_clear_path(&sun, err_r)) < 0) {
        if (rc == MODMTA_E_IO)
            modmta_err_set(err_r, "$.control_socket", "%s: %s", c->path,
                           strerror(errno));
        return rc;
    }
    if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        goto fail;
    old = umask(0177);
    rc = bind(c->fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc < 0 || listen(c->fd, 16) < 0)
        goto fail;
    return 0;
fail:
    modmta_err_set(err_r, "$.control_socket", "%s: %s", c->path,
                   strerror(errno));
    return MODMTA_E_IO;
}

control *
control_start(const char *path, queue *q, scheduler *s,
              const struct control_ops *ops, modmta_err *err_r)
{
    control *c = calloc(1, sizeof(*c));

    if (c == NULL || (c->path = strdup(path)) == NULL) {
        modmta_err_set(err_r, NULL, "control: out of memory");
        free(c);
        return NULL;
    }
    c->fd = c->stop_pipe[0] = c->stop_pipe[1] = -1;
    c->q = q;
    c->s = s;
    if (ops != NULL)
        c->ops = *ops;
    if (control_listen(c, err_r) < 0)
        goto fail;
    if (pipe2(c->stop_pipe, O_CLOEXEC) < 0 ||
        pthread_create(&c->thread, NULL, control_thread, c) != 0) {
        modmta_err_set(err_r, NULL, "control: cannot start: %s",
                       strerror(errno));
        unlink(c->path);
        goto fail;
    }
    return c;
fail:
    for (int i = 0; i < 2; i++)
        if (c->stop_pipe[i] >= 0)
            close(c->stop_pipe[i]);
    if (c->fd >= 0)
        close(c->fd);
    free(c->path);
    free(c);
    return NULL;
}

void
control_stop(control *c)
{
    if (c == NULL)
        return;
    while (write(c->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(c->thread, NULL);
    close(c->stop_pipe[0]);
    close(c->stop_pipe[1]);
    close(c->fd);
    unlink(c->path);
    free(c->path);
    free(c);
}
