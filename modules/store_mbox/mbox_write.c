/*
 * store_mbox: the mbox writer (see mbox_write.h).
 *
 * Order of operations, as Postfix local(8) and procmail do it:
 * dot-lock, open (no symlinks, no FIFOs, no hard links), fcntl lock,
 * remember the size, [dedup scan], append, fsync, unlock, remove the
 * dot-lock. Any failure after the first byte is written truncates the
 * file back to the remembered size. The locks are libmodmta's
 * (modmta/mbox.h), which pop3 takes too. Appends that wait for the same
 * mailbox go in together, under one lock and one fsync (mbox_group.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <modmta/err.h>
#include <modmta/mbox.h>

#include "hdr_scan.h"
#include "mbox_group.h"
#include "mbox_write.h"
#include "store_out.h"

#define MBOX_READ_SIZE 8192

/* Lines of a file read with pread: the mailbox descriptor must never be
 * closed or duplicated while it is locked. */
struct mbox_reader {
    int fd;
    off_t off;
    size_t pos, len;
    char buf[MBOX_READ_SIZE];
    char *line;
    size_t cap;
};

/* ---- waiting for locks ---- */

static void
mbox_write_deadline(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (timeout_ms < 0)
        timeout_ms = 0;
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Milliseconds left until the deadline, 0 once it has passed. */
static int
mbox_write_left_ms(const struct timespec *deadline)
{
    struct timespec now;
    long long ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000LL +
         (deadline->tv_nsec - now.tv_nsec) / 1000000L;
    return ms > 0 ? (int)ms : 0;
}

/* ---- opening ---- */

/* Refuse what a mailbox must not be; chown one we just created. */
static int
mbox_write_check(const mbox_write_req *req, int fd, int created, char *why,
                 size_t whylen)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        store_why(why, whylen, "cannot stat mailbox %s: %s",
                  req->mailbox, strerror(errno));
        return MODMTA_E_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        store_why(why, whylen, "mailbox %s is not a regular file",
                  req->mailbox);
        return MODMTA_E_PERM;
    }
    if (st.st_nlink != 1) {
        store_why(why, whylen, "mailbox %s has %lu hard links",
                  req->mailbox, (unsigned long)st.st_nlink);
        return MODMTA_E_PERM;
    }
    if (!req->set_owner)
        return 0;
    if (created && fchown(fd, req->uid, req->gid) < 0) {
        store_why(why, whylen, "cannot chown mailbox %s: %s",
                  req->mailbox, strerror(errno));
        return MODMTA_E_IO;
    }
    if (!created && st.st_uid != req->uid) {
        store_why(why, whylen, "mailbox %s is owned by uid %lu, not %lu",
                  req->mailbox, (unsigned long)st.st_uid,
                  (unsigned long)req->uid);
        return MODMTA_E_PERM;
    }
    return 0;
}

/* Open (or create, mode 0600) the mailbox. O_NOFOLLOW refuses a symlink,
 * O_NONBLOCK keeps a FIFO planted there from blocking us. */
static int
mbox_write_open(const mbox_write_req *req, int rdwr, int *fd_r, char *why,
                size_t whylen)
{
    int flags = (rdwr ? O_RDWR : O_WRONLY) | O_APPEND | O_NOFOLLOW |
                O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    int fd, created = 0, rc, tries;

    for (tries = 0; tries < 10; tries++) {
        fd = open(req->mailbox, flags);
        if (fd >= 0 || errno != ENOENT)
            break;
        fd = open(req->mailbox, flags | O_CREAT | O_EXCL, 0600);
        if (fd >= 0 || errno != EEXIST) {
            created = fd >= 0;
            break;
        }
    }
    if (fd < 0) {
        if (errno == ELOOP) {
            store_why(why, whylen, "mailbox %s is a symbolic link",
                      req->mailbox);
            return MODMTA_E_PERM;
        }
        if (errno == ENXIO) { /* a FIFO without a reader */
            store_why(why, whylen, "mailbox %s is not a regular file",
                      req->mailbox);
            return MODMTA_E_PERM;
        }
        store_why(why, whylen, "cannot open mailbox %s: %s",
                  req->mailbox, strerror(errno));
        return modmta_err_from_errno(errno);
    }
    rc = mbox_write_check(req, fd, created, why, whylen);
    if (rc < 0) {
        if (created)
            unlink(req->mailbox);
        close(fd);
        return rc;
    }
    *fd_r = fd;
    return 0;
}

