/*
 * Secrets as the passwd-file's second field holds them, shared by the
 * file: and redis: passdb backends: "{CRYPT}$y$..." (or a bare crypt
 * hash), checked with crypt_r(3) (libcrypt), and "{PLAIN}secret"
 * (tests only); the dummy hash that makes an unknown user cost what a
 * known one does; and modmta_passdb_hash, which makes such secrets.
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/passdb.h>

#include "passdb_priv.h"

/* The crypt(3) methods we accept: all strong, all in libxcrypt. */
static const char *const passdb_crypt_prefixes[] = {
    "$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$",
};

static int
passdb_crypt_known(const char *hash)
{
    size_t i;

    for (i = 0; i < sizeof(passdb_crypt_prefixes) /
                        sizeof(passdb_crypt_prefixes[0]); i++)
        if (strncmp(hash, passdb_crypt_prefixes[i],
                    strlen(passdb_crypt_prefixes[i])) == 0)
            return 1;
    return 0;
}

int
passdb_secret_parse(const char *field, enum passdb_scheme *scheme_r,
                    const char **secret_r, const char **why_r)
{
    const char *s = field;

    if (strncmp(s, "{PLAIN}", 7) == 0) {
        *scheme_r = PASSDB_PLAIN;
        s += 7;
    } else {
        *scheme_r = PASSDB_CRYPT;
        if (strncmp(s, "{CRYPT}", 7) == 0)
            s += 7;
        if (!passdb_crypt_known(s)) {
            *why_r = "unknown scheme or hash (want {CRYPT}$y$, $6$, $5$, "
                     "$2b$ ... or {PLAIN})";
            return MODMTA_E_INVAL;
        }
    }
    if (*s == '\0') {
        *why_r = "empty secret";
        return MODMTA_E_INVAL;
    }
    *secret_r = s;
    return 0;
}

/* Compare in a time that does not depend on where they differ. */
static int
passdb_equal(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b), i;
    unsigned char d = alen != blen;

    for (i = 0; i < alen && i < blen; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static int
passdb_crypt_check(const char *hash, const char *password)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char *out;
    int ok;

    if (cd == NULL)
        return MODMTA_E_TEMP;
    out = crypt_r(password, hash, cd);
    ok = out != NULL && out[0] != '*' && passdb_equal(out, strlen(out), hash);
    memset(cd, 0, sizeof(*cd));
    free(cd);
    return ok;
}

int
passdb_secret_check(enum passdb_scheme scheme, const char *secret,
                    const char *password, size_t len)
{
    return scheme == PASSDB_PLAIN ? passdb_equal(password, len, secret)
                                  : passdb_crypt_check(secret, password);
}

char *
passdb_dummy_new(const char *prefix)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE], *dummy = NULL;
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char *out;

    if (cd != NULL
        && crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof(salt)) != NULL
        && (out = crypt_r("modmta-dummy", salt, cd)) != NULL
        && out[0] != '*')
        dummy = strdup(out);
    free(cd);
    return dummy;
}

int
passdb_dummy_check(const char *dummy, const char *password)
{
    /* as slow as a known user; the result does not matter */
    (void)passdb_crypt_check(dummy, password);
    return 0;
}

char *
modmta_passdb_hash(const char *password, const char *prefix,
                   modmta_err *err_r)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE], *line = NULL;
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char *out = NULL;

    if (prefix == NULL)
        prefix = "$y$";
    if (cd == NULL) {
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    if (!passdb_crypt_known(prefix)
        || crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof(salt)) == NULL
        || (out = crypt_r(password, salt, cd)) == NULL || out[0] == '*') {
        modmta_err_set(err_r, NULL, "cannot hash with method %s: %s",
                       prefix, strerror(errno));
    } else if (asprintf(&line, "{CRYPT}%s", out) < 0) {
        line = NULL;
        modmta_err_set(err_r, NULL, "out of memory");
    }
    memset(cd, 0, sizeof(*cd));
    free(cd);
    return line;
}
