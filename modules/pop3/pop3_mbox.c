/*
 * pop3: the mailbox side (see pop3_mbox.h).
 *
 * Unique ids: the SHA-256 of the message's raw octets in the mbox, its
 * From_ line included, up to the next From_ line (first 128 bits in
 * hex). store_mbox writes the envelope date and a Received header with
 * the queue ID into every message, so two deliveries never look alike;
 * the id depends on nothing but the message's own bytes, so it survives
 * restarts, new deliveries and the deletion of other messages (a rewrite
 * copies kept messages byte for byte). Byte-identical messages (copied
 * in by another program) get "-2", "-3"... in mailbox order.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

#include <modmta/err.h>

#include "pop3_mbox.h"

#define POP3_READ_SIZE 65536
#define POP3_LOCK_TRIES 3

/* Lines of a file read with pread from a given offset. */
struct pop3_rd {
    int fd;
    off_t off;      /* file offset of buf[0] */
    off_t stop;     /* read nothing at or past this (-1: end of file) */
    size_t pos, len;
    char *line;     /* the current line, with its LF */
    size_t cap;
    char buf[POP3_READ_SIZE];
};

static struct pop3_rd *
pop3_mbox_rd_new(int fd, off_t from, off_t stop)
{
    struct pop3_rd *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->fd = fd;
    r->off = from;
    r->stop = stop;
    return r;
}

static void
pop3_mbox_rd_free(struct pop3_rd *r)
{
    if (r == NULL)
        return;
    free(r->line);
    free(r);
}

static int
pop3_mbox_rd_fill(struct pop3_rd *r)
{
    size_t want = sizeof(r->buf);
    ssize_t n;

    r->off += (off_t)r->len;
    r->pos = r->len = 0;
    if (r->stop >= 0) {
        if (r->off >= r->stop)
            return 0;
        if ((off_t)want > r->stop - r->off)
            want = (size_t)(r->stop - r->off);
    }
    do
        n = pread(r->fd, r->buf, want, r->off);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return MODMTA_E_IO;
    r->len = (size_t)n;
    return 0;
}

static int
pop3_mbox_rd_grow(struct pop3_rd *r, size_t need)
{
    char *p;
    size_t cap = r->cap ? r->cap : 256;

    if (need <= r->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    p = realloc(r->line, cap);
    if (p == NULL)
        return MODMTA_E_NOMEM;
    r->line = p;
    r->cap = cap;
    return 0;
}

/* The next line (with its LF, if any) into r->line; *at_r its offset.
 * Returns its length, 0 at the end, or a negative code. */
static long
pop3_mbox_rd_line(struct pop3_rd *r, off_t *at_r)
{
    size_t n = 0, take;
    char *nl;
    int rc;

    *at_r = r->off + (off_t)r->pos;
    for (;;) {
        if (r->pos == r->len) {
            if ((rc = pop3_mbox_rd_fill(r)) < 0)
                return rc;
            if (r->len == 0)
                return (long)n;
            if (n == 0)
                *at_r = r->off;
        }
        nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        take = nl != NULL ? (size_t)(nl - (r->buf + r->pos)) + 1
                          : r->len - r->pos;
        if ((rc = pop3_mbox_rd_grow(r, n + take + 1)) < 0)
            return rc;
        memcpy(r->line + n, r->buf + r->pos, take);
        n += take;
        r->line[n] = '\0';
        r->pos += take;
        if (nl != NULL)
            return (long)n;
    }
}

/* Length without the line end (LF or CRLF). */
static size_t
pop3_mbox_chomp(const char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '\n')
        n--;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    return n;
}

/* mboxrd: a line ^>+From  lost one '>' when it was written. */
static int
pop3_mbox_is_quoted(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && s[i] == '>')
        i++;
    return i > 0 && n - i >= 5 && memcmp(s + i, "From ", 5) == 0;
}

/* ---- indexing ---- */

static int
pop3_mbox_push(struct pop3_index *ix, size_t *cap, off_t off, off_t body)
{
    struct pop3_msg *p;

    if (ix->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        p = realloc(ix->msgs, *cap * sizeof(*p));
        if (p == NULL)
            return MODMTA_E_NOMEM;
        ix->msgs = p;
    }
    memset(&ix->msgs[ix->n], 0, sizeof(ix->msgs[0]));
    ix->msgs[ix->n].off = off;
    ix->msgs[ix->n].body = body;
    ix->n++;
    return 0;
}

