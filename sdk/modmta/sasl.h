/*
 * modmta SDK: the server side of SASL (ABI 1.5) for modules that
 * authenticate clients: PLAIN (RFC 4616), LOGIN (the de facto one of
 * draft-murchison-sasl-login) and CRAM-MD5 (RFC 2195), checked against a
 * passdb (modmta/passdb.h). auth_sasl (SMTP AUTH, RFC 4954) and pop3
 * (POP3 AUTH, RFC 5034) use it.
 *
 * An exchange is a state machine the module drives with its protocol's
 * framing: the module writes each challenge the way its protocol does
 * ("334 " in SMTP, "+ " in POP3), reads the client's answer line and
 * hands it over; the exchange decodes it (strict base64, modmta/base64.h),
 * parses what the mechanism defines and, at the end, checks the
 * credentials.
 *
 *   modmta_sasl *x = modmta_sasl_new(mech, modmta_host_hostname(h));
 *   int r = x != NULL ? modmta_sasl_start(x, initial_response)
 *                     : MODMTA_E_NOMEM;
 *   while (r == MODMTA_SASL_NEXT) {
 *       write "334 " + modmta_sasl_challenge(x); read one line;
 *       r = modmta_sasl_step(x, line, len);
 *   }
 *   if (r == MODMTA_SASL_DONE)
 *       r = modmta_sasl_verify(x, db);      1 right, 0 wrong, <0 error
 *   ... modmta_sasl_user(x) for the log ...
 *   modmta_sasl_free(x);                    wipes what the client sent
 *
 * The rules, the same for every protocol:
 * - A line "*" cancels (MODMTA_SASL_CANCEL). An initial response "="
 *   is an empty one (RFC 4954, RFC 5034); NULL is none.
 * - PLAIN: "authzid NUL authcid NUL passwd"; authcid and passwd not
 *   empty, no further NUL, each field at most MODMTA_SASL_FIELD_MAX
 *   octets. An authzid other than the authcid is MODMTA_SASL_AUTHZ: one
 *   user never acts as another.
 * - LOGIN: the user name, then the password, each 1 to
 *   MODMTA_SASL_FIELD_MAX octets without NUL; an initial response is
 *   the user name.
 * - CRAM-MD5: no initial response (the server speaks first); the
 *   challenge is a fresh modmta_sasl_stamp(); the answer is "user SP
 *   digest", split at the last space, the digest 32 lower-case hex
 *   digits. It needs a passdb with clear-text secrets
 *   (modmta_passdb_has_secrets).
 * Exchanges are not shared between threads; any number may run at once.
 */
#ifndef MODMTA_SASL_H
#define MODMTA_SASL_H

#include <stddef.h>

#include <modmta/passdb.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Mechanisms, as bits so that a module can keep a set of them. */
#define MODMTA_SASL_PLAIN 0x1u
#define MODMTA_SASL_LOGIN 0x2u
#define MODMTA_SASL_CRAM_MD5 0x4u

#define MODMTA_SASL_FIELD_MAX 255   /* octets of a user name or password */
#define MODMTA_SASL_LINE_MAX 12288  /* a response line (RFC 4954 4) */

/* What start() and step() return besides a negative MODMTA_E_*
 * (MODMTA_E_TEMP: no random octets for a challenge; MODMTA_E_STATE:
 * called after the exchange ended). Append-only. */
enum {
    MODMTA_SASL_DONE = 0,      /* credentials complete: verify() */
    MODMTA_SASL_NEXT = 1,      /* send challenge(), step() the answer */
    MODMTA_SASL_CANCEL = 2,    /* the client sent "*" */
    MODMTA_SASL_BAD64 = 3,     /* the answer is not strict base64 */
    MODMTA_SASL_MALFORMED = 4, /* decoded, but not what the mech says */
    MODMTA_SASL_AUTHZ = 5,     /* PLAIN: authzid other than the authcid */
};

typedef struct modmta_sasl modmta_sasl;

/* The mechanism a client names ("plain", "CRAM-MD5"; any case), or 0
 * when it is none of these. */
unsigned modmta_sasl_mech(const char *name);
/* "PLAIN", "LOGIN", "CRAM-MD5"; NULL if mech is not one of them. */
const char *modmta_sasl_mech_name(unsigned mech);
/* A fresh "<PID.COUNTER.RANDOM.TIME@hostname>" (RFC 2195's challenge,
 * RFC 1939's APOP timestamp) into out: 0, or MODMTA_E_LIMIT when it does
 * not fit cap, MODMTA_E_TEMP when no random octets could be had. */
int modmta_sasl_stamp(const char *hostname, char *out, size_t cap);

/* An exchange of one mechanism (exactly one MODMTA_SASL_* bit);
 * hostname goes into the CRAM-MD5 challenge. NULL when out of memory
 * or mech is not one mechanism. */
modmta_sasl *modmta_sasl_new(unsigned mech, const char *hostname);
/* Begin with the initial response the client gave with the command
 * (base64, "=" for an empty one), or NULL for none. */
int modmta_sasl_start(modmta_sasl *x, const char *initial);
/* The base64 challenge to send after NEXT ("" for an empty one). */
const char *modmta_sasl_challenge(const modmta_sasl *x);
/* Hand over the client's answer: one line of len octets, its line end
 * removed. */
int modmta_sasl_step(modmta_sasl *x, const char *line, size_t len);
/* The authentication identity as far as the client gave it ("" before):
 * after DONE the user to log in, after AUTHZ the one that tried. */
const char *modmta_sasl_user(const modmta_sasl *x);
/* After DONE, once (the exchange is over then): check the credentials
 * against db. 1 right, 0 wrong or unknown user (CRAM-MD5: or no
 * clear-text secret stored for the user; the digest is computed all the
 * same, so the time taken does not tell which users exist), <0 error
 * (answer with a temporary failure). */
int modmta_sasl_verify(modmta_sasl *x, modmta_passdb *db);
/* Wipe and free; NULL is a no-op. */
void modmta_sasl_free(modmta_sasl *x);

#ifdef __cplusplus
}
#endif

#endif
