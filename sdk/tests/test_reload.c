/* Unit tests of sdk/src/reload.c: tables re-read when their file
 * changes, on a clock the test moves (modmta_reload_set_clock): nothing
 * sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <modmta/reload.h>
#include <files.h>
#include "reload_priv.h"

static char dir[256], path[300];
static atomic_llong now_ms = 5000;
static atomic_uint loads, frees;

static long long
fake_clock(void *arg)
{
    (void)arg;
    return atomic_load(&now_ms);
}

static void
advance(long long ms)
{
    atomic_fetch_add(&now_ms, ms);
}

/* The table: the file's text. A line "bad" is an error at its line. */
static void *
text_load(FILE *f, const char *p, void *arg, modmta_err *err_r)
{
    char *buf = calloc(1, 4096), line[256];
    unsigned lineno = 0;

    (void)arg;
    atomic_fetch_add(&loads, 1);
    while (buf != NULL && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strcmp(line, "bad\n") == 0) {
            modmta_err_set(err_r, NULL, "%s:%u: bad line", p, lineno);
            free(buf);
            return NULL;
        }
        strncat(buf, line, 4095 - strlen(buf));
    }
    return buf;
}

static void
text_free(void *table)
{
    atomic_fetch_add(&frees, 1);
    free(table);
}

static modmta_reload *
open_ok(void)
{
    modmta_err err = {"", ""};
    modmta_reload *r = modmta_reload_open(path, text_load, text_free, NULL,
                                          "$.modules[0].rules", &err);

    if (r == NULL)
        fail_msg("%s: %s", err.path, err.msg);
    return r;
}

/* The current table is want. */
static void
assert_table(modmta_reload *r, const char *want)
{
    char *t = modmta_reload_acquire(r);

    assert_string_equal(t, want);
    modmta_reload_release(r, t);
}

static int
setup(void **state)
{
    (void)state;
    modmta_test_tmpdir(dir, sizeof(dir), "test_reload");
    snprintf(path, sizeof(path), "%s/rules", dir);
    modmta_reload_set_clock(fake_clock, NULL);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    modmta_reload_set_clock(NULL, NULL);
    modmta_test_rmtree(dir);
    return 0;
}

static void
test_open_errors(void **state)
{
    modmta_err err = {"", ""};
    char fifo[320], want[400];

    (void)state;
    snprintf(want, sizeof(want), "%s/none: No such file or directory", dir);
    snprintf(fifo, sizeof(fifo), "%s/none", dir);
    assert_null(modmta_reload_open(fifo, text_load, text_free, NULL,
                                   "$.x", &err));
    assert_string_equal(err.path, "$.x");
    assert_string_equal(err.msg, want);
    /* a FIFO would block a reader: refused, at once */
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_null(modmta_reload_open(fifo, text_load, text_free, NULL,
                                   "$.x", &err));
    assert_non_null(strstr(err.msg, "not a regular file"));
    /* load()'s message as it is, with the JSON path */
    modmta_test_write_file(path, "a\nbad\n");
    assert_null(modmta_reload_open(path, text_load, text_free, NULL,
                                   "$.y", &err));
    assert_string_equal(err.path, "$.y");
    snprintf(want, sizeof(want), "%s:2: bad line", path);
    assert_string_equal(err.msg, want);
    /* over the size limit (a sparse file) */
    assert_int_equal(truncate(path, MODMTA_RELOAD_SIZE_MAX + 1), 0);
    assert_null(modmta_reload_open(path, text_load, text_free, NULL,
                                   "$.y", &err));
    assert_non_null(strstr(err.msg, "larger than"));
}

/* A change is seen at the first acquire a second after the last look,
 * not before. */
static void
test_throttle(void **state)
{
    modmta_reload *r;
    unsigned before;

    (void)state;
    modmta_test_write_file(path, "one\n");
    r = open_ok();
    assert_table(r, "one\n");
    modmta_test_replace_file(path, "two\n");
    before = atomic_load(&loads);
    assert_table(r, "one\n");
    advance(MODMTA_RELOAD_INTERVAL_MS - 1);
    assert_table(r, "one\n");
    advance(1);
    assert_table(r, "two\n");
    assert_int_equal(atomic_load(&loads), before + 1);
    /* unchanged: looked at, not loaded again */
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "two\n");
    assert_int_equal(atomic_load(&loads), before + 1);
    /* written in place, a different size: seen too */
    modmta_test_write_file(path, "three!\n");
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "three!\n");
    modmta_reload_close(r);
}

/* A broken edit keeps the previous table and is tried once; the next
 * edit is loaded. */