static void
pop3_mbox_uid(EVP_MD_CTX *md, struct pop3_msg *m)
{
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hl = 0;
    int i;

    EVP_DigestFinal_ex(md, h, &hl);
    for (i = 0; i < POP3_UID_LEN / 2; i++)
        snprintf(m->uid + 2 * i, 3, "%02x", h[i]);
}

/* Close the message being indexed at offset at (the next From_ line or
 * the end of the file). */
static void
pop3_mbox_close_msg(struct pop3_index *ix, EVP_MD_CTX *md, off_t at,
                    off_t last_off, int last_empty)
{
    struct pop3_msg *m;

    if (ix->n == 0)
        return;
    m = &ix->msgs[ix->n - 1];
    m->next = at;
    m->end = at;
    if (last_empty && last_off >= m->body) { /* the separator */
        m->end = last_off;
        m->size -= 2;
    }
    pop3_mbox_uid(md, m);
}

static void
pop3_mbox_dedup_uids(struct pop3_index *ix)
{
    size_t i, j, same;

    for (i = 1; i < ix->n; i++) {
        for (same = 1, j = 0; j < i; j++)
            if (strncmp(ix->msgs[j].uid, ix->msgs[i].uid, POP3_UID_LEN) == 0)
                same++;
        if (same > 1)
            snprintf(ix->msgs[i].uid + POP3_UID_LEN, 24, "-%zu", same);
    }
}

static int
pop3_mbox_index_lines(struct pop3_rd *r, struct pop3_index *ix,
                      EVP_MD_CTX *md)
{
    size_t cap = 0, n;
    off_t at, last_off = -1;
    int last_empty = 0, rc;
    long len;

    while ((len = pop3_mbox_rd_line(r, &at)) > 0) {
        if (len >= 5 && memcmp(r->line, "From ", 5) == 0) {
            pop3_mbox_close_msg(ix, md, at, last_off, last_empty);
            if ((rc = pop3_mbox_push(ix, &cap, at, at + len)) < 0)
                return rc;
            EVP_DigestInit_ex(md, EVP_sha256(), NULL);
            EVP_DigestUpdate(md, r->line, (size_t)len);
            last_empty = 0;
            continue;
        }
        if (ix->n == 0)
            continue;
        EVP_DigestUpdate(md, r->line, (size_t)len);
        n = pop3_mbox_chomp(r->line, (size_t)len);
        ix->msgs[ix->n - 1].size +=
            n + 2 - (size_t)pop3_mbox_is_quoted(r->line, n);
        last_off = at;
        last_empty = n == 0 && r->line[len - 1] == '\n';
    }
    if (len < 0)
        return (int)len;
    ix->len = r->off + (off_t)r->len;
    pop3_mbox_close_msg(ix, md, ix->len, last_off, last_empty);
    return 0;
}

int
pop3_mbox_index(int fd, struct pop3_index *ix)
{
    struct pop3_rd *r = pop3_mbox_rd_new(fd, 0, -1);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = MODMTA_E_NOMEM;

    memset(ix, 0, sizeof(*ix));
    if (r != NULL && md != NULL)
        rc = pop3_mbox_index_lines(r, ix, md);
    pop3_mbox_rd_free(r);
    EVP_MD_CTX_free(md);
    if (rc < 0) {
        pop3_mbox_index_free(ix);
        return rc;
    }
    pop3_mbox_dedup_uids(ix);
    return 0;
}

void
pop3_mbox_index_free(struct pop3_index *ix)
{
    free(ix->msgs);
    memset(ix, 0, sizeof(*ix));
}

/* ---- sending ---- */

static int
pop3_mbox_send_line(const char *s, size_t n, pop3_mbox_put put, void *arg)
{
    int rc = 0;

    if (pop3_mbox_is_quoted(s, n)) {
        s++;
        n--;
    }
    if (n > 0 && s[0] == '.')
        rc = put(".", 1, arg);
    if (rc == 0 && n > 0)
        rc = put(s, n, arg);
    return rc == 0 ? put("\r\n", 2, arg) : rc;
}

