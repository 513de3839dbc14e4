/*
 * The durable queue.
 *
 * On-disk format, in <spool> (every file 0600, every directory 0700). X is
 * one character of the ID, the one that changes fastest (queue_sub): the
 * files of one moment spread over 36 subdirectories, so that concurrent
 * sessions do not queue on one directory's lock.
 *
 *   tmp/X/ID.msg    content being received; at commit it gets the envelope
 *                   in its extended attribute "user.modmta.env" (the
 *                   JSON of queue_env.h), then one fsync makes content
 *                   and envelope durable and it is renamed to
 *                   queue/X/ID.msg.
 *   tmp/X/ID.env    the envelope of a commit on a file system without
 *                   user xattrs (or an envelope too large for one): the
 *                   two-file fallback. tmp/X/ID.uN are the temporary
 *                   files of queue_update.
 *   queue/X/ID.msg  a committed message. Its content is the message from
 *                   the first octet (readers need no offset); its
 *                   envelope is queue/X/ID.env if that exists, else the
 *                   xattr, which is written once and never changed.
 *   queue/X/ID.env  the envelope as JSON: written by queue_update (tmp,
 *                   fdatasync, rename: it supersedes the xattr) or by the
 *                   fallback commit (renamed in before the .msg).
 *   corrupt/        files recovery could not make sense of, for a human.
 *
 * The rename of ID.msg into queue/X/ is the commit point, and the commit
 * returns only once an fsync of queue/X/ covers that rename. Concurrent
 * committers share that fsync (queue_sync_dir: group commit). Removal
 * unlinks ID.msg first (the message is gone), then ID.env.
 *
 * Fast path per message: create tmp/X/ID.msg, write, fsetxattr, fsync,
 * rename, and a share of one fsync(queue/X).
 *
 * Recovery at queue_open: everything in tmp/ is removed (receives,
 * commits and updates that did not finish); in queue/X/, an ID.env
 * without its ID.msg is an interrupted removal or fallback commit and is
 * removed; an ID.msg with neither ID.env nor the xattr cannot come from
 * this code (a copy that dropped the xattrs?) and goes to corrupt/.
 *
 * Shared state: the queue struct is immutable after queue_open (paths,
 * directory fds, the sorted list of IDs recovered at open), except for
 * the atomic counters, the group-commit state (its own mutex), the list
 * of stale envelopes (its own mutex) and the striped ID locks, which
 * serialise queue_update against queue_remove on the same message so
 * that an update never resurrects the envelope of a removed message.
 *
 * A stale envelope is one whose update failed: the file says less than
 * was done (a recipient delivered, a DSN sent, still pending there).
 * Until an update succeeds, the queue keeps the envelope it could not
 * write and gives it to readers instead of the file's, and queue_load
 * flags the message as recovered, as after a crash, so that its next
 * attempt's mailboxes de-duplicate. A restart forgets it: what the file
 * says is then all there is, recovered as after any crash. The kept
 * envelopes are capped (QUEUE_STALE_MAX_BYTES); past it only the flag is.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <modmta/log.h>

#include "queue.h"
#include "queue_env.h"

#define QUEUE_ID_LEN 20
#define QUEUE_WBUF_SIZE (64 * 1024)
#define QUEUE_NLOCKS 32
#define QUEUE_ENV_MAX (16 * 1024 * 1024)
/* Unwritten envelopes kept in memory, in all: past it, a stale message
 * keeps only its flag (a full spool fails every deferral's update). */
#define QUEUE_STALE_MAX_BYTES (16u * 1024 * 1024)
#define QUEUE_NSUB 36              /* one subdirectory per ID character */
#define QUEUE_SUB_POS 14           /* the last character of the counter */
#define QUEUE_XATTR "user.modmta.env"
#define QUEUE_XATTR_GUESS 4096     /* first read size: most envelopes fit */

/* Group commit of the directory fsync. A committer counts its rename
 * (renamed_seq) and waits until synced_seq reaches its number; the first
 * waiter finding no fsync under way leads one: it takes every rename
 * counted so far (they are done) and the subdirectories they touched,
 * fsyncs those, and publishes the new synced_seq to all. */
struct queue_gsync {
    pthread_mutex_t lock;
    pthread_cond_t done;
    unsigned long renamed_seq;
    unsigned long synced_seq;
    uint64_t dirty;            /* subdirectories renamed into since the
                                * last round began (bit per index) */
    int syncing;               /* a leader is in fsync */
    /* The hull of the sequence numbers covered by failed rounds: a
     * committer inside it fails (conservative: one that checks late may
     * fail although its own round succeeded). fail_hi 0: none. */
    unsigned long fail_lo, fail_hi;
    int fail_rc;
};

