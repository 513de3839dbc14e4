/*
 * Mailbox locks (see modmta/mbox.h): the dot-lock, its PID and size
 * note, the stale rules, and the fcntl lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <modmta/mbox.h>

/* OFD locks conflict with classic fcntl locks (what mutt and Dovecot
 * take) but belong to the open file, not the process: threads of the
 * daemon exclude each other, and closing another descriptor of the same
 * file elsewhere in the process does not drop our lock. */
#ifdef F_OFD_SETLK
#define MBOX_LOCK_SETLK F_OFD_SETLK
#else
#define MBOX_LOCK_SETLK F_SETLK
#endif

#define MBOX_LOCK_NAP_MS 100

/* When this process started: a dot-lock naming our PID but older was
 * left by an earlier process with the same PID (a container restarts the
 * daemon as PID 1). Taken by a constructor, when libmodmta is mapped
 * (for the daemon, before main()), and again in the child of a fork
 * (the daemon forks to go to the background). That is before any lock
 * this process can make, as all are made here, and after any earlier
 * process with our PID was gone. Not at the first lock: a lock another
 * thread took a moment before could then look older than the process.
 * Not /proc/self/stat: it is missing in a chroot, and counts clock ticks
 * since boot. The coarse clock is the one file times come from, so a
 * lock we make can never look older than this. */
static struct timespec mbox_lock_started;

static void
mbox_lock_mark_start(void)
{
#ifdef CLOCK_REALTIME_COARSE
    clock_gettime(CLOCK_REALTIME_COARSE, &mbox_lock_started);
#else
    clock_gettime(CLOCK_REALTIME, &mbox_lock_started);
#endif
}

__attribute__((constructor)) static void
mbox_lock_init(void)
{
    mbox_lock_mark_start();
    pthread_atfork(NULL, NULL, mbox_lock_mark_start);
}

