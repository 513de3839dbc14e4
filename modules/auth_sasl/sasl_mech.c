/*
 * SASL wire formats (see sasl_mech.h).
 */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <modmta/err.h>

#include "sasl_mech.h"

static const char sasl_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
sasl_b64_value(unsigned char c)
{
    const char *p = c != '\0' ? strchr(sasl_b64, c) : NULL;

    return p != NULL ? (int)(p - sasl_b64) : -1;
}

long
sasl_b64_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t i, o = 0, pad = 0;
    unsigned long acc = 0;
    int j, v;

    if (len % 4 != 0)
        return MODMTA_E_INVAL;
    if (len / 4 * 3 + 1 > cap)
        return MODMTA_E_LIMIT;
    for (i = 0; i < len; i += 4) {
        for (j = 0; j < 4; j++) {
            /* '=' only as the last one or two characters */
            if (in[i + j] == '=' && i + 4 == len && j >= 2
                && (j == 3 || in[i + 3] == '=')) {
                pad++;
                v = 0;
            } else if ((v = sasl_b64_value((unsigned char)in[i + j])) < 0) {
                return MODMTA_E_INVAL;
            }
            acc = (acc << 6) | (unsigned long)v;
        }
        out[o++] = (char)(acc >> 16);
        out[o++] = (char)(acc >> 8);
        out[o++] = (char)acc;
    }
    /* the bits a padded group leaves unused must be zero (canonical) */
    if ((pad == 1 && (acc & 0xff) != 0) || (pad == 2 && (acc & 0xffff) != 0))
        return MODMTA_E_INVAL;
    o -= pad;
    out[o] = '\0';
    return (long)o;
}

long
sasl_b64_encode(const void *in, size_t len, char *out, size_t cap)
{
    const unsigned char *p = in;
    size_t i, o = 0;
    unsigned long acc;

    if ((len + 2) / 3 * 4 + 1 > cap)
        return MODMTA_E_LIMIT;
    for (i = 0; i < len; i += 3) {
        acc = (unsigned long)p[i] << 16;
        if (i + 1 < len)
            acc |= (unsigned long)p[i + 1] << 8;
        if (i + 2 < len)
            acc |= p[i + 2];
        out[o++] = sasl_b64[(acc >> 18) & 63];
        out[o++] = sasl_b64[(acc >> 12) & 63];
        out[o++] = i + 1 < len ? sasl_b64[(acc >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? sasl_b64[acc & 63] : '=';
    }
    out[o] = '\0';
    return (long)o;
}

int
sasl_plain_parse(const char *msg, size_t len, struct sasl_plain *p)
{
    const char *nul1 = memchr(msg, '\0', len), *nul2;
    size_t zlen, clen;

    if (nul1 == NULL)
        return MODMTA_E_INVAL;
    nul2 = memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg));
    if (nul2 == NULL)
        return MODMTA_E_INVAL;
    p->authzid = msg;
    p->authcid = nul1 + 1;
    p->passwd = nul2 + 1;
    p->passwd_len = len - (size_t)(p->passwd - msg);
    zlen = (size_t)(nul1 - msg);
    clen = (size_t)(nul2 - p->authcid);
    if (clen == 0 || p->passwd_len == 0 || zlen > SASL_FIELD_MAX
        || clen > SASL_FIELD_MAX || p->passwd_len > SASL_FIELD_MAX
        || memchr(p->passwd, '\0', p->passwd_len) != NULL)
        return MODMTA_E_INVAL;
    if (zlen > 0 && strcmp(p->authzid, p->authcid) != 0)
        return MODMTA_E_PERM;
    return 0;
}

int
sasl_cram_parse(char *msg, size_t len, char **user_r, char **digest_r)
{
    char *sp = len > 0 ? memchr(msg, ' ', len) : NULL;
    size_t ulen;

    if (sp == NULL || strlen(msg) != len)
        return MODMTA_E_INVAL;
    ulen = (size_t)(sp - msg);
    if (ulen == 0 || ulen > SASL_FIELD_MAX || len - ulen - 1 != 32
        || strspn(sp + 1, "0123456789abcdef") != 32)
        return MODMTA_E_INVAL;
    *sp = '\0';
    *user_r = msg;
    *digest_r = sp + 1;
    return 0;
}

int
sasl_cram_check(const char *challenge, const char *secret,
                const char *digest)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0, i;
    unsigned char d = 0;
    char hex[3];

    if (HMAC(EVP_md5(), secret, (int)strlen(secret),
             (const unsigned char *)challenge, strlen(challenge), mac,
             &maclen) == NULL || maclen != 16)
        return MODMTA_E_TEMP;
    if (strlen(digest) != 32)
        return 0;
    for (i = 0; i < maclen; i++) {
        snprintf(hex, sizeof(hex), "%02x", mac[i]);
        d |= (unsigned char)((hex[0] ^ digest[2 * i])
                             | (hex[1] ^ digest[2 * i + 1]));
    }
    return d == 0;
}
