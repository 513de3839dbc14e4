/* Unit tests of the store_maildir module with the fake context: config
 * errors, RCPT claims and refusals (bad name, map outage, quota known
 * full: 552 5.2.2), delivery end to end (the Maildir made, our headers,
 * LF line ends, S= and W=), loop, dedup after a crash, over quota
 * bounced or deferred, ownership as root. */
#include <dirent.h>
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

#include "maildir_name.h"

extern const modmta_module modmta_descriptor;

static int
setup(void **state)
{
    *state = fx_new("store_maildir", "vmail", "{\"directory\": \"%s\"}");
    return 0;
}

static int
teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* The names in <mail>/<user>/<sub>, sorted; their count. */
static size_t
names(struct fx *fx, const char *user, const char *sub, char out[][256],
      size_t max)
{
    char path[PATH_MAX];
    struct dirent *de;
    size_t n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "%s/%s/%s", fx->mail, user, sub);
    d = opendir(path);
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && n < max)
            snprintf(out[n++], 256, "%s", de->d_name);
    closedir(d);
    return n;
}

static char *
read_new(struct fx *fx, const char *user, size_t i)
{
    char list[8][256], path[PATH_MAX];

    assert_true(names(fx, user, "new", list, 8) > i);
    snprintf(path, sizeof(path), "%s/%s/new/%s", fx->mail, user, list[i]);
    return modmta_test_read_file(path, NULL);
}

/* ---- config ---- */

static void
test_create_errors(void **state)
{
    struct fx *fx = *state;
    modmta_err err;

    assert_null(fx_make(fx, "{\"users\": \"any\"}", &err));
    assert_non_null(strstr(err.msg, "directory"));
    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"bogus\": 1}", &err));
    assert_string_equal(err.path, "$.modules[0].bogus");
    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"quota\": \"10Q\"}",
                        &err));
    assert_string_equal(err.path, "$.modules[0].quota");
    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"quota\": -5}", &err));
    assert_string_equal(err.path, "$.modules[0].quota");
    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"quota_messages\": -1}",
                        &err));
    assert_string_equal(err.path, "$.modules[0].quota_messages");
    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"over_quota\": "
                        "\"drop\"}", &err));
    assert_string_equal(err.path, "$.modules[0].over_quota");
    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"owner\": "
                        "\"no-such-account-here\"}", &err));
    assert_string_equal(err.path, "$.modules[0].owner");
    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"quotas\": 5}", &err));
    assert_string_equal(err.path, "$.modules[0].quotas");
    assert_null(fx_make(fx, "{\"directory\": \"%s\", \"users\": \"sytem\"}",
                        &err));
    assert_string_equal(err.path, "$.modules[0].users");
    assert_null(fx_make(fx, "{\"directory\": \"\"}", &err));
    assert_string_equal(err.path, "$.modules[0].directory");
}

/* ---- RCPT ---- */

static void
test_rcpt(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "postmaster"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "bob@remote.test"), MODMTA_CONTINUE);
    assert_int_equal(fx_rcpt(fx, ".Sent@example.com"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 550);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.1.3");
    assert_int_equal(fx_rcpt(fx, "a/b@example.com"), MODMTA_REJECT);
    fx_use(fx, "{\"directory\": \"%s\", \"users\": [\"bob\"]}");
    assert_int_equal(fx_rcpt(fx, "Bob@example.com"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "carol@example.com"), MODMTA_CONTINUE);
    fx_use(fx, "{\"directory\": \"%s\", \"users\": \"failtest:x\"}");
    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
}