int
pop3_mbox_send(int fd, const struct pop3_msg *m, long body_lines,
               pop3_mbox_put put, void *arg)
{
    struct pop3_rd *r = pop3_mbox_rd_new(fd, m->body, m->end);
    int in_body = 0, rc = 0;
    long len;
    size_t n;
    off_t at;

    if (r == NULL)
        return MODMTA_E_NOMEM;
    while (rc == 0 && (len = pop3_mbox_rd_line(r, &at)) > 0) {
        if (in_body && body_lines >= 0 && body_lines-- == 0)
            break;
        n = pop3_mbox_chomp(r->line, (size_t)len);
        rc = pop3_mbox_send_line(r->line, n, put, arg);
        if (n == 0)
            in_body = 1;
    }
    if (rc == 0 && len < 0)
        rc = (int)len;
    pop3_mbox_rd_free(r);
    return rc == 0 ? put(".\r\n", 3, arg) : rc;
}

int
pop3_mbox_open(const char *path, int *fd_r)
{
    struct stat st;
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
                  O_CLOEXEC);

    *fd_r = -1;
    if (fd < 0)
        return errno == ENOENT ? 0 : modmta_err_from_errno(errno);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        close(fd);
        return MODMTA_E_PERM;
    }
    *fd_r = fd;
    return 0;
}

/* ---- locking ---- */

/* With the locks held: a delivery of ours killed mid-append noted where
 * the mailbox ended; nothing after that was reported delivered, so it is
 * cut away (store_mbox delivers it again), as store_mbox would. */
static int
pop3_mbox_repair(int fd, const modmta_mbox_lk *lk, off_t *cut_r)
{
    struct stat st;

    *cut_r = 0;
    if (lk->repair < 0)
        return 0;
    if (fstat(fd, &st) < 0)
        return MODMTA_E_IO;
    if (st.st_size > lk->repair) {
        if (ftruncate(fd, lk->repair) < 0)
            return MODMTA_E_IO;
        *cut_r = st.st_size - lk->repair;
    }
    modmta_mbox_lock_note(lk, -1); /* done: nothing left to repair */
    return 0;
}

/* Open the mailbox and take its locks (*fd_r -1: no mailbox). The file
 * is opened before it is locked: if it was replaced meanwhile (another
 * process's rewrite), open it again. */
static int
pop3_mbox_open_locked(const char *path, int timeout_ms, int stale_s,
                      int *fd_r, modmta_mbox_lk *lk, off_t *cut_r)
{
    int tries, rc = 0;

    for (tries = 0; tries < POP3_LOCK_TRIES; tries++) {
        if ((rc = pop3_mbox_open(path, fd_r)) < 0 || *fd_r < 0)
            return rc;
        rc = modmta_mbox_lock(path, *fd_r, timeout_ms, stale_s, lk, NULL, 0);
        if (rc == 0 && (rc = pop3_mbox_repair(*fd_r, lk, cut_r)) < 0)
            modmta_mbox_unlock(path, *fd_r, lk);
        if (rc != MODMTA_E_STATE)
            break;
        close(*fd_r);
        *fd_r = -1;
    }
    if (rc < 0 && *fd_r >= 0) {
        close(*fd_r);
        *fd_r = -1;
    }
    return rc;
}

int
pop3_mbox_load(const char *path, int timeout_ms, int stale_s, int *fd_r,
               struct pop3_index *ix, off_t *cut_r)
{
    modmta_mbox_lk lk;
    int rc;

    memset(ix, 0, sizeof(*ix));
    *cut_r = 0;
    rc = pop3_mbox_open_locked(path, timeout_ms, stale_s, fd_r, &lk, cut_r);
    if (rc < 0 || *fd_r < 0)
        return rc;
    rc = pop3_mbox_index(*fd_r, ix);
    modmta_mbox_unlock(path, *fd_r, &lk);
    if (rc < 0) {
        close(*fd_r);
        *fd_r = -1;
    }
    return rc;
}

/* ---- expunge ---- */

/* 1 if the mailbox (index now) still starts with the snapshot's
 * messages, at the same places with the same ids. */
