/*
 * Unit tests of the TLS settings: the "tls" section (SNI entries and
 * their errors, with JSON paths) and the SSL_CTX built from it, checked
 * by real in-memory handshakes that look at the certificate the server
 * chose. Keys and certificates are made at test time with OpenSSL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <files.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "tls.h"

static char dir[64];

static const char *
path_in(const char *name)
{
    static char buf[8][512];
    static int slot;

    slot = (slot + 1) % 8;
    snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", dir, name);
    return buf[slot];
}

/* name.key and name.crt, a self-signed certificate with CN=cn. */
static void
make_cert(const char *name, const char *cn)
{
    char file[128];
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *n;
    FILE *f;

    assert_non_null(key);
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    snprintf(file, sizeof(file), "%s.key", name);
    f = fopen(path_in(file), "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL,
                                          NULL), 1);
    fclose(f);
    snprintf(file, sizeof(file), "%s.crt", name);
    f = fopen(path_in(file), "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int
setup(void **state)
{
    (void)state;
    modmta_test_tmpdir(dir, sizeof(dir), "test_tls");
    make_cert("default", "default.test");
    make_cert("mail", "mail.example.org");
    make_cert("wild", "wild.example.net");
    make_cert("other", "other.test");
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    modmta_test_rmtree(dir);
    return 0;
}

/* Write the config (a printf format; %1$s is the directory). */
static const char *
write_cfg(const char *fmt)
{
    const char *p = path_in("cfg.json");
    FILE *f = fopen(p, "w");

    assert_non_null(f);
    fprintf(f, fmt, dir);
    fclose(f);
    return p;
}

static const char *const sni_cfg =
    "{\"spool\": \"/tmp\", \"tls\": {"
    "\"cert\": \"%1$s/default.crt\", \"key\": \"%1$s/default.key\","
    "\"sni\": ["
    " {\"names\": [\"Mail.Example.ORG\"], \"cert\": \"%1$s/mail.crt\","
    "  \"key\": \"%1$s/mail.key\"},"
    " {\"names\": [\"*.example.net\", \"other.test\"],"
    "  \"cert\": \"%1$s/wild.crt\", \"key\": \"%1$s/wild.key\"}]}}";

static struct config *
load_ok(const char *fmt)
{
    struct config_errors errs = { NULL, 0 };
    struct config *cfg = config_load(write_cfg(fmt), &errs);
    size_t i;

    for (i = 0; i < errs.n; i++)
        print_error("unexpected: %s\n", errs.msgs[i]);
    assert_int_equal(errs.n, 0);
    assert_non_null(cfg);
    return cfg;
}

/* The errors, each must start with its "want" prefix (NULL-terminated). */
static void
assert_errors(const struct config_errors *errs, const char *const *want)
{
    size_t i, n = 0;

    while (want[n] != NULL)
        n++;
    if (errs->n != n)
        for (i = 0; i < errs->n; i++)
            print_message("# got: %s\n", errs->msgs[i]);
    assert_int_equal(errs->n, n);
    for (i = 0; i < n; i++)
        if (strncmp(errs->msgs[i], want[i], strlen(want[i])) != 0)
            fail_msg("error %zu: \"%s\", want \"%s...\"", i, errs->msgs[i],
                     want[i]);
}

static void
load_fails(const char *fmt, const char *const *want)
{
    struct config_errors errs = { NULL, 0 };
    struct config *cfg = config_load(write_cfg(fmt), &errs);

    assert_null(cfg);
    assert_errors(&errs, want);
    config_errors_free(&errs);
}

/* Build the context from cfg; it must fail with want. */
static void
build_fails(struct config *cfg, const char *const *want)
{
    struct config_errors errs = { NULL, 0 };

    assert_null(tls_ctx_new(&cfg->tls, &errs));
    assert_errors(&errs, want);
    config_errors_free(&errs);
    config_free(cfg);
}

/* Handshake in memory with SNI name (NULL: none); the CN of the
 * certificate the server presented, in out. */
static void
handshake_cn(SSL_CTX *sctx, const char *name, char *out, size_t len)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *c, *s;
    BIO *cb, *sb;
    X509 *peer;
    int i, cr = 0, sr = 0;

    assert_non_null(cctx);
    c = SSL_new(cctx);
    s = SSL_new(sctx);
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (name != NULL)
        SSL_set_tlsext_host_name(c, name);
    for (i = 0; i < 100 && (cr != 1 || sr != 1); i++) {
        if (cr != 1)
            cr = SSL_do_handshake(c);
        if (sr != 1)
            sr = SSL_do_handshake(s);
    }
    assert_int_equal(cr, 1);
    assert_int_equal(sr, 1);
    peer = SSL_get1_peer_certificate(c);
    assert_non_null(peer);
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
                              out, (int)len);
    X509_free(peer);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
}

