/*
 * The SASL mechanisms' wire formats, kept apart from the session so they
 * can be tested alone: strict base64, the PLAIN message (RFC 4616), the
 * CRAM-MD5 response (RFC 2195).
 */
#ifndef AUTH_SASL_MECH_H
#define AUTH_SASL_MECH_H

#include <stddef.h>

#define SASL_FIELD_MAX 255 /* octets of an authcid, authzid or password */

/* Decode base64 (RFC 4648 section 4, padding required, no white space)
 * into out (NUL-terminated); returns the length, MODMTA_E_INVAL on bad
 * input, MODMTA_E_LIMIT when out (cap octets) is too small. */
long sasl_b64_decode(const char *in, size_t len, char *out, size_t cap);
/* Encode into out (NUL-terminated); MODMTA_E_LIMIT if cap is too small. */
long sasl_b64_encode(const void *in, size_t len, char *out, size_t cap);

struct sasl_plain {
    const char *authzid; /* "" when none */
    const char *authcid;
    const char *passwd;
    size_t passwd_len;
};

/* Split a decoded PLAIN message "authzid NUL authcid NUL passwd" (msg has
 * len octets and a NUL after them). MODMTA_E_INVAL: malformed (not exactly
 * two NULs, empty authcid or password, a field over SASL_FIELD_MAX);
 * MODMTA_E_PERM: an authzid other than the authcid (we do not let one user
 * act as another). */
int sasl_plain_parse(const char *msg, size_t len, struct sasl_plain *p);

/* Split a decoded CRAM-MD5 response "user SP 32-lowercase-hex" in place;
 * MODMTA_E_INVAL when malformed. */
int sasl_cram_parse(char *msg, size_t len, char **user_r, char **digest_r);
/* 1 if digest is HMAC-MD5(secret, challenge) in hex, 0 if not, <0 on
 * error. Compared in constant time. */
int sasl_cram_check(const char *challenge, const char *secret,
                    const char *digest);

#endif
