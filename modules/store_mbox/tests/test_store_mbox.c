/* Unit tests of the store_mbox module: config, on_rcpt claims and
 * rejects, deliver end to end with the fake context, loop and dedup. */
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
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
#include <jansson.h>

#include <modmta/modmta.h>
#include <fake.h>
#include <files.h>

#include "fx.h"

extern const modmta_module modmta_descriptor;

static int
setup(void **state)
{
    *state = fx_new("store_mbox", "var/mail",
                    "{\"module\": \"store_mbox\", \"directory\": \"%s\"}");
    return 0;
}

static int
teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static char *
mailbox(struct fx *fx, const char *user, size_t *len_r)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", fx->mail, user);
    return modmta_test_read_file(path, len_r);
}

static void
assert_bad_name(struct fx *fx, const char *addr)
{
    assert_int_equal(fx_rcpt(fx, addr), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 550);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.1.3");
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                           "Bad recipient mailbox name"));
}

/* ---- config ---- */

static void
test_create_makes_directory(void **state)
{
    struct fx *fx = *state;
    struct stat st;

    assert_int_equal(stat(fx->mail, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0755 & ~(mode_t)022);
}

static void
test_create_errors(void **state)
{
    struct fx *fx = *state;
    modmta_err err;
    char path[PATH_MAX];

    assert_null(fx_make(fx, "{\"users\": \"any\"}", &err));
    assert_non_null(strstr(err.msg, "directory"));

    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"bogus\": 1}", &err));
    assert_string_equal(err.path, "$.modules[0].bogus");

    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"fsync\": \"yes\"}",
                        &err));
    assert_string_equal(err.path, "$.modules[0].fsync");

    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"users\": \"sytem\"}",
                        &err));
    assert_string_equal(err.path, "$.modules[0].users");

    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"lock_timeout\": 7200}",
                        &err));
    assert_string_equal(err.path, "$.modules[0].lock_timeout");

    /* a directory that cannot be one */
    snprintf(path, sizeof(path), "%s/file", fx->dir);
    modmta_test_write_file(path, "");
    snprintf(fx->mail, sizeof(fx->mail), "%s/file/mail", fx->dir);
    assert_null(fx_make(fx, "{\"directory\": \"%s\"}", &err));
    assert_string_equal(err.path, "$.modules[0].directory");
}

/* ---- on_rcpt ---- */

static void
test_rcpt_claims_local(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "Bob@EXAMPLE.com"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "bob@localhost"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "postmaster"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "first.last+tag@example.com"), MODMTA_ACCEPT);
}

static void
test_rcpt_remote_continues(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(fx_rcpt(fx, "bob@remote.test"), MODMTA_CONTINUE);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 0);
    /* even a dangerous name is not ours to judge elsewhere */
    assert_int_equal(fx_rcpt(fx, "../x@remote.test"), MODMTA_CONTINUE);
}

static void
test_rcpt_rejects_bad_names(void **state)
{
    struct fx *fx = *state;
    char longname[80];

    assert_bad_name(fx, "../etc/passwd@example.com");
    assert_bad_name(fx, "..@example.com");
    assert_bad_name(fx, "a..b@example.com");
    assert_bad_name(fx, ".hidden@example.com");
    assert_bad_name(fx, "a/b@example.com");
    assert_bad_name(fx, "a\x01" "b@example.com");
    assert_bad_name(fx, "a\x7f" "b@example.com");
    assert_bad_name(fx, "\"a b\"@example.com");
    assert_bad_name(fx, "caf\xc3\xa9@example.com");
    assert_bad_name(fx, "@example.com");
    assert_bad_name(fx, "bob.lock@example.com");
    memset(longname, 'a', 65);
    strcpy(longname + 65, "@example.com");
    assert_bad_name(fx, longname);
    longname[64] = '@';
    longname[65] = '\0';
    strcat(longname, "example.com");
    assert_int_equal(fx_rcpt(fx, longname), MODMTA_ACCEPT);
}

static void
test_rcpt_system_users(void **state)
{
    struct fx *fx = *state;

    fx_use(fx, "{\"directory\": \"%s\", \"users\": \"system\"}");
    assert_int_equal(fx_rcpt(fx, "root@example.com"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "ROOT@example.com"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "no-such-user-zq9@example.com"),
                     MODMTA_CONTINUE);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 0);
    assert_bad_name(fx, "../root@example.com");
}

static void
test_rcpt_map_users(void **state)
{
    struct fx *fx = *state;

    fx_use(fx, "{\"directory\": \"%s\", \"users\": [\"alice\", \"bob\"]}");
    assert_int_equal(fx_rcpt(fx, "Alice@example.com"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "carol@example.com"), MODMTA_CONTINUE);
}

static void
test_rcpt_map_outage_tempfails(void **state)
{
    struct fx *fx = *state;

    fx_use(fx, "{\"directory\": \"%s\", \"users\": \"failtest:x\"}");
    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "4.3.0");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DEFERRED);
    assert_null(mailbox(fx, "bob", NULL));
}