static int
pop3_mbox_same(const struct pop3_index *snap, const struct pop3_index *now)
{
    size_t i;

    if (now->n < snap->n)
        return 0;
    for (i = 0; i < snap->n; i++)
        if (now->msgs[i].off != snap->msgs[i].off ||
            now->msgs[i].next != snap->msgs[i].next ||
            strcmp(now->msgs[i].uid, snap->msgs[i].uid) != 0)
            return 0;
    return 1;
}

static int
pop3_mbox_copy(int from, int to, off_t off, off_t end)
{
    char buf[16384]; /* session threads have small stacks */
    ssize_t n, w;
    size_t want;

    while (off < end) {
        want = end - off > (off_t)sizeof(buf) ? sizeof(buf)
                                              : (size_t)(end - off);
        n = pread(from, buf, want, off);
        if (n <= 0)
            return MODMTA_E_IO;
        for (w = 0; w < n;) {
            ssize_t k = write(to, buf + w, (size_t)(n - w));

            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return modmta_err_from_errno(errno);
            w += k;
        }
        off += n;
    }
    return 0;
}

/* Write the new mailbox into tmp (an open, empty file). */
static int
pop3_mbox_write_kept(int fd, int tmp, const struct pop3_index *snap,
                     off_t size)
{
    size_t i;
    int rc = 0;

    for (i = 0; rc == 0 && i < snap->n; i++)
        if (!snap->msgs[i].deleted)
            rc = pop3_mbox_copy(fd, tmp, snap->msgs[i].off,
                                snap->msgs[i].next);
    if (rc == 0)
        rc = pop3_mbox_copy(fd, tmp, snap->len, size);
    return rc;
}

static void
pop3_mbox_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;

    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1,
             slash ? path : ".");
    fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* With the locks held: the rewrite itself. The temporary file's name
 * starts with '.', which no mailbox name may. */
static int
pop3_mbox_rewrite(const char *path, int fd, const struct pop3_index *snap,
                  const modmta_mbox_lk *lk)
{
    char tmpname[PATH_MAX];
    const char *slash = strrchr(path, '/');
    struct pop3_index now;
    struct stat st;
    int tmp, rc;

    if (fstat(fd, &st) < 0 || pop3_mbox_index(fd, &now) < 0)
        return MODMTA_E_IO;
    rc = pop3_mbox_same(snap, &now) ? 0 : MODMTA_E_STATE;
    pop3_mbox_index_free(&now);
    if (rc < 0)
        return rc;
    snprintf(tmpname, sizeof(tmpname), "%.*s.%s.pop3-%ld",
             slash ? (int)(slash - path + 1) : 0, path,
             slash ? slash + 1 : path, (long)getpid());
    tmp = open(tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
               0600);
    if (tmp < 0)
        return MODMTA_E_IO;
    rc = pop3_mbox_write_kept(fd, tmp, snap, st.st_size);
    if (rc == 0 && ((fchown(tmp, st.st_uid, st.st_gid) < 0 &&
                     geteuid() == 0) ||
                    fchmod(tmp, st.st_mode & 07777) < 0 || fsync(tmp) < 0))
        rc = MODMTA_E_IO;
    if (close(tmp) < 0 && rc == 0)
        rc = MODMTA_E_IO;
    /* A writer that took our dot-lock for stale waits on the old file:
     * replacing it now would lose what that writer appends. */
    if (rc == 0 && !modmta_mbox_lock_held(path, lk))
        rc = MODMTA_E_STATE;
    if (rc == 0 && rename(tmpname, path) < 0)
        rc = MODMTA_E_IO;
    if (rc < 0)
        unlink(tmpname);
    else
        pop3_mbox_sync_dir(path);
    return rc;
}

int
pop3_mbox_expunge(const char *path, const struct pop3_index *snap,
                  int timeout_ms, int stale_s)
{
    modmta_mbox_lk lk;
    off_t cut;
    size_t i;
    int fd, rc;

    for (i = 0; i < snap->n && !snap->msgs[i].deleted; i++)
        ;
    if (i == snap->n)
        return 0;
    rc = pop3_mbox_open_locked(path, timeout_ms, stale_s, &fd, &lk, &cut);
    if (rc < 0)
        return rc;
    if (fd < 0)
        return MODMTA_E_STATE;
    rc = pop3_mbox_rewrite(path, fd, snap, &lk);
    modmta_mbox_unlock(path, fd, &lk);
    close(fd);
    return rc;
}
