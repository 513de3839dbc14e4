/*
 * modmta SDK: base64 (ABI 1.5), as protocol lines carry it: SMTP AUTH
 * and POP3 AUTH responses, challenges, credentials a client sends.
 *
 * The decoder is strict (RFC 4648 section 4, the standard alphabet): the
 * input is whole groups of four characters, '=' padding only at the end
 * and only as much as the last group needs, the bits padding leaves
 * unused must be zero (so each octet string has exactly one encoding),
 * and anything else (white space, line ends, the URL-safe "-_", a stray
 * character) is refused. Text that was folded into lines (MIME bodies)
 * must be unfolded first. "" decodes to zero octets.
 */
#ifndef MODMTA_BASE64_H
#define MODMTA_BASE64_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The characters encoding n octets (no NUL), and the most octets n
 * characters decode to. */
#define MODMTA_BASE64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)
#define MODMTA_BASE64_DECODED_MAX(n) ((n) / 4 * 3)

/* Decode the len characters of in into out, which gets a NUL after the
 * data (the data itself may hold NULs). Returns the number of octets, or
 * MODMTA_E_INVAL (not strict base64, as above), MODMTA_E_LIMIT (the
 * octets and the NUL do not fit in cap). */
long modmta_base64_decode(const char *in, size_t len, void *out, size_t cap);
/* Encode len octets into out, NUL-terminated, with padding. Returns the
 * number of characters, or MODMTA_E_LIMIT when cap is below
 * MODMTA_BASE64_ENCODED_LEN(len) + 1. */
long modmta_base64_encode(const void *in, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
