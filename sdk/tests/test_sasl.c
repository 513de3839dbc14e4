/* Unit tests of libmodmta's base64 and SASL exchanges (base64.c,
 * sasl.c, sasl_verify.c), the sources built in with OpenSSL's HMAC
 * wrapped (-Wl,--wrap) to count the digests computed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/hmac.h>

#include <modmta/modmta.h>
#include <files.h>

#include "sasl_priv.h"

unsigned char *__real_HMAC(const EVP_MD *md, const void *key, int key_len,
                           const unsigned char *d, size_t n,
                           unsigned char *out, unsigned int *out_len);
unsigned char *__wrap_HMAC(const EVP_MD *md, const void *key, int key_len,
                           const unsigned char *d, size_t n,
                           unsigned char *out, unsigned int *out_len);
static unsigned hmacs;

unsigned char *
__wrap_HMAC(const EVP_MD *md, const void *key, int key_len,
            const unsigned char *d, size_t n, unsigned char *out,
            unsigned int *out_len)
{
    hmacs++;
    return __real_HMAC(md, key, key_len, d, n, out, out_len);
}

static char dir[256];
static modmta_passdb *db;

/* ---- base64 ---- */

static void
decodes(const char *in, const char *want, size_t want_len)
{
    char out[64];

    assert_int_equal(modmta_base64_decode(in, strlen(in), out, sizeof(out)),
                     (long)want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[want_len], '\0');
}

static void
refuses(const char *in)
{
    char out[64];

    if (modmta_base64_decode(in, strlen(in), out, sizeof(out))
        != MODMTA_E_INVAL)
        fail_msg("\"%s\" decoded", in);
}

static void
test_base64_rfc4648(void **state)
{
    /* RFC 4648 section 10 */
    static const char *const v[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    char out[64];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(modmta_base64_encode(v[i][0], strlen(v[i][0]), out,
                                              sizeof(out)),
                         (long)strlen(v[i][1]));
        assert_string_equal(out, v[i][1]);
        decodes(v[i][1], v[i][0], strlen(v[i][0]));
    }
}

static void
test_base64_all_octets(void **state)
{
    unsigned char in[256], back[257];
    char enc[MODMTA_BASE64_ENCODED_LEN(256) + 1];
    size_t n;
    int i;

    (void)state;
    for (i = 0; i < 256; i++)
        in[i] = (unsigned char)(255 - i);
    for (n = 0; n <= 256; n += 37) {
        assert_int_equal(modmta_base64_encode(in, n, enc, sizeof(enc)),
                         (long)MODMTA_BASE64_ENCODED_LEN(n));
        assert_int_equal(modmta_base64_decode(enc, strlen(enc), back,
                                              sizeof(back)), (long)n);
        assert_memory_equal(back, in, n);
    }
}

/* One octet string, one encoding: the rest is refused. */
static void
test_base64_strict(void **state)
{
    (void)state;
    refuses("Zh==");      /* "f" with unused bits set */
    refuses("Zm9=");      /* "fo" likewise */
    refuses("Zg");        /* no padding */
    refuses("Zg=");
    refuses("Z===");
    refuses("====");
    refuses("=Zg=");
    refuses("Zg=a");
    refuses("Zg==Zg==");  /* padding before the end */
    refuses("Zm9v\r\n");  /* a line end */
    refuses("Zm 9v");
    refuses(" Zm9v");
    refuses("Zm9v ");
    refuses("Zm-_");      /* the URL-safe alphabet */
    refuses("Zm\x80v");
    refuses("Zm.v");
}

static void
test_base64_limits(void **state)
{
    char out[8];

    (void)state;
    /* 3 octets and the NUL */
    assert_int_equal(modmta_base64_decode("Zm9v", 4, out, 4), 3);
    assert_int_equal(modmta_base64_decode("Zm9v", 4, out, 3),
                     MODMTA_E_LIMIT);
    assert_int_equal(modmta_base64_decode("Zg==", 4, out, 2), 1);
    assert_int_equal(modmta_base64_decode("", 0, out, 1), 0);
    assert_int_equal(modmta_base64_decode("", 0, out, 0), MODMTA_E_LIMIT);
    /* "\0" inside the data */
    assert_int_equal(modmta_base64_decode("AGI=", 4, out, 8), 2);
    assert_memory_equal(out, "\0b", 2);
    assert_int_equal(modmta_base64_encode("foo", 3, out, 5), 4);
    assert_int_equal(modmta_base64_encode("foo", 3, out, 4),
                     MODMTA_E_LIMIT);
    assert_int_equal(modmta_base64_encode("", 0, out, 1), 0);
    assert_int_equal(modmta_base64_encode("", 0, out, 0), MODMTA_E_LIMIT);
}

