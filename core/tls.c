/*
 * The server TLS context (see tls.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "tls.h"

static const char *tls_ssl_error(char *buf, size_t len);
static int tls_readable(const char *path, const char *jpath,
                        struct config_errors *errs);
static int tls_version(const char *name);

/* The last OpenSSL error as text, and the queue cleared. */
static const char *
tls_ssl_error(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();

    if (e == 0)
        snprintf(buf, len, "unknown OpenSSL error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

/* A clearer message than OpenSSL's for the common mistakes. */
static int
tls_readable(const char *path, const char *jpath, struct config_errors *errs)
{
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        config_errors_add(errs, jpath, "%s: %s", path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static int
tls_version(const char *name)
{
    static const struct {
        const char *name;
        int version;
    } v[] = {
        {"TLSv1", TLS1_VERSION},     {"TLSv1.0", TLS1_VERSION},
        {"TLSv1.1", TLS1_1_VERSION}, {"TLSv1.2", TLS1_2_VERSION},
        {"TLSv1.3", TLS1_3_VERSION},
    };
    size_t i;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        if (strcasecmp(name, v[i].name) == 0)
            return v[i].version;
    return -1;
}

SSL_CTX *
tls_ctx_new(const struct config_tls *t, struct config_errors *errs)
{
    const char *key = t->key != NULL ? t->key : t->cert;
    const char *kpath = t->key != NULL ? "$.tls.key" : "$.tls.cert";
    char ebuf[256];
    SSL_CTX *ctx;
    int ver, bad = 0;

    if (t->cert == NULL)
        return NULL;
    ver = tls_version(t->min_version != NULL ? t->min_version : "TLSv1.2");
    if (ver < 0) {
        config_errors_add(errs, "$.tls.min_version",
                          "unknown TLS version \"%s\" (TLSv1.2, TLSv1.3...)",
                          t->min_version);
        bad = 1;
    }
    if (tls_readable(t->cert, "$.tls.cert", errs) < 0)
        bad = 1;
    if (key != t->cert && tls_readable(key, kpath, errs) < 0)
        bad = 1;
    if (bad)
        return NULL;

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        config_errors_add(errs, "$.tls", "cannot create a TLS context: %s",
                          tls_ssl_error(ebuf, sizeof(ebuf)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, ver);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                                 | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"modmta", 6);

    /* The key first: loading the certificate then drops a key that does
     * not match it, and the check below names the real problem. */
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        config_errors_add(errs, kpath, "%s: not a PEM private key: %s", key,
                          tls_ssl_error(ebuf, sizeof(ebuf)));
        bad = 1;
    }
    if (!bad && SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
        config_errors_add(errs, "$.tls.cert", "%s: not a PEM certificate "
                          "chain: %s", t->cert,
                          tls_ssl_error(ebuf, sizeof(ebuf)));
        bad = 1;
    }
    if (!bad && SSL_CTX_check_private_key(ctx) != 1) {
        config_errors_add(errs, kpath, "%s: the key does not match the "
                          "certificate %s", key, t->cert);
        ERR_clear_error();
        bad = 1;
    }
    if (!bad && t->ciphers != NULL
        && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
        config_errors_add(errs, "$.tls.ciphers", "no usable cipher in \"%s\"",
                          t->ciphers);
        ERR_clear_error();
        bad = 1;
    }
    if (bad) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void
tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}
