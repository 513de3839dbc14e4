/*
 * SASL: checking the credentials of an exchange against a passdb, and
 * the challenge CRAM-MD5 (and APOP) send (see modmta/sasl.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <modmta/err.h>

#include "sasl_priv.h"

/* What an unknown user's digest is checked against: the same work. */
#define SASL_DUMMY_SECRET "modmta-dummy-secret"

int
modmta_sasl_stamp(const char *hostname, char *out, size_t cap)
{
    static atomic_ulong counter;
    unsigned long long rnd;
    int n;

    if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
        return MODMTA_E_TEMP;
    n = snprintf(out, cap, "<%ld.%lu.%016llx.%lld@%s>", (long)getpid(),
                 atomic_fetch_add(&counter, 1), rnd, (long long)time(NULL),
                 hostname);
    return n >= 0 && (size_t)n < cap ? 0 : MODMTA_E_LIMIT;
}

/* 1 if digest (32 lower-case hex digits) is HMAC-MD5 keyed with secret
 * over stamp, 0 if not, MODMTA_E_TEMP if it cannot be computed. The
 * comparison takes the same time wherever they differ. */
static int
sasl_verify_cram(const char *stamp, const char *secret, const char *digest)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0, i;
    char hex[33];

    if (HMAC(EVP_md5(), secret, (int)strlen(secret),
             (const unsigned char *)stamp, strlen(stamp), mac, &len) == NULL
        || len != 16)
        return MODMTA_E_TEMP;
    for (i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return CRYPTO_memcmp(hex, digest, 32) == 0;
}

static int
sasl_verify_secret(modmta_sasl *x, modmta_passdb *db)
{
    char *secret = NULL;
    int r = modmta_passdb_secret(db, x->user, &secret);

    if (r < 0)
        return r;
    if (r == 0) {
        (void)sasl_verify_cram(x->stamp, SASL_DUMMY_SECRET, x->digest);
        return 0;
    }
    r = sasl_verify_cram(x->stamp, secret, x->digest);
    modmta_passdb_secret_free(secret);
    return r;
}

int
modmta_sasl_verify(modmta_sasl *x, modmta_passdb *db)
{
    int r;

    if (x->state != SASL_ST_DONE)
        return MODMTA_E_STATE;
    if (x->mech == MODMTA_SASL_CRAM_MD5)
        r = sasl_verify_secret(x, db);
    else
        r = modmta_passdb_verify(db, x->user, x->passwd, x->passwd_len);
    x->state = SASL_ST_END;
    explicit_bzero(x->passwd, sizeof(x->passwd));
    x->passwd_len = 0;
    return r;
}
