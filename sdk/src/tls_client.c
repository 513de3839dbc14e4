/*
 * TLS client side: a modmta_tls_client is one SSL_CTX (trust store,
 * protocol floor), made once and shared read-only by every thread; each
 * handshake gets its own SSL with the peer's name for SNI and for the
 * certificate check (RFC 6125 DNS-ID through OpenSSL's host check: a
 * wildcard covers exactly one whole left-most label, "f*.example.com" is
 * refused; the subject CN counts only when the certificate has no DNS
 * name).
 *
 * Both levels verify: VERIFY aborts the handshake on a failure, ENCRYPT
 * goes on (SSL_VERIFY_NONE still runs the check on a client) and only
 * records the result for modmta_conn_tls_verified().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conn_priv.h"
#include "file_open_priv.h"

/* A CA bundle is a few hundred KiB (Debian's: 220 KiB). */
#define TLS_CLIENT_CA_MAX (4L << 20)

struct modmta_tls_client {
    SSL_CTX *ctx;
};

static int tls_client_load_ca(SSL_CTX *ctx, const char *path,
                              modmta_err *err_r);
static int tls_client_name(SSL *ssl, const char *peer_name);
static void tls_client_verify_why(long vr, const char *peer_name,
                                  modmta_err *err_r);

int
modmta_tls_version_parse(const char *name)
{
    static const struct {
        const char *name;
        int version;
    } versions[] = {
        {"TLSv1", TLS1_VERSION},     {"TLSv1.0", TLS1_VERSION},
        {"TLSv1.1", TLS1_1_VERSION}, {"TLSv1.2", TLS1_2_VERSION},
        {"TLSv1.3", TLS1_3_VERSION},
    };
    size_t i;

    for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
        if (strcmp(name, versions[i].name) == 0)
            return versions[i].version;
    return 0;
}

/* The trust store is the certificates of one PEM file. */
static int
tls_client_load_ca(SSL_CTX *ctx, const char *path, modmta_err *err_r)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_INFO) *infos = NULL;
    X509_INFO *xi;
    BIO *bio = NULL;
    struct stat st;
    char *pem;
    size_t len;
    int i, n = 0;

    /* opened without blocking: a FIFO planted there would hang create() */
    if ((pem = file_read_all(path, TLS_CLIENT_CA_MAX, &st, &len, err_r))
        == NULL)
        return -1;
    if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL)
        infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    for (i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++) {
        xi = sk_X509_INFO_value(infos, i);
        if (xi->x509 != NULL && X509_STORE_add_cert(store, xi->x509) == 1)
            n++;
    }
    if (infos == NULL)
        modmta_err_set(err_r, NULL, "%s: not a PEM file", path);
    else if (n == 0)
        modmta_err_set(err_r, NULL, "%s: no certificate in it", path);
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    free(pem);
    ERR_clear_error();
    return n > 0 ? 0 : -1;
}