static void mbox_lock_why(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
mbox_lock_why(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static int
mbox_lock_path(const char *path, char *lockpath, char *why, size_t whylen)
{
    if ((size_t)snprintf(lockpath, PATH_MAX, "%s.lock", path) < PATH_MAX)
        return 0;
    mbox_lock_why(why, whylen, "mailbox path too long");
    return MODMTA_E_INVAL;
}

/* ---- waiting ---- */

/* Milliseconds on the monotonic clock: deadlines. */
static long long
mbox_lock_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long
mbox_lock_deadline(int timeout_ms)
{
    return mbox_lock_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

/* Sleep a little; -1 (without sleeping) once the deadline has passed. */
static int
mbox_lock_nap(long long deadline)
{
    long long left = deadline - mbox_lock_now_ms();
    struct timespec nap;

    if (left <= 0)
        return -1;
    if (left > MBOX_LOCK_NAP_MS)
        left = MBOX_LOCK_NAP_MS;
    nap.tv_sec = 0;
    nap.tv_nsec = (long)left * 1000000L;
    nanosleep(&nap, NULL);
    return 0;
}

/* ---- the dot-lock ---- */

/* What a dot-lock open on fd holds: "PID\n", or "PID SIZE\n" once the
 * mailbox size before an append is noted. Locks of other programs may
 * hold nothing: *pid_r = 0. *size_r = -1 when no size is noted. */
static void
mbox_lock_read(int fd, long *pid_r, off_t *size_r)
{
    char buf[64], *end;
    long long size;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

    *pid_r = 0;
    *size_r = -1;
    if (n <= 0)
        return;
    buf[n] = '\0';
    *pid_r = strtol(buf, &end, 10);
    if (*pid_r <= 0 || (*end != '\n' && *end != ' ')) {
        *pid_r = 0;
        return;
    }
    if (*end == ' ') {
        size = strtoll(end + 1, &end, 10);
        if (size >= 0 && *end == '\n')
            *size_r = (off_t)size;
    }
}

/* 1 if the dot-lock described by st, noting pid, was certainly left by
 * a writer that is gone: a process that no longer exists (a daemon
 * killed with -9), or an earlier process with our PID. */
static int
mbox_lock_dead(const struct stat *st, long pid)
{
    if (pid == (long)getpid())
        return st->st_mtim.tv_sec < mbox_lock_started.tv_sec ||
               (st->st_mtim.tv_sec == mbox_lock_started.tv_sec &&
                st->st_mtim.tv_nsec < mbox_lock_started.tv_nsec);
    return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Judge the dot-lock at lockpath; remove it if it is stale. 1 if it is
 * gone (removed, or vanished meanwhile), 0 if it stands. *repair_r: the
 * mailbox size a dead writer noted in a lock it made, or -1. */
static int
mbox_lock_clear_stale(const char *lockpath, int stale_s, off_t *repair_r)
{
    struct stat st, again;
    long pid = 0;
    off_t size = -1;
    int have = 0, dead;
    int fd = open(lockpath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    *repair_r = -1;
    if (fd >= 0) {
        have = fstat(fd, &st) == 0;
        if (have)
            mbox_lock_read(fd, &pid, &size);
        close(fd);
    }
    /* Unreadable (another user's, or a symlink): judged by age alone. */
    if (!have && lstat(lockpath, &st) < 0)
        return errno == ENOENT;
    /* Untouched for more than stale_s, a lock is broken whoever holds it
     * (mutt's and procmail's rule), but its owner may still be writing:
     * only a lock whose owner is certainly gone may cut the mailbox. */
    dead = mbox_lock_dead(&st, pid);
    if (!dead && time(NULL) - st.st_mtime <= stale_s)
        return 0;
    /* Another writer may have replaced it in between: remove only what
     * was judged. */
    if (lstat(lockpath, &again) < 0)
        return errno == ENOENT;
    if (again.st_dev != st.st_dev || again.st_ino != st.st_ino)
        return 0;
    if (unlink(lockpath) < 0 && errno != ENOENT)
        return 0;
    /* The size note may cut a mailbox: trust it only in a lock this
     * daemon's user made (a regular file with one link), never in one
     * planted by another user of a shared mail directory. */
    if (dead && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        st.st_nlink == 1)
        *repair_r = size;
    return 1;
}

static void
mbox_lock_write_note(int fd, off_t size)
{
    char buf[64];
    int n;

    if (size < 0)
        n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    else
        n = snprintf(buf, sizeof(buf), "%ld %lld\n", (long)getpid(),
                     (long long)size);
    /* Not fsync'ed: it guards against a killed process, whose writes the
     * kernel keeps. Without the note the lock is still a lock; only the
     * repair is lost. */
    if (pwrite(fd, buf, (size_t)n, 0) == n)
        return;
}

/* Create the dot-lock with our PID already in it: an unnamed file in the
 * mail directory, written, then given the lock's name (link fails if the
 * lock exists). A process killed at any instant leaves no empty lock to
 * wait out. Without O_TMPFILE or /proc, a plain O_EXCL create, then the
 * write. Returns an fd or -1 (errno). */
static int
mbox_lock_create(const char *lockpath)
{
    char dir[PATH_MAX], proc[64];
    const char *slash = strrchr(lockpath, '/');
    int fd, e;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - lockpath + 1),
                 lockpath);
    fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        mbox_lock_write_note(fd, -1);
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, lockpath,
                   AT_SYMLINK_FOLLOW) == 0)
            return fd;
        e = errno;
        close(fd);
        if (e != ENOENT && e != EPERM && e != EXDEV) {
            errno = e;
            return -1;
        }
    }
    fd = open(lockpath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
              O_CLOEXEC, 0600);
    if (fd >= 0)
        mbox_lock_write_note(fd, -1);
    return fd;
}

static int
mbox_lock_dot(const char *lockpath, long long deadline,
              int stale_s, modmta_mbox_lk *lk, char *why, size_t whylen)
{
    off_t repair;

    for (;;) {
        lk->dotfd = mbox_lock_create(lockpath);
        if (lk->dotfd >= 0)
            break;
        if (errno != EEXIST) {
            mbox_lock_why(why, whylen, "cannot create lock file %s: %s",
                          lockpath, strerror(errno));
            return modmta_err_from_errno(errno);
        }
        if (mbox_lock_clear_stale(lockpath, stale_s, &repair)) {
            if (repair >= 0)
                lk->repair = repair;
            continue;
        }
        if (mbox_lock_nap(deadline) < 0) {
            mbox_lock_why(why, whylen, "mailbox locked (%s exists)",
                          lockpath);
            return MODMTA_E_TIMEOUT;
        }
    }
    if (lk->repair >= 0)
        mbox_lock_write_note(lk->dotfd, lk->repair);
    return 0;
}

