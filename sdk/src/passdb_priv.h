/*
 * The built-in passdb backends of libmodmta (not installed), and the
 * secrets they share (passdb_scheme.c).
 */
#ifndef MODMTA_PASSDB_PRIV_H
#define MODMTA_PASSDB_PRIV_H

#include <stddef.h>

#include <modmta/passdb.h>
#include <modmta/shared.h>

extern const modmta_passdb_backend passdb_file_backend;
extern const modmta_passdb_backend passdb_saslauthd_backend;
extern const modmta_passdb_backend passdb_redis_backend;

/* The state of a "redis:ARG" passdb on shared, which must be Redis.
 * NULL with err_r filled. */
void *passdb_redis_open(const char *arg, modmta_shared *shared,
                        const char *json_path, modmta_err *err_r);

/* ---- secrets (passdb_scheme.c) ---- */

enum passdb_scheme { PASSDB_CRYPT, PASSDB_PLAIN };

/* The second field of a passwd-file line: "{CRYPT}" and a crypt(3)
 * hash of a strong method ($y$, $6$, $5$, $2b$...), the hash alone, or
 * "{PLAIN}secret". 0 with the scheme and *secret_r (pointing into
 * field), or MODMTA_E_INVAL with *why_r. */
int passdb_secret_parse(const char *field, enum passdb_scheme *scheme_r,
                        const char **secret_r, const char **why_r);
/* Check password (len octets) against a parsed secret, in a time that
 * does not tell where they differ: 1 right, 0 wrong, <0 error. crypt_r
 * is slow on purpose: hold no lock. */
int passdb_secret_check(enum passdb_scheme scheme, const char *secret,
                        const char *password, size_t len);
/* A hash of prefix's method ("$y$", "$6$") of a fixed phrase, for
 * passdb_dummy_check; malloc'ed, NULL if it cannot be made. */
char *passdb_dummy_new(const char *prefix);
/* An unknown user costs what a known one does: check password against
 * the dummy hash; always 0 (wrong). */
int passdb_dummy_check(const char *dummy, const char *password);

#endif
