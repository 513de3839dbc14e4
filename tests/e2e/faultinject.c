/*
 * Fault injection for the e2e tests (test_faults.py, test_crash.py,
 * test_maildir.py), preloaded into the daemon: chosen calls on chosen
 * files fail, write only part of what they were given, kill the
 * process or wait, a chosen number of times.
 *
 * MODMTA_FAULTS holds rules separated by ';', each
 *
 *     call:pattern:skip:count:error
 *
 *   call     fsync, fdatasync, write (write, pwrite, pwrite64), rename
 *            (rename and renameat), fsetxattr, openat (a file created:
 *            openat or openat64 with O_CREAT, the name's path), unlink
 *            (unlinkat, the name's path), accept4 (only the calls that
 *            ask for the peer's address: the SMTP listeners, not the
 *            control or submission sockets; the path is socket:[INODE])
 *   pattern  a substring of the file's path (the descriptor's, read from
 *            /proc/self/fd; for a rename the new name's); a final '$'
 *            anchors it at the end
 *   skip     matching calls let through before the first fault
 *   count    faults injected, then the call works again (the fault is
 *            "lifted" without a restart)
 *   error    EIO, ENOSPC, ENOTSUP, EMFILE; "short": a write writes half of
 *            what it was given (at least one octet less) and says so;
 *            "kill": the call is made, then the process killed (SIGKILL,
 *            as kill -9) before it can do anything with the result;
 *            "delay": the call is made, one second late (a race's
 *            window held open)
 *
 * Each fault injected is written to stderr (the daemon's log) as
 * "faultinject: CALL PATH -> ERROR", so that a test can tell its fault
 * did happen.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT, pwrite64, openat64 */
#endif
/* Each name below must be the symbol it exports: with 64-bit off_t the
 * headers would make pwrite and openat pwrite64 and openat64, whose
 * real ones would then be looked up under the wrong names. Both kinds
 * are wrapped instead, each calling its own. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define FI_MAX_RULES 8
#define FI_SHORT (-1)
#define FI_KILL (-2)
#define FI_DELAY (-3)

struct fi_rule {
    char call[16];
    char pattern[256];
    int anchored;
    long skip, count;
    int err;                    /* an errno, FI_SHORT, FI_KILL, FI_DELAY */
};

static struct fi_rule fi_rules[FI_MAX_RULES];
static int fi_nrules = -1;      /* -1: not parsed yet */
static pthread_mutex_t fi_lock = PTHREAD_MUTEX_INITIALIZER;

static int
fi_error(const char *s)
{
    if (strcmp(s, "EIO") == 0)
        return EIO;
    if (strcmp(s, "ENOSPC") == 0)
        return ENOSPC;
    if (strcmp(s, "ENOTSUP") == 0)
        return ENOTSUP;
    if (strcmp(s, "EMFILE") == 0)
        return EMFILE;
    if (strcmp(s, "short") == 0)
        return FI_SHORT;
    if (strcmp(s, "kill") == 0)
        return FI_KILL;
    if (strcmp(s, "delay") == 0)
        return FI_DELAY;
    return 0;
}

/* One rule from "call:pattern:skip:count:error"; 0 if malformed. */
static int
fi_parse_rule(char *s, struct fi_rule *r)
{
    char *f[5];
    size_t n;

    for (int i = 0; i < 5; i++) {
        f[i] = s;
        s = i < 4 ? strchr(s, ':') : NULL;
        if (i < 4 && s == NULL)
            return 0;
        if (s != NULL)
            *s++ = '\0';
    }
    snprintf(r->call, sizeof(r->call), "%s", f[0]);
    snprintf(r->pattern, sizeof(r->pattern), "%s", f[1]);
    n = strlen(r->pattern);
    r->anchored = n > 0 && r->pattern[n - 1] == '$';
    if (r->anchored)
        r->pattern[n - 1] = '\0';
    r->skip = strtol(f[2], NULL, 10);
    r->count = strtol(f[3], NULL, 10);
    r->err = fi_error(f[4]);
    return r->err != 0;
}