static void
test_broken_edit_keeps_table(void **state)
{
    modmta_reload *r;
    unsigned before;

    (void)state;
    modmta_test_write_file(path, "good\n");
    r = open_ok();
    modmta_test_replace_file(path, "x\nbad\n");
    before = atomic_load(&loads);
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "good\n");
    assert_int_equal(atomic_load(&loads), before + 1);
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "good\n");
    assert_int_equal(atomic_load(&loads), before + 1);
    modmta_test_replace_file(path, "better\n");
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "better\n");
    /* gone: kept; back (a new version): loaded */
    assert_int_equal(unlink(path), 0);
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "better\n");
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "better\n");
    modmta_test_write_file(path, "back\n");
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "back\n");
    /* replaced by something that is not a file: kept */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "back\n");
    assert_int_equal(unlink(path), 0);
    modmta_reload_close(r);
}

/* A table held across a reload stays valid and is freed at its last
 * release; the current one at close. */
static void
test_held_table(void **state)
{
    modmta_reload *r;
    char *a, *b, *c;
    unsigned before = atomic_load(&frees);

    (void)state;
    modmta_test_write_file(path, "old\n");
    r = open_ok();
    a = modmta_reload_acquire(r);
    b = modmta_reload_acquire(r);
    assert_ptr_equal(a, b);
    modmta_test_replace_file(path, "new\n");
    advance(MODMTA_RELOAD_INTERVAL_MS);
    c = modmta_reload_acquire(r);
    assert_string_equal(c, "new\n");
    assert_string_equal(a, "old\n");
    modmta_reload_release(r, a);
    assert_int_equal(atomic_load(&frees), before);
    assert_string_equal(b, "old\n");
    modmta_reload_release(r, b);
    assert_int_equal(atomic_load(&frees), before + 1);
    /* not held when replaced: freed at once */
    modmta_reload_release(r, c);
    modmta_test_replace_file(path, "newer\n");
    advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_table(r, "newer\n");
    assert_int_equal(atomic_load(&frees), before + 2);
    modmta_reload_close(r);
    assert_int_equal(atomic_load(&frees), before + 3);
    modmta_reload_close(NULL);
}

/* Readers on several threads while the file changes under them: each
 * sees a whole table, old or new, and no table is freed while held (run
 * under ASan). */
#define READERS 4

static atomic_int stop;

static void *
reader(void *arg)
{
    modmta_reload *r = arg;

    while (!atomic_load(&stop)) {
        char *t = modmta_reload_acquire(r);

        assert_true(strcmp(t, "a\n") == 0 || strcmp(t, "bb\n") == 0);
        modmta_reload_release(r, t);
    }
    return NULL;
}

static void
test_threads(void **state)
{
    pthread_t th[READERS];
    modmta_reload *r;
    int i;

    (void)state;
    modmta_test_write_file(path, "a\n");
    r = open_ok();
    atomic_store(&stop, 0);
    for (i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, r), 0);
    for (i = 0; i < 300; i++) {
        char *t;

        modmta_test_replace_file(path, i % 2 ? "a\n" : "bb\n");
        advance(MODMTA_RELOAD_INTERVAL_MS);
        t = modmta_reload_acquire(r);
        modmta_reload_release(r, t);
    }
    atomic_store(&stop, 1);
    for (i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    modmta_reload_close(r);
}

/* Without a test clock, CLOCK_MONOTONIC: a change is not seen at once. */
static void
test_real_clock(void **state)
{
    modmta_reload *r;

    (void)state;
    modmta_reload_set_clock(NULL, NULL);
    modmta_test_write_file(path, "one\n");
    r = open_ok();
    modmta_test_replace_file(path, "two\n");
    assert_table(r, "one\n");
    assert_string_equal(modmta_reload_path(r), path);
    modmta_reload_close(r);
    modmta_reload_set_clock(fake_clock, NULL);
}

/* A load() that looks at its file's descriptor, as 1.x modules may. */
static void *
size_load(FILE *f, const char *p, void *arg, modmta_err *err_r)
{
    struct stat st;
    char *t;

    (void)arg;
    if (fstat(fileno(f), &st) < 0) {
        modmta_err_set(err_r, NULL, "%s: fstat: %s", p, strerror(errno));
        return NULL;
    }
    if ((t = malloc(32)) != NULL)
        snprintf(t, 32, "%lld", (long long)st.st_size);
    return t;
}

static void
test_load_has_descriptor(void **state)
{
    modmta_err err = {"", ""};
    modmta_reload *r;

    (void)state;
    modmta_test_write_file(path, "twelve bytes");
    r = modmta_reload_open(path, size_load, free, NULL, "$.x", &err);
    if (r == NULL)
        fail_msg("%s", err.msg);
    assert_table(r, "12");
    modmta_reload_close(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_throttle),
        cmocka_unit_test(test_broken_edit_keeps_table),
        cmocka_unit_test(test_held_table),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_real_clock),
        cmocka_unit_test(test_load_has_descriptor),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