/* ---- exchanges ---- */

static int
setup(void **state)
{
    char path[300], text[400];
    modmta_err err;
    char *hash = modmta_passdb_hash("pw", "$6$", &err);

    (void)state;
    assert_non_null(hash);
    modmta_test_tmpdir(dir, sizeof(dir), "test_sasl");
    snprintf(path, sizeof(path), "%s/passwd", dir);
    /* ann has a hash only: no secret for CRAM-MD5 */
    snprintf(text, sizeof(text), "bob:{PLAIN}pw\n"
             "tim:{PLAIN}tanstaaftanstaaf\nann:%s\n", hash);
    free(hash);
    modmta_test_write_file(path, text);
    snprintf(path, sizeof(path), "file:%s/passwd", dir);
    db = modmta_passdb_open(path, "$.passdb", &err);
    if (db == NULL)
        fail_msg("%s", err.msg);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    modmta_passdb_close(db);
    modmta_test_rmtree(dir);
    return 0;
}

static char *
b64(const char *s, size_t len)
{
    static char out[1024];

    assert_true(modmta_base64_encode(s, len, out, sizeof(out)) >= 0);
    return out;
}

/* A PLAIN exchange with the initial response msg (len octets). */
static int
plain(const char *msg, size_t len, modmta_sasl **x_r)
{
    *x_r = modmta_sasl_new(MODMTA_SASL_PLAIN, "mx.test");
    assert_non_null(*x_r);
    return modmta_sasl_start(*x_r, b64(msg, len));
}

static void
test_mech_names(void **state)
{
    (void)state;
    assert_int_equal(modmta_sasl_mech("plain"), MODMTA_SASL_PLAIN);
    assert_int_equal(modmta_sasl_mech("Login"), MODMTA_SASL_LOGIN);
    assert_int_equal(modmta_sasl_mech("CRAM-MD5"), MODMTA_SASL_CRAM_MD5);
    assert_int_equal(modmta_sasl_mech("GSSAPI"), 0);
    assert_int_equal(modmta_sasl_mech(""), 0);
    assert_string_equal(modmta_sasl_mech_name(MODMTA_SASL_CRAM_MD5),
                        "CRAM-MD5");
    assert_null(modmta_sasl_mech_name(0));
    assert_null(modmta_sasl_mech_name(MODMTA_SASL_PLAIN
                                      | MODMTA_SASL_LOGIN));
    assert_null(modmta_sasl_new(MODMTA_SASL_PLAIN | MODMTA_SASL_LOGIN,
                                "mx.test"));
}

static void
test_plain(void **state)
{
    modmta_sasl *x;

    (void)state;
    assert_int_equal(plain("\0bob\0pw", 7, &x), MODMTA_SASL_DONE);
    assert_string_equal(modmta_sasl_user(x), "bob");
    assert_int_equal(modmta_sasl_verify(x, db), 1);
    /* once */
    assert_int_equal(modmta_sasl_verify(x, db), MODMTA_E_STATE);
    modmta_sasl_free(x);
    assert_int_equal(plain("bob\0bob\0pw", 10, &x), MODMTA_SASL_DONE);
    assert_int_equal(modmta_sasl_verify(x, db), 1);
    modmta_sasl_free(x);
    assert_int_equal(plain("\0bob\0nope", 9, &x), MODMTA_SASL_DONE);
    assert_int_equal(modmta_sasl_verify(x, db), 0);
    modmta_sasl_free(x);
    assert_int_equal(plain("\0eve\0pw", 7, &x), MODMTA_SASL_DONE);
    assert_int_equal(modmta_sasl_verify(x, db), 0);
    modmta_sasl_free(x);
}

