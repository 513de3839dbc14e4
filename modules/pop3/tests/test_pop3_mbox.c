/* pop3: the mbox indexer, the POP3 encoding of a message, the rewrite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <modmta/err.h>
#include <files.h>

#include "pop3_mbox.h"

#define MSG1 "From a@x Thu Jan  1 00:00:00 1970\n" \
             "Subject: one\n\nbody\n>From here\n.dot\n\n"
#define MSG2 "From b@x Thu Jan  1 00:00:01 1970\n" \
             "Subject: two\n\nline1\nline2\nline3\n\n"

struct buf {
    char data[4096];
    size_t len;
};

static int
put(const char *p, size_t len, void *arg)
{
    struct buf *b = arg;

    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

static char dir[64];
static char path[128];

static int
make(const char *content)
{
    int fd;

    modmta_test_tmpdir(dir, sizeof(dir), "pop3test");
    snprintf(path, sizeof(path), "%s/bob", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)),
                     (ssize_t)strlen(content));
    return fd;
}

static void
cleanup(int fd)
{
    close(fd);
    assert_int_equal(modmta_test_rmtree(dir), 0);
}

static void
test_index(void **state)
{
    struct pop3_index ix;
    int fd = make("junk before\n" MSG1 MSG2);

    (void)state;
    assert_int_equal(pop3_mbox_index(fd, &ix), 0);
    assert_int_equal(ix.n, 2);
    /* "Subject: one\r\n\r\nbody\r\nFrom here\r\n.dot\r\n" (unstuffed) */
    assert_int_equal(ix.msgs[0].size, 14 + 2 + 6 + 11 + 6);
    assert_int_equal(ix.msgs[1].size, 14 + 2 + 7 * 3);
    assert_int_equal(ix.msgs[0].off, 12);
    assert_int_equal(ix.msgs[1].off, 12 + strlen(MSG1));
    assert_int_equal(strlen(ix.msgs[0].uid), POP3_UID_LEN);
    assert_string_not_equal(ix.msgs[0].uid, ix.msgs[1].uid);
    pop3_mbox_index_free(&ix);
    cleanup(fd);
}

static void
test_send_and_top(void **state)
{
    struct pop3_index ix;
    struct buf b = {.len = 0};
    int fd = make(MSG1 MSG2);

    (void)state;
    assert_int_equal(pop3_mbox_index(fd, &ix), 0);
    assert_int_equal(pop3_mbox_send(fd, &ix.msgs[0], -1, put, &b), 0);
    assert_string_equal(b.data, "Subject: one\r\n\r\nbody\r\nFrom here\r\n"
                                "..dot\r\n.\r\n");
    /* the size excludes stuffing and the terminator */
    assert_int_equal(ix.msgs[0].size, b.len - 1 - 3);
    b.len = 0;
    assert_int_equal(pop3_mbox_send(fd, &ix.msgs[1], 2, put, &b), 0);
    assert_string_equal(b.data, "Subject: two\r\n\r\nline1\r\nline2\r\n.\r\n");
    b.len = 0;
    assert_int_equal(pop3_mbox_send(fd, &ix.msgs[1], 0, put, &b), 0);
    assert_string_equal(b.data, "Subject: two\r\n\r\n.\r\n");
    pop3_mbox_index_free(&ix);
    cleanup(fd);
}

static void
test_uid_stable_and_unique(void **state)
{
    struct pop3_index a, b;
    int fd = make(MSG1 MSG1);

    (void)state;
    assert_int_equal(pop3_mbox_index(fd, &a), 0);
    assert_int_equal(a.n, 2);
    assert_string_not_equal(a.msgs[0].uid, a.msgs[1].uid);
    assert_int_equal(write(fd, MSG2, strlen(MSG2)), (ssize_t)strlen(MSG2));
    assert_int_equal(pop3_mbox_index(fd, &b), 0);
    assert_int_equal(b.n, 3);
    assert_string_equal(a.msgs[0].uid, b.msgs[0].uid);
    assert_string_equal(a.msgs[1].uid, b.msgs[1].uid);
    pop3_mbox_index_free(&a);
    pop3_mbox_index_free(&b);
    cleanup(fd);
}

