/* Unit tests of store_maildir's Maildir++ quota: sizes and rules,
 * maildirsize parsing (as Dovecot writes it), rebuilding from a Maildir
 * with folders, appending, the writer refusing a message over quota
 * while leaving nothing behind, and the Maildir's lock (a held one
 * costs a bounded wait). */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include <modmta/err.h>
#include <files.h>

#include "maildir_quota.h"
#include "maildir_write.h"

static void
test_parse_size(void **state)
{
    long long v;

    (void)state;
    assert_int_equal(maildir_quota_parse_size("1048576", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(maildir_quota_parse_size("100M", &v), 0);
    assert_int_equal(v, 100LL << 20);
    assert_int_equal(maildir_quota_parse_size("512k", &v), 0);
    assert_int_equal(v, 512LL << 10);
    assert_int_equal(maildir_quota_parse_size("2GB", &v), 0);
    assert_int_equal(v, 2LL << 30);
    assert_int_equal(maildir_quota_parse_size("1t", &v), 0);
    assert_int_equal(v, 1LL << 40);
    assert_int_equal(maildir_quota_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(maildir_quota_parse_size("", &v), -1);
    assert_int_equal(maildir_quota_parse_size("-1", &v), -1);
    assert_int_equal(maildir_quota_parse_size("10X", &v), -1);
    assert_int_equal(maildir_quota_parse_size("10 M", &v), -1);
    assert_int_equal(maildir_quota_parse_size("M", &v), -1);
    assert_int_equal(maildir_quota_parse_size("9999999999999T", &v), -1);
    assert_int_equal(maildir_quota_parse_size("99999999999999999999", &v),
                     -1);
}

static void
test_parse_rule(void **state)
{
    maildir_quota q = { 10, 20 };

    (void)state;
    assert_int_equal(maildir_quota_parse_rule("storage=1M", &q), 0);
    assert_int_equal(q.bytes, 1 << 20);
    assert_int_equal(q.count, 20); /* kept */
    /* Dovecot's units: storage in kilobytes, bytes in octets */
    assert_int_equal(maildir_quota_parse_rule("storage=2 messages=5", &q),
                     0);
    assert_int_equal(q.bytes, 2048);
    assert_int_equal(q.count, 5);
    assert_int_equal(maildir_quota_parse_rule("*:bytes=3000:messages=1k",
                                              &q), 0);
    assert_int_equal(q.bytes, 3000);
    assert_int_equal(q.count, 1024);
    assert_int_equal(maildir_quota_parse_rule("3M,messages=7", &q), 0);
    assert_int_equal(q.bytes, 3 << 20);
    assert_int_equal(q.count, 7);
    assert_int_equal(maildir_quota_parse_rule("none", &q), 0);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(q.count, 0);
    q.bytes = 1;
    assert_int_equal(maildir_quota_parse_rule("", &q), -1);
    assert_int_equal(maildir_quota_parse_rule("storage=", &q), -1);
    assert_int_equal(maildir_quota_parse_rule("storage=10%", &q), -1);
    assert_int_equal(maildir_quota_parse_rule("storage=9999999999999999",
                                              &q), -1);
    assert_int_equal(maildir_quota_parse_rule("size=5", &q), -1);
    assert_int_equal(maildir_quota_parse_rule("5M junk", &q), -1);
    assert_int_equal(q.bytes, 1); /* unchanged on error */
}

static void
test_definition(void **state)
{
    maildir_quota q = { 104857600, 1000 };
    char def[64];

    (void)state;
    maildir_quota_definition(&q, def, sizeof(def));
    assert_string_equal(def, "104857600S,1000C");
    q.count = 0;
    maildir_quota_definition(&q, def, sizeof(def));
    assert_string_equal(def, "104857600S");
    q.bytes = 0;
    q.count = 3;
    maildir_quota_definition(&q, def, sizeof(def));
    assert_string_equal(def, "3C");
}

static int
parse(const char *text, long long bytes, long long count, maildir_usage *u)
{
    maildir_quota q = { bytes, count };

    return maildir_quota_parse(text, strlen(text), &q, u);
}

static void
test_parse_file(void **state)
{
    maildir_usage u;
    char big[MAILDIR_QUOTA_FILE_MAX + 64];

    (void)state;
    assert_int_equal(parse("1000S,10C\n300 2\n200 1\n-100 -1\n", 1000, 10,
                           &u), 1);
    assert_int_equal(u.bytes, 400);
    assert_int_equal(u.count, 2);
    /* Courier pads its numbers */
    assert_int_equal(parse("1000S\n       300      2\n", 1000, 0, &u), 1);
    assert_int_equal(u.bytes, 300);
    assert_int_equal(parse("10C,1000S\n1 1\n", 1000, 10, &u), 1);
    /* other limits, a torn line, garbage, too big: rebuild */
    assert_int_equal(parse("2000S,10C\n300 2\n", 1000, 10, &u), 0);
    assert_int_equal(parse("1000S,10C\n300 2", 1000, 10, &u), 0);
    assert_int_equal(parse("1000S,10C\n300 x\n", 1000, 10, &u), 0);
    assert_int_equal(parse("1000X\n", 1000, 0, &u), 0);
    assert_int_equal(parse("", 1000, 0, &u), 0);
    assert_int_equal(parse("1000S\n9223372036854775807 1\n1 1\n", 1000, 0,
                           &u), 0);
    /* extreme values and negative totals: rebuild, no overflow */
    assert_int_equal(parse("1000S\n-9223372036854775808 1\n", 1000, 0,
                           &u), 0);
    assert_int_equal(parse("1000S\n1125899906842625 1\n", 1000, 0, &u),
                     0);
    assert_int_equal(parse("1000S\n1 -1125899906842625\n", 1000, 0, &u),
                     0);
    assert_int_equal(parse("1000S\n100 1\n-200 -1\n", 1000, 0, &u), 0);
    assert_int_equal(parse("1000S,10C\n100 1\n-100 -2\n", 1000, 10, &u),
                     0);
    assert_int_equal(parse("1000S\n1125899906842624 1\n-1125899906842624 "
                           "-1\n", 1000, 0, &u), 1);
    assert_int_equal(u.bytes, 0);
    memset(big, 0, sizeof(big));
    strcpy(big, "1000S\n");
    while (strlen(big) <= MAILDIR_QUOTA_FILE_MAX)
        strcat(big, "1 1\n");
    assert_int_equal(parse(big, 1000, 0, &u), 0);
}

static void
test_over(void **state)
{
    maildir_quota q = { 1000, 3 };
    maildir_usage u = { 900, 2 };

    (void)state;
    assert_false(maildir_quota_over(&q, &u, 100));
    assert_true(maildir_quota_over(&q, &u, 101));
    u.count = 3;
    assert_true(maildir_quota_over(&q, &u, 0));
    q.count = 0;
    u.bytes = 1000;
    assert_false(maildir_quota_over(&q, &u, 0));
    assert_true(maildir_quota_over(&q, &u, 1));
    q.bytes = 0;
    assert_false(maildir_quota_over(&q, &u, 1LL << 40));
    /* a usage below zero (a recount never gives one) does not overflow */
    q.bytes = 1000;
    u.bytes = LLONG_MIN;
    u.count = 0;
    assert_false(maildir_quota_over(&q, &u, 1000));
    assert_true(maildir_quota_over(&q, &u, 1001));
}

/* ---- on disk ---- */

struct fx {
    char dir[512];
    char md[600];
    char msg[700];
    int mdfd;
};

static void
put(struct fx *fx, const char *rel, const char *data)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", fx->md, rel);
    modmta_test_write_file(path, data);
}

static char *
get(struct fx *fx, const char *rel)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", fx->md, rel);
    return modmta_test_read_file(path, NULL);
}

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    static const char *const dirs[] = { "", "/tmp", "/new", "/cur",
                                        "/.Sent", "/.Sent/new",
                                        "/.Sent/cur", "/.Sent/tmp" };
    char path[1024];
    size_t i;

    assert_non_null(fx);
    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "maildir_quota");
    snprintf(fx->md, sizeof(fx->md), "%s/bob", fx->dir);
    for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", fx->md, dirs[i]);
        assert_int_equal(mkdir(path, 0700), 0);
    }
    snprintf(fx->msg, sizeof(fx->msg), "%s/msg", fx->dir);
    modmta_test_write_file(fx->msg, "Subject: hi\r\n\r\nbody\r\n");
    fx->mdfd = open(fx->md, O_RDONLY | O_DIRECTORY);
    assert_true(fx->mdfd >= 0);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    close(fx->mdfd);
    modmta_test_rmtree(fx->dir);
    free(fx);
    return 0;
}