static void
test_rcpt_over_quota(void **state)
{
    struct fx *fx = *state;
    char path[PATH_MAX];

    fx_use(fx, "{\"directory\": \"%s\", \"quota\": \"1k\", "
           "\"quota_messages\": 10, "
           "\"quotas\": {\"carol\": \"bytes=2k messages=5\"}}");
    /* nothing known yet */
    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_ACCEPT);
    snprintf(path, sizeof(path), "%s/bob", fx->mail);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/bob/maildirsize", fx->mail);
    modmta_test_write_file(path, "1024S,10C\n1000 3\n");
    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_ACCEPT);
    /* the declared size does not fit */
    modmta_test_add_mail_param(fx->ctx, "SIZE", "100");
    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 552);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.2.2");
    /* full: no room for anything */
    modmta_test_replace_file(path, "1024S,10C\n1024 3\n");
    modmta_test_add_mail_param(fx->ctx, "SIZE", "1");
    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 552);
    /* another limit in the file than ours: not known, accepted */
    modmta_test_replace_file(path, "9999S,10C\n9999 3\n");
    assert_int_equal(fx_rcpt(fx, "bob@example.com"), MODMTA_ACCEPT);
    /* carol's own quota */
    snprintf(path, sizeof(path), "%s/carol", fx->mail);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/carol/maildirsize", fx->mail);
    modmta_test_write_file(path, "2048S,5C\n1024 5\n");
    assert_int_equal(fx_rcpt(fx, "carol@example.com"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 552);
}

/* ---- delivery ---- */

static void
test_deliver(void **state)
{
    struct fx *fx = *state;
    char list[8][256], *text;
    struct stat st;
    char path[PATH_MAX];
    const char *want =
        "Return-Path: <alice@remote.test>\n"
        "Delivered-To: Bob@example.com\n"
        "Received: from a.example by mx.test with ESMTP id QID1;\n"
        "\tThu, 1 Jan 1970 00:00:00 +0000\n"
        "Subject: hello\n"
        "\n"
        "From here on\n"
        "body\n";
    char sz[64];

    assert_int_equal(fx_deliver(fx, "Bob@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 250);
    text = read_new(fx, "bob", 0);
    assert_string_equal(text, want);
    free(text);
    assert_int_equal(names(fx, "bob", "new", list, 8), 1);
    assert_int_equal(names(fx, "bob", "tmp", list + 1, 7), 0);
    snprintf(sz, sizeof(sz), ",S=%zu,W=%zu", strlen(want),
             strlen(want) + 8);
    assert_non_null(strstr(list[0], sz));
    assert_non_null(strstr(list[0], "P"));
    assert_non_null(strstr(list[0], "QQID1R"));
    assert_non_null(strstr(list[0], ".mx.test,S="));
    /* the Maildir and its files are private */
    snprintf(path, sizeof(path), "%s/bob", fx->mail);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/bob/cur", fx->mail);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/bob/new/%s", fx->mail, list[0]);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* not ours */
    assert_int_equal(fx_deliver(fx, "bob@remote.test", "QID1", 0),
                     MODMTA_DECLINED);
}

static void
test_deliver_loop(void **state)
{
    struct fx *fx = *state;
    char list[2][256];

    modmta_test_replace_file(fx->msg, "Delivered-To: <bob@example.com>\r\n"
                                      "Subject: x\r\n\r\nbody\r\n");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_FAILED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 554);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.4.6");
    assert_int_equal(names(fx, "bob", "new", list, 2), 0);
}

/* After a crash: a delivery found in new/ or cur/ is not made again; a
 * half-written copy in tmp/ is removed; a normal attempt never looks. */
static void
test_dedup(void **state)
{
    struct fx *fx = *state;
    char list[8][256], from[PATH_MAX], to[PATH_MAX], tmp[PATH_MAX];

    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 1),
                     MODMTA_DELIVERED);
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx), "crash"));
    assert_int_equal(names(fx, "bob", "new", list, 8), 1);
    /* a reader moved it to cur/ with flags */
    snprintf(from, sizeof(from), "%s/bob/new/%s", fx->mail, list[0]);
    snprintf(to, sizeof(to), "%s/bob/cur/%s:2,S", fx->mail, list[0]);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 1),
                     MODMTA_DELIVERED);
    assert_int_equal(names(fx, "bob", "new", list, 8), 0);
    /* another recipient of the same message is another delivery */
    assert_int_equal(fx_deliver(fx, "bob@localhost", "QID1", 1),
                     MODMTA_DELIVERED);
    assert_null(strstr(modmta_test_reply_text(fx->ctx), "crash"));
    assert_int_equal(names(fx, "bob", "new", list, 8), 1);
    /* a crash before the link: the tmp/ copy goes, the message comes */
    snprintf(tmp, sizeof(tmp), "%s/bob/tmp/1.M1P99QQID2R", fx->mail);
    assert_int_equal(maildir_name_token("QID2", "bob@example.com",
                                        tmp + strlen(tmp) - 6,
                                        sizeof(tmp) - strlen(tmp)), 0);
    strcat(tmp, ".mx.test");
    modmta_test_write_file(tmp, "Return-Path: <half");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID2", 1),
                     MODMTA_DELIVERED);
    assert_null(strstr(modmta_test_reply_text(fx->ctx), "crash"));
    assert_int_equal(names(fx, "bob", "tmp", list, 8), 0);
    assert_int_equal(names(fx, "bob", "new", list, 8), 2);
    /* without maybe_done the same message is delivered again */
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID2", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(names(fx, "bob", "new", list, 8), 3);
}