/* ---- the fcntl lock ---- */

static int
mbox_lock_fcntl(int fd, short type)
{
    struct flock fl;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    return fcntl(fd, MBOX_LOCK_SETLK, &fl);
}

/* With both locks held: 0 if path still names the file open on fd. A
 * writer that opened the mailbox before locking it may hold a file that
 * a lock holder has since renamed over or removed. */
static int
mbox_lock_same_file(const char *path, int fd, char *why, size_t whylen)
{
    struct stat st, mine;

    if (fstat(fd, &mine) < 0) {
        mbox_lock_why(why, whylen, "cannot stat mailbox %s: %s", path,
                      strerror(errno));
        return MODMTA_E_IO;
    }
    if (lstat(path, &st) == 0 && st.st_dev == mine.st_dev &&
        st.st_ino == mine.st_ino)
        return 0;
    mbox_lock_why(why, whylen, "mailbox %s was replaced or removed while "
                  "we waited for its lock", path);
    return MODMTA_E_STATE;
}

static int
mbox_lock_fd_until(const char *path, int fd, long long deadline,
                   char *why, size_t whylen)
{
    int rc;

    while (mbox_lock_fcntl(fd, F_WRLCK) < 0) {
        if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
            mbox_lock_why(why, whylen, "cannot lock mailbox %s: %s", path,
                          strerror(errno));
            return modmta_err_from_errno(errno);
        }
        if (mbox_lock_nap(deadline) < 0) {
            mbox_lock_why(why, whylen, "mailbox locked (fcntl lock on %s)",
                          path);
            return MODMTA_E_TIMEOUT;
        }
    }
    rc = mbox_lock_same_file(path, fd, why, whylen);
    if (rc < 0)
        mbox_lock_fcntl(fd, F_UNLCK);
    return rc;
}

/* ---- the API ---- */

int
modmta_mbox_lock_fd(const char *path, int fd, int timeout_ms, char *why,
                    size_t whylen)
{
    return mbox_lock_fd_until(path, fd, mbox_lock_deadline(timeout_ms), why,
                              whylen);
}

int
modmta_mbox_lock(const char *path, int fd, int timeout_ms, int stale_s,
                 modmta_mbox_lk *lk, char *why, size_t whylen)
{
    char lockpath[PATH_MAX];
    long long deadline;
    int rc;

    lk->dotfd = -1;
    lk->repair = -1;
    if ((rc = mbox_lock_path(path, lockpath, why, whylen)) < 0)
        return rc;
    deadline = mbox_lock_deadline(timeout_ms);
    rc = mbox_lock_dot(lockpath, deadline, stale_s, lk, why, whylen);
    if (rc == 0 && fd >= 0) {
        rc = mbox_lock_fd_until(path, fd, deadline, why, whylen);
        if (rc < 0)
            modmta_mbox_unlock(path, -1, lk);
    }
    return rc;
}

void
modmta_mbox_lock_note(const modmta_mbox_lk *lk, off_t size)
{
    if (lk->dotfd >= 0)
        mbox_lock_write_note(lk->dotfd, size);
}

int
modmta_mbox_lock_held(const char *path, const modmta_mbox_lk *lk)
{
    char lockpath[PATH_MAX];
    struct stat mine, st;

    return lk->dotfd >= 0 && fstat(lk->dotfd, &mine) == 0 &&
           mbox_lock_path(path, lockpath, NULL, 0) == 0 &&
           lstat(lockpath, &st) == 0 && st.st_dev == mine.st_dev &&
           st.st_ino == mine.st_ino;
}

void
modmta_mbox_unlock(const char *path, int fd, modmta_mbox_lk *lk)
{
    char lockpath[PATH_MAX];

    if (fd >= 0)
        mbox_lock_fcntl(fd, F_UNLCK);
    if (modmta_mbox_lock_held(path, lk) &&
        mbox_lock_path(path, lockpath, NULL, 0) == 0)
        unlink(lockpath);
    if (lk->dotfd >= 0)
        close(lk->dotfd);
    lk->dotfd = -1;
}