static void
test_expunge_keeps_appended(void **state)
{
    struct pop3_index ix, after;
    struct stat st;
    char lock[160], uid[64];
    int fd = make(MSG1 MSG2), fd2;

    (void)state;
    assert_int_equal(pop3_mbox_index(fd, &ix), 0);
    snprintf(uid, sizeof(uid), "%s", ix.msgs[1].uid);
    /* a delivery during the session */
    assert_int_equal(write(fd, MSG1, strlen(MSG1)), (ssize_t)strlen(MSG1));
    ix.msgs[0].deleted = 1;
    assert_int_equal(pop3_mbox_expunge(path, &ix, 1000, 300), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(st.st_size, strlen(MSG2) + strlen(MSG1));
    snprintf(lock, sizeof(lock), "%s.lock", path);
    assert_int_equal(access(lock, F_OK), -1);
    fd2 = open(path, O_RDONLY);
    assert_int_equal(pop3_mbox_index(fd2, &after), 0);
    assert_int_equal(after.n, 2);
    assert_string_equal(after.msgs[0].uid, uid);
    close(fd2);
    pop3_mbox_index_free(&after);
    pop3_mbox_index_free(&ix);
    cleanup(fd);
}

static void
test_expunge_refuses_changed(void **state)
{
    struct pop3_index ix;
    int fd = make(MSG1 MSG2), fd2;

    (void)state;
    assert_int_equal(pop3_mbox_index(fd, &ix), 0);
    ix.msgs[1].deleted = 1;
    fd2 = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd2, MSG2, strlen(MSG2)), (ssize_t)strlen(MSG2));
    close(fd2);
    assert_int_equal(pop3_mbox_expunge(path, &ix, 1000, 300),
                     MODMTA_E_STATE);
    pop3_mbox_index_free(&ix);
    cleanup(fd);
}

/* A delivery killed mid-append left its lock, noting the mailbox size
 * before the append: the login cuts the half message, never indexes it,
 * and leaves no lock. */
static void
test_load_repairs(void **state)
{
    static const char half[] = "From c@x Thu Jan  1 00:00:02 1970\nSubj";
    struct pop3_index ix;
    struct stat st;
    char lock[160], note[64];
    off_t cut;
    int fd = make(MSG1 MSG2), lfd, fd2;
    pid_t pid = fork();

    (void)state;
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    snprintf(lock, sizeof(lock), "%s.lock", path);
    snprintf(note, sizeof(note), "%ld %zu\n", (long)pid,
             strlen(MSG1 MSG2));
    assert_int_equal(write(fd, half, strlen(half)), (ssize_t)strlen(half));
    lfd = open(lock, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(lfd >= 0);
    assert_int_equal(write(lfd, note, strlen(note)), (ssize_t)strlen(note));
    close(lfd);
    assert_int_equal(pop3_mbox_load(path, 0, 300, &fd2, &ix, &cut), 0);
    assert_int_equal(cut, strlen(half));
    assert_int_equal(ix.n, 2);
    assert_int_equal(ix.len, strlen(MSG1 MSG2));
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, strlen(MSG1 MSG2));
    assert_int_equal(access(lock, F_OK), -1);
    close(fd2);
    pop3_mbox_index_free(&ix);
    cleanup(fd);
}

/* No mailbox is an empty one. */
static void
test_load_missing(void **state)
{
    struct pop3_index ix;
    off_t cut;
    int fd = make(""), fd2;

    (void)state;
    assert_int_equal(unlink(path), 0);
    assert_int_equal(pop3_mbox_load(path, 0, 300, &fd2, &ix, &cut), 0);
    assert_int_equal(fd2, -1);
    assert_int_equal(ix.n, 0);
    cleanup(fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index),
        cmocka_unit_test(test_send_and_top),
        cmocka_unit_test(test_uid_stable_and_unique),
        cmocka_unit_test(test_expunge_keeps_appended),
        cmocka_unit_test(test_expunge_refuses_changed),
        cmocka_unit_test(test_load_repairs),
        cmocka_unit_test(test_load_missing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