static void
test_rebuild(void **state)
{
    struct fx *fx = *state;
    maildir_quota q = { 100000, 50 };
    maildir_usage u;
    time_t mtime;
    char *text;
    int tmpfd;

    put(fx, "new/1.M1P1.h,S=100,W=104", "whatever the size says");
    put(fx, "cur/2.M1P1.h:2,S", "12345");          /* no S=: stat */
    put(fx, ".Sent/cur/3.M1P1.h,S=1000:2,S", "x"); /* a folder counts */
    put(fx, "tmp/4.M1P1.h", "not delivered yet");  /* tmp does not */
    assert_int_equal(maildir_quota_read(fx->mdfd, &q, &u, &mtime), 0);
    tmpfd = openat(fx->mdfd, "tmp", O_RDONLY | O_DIRECTORY);
    assert_true(tmpfd >= 0);
    assert_int_equal(maildir_quota_rebuild(fx->mdfd, tmpfd, &q, "t1", 0, 0,
                                           0, &u), 0);
    close(tmpfd);
    assert_int_equal(u.bytes, 1105);
    assert_int_equal(u.count, 3);
    text = get(fx, "maildirsize");
    assert_string_equal(text, "100000S,50C\n1105 3\n");
    free(text);
    assert_int_equal(maildir_quota_add(fx->mdfd, 40, 1), 0);
    assert_int_equal(maildir_quota_read(fx->mdfd, &q, &u, &mtime), 1);
    assert_int_equal(u.bytes, 1145);
    assert_int_equal(u.count, 4);
    /* the limits changed: rebuild */
    q.bytes = 5;
    assert_int_equal(maildir_quota_read(fx->mdfd, &q, &u, &mtime), 0);
}