/* Called with fi_lock held. */
static void
fi_parse(void)
{
    const char *env = getenv("MODMTA_FAULTS");
    char buf[2048], *save = NULL, *tok;

    fi_nrules = 0;
    if (env == NULL)
        return;
    snprintf(buf, sizeof(buf), "%s", env);
    for (tok = strtok_r(buf, ";", &save); tok != NULL;
         tok = strtok_r(NULL, ";", &save))
        if (fi_nrules < FI_MAX_RULES &&
            fi_parse_rule(tok, &fi_rules[fi_nrules]))
            fi_nrules++;
}

static int
fi_path_matches(const struct fi_rule *r, const char *path)
{
    size_t n = strlen(path), m = strlen(r->pattern);

    if (r->anchored)
        return n >= m && strcmp(path + n - m, r->pattern) == 0;
    return strstr(path, r->pattern) != NULL;
}

/* The path behind a descriptor ("" if unknown). */
static void
fi_fd_path(int fd, char *buf, size_t len)
{
    char link[64];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, buf, len - 1);
    buf[n < 0 ? 0 : n] = '\0';
}

/* dirfd/name as a path. */
static void
fi_at_path(int dirfd, const char *name, char *buf, size_t len)
{
    size_t n;

    if (name[0] == '/' || dirfd == AT_FDCWD) {
        snprintf(buf, len, "%s", name);
        return;
    }
    fi_fd_path(dirfd, buf, len);
    n = strlen(buf);
    snprintf(buf + n, len - n, "/%s", name);
}

static int
fi_wanted(const char *call)
{
    int any = 0;

    pthread_mutex_lock(&fi_lock);
    if (fi_nrules < 0)
        fi_parse();
    for (int i = 0; i < fi_nrules; i++)
        any |= strcmp(fi_rules[i].call, call) == 0 && fi_rules[i].count > 0;
    pthread_mutex_unlock(&fi_lock);
    return any;
}

/* The fault for this call on this path: 0 (none), an errno, FI_SHORT or
 * FI_KILL. A delay is served here, and the call then made as usual. */
static int
fi_check(const char *call, const char *path)
{
    int err = 0;

    pthread_mutex_lock(&fi_lock);
    for (int i = 0; i < fi_nrules && err == 0; i++) {
        struct fi_rule *r = &fi_rules[i];

        if (strcmp(r->call, call) != 0 || r->count <= 0 ||
            !fi_path_matches(r, path))
            continue;
        if (r->skip > 0) {
            r->skip--;
            continue;
        }
        r->count--;
        err = r->err;
    }
    pthread_mutex_unlock(&fi_lock);
    if (err != 0)
        dprintf(2, "faultinject: %s %s -> %s\n", call, path,
                err == FI_SHORT ? "short"
                : err == FI_KILL ? "kill"
                : err == FI_DELAY ? "delay" : strerror(err));
    if (err == FI_DELAY) {
        struct timespec left = { 1, 0 };

        while (nanosleep(&left, &left) < 0 && errno == EINTR)
            ;
        err = 0;
    }
    return err;
}

/* The fault for a call on a descriptor. */
static int
fi_check_fd(const char *call, int fd)
{
    char path[4096];

    if (!fi_wanted(call))
        return 0;
    fi_fd_path(fd, path, sizeof(path));
    return fi_check(call, path);
}

/* After the real call: a "kill" fault ends the process now. */
static long
fi_done(int err, long rc)
{
    if (err == FI_KILL)
        kill(getpid(), SIGKILL);
    return rc;
}

#define FI_REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

int fsync(int fd);
int fdatasync(int fd);
ssize_t write(int fd, const void *buf, size_t len);
ssize_t pwrite(int fd, const void *buf, size_t len, off_t off);
ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off);
int rename(const char *oldpath, const char *newpath);
int renameat(int olddirfd, const char *oldpath, int newdirfd,
             const char *newpath);
int fsetxattr(int fd, const char *name, const void *value, size_t size,
              int flags);
int openat(int dirfd, const char *path, int flags, ...);
int unlinkat(int dirfd, const char *path, int flags);
int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int openat64(int dirfd, const char *path, int flags, ...);

int
fsync(int fd)
{
    int err = fi_check_fd("fsync", fd);

    if (err > 0) {
        errno = err;
        return -1;
    }
    return (int)fi_done(err, FI_REAL("fsync", int (*)(int))(fd));
}

