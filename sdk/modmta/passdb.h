/*
 * modmta SDK: password databases, for modules that authenticate clients
 * (auth_sasl's SMTP AUTH, pop3's USER/PASS and APOP).
 *
 * A passdb is named in the config as "BACKEND:ARGUMENT":
 *   "file:/etc/modmta/passwd"   "user:{SCHEME}hash" lines, '#' comments;
 *                               {CRYPT} takes a crypt(3) hash ($y$, $6$,
 *                               $5$, $2b$/$2y$), {PLAIN} a clear-text
 *                               password (tests only). The file is re-read
 *                               when it changes (modmta/reload.h: looked at
 *                               at most once a second); a re-read that
 *                               fails keeps the old table.
 *   "saslauthd:/run/saslauthd/mux"  asks saslauthd (its socket, or the
 *                               directory holding "mux"): "user@realm" is
 *                               sent as login "user" and realm "realm",
 *                               service "smtp". Gives no secrets.
 *   "redis:passwd:"             the redis: map "redis:passwd:" (map.h;
 *                               ABI 1.4): the key "passwd:" + USER in
 *                               lower case, under the config's redis
 *                               "prefix", holds what a file: line holds
 *                               after "user:" ("{CRYPT}$y$..."); so user
 *                               names are compared without case. Read at
 *                               every verification. Needs the "redis"
 *                               section and the module's host
 *                               (modmta_passdb_open_host).
 * Verification has three outcomes, like map lookups: 1 the password is
 * right, 0 wrong password or unknown user, <0 error (MODMTA_E_TEMP: answer
 * 4xx, never "bad credentials"). A passdb is safe to share between threads.
 */
#ifndef MODMTA_PASSDB_H
#define MODMTA_PASSDB_H

#include <stddef.h>

#include <modmta/err.h>
#include <modmta/module.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct modmta_passdb modmta_passdb;

/* Open the passdb named by spec; json_path names it in errors. */
modmta_passdb *modmta_passdb_open(const char *spec, const char *json_path,
                                  modmta_err *err_r);
/* The same with the module's host (ABI 1.4), which "redis:" passdbs
 * need: they read the host's shared state, which must be Redis. host
 * may be NULL (= modmta_passdb_open). Close it in destroy(). */
modmta_passdb *modmta_passdb_open_host(const char *spec,
                                       const modmta_host *host,
                                       const char *json_path,
                                       modmta_err *err_r);
/* 1 right, 0 wrong or unknown, <0 error. The password is len octets
 * (it may hold NULs, which never match). */
int modmta_passdb_verify(modmta_passdb *db, const char *user,
                         const char *password, size_t len);
/* 1 if the backend can give clear-text secrets (CRAM-MD5, APOP). */
int modmta_passdb_has_secrets(const modmta_passdb *db);
/* The clear-text secret of user: 1 (*secret_r malloc'ed, free with
 * modmta_passdb_secret_free), 0 unknown user or no clear-text secret
 * stored for it, <0 error (MODMTA_E_UNSUPPORTED: backend has none). */
int modmta_passdb_secret(modmta_passdb *db, const char *user,
                         char **secret_r);
/* Wipe and free a secret. */
void modmta_passdb_secret_free(char *secret);
/* A "{CRYPT}..." secret for a file: passdb line or a redis: passdb
 * value: password hashed with crypt(3) method prefix ("$y$" yescrypt,
 * "$6$" SHA-512; NULL: "$y$") and a fresh random salt. malloc'ed; NULL
 * with err_r filled. */
char *modmta_passdb_hash(const char *password, const char *prefix,
                         modmta_err *err_r);
/* "file:/etc/modmta/passwd", for logs. */
const char *modmta_passdb_name(const modmta_passdb *db);
void modmta_passdb_close(modmta_passdb *db);

/* ---- backends ----
 * Register before the config is read (a module's load()). Returns 0, or
 * MODMTA_E_INVAL on a duplicate type. */
typedef struct modmta_passdb_backend {
    const char *type; /* "file", "saslauthd", "redis" */
    void *(*open)(const char *arg, const char *json_path, modmta_err *err_r);
    int (*verify)(void *state, const char *user, const char *password,
                  size_t len);
    /* NULL when the backend keeps no clear-text secrets. */
    int (*secret)(void *state, const char *user, char **secret_r);
    void (*close)(void *state);
} modmta_passdb_backend;

int modmta_passdb_register(const modmta_passdb_backend *backend);

#ifdef __cplusplus
}
#endif

#endif