static void
test_rcpt_domains_key(void **state)
{
    struct fx *fx = *state;

    fx_use(fx, "{\"directory\": \"%s\", \"domains\": [\"Other.Test\"]}");
    assert_int_equal(fx_rcpt(fx, "bob@other.test"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_CONTINUE);
}

/* ---- deliver ---- */

static void
test_deliver_end_to_end(void **state)
{
    struct fx *fx = *state;
    char *got;
    struct stat st;
    char path[PATH_MAX];

    assert_int_equal(fx_deliver(fx, "Bob@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 250);
    assert_string_equal(modmta_test_reply_text(fx->ctx),
                        "delivered to mailbox");
    got = mailbox(fx, "bob", NULL);
    assert_non_null(got);
    assert_memory_equal(got, "From alice@remote.test ", 23);
    assert_non_null(strstr(got, "\nReturn-Path: <alice@remote.test>\n"
                                "Delivered-To: Bob@example.com\n"
                                "Received: from a.example"));
    assert_non_null(strstr(got, "\n\n>From here on\nbody\n\n"));
    assert_null(strchr(got, '\r'));
    free(got);
    snprintf(path, sizeof(path), "%s/bob", fx->mail);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

static void
test_deliver_not_ours(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(fx_deliver(fx, "bob@remote.test", "QID1", 0),
                     MODMTA_DECLINED);
    assert_int_equal(fx_deliver(fx, "../etc/passwd@example.com", "QID1", 0),
                     MODMTA_DECLINED);
    fx_use(fx, "{\"directory\": \"%s\", \"users\": \"system\"}");
    assert_int_equal(fx_deliver(fx, "no-such-user-zq9@example.com", "QID1", 0),
                     MODMTA_DECLINED);
}

static void
test_deliver_loop_fails(void **state)
{
    struct fx *fx = *state;

    modmta_test_write_file(fx->msg, "Delivered-To: bob@example.com\r\n"
                        "Subject: again\r\n\r\nbody\r\n");
    assert_int_equal(fx_deliver(fx, "BOB@example.com", "QID1", 0),
                     MODMTA_FAILED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 554);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.4.6");
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                           "mail forwarding loop for BOB@example.com"));
    assert_null(mailbox(fx, "bob", NULL));
    /* another recipient of the same message is no loop */
    assert_int_equal(fx_deliver(fx, "carol@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
}

static void
test_deliver_maybe_done_dedup(void **state)
{
    struct fx *fx = *state;
    char *before, *after;
    size_t blen, alen;

    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    before = mailbox(fx, "bob", &blen);
    /* after a crash: already there, not appended again */
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 1),
                     MODMTA_DELIVERED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 250);
    after = mailbox(fx, "bob", &alen);
    assert_int_equal(alen, blen);
    assert_memory_equal(after, before, blen);
    free(after);
    /* a different queue ID after a crash is delivered */
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID2", 1),
                     MODMTA_DELIVERED);
    after = mailbox(fx, "bob", &alen);
    assert_int_equal(alen, 2 * blen);
    free(after);
    /* without a crash, no scan: a resent copy is a new delivery */
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    after = mailbox(fx, "bob", &alen);
    assert_int_equal(alen, 3 * blen);
    free(after);
    free(before);
}

static void
test_deliver_locked_defers(void **state)
{
    struct fx *fx = *state;
    char lock[PATH_MAX];

    fx_use(fx, "{\"directory\": \"%s\", \"lock_timeout\": 0}");
    snprintf(lock, sizeof(lock), "%s/bob.lock", fx->mail);
    modmta_test_write_file(lock, "");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DEFERRED);
    assert_int_equal(modmta_test_reply_code(fx->ctx) / 100, 4);
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                           "mailbox locked"));
    assert_null(mailbox(fx, "bob", NULL));
}

static void
test_deliver_symlink_defers(void **state)
{
    struct fx *fx = *state;
    char link_path[PATH_MAX], target[PATH_MAX];
    char *got;

    snprintf(target, sizeof(target), "%s/passwd", fx->dir);
    modmta_test_write_file(target, "root:x:0:0\n");
    snprintf(link_path, sizeof(link_path), "%s/bob", fx->mail);
    assert_int_equal(symlink(target, link_path), 0);
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DEFERRED);
    assert_int_equal(modmta_test_reply_code(fx->ctx) / 100, 4);
    got = modmta_test_read_file(target, NULL);
    assert_string_equal(got, "root:x:0:0\n");
    free(got);
}

/* As root, a new mailbox of a system user belongs to that user. */
static void
test_deliver_system_user_owns_mailbox(void **state)
{
    struct fx *fx = *state;
    struct passwd *pw = getpwnam("daemon");
    char path[PATH_MAX];
    struct stat st;

    if (geteuid() != 0 || pw == NULL)
        skip();
    fx_use(fx, "{\"directory\": \"%s\", \"users\": \"system\", "
           "\"fsync\": false}");
    assert_int_equal(fx_deliver(fx, "daemon@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    snprintf(path, sizeof(path), "%s/daemon", fx->mail);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_int_equal(st.st_gid, pw->pw_gid);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_makes_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_claims_local, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_remote_continues, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_rejects_bad_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_system_users, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_map_users, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_map_outage_tempfails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_domains_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_end_to_end, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_not_ours, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_loop_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_maybe_done_dedup, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_locked_defers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_symlink_defers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_system_user_owns_mailbox,
                                        setup, teardown),
    };

    if (modmta_test_register_failing_map() < 0)
        return 1;
    umask(022);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