static void
test_over_quota(void **state)
{
    struct fx *fx = *state;
    char list[8][256];

    fx_use(fx, "{\"directory\": \"%s\", \"quota_messages\": 1}");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID2", 0),
                     MODMTA_FAILED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 552);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.2.2");
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx), "full"));
    fx_use(fx, "{\"directory\": \"%s\", \"quota_messages\": 1, "
           "\"over_quota\": \"defer\"}");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID2", 0),
                     MODMTA_DEFERRED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 452);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "4.2.2");
    assert_int_equal(names(fx, "bob", "new", list, 8), 1);
    assert_int_equal(names(fx, "bob", "tmp", list, 8), 0);
    /* a per-user entry lifts the limit; a broken one defers */
    fx_use(fx, "{\"directory\": \"%s\", \"quota_messages\": 1, "
           "\"quotas\": {\"bob\": \"none\", \"carol\": \"lots\"}}");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID2", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(fx_deliver(fx, "carol@example.com", "QID2", 0),
                     MODMTA_DEFERRED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
    fx_use(fx, "{\"directory\": \"%s\", \"quotas\": \"failtest:x\"}");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID3", 0),
                     MODMTA_DEFERRED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
}

/* A Maildir that is a symbolic link is refused and left alone. */
static void
test_symlink_refused(void **state)
{
    struct fx *fx = *state;
    char target[PATH_MAX], link[PATH_MAX + 8];

    snprintf(target, sizeof(target), "%s/elsewhere", fx->dir);
    assert_int_equal(mkdir(target, 0700), 0);
    snprintf(link, sizeof(link), "%s/bob", fx->mail);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DEFERRED);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
    snprintf(link, sizeof(link), "%s/new", target);
    assert_int_equal(access(link, F_OK), -1);
}

/* Whoever owns a Maildir may make its tmp/ or new/ a symbolic link: a
 * delivery (maybe as root) must not create or link a file through it. */
static void
test_symlinked_subdir_refused(void **state)
{
    struct fx *fx = *state;
    static const char *const subs[] = { "tmp", "new" };
    char target[PATH_MAX], path[PATH_MAX + 16], list[2][256];
    size_t i;

    snprintf(target, sizeof(target), "%s/elsewhere", fx->dir);
    assert_int_equal(mkdir(target, 0700), 0);
    for (i = 0; i < 2; i++) {
        assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                         MODMTA_DELIVERED);
        snprintf(path, sizeof(path), "%s/bob/%s", fx->mail, subs[i]);
        assert_int_equal(modmta_test_rmtree(path), 0);
        assert_int_equal(symlink(target, path), 0);
        assert_int_equal(fx_deliver(fx, "bob@example.com", "QID2", 0),
                         MODMTA_DEFERRED);
        assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
        assert_string_equal(modmta_test_reply_esc(fx->ctx), "4.2.0");
        assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                               "not a directory"));
        assert_int_equal(names(fx, "..", "elsewhere", list, 2), 0);
        assert_int_equal(modmta_test_rmtree(target), 0);
        assert_int_equal(mkdir(target, 0700), 0);
        snprintf(path, sizeof(path), "%s/bob", fx->mail);
        assert_int_equal(modmta_test_rmtree(path), 0);
    }
}

/* As root: "owner" gives every Maildir to one account (a vmail user);
 * without it a system user's Maildir is the user's; a Maildir owned by
 * someone else is refused. */
