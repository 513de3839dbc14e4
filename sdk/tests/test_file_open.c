/* Unit tests of sdk/src/file_open.c: files an administrator names are
 * opened without blocking, must be regular files (or /dev/null) and are
 * capped in size. A FIFO nobody writes to would hang a blocking open():
 * these tests would then not end, not fail. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "file_open_priv.h"

static char dir[] = "/tmp/test_file_open.XXXXXX";

/* dir/name as a path. */
static const char *
at(const char *name)
{
    static char path[300];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

static void
write_file(const char *name, const char *text)
{
    FILE *f = fopen(at(name), "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* The open fails with "PATH: why". */
static void
assert_refused(const char *path, long long max, const char *why)
{
    char want[400];
    modmta_err err = {"", ""};
    struct stat st;

    assert_null(file_open_read(path, max, &st, &err));
    snprintf(want, sizeof(want), "%s: %s", path, why);
    assert_string_equal(err.msg, want);
}

static void
test_regular(void **state)
{
    modmta_err err = {"", ""};
    struct stat st;
    char line[64];
    FILE *f;

    (void)state;
    write_file("map", "a b\n");
    f = file_open_read(at("map"), FILE_OPEN_MAX, &st, &err);
    assert_non_null(f);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 4);
    assert_non_null(fgets(line, sizeof(line), f));
    assert_string_equal(line, "a b\n");
    fclose(f);
}

static void
test_fifo(void **state)
{
    (void)state;
    assert_int_equal(mkfifo(at("fifo"), 0600), 0);
    assert_refused(at("fifo"), FILE_OPEN_MAX, "not a regular file");
}

/* A device that never ends: refused before a byte is read. */
static void
test_dev_zero(void **state)
{
    (void)state;
    assert_refused("/dev/zero", FILE_OPEN_MAX, "not a regular file");
}

static void
test_directory(void **state)
{
    (void)state;
    assert_refused(dir, FILE_OPEN_MAX, "not a regular file");
}

static void
test_missing(void **state)
{
    (void)state;
    assert_refused(at("none"), FILE_OPEN_MAX, "No such file or directory");
}

static void
test_oversize(void **state)
{
    char why[64];

    (void)state;
    write_file("big", "0123456789");
    assert_refused(at("big"), 9, "larger than 9 octets");
    /* the real cap, on a sparse file one octet past it */
    assert_int_equal(truncate(at("big"), FILE_OPEN_MAX + 1), 0);
    snprintf(why, sizeof(why), "larger than %lld octets",
             (long long)FILE_OPEN_MAX);
    assert_refused(at("big"), FILE_OPEN_MAX, why);
}

/* A file exactly at the cap is fine. */
static void
test_at_cap(void **state)
{
    modmta_err err = {"", ""};
    struct stat st;
    FILE *f;

    (void)state;
    write_file("ten", "0123456789");
    f = file_open_read(at("ten"), 10, &st, &err);
    assert_non_null(f);
    fclose(f);
}

/* A symbolic link to a regular file is that file; to a FIFO, refused. */
static void
test_symlink(void **state)
{
    char target[300];
    modmta_err err = {"", ""};
    struct stat st;
    FILE *f;

    (void)state;
    write_file("real", "x y\n");
    snprintf(target, sizeof(target), "%s", at("real"));
    assert_int_equal(symlink(target, at("link")), 0);
    f = file_open_read(at("link"), FILE_OPEN_MAX, &st, &err);
    assert_non_null(f);
    assert_int_equal(st.st_size, 4);
    fclose(f);
    assert_int_equal(mkfifo(at("fifo2"), 0600), 0);
    snprintf(target, sizeof(target), "%s", at("fifo2"));
    assert_int_equal(symlink(target, at("link2")), 0);
    assert_refused(at("link2"), FILE_OPEN_MAX, "not a regular file");
}

/* A procfs file says it is regular and empty, and /proc/self/pagemap
 * never ends (its first gigabyte is zeros without a newline): refused. */
static void
test_procfs(void **state)
{
    (void)state;
    assert_refused("/proc/self/pagemap", FILE_OPEN_MAX, "not a regular file");
}

/* The cap holds on what is read, not on the size fstat() gave: a file
 * that grows past it after the open ends in an error, not in a longer
 * table. */
static void
test_grows_past_cap(void **state)
{
    modmta_err err = {"", ""};
    struct stat st;
    char *line = NULL;
    size_t cap = 0;
    FILE *f, *w;

    (void)state;
    write_file("grow", "a b\n");
    f = file_open_read(at("grow"), 10, &st, &err);
    assert_non_null(f);
    assert_int_equal(st.st_size, 4);
    w = fopen(at("grow"), "a");
    assert_non_null(w);
    assert_int_equal(fputs("c d\ne f\ng h\n", w) >= 0, 1);
    assert_int_equal(fclose(w), 0);
    errno = 0;
    while (getline(&line, &cap, f) >= 0)
        ;
    assert_true(ferror(f));
    assert_int_equal(errno, EFBIG);
    free(line);
    fclose(f);
}

/* Up to the cap exactly, a growing file reads to its end. */
static void
test_grows_to_cap(void **state)
{
    modmta_err err = {"", ""};
    struct stat st;
    char buf[32];
    FILE *f, *w;

    (void)state;
    write_file("grow2", "a b\n");
    f = file_open_read(at("grow2"), 10, &st, &err);
    assert_non_null(f);
    w = fopen(at("grow2"), "a");
    assert_non_null(w);
    assert_int_equal(fputs("c def\n", w) >= 0, 1);
    assert_int_equal(fclose(w), 0);
    assert_int_equal(fread(buf, 1, sizeof(buf), f), 10);
    assert_true(feof(f));
    assert_false(ferror(f));
    fclose(f);
}

/* /dev/null stands for an empty table. */
static void
test_dev_null(void **state)
{
    modmta_err err = {"", ""};
    struct stat st;
    FILE *f;

    (void)state;
    f = file_open_read("/dev/null", FILE_OPEN_MAX, &st, &err);
    assert_non_null(f);
    assert_int_equal(fgetc(f), EOF);
    fclose(f);
}

static void
test_read_all(void **state)
{
    modmta_err err = {"", ""};
    struct stat st;
    size_t len = 0;
    char *s;

    (void)state;
    write_file("pem", "-----BEGIN\n");
    s = file_read_all(at("pem"), 100, &st, &len, &err);
    assert_non_null(s);
    assert_int_equal(len, 11);
    assert_string_equal(s, "-----BEGIN\n");
    free(s);
    assert_null(file_read_all(at("pem"), 10, &st, &len, &err));
    assert_non_null(strstr(err.msg, "larger than 10 octets"));
    assert_null(file_read_all("/dev/zero", 100, &st, &len, &err));
    assert_string_equal(err.msg, "/dev/zero: not a regular file");
}

/* The check before a library opens a path: the same rule. */
static void
test_check(void **state)
{
    modmta_err err = {"", ""};

    (void)state;
    write_file("pem", "-----BEGIN\n");
    assert_int_equal(file_check(at("pem"), FILE_OPEN_MAX, &err), 0);
    assert_int_equal(file_check("/dev/zero", FILE_OPEN_MAX, &err), -1);
    assert_string_equal(err.msg, "/dev/zero: not a regular file");
    assert_int_equal(file_check(at("pem"), 5, &err), -1);
    assert_non_null(strstr(err.msg, "larger than 5 octets"));
}

static int
setup(void **state)
{
    (void)state;
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    static const char *const names[] = {"map", "fifo", "big", "ten", "real",
                                        "link", "fifo2", "link2", "pem",
                                        "grow", "grow2"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(at(names[i]));
    return rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regular),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_dev_zero),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_at_cap),
        cmocka_unit_test(test_symlink),
        cmocka_unit_test(test_procfs),
        cmocka_unit_test(test_grows_past_cap),
        cmocka_unit_test(test_grows_to_cap),
        cmocka_unit_test(test_dev_null),
        cmocka_unit_test(test_read_all),
        cmocka_unit_test(test_check),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
