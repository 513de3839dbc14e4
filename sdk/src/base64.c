/* Strict base64 (see modmta/base64.h). */
#include <modmta/base64.h>
#include <modmta/err.h>

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    return c == '/' ? 63 : -1;
}

/* The padding of the last group of in (0, 1 or 2), or -1 if '=' is
 * anywhere else. */
static int
base64_padding(const char *in, size_t len)
{
    size_t i;
    int pad = 0;

    if (in[len - 1] == '=')
        pad = in[len - 2] == '=' ? 2 : 1;
    for (i = 0; i < len - (size_t)pad; i++)
        if (in[i] == '=')
            return -1;
    return pad;
}

long
modmta_base64_decode(const char *in, size_t len, void *out, size_t cap)
{
    unsigned char *o = out;
    unsigned long acc = 0;
    size_t i, n = 0, olen;
    int pad, v;

    if (len % 4 != 0)
        return MODMTA_E_INVAL;
    pad = len > 0 ? base64_padding(in, len) : 0;
    if (pad < 0)
        return MODMTA_E_INVAL;
    olen = len / 4 * 3 - (size_t)pad;
    if (olen >= cap)
        return MODMTA_E_LIMIT;
    for (i = 0; i < len - (size_t)pad; i++) {
        if ((v = base64_value((unsigned char)in[i])) < 0)
            return MODMTA_E_INVAL;
        acc = (acc << 6) | (unsigned long)v;
        if (i % 4 == 3) {
            o[n++] = (unsigned char)(acc >> 16);
            o[n++] = (unsigned char)(acc >> 8);
            o[n++] = (unsigned char)acc;
            acc = 0;
        }
    }
    /* the last group: 3 characters (12 + 6 bits, 2 unused) or 2 (12
     * bits, 4 unused); the unused bits must be zero */
    if (pad == 1) {
        if ((acc & 3) != 0)
            return MODMTA_E_INVAL;
        o[n++] = (unsigned char)(acc >> 10);
        o[n++] = (unsigned char)(acc >> 2);
    } else if (pad == 2) {
        if ((acc & 15) != 0)
            return MODMTA_E_INVAL;
        o[n++] = (unsigned char)(acc >> 4);
    }
    o[n] = '\0';
    return (long)n;
}

long
modmta_base64_encode(const void *in, size_t len, char *out, size_t cap)
{
    const unsigned char *p = in;
    size_t i, o = 0;
    unsigned long acc;

    if (cap == 0 || MODMTA_BASE64_ENCODED_LEN(len) > cap - 1)
        return MODMTA_E_LIMIT;
    for (i = 0; i < len; i += 3) {
        acc = (unsigned long)p[i] << 16;
        if (i + 1 < len)
            acc |= (unsigned long)p[i + 1] << 8;
        if (i + 2 < len)
            acc |= p[i + 2];
        out[o++] = base64_alphabet[(acc >> 18) & 63];
        out[o++] = base64_alphabet[(acc >> 12) & 63];
        out[o++] = i + 1 < len ? base64_alphabet[(acc >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? base64_alphabet[acc & 63] : '=';
    }
    out[o] = '\0';
    return (long)o;
}