static void
test_owner_as_root(void **state)
{
    struct fx *fx = *state;
    struct passwd *pw = getpwnam("nobody");
    char path[PATH_MAX], list[2][256];
    struct stat st;

    if (geteuid() != 0 || pw == NULL)
        skip();
    fx_use(fx, "{\"directory\": \"%s\", \"owner\": \"nobody\"}");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    snprintf(path, sizeof(path), "%s/bob", fx->mail);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_int_equal(names(fx, "bob", "new", list, 2), 1);
    snprintf(path, sizeof(path), "%s/bob/new/%s", fx->mail, list[0]);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    snprintf(path, sizeof(path), "%s/bob/tmp", fx->mail);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    /* the same Maildir for users "system" as root: not root's */
    fx_use(fx, "{\"directory\": \"%s\", \"users\": \"system\"}");
    snprintf(path, sizeof(path), "%s/root", fx->mail);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chown(path, pw->pw_uid, pw->pw_gid), 0);
    assert_int_equal(fx_deliver(fx, "root@example.com", "QID1", 0),
                     MODMTA_DEFERRED);
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx), "owned by"));
}

/* ---- recipient_delimiter ---- */

static int
is_file(struct fx *fx, const char *rel)
{
    char path[PATH_MAX];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", fx->mail, rel);
    return lstat(path, &st) == 0;
}