modmta_tls_client *
modmta_tls_client_new(const char *ca_file, const char *min_version,
                      modmta_err *err_r)
{
    const char *min = min_version != NULL ? min_version : "TLSv1.2";
    modmta_tls_client *t;
    int ver = modmta_tls_version_parse(min);

    if (ver == 0) {
        modmta_err_set(err_r, NULL,
                       "unknown TLS version \"%s\" (TLSv1.2, TLSv1.3...)",
                       min);
        return NULL;
    }
    if ((t = calloc(1, sizeof(*t))) == NULL
        || (t->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        modmta_err_set(err_r, NULL, "TLS client: out of memory");
        free(t);
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_min_proto_version(t->ctx, ver);
    SSL_CTX_set_options(t->ctx,
                        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (ca_file != NULL) {
        if (tls_client_load_ca(t->ctx, ca_file, err_r) < 0) {
            modmta_tls_client_free(t);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        modmta_err_set(err_r, NULL,
                       "TLS client: the system's trust store cannot be "
                       "loaded");
        modmta_tls_client_free(t);
        ERR_clear_error();
        return NULL;
    }
    return t;
}

void
modmta_tls_client_free(modmta_tls_client *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* SNI and the name to check: an address literal ("192.0.2.1",
 * "[2001:db8::1]") is matched against the certificate's IP addresses and
 * never sent as SNI (RFC 6066 section 3). A final dot is dropped. */
static int
tls_client_name(SSL *ssl, const char *peer_name)
{
    char name[256], ip[sizeof(name)];
    unsigned char bin[sizeof(struct in6_addr)];
    size_t n = strlen(peer_name);

    if (n > 0 && peer_name[n - 1] == '.')
        n--;
    if (n == 0 || n >= sizeof(name))
        return -1;
    memcpy(name, peer_name, n);
    name[n] = '\0';
    if (name[0] == '[' && name[n - 1] == ']') {
        memcpy(ip, name + 1, n - 2);
        ip[n - 2] = '\0';
    } else {
        memcpy(ip, name, n + 1);
    }
    if (inet_pton(AF_INET, ip, bin) == 1 || inet_pton(AF_INET6, ip, bin) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) == 1
                   ? 0 : -1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name) != 1
        || SSL_set_tlsext_host_name(ssl, name) != 1)
        return -1;
    return 0;
}

static void
tls_client_verify_why(long vr, const char *peer_name, modmta_err *err_r)
{
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH
        || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
        modmta_err_set(err_r, NULL,
                       "certificate name mismatch: the certificate does "
                       "not name %s", peer_name);
    else
        modmta_err_set(err_r, NULL, "certificate verification failed: %s",
                       X509_verify_cert_error_string(vr));
}

int
modmta_conn_starttls_client(modmta_conn *c, modmta_tls_client *t,
                            const char *peer_name, modmta_tls_verify verify,
                            int timeout_ms, modmta_err *err_r)
{
    char why[256] = "";
    long vr;
    SSL *ssl;
    int rc;

    if (c == NULL || t == NULL
        || (verify != MODMTA_TLS_ENCRYPT && verify != MODMTA_TLS_VERIFY)) {
        modmta_err_set(err_r, NULL, "TLS: bad argument");
        return MODMTA_E_INVAL;
    }
    if (modmta_conn_is_tls(c)) {
        modmta_err_set(err_r, NULL, "TLS: already started");
        return MODMTA_E_STATE;
    }
    if (verify == MODMTA_TLS_VERIFY && peer_name == NULL) {
        modmta_err_set(err_r, NULL,
                       "certificate verification failed: no name to "
                       "verify");
        return MODMTA_E_PERM;
    }
    if ((ssl = SSL_new(t->ctx)) == NULL) {
        ERR_clear_error();
        modmta_err_set(err_r, NULL, "TLS: out of memory");
        return MODMTA_E_NOMEM;
    }
    if (peer_name != NULL && tls_client_name(ssl, peer_name) < 0) {
        SSL_free(ssl);
        ERR_clear_error();
        modmta_err_set(err_r, NULL, "TLS: bad peer name \"%s\"", peer_name);
        return MODMTA_E_INVAL;
    }
    SSL_set_verify(ssl, verify == MODMTA_TLS_VERIFY ? SSL_VERIFY_PEER
                                                    : SSL_VERIFY_NONE,
                   NULL);
    rc = modmta_conn_tls_connect(c, ssl, timeout_ms, why, sizeof(why));
    /* ssl belongs to c now; it stays valid until c is closed. */
    vr = rc != MODMTA_E_STATE ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (rc < 0) {
        if (verify == MODMTA_TLS_VERIFY && vr != X509_V_OK) {
            tls_client_verify_why(vr, peer_name, err_r);
            return MODMTA_E_PERM;
        }
        modmta_err_set(err_r, NULL, "TLS handshake failed: %s",
                       why[0] != '\0' ? why : modmta_strerror(rc));
        return rc;
    }
    modmta_conn_set_tls_verified(c, peer_name != NULL && vr == X509_V_OK
                                 && SSL_get0_peer_certificate(ssl) != NULL);
    return 0;
}