static void
test_sni_choice(void **state)
{
    struct config *cfg = load_ok(sni_cfg);
    struct config_errors errs = { NULL, 0 };
    SSL_CTX *ctx;
    char cn[256];

    (void)state;
    assert_int_equal(cfg->tls.nsni, 2);
    assert_string_equal(cfg->tls.sni[0].names[0], "mail.example.org");
    ctx = tls_ctx_new(&cfg->tls, &errs);
    assert_int_equal(errs.n, 0);
    assert_non_null(ctx);
    handshake_cn(ctx, NULL, cn, sizeof(cn));
    assert_string_equal(cn, "default.test");
    handshake_cn(ctx, "mail.example.org", cn, sizeof(cn));
    assert_string_equal(cn, "mail.example.org");
    handshake_cn(ctx, "MAIL.example.org", cn, sizeof(cn));
    assert_string_equal(cn, "mail.example.org");
    handshake_cn(ctx, "smtp.example.net", cn, sizeof(cn));
    assert_string_equal(cn, "wild.example.net");
    handshake_cn(ctx, "other.test", cn, sizeof(cn));
    assert_string_equal(cn, "wild.example.net");
    /* a wildcard covers one label, not the domain itself nor two */
    handshake_cn(ctx, "example.net", cn, sizeof(cn));
    assert_string_equal(cn, "default.test");
    handshake_cn(ctx, "a.b.example.net", cn, sizeof(cn));
    assert_string_equal(cn, "default.test");
    handshake_cn(ctx, "unknown.test", cn, sizeof(cn));
    assert_string_equal(cn, "default.test");
    tls_ctx_free(ctx);
    config_free(cfg);
}

/* An exact name in a later entry wins over an earlier wildcard. */
static void
test_sni_exact_first(void **state)
{
    struct config *cfg = load_ok(
        "{\"spool\": \"/tmp\", \"tls\": {\"cert\": \"%1$s/default.crt\","
        " \"key\": \"%1$s/default.key\", \"sni\": ["
        " {\"names\": [\"*.example.org\"], \"cert\": \"%1$s/wild.crt\","
        "  \"key\": \"%1$s/wild.key\"},"
        " {\"names\": [\"mail.example.org\"], \"cert\": \"%1$s/mail.crt\","
        "  \"key\": \"%1$s/mail.key\"}]}}");
    struct config_errors errs = { NULL, 0 };
    SSL_CTX *ctx = tls_ctx_new(&cfg->tls, &errs);
    char cn[256];

    (void)state;
    assert_non_null(ctx);
    handshake_cn(ctx, "mail.example.org", cn, sizeof(cn));
    assert_string_equal(cn, "mail.example.org");
    handshake_cn(ctx, "smtp.example.org", cn, sizeof(cn));
    assert_string_equal(cn, "wild.example.net");
    tls_ctx_free(ctx);
    config_free(cfg);
}

