/*
 * SASL exchanges (see modmta/sasl.h): decoding and parsing what the
 * client sends, mechanism by mechanism. The checks are in sasl_verify.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <modmta/err.h>

#include "sasl_priv.h"

static const struct {
    unsigned mech;
    const char *name;
} sasl_mechs[] = {
    {MODMTA_SASL_PLAIN, "PLAIN"},
    {MODMTA_SASL_LOGIN, "LOGIN"},
    {MODMTA_SASL_CRAM_MD5, "CRAM-MD5"},
};

#define SASL_NMECHS (sizeof(sasl_mechs) / sizeof(sasl_mechs[0]))

unsigned
modmta_sasl_mech(const char *name)
{
    size_t i;

    for (i = 0; i < SASL_NMECHS; i++)
        if (strcasecmp(name, sasl_mechs[i].name) == 0)
            return sasl_mechs[i].mech;
    return 0;
}

const char *
modmta_sasl_mech_name(unsigned mech)
{
    size_t i;

    for (i = 0; i < SASL_NMECHS; i++)
        if (sasl_mechs[i].mech == mech)
            return sasl_mechs[i].name;
    return NULL;
}

modmta_sasl *
modmta_sasl_new(unsigned mech, const char *hostname)
{
    modmta_sasl *x;

    if (modmta_sasl_mech_name(mech) == NULL
        || (x = calloc(1, sizeof(*x))) == NULL)
        return NULL;
    x->mech = mech;
    x->state = SASL_ST_INIT;
    snprintf(x->hostname, sizeof(x->hostname), "%s",
             hostname != NULL ? hostname : "localhost");
    return x;
}

void
modmta_sasl_free(modmta_sasl *x)
{
    if (x == NULL)
        return;
    explicit_bzero(x, sizeof(*x));
    free(x);
}

const char *
modmta_sasl_challenge(const modmta_sasl *x)
{
    return x->challenge;
}

const char *
modmta_sasl_user(const modmta_sasl *x)
{
    return x->user;
}

/* The exchange is over with result r (not NEXT, not DONE). */
static int
sasl_end(modmta_sasl *x, int r)
{
    x->state = SASL_ST_END;
    explicit_bzero(x->passwd, sizeof(x->passwd));
    x->passwd_len = 0;
    return r;
}

/* Copy a field of 1 to MODMTA_SASL_FIELD_MAX octets without NUL. */
static int
sasl_field(char *dst, const char *src, size_t len)
{
    if (len == 0 || len > MODMTA_SASL_FIELD_MAX
        || memchr(src, '\0', len) != NULL)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* "authzid NUL authcid NUL passwd" (RFC 4616). */
static int
sasl_plain(modmta_sasl *x, const char *msg, size_t len)
{
    const char *end = msg + len, *nul1 = memchr(msg, '\0', len), *nul2;
    size_t zlen, clen;

    if (nul1 == NULL
        || (nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1))) == NULL)
        return sasl_end(x, MODMTA_SASL_MALFORMED);
    zlen = (size_t)(nul1 - msg);
    clen = (size_t)(nul2 - nul1 - 1);
    if (zlen > MODMTA_SASL_FIELD_MAX
        || sasl_field(x->user, nul1 + 1, clen) < 0
        || sasl_field(x->passwd, nul2 + 1, (size_t)(end - nul2 - 1)) < 0)
        return sasl_end(x, MODMTA_SASL_MALFORMED);
    x->passwd_len = strlen(x->passwd);
    if (zlen > 0 && (zlen != clen || memcmp(msg, x->user, zlen) != 0))
        return sasl_end(x, MODMTA_SASL_AUTHZ);
    x->state = SASL_ST_DONE;
    return MODMTA_SASL_DONE;
}

