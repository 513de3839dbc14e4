/* Unit tests of sdk/src/mbox_lock.c: the dot-lock and fcntl lock of a
 * mailbox, the stale rules and the repair note. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <modmta/mbox.h>
#include <files.h>

#define DAY (24 * 3600)

struct fx {
    char dir[256];
    char mbox[PATH_MAX];
    char lock[PATH_MAX];
    char other[PATH_MAX];
    int fd;
    modmta_mbox_lk lk;
    char why[256];
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "test_mbox_lock");
    snprintf(fx->mbox, sizeof(fx->mbox), "%s/bob", fx->dir);
    snprintf(fx->lock, sizeof(fx->lock), "%s/bob.lock", fx->dir);
    snprintf(fx->other, sizeof(fx->other), "%s/other", fx->dir);
    fx->fd = open(fx->mbox, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fx->fd >= 0);
    fx->lk.dotfd = -1;
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    modmta_mbox_unlock(fx->mbox, fx->fd, &fx->lk);
    close(fx->fd);
    modmta_test_rmtree(fx->dir);
    free(fx);
    return 0;
}

static int
exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* The file's content, NUL-terminated, in buf. */
static void
slurp(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    assert_true(fd >= 0);
    n = read(fd, buf, len - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
}

/* A lock file as another process would leave it, last touched age
 * seconds ago. */
static void
plant(const char *path, const char *content, time_t age)
{
    struct timespec ts[2];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)),
                     (ssize_t)strlen(content));
    close(fd);
    ts[0].tv_sec = ts[1].tv_sec = time(NULL) - age;
    /* age 0: now to the nanosecond, not the start of this second (which
     * may precede this process) */
    ts[0].tv_nsec = ts[1].tv_nsec = age == 0 ? UTIME_NOW : 0;
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* The PID of a process that has exited (and been reaped). */
static pid_t
dead_pid(void)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    return pid;
}

static int
take(struct fx *fx, int stale_s)
{
    return modmta_mbox_lock(fx->mbox, fx->fd, 0, stale_s, &fx->lk, fx->why,
                            sizeof(fx->why));
}

/* Another open file description of the mailbox with a write lock on it
 * (what a second daemon thread or a mail reader holds). */
static int
hold_fcntl(const char *path)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    int fd = open(path, O_RDWR);

    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
    return fd;
}

static void
test_take_release(void **state)
{
    struct fx *fx = *state;
    char buf[64], want[64];

    assert_int_equal(take(fx, 300), 0);
    assert_true(fx->lk.dotfd >= 0);
    assert_int_equal(fx->lk.repair, -1);
    assert_true(modmta_mbox_lock_held(fx->mbox, &fx->lk));
    slurp(fx->lock, buf, sizeof(buf));
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    assert_string_equal(buf, want);
    modmta_mbox_lock_note(&fx->lk, 1234);
    slurp(fx->lock, buf, sizeof(buf));
    snprintf(want, sizeof(want), "%ld 1234\n", (long)getpid());
    assert_string_equal(buf, want);
    modmta_mbox_unlock(fx->mbox, fx->fd, &fx->lk);
    assert_int_equal(fx->lk.dotfd, -1);
    assert_false(exists(fx->lock));
    /* the fcntl lock is gone too */
    close(hold_fcntl(fx->mbox));
}

static void
test_dotlock_held_times_out(void **state)
{
    struct fx *fx = *state;
    modmta_mbox_lk lk2;
    int fd2 = open(fx->mbox, O_RDWR);

    assert_true(fd2 >= 0);
    assert_int_equal(take(fx, 300), 0);
    assert_int_equal(modmta_mbox_lock(fx->mbox, fd2, 0, 300, &lk2, fx->why,
                                      sizeof(fx->why)), MODMTA_E_TIMEOUT);
    assert_non_null(strstr(fx->why, "bob.lock exists"));
    assert_int_equal(lk2.dotfd, -1);
    assert_true(modmta_mbox_lock_held(fx->mbox, &fx->lk));
    modmta_mbox_unlock(fx->mbox, fx->fd, &fx->lk);
    assert_int_equal(modmta_mbox_lock(fx->mbox, fd2, 0, 300, &lk2, NULL, 0),
                     0);
    modmta_mbox_unlock(fx->mbox, fd2, &lk2);
    close(fd2);
}