struct queue {
    char *spool;
    int tmpfd;                 /* <spool>/tmp */
    int qfd;                   /* <spool>/queue */
    int tsub[QUEUE_NSUB];      /* <spool>/tmp/X */
    int qsub[QUEUE_NSUB];      /* <spool>/queue/X */
    char (*recovered)[QUEUE_ID_MAX]; /* sorted, read-only after open */
    size_t nrecovered;
    pthread_mutex_t stale_lock;
    struct queue_stale *stale;       /* envelopes whose update failed,
                                      * sorted by ID */
    size_t nstale, capstale;
    size_t stale_bytes;              /* their JSON, at most the cap */
    atomic_uint tmpseq;        /* unique temp names for queue_update */
    atomic_int no_xattr;       /* the spool refused user xattrs */
    pthread_mutex_t locks[QUEUE_NLOCKS];
    struct queue_gsync gs;
};

/* An envelope that could not be written; json NULL (len 0) if it could
 * not be kept (out of memory, or the cap below reached). */
struct queue_stale {
    char id[QUEUE_ID_MAX];
    char *json;
    size_t len;
};

struct queue_writer {
    queue *q;
    char id[QUEUE_ID_MAX];
    char path[PATH_MAX];       /* <spool>/tmp/X/ID.msg */
    int sub;                   /* X's index */
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

/* The ID alphabet: IDs are base32hex (the first 32), queue_id_valid
 * accepts all 36, and each has a subdirectory. */
static const char queue_digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
static atomic_uint queue_id_seq;
static unsigned long queue_id_tag;
static pthread_once_t queue_id_once = PTHREAD_ONCE_INIT;

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
        p[i] = queue_digits[v & 31];
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

/* The subdirectory of a valid ID: the last character of the counter
 * (consecutive messages of a process go round all 32 base32hex ones),
 * or the last character of a shorter ID. */
static int
queue_sub(const char *id)
{
    size_t n = strlen(id);
    char c = id[n > QUEUE_SUB_POS ? QUEUE_SUB_POS : n - 1];

    return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* "name" of queue/X/ID<suffix>, or of tmp/X/ID<suffix>. */
static void
queue_name(char *buf, size_t len, const char *id, const char *suffix)
{
    snprintf(buf, len, "%s%s", id, suffix);
}

/* ---- small file helpers ---- */

/* All of buf, at off, or at the file position when off < 0. */
static int
queue_write_at(int fd, const char *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = off < 0 ? write(fd, buf, len) : pwrite(fd, buf, len, off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return modmta_err_from_errno(errno);
        }
        buf += n;
        len -= (size_t)n;
        if (off >= 0)
            off += n;
    }
    return 0;
}

static int
queue_write_all(int fd, const char *buf, size_t len)
{
    return queue_write_at(fd, buf, len, -1);
}

/* Create dirfd/name (must not exist), write data, make it durable. */
static int
queue_write_file(int dirfd, const char *name, const char *data, size_t len)
{
    int fd, rc;

    fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return modmta_err_from_errno(errno);
    rc = queue_write_all(fd, data, len);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = modmta_err_from_errno(errno);
    if (close(fd) < 0 && rc == 0)
        rc = modmta_err_from_errno(errno);
    if (rc < 0)
        unlinkat(dirfd, name, 0);
    return rc;
}

/* The whole of dirfd/name, NUL-terminated, into *buf_r (caller frees). */
static int
queue_read_file(int dirfd, const char *name, char **buf_r, size_t *len_r)
{
    struct stat st;
    ssize_t n;
    char *buf;
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return modmta_err_from_errno(errno);
    if (fstat(fd, &st) < 0 || st.st_size > QUEUE_ENV_MAX) {
        close(fd);
        return MODMTA_E_IO;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        close(fd);
        return MODMTA_E_NOMEM;
    }
    n = pread(fd, buf, (size_t)st.st_size, 0);
    close(fd);
    if (n != st.st_size) {
        free(buf);
        return MODMTA_E_IO;
    }
    buf[n] = '\0';
    *buf_r = buf;
    *len_r = (size_t)n;
    return 0;
}

static int
queue_exists(int dirfd, const char *id, const char *suffix)
{
    char name[QUEUE_ID_MAX + 8];
    struct stat st;

    queue_name(name, sizeof(name), id, suffix);
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* "<spool>/queue/X/ID.msg", the path the xattr calls need. */
static int
queue_msg_path(const queue *q, const char *id, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/queue/%c/%s.msg", q->spool,
                     queue_digits[queue_sub(id)], id);

    return n < 0 || (size_t)n >= len ? MODMTA_E_LIMIT : 0;
}

/* The envelope in the xattr of queue/X/ID.msg, NUL-terminated. No
 * message, or no envelope in it: MODMTA_E_NOTFOUND. */
static int
queue_read_xattr(const queue *q, const char *id, char **buf_r,
                 size_t *len_r)
{
    char path[PATH_MAX];
    size_t cap = QUEUE_XATTR_GUESS;
    ssize_t n;
    char *buf;
    int rc;

    if ((rc = queue_msg_path(q, id, path, sizeof(path))) < 0)
        return rc;
    for (;;) {
        if ((buf = malloc(cap + 1)) == NULL)
            return MODMTA_E_NOMEM;
        n = getxattr(path, QUEUE_XATTR, buf, cap);
        if (n >= 0 || errno != ERANGE)
            break;
        free(buf);
        n = getxattr(path, QUEUE_XATTR, NULL, 0);
        if (n < 0 || n > QUEUE_ENV_MAX)
            return n < 0 ? modmta_err_from_errno(errno) : MODMTA_E_IO;
        cap = (size_t)n;
    }
    if (n < 0) {
        rc = errno == ENODATA || errno == ENOTSUP
                 ? MODMTA_E_NOTFOUND
                 : modmta_err_from_errno(errno);
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *buf_r = buf;
    *len_r = (size_t)n;
    return 0;
}

static int
queue_has_xattr(const queue *q, const char *id)
{
    char path[PATH_MAX];

    return queue_msg_path(q, id, path, sizeof(path)) == 0 &&
           getxattr(path, QUEUE_XATTR, NULL, 0) >= 0;
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

/* ---- stale envelopes ---- */

/* id's entry, or NULL; *at is where it is, or would go (the list is
 * sorted by ID). Called with stale_lock held. */
static struct queue_stale *
queue_stale_find(const queue *q, const char *id, size_t *at)
{
    size_t lo = 0, hi = q->nstale;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(id, q->stale[mid].id);

        if (c == 0) {
            *at = mid;
            return &q->stale[mid];
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *at = lo;
    return NULL;
}

/* 1 if id's envelope is stale; then a copy of the one kept in *json_r
 * (NULL if none was kept, or out of memory), unless json_r is NULL. */
static int
queue_stale_get(queue *q, const char *id, char **json_r, size_t *len_r)
{
    struct queue_stale *st;
    size_t at;

    pthread_mutex_lock(&q->stale_lock);
    st = queue_stale_find(q, id, &at);
    if (st != NULL && json_r != NULL) {
        *json_r = st->json != NULL ? malloc(st->len + 1) : NULL;
        if (*json_r != NULL) {
            memcpy(*json_r, st->json, st->len + 1);
            *len_r = st->len;
        }
    }
    pthread_mutex_unlock(&q->stale_lock);
    return st != NULL;
}

/* id's entry, added (without an envelope) if missing; NULL if out of
 * memory. Called with stale_lock held. */
static struct queue_stale *
queue_stale_entry(queue *q, const char *id)
{
    struct queue_stale *st;
    size_t at;

    if ((st = queue_stale_find(q, id, &at)) != NULL)
        return st;
    if (q->nstale == q->capstale) {
        size_t ncap = q->capstale != 0 ? q->capstale * 2 : 16;
        void *p = realloc(q->stale, ncap * sizeof(*q->stale));

        if (p == NULL)
            return NULL;
        q->stale = p;
        q->capstale = ncap;
    }
    memmove(&q->stale[at + 1], &q->stale[at],
            (q->nstale - at) * sizeof(*q->stale));
    q->nstale++;
    st = &q->stale[at];
    snprintf(st->id, sizeof(st->id), "%s", id);
    st->json = NULL;
    st->len = 0;
    return st;
}

/* Keep json (NULL: none) as id's envelope, the file's being stale. When
 * it cannot be kept (out of memory, or QUEUE_STALE_MAX_BYTES reached),
 * the one kept before stays, newer than the file's, or none; the
 * message is flagged stale all the same, so that it still loads as
 * recovered. */
static void
queue_stale_set(queue *q, const char *id, const char *json, size_t len)
{
    struct queue_stale *st;
    char *copy = json != NULL ? malloc(len + 1) : NULL;
    int flagged, kept = 0;

    if (copy != NULL) {
        memcpy(copy, json, len);
        copy[len] = '\0';
    }
    pthread_mutex_lock(&q->stale_lock);
    st = queue_stale_entry(q, id);
    flagged = st != NULL;
    if (st != NULL && copy != NULL &&
        q->stale_bytes - st->len + len <= QUEUE_STALE_MAX_BYTES) {
        q->stale_bytes += len - st->len;
        free(st->json);
        st->json = copy;
        st->len = len;
        copy = NULL;
        kept = 1;
    }
    pthread_mutex_unlock(&q->stale_lock);
    if (!flagged)
        modmta_logf(MODMTA_LOG_ERR, "%s: queue: out of memory: its next "
                    "delivery may repeat one already done", id);
    else if (!kept)
        modmta_logf(MODMTA_LOG_WARN, "%s: queue: its unwritten envelope "
                    "not kept (out of memory or %u MiB kept already): its "
                    "next delivery may repeat one its mailboxes do not "
                    "de-duplicate", id, QUEUE_STALE_MAX_BYTES >> 20);
    free(copy);
}

/* The file's envelope is current again (or the message is gone). */
static void
queue_stale_clear(queue *q, const char *id)
{
    struct queue_stale *st;
    size_t at;

    pthread_mutex_lock(&q->stale_lock);
    st = queue_stale_find(q, id, &at);
    if (st != NULL) {
        q->stale_bytes -= st->len;
        free(st->json);
        memmove(st, st + 1, (q->nstale - at - 1) * sizeof(*q->stale));
        q->nstale--;
    }
    pthread_mutex_unlock(&q->stale_lock);
}

/* ---- group commit ---- */

/* fsync the subdirectories in mask; the first error. */
static int
queue_sync_mask(queue *q, uint64_t mask)
{
    int rc = 0;

    for (int i = 0; i < QUEUE_NSUB; i++)
        if ((mask & ((uint64_t)1 << i)) != 0 && fsync(q->qsub[i]) < 0 &&
            rc == 0)
            rc = modmta_err_from_errno(errno);
    return rc;
}

/* One fsync round, called and returning with gs->lock held. */
static void
queue_sync_lead(queue *q)
{
    struct queue_gsync *gs = &q->gs;
    unsigned long lo = gs->synced_seq + 1, target = gs->renamed_seq;
    uint64_t mask = gs->dirty;
    int rc;

    gs->syncing = 1;
    gs->dirty = 0;
    pthread_mutex_unlock(&gs->lock);
    rc = queue_sync_mask(q, mask);
    pthread_mutex_lock(&gs->lock);
    if (rc < 0) {
        if (gs->fail_hi == 0)
            gs->fail_lo = lo;
        gs->fail_hi = target;
        gs->fail_rc = rc;
    }
    gs->synced_seq = target;
    gs->syncing = 0;
    pthread_cond_broadcast(&gs->done);
}

/* After a rename into queue/<sub>: return once an fsync of that directory
 * that began after the rename has finished. */
static int
queue_sync_dir(queue *q, int sub)
{
    struct queue_gsync *gs = &q->gs;
    unsigned long my;
    int rc = 0;

    pthread_mutex_lock(&gs->lock);
    my = ++gs->renamed_seq;
    gs->dirty |= (uint64_t)1 << sub;
    while (gs->synced_seq < my) {
        if (gs->syncing)
            pthread_cond_wait(&gs->done, &gs->lock);
        else
            queue_sync_lead(q);
    }
    if (gs->fail_hi != 0 && my >= gs->fail_lo && my <= gs->fail_hi)
        rc = gs->fail_rc;
    pthread_mutex_unlock(&gs->lock);
    return rc;
}

/* ---- open and recovery ---- */

static int
queue_mkdir(int dirfd, const char *name)
{
    if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
        return -1;
    return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* parent/X for every ID character; parent fsync'ed so that the first
 * commit into a new subdirectory is not lost with it. */
static int
queue_mksubdirs(int parent, int fds[QUEUE_NSUB])
{
    char name[2] = "";

    for (int i = 0; i < QUEUE_NSUB; i++) {
        name[0] = queue_digits[i];
        if ((fds[i] = queue_mkdir(parent, name)) < 0)
            return -1;
    }
    return fsync(parent);
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

/* A readdir stream of dirfd (which stays open). */
static DIR *
queue_opendir(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

    if (d == NULL && fd >= 0)
        close(fd);
    return d;
}

/* Remove the files of a tmp directory (not its subdirectories). */
static void
queue_clean_dir(int dirfd, const char *label)
{
    DIR *d = queue_opendir(dirfd);
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || de->d_type == DT_DIR)
            continue;
        if (unlinkat(dirfd, de->d_name, 0) < 0 && errno != EISDIR)
            modmta_logf(MODMTA_LOG_WARN, "queue: cannot remove %s/%s: %s",
                        label, de->d_name, strerror(errno));
    }
    closedir(d);
}

static void
queue_clean_tmp(queue *q)
{
    char label[8];

    queue_clean_dir(q->tmpfd, "tmp");
    for (int i = 0; i < QUEUE_NSUB; i++) {
        snprintf(label, sizeof(label), "tmp/%c", queue_digits[i]);
        queue_clean_dir(q->tsub[i], label);
    }
}

/* What cannot be delivered but may matter: keep it for a human. */
static void
queue_move_corrupt(queue *q, int dirfd, const char *name, const char *why)
{
    int cfd = -1;
    int spfd = open(q->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (spfd >= 0)
        cfd = queue_mkdir(spfd, "corrupt");
    if (cfd >= 0 && renameat(dirfd, name, cfd, name) == 0)
        modmta_logf(MODMTA_LOG_ERR, "queue: %s: %s, moved to %s/corrupt",
                    name, why, q->spool);
    else if (cfd < 0 || errno != ENOENT) /* ENOENT: a concurrent scan's */
        modmta_logf(MODMTA_LOG_ERR, "queue: %s: %s, cannot move to "
                    "corrupt/: %s", name, why, strerror(errno));
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

/* One queue/X: see the recovery rules at the top of this file. */
static int
queue_recover_sub(queue *q, int dirfd, size_t *cap)
{
    DIR *d = queue_opendir(dirfd);
    struct dirent *de;
    char id[QUEUE_ID_MAX];
    int rc = 0;

    if (d == NULL)
        return modmta_err_from_errno(errno);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (queue_has_suffix(de->d_name, ".msg", id)) {
            if (queue_exists(dirfd, id, ".env") || queue_has_xattr(q, id))
                rc = queue_remember(q, id, cap);
            else
                queue_move_corrupt(q, dirfd, de->d_name,
                                   "content without envelope");
        } else if (queue_has_suffix(de->d_name, ".env", id) &&
                   !queue_exists(dirfd, id, ".msg")) {
            modmta_logf(MODMTA_LOG_NOTICE, "%s: queue: removing the "
                        "envelope of an interrupted removal", id);
            unlinkat(dirfd, de->d_name, 0);
        }
    }
    closedir(d);
    return rc;
}

/* Remove interrupted commits and removals, and remember the IDs of the
 * complete messages. */
static int
queue_recover(queue *q)
{
    size_t cap = 0;
    int rc = 0;

    for (int i = 0; rc == 0 && i < QUEUE_NSUB; i++)
        rc = queue_recover_sub(q, q->qsub[i], &cap);
    if (q->nrecovered > 1)
        qsort(q->recovered, q->nrecovered, QUEUE_ID_MAX, queue_id_cmp);
    return rc;
}

/* tmp/, queue/ and their subdirectories, created if missing. */
static int
queue_layout(queue *q)
{
    int spfd = open(q->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = -1;

    if (spfd < 0)
        return -1;
    q->tmpfd = queue_mkdir(spfd, "tmp");
    q->qfd = queue_mkdir(spfd, "queue");
    if (q->tmpfd >= 0 && q->qfd >= 0 && fsync(spfd) == 0 &&
        queue_mksubdirs(q->tmpfd, q->tsub) == 0 &&
        queue_mksubdirs(q->qfd, q->qsub) == 0)
        rc = 0;
    close(spfd);
    return rc;
}

queue *
queue_open(const char *spool, modmta_err *err_r)
{
    queue *q = calloc(1, sizeof(*q));
    int rc;

    if (q == NULL || (q->spool = strdup(spool)) == NULL) {
        free(q);
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    q->tmpfd = q->qfd = -1;
    for (int i = 0; i < QUEUE_NSUB; i++)
        q->tsub[i] = q->qsub[i] = -1;
    for (int i = 0; i < QUEUE_NLOCKS; i++)
        pthread_mutex_init(&q->locks[i], NULL);
    pthread_mutex_init(&q->gs.lock, NULL);
    pthread_cond_init(&q->gs.done, NULL);
    pthread_mutex_init(&q->stale_lock, NULL);
    if (mkdir(spool, 0700) < 0 && errno != EEXIST) {
        modmta_err_set(err_r, NULL, "%s: %s", spool, strerror(errno));
        queue_close(q);
        return NULL;
    }
    if (queue_layout(q) < 0) {
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
    for (int i = 0; i < QUEUE_NSUB; i++) {
        if (q->tsub[i] >= 0)
            close(q->tsub[i]);
        if (q->qsub[i] >= 0)
            close(q->qsub[i]);
    }
    for (int i = 0; i < QUEUE_NLOCKS; i++)
        pthread_mutex_destroy(&q->locks[i]);
    pthread_mutex_destroy(&q->gs.lock);
    pthread_cond_destroy(&q->gs.done);
    pthread_mutex_destroy(&q->stale_lock);
    for (size_t i = 0; i < q->nstale; i++)
        free(q->stale[i].json);
    free(q->stale);
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
    int e;

    if (w == NULL || (w->wb = malloc(sizeof(*w->wb))) == NULL) {
        free(w);
        modmta_err_set(err_r, NULL, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    w->q = q;
    w->wb->len = 0;
    w->wb->err = 0;
    /* O_EXCL makes a (very unlikely) ID collision a retry, not a clash. */
    for (int tries = 0; tries < 8; tries++) {
        queue_new_id(w->id);
        w->sub = queue_sub(w->id);
        queue_name(name, sizeof(name), w->id, ".msg");
        w->fd = openat(q->tsub[w->sub], name,
                       O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd >= 0 || errno != EEXIST)
            break;
    }
    if (w->fd < 0) {
        e = errno;
        modmta_err_set(err_r, NULL, "%s/tmp/%c/%s: %s", q->spool,
                       queue_digits[w->sub], name, strerror(e));
        free(w->wb);
        free(w);
        errno = e;
        return NULL;
    }
    snprintf(w->path, sizeof(w->path), "%s/tmp/%c/%s", q->spool,
             queue_digits[w->sub], name);
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

int
queue_writer_fd(const queue_writer *w)
{
    return w->fd;
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

/* Copy from fd at off to its end into out (at its file position): in
 * the kernel when it can (copy_file_range: no trip through user space, a
 * reflink on file systems that share extents), else through a buffer. */
static int
queue_copy_tail(int fd, off_t off, int out)
{
    char buf[16384];
    ssize_t n;
    int rc;

    for (;;) {
        n = copy_file_range(fd, &off, out, NULL, 1 << 30, 0);
        if (n == 0)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
    }
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL &&
        errno != EOPNOTSUPP)
        return modmta_err_from_errno(errno);
    while ((n = pread(fd, buf, sizeof(buf), off)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return modmta_err_from_errno(errno);
        }
        if ((rc = queue_write_all(out, buf, (size_t)n)) < 0)
            return rc;
        off += n;
    }
    return 0;
}

/* Move the octets [from, end) of fd to start at `to`, through buf: from
 * the end when they move up (the two ranges may overlap), from the start
 * when they move down. */
static int
queue_move_tail(int fd, off_t from, off_t to, off_t end, char *buf,
                size_t size)
{
    off_t left = end - from, src;
    ssize_t n;
    size_t want;
    int rc;

    while (left > 0) {
        want = left < (off_t)size ? (size_t)left : size;
        src = to > from ? from + left - (off_t)want : end - left;
        n = pread(fd, buf, want, src);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return modmta_err_from_errno(errno);
        if ((size_t)n != want)
            return MODMTA_E_IO; /* the file shrank under us */
        if ((rc = queue_write_at(fd, buf, want, src + (to - from))) < 0)
            return rc;
        left -= (off_t)want;
    }
    return 0;
}

/* In place, in the same file: it is still in tmp/ (a crash leaves
 * nothing queue_open keeps) and a failure here fails the transaction, so
 * a half-moved body is never committed. No new file: creating one costs
 * the file system more than the copy for most messages. */
int
queue_writer_rebuild(queue_writer *w, off_t old_len, const char *hdr,
                     size_t hdr_len, int body_fd)
{
    struct queue_wbuf *wb = w->wb;
    off_t end = w->size;
    int rc;

    if ((rc = queue_writer_flush(w)) < 0)
        return rc;
    if (old_len < 0 || old_len > w->size)
        return MODMTA_E_INVAL;
    /* the buffer is empty after the flush: it carries the moved body */
    if (body_fd < 0 && (off_t)hdr_len != old_len) {
        rc = queue_move_tail(w->fd, old_len, (off_t)hdr_len, w->size,
                             wb->data, sizeof(wb->data));
        end = w->size + ((off_t)hdr_len - old_len);
    }
    if (rc == 0)
        rc = queue_write_at(w->fd, hdr, hdr_len, 0);
    if (rc == 0 && body_fd >= 0) {
        end = (off_t)hdr_len + 2;
        rc = queue_write_at(w->fd, "\r\n", 2, (off_t)hdr_len);
        if (rc == 0 && lseek(w->fd, end, SEEK_SET) < 0)
            rc = modmta_err_from_errno(errno);
        if (rc == 0)
            rc = queue_copy_tail(body_fd, 0, w->fd);
        if (rc == 0 && (end = lseek(w->fd, 0, SEEK_CUR)) < 0)
            rc = modmta_err_from_errno(errno);
    }
    if (rc == 0 && end < w->size && ftruncate(w->fd, end) < 0)
        rc = modmta_err_from_errno(errno);
    /* later writes append: the file position at the new end */
    if (rc == 0 && lseek(w->fd, end, SEEK_SET) < 0)
        rc = modmta_err_from_errno(errno);
    if (rc < 0)
        return wb->err = rc;
    w->size = end;
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
        queue_name(name, sizeof(name), w->id, ".msg");
        unlinkat(w->q->tsub[w->sub], name, 0);
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

/* The fast path: the envelope goes into the content file's xattr and one
 * fsync (not fdatasync: the xattr is metadata) makes both durable.
 * 1: the file system took no xattr (unsupported, or this envelope is too
 * large for it); the caller falls back to a separate envelope file. */
static int
queue_commit_xattr(queue_writer *w, const char *json, size_t len)
{
    if (atomic_load(&w->q->no_xattr))
        return 1;
    if (fsetxattr(w->fd, QUEUE_XATTR, json, len, 0) < 0) {
        if (errno == ENOTSUP)
            atomic_store(&w->q->no_xattr, 1);
        return 1;
    }
    return fsync(w->fd) < 0 ? modmta_err_from_errno(errno) : 0;
}

/* The fallback: content and tmp/X/ID.env made durable, the envelope
 * renamed into queue/X/ (before the content: still uncommitted). */
static int
queue_commit_env_file(queue_writer *w, const char *json, size_t len)
{
    int tdir = w->q->tsub[w->sub], qdir = w->q->qsub[w->sub];
    char env[QUEUE_ID_MAX + 8];
    int rc;

    if (fdatasync(w->fd) < 0)
        return modmta_err_from_errno(errno);
    queue_name(env, sizeof(env), w->id, ".env");
    if ((rc = queue_write_file(tdir, env, json, len)) < 0)
        return rc;
    if (renameat(tdir, env, qdir, env) < 0) {
        rc = modmta_err_from_errno(errno);
        unlinkat(tdir, env, 0);
    }
    return rc;
}

/* Envelope durable, then the content's rename into queue/X/ commits, and
 * a directory fsync (shared) makes the rename durable. */
static int
queue_commit_files(queue_writer *w, const char *json, size_t len)
{
    int qdir = w->q->qsub[w->sub];
    char msg[QUEUE_ID_MAX + 8], env[QUEUE_ID_MAX + 8];
    int rc, env_file;

    rc = queue_commit_xattr(w, json, len);
    env_file = rc == 1;
    if (env_file)
        rc = queue_commit_env_file(w, json, len);
    if (rc < 0)
        return rc;
    queue_name(msg, sizeof(msg), w->id, ".msg");
    queue_name(env, sizeof(env), w->id, ".env");
    if (renameat(w->q->tsub[w->sub], msg, qdir, msg) < 0)
        rc = modmta_err_from_errno(errno);
    else if ((rc = queue_sync_dir(w->q, w->sub)) < 0)
        unlinkat(qdir, msg, 0);
    if (rc < 0 && env_file)
        unlinkat(qdir, env, 0);
    return rc == MODMTA_E_NOTFOUND ? MODMTA_E_IO : rc;
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

/* queue_env_read, and in *stale_r whether the envelope is stale: one
 * look at the stale list. */
static int
queue_env_read_stale(queue *q, const char *id, char **json_r,
                     size_t *len_r, int *stale_r)
{
    char name[QUEUE_ID_MAX + 8];
    int rc;

    *json_r = NULL;
    *len_r = 0;
    *stale_r = 0;
    if (!queue_id_valid(id))
        return MODMTA_E_INVAL;
    /* what could not be written is newer than what was */
    *stale_r = queue_stale_get(q, id, json_r, len_r);
    if (*json_r != NULL)
        return 0;
    queue_name(name, sizeof(name), id, ".env");
    rc = queue_read_file(q->qsub[queue_sub(id)], name, json_r, len_r);
    if (rc == MODMTA_E_NOTFOUND)
        rc = queue_read_xattr(q, id, json_r, len_r);
    return rc;
}

int
queue_env_read(queue *q, const char *id, char **json_r, size_t *len_r)
{
    int stale;

    return queue_env_read_stale(q, id, json_r, len_r, &stale);
}

int
queue_load(queue *q, const char *id, queue_env **env_r)
{
    modmta_err err;
    char *text;
    size_t len;
    int rc, stale;

    *env_r = NULL;
    if ((rc = queue_env_read_stale(q, id, &text, &len, &stale)) < 0)
        return rc;
    rc = queue_env_parse(text, len, env_r, &err);
    free(text);
    if (rc < 0) {
        modmta_logf(MODMTA_LOG_ERR, "%s: queue: bad envelope: %s", id,
                    err.msg);
        return rc;
    }
    /* The file name, not the content, names the message. */
    snprintf((*env_r)->id, sizeof((*env_r)->id), "%s", id);
    (*env_r)->recovered = stale || queue_was_recovered(q, id);
    return 0;
}

/* No directory fsync here: a lost update only repeats a delivery attempt,
 * which the mailbox module de-duplicates; the rename itself is atomic. */
static int
queue_update_env(queue *q, const char *id, const char *json, size_t len)
{
    pthread_mutex_t *lock;
    char tmp[QUEUE_ID_MAX + 24], name[QUEUE_ID_MAX + 8];
    int rc, sub = queue_sub(id);

    snprintf(tmp, sizeof(tmp), "%s.u%u", id,
             atomic_fetch_add(&q->tmpseq, 1));
    queue_name(name, sizeof(name), id, ".env");
    rc = queue_write_file(q->tsub[sub], tmp, json, len);
    if (rc < 0)
        return rc;
    lock = queue_lock_for(q, id);
    pthread_mutex_lock(lock);
    /* Never bring back the envelope of a removed message. */
    if (!queue_exists(q->qsub[sub], id, ".msg"))
        rc = MODMTA_E_NOTFOUND;
    else if (renameat(q->tsub[sub], tmp, q->qsub[sub], name) < 0)
        rc = modmta_err_from_errno(errno);
    pthread_mutex_unlock(lock);
    if (rc < 0)
        unlinkat(q->tsub[sub], tmp, 0);
    return rc;
}

/* With keep, a failed update leaves the envelope stale (see the top). */
static int
queue_update_keep(queue *q, const queue_env *env, int keep)
{
    char *json;
    size_t len = 0;
    int rc;

    if (!queue_id_valid(env->id))
        return MODMTA_E_INVAL;
    json = queue_env_dump(env, &len);
    rc = json != NULL ? queue_update_env(q, env->id, json, len)
                      : MODMTA_E_NOMEM;
    if (rc == 0 || rc == MODMTA_E_NOTFOUND)
        queue_stale_clear(q, env->id);
    else if (keep)
        queue_stale_set(q, env->id, json, len);
    free(json);
    return rc;
}

int
queue_update(queue *q, const queue_env *env)
{
    return queue_update_keep(q, env, 1);
}

int
queue_update_or_fail(queue *q, const queue_env *env)
{
    return queue_update_keep(q, env, 0);
}

/* The content first: once it is gone, so is the message (a leftover
 * .env is removed at open). Not fsync'ed: a lost removal means one more
 * (de-duplicated) delivery attempt after a crash. */
int
queue_remove(queue *q, const char *id)
{
    pthread_mutex_t *lock;
    char name[QUEUE_ID_MAX + 8];
    int rc = 0, qdir;

    if (!queue_id_valid(id))
        return MODMTA_E_INVAL;
    qdir = q->qsub[queue_sub(id)];
    lock = queue_lock_for(q, id);
    pthread_mutex_lock(lock);
    queue_name(name, sizeof(name), id, ".msg");
    if (unlinkat(qdir, name, 0) < 0)
        rc = modmta_err_from_errno(errno);
    queue_name(name, sizeof(name), id, ".env");
    if (rc == 0 && unlinkat(qdir, name, 0) < 0 && errno != ENOENT)
        rc = modmta_err_from_errno(errno);
    pthread_mutex_unlock(lock);
    if (rc == 0 || rc == MODMTA_E_NOTFOUND)
        queue_stale_clear(q, id);
    return rc;
}

int
queue_content_path(const queue *q, const char *id, char *buf, size_t len)
{
    if (!queue_id_valid(id))
        return MODMTA_E_INVAL;
    return queue_msg_path(q, id, buf, len);
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

/* A message whose envelope does not parse (damage, a hand edit) can
 * never be delivered: its content, then its envelope file if any, go
 * to corrupt/ for a human, once, instead of failing at every scan. A
 * newer envelope version (MODMTA_E_UNSUPPORTED: a downgrade) stays. */
static void
queue_quarantine(queue *q, int dirfd, const char *id)
{
    char name[QUEUE_ID_MAX + 8];

    queue_name(name, sizeof(name), id, ".msg");
    queue_move_corrupt(q, dirfd, name, "envelope does not parse");
    if (queue_exists(dirfd, id, ".env")) {
        queue_name(name, sizeof(name), id, ".env");
        queue_move_corrupt(q, dirfd, name, "envelope does not parse");
    }
}

/* Load the envelope of every message of one queue/X; a message removed
 * meanwhile is skipped, one with a broken envelope (logged by
 * queue_load) quarantined. */
static int
queue_scan_sub(queue *q, int dirfd, struct queue_list *l)
{
    DIR *d = queue_opendir(dirfd);
    struct dirent *de;
    char id[QUEUE_ID_MAX];
    queue_env *env;
    int rc = 0;

    if (d == NULL)
        return modmta_err_from_errno(errno);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!queue_has_suffix(de->d_name, ".msg", id))
            continue;
        rc = queue_load(q, id, &env);
        if (rc == MODMTA_E_INVAL)
            queue_quarantine(q, dirfd, id);
        if (rc != MODMTA_E_NOMEM)
            rc = 0;
        if (env != NULL && (rc = queue_list_add(l, env)) < 0)
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
    size_t i = 0;
    int rc = 0;

    for (int sub = 0; rc == 0 && sub < QUEUE_NSUB; sub++)
        rc = queue_scan_sub(q, q->qsub[sub], &l);
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
