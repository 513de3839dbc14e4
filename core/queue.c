/*
 * The durable queue: see queue.h for the layout and the commit rule.
 *
 * Shared state: the queue struct is immutable after queue_open (paths,
 * directory fds, the sorted list of IDs recovered at open), except for
 * the update counter (atomic) and the striped ID locks, which serialise
 * queue_update against queue_remove on the same message so that an
 * update never resurrects the envelope of a removed message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <modmta/log.h>

#include "queue.h"

#define QUEUE_ID_LEN 20
#define QUEUE_WBUF_SIZE (64 * 1024)
#define QUEUE_NLOCKS 32
#define QUEUE_ENV_VERSION 1
#define QUEUE_ENV_MAX (16 * 1024 * 1024)

struct queue {
    char *spool;
    int tmpfd;                 /* <spool>/tmp */
    int qfd;                   /* <spool>/queue */
    char (*recovered)[QUEUE_ID_MAX]; /* sorted, read-only after open */
    size_t nrecovered;
    atomic_uint tmpseq;        /* unique temp names for queue_update */
    pthread_mutex_t locks[QUEUE_NLOCKS];
};

struct queue_writer {
    queue *q;
    char id[QUEUE_ID_MAX];
    char path[PATH_MAX];       /* <spool>/tmp/ID.msg */
    int fd;
    off_t size;                /* octets accepted, buffered ones included */
    /* The write buffer lives outside the struct so that queue_writer_path,
     * which takes a const writer, can flush it for the on_data hooks. */
    struct queue_wbuf *wb;
};

struct queue_wbuf {
    char data[QUEUE_WBUF_SIZE];
    size_t len;
    int err;                   /* sticky: the first write error */
};

static const char queue_b32[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
static atomic_uint queue_id_seq;
static unsigned long queue_id_tag;
static pthread_once_t queue_id_once = PTHREAD_ONCE_INIT;

static int
queue_errno(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return MODMTA_E_NOSPACE;
    case ENOENT:
        return MODMTA_E_NOTFOUND;
    case ENOMEM:
        return MODMTA_E_NOMEM;
    default:
        return MODMTA_E_IO;
    }
}

/* ---- IDs ---- */

static void
queue_id_init(void)
{
    unsigned long tag = 0;

    if (getrandom(&tag, sizeof(tag), 0) != (ssize_t)sizeof(tag)) {
        struct timeval tv;

        gettimeofday(&tv, NULL);
        tag = (unsigned long)getpid() * 2654435761UL ^
              (unsigned long)tv.tv_usec;
    }
    queue_id_tag = tag;
}

static char *
queue_id_put(char *p, unsigned long v, int nchars)
{
    for (int i = nchars - 1; i >= 0; i--) {
        p[i] = queue_b32[v & 31];
        v >>= 5;
    }
    return p + nchars;
}

/* 20 base32hex characters: seconds (7), microseconds (4), a per-process
 * counter (4) and a per-process random tag (5). IDs sort by time; the
 * counter separates threads, the tag separates processes and nodes. */
void
queue_new_id(char id[QUEUE_ID_MAX])
{
    struct timeval tv;
    unsigned long seq;
    char *p = id;

    pthread_once(&queue_id_once, queue_id_init);
    gettimeofday(&tv, NULL);
    seq = atomic_fetch_add(&queue_id_seq, 1);
    p = queue_id_put(p, (unsigned long)tv.tv_sec, 7);
    p = queue_id_put(p, (unsigned long)tv.tv_usec, 4);
    p = queue_id_put(p, seq, 4);
    p = queue_id_put(p, queue_id_tag, 5);
    *p = '\0';
}

int
queue_id_valid(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++) {
        if (n >= QUEUE_ID_LEN)
            return 0;
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'A' && s[n] <= 'Z')))
            return 0;
    }
    return n > 0;
}

/* ---- small file helpers ---- */

static int
queue_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return queue_errno(errno);
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Create dirfd/name (must not exist), write data, make it durable. */
static int
queue_write_file(int dirfd, const char *name, const char *data, size_t len)
{
    int fd, rc;

    fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return queue_errno(errno);
    rc = queue_write_all(fd, data, len);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = queue_errno(errno);
    if (close(fd) < 0 && rc == 0)
        rc = queue_errno(errno);
    if (rc < 0)
        unlinkat(dirfd, name, 0);
    return rc;
}