static void
test_fcntl_held_times_out(void **state)
{
    struct fx *fx = *state;
    int other = hold_fcntl(fx->mbox);

    assert_int_equal(take(fx, 300), MODMTA_E_TIMEOUT);
    assert_non_null(strstr(fx->why, "fcntl"));
    assert_int_equal(fx->lk.dotfd, -1);
    assert_false(exists(fx->lock)); /* our dot-lock is not left behind */
    close(other);
    assert_int_equal(take(fx, 300), 0);
}

/* The dot-lock alone, the mailbox opened under it, then the fcntl lock:
 * the order of a writer that may create the mailbox. */
static void
test_dotlock_then_fd(void **state)
{
    struct fx *fx = *state;
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    int fd2;

    assert_int_equal(modmta_mbox_lock(fx->mbox, -1, 0, 300, &fx->lk, NULL,
                                      0), 0);
    assert_true(modmta_mbox_lock_held(fx->mbox, &fx->lk));
    fd2 = open(fx->mbox, O_RDWR);
    assert_true(fd2 >= 0);
    assert_int_equal(fcntl(fd2, F_OFD_SETLK, &fl), 0);
    assert_int_equal(modmta_mbox_lock_fd(fx->mbox, fx->fd, 0, fx->why,
                                         sizeof(fx->why)), MODMTA_E_TIMEOUT);
    /* on failure the dot-lock stays with the caller */
    assert_true(modmta_mbox_lock_held(fx->mbox, &fx->lk));
    close(fd2);
    assert_int_equal(modmta_mbox_lock_fd(fx->mbox, fx->fd, 0, NULL, 0), 0);
    fd2 = open(fx->mbox, O_RDWR);
    assert_int_equal(fcntl(fd2, F_OFD_SETLK, &fl), -1);
    close(fd2);
}

/* A file renamed over the mailbox while we waited (a POP3 expunge): the
 * descriptor we hold is no longer the mailbox. */
static void
test_replaced_mailbox(void **state)
{
    struct fx *fx = *state;
    int fd = open(fx->other, O_WRONLY | O_CREAT | O_EXCL, 0600);

    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(rename(fx->other, fx->mbox), 0);
    assert_int_equal(take(fx, 300), MODMTA_E_STATE);
    assert_non_null(strstr(fx->why, "replaced"));
    assert_false(exists(fx->lock));
    assert_int_equal(unlink(fx->mbox), 0);
    assert_int_equal(take(fx, 300), MODMTA_E_STATE);
}

static void
test_dead_pid_removed(void **state)
{
    struct fx *fx = *state;
    char content[32];

    snprintf(content, sizeof(content), "%ld\n", (long)dead_pid());
    plant(fx->lock, content, 0);
    assert_int_equal(take(fx, DAY), 0);
    assert_int_equal(fx->lk.repair, -1);
    assert_true(modmta_mbox_lock_held(fx->mbox, &fx->lk));
}

static void
test_live_pid_kept(void **state)
{
    struct fx *fx = *state;
    char content[32];

    snprintf(content, sizeof(content), "%ld\n", (long)getppid());
    plant(fx->lock, content, 0);
    assert_int_equal(take(fx, DAY), MODMTA_E_TIMEOUT);
    assert_true(exists(fx->lock));
}

/* Our PID, but the lock predates this process: an earlier process that
 * had our PID (a container restarts the daemon as PID 1). */
static void
test_own_pid_earlier_process_removed(void **state)
{
    struct fx *fx = *state;
    char content[32];

    snprintf(content, sizeof(content), "%ld\n", (long)getpid());
    plant(fx->lock, content, DAY);
    assert_int_equal(take(fx, 7 * DAY), 0);
}

