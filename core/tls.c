/*
 * The server TLS context (see tls.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <pthread.h>
#include <stdlib.h>

#include <openssl/err.h>

#include "file_open_priv.h"
#include "tls.h"

/* The certificates chosen by SNI (see tls_sni_attach). */
struct tls_sni_entry {
    char *name;                    /* "mail.example.org", "*.example.net" */
    SSL_CTX *ctx;                  /* borrowed from ctx[] */
};
struct tls_sni {
    SSL_CTX **ctx;
    size_t nctx;
    struct tls_sni_entry *e;
    size_t n;
};

static int tls_sni_index = -1;

static const char *tls_ssl_error(char *buf, size_t len);
static int tls_readable(const char *path, const char *jpath,
                        struct config_errors *errs);
static int tls_version(const char *name);
static SSL_CTX *tls_ctx_one(const struct config_tls *t, int ver,
                            const char *cert, const char *key,
                            const char *cpath, const char *kpath,
                            struct config_errors *errs);
static void tls_sni_free(struct tls_sni *sni);
static void tls_sni_exfree(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
                           int idx, long argl, void *argp);
static void tls_sni_index_init(void);
static int tls_name_match(const char *pattern, const char *name, int wild);
static SSL_CTX *tls_sni_find(const struct tls_sni *sni, const char *name);
static int tls_servername(SSL *ssl, int *alert, void *arg);
static int tls_sni_add_names(struct tls_sni *sni, char *const *names,
                             SSL_CTX *ctx);
static struct tls_sni *tls_sni_build(const struct config_tls *t, int ver,
                                     struct config_errors *errs);
static int tls_sni_attach(SSL_CTX *def, struct tls_sni *sni,
                          struct config_errors *errs);

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

/* A clearer message than OpenSSL's for the common mistakes, and a FIFO
 * or a device refused before OpenSSL opens the path (it would block on
 * the one and read the other without end). */