static void
test_extension_folder(void **state)
{
    struct fx *fx = *state;
    char list[8][256];

    assert_int_equal(modmta_test_host_set_delimiter(fx->host, "+-"), 0);
    fx_use(fx, "{\"directory\": \"%s\"}");
    assert_int_equal(fx_rcpt(fx, "bob+Lists@example.com"), MODMTA_ACCEPT);
    assert_int_equal(fx_deliver(fx, "bob+Lists@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    /* Maildir++: <maildir>/.lists/{tmp,new,cur} and maildirfolder */
    assert_int_equal(names(fx, "bob/.lists", "new", list, 8), 1);
    assert_true(is_file(fx, "bob/.lists/cur"));
    assert_true(is_file(fx, "bob/.lists/tmp"));
    assert_true(is_file(fx, "bob/.lists/maildirfolder"));
    assert_int_equal(names(fx, "bob", "new", list, 8), 0);
    /* the second delimiter character cuts too */
    assert_int_equal(fx_deliver(fx, "bob-lists@example.com", "QID2", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(names(fx, "bob/.lists", "new", list, 8), 2);
    /* hostile or odd extensions: INBOX, never outside the Maildir */
    assert_int_equal(fx_deliver(fx, "bob+..@example.com", "QID3", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(fx_deliver(fx, "bob+.x@example.com", "QID4", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(fx_deliver(fx, "bob+a.b@example.com", "QID5", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(fx_deliver(fx, "bob+@example.com", "QID6", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(fx_deliver(fx, "bob+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com",
                                "QID7", 0), MODMTA_DELIVERED);
    assert_int_equal(names(fx, "bob", "new", list, 8), 5);
    assert_false(is_file(fx, "bob/..."));
    assert_false(is_file(fx, "bob/..x"));
    assert_false(is_file(fx, "bob/.a.b"));
    /* an exact user wins over the cut */
    fx_use(fx, "{\"directory\": \"%s\", \"users\": [\"bob\", "
              "\"bob+x\"]}");
    assert_int_equal(fx_deliver(fx, "bob+x@example.com", "QID8", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(names(fx, "bob+x", "new", list, 8), 1);
    assert_false(is_file(fx, "bob/.x"));
    assert_int_equal(fx_rcpt(fx, "bob+y@example.com"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(fx, "carol+y@example.com"), MODMTA_CONTINUE);
    /* "extension_folders": false: INBOX */
    fx_use(fx, "{\"directory\": \"%s\", \"extension_folders\": false}");
    assert_int_equal(fx_deliver(fx, "bob+news@example.com", "QID9", 0),
                     MODMTA_DELIVERED);
    assert_false(is_file(fx, "bob/.news"));
    assert_int_equal(names(fx, "bob", "new", list, 8), 6);
    /* no delimiter configured: a user of its own */
    assert_int_equal(modmta_test_host_set_delimiter(fx->host, NULL), 0);
    fx_use(fx, "{\"directory\": \"%s\"}");
    assert_int_equal(fx_deliver(fx, "bob+news@example.com", "QID10", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(names(fx, "bob+news", "new", list, 8), 1);
}

/* A folder that is a symbolic link is refused, as the Maildir is. */
static void
test_extension_folder_symlink(void **state)
{
    struct fx *fx = *state;
    char path[PATH_MAX], target[PATH_MAX];

    assert_int_equal(modmta_test_host_set_delimiter(fx->host, "+"), 0);
    fx_use(fx, "{\"directory\": \"%s\"}");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    snprintf(target, sizeof(target), "%s", fx->dir);
    snprintf(path, sizeof(path), "%s/bob/.evil", fx->mail);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(fx_deliver(fx, "bob+evil@example.com", "QID2", 0),
                     MODMTA_DEFERRED);
    assert_false(is_file(fx, "../new"));
}

/* A folder that exists in another case takes the extension ("Spam"
 * made by an IMAP client for bob+spam); "inbox" in any case is INBOX. */
static void
test_extension_folder_case(void **state)
{
    struct fx *fx = *state;
    char path[PATH_MAX], list[8][256];

    assert_int_equal(modmta_test_host_set_delimiter(fx->host, "+"), 0);
    fx_use(fx, "{\"directory\": \"%s\"}");
    assert_int_equal(fx_deliver(fx, "bob@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    snprintf(path, sizeof(path), "%s/bob/.Spam", fx->mail);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(fx_deliver(fx, "bob+spam@example.com", "QID2", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(fx_deliver(fx, "bob+SPAM@example.com", "QID3", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(names(fx, "bob/.Spam", "new", list, 8), 2);
    assert_false(is_file(fx, "bob/.spam"));
    assert_true(is_file(fx, "bob/.Spam/maildirfolder"));
    assert_int_equal(fx_deliver(fx, "bob+Inbox@example.com", "QID4", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(fx_deliver(fx, "bob+inbox@example.com", "QID5", 0),
                     MODMTA_DELIVERED);
    assert_false(is_file(fx, "bob/.inbox"));
    assert_false(is_file(fx, "bob/.Inbox"));
    assert_int_equal(names(fx, "bob", "new", list, 8), 3);
    /* a folder not there yet: made, lower case */
    assert_int_equal(fx_deliver(fx, "bob+News@example.com", "QID6", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(names(fx, "bob/.news", "new", list, 8), 1);
}

/* A "maildirfolder" already there is left alone: a hard link to a file
 * of root's keeps its owner, a FIFO does not block the delivery, a
 * symbolic link is refused. */
static void
test_extension_folder_marker(void **state)
{
    struct fx *fx = *state;
    struct passwd *pw = getpwnam("nobody");
    char path[PATH_MAX], victim[PATH_MAX];
    struct stat st;

    assert_int_equal(modmta_test_host_set_delimiter(fx->host, "+"), 0);
    if (geteuid() == 0 && pw != NULL)
        fx_use(fx, "{\"directory\": \"%s\", \"owner\": \"nobody\"}");
    else
        fx_use(fx, "{\"directory\": \"%s\"}");
    assert_int_equal(fx_deliver(fx, "bob+x@example.com", "QID1", 0),
                     MODMTA_DELIVERED);
    snprintf(path, sizeof(path), "%s/bob/.x/maildirfolder", fx->mail);
    snprintf(victim, sizeof(victim), "%s/victim", fx->dir);
    modmta_test_write_file(victim, "secret\n");
    assert_int_equal(unlink(path), 0);
    assert_int_equal(link(victim, path), 0);
    assert_int_equal(fx_deliver(fx, "bob+x@example.com", "QID2", 0),
                     MODMTA_DELIVERED);
    assert_int_equal(stat(victim, &st), 0);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(fx_deliver(fx, "bob+x@example.com", "QID3", 0),
                     MODMTA_DEFERRED);
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                           "not a regular file"));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(victim, path), 0);
    assert_int_equal(fx_deliver(fx, "bob+x@example.com", "QID4", 0),
                     MODMTA_DEFERRED);
    assert_int_equal(lstat(victim, &st), 0);
    assert_int_equal(st.st_uid, geteuid());
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rcpt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_over_quota, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_extension_folder, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_extension_folder_case, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_extension_folder_marker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_extension_folder_symlink, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_symlinked_subdir_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_owner_as_root, setup, teardown),
    };

    if (modmta_test_register_failing_map() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
