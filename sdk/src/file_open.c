/* Opening a file an administrator names (see file_open_priv.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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

FILE *
file_open_read(const char *path, long long max, struct stat *st_r,
               modmta_err *err_r)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    FILE *f = NULL;

    if (fd < 0) {
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, st_r) < 0)
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st_r->st_mode) && !file_open_is_null(st_r))
        modmta_err_set(err_r, NULL, "%s: not a regular file", path);
    else if (st_r->st_size > max)
        modmta_err_set(err_r, NULL, "%s: larger than %lld octets", path,
                       max);
    else if ((f = fdopen(fd, "re")) == NULL)
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
    if (f == NULL)
        close(fd);
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
