/*
 * The server's TLS context, built from the "tls" section of the config
 * (one per generation, shared by every listener for STARTTLS and implicit
 * TLS). OpenSSL 3.
 */
#ifndef MODMTA_CORE_TLS_H
#define MODMTA_CORE_TLS_H

#include <openssl/ssl.h>

#include "config.h"

/* Build a server SSL_CTX: certificate chain (PEM, leaf first), private
 * key (checked against the certificate), minimum protocol version
 * (default TLSv1.2), TLS 1.2 cipher list. Returns NULL when t->cert is
 * NULL (no TLS configured: errs untouched) or on error, every error added
 * to errs with its path ("$.tls.cert", "$.tls.key", ...). */
SSL_CTX *tls_ctx_new(const struct config_tls *t, struct config_errors *errs);
void tls_ctx_free(SSL_CTX *ctx);

#endif