static void
test_plain_challenge(void **state)
{
    modmta_sasl *x = modmta_sasl_new(MODMTA_SASL_PLAIN, "mx.test");

    (void)state;
    assert_int_equal(modmta_sasl_step(x, "AGJvYgBwdw==", 12),
                     MODMTA_E_STATE);
    assert_int_equal(modmta_sasl_start(x, NULL), MODMTA_SASL_NEXT);
    assert_string_equal(modmta_sasl_challenge(x), "");
    assert_int_equal(modmta_sasl_start(x, NULL), MODMTA_E_STATE);
    assert_int_equal(modmta_sasl_step(x, "AGJvYgBwdw==", 12),
                     MODMTA_SASL_DONE);
    assert_int_equal(modmta_sasl_step(x, "AGJvYgBwdw==", 12),
                     MODMTA_E_STATE);
    assert_int_equal(modmta_sasl_verify(x, db), 1);
    modmta_sasl_free(x);
    x = modmta_sasl_new(MODMTA_SASL_PLAIN, "mx.test");
    assert_int_equal(modmta_sasl_start(x, NULL), MODMTA_SASL_NEXT);
    assert_int_equal(modmta_sasl_step(x, "*", 1), MODMTA_SASL_CANCEL);
    assert_int_equal(modmta_sasl_verify(x, db), MODMTA_E_STATE);
    modmta_sasl_free(x);
}