/* ---- dedup: is this message already in the mailbox? ---- */

/* Next line into r->line (line end kept); its length, 0 at end of file,
 * <0 on error. */
static ssize_t
mbox_write_read_line(struct mbox_reader *r)
{
    size_t n = 0;

    for (;;) {
        char *nl;
        size_t take;

        if (r->pos == r->len) {
            ssize_t got = pread(r->fd, r->buf, sizeof(r->buf), r->off);

            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                return MODMTA_E_IO;
            if (got == 0)
                return (ssize_t)n;
            r->off += got;
            r->pos = 0;
            r->len = (size_t)got;
        }
        nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        take = nl ? (size_t)(nl - (r->buf + r->pos)) + 1 : r->len - r->pos;
        if (n + take + 1 > r->cap) {
            size_t cap = (n + take + 1) * 2;
            char *p = realloc(r->line, cap);

            if (p == NULL)
                return MODMTA_E_NOMEM;
            r->line = p;
            r->cap = cap;
        }
        memcpy(r->line + n, r->buf + r->pos, take);
        n += take;
        r->pos += take;
        if (nl != NULL)
            return (ssize_t)n;
    }
}

/* 1 if a message in the mailbox has both "id QUEUEID" and our
 * Delivered-To in its headers, 0 if none, <0 on error. Every unquoted
 * "From " line starts a message: the writer quotes the others. */
static int
mbox_write_find(int fd, const mbox_write_req *req)
{
    struct mbox_reader *r = calloc(1, sizeof(*r));
    hdr_scan sc = { .rcpt = req->rcpt, .queue_id = req->queue_id };
    int in_headers = 0, found = 0, rc = 0;
    ssize_t n = 0;

    if (r == NULL)
        return MODMTA_E_NOMEM;
    r->fd = fd;
    while (!found && rc >= 0 && (n = mbox_write_read_line(r)) > 0) {
        size_t len = hdr_scan_chomp(r->line, (size_t)n);

        if (len >= 5 && memcmp(r->line, "From ", 5) == 0) {
            sc.hdr_len = 0;
            sc.saw_rcpt = sc.saw_id = 0;
            in_headers = 1;
            continue;
        }
        if (in_headers &&
            (rc = hdr_scan_line(&sc, r->line, len)) == 1)
            in_headers = 0;
        found = sc.saw_rcpt && sc.saw_id;
    }
    if (rc >= 0 && n < 0)
        rc = (int)n;
    if (rc >= 0 && !found && in_headers) {
        hdr_scan_flush(&sc);
        found = sc.saw_rcpt && sc.saw_id;
    }
    free(r->line);
    free(r);
    free(sc.hdr);
    return rc < 0 ? rc : found;
}

/* ---- writing ---- */

/* mboxrd: a line matching ^>*From  gets one more '>'. */
static int
mbox_write_is_from(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && s[i] == '>')
        i++;
    return n - i >= 5 && memcmp(s + i, "From ", 5) == 0;
}

static void
mbox_write_envelope(store_out *o, const mbox_write_req *req)
{
    char date[64] = "Thu Jan  1 00:00:00 1970";
    struct tm tm;

    if (localtime_r(&req->date, &tm) != NULL)
        strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
    store_out_puts(o, "From ");
    if (req->sender[0] == '\0')
        store_out_puts(o, "MAILER-DAEMON");
    else
        store_out_put_addr(o, req->sender, 1);
    store_out_puts(o, " ");
    store_out_puts(o, date);
    store_out_puts(o, "\n");
    store_out_delivery_headers(o, req->sender, req->orcpt, req->rcpt);
}

/* From_ line, our two headers, the message (CRLF to LF, quoted), and the
 * blank line that ends an mbox message. */
