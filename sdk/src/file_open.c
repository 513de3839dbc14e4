/* Opening a file an administrator names (see file_open_priv.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "file_open_priv.h"

/* The null device (/dev/null): an empty file, as sites name it for an
 * empty table. */
static int
file_open_is_null(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3);
}

/* A file of procfs or sysfs: "regular", its size 0, its text made up as
 * it is read and some never end (/proc/self/pagemap). Not a table. */
static int
file_open_is_pseudo(int fd)
{
    struct statfs sf;

    return fstatfs(fd, &sf) == 0 &&
           (sf.f_type == PROC_SUPER_MAGIC || sf.f_type == SYSFS_MAGIC);
}

/* The stream's file and what may still be read of it. */
struct file_cap {
    int fd;
    long long left;
};

/* Reads fail with EFBIG past the cap, whatever fstat() said: a procfs
 * file says 0 and never ends, a file may grow while it is read. */
static ssize_t
file_cap_read(void *cookie, char *buf, size_t size)
{
    struct file_cap *c = cookie;
    ssize_t n = read(c->fd, buf, size);

    if (n > 0 && n > c->left) {
        c->left = -1;
        errno = EFBIG;
        return -1;
    }
    if (n > 0)
        c->left -= n;
    return n;
}

static int
file_cap_close(void *cookie)
{
    struct file_cap *c = cookie;
    int rc = close(c->fd);

    free(c);
    return rc;
}

/* fd as a read stream that ends in an error after max octets. */
static FILE *
file_cap_open(int fd, long long max)
{
    static const cookie_io_functions_t io = {
        .read = file_cap_read, .close = file_cap_close};
    struct file_cap *c = malloc(sizeof(*c));
    FILE *f;

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->left = max;
    if ((f = fopencookie(c, "r", io)) == NULL)
        free(c);
    return f;
}

int
file_open_fd(const char *path, long long max, struct stat *st_r,
             modmta_err *err_r)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

    if (fd < 0) {
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, st_r) < 0)
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
    else if ((!S_ISREG(st_r->st_mode) && !file_open_is_null(st_r)) ||
             file_open_is_pseudo(fd))
        modmta_err_set(err_r, NULL, "%s: not a regular file", path);
    else if (st_r->st_size > max)
        modmta_err_set(err_r, NULL, "%s: larger than %lld octets", path,
                       max);
    else
        return fd;
    close(fd);
    return -1;
}

FILE *
file_open_read(const char *path, long long max, struct stat *st_r,
               modmta_err *err_r)
{
    int fd = file_open_fd(path, max, st_r, err_r);
    FILE *f;

    if (fd < 0)
        return NULL;
    if ((f = file_cap_open(fd, max)) == NULL) {
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

char *
file_read_all(const char *path, long long max, struct stat *st_r,
              size_t *len_r, modmta_err *err_r)
{
    FILE *f = file_open_read(path, max, st_r, err_r);
    size_t size, got;
    char *buf;

    if (f == NULL)
        return NULL;
    size = (size_t)st_r->st_size;
    if ((buf = malloc(size + 1)) == NULL) {
        modmta_err_set(err_r, NULL, "%s: out of memory", path);
        fclose(f);
        return NULL;
    }
    got = fread(buf, 1, size, f);
    if (got < size && ferror(f)) {
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    } else {
        buf[got] = '\0';
        *len_r = got;
    }
    fclose(f);
    return buf;
}

int
file_check(const char *path, long long max, modmta_err *err_r)
{
    struct stat st;
    FILE *f = file_open_read(path, max, &st, err_r);

    if (f == NULL)
        return -1;
    fclose(f);
    return 0;
}
