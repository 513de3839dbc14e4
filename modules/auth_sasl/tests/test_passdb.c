/* Unit tests of the passdb SDK interface: file parsing and verification,
 * and the saslauthd wire protocol against a fake saslauthd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <crypt.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include <modmta/modmta.h>
#include <files.h>

static char tmpdir[64];

/* crypt_r, interposed (libmodmta is a shared library): counts the calls
 * and keeps the last setting, then runs the real one. */
static unsigned crypt_calls;
static char crypt_setting[CRYPT_OUTPUT_SIZE];

char *
crypt_r(const char *phrase, const char *setting, struct crypt_data *data)
{
    char *(*real)(const char *, const char *, struct crypt_data *);

    *(void **)&real = dlsym(RTLD_NEXT, "crypt_r");
    assert_non_null(real);
    crypt_calls++;
    snprintf(crypt_setting, sizeof(crypt_setting), "%s", setting);
    return real(phrase, setting, data);
}

static const char *
write_file(const char *name, const char *text)
{
    static char path[256];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    modmta_test_write_file(path, text);
    return path;
}

static void
test_file_verify(void **state)
{
    char text[512], salt[CRYPT_GENSALT_OUTPUT_SIZE];
    const char *hash, *path;
    modmta_passdb *db;
    modmta_err err;
    char *secret = NULL;

    assert_non_null(crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt)));
    hash = crypt(" s3cret", salt);
    assert_non_null(hash);
    snprintf(text, sizeof(text), "# users\n\nalice:{CRYPT}%s\n"
             "bob:{PLAIN}pw:x\ncarol:%s\n", hash, hash);
    path = write_file("passwd", text);
    snprintf(text, sizeof(text), "file:%s", path);
    db = modmta_passdb_open(text, "$.p", &err);
    assert_non_null(db);
    assert_int_equal(modmta_passdb_verify(db, "alice", " s3cret", 7), 1);
    assert_int_equal(modmta_passdb_verify(db, "alice", "s3cret", 6), 0);
    assert_int_equal(modmta_passdb_verify(db, "Alice", " s3cret", 7), 0);
    assert_int_equal(modmta_passdb_verify(db, "carol", " s3cret", 7), 1);
    assert_int_equal(modmta_passdb_verify(db, "bob", "pw:x", 4), 1);
    assert_int_equal(modmta_passdb_verify(db, "bob", "pw:x\0", 5), 0);
    assert_int_equal(modmta_passdb_verify(db, "nobody", "pw", 2), 0);
    assert_true(modmta_passdb_has_secrets(db));
    assert_int_equal(modmta_passdb_secret(db, "bob", &secret), 1);
    assert_string_equal(secret, "pw:x");
    modmta_passdb_secret_free(secret);
    assert_int_equal(modmta_passdb_secret(db, "alice", &secret), 0);
    assert_null(secret);
    modmta_passdb_close(db);
}

static void
test_file_yescrypt_reload(void **state)
{
    char text[512], spec[300], salt[CRYPT_GENSALT_OUTPUT_SIZE];
    const char *path;
    modmta_passdb *db;
    modmta_err err;

    assert_non_null(crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)));
    snprintf(text, sizeof(text), "dave:{CRYPT}%s\n", crypt("pw1", salt));
    path = write_file("passwd2", text);
    snprintf(spec, sizeof(spec), "file:%s", path);
    modmta_test_reload_clock();
    db = modmta_passdb_open(spec, "$.p", &err);
    assert_non_null(db);
    assert_int_equal(modmta_passdb_verify(db, "dave", "pw1", 3), 1);
    /* a broken rewrite keeps the old table; a good one replaces it, once
     * the file is due to be looked at (at most once a second) */
    write_file("passwd2", "dave:{MD5}abc\nand more\n");
    modmta_test_reload_advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_int_equal(modmta_passdb_verify(db, "dave", "pw1", 3), 1);
    write_file("passwd2", "dave:{PLAIN}pw2\n");
    assert_int_equal(modmta_passdb_verify(db, "dave", "pw1", 3), 1);
    modmta_test_reload_advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_int_equal(modmta_passdb_verify(db, "dave", "pw2", 3), 1);
    assert_int_equal(modmta_passdb_verify(db, "dave", "pw1", 3), 0);
    modmta_passdb_close(db);
}

/* An unknown user runs crypt_r against a dummy hash of the file's method
 * (so it takes as long as a known one), and is still refused. */
static void
test_file_unknown_user_hashes(void **state)
{
    static const char *const methods[] = {"$y$", "$6$"};
    char text[512], spec[300], salt[CRYPT_GENSALT_OUTPUT_SIZE];
    modmta_passdb *db;
    modmta_err err;
    unsigned before;
    size_t i;

    for (i = 0; i < 2; i++) {
        assert_non_null(crypt_gensalt_rn(methods[i], 0, NULL, 0, salt,
                                         sizeof(salt)));
        snprintf(text, sizeof(text), "bob:{PLAIN}pw\nerin:%s\n",
                 crypt("pw", salt));
        snprintf(spec, sizeof(spec), "file:%s", write_file("passwd3", text));
        db = modmta_passdb_open(spec, "$.p", &err);
        assert_non_null(db);
        before = crypt_calls;
        crypt_setting[0] = '\0';
        assert_int_equal(modmta_passdb_verify(db, "mallory", "pw", 2), 0);
        assert_int_equal(crypt_calls, before + 1);
        assert_int_equal(strncmp(crypt_setting, methods[i], 3), 0);
        /* the dummy is a real hash: not the "*0" of a bad setting */
        assert_true(strlen(crypt_setting) > 20);
        /* a known user: one crypt_r, as before */
        assert_int_equal(modmta_passdb_verify(db, "erin", "pw", 2), 1);
        assert_int_equal(crypt_calls, before + 2);
        modmta_passdb_close(db);
    }
}