static void
test_min_version(void **state)
{
    struct config *cfg = load_ok(
        "{\"spool\": \"/tmp\", \"tls\": {\"cert\": \"%1$s/default.crt\","
        " \"key\": \"%1$s/default.key\"}}");
    struct config_errors errs = { NULL, 0 };
    SSL_CTX *ctx;

    (void)state;
    assert_string_equal(cfg->tls.min_version, "TLSv1.2");
    ctx = tls_ctx_new(&cfg->tls, &errs);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    tls_ctx_free(ctx);
    config_free(cfg);
    cfg = load_ok(
        "{\"spool\": \"/tmp\", \"tls\": {\"cert\": \"%1$s/default.crt\","
        " \"key\": \"%1$s/default.key\", \"min_version\": \"TLSv1.3\"}}");
    ctx = tls_ctx_new(&cfg->tls, &errs);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
    tls_ctx_free(ctx);
    config_free(cfg);
}

static void
test_default_key_mismatch(void **state)
{
    static const char *const want[] = {
        "$.tls.key: ", NULL
    };

    (void)state;
    build_fails(load_ok(
        "{\"spool\": \"/tmp\", \"tls\": {\"cert\": \"%1$s/default.crt\","
        " \"key\": \"%1$s/mail.key\"}}"), want);
}

static void
test_sni_key_mismatch(void **state)
{
    static const char *const want[] = {
        "$.tls.sni[1].key: ", NULL
    };
    struct config *cfg = load_ok(sni_cfg);

    (void)state;
    free(cfg->tls.sni[1].key);
    cfg->tls.sni[1].key = strdup(path_in("mail.key"));
    build_fails(cfg, want);
}

/* Every missing file is told, the default's and the entries'. */
static void
test_missing_files(void **state)
{
    static const char *const want[] = {
        "$.tls.cert: ", "$.tls.sni[0].key: ", "$.tls.sni[1].cert: ", NULL
    };
    struct config *cfg = load_ok(
        "{\"spool\": \"/tmp\", \"tls\": {\"cert\": \"%1$s/none.crt\","
        " \"key\": \"%1$s/default.key\", \"sni\": ["
        " {\"names\": [\"a.test\"], \"cert\": \"%1$s/mail.crt\","
        "  \"key\": \"%1$s/none.key\"},"
        " {\"names\": [\"b.test\"], \"cert\": \"%1$s/none.crt\"}]}}");
    struct config_errors errs = { NULL, 0 };

    (void)state;
    assert_null(tls_ctx_new(&cfg->tls, &errs));
    assert_errors(&errs, want);
    assert_non_null(strstr(errs.msgs[0], "No such file"));
    config_errors_free(&errs);
    config_free(cfg);
}

/* A file that is not PEM: the key of an entry given as its certificate. */
static void
test_not_a_key(void **state)
{
    static const char *const want[] = {
        "$.tls.sni[0].key: ", NULL
    };
    struct config *cfg = load_ok(
        "{\"spool\": \"/tmp\", \"tls\": {\"cert\": \"%1$s/default.crt\","
        " \"key\": \"%1$s/default.key\", \"sni\": ["
        " {\"names\": [\"a.test\"], \"cert\": \"%1$s/mail.crt\"}]}}");

    (void)state;
    build_fails(cfg, want);
}

static void
test_config_errors(void **state)
{
    static const char *const want[] = {
        "$.tls.sni: needs a default certificate",
        "$.tls.sni[0].names: required",
        "$.tls.sni[0].cert: required",
        "$.tls.sni[1].color: unknown key",
        "$.tls.sni[1].names[0]: \"bad name!\" is neither",
        "$.tls.sni[2].names[1]: \"x.test\" is already in $.tls.sni[1]",
        "$.tls.sni[3]: expected an object",
        NULL
    };

    (void)state;
    load_fails("{\"spool\": \"/tmp\", \"tls\": {\"sni\": ["
               " {\"names\": []},"
               " {\"names\": [\"bad name!\", \"x.test\"], \"cert\": \"c\","
               "  \"color\": 1},"
               " {\"names\": [\"y.test\", \"X.test\"], \"cert\": \"c\"},"
               " 7]}}", want);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_choice),
        cmocka_unit_test(test_sni_exact_first),
        cmocka_unit_test(test_min_version),
        cmocka_unit_test(test_default_key_mismatch),
        cmocka_unit_test(test_sni_key_mismatch),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_not_a_key),
        cmocka_unit_test(test_config_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