static int
tls_readable(const char *path, const char *jpath, struct config_errors *errs)
{
    modmta_err err = {"", ""};

    if (file_check(path, FILE_OPEN_MAX, &err) < 0) {
        config_errors_add(errs, jpath, "%s", err.msg);
        return -1;
    }
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

/* One SSL_CTX for one certificate; paths name the config keys in
 * errors. */
static SSL_CTX *
tls_ctx_one(const struct config_tls *t, int ver, const char *cert,
            const char *key, const char *cpath, const char *kpath,
            struct config_errors *errs)
{
    char ebuf[256];
    SSL_CTX *ctx;
    int bad = 0;

    if (tls_readable(cert, cpath, errs) < 0)
        bad = 1;
    if (strcmp(key, cert) != 0 && tls_readable(key, kpath, errs) < 0)
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
    if (!bad && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        config_errors_add(errs, cpath, "%s: not a PEM certificate "
                          "chain: %s", cert,
                          tls_ssl_error(ebuf, sizeof(ebuf)));
        bad = 1;
    }
    if (!bad && SSL_CTX_check_private_key(ctx) != 1) {
        config_errors_add(errs, kpath, "%s: the key does not match the "
                          "certificate %s", key, cert);
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

/* The SNI table hangs off the default SSL_CTX (ex_data), so that it goes
 * with it: the generation frees only that one. */
static void
tls_sni_free(struct tls_sni *sni)
{
    size_t i;

    if (sni == NULL)
        return;
    for (i = 0; i < sni->nctx; i++)
        SSL_CTX_free(sni->ctx[i]);
    for (i = 0; i < sni->n; i++)
        free(sni->e[i].name);
    free(sni->ctx);
    free(sni->e);
    free(sni);
}

static void
tls_sni_exfree(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
               long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    tls_sni_free(ptr);
}

static void
tls_sni_index_init(void)
{
    tls_sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
                                             tls_sni_exfree);
}

/* "*.example.net" matches "a.example.net", not "example.net" nor
 * "a.b.example.net" (RFC 6125 section 6.4.3). */
static int
tls_name_match(const char *pattern, const char *name, int wild)
{
    const char *dot;

    if (strncmp(pattern, "*.", 2) != 0)
        return !wild && strcasecmp(pattern, name) == 0;
    if (!wild)
        return 0;
    dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(pattern + 1, dot) == 0;
}

/* An exact name wins over a wildcard, whatever the order. */
static SSL_CTX *
tls_sni_find(const struct tls_sni *sni, const char *name)
{
    size_t i;
    int wild;

    for (wild = 0; wild < 2; wild++)
        for (i = 0; i < sni->n; i++)
            if (tls_name_match(sni->e[i].name, name, wild))
                return sni->e[i].ctx;
    return NULL;
}

/* In the handshake: switch to the certificate the client asks for; an
 * unknown name, or none, keeps the default one. */
static int
tls_servername(SSL *ssl, int *alert, void *arg)
{
    const struct tls_sni *sni = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    SSL_CTX *ctx;

    (void)alert;
    if (name == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    ctx = tls_sni_find(sni, name);
    if (ctx != NULL && SSL_set_SSL_CTX(ssl, ctx) == NULL)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static int
tls_sni_add_names(struct tls_sni *sni, char *const *names, SSL_CTX *ctx)
{
    struct tls_sni_entry *e;

    for (; names != NULL && *names != NULL; names++) {
        e = realloc(sni->e, (sni->n + 1) * sizeof(*e));
        if (e == NULL)
            return -1;
        sni->e = e;
        e[sni->n].ctx = ctx;
        e[sni->n].name = strdup(*names);
        if (e[sni->n].name == NULL)
            return -1;
        sni->n++;
    }
    return 0;
}

/* Every SNI certificate, each error reported; NULL on any. */
static struct tls_sni *
tls_sni_build(const struct config_tls *t, int ver, struct config_errors *errs)
{
    char cpath[64], kpath[64];
    struct tls_sni *sni = calloc(1, sizeof(*sni));
    SSL_CTX *ctx;
    size_t i;
    int bad = 0;

    if (sni == NULL || (sni->ctx = calloc(t->nsni, sizeof(SSL_CTX *)))
                           == NULL) {
        free(sni);
        config_errors_add(errs, "$.tls.sni", "out of memory");
        return NULL;
    }
    for (i = 0; i < t->nsni; i++) {
        snprintf(cpath, sizeof(cpath), "$.tls.sni[%zu].cert", i);
        snprintf(kpath, sizeof(kpath), "$.tls.sni[%zu].key", i);
        ctx = tls_ctx_one(t, ver, t->sni[i].cert, t->sni[i].key, cpath,
                          kpath, errs);
        if (ctx == NULL) {
            bad = 1;
            continue;
        }
        sni->ctx[sni->nctx++] = ctx;
        if (tls_sni_add_names(sni, t->sni[i].names, ctx) < 0) {
            config_errors_add(errs, "$.tls.sni", "out of memory");
            bad = 1;
        }
    }
    if (bad) {
        tls_sni_free(sni);
        return NULL;
    }
    return sni;
}

static int
tls_sni_attach(SSL_CTX *def, struct tls_sni *sni, struct config_errors *errs)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, tls_sni_index_init);
    if (tls_sni_index < 0
        || SSL_CTX_set_ex_data(def, tls_sni_index, sni) != 1) {
        config_errors_add(errs, "$.tls.sni", "cannot attach the SNI "
                          "certificates");
        ERR_clear_error();
        tls_sni_free(sni);
        return -1;
    }
    SSL_CTX_set_tlsext_servername_callback(def, tls_servername);
    SSL_CTX_set_tlsext_servername_arg(def, sni);
    return 0;
}

SSL_CTX *
tls_ctx_new(const struct config_tls *t, struct config_errors *errs)
{
    const char *key = t->key != NULL ? t->key : t->cert;
    const char *kpath = t->key != NULL ? "$.tls.key" : "$.tls.cert";
    struct tls_sni *sni = NULL;
    SSL_CTX *ctx;
    int ver, bad = 0;

    if (t->cert == NULL)
        return NULL;
    ver = tls_version(t->min_version != NULL ? t->min_version : "TLSv1.2");
    if (ver < 0) {
        config_errors_add(errs, "$.tls.min_version",
                          "unknown TLS version \"%s\" (TLSv1.2, TLSv1.3...)",
                          t->min_version);
        ver = TLS1_2_VERSION; /* only to go on finding errors */
        bad = 1;
    }
    /* Everything is built whatever happens to the rest: every error is
     * told at once. */
    ctx = tls_ctx_one(t, ver, t->cert, key, "$.tls.cert", kpath, errs);
    if (t->nsni > 0)
        sni = tls_sni_build(t, ver, errs);
    if (!bad && (t->nsni == 0 || (ctx != NULL && sni != NULL
                                  && tls_sni_attach(ctx, sni, errs) == 0)))
        return ctx;
    if (sni != NULL && (bad || ctx == NULL))
        tls_sni_free(sni);
    SSL_CTX_free(ctx);
    return NULL;
}

void
tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}