static pthread_mutex_t *
queue_lock_for(queue *q, const char *id)
{
    unsigned h = 5381;

    for (; *id != '\0'; id++)
        h = h * 33 + (unsigned char)*id;
    return &q->locks[h % QUEUE_NLOCKS];
}

static int
queue_id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int
queue_was_recovered(const queue *q, const char *id)
{
    if (q->nrecovered == 0)
        return 0;
    return bsearch(id, q->recovered, q->nrecovered, QUEUE_ID_MAX,
                   queue_id_cmp) != NULL;
}

/* ---- envelope JSON ---- */

static json_t *
queue_jstr(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *
queue_env_to_json(const queue_env *env)
{
    static const char *const states[] = {"pending", "delivered", "failed"};
    json_t *rcpts = json_array();
    json_t *o;

    for (size_t i = 0; rcpts != NULL && i < env->nrcpts; i++) {
        const queue_rcpt *r = &env->rcpts[i];
        unsigned st = (unsigned)r->state <= QRCPT_FAILED ? r->state : 0;

        json_array_append_new(rcpts, json_pack("{s:o, s:o, s:s, s:o, s:b}",
            "addr", queue_jstr(r->addr), "orcpt", queue_jstr(r->orcpt),
            "state", states[st], "status", queue_jstr(r->status),
            "dsn_sent", r->dsn_sent));
    }
    if (rcpts == NULL || json_array_size(rcpts) != env->nrcpts) {
        json_decref(rcpts);
        return NULL;
    }
    o = json_pack("{s:i, s:s, s:s, s:o, s:I, s:o, s:o, s:o, s:o, s:o,"
                  " s:o, s:i, s:I, s:b, s:I}",
        "version", QUEUE_ENV_VERSION, "id", env->id,
        "sender", env->sender != NULL ? env->sender : "", "rcpts", rcpts,
        "arrival", (json_int_t)env->arrival,
        "client_addr", queue_jstr(env->client_addr),
        "client_name", queue_jstr(env->client_name),
        "helo", queue_jstr(env->helo), "protocol", queue_jstr(env->protocol),
        "auth_user", queue_jstr(env->auth_user),
        "quarantine", queue_jstr(env->quarantine),
        "attempts", env->attempts, "next_retry", (json_int_t)env->next_retry,
        "held", env->held, "size", (json_int_t)env->size);
    return o;
}

static char *
queue_env_dump(const queue_env *env, size_t *len_r)
{
    json_t *o = queue_env_to_json(env);
    char *s;

    if (o == NULL)
        return NULL;
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s != NULL)
        *len_r = strlen(s);
    return s;
}