static int
mbox_write_copy(store_out *o, const mbox_write_req *req, char *why,
                size_t whylen)
{
    FILE *in = fopen(req->message, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ends_nl = 1, rc = 0;

    if (in == NULL) {
        store_why(why, whylen, "cannot open message %s: %s",
                  req->message, strerror(errno));
        return MODMTA_E_IO;
    }
    mbox_write_envelope(o, req);
    while (o->err == 0 && (n = getline(&line, &cap, in)) > 0) {
        if (n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n') {
            line[n - 2] = '\n';
            n--;
        }
        if (mbox_write_is_from(line, (size_t)n))
            store_out_put(o, ">", 1);
        store_out_put(o, line, (size_t)n);
        ends_nl = line[n - 1] == '\n';
    }
    /* getline() failing for want of memory sets no error flag: short of
     * the end is an error too, not a shorter file */
    if (o->err == 0 && (ferror(in) || !feof(in))) {
        store_why(why, whylen, "cannot read message %s: %s",
                  req->message, strerror(errno));
        rc = MODMTA_E_IO;
    }
    if (!ends_nl)
        store_out_put(o, "\n", 1);
    store_out_put(o, "\n", 1);
    store_out_flush(o);
    free(line);
    fclose(in);
    return rc;
}

static void mbox_write_job_why(struct mbox_job *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append to a job's why (a note after an error). */
static void
mbox_write_job_why(struct mbox_job *job, const char *fmt, ...)
{
    size_t len;
    va_list ap;

    if (job->why == NULL || job->whylen == 0)
        return;
    len = strlen(job->why);
    va_start(ap, fmt);
    vsnprintf(job->why + len, job->whylen - len, fmt, ap);
    va_end(ap);
}

/* With both locks held, the mailbox ending at end: one job's dedup scan
 * and append. A failed append is cut away again (*cut_failed if that
 * failed too: the mailbox now ends in a broken message). */
static int
mbox_write_one(store_out *o, struct mbox_job *job, int fd, off_t end,
               int *cut_failed)
{
    const mbox_write_req *req = job->req;
    int rc;

    if (req->dedup && req->queue_id != NULL && req->queue_id[0] != '\0') {
        rc = mbox_write_find(fd, req);
        if (rc < 0)
            store_why(job->why, job->whylen,
                      "cannot read mailbox %s: %s", req->mailbox,
                      modmta_strerror(rc));
        if (rc != 0)
            return rc < 0 ? rc : MBOX_WRITE_DUPLICATE;
    }
    store_out_start(o, fd);
    rc = mbox_write_copy(o, req, job->why, job->whylen);
    if (o->err != 0) {
        store_why(job->why, job->whylen, "cannot write mailbox %s: %s",
                  req->mailbox, strerror(o->err));
        rc = modmta_err_from_errno(o->err);
    }
    if (rc < 0 && ftruncate(fd, end) < 0) {
        mbox_write_job_why(job, " (truncate failed: %s)", strerror(errno));
        *cut_failed = 1;
    }
    return rc;
}

static void
mbox_write_fail_all(struct mbox_job *const *jobs, size_t n, int rc,
                    const char *what, int e)
{
    size_t i;

    for (i = 0; i < n; i++) {
        store_why(jobs[i]->why, jobs[i]->whylen, "%s %s: %s", what,
                  jobs[i]->req->mailbox, strerror(e));
        jobs[i]->rc = rc;
    }
}

/* With both locks held: each job appended in turn (a failed one is cut
 * away, the others go on, unless the cut failed), then one fsync. If the
 * fsync fails, none of them is delivered (a duplicate found may be one
 * of them: it is deferred too) and the mailbox is cut back to where the
 * batch began. */
static void
mbox_write_locked(struct mbox_job *const *jobs, size_t n, int fd,
                  const modmta_mbox_lk *lk)
{
    off_t repair = lk->repair, start, end;
    int sync = 0, written = 0, cut_failed = 0, e;
    store_out *o;
    struct stat st;
    size_t i;

    if (fstat(fd, &st) < 0) {
        mbox_write_fail_all(jobs, n, MODMTA_E_IO, "cannot stat mailbox",
                            errno);
        return;
    }
    /* A writer of ours died mid-append: its lock said where the mailbox
     * ended. Nothing after that was reported delivered (the lock goes
     * before the delivery is recorded), so it is cut away. */
    if (repair >= 0 && st.st_size > repair) {
        if (ftruncate(fd, repair) < 0) {
            mbox_write_fail_all(jobs, n, MODMTA_E_IO,
                                "cannot repair mailbox", errno);
            return;
        }
        store_why(jobs[0]->why, jobs[0]->whylen, "repaired an "
                  "interrupted append: %lld octets cut",
                  (long long)(st.st_size - repair));
        st.st_size = repair;
    }
    o = malloc(sizeof(*o));
    if (o == NULL) {
        mbox_write_fail_all(jobs, n, MODMTA_E_NOMEM, "no memory for",
                            ENOMEM);
        return;
    }
    start = end = st.st_size;
    for (i = 0; i < n; i++) {
        if (cut_failed) {
            store_why(jobs[i]->why, jobs[i]->whylen, "mailbox %s "
                      "left damaged by a failed write", jobs[i]->req->
                      mailbox);
            jobs[i]->rc = MODMTA_E_IO;
            continue;
        }
        /* rewriting the note refreshes the lock's time: a long batch is
         * not taken for stale */
        modmta_mbox_lock_note(lk, start);
        jobs[i]->rc = mbox_write_one(o, jobs[i], fd, end, &cut_failed);
        if (jobs[i]->rc == MBOX_WRITE_DONE) {
            end += (off_t)o->total;
            written = 1;
            sync |= jobs[i]->req->fsync;
        }
    }
    free(o);
    if (!written || !sync || fsync(fd) == 0)
        return;
    e = errno;
    for (i = 0; i < n; i++) {
        if (jobs[i]->rc != MBOX_WRITE_DONE &&
            jobs[i]->rc != MBOX_WRITE_DUPLICATE)
            continue;
        store_why(jobs[i]->why, jobs[i]->whylen,
                  "cannot write mailbox %s: %s", jobs[i]->req->mailbox,
                  strerror(e));
        jobs[i]->rc = modmta_err_from_errno(e);
    }
    if (ftruncate(fd, start) < 0)
        for (i = 0; i < n; i++)
            if (jobs[i]->rc == modmta_err_from_errno(e))
                mbox_write_job_why(jobs[i], " (truncate failed: %s)",
                                   strerror(errno));
}

void
mbox_write_batch(struct mbox_job *const *jobs, size_t n,
                 const struct timespec *deadline)
{
    const mbox_write_req *req = jobs[0]->req;
    modmta_mbox_lk lk;
    int fd = -1, rdwr = 0, rc;
    size_t i;

    for (i = 0; i < n; i++) {
        rdwr |= jobs[i]->req->dedup;
        if (jobs[i]->why != NULL && jobs[i]->whylen > 0)
            jobs[i]->why[0] = '\0';
    }
    /* The dot-lock first: the mailbox is opened, or created, under it. */
    rc = modmta_mbox_lock(req->mailbox, -1, mbox_write_left_ms(deadline),
                          req->stale_lock_s, &lk, jobs[0]->why,
                          jobs[0]->whylen);
    if (rc == 0)
        rc = mbox_write_open(req, rdwr, &fd, jobs[0]->why, jobs[0]->whylen);
    if (rc == 0)
        rc = modmta_mbox_lock_fd(req->mailbox, fd,
                                 mbox_write_left_ms(deadline), jobs[0]->why,
                                 jobs[0]->whylen);
    if (rc == 0)
        mbox_write_locked(jobs, n, fd, &lk);
    modmta_mbox_unlock(req->mailbox, fd, &lk);
    if (fd >= 0)
        close(fd);
    if (rc == 0)
        return;
    for (i = 0; i < n; i++) {
        jobs[i]->rc = rc;
        if (i > 0 && jobs[i]->why != NULL)
            snprintf(jobs[i]->why, jobs[i]->whylen, "%s", jobs[0]->why);
    }
}

int
mbox_write_append(const mbox_write_req *req, char *why, size_t whylen)
{
    struct mbox_job job = { .req = req, .why = why, .whylen = whylen };
    struct timespec deadline;

    if (why != NULL && whylen > 0)
        why[0] = '\0';
    mbox_write_deadline(&deadline, req->lock_timeout_ms);
    return mbox_group_append(&job, &deadline);
}