/* Our PID and touched since we started: another thread of ours. */
static void
test_own_pid_recent_kept(void **state)
{
    struct fx *fx = *state;
    char content[32], buf[32];

    snprintf(content, sizeof(content), "%ld\n", (long)getpid());
    plant(fx->lock, content, 0);
    assert_int_equal(take(fx, 7 * DAY), MODMTA_E_TIMEOUT);
    slurp(fx->lock, buf, sizeof(buf));
    assert_string_equal(buf, content);
}

/* A writer of ours killed mid-append: its note survives into our lock
 * (a crash of ours before the repair leaves it to the next writer). */
static void
test_repair_note_read_back(void **state)
{
    struct fx *fx = *state;
    char content[64], buf[64], want[64];

    snprintf(content, sizeof(content), "%ld 4321\n", (long)dead_pid());
    plant(fx->lock, content, 0);
    assert_int_equal(take(fx, DAY), 0);
    assert_int_equal(fx->lk.repair, 4321);
    slurp(fx->lock, buf, sizeof(buf));
    snprintf(want, sizeof(want), "%ld 4321\n", (long)getpid());
    assert_string_equal(buf, want);
}

/* A lock with a second name was not made by a writer of ours. */
static void
test_repair_not_trusted_with_two_links(void **state)
{
    struct fx *fx = *state;
    char content[64];

    snprintf(content, sizeof(content), "%ld 0\n", (long)dead_pid());
    plant(fx->lock, content, 0);
    assert_int_equal(link(fx->lock, fx->other), 0);
    assert_int_equal(take(fx, DAY), 0);
    assert_int_equal(fx->lk.repair, -1);
}

/* A lock broken for its age alone: its owner (alive) may still be
 * appending, so its note must never cut the mailbox (review finding: a
 * message reported delivered was cut away). */
static void
test_repair_not_trusted_when_owner_alive(void **state)
{
    struct fx *fx = *state;
    char content[64];

    snprintf(content, sizeof(content), "%ld 0\n", (long)getppid());
    plant(fx->lock, content, DAY);
    assert_int_equal(take(fx, 300), 0);
    assert_int_equal(fx->lk.repair, -1);
}

/* Nor one another user of a shared mail directory planted. */
static void
test_repair_not_trusted_from_other_user(void **state)
{
    struct fx *fx = *state;
    char content[64];

    if (geteuid() != 0)
        skip();
    snprintf(content, sizeof(content), "%ld 0\n", (long)dead_pid());
    plant(fx->lock, content, 0);
    assert_int_equal(chown(fx->lock, 65534, 65534), 0);
    assert_int_equal(take(fx, DAY), 0);
    assert_int_equal(fx->lk.repair, -1);
}

/* Someone took our lock for stale and made theirs: it is not ours, and
 * our unlock leaves it alone. */
static void
test_held_false_after_replace(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(take(fx, 300), 0);
    assert_int_equal(unlink(fx->lock), 0);
    plant(fx->lock, "", 0);
    assert_false(modmta_mbox_lock_held(fx->mbox, &fx->lk));
    modmta_mbox_unlock(fx->mbox, fx->fd, &fx->lk);
    assert_true(exists(fx->lock));
}

/* An empty lock of another program (no PID): its age decides. */
static void
test_empty_foreign_lock(void **state)
{
    struct fx *fx = *state;

    plant(fx->lock, "", 600);
    assert_int_equal(take(fx, 300), 0);
    modmta_mbox_unlock(fx->mbox, fx->fd, &fx->lk);
    assert_false(exists(fx->lock));
    plant(fx->lock, "", 0);
    assert_int_equal(take(fx, 300), MODMTA_E_TIMEOUT);
    assert_true(exists(fx->lock));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_take_release),
        T(test_dotlock_held_times_out),
        T(test_fcntl_held_times_out),
        T(test_dotlock_then_fd),
        T(test_replaced_mailbox),
        T(test_dead_pid_removed),
        T(test_live_pid_kept),
        T(test_own_pid_earlier_process_removed),
        T(test_own_pid_recent_kept),
        T(test_repair_note_read_back),
        T(test_repair_not_trusted_with_two_links),
        T(test_repair_not_trusted_when_owner_alive),
        T(test_repair_not_trusted_from_other_user),
        T(test_held_false_after_replace),
        T(test_empty_foreign_lock),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