static void
test_symlink_not_followed(void **state)
{
    struct fx *fx = *state;
    maildir_quota q = { 1000, 0 };
    maildir_usage u;
    char target[1024], link[1024];
    time_t mtime;
    char *text;

    snprintf(target, sizeof(target), "%s/elsewhere", fx->dir);
    modmta_test_write_file(target, "1000S\n0 0\n");
    snprintf(link, sizeof(link), "%s/maildirsize", fx->md);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(maildir_quota_read(fx->mdfd, &q, &u, &mtime), 0);
    assert_true(maildir_quota_add(fx->mdfd, 5, 1) < 0);
    text = modmta_test_read_file(target, NULL);
    assert_string_equal(text, "1000S\n0 0\n");
    free(text);
}

/* A hard link the mailbox owner planted as maildirsize (to a file
 * someone else owns): not read, never appended to. */
static void
test_hard_link_not_written(void **state)
{
    struct fx *fx = *state;
    maildir_quota q = { 1000, 0 };
    maildir_usage u;
    char target[1024], lpath[1024];
    time_t mtime;
    char *text;

    snprintf(target, sizeof(target), "%s/elsewhere", fx->dir);
    modmta_test_write_file(target, "1000S\n0 0\n");
    snprintf(lpath, sizeof(lpath), "%s/maildirsize", fx->md);
    assert_int_equal(link(target, lpath), 0);
    assert_int_equal(maildir_quota_read(fx->mdfd, &q, &u, &mtime), 0);
    assert_true(maildir_quota_add(fx->mdfd, 5, 1) < 0);
    text = modmta_test_read_file(target, NULL);
    assert_string_equal(text, "1000S\n0 0\n");
    free(text);
    /* one link but another owner than the Maildir's: the same */
    assert_int_equal(unlink(target), 0);
    if (geteuid() == 0) {
        assert_int_equal(chown(lpath, 65534, 65534), 0);
        assert_int_equal(maildir_quota_read(fx->mdfd, &q, &u, &mtime), 0);
        assert_true(maildir_quota_add(fx->mdfd, 5, 1) < 0);
        text = modmta_test_read_file(lpath, NULL);
        assert_string_equal(text, "1000S\n0 0\n");
        free(text);
    }
}

