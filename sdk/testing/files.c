/* libmodmta-test: files and temporary directories for unit tests. */
#include <errno.h>
#include <ftw.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <modmta/reload.h>

#include "files.h"

static atomic_llong files_clock_ms = 1000000;

char *
modmta_test_read_file(const char *path, size_t *len_r)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL && errno == ENOENT)
        return NULL;
    if (f == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len_r != NULL)
        *len_r = (size_t)n;
    return buf;
}

void
modmta_test_write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    assert_true(fputs(data, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

void
modmta_test_replace_file(const char *path, const char *data)
{
    char tmp[4096];

    assert_true((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path)
                < sizeof(tmp));
    modmta_test_write_file(tmp, data);
    assert_int_equal(rename(tmp, path), 0);
}

static long long
files_clock(void *arg)
{
    (void)arg;
    return atomic_load(&files_clock_ms);
}

void
modmta_test_reload_clock(void)
{
    modmta_reload_set_clock(files_clock, NULL);
}

void
modmta_test_reload_advance(long long ms)
{
    atomic_fetch_add(&files_clock_ms, ms);
}

void
modmta_test_tmpdir(char *buf, size_t len, const char *name)
{
    const char *top = getenv("TMPDIR");

    if (top == NULL || top[0] == '\0')
        top = "/tmp";
    assert_true((size_t)snprintf(buf, len, "%s/%s.XXXXXX", top, name)
                < len);
    if (mkdtemp(buf) == NULL)
        fail_msg("mkdtemp %s: %s", buf, strerror(errno));
}

static int
files_remove(const char *path, const struct stat *st, int flag,
             struct FTW *ftw)
{
    return remove(path);
}

int
modmta_test_rmtree(const char *dir)
{
    /* depth first: a directory is removed once it is empty */
    if (nftw(dir, files_remove, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return errno == ENOENT ? 0 : -1;
    return 0;
}