int
fdatasync(int fd)
{
    int err = fi_check_fd("fdatasync", fd);

    if (err > 0) {
        errno = err;
        return -1;
    }
    return (int)fi_done(err, FI_REAL("fdatasync", int (*)(int))(fd));
}

ssize_t
write(int fd, const void *buf, size_t len)
{
    int err = fd > 2 ? fi_check_fd("write", fd) : 0;

    if (err > 0) {
        errno = err;
        return -1;
    }
    if (err == FI_SHORT && len > 1)
        len /= 2;
    return fi_done(err, FI_REAL("write", ssize_t (*)(int, const void *,
                                                     size_t))(fd, buf, len));
}

static ssize_t
fi_pwrite(const char *real, int fd, const void *buf, size_t len,
          off64_t off)
{
    int err = fd > 2 ? fi_check_fd("write", fd) : 0;

    if (err > 0) {
        errno = err;
        return -1;
    }
    if (err == FI_SHORT && len > 1)
        len /= 2;
    return fi_done(err, FI_REAL(real, ssize_t (*)(int, const void *, size_t,
                                                  off64_t))(fd, buf, len,
                                                            off));
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
    return fi_pwrite("pwrite", fd, buf, len, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
    return fi_pwrite("pwrite64", fd, buf, len, off);
}

int
renameat(int olddirfd, const char *oldpath, int newdirfd,
         const char *newpath)
{
    char path[4096];
    int err = 0;

    if (fi_wanted("rename")) {
        fi_at_path(newdirfd, newpath, path, sizeof(path));
        err = fi_check("rename", path);
    }
    if (err > 0) {
        errno = err;
        return -1;
    }
    return (int)fi_done(err, FI_REAL("renameat",
                                     int (*)(int, const char *, int,
                                             const char *))(olddirfd, oldpath,
                                                            newdirfd,
                                                            newpath));
}

int
rename(const char *oldpath, const char *newpath)
{
    int err = fi_wanted("rename") ? fi_check("rename", newpath) : 0;

    if (err > 0) {
        errno = err;
        return -1;
    }
    return (int)fi_done(err, FI_REAL("rename",
                                     int (*)(const char *,
                                             const char *))(oldpath,
                                                            newpath));
}

int
fsetxattr(int fd, const char *name, const void *value, size_t size,
          int flags)
{
    int err = fi_check_fd("fsetxattr", fd);

    if (err > 0) {
        errno = err;
        return -1;
    }
    return (int)fi_done(err, FI_REAL("fsetxattr",
                                     int (*)(int, const char *, const void *,
                                             size_t, int))(fd, name, value,
                                                           size, flags));
}

int
unlinkat(int dirfd, const char *path, int flags)
{
    char full[4096];
    int err = 0;

    if (fi_wanted("unlink")) {
        fi_at_path(dirfd, path, full, sizeof(full));
        err = fi_check("unlink", full);
    }
    if (err > 0) {
        errno = err;
        return -1;
    }
    return (int)fi_done(err, FI_REAL("unlinkat", int (*)(int, const char *,
                                                         int))(dirfd, path,
                                                               flags));
}

int
accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int err = addr != NULL ? fi_check_fd("accept4", fd) : 0;

    if (err > 0) {
        errno = err;
        return -1;
    }
    return (int)fi_done(err, FI_REAL("accept4",
                                     int (*)(int, struct sockaddr *,
                                             socklen_t *, int))(fd, addr,
                                                                len, flags));
}

static int
fi_openat(const char *real, int dirfd, const char *path, int flags,
          va_list ap)
{
    char full[4096];
    mode_t mode = 0;
    int err = 0;

    if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
        mode = (mode_t)va_arg(ap, int);
        if (fi_wanted("openat")) {
            fi_at_path(dirfd, path, full, sizeof(full));
            err = fi_check("openat", full);
        }
    }
    if (err > 0) {
        errno = err;
        return -1;
    }
    return (int)fi_done(err, FI_REAL(real, int (*)(int, const char *,
                                                   int, ...))(
                                 dirfd, path, flags, mode));
}

int
openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    int fd;

    va_start(ap, flags);
    fd = fi_openat("openat", dirfd, path, flags, ap);
    va_end(ap);
    return fd;
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    int fd;

    va_start(ap, flags);
    fd = fi_openat("openat64", dirfd, path, flags, ap);
    va_end(ap);
    return fd;
}