static int
count_files(struct fx *fx, const char *sub)
{
    char path[1024];
    struct dirent *de;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "%s/%s", fx->md, sub);
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void
test_writer_over_quota(void **state)
{
    struct fx *fx = *state;
    maildir_req req = {
        .maildir = fx->md, .message = fx->msg, .sender = "a@x.test",
        .rcpt = "bob@x.test", .queue_id = "QID1", .hostname = "mx.test",
        .fsync = 1,
    };
    char why[256], *text;
    int size;

    /* "Return-Path: <a@x.test>\nDelivered-To: bob@x.test\n" + 18 */
    size = 24 + 25 + 18;
    req.quota.bytes = size;
    assert_int_equal(maildir_write(&req, why, sizeof(why)),
                     MAILDIR_WRITE_DONE);
    text = get(fx, "maildirsize");
    assert_non_null(strstr(text, "\n67 1\n"));
    free(text);
    req.queue_id = "QID2";
    assert_int_equal(maildir_write(&req, why, sizeof(why)),
                     MAILDIR_WRITE_OVER_QUOTA);
    assert_non_null(strstr(why, "mailbox full"));
    assert_int_equal(count_files(fx, "new"), 1);
    assert_int_equal(count_files(fx, "tmp"), 0);
    /* a message count limit */
    req.quota.bytes = 0;
    req.quota.count = 1;
    assert_int_equal(maildir_write(&req, why, sizeof(why)),
                     MAILDIR_WRITE_OVER_QUOTA);
    assert_non_null(strstr(why, "1 of 1 messages"));
    assert_true(maildir_write_known_full(fx->md, &req.quota, 0));
    req.quota.count = 2;
    assert_false(maildir_write_known_full(fx->md, &req.quota, 0));
    assert_int_equal(maildir_write(&req, why, sizeof(why)),
                     MAILDIR_WRITE_DONE);
    assert_int_equal(count_files(fx, "new"), 2);
}

/* Shared with shared, exclusive with neither; a lock held elsewhere
 * (another open of the Maildir: the owner's flock) costs a delivery a
 * bounded wait (then one try for a minute), then it is delivered and
 * counted without it. */
static void
test_lock(void **state)
{
    struct fx *fx = *state;
    maildir_req req = {
        .maildir = fx->md, .message = fx->msg, .sender = "a@x.test",
        .rcpt = "bob@x.test", .queue_id = "QID1", .hostname = "mx.test",
        .quota = { 0, 10 },
    };
    int other = open(fx->md, O_RDONLY | O_DIRECTORY);
    char why[256], *text;

    assert_true(other >= 0);
    if (!maildir_quota_lock(fx->mdfd, 0)) {
        close(other);
        skip(); /* no flock on this file system */
    }
    assert_int_equal(maildir_quota_lock(other, 0), 1);
    maildir_quota_unlock(other);
    assert_int_equal(maildir_quota_lock(other, 1), 0); /* waited, no */
    maildir_quota_unlock(fx->mdfd);
    assert_int_equal(maildir_quota_lock(other, 1), 1);
    /* held: the delivery rebuilds and counts without it */
    assert_int_equal(maildir_write(&req, why, sizeof(why)),
                     MAILDIR_WRITE_DONE);
    assert_string_equal(why, MAILDIR_WRITE_UNLOCKED);
    text = get(fx, "maildirsize");
    assert_string_equal(text, "10C\n0 0\n67 1\n");
    free(text);
    maildir_quota_unlock(other);
    req.queue_id = "QID2";
    assert_int_equal(maildir_write(&req, why, sizeof(why)),
                     MAILDIR_WRITE_DONE);
    assert_string_equal(why, "");
    text = get(fx, "maildirsize");
    assert_string_equal(text, "10C\n0 0\n67 1\n67 1\n");
    free(text);
    close(other);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_rule),
        cmocka_unit_test(test_definition),
        cmocka_unit_test(test_parse_file),
        cmocka_unit_test(test_over),
        cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hard_link_not_written, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_symlink_not_followed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_writer_over_quota, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