static int
sasl_login_user(modmta_sasl *x, const char *msg, size_t len)
{
    if (sasl_field(x->user, msg, len) < 0)
        return sasl_end(x, MODMTA_SASL_MALFORMED);
    strcpy(x->challenge, "UGFzc3dvcmQ6"); /* "Password:" */
    x->state = SASL_ST_LOGIN_PASS;
    return MODMTA_SASL_NEXT;
}

static int
sasl_login_pass(modmta_sasl *x, const char *msg, size_t len)
{
    if (sasl_field(x->passwd, msg, len) < 0)
        return sasl_end(x, MODMTA_SASL_MALFORMED);
    x->passwd_len = len;
    x->state = SASL_ST_DONE;
    return MODMTA_SASL_DONE;
}

/* "user SP digest" (RFC 2195), split at the last space: the digest (32
 * hex digits) has none. */
static int
sasl_cram(modmta_sasl *x, const char *msg, size_t len)
{
    const char *sp = len > 33 ? msg + len - 33 : NULL;

    if (sp == NULL || *sp != ' '
        || sasl_field(x->user, msg, (size_t)(sp - msg)) < 0
        || strspn(sp + 1, "0123456789abcdef") != 32)
        return sasl_end(x, MODMTA_SASL_MALFORMED);
    memcpy(x->digest, sp + 1, 33);
    x->state = SASL_ST_DONE;
    return MODMTA_SASL_DONE;
}

/* Decode a response and hand it to the state's parser. */
static int
sasl_feed(modmta_sasl *x, const char *b64, size_t len)
{
    long n = modmta_base64_decode(b64, len, x->dec, sizeof(x->dec));
    int r;

    if (n < 0)
        return sasl_end(x, n == MODMTA_E_LIMIT ? MODMTA_SASL_MALFORMED
                                               : MODMTA_SASL_BAD64);
    switch (x->state) {
    case SASL_ST_PLAIN:
        r = sasl_plain(x, x->dec, (size_t)n);
        break;
    case SASL_ST_LOGIN_USER:
        r = sasl_login_user(x, x->dec, (size_t)n);
        break;
    case SASL_ST_LOGIN_PASS:
        r = sasl_login_pass(x, x->dec, (size_t)n);
        break;
    default: /* SASL_ST_CRAM */
        r = sasl_cram(x, x->dec, (size_t)n);
        break;
    }
    explicit_bzero(x->dec, (size_t)n);
    return r;
}

int
modmta_sasl_start(modmta_sasl *x, const char *initial)
{
    if (x->state != SASL_ST_INIT)
        return MODMTA_E_STATE;
    switch (x->mech) {
    case MODMTA_SASL_CRAM_MD5:
        if (initial != NULL)
            return sasl_end(x, MODMTA_SASL_MALFORMED);
        if (modmta_sasl_stamp(x->hostname, x->stamp, sizeof(x->stamp)) < 0)
            return sasl_end(x, MODMTA_E_TEMP);
        modmta_base64_encode(x->stamp, strlen(x->stamp), x->challenge,
                             sizeof(x->challenge));
        x->state = SASL_ST_CRAM;
        return MODMTA_SASL_NEXT;
    case MODMTA_SASL_LOGIN:
        strcpy(x->challenge, "VXNlcm5hbWU6"); /* "Username:" */
        x->state = SASL_ST_LOGIN_USER;
        break;
    default: /* MODMTA_SASL_PLAIN */
        x->challenge[0] = '\0';
        x->state = SASL_ST_PLAIN;
        break;
    }
    if (initial == NULL)
        return MODMTA_SASL_NEXT;
    /* "=": an empty initial response */
    return sasl_feed(x, initial, strcmp(initial, "=") == 0 ? 0
                                                            : strlen(initial));
}

int
modmta_sasl_step(modmta_sasl *x, const char *line, size_t len)
{
    if (x->state == SASL_ST_INIT || x->state >= SASL_ST_DONE)
        return MODMTA_E_STATE;
    if (len == 1 && line[0] == '*')
        return sasl_end(x, MODMTA_SASL_CANCEL);
    return sasl_feed(x, line, len);
}