static void
test_plain_refused(void **state)
{
    char big[MODMTA_SASL_FIELD_MAX + 10];
    modmta_sasl *x;

    (void)state;
    assert_int_equal(plain("bobpw", 5, &x), MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    assert_int_equal(plain("\0bobpw", 6, &x), MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    assert_int_equal(plain("\0\0pw", 4, &x), MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    assert_int_equal(plain("\0bob\0", 5, &x), MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    assert_int_equal(plain("\0bob\0p\0w", 8, &x), MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    assert_int_equal(plain("eve\0bob\0pw", 10, &x), MODMTA_SASL_AUTHZ);
    assert_string_equal(modmta_sasl_user(x), "bob");
    assert_int_equal(modmta_sasl_verify(x, db), MODMTA_E_STATE);
    modmta_sasl_free(x);
    assert_int_equal(plain("bo\0bob\0pw", 9, &x), MODMTA_SASL_AUTHZ);
    modmta_sasl_free(x);
    /* a password of 256 octets */
    memset(big, 'a', sizeof(big));
    big[0] = '\0';
    big[4] = '\0';
    assert_int_equal(plain(big, 5 + MODMTA_SASL_FIELD_MAX + 1, &x),
                     MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    assert_int_equal(plain(big, 5 + MODMTA_SASL_FIELD_MAX, &x),
                     MODMTA_SASL_DONE);
    modmta_sasl_free(x);
    /* "=": an empty initial response, not a PLAIN message */
    x = modmta_sasl_new(MODMTA_SASL_PLAIN, "mx.test");
    assert_int_equal(modmta_sasl_start(x, "="), MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    x = modmta_sasl_new(MODMTA_SASL_PLAIN, "mx.test");
    assert_int_equal(modmta_sasl_start(x, "AGJvYgBwdw="), MODMTA_SASL_BAD64);
    modmta_sasl_free(x);
    x = modmta_sasl_new(MODMTA_SASL_PLAIN, "mx.test");
    assert_int_equal(modmta_sasl_start(x, "AGJvYgBwdx=="), MODMTA_SASL_BAD64);
    modmta_sasl_free(x);
}

static void
test_login(void **state)
{
    modmta_sasl *x = modmta_sasl_new(MODMTA_SASL_LOGIN, "mx.test");

    (void)state;
    assert_int_equal(modmta_sasl_start(x, NULL), MODMTA_SASL_NEXT);
    assert_string_equal(modmta_sasl_challenge(x), "VXNlcm5hbWU6");
    assert_int_equal(modmta_sasl_step(x, "Ym9i", 4), MODMTA_SASL_NEXT);
    assert_string_equal(modmta_sasl_challenge(x), "UGFzc3dvcmQ6");
    assert_string_equal(modmta_sasl_user(x), "bob");
    assert_int_equal(modmta_sasl_step(x, "cHc=", 4), MODMTA_SASL_DONE);
    assert_int_equal(modmta_sasl_verify(x, db), 1);
    modmta_sasl_free(x);
    /* the user name as the initial response */
    x = modmta_sasl_new(MODMTA_SASL_LOGIN, "mx.test");
    assert_int_equal(modmta_sasl_start(x, "Ym9i"), MODMTA_SASL_NEXT);
    assert_string_equal(modmta_sasl_challenge(x), "UGFzc3dvcmQ6");
    assert_int_equal(modmta_sasl_step(x, "bm8=", 4), MODMTA_SASL_DONE);
    assert_int_equal(modmta_sasl_verify(x, db), 0);
    modmta_sasl_free(x);
}

static void
test_login_refused(void **state)
{
    modmta_sasl *x = modmta_sasl_new(MODMTA_SASL_LOGIN, "mx.test");

    (void)state;
    assert_int_equal(modmta_sasl_start(x, "="), MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    x = modmta_sasl_new(MODMTA_SASL_LOGIN, "mx.test");
    assert_int_equal(modmta_sasl_start(x, "Ym9i"), MODMTA_SASL_NEXT);
    assert_int_equal(modmta_sasl_step(x, "", 0), MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    x = modmta_sasl_new(MODMTA_SASL_LOGIN, "mx.test");
    assert_int_equal(modmta_sasl_start(x, NULL), MODMTA_SASL_NEXT);
    assert_int_equal(modmta_sasl_step(x, "Ym8AYg==", 8),
                     MODMTA_SASL_MALFORMED); /* "bo\0b" */
    modmta_sasl_free(x);
    x = modmta_sasl_new(MODMTA_SASL_LOGIN, "mx.test");
    assert_int_equal(modmta_sasl_start(x, "Ym9i"), MODMTA_SASL_NEXT);
    assert_int_equal(modmta_sasl_step(x, "*", 1), MODMTA_SASL_CANCEL);
    modmta_sasl_free(x);
}

/* Run CRAM-MD5 to its challenge; the challenge (a stamp) into stamp. */
static modmta_sasl *
cram_start(char *stamp, size_t cap)
{
    modmta_sasl *x = modmta_sasl_new(MODMTA_SASL_CRAM_MD5, "mx.test");
    const char *c;
    long n;

    assert_int_equal(modmta_sasl_start(x, NULL), MODMTA_SASL_NEXT);
    c = modmta_sasl_challenge(x);
    n = modmta_base64_decode(c, strlen(c), stamp, cap);
    assert_true(n > 0);
    return x;
}

static int
cram_answer(modmta_sasl *x, const char *stamp, const char *user,
            const char *secret)
{
    unsigned char mac[16];
    unsigned len = 0, i;
    char msg[600];
    int n = snprintf(msg, sizeof(msg), "%s ", user);

    __real_HMAC(EVP_md5(), secret, (int)strlen(secret),
                (const unsigned char *)stamp, strlen(stamp), mac, &len);
    for (i = 0; i < len; i++)
        n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%02x", mac[i]);
    return modmta_sasl_step(x, b64(msg, strlen(msg)),
                            strlen(b64(msg, strlen(msg))));
}

static void
test_cram(void **state)
{
    char stamp[SASL_STAMP_MAX], other[SASL_STAMP_MAX];
    modmta_sasl *x = cram_start(stamp, sizeof(stamp)), *y;

    (void)state;
    assert_int_equal(stamp[0], '<');
    assert_non_null(strstr(stamp, "@mx.test>"));
    /* a fresh challenge each time */
    y = cram_start(other, sizeof(other));
    assert_string_not_equal(stamp, other);
    modmta_sasl_free(y);
    assert_int_equal(cram_answer(x, stamp, "bob", "pw"), MODMTA_SASL_DONE);
    assert_string_equal(modmta_sasl_user(x), "bob");
    assert_int_equal(modmta_sasl_verify(x, db), 1);
    modmta_sasl_free(x);
    x = cram_start(stamp, sizeof(stamp));
    assert_int_equal(cram_answer(x, stamp, "bob", "pW"), MODMTA_SASL_DONE);
    assert_int_equal(modmta_sasl_verify(x, db), 0);
    modmta_sasl_free(x);
    /* split at the last space: a user name may hold one */
    x = cram_start(stamp, sizeof(stamp));
    assert_int_equal(cram_answer(x, stamp, "jo smith", "jo pw"),
                     MODMTA_SASL_DONE);
    assert_string_equal(modmta_sasl_user(x), "jo smith");
    modmta_sasl_free(x);
}

/* RFC 2195's example, the challenge put in by hand. */
static void
test_cram_rfc2195(void **state)
{
    modmta_sasl *x = modmta_sasl_new(MODMTA_SASL_CRAM_MD5, "mx.test");
    /* "tim b913a602c7eda7a495b4e6e7334d3890" */
    const char *answer = "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw";

    (void)state;
    assert_int_equal(modmta_sasl_start(x, NULL), MODMTA_SASL_NEXT);
    snprintf(x->stamp, sizeof(x->stamp), "%s",
             "<1896.697170952@postoffice.reston.mci.net>");
    assert_int_equal(modmta_sasl_step(x, answer, strlen(answer)),
                     MODMTA_SASL_DONE);
    assert_int_equal(modmta_sasl_verify(x, db), 1);
    modmta_sasl_free(x);
}

static void
test_cram_refused(void **state)
{
    char stamp[SASL_STAMP_MAX], msg[100];
    modmta_sasl *x = modmta_sasl_new(MODMTA_SASL_CRAM_MD5, "mx.test");
    unsigned before;

    (void)state;
    /* the server speaks first */
    assert_int_equal(modmta_sasl_start(x, "dGlt"), MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    x = cram_start(stamp, sizeof(stamp));
    snprintf(msg, sizeof(msg), "%s",
             "tim B913A602C7EDA7A495B4E6E7334D3890"); /* upper case */
    assert_int_equal(modmta_sasl_step(x, b64(msg, strlen(msg)),
                                      strlen(b64(msg, strlen(msg)))),
                     MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    x = cram_start(stamp, sizeof(stamp));
    snprintf(msg, sizeof(msg), "%s", " b913a602c7eda7a495b4e6e7334d3890");
    assert_int_equal(modmta_sasl_step(x, b64(msg, strlen(msg)),
                                      strlen(b64(msg, strlen(msg)))),
                     MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    x = cram_start(stamp, sizeof(stamp));
    snprintf(msg, sizeof(msg), "%s", "tim b913a602c7eda7a495b4e6e7334d389");
    assert_int_equal(modmta_sasl_step(x, b64(msg, strlen(msg)),
                                      strlen(b64(msg, strlen(msg)))),
                     MODMTA_SASL_MALFORMED);
    modmta_sasl_free(x);
    /* an unknown user, and one without a clear-text secret: a digest is
     * computed all the same */
    x = cram_start(stamp, sizeof(stamp));
    assert_int_equal(cram_answer(x, stamp, "eve", "pw"), MODMTA_SASL_DONE);
    before = hmacs;
    assert_int_equal(modmta_sasl_verify(x, db), 0);
    assert_int_equal(hmacs, before + 1);
    modmta_sasl_free(x);
    x = cram_start(stamp, sizeof(stamp));
    assert_int_equal(cram_answer(x, stamp, "ann", "pw"), MODMTA_SASL_DONE);
    before = hmacs;
    assert_int_equal(modmta_sasl_verify(x, db), 0);
    assert_int_equal(hmacs, before + 1);
    modmta_sasl_free(x);
}

static void
test_stamp(void **state)
{
    char s[64];

    (void)state;
    assert_int_equal(modmta_sasl_stamp("mx.test", s, sizeof(s)), 0);
    assert_int_equal(s[0], '<');
    assert_int_equal(s[strlen(s) - 1], '>');
    assert_int_equal(modmta_sasl_stamp("mx.test", s, 20), MODMTA_E_LIMIT);
    modmta_sasl_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_all_octets),
        cmocka_unit_test(test_base64_strict),
        cmocka_unit_test(test_base64_limits),
        cmocka_unit_test(test_mech_names),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_plain_challenge),
        cmocka_unit_test(test_plain_refused),
        cmocka_unit_test(test_login),
        cmocka_unit_test(test_login_refused),
        cmocka_unit_test(test_cram),
        cmocka_unit_test(test_cram_rfc2195),
        cmocka_unit_test(test_cram_refused),
        cmocka_unit_test(test_stamp),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