static void
test_file_errors(void **state)
{
    char spec[300];
    modmta_err err;

    snprintf(spec, sizeof(spec), "file:%s",
             write_file("bad1", "ok:{PLAIN}x\nbroken line\n"));
    assert_null(modmta_passdb_open(spec, "$.p", &err));
    assert_non_null(strstr(err.msg, ":2:"));
    snprintf(spec, sizeof(spec), "file:%s",
             write_file("bad2", "a:$1$md5weak$xxxxxxxx\n"));
    assert_null(modmta_passdb_open(spec, "$.p", &err));
    snprintf(spec, sizeof(spec), "file:%s",
             write_file("bad3", "a:{PLAIN}x\na:{PLAIN}y\n"));
    assert_null(modmta_passdb_open(spec, "$.p", &err));
    assert_non_null(strstr(err.msg, "twice"));
    assert_null(modmta_passdb_open("file:/nonexistent/x", "$.p", &err));
    assert_null(modmta_passdb_open("nosuch:x", "$.p", &err));
    assert_string_equal(err.path, "$.p");
    assert_null(modmta_passdb_open("file", "$.p", &err));
}

/* A fake saslauthd: answers one request, records what it got. */
struct fake_sasl {
    int lfd;
    char got[4][64];
};

static void *
fake_sasl_run(void *arg)
{
    struct fake_sasl *f = arg;
    unsigned char hdr[2];
    char buf[64];
    int fd = accept(f->lfd, NULL, NULL), i;
    size_t n;

    for (i = 0; i < 4 && fd >= 0; i++) {
        if (recv(fd, hdr, 2, MSG_WAITALL) != 2)
            break;
        n = (size_t)hdr[0] << 8 | hdr[1];
        if (n >= sizeof(buf)
            || (n > 0 && recv(fd, buf, n, MSG_WAITALL) != (ssize_t)n))
            break;
        memcpy(f->got[i], buf, n);
        f->got[i][n] = '\0';
    }
    if (fd >= 0) {
        const char *a = strcmp(f->got[1], "right") == 0 ? "OK" : "NO bad";

        hdr[0] = 0;
        hdr[1] = (unsigned char)strlen(a);
        send(fd, hdr, 2, 0);
        send(fd, a, strlen(a), 0);
        close(fd);
    }
    return NULL;
}

static int
fake_sasl_ask(const char *dir, const char *user, const char *pw,
              struct fake_sasl *f)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char spec[300];
    modmta_passdb *db;
    modmta_err err;
    pthread_t t;
    int r;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/mux", dir);
    unlink(sa.sun_path);
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 1), 0);
    pthread_create(&t, NULL, fake_sasl_run, f);
    snprintf(spec, sizeof(spec), "saslauthd:%s", dir);
    db = modmta_passdb_open(spec, "$.p", &err);
    assert_non_null(db);
    assert_false(modmta_passdb_has_secrets(db));
    r = modmta_passdb_verify(db, user, pw, strlen(pw));
    pthread_join(t, NULL);
    close(f->lfd);
    modmta_passdb_close(db);
    return r;
}

static void
test_saslauthd(void **state)
{
    struct fake_sasl f;
    char spec[300];
    modmta_passdb *db;
    modmta_err err;

    memset(&f, 0, sizeof(f));
    assert_int_equal(fake_sasl_ask(tmpdir, "bob@example.org", "right", &f),
                     1);
    assert_string_equal(f.got[0], "bob");
    assert_string_equal(f.got[2], "smtp");
    assert_string_equal(f.got[3], "example.org");
    memset(&f, 0, sizeof(f));
    assert_int_equal(fake_sasl_ask(tmpdir, "bob", "wrong", &f), 0);
    assert_string_equal(f.got[3], "");
    /* nobody listening: a temporary failure, never "wrong password" */
    snprintf(spec, sizeof(spec), "saslauthd:%s/mux", tmpdir);
    db = modmta_passdb_open(spec, "$.p", &err);
    assert_non_null(db);
    assert_int_equal(modmta_passdb_verify(db, "bob", "pw", 2),
                     MODMTA_E_TEMP);
    modmta_passdb_close(db);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_verify),
        cmocka_unit_test(test_file_yescrypt_reload),
        cmocka_unit_test(test_file_unknown_user_hashes),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_saslauthd),
    };
    int rc;

    modmta_test_tmpdir(tmpdir, sizeof(tmpdir), "passdb-test");
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        rc = modmta_test_rmtree(tmpdir) != 0;
    return rc;
}