/* A string field: absent or null gives NULL; a non-string is an error. */
static int
queue_jget_str(const json_t *o, const char *key, char **out)
{
    const json_t *v = json_object_get(o, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return MODMTA_E_INVAL;
    *out = strdup(json_string_value(v));
    return *out != NULL ? 0 : MODMTA_E_NOMEM;
}

static int
queue_jget_int(const json_t *o, const char *key, json_int_t *out)
{
    const json_t *v = json_object_get(o, key);

    *out = 0;
    if (v == NULL)
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (!json_is_integer(v))
        return MODMTA_E_INVAL;
    *out = json_integer_value(v);
    return 0;
}

static int
queue_rcpt_from_json(const json_t *o, queue_rcpt *r)
{
    const char *st;
    json_int_t dsn;
    int rc;

    if (!json_is_object(o))
        return MODMTA_E_INVAL;
    if ((rc = queue_jget_str(o, "addr", &r->addr)) < 0 ||
        (rc = queue_jget_str(o, "orcpt", &r->orcpt)) < 0 ||
        (rc = queue_jget_str(o, "status", &r->status)) < 0 ||
        (rc = queue_jget_int(o, "dsn_sent", &dsn)) < 0)
        return rc;
    if (r->addr == NULL)
        return MODMTA_E_INVAL;
    r->dsn_sent = dsn != 0;
    st = json_string_value(json_object_get(o, "state"));
    if (st == NULL || strcmp(st, "pending") == 0)
        r->state = QRCPT_PENDING;
    else if (strcmp(st, "delivered") == 0)
        r->state = QRCPT_DELIVERED;
    else if (strcmp(st, "failed") == 0)
        r->state = QRCPT_FAILED;
    else
        return MODMTA_E_INVAL;
    return 0;
}

static int
queue_env_from_json(const json_t *o, queue_env *env)
{
    const json_t *rcpts = json_object_get(o, "rcpts");
    json_int_t version, arrival, attempts, next_retry, held, size;
    int rc;

    if (!json_is_object(o) || !json_is_array(rcpts))
        return MODMTA_E_INVAL;
    /* A newer format could hold fields an update here would drop. */
    if ((rc = queue_jget_int(o, "version", &version)) < 0)
        return rc;
    if (version > QUEUE_ENV_VERSION)
        return MODMTA_E_UNSUPPORTED;
    if ((rc = queue_jget_str(o, "sender", &env->sender)) < 0 ||
        (rc = queue_jget_str(o, "client_addr", &env->client_addr)) < 0 ||
        (rc = queue_jget_str(o, "client_name", &env->client_name)) < 0 ||
        (rc = queue_jget_str(o, "helo", &env->helo)) < 0 ||
        (rc = queue_jget_str(o, "protocol", &env->protocol)) < 0 ||
        (rc = queue_jget_str(o, "auth_user", &env->auth_user)) < 0 ||
        (rc = queue_jget_str(o, "quarantine", &env->quarantine)) < 0 ||
        (rc = queue_jget_int(o, "arrival", &arrival)) < 0 ||
        (rc = queue_jget_int(o, "attempts", &attempts)) < 0 ||
        (rc = queue_jget_int(o, "next_retry", &next_retry)) < 0 ||
        (rc = queue_jget_int(o, "held", &held)) < 0 ||
        (rc = queue_jget_int(o, "size", &size)) < 0)
        return rc;
    if (env->sender == NULL)
        return MODMTA_E_INVAL;
    env->arrival = (time_t)arrival;
    env->attempts = (int)attempts;
    env->next_retry = (time_t)next_retry;
    env->held = held != 0;
    env->size = (off_t)size;
    env->nrcpts = json_array_size(rcpts);
    if (env->nrcpts == 0)
        return 0;
    env->rcpts = calloc(env->nrcpts, sizeof(*env->rcpts));
    if (env->rcpts == NULL) {
        env->nrcpts = 0;
        return MODMTA_E_NOMEM;
    }
    for (size_t i = 0; i < env->nrcpts; i++) {
        rc = queue_rcpt_from_json(json_array_get(rcpts, i), &env->rcpts[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void
queue_env_free(queue_env *env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; i < env->nrcpts; i++) {
        free(env->rcpts[i].addr);
        free(env->rcpts[i].orcpt);
        free(env->rcpts[i].status);
    }
    free(env->rcpts);
    free(env->sender);
    free(env->client_addr);
    free(env->client_name);
    free(env->helo);
    free(env->protocol);
    free(env->auth_user);
    free(env->quarantine);
    free(env);
}

/* ---- open and recovery ---- */

static int
queue_mkdir(int dirfd, const char *name)
{
    if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
        return -1;
    return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int
queue_has_suffix(const char *name, const char *suffix, char id[QUEUE_ID_MAX])
{
    size_t n = strlen(name), s = strlen(suffix);

    if (n <= s || n - s >= QUEUE_ID_MAX || strcmp(name + n - s, suffix) != 0)
        return 0;
    memcpy(id, name, n - s);
    id[n - s] = '\0';
    return queue_id_valid(id);
}

static int
queue_exists(int dirfd, const char *id, const char *suffix)
{
    char name[QUEUE_ID_MAX + 8];
    struct stat st;

    snprintf(name, sizeof(name), "%s%s", id, suffix);
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
queue_clean_tmp(queue *q)
{
    int fd = openat(q->tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (unlinkat(q->tmpfd, de->d_name, 0) < 0)
            modmta_logf(MODMTA_LOG_WARN, "queue: cannot remove tmp/%s: %s",
                        de->d_name, strerror(errno));
    }
    closedir(d);
}

/* An envelope without content cannot be delivered: keep it for a human. */
static void
queue_move_corrupt(queue *q, const char *id)
{
    char name[QUEUE_ID_MAX + 8];
    int cfd = -1;
    int spfd = open(q->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (spfd >= 0)
        cfd = queue_mkdir(spfd, "corrupt");
    snprintf(name, sizeof(name), "%s.env", id);
    modmta_logf(MODMTA_LOG_ERR, "%s: queue: envelope without content, "
                "moved to %s/corrupt", id, q->spool);
    if (cfd < 0 || renameat(q->qfd, name, cfd, name) < 0)
        modmta_logf(MODMTA_LOG_ERR, "%s: queue: cannot move to corrupt/: %s",
                    id, strerror(errno));
    if (cfd >= 0)
        close(cfd);
    if (spfd >= 0)
        close(spfd);
}

static int
queue_remember(queue *q, const char *id, size_t *cap)
{
    if (q->nrecovered == *cap) {
        size_t ncap = *cap != 0 ? *cap * 2 : 64;
        void *p = realloc(q->recovered, ncap * QUEUE_ID_MAX);

        if (p == NULL)
            return MODMTA_E_NOMEM;
        q->recovered = p;
        *cap = ncap;
    }
    snprintf(q->recovered[q->nrecovered++], QUEUE_ID_MAX, "%s", id);
    return 0;
}

/* Remove interrupted commits, set aside orphan envelopes, and remember
 * the IDs of the complete messages. */
static int
queue_recover(queue *q)
{
    int fd = openat(q->qfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    char id[QUEUE_ID_MAX];
    size_t cap = 0;
    int rc = 0;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return queue_errno(errno);
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (queue_has_suffix(de->d_name, ".msg", id)) {
            if (queue_exists(q->qfd, id, ".env"))
                continue;
            modmta_logf(MODMTA_LOG_NOTICE, "%s: queue: removing interrupted "
                        "commit", id);
            unlinkat(q->qfd, de->d_name, 0);
        } else if (queue_has_suffix(de->d_name, ".env", id)) {
            if (queue_exists(q->qfd, id, ".msg"))
                rc = queue_remember(q, id, &cap);
            else
                queue_move_corrupt(q, id);
        }
    }
    closedir(d);
    if (q->nrecovered > 1)
        qsort(q->recovered, q->nrecovered, QUEUE_ID_MAX, queue_id_cmp);
    return rc;
}

queue *
queue_open(const char *spool, modmta_err *err_r)
{
    queue *q = calloc(1, sizeof(*q));
    int spfd, rc;

    if (q == NULL || (q->spool = strdup(spool)) == NULL) {
        free(q);
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    q->tmpfd = q->qfd = -1;
    for (int i = 0; i < QUEUE_NLOCKS; i++)
        pthread_mutex_init(&q->locks[i], NULL);
    if (mkdir(spool, 0700) < 0 && errno != EEXIST) {
        modmta_err_set(err_r, NULL, "%s: %s", spool, strerror(errno));
        queue_close(q);
        return NULL;
    }
    spfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (spfd >= 0) {
        q->tmpfd = queue_mkdir(spfd, "tmp");
        q->qfd = queue_mkdir(spfd, "queue");
        close(spfd);
    }
    if (q->tmpfd < 0 || q->qfd < 0) {
        modmta_err_set(err_r, NULL, "%s: cannot create the spool layout: %s",
                       spool, strerror(errno));
        queue_close(q);
        return NULL;
    }
    queue_clean_tmp(q);
    rc = queue_recover(q);
    if (rc < 0) {
        modmta_err_set(err_r, NULL, "%s/queue: %s", spool,
                       modmta_strerror(rc));
        queue_close(q);
        return NULL;
    }
    return q;
}

void
queue_close(queue *q)
{
    if (q == NULL)
        return;
    if (q->tmpfd >= 0)
        close(q->tmpfd);
    if (q->qfd >= 0)
        close(q->qfd);
    for (int i = 0; i < QUEUE_NLOCKS; i++)
        pthread_mutex_destroy(&q->locks[i]);
    free(q->recovered);
    free(q->spool);
    free(q);
}

const char *
queue_spool(const queue *q)
{
    return q->spool;
}

/* ---- receiving ---- */

queue_writer *
queue_writer_new(queue *q, modmta_err *err_r)
{
    queue_writer *w = calloc(1, sizeof(*w));
    char name[QUEUE_ID_MAX + 8];

    if (w == NULL || (w->wb = malloc(sizeof(*w->wb))) == NULL) {
        free(w);
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    w->q = q;
    w->wb->len = 0;
    w->wb->err = 0;
    /* O_EXCL makes a (very unlikely) ID collision a retry, not a clash. */
    for (int tries = 0; tries < 8; tries++) {
        queue_new_id(w->id);
        snprintf(name, sizeof(name), "%s.msg", w->id);
        w->fd = openat(q->tmpfd, name,
                       O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd >= 0 || errno != EEXIST)
            break;
    }
    if (w->fd < 0) {
        modmta_err_set(err_r, NULL, "%s/tmp/%s: %s", q->spool, name,
                       strerror(errno));
        free(w->wb);
        free(w);
        return NULL;
    }
    snprintf(w->path, sizeof(w->path), "%s/tmp/%s", q->spool, name);
    return w;
}

const char *
queue_writer_id(const queue_writer *w)
{
    return w->id;
}

static int
queue_writer_flush(const queue_writer *w)
{
    struct queue_wbuf *wb = w->wb;

    if (wb->err == 0 && wb->len > 0)
        wb->err = queue_write_all(w->fd, wb->data, wb->len);
    wb->len = 0;
    return wb->err;
}

/* Flushes the buffer: hooks read the file by this path. A flush error is
 * kept and reported by the next write or the commit. */
const char *
queue_writer_path(const queue_writer *w)
{
    queue_writer_flush(w);
    return w->path;
}

off_t
queue_writer_size(const queue_writer *w)
{
    return w->size;
}

int
queue_writer_write(queue_writer *w, const void *buf, size_t len)
{
    struct queue_wbuf *wb = w->wb;

    if (wb->err != 0)
        return wb->err;
    if (len > sizeof(wb->data) - wb->len) {
        if (queue_writer_flush(w) < 0)
            return wb->err;
        if (len >= sizeof(wb->data)) {
            wb->err = queue_write_all(w->fd, buf, len);
            if (wb->err == 0)
                w->size += (off_t)len;
            return wb->err;
        }
    }
    memcpy(wb->data + wb->len, buf, len);
    wb->len += len;
    w->size += (off_t)len;
    return 0;
}

/* Copy from fd at off to the end into out. */
static int
queue_copy_tail(int fd, off_t off, int out)
{
    char buf[16384];
    ssize_t n;
    int rc;

    while ((n = pread(fd, buf, sizeof(buf), off)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return queue_errno(errno);
        }
        if ((rc = queue_write_all(out, buf, (size_t)n)) < 0)
            return rc;
        off += n;
    }
    return 0;
}

int
queue_writer_replace_head(queue_writer *w, off_t old_len, const char *hdr,
                          size_t hdr_len)
{
    char name[QUEUE_ID_MAX + 8], nname[QUEUE_ID_MAX + 8];
    int rc, nfd;

    if ((rc = queue_writer_flush(w)) < 0)
        return rc;
    if (old_len < 0 || old_len > w->size)
        return MODMTA_E_INVAL;
    if ((off_t)hdr_len == old_len) {
        ssize_t n = pwrite(w->fd, hdr, hdr_len, 0);

        if (n != (ssize_t)hdr_len)
            w->wb->err = n < 0 ? queue_errno(errno) : MODMTA_E_IO;
        return w->wb->err;
    }
    /* Another length: write a new file and rename it over the old one. */
    snprintf(name, sizeof(name), "%s.msg", w->id);
    snprintf(nname, sizeof(nname), "%s.new", w->id);
    nfd = openat(w->q->tmpfd, nname,
                 O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (nfd < 0)
        return queue_errno(errno);
    rc = queue_write_all(nfd, hdr, hdr_len);
    if (rc == 0)
        rc = queue_copy_tail(w->fd, old_len, nfd);
    if (rc == 0 && renameat(w->q->tmpfd, nname, w->q->tmpfd, name) < 0)
        rc = queue_errno(errno);
    if (rc < 0) {
        close(nfd);
        unlinkat(w->q->tmpfd, nname, 0);
        return rc;
    }
    close(w->fd);
    w->fd = nfd;
    w->size = w->size - old_len + (off_t)hdr_len;
    return 0;
}

/* committed: the content was renamed away, nothing to unlink */
static void
queue_writer_free(queue_writer *w, int committed)
{
    char name[QUEUE_ID_MAX + 8];

    if (w->fd >= 0)
        close(w->fd);
    if (!committed) {
        snprintf(name, sizeof(name), "%s.msg", w->id);
        unlinkat(w->q->tmpfd, name, 0);
    }
    free(w->wb);
    free(w);
}

void
queue_writer_abort(queue_writer *w)
{
    if (w != NULL)
        queue_writer_free(w, 0);
}

/* Content, then envelope, into queue/; the envelope's rename commits. */
static int
queue_commit_files(queue_writer *w, const char *json, size_t len)
{
    queue *q = w->q;
    char msg[QUEUE_ID_MAX + 8], env[QUEUE_ID_MAX + 8];
    int rc;

    snprintf(msg, sizeof(msg), "%s.msg", w->id);
    snprintf(env, sizeof(env), "%s.env", w->id);
    if ((rc = queue_write_file(q->tmpfd, env, json, len)) < 0)
        return rc;
    if (renameat(q->tmpfd, msg, q->qfd, msg) < 0) {
        rc = queue_errno(errno);
        unlinkat(q->tmpfd, env, 0);
        return rc == MODMTA_E_NOTFOUND ? MODMTA_E_IO : rc;
    }
    if (renameat(q->tmpfd, env, q->qfd, env) < 0 || fsync(q->qfd) < 0) {
        rc = queue_errno(errno);
        unlinkat(q->qfd, env, 0);
        unlinkat(q->tmpfd, env, 0);
        unlinkat(q->qfd, msg, 0);
        return rc == MODMTA_E_NOTFOUND ? MODMTA_E_IO : rc;
    }
    return 0;
}

/* env->id and env->size come from the writer; an arrival of 0 is "now". */
int
queue_writer_commit(queue_writer *w, queue_env *env)
{
    char *json = NULL;
    size_t len = 0;
    int rc;

    snprintf(env->id, sizeof(env->id), "%s", w->id);
    env->size = w->size;
    if (env->arrival == 0)
        env->arrival = time(NULL);
    rc = queue_writer_flush(w);
    if (rc == 0 && fdatasync(w->fd) < 0)
        rc = queue_errno(errno);
    if (rc == 0 && (json = queue_env_dump(env, &len)) == NULL)
        rc = MODMTA_E_NOMEM;
    if (rc == 0)
        rc = queue_commit_files(w, json, len);
    if (rc < 0)
        modmta_logf(MODMTA_LOG_ERR, "%s: queue: commit failed: %s", w->id,
                    modmta_strerror(rc));
    free(json);
    queue_writer_free(w, rc == 0);
    return rc;
}

/* ---- queued messages ---- */

static int
queue_read_env(queue *q, const char *id, json_t **o_r)
{
    char name[QUEUE_ID_MAX + 8];
    json_error_t jerr;
    struct stat st;
    char *buf;
    ssize_t n;
    int fd, rc = 0;

    snprintf(name, sizeof(name), "%s.env", id);
    fd = openat(q->qfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return queue_errno(errno);
    if (fstat(fd, &st) < 0 || st.st_size > QUEUE_ENV_MAX) {
        close(fd);
        return MODMTA_E_IO;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return MODMTA_E_NOMEM;
    }
    n = pread(fd, buf, (size_t)st.st_size, 0);
    close(fd);
    if (n != st.st_size)
        rc = MODMTA_E_IO;
    else if ((*o_r = json_loadb(buf, (size_t)n, 0, &jerr)) == NULL)
        rc = MODMTA_E_INVAL;
    if (rc == MODMTA_E_INVAL)
        modmta_logf(MODMTA_LOG_ERR, "%s: queue: bad envelope: %s", id,
                    jerr.text);
    free(buf);
    return rc;
}

int
queue_load(queue *q, const char *id, queue_env **env_r)
{
    queue_env *env;
    json_t *o = NULL;
    int rc;

    *env_r = NULL;
    if (!queue_id_valid(id))
        return MODMTA_E_INVAL;
    if ((rc = queue_read_env(q, id, &o)) < 0)
        return rc;
    env = calloc(1, sizeof(*env));
    if (env == NULL) {
        json_decref(o);
        return MODMTA_E_NOMEM;
    }
    rc = queue_env_from_json(o, env);
    json_decref(o);
    if (rc < 0) {
        modmta_logf(MODMTA_LOG_ERR, "%s: queue: bad envelope: %s", id,
                    modmta_strerror(rc));
        queue_env_free(env);
        return rc;
    }
    /* The file name, not the content, names the message. */
    snprintf(env->id, sizeof(env->id), "%s", id);
    env->recovered = queue_was_recovered(q, id);
    *env_r = env;
    return 0;
}

/* No directory fsync here: a lost update only repeats a delivery attempt,
 * which the mailbox module de-duplicates; the rename itself is atomic. */
int
queue_update(queue *q, const queue_env *env)
{
    pthread_mutex_t *lock;
    char tmp[QUEUE_ID_MAX + 24], name[QUEUE_ID_MAX + 8];
    char *json;
    size_t len = 0;
    int rc;

    if (!queue_id_valid(env->id))
        return MODMTA_E_INVAL;
    if ((json = queue_env_dump(env, &len)) == NULL)
        return MODMTA_E_NOMEM;
    snprintf(tmp, sizeof(tmp), "%s.u%u", env->id,
             atomic_fetch_add(&q->tmpseq, 1));
    snprintf(name, sizeof(name), "%s.env", env->id);
    rc = queue_write_file(q->tmpfd, tmp, json, len);
    free(json);
    if (rc < 0)
        return rc;
    lock = queue_lock_for(q, env->id);
    pthread_mutex_lock(lock);
    /* Never bring back the envelope of a removed message. */
    if (!queue_exists(q->qfd, env->id, ".msg"))
        rc = MODMTA_E_NOTFOUND;
    else if (renameat(q->tmpfd, tmp, q->qfd, name) < 0)
        rc = queue_errno(errno);
    pthread_mutex_unlock(lock);
    if (rc < 0)
        unlinkat(q->tmpfd, tmp, 0);
    return rc;
}

/* Not fsync'ed either: a lost removal means one more (de-duplicated)
 * delivery attempt after a crash. */
int
queue_remove(queue *q, const char *id)
{
    pthread_mutex_t *lock;
    char name[QUEUE_ID_MAX + 8];
    int rc = 0;

    if (!queue_id_valid(id))
        return MODMTA_E_INVAL;
    lock = queue_lock_for(q, id);
    pthread_mutex_lock(lock);
    snprintf(name, sizeof(name), "%s.env", id);
    if (unlinkat(q->qfd, name, 0) < 0)
        rc = queue_errno(errno);
    snprintf(name, sizeof(name), "%s.msg", id);
    if (unlinkat(q->qfd, name, 0) < 0 && rc == 0)
        rc = queue_errno(errno);
    pthread_mutex_unlock(lock);
    return rc;
}

int
queue_content_path(const queue *q, const char *id, char *buf, size_t len)
{
    int n;

    if (!queue_id_valid(id))
        return MODMTA_E_INVAL;
    n = snprintf(buf, len, "%s/queue/%s.msg", q->spool, id);
    if (n < 0 || (size_t)n >= len)
        return MODMTA_E_LIMIT;
    return 0;
}

struct queue_list {
    queue_env **envs;
    size_t n, cap;
};

static int
queue_list_add(struct queue_list *l, queue_env *env)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap != 0 ? l->cap * 2 : 64;
        void *p = realloc(l->envs, ncap * sizeof(*l->envs));

        if (p == NULL)
            return MODMTA_E_NOMEM;
        l->envs = p;
        l->cap = ncap;
    }
    l->envs[l->n++] = env;
    return 0;
}

static int
queue_env_cmp(const void *a, const void *b)
{
    const queue_env *x = *(queue_env *const *)a;
    const queue_env *y = *(queue_env *const *)b;

    if (x->arrival != y->arrival)
        return x->arrival < y->arrival ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Load every envelope; a message removed meanwhile or with a broken
 * envelope (logged by queue_load) is skipped. */
static int
queue_scan(queue *q, struct queue_list *l)
{
    int fd = openat(q->qfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    char id[QUEUE_ID_MAX];
    queue_env *env;
    int rc = 0;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return queue_errno(errno);
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!queue_has_suffix(de->d_name, ".env", id))
            continue;
        if (queue_load(q, id, &env) == MODMTA_E_NOMEM)
            rc = MODMTA_E_NOMEM;
        else if (env != NULL && (rc = queue_list_add(l, env)) < 0)
            queue_env_free(env);
    }
    closedir(d);
    return rc;
}

int
queue_foreach(queue *q, int (*cb)(const queue_env *env, void *arg),
              void *arg)
{
    struct queue_list l = {0};
    int rc = queue_scan(q, &l);
    size_t i = 0;

    if (rc == 0 && l.n > 1)
        qsort(l.envs, l.n, sizeof(*l.envs), queue_env_cmp);
    for (; rc == 0 && i < l.n; i++)
        if (cb(l.envs[i], arg) != 0)
            break;
    for (i = 0; i < l.n; i++)
        queue_env_free(l.envs[i]);
    free(l.envs);
    return rc;
}
