/*
 * passdb "redis:KEYPREFIX": the redis: map KEYPREFIX (map_redis.c: the
 * key KEYPREFIX + USER in lower case under the config's redis.prefix,
 * "redis:passwd:" reads "modmta:passwd:alice") holds the user's secret
 * as the second field of a file: passdb line does: "{CRYPT}$y$...", a
 * bare crypt hash, or "{PLAIN}secret" (tests only), parsed and checked
 * by passdb_scheme.c. So user names are compared without case, and
 * modmtactl map set writes entries. Read at every verification: a
 * password set on one node counts on every node at once.
 *
 * An unknown user costs what a known one does (a $y$ dummy hash: the
 * method modmtactl passwd uses). A store that cannot be reached, or a
 * value that is no secret (logged), is MODMTA_E_TEMP: 4xx, never "bad
 * credentials".
 */
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>
#include <modmta/passdb.h>

#include "map_priv.h"
#include "passdb_priv.h"

struct passdb_redis {
    void *map;                 /* the redis: map's state */
    char *dummy;
    char prefix[MAP_REDIS_PREFIX_MAX + 1];
};

static int passdb_redis_verify(void *state, const char *user,
                               const char *password, size_t len);
static int passdb_redis_secret(void *state, const char *user,
                               char **secret_r);
static void passdb_redis_close(void *state);

/* No .open: passdb.c opens it with the host (passdb_redis_open). */
const modmta_passdb_backend passdb_redis_backend = {
    .type = "redis",
    .verify = passdb_redis_verify,
    .secret = passdb_redis_secret,
    .close = passdb_redis_close,
};

void *
passdb_redis_open(const char *arg, modmta_shared *shared,
                  const char *json_path, modmta_err *err_r)
{
    struct passdb_redis *pr;

    if (map_redis_arg_check(arg, shared, "passdbs", json_path, err_r) < 0)
        return NULL;
    if ((pr = calloc(1, sizeof(*pr))) == NULL ||
        (pr->dummy = passdb_dummy_new("$y$")) == NULL) {
        free(pr);
        modmta_err_set(err_r, json_path, "cannot make the dummy hash");
        return NULL;
    }
    if ((pr->map = map_redis_open(arg, shared, json_path, err_r)) == NULL) {
        passdb_redis_close(pr);
        return NULL;
    }
    memcpy(pr->prefix, arg, strlen(arg) + 1);
    return pr;
}

/* The user's field: 1 (*field_r, to modmta_passdb_secret_free), 0 no
 * such user (or a name no key can hold), <0 the store failed. */
static int
passdb_redis_fetch(struct passdb_redis *pr, const char *user,
                   char **field_r)
{
    *field_r = NULL;
    return map_redis_backend.lookup(pr->map, user, field_r);
}

/* Parse a fetched field; a bad one is logged. */
static int
passdb_redis_parse(const struct passdb_redis *pr, const char *user,
                   const char *field, enum passdb_scheme *scheme_r,
                   const char **secret_r)
{
    const char *why;

    if (passdb_secret_parse(field, scheme_r, secret_r, &why) == 0)
        return 0;
    modmta_logf(MODMTA_LOG_ERR, "passdb redis:%s: user \"%s\": %s",
                pr->prefix, user, why);
    return MODMTA_E_TEMP;
}

static int
passdb_redis_verify(void *state, const char *user, const char *password,
                    size_t len)
{
    struct passdb_redis *pr = state;
    enum passdb_scheme scheme;
    const char *secret;
    char *field;
    int rc = passdb_redis_fetch(pr, user, &field);

    if (rc == 0)
        return passdb_dummy_check(pr->dummy, password);
    if (rc > 0 && (rc = passdb_redis_parse(pr, user, field, &scheme,
                                           &secret)) == 0)
        rc = passdb_secret_check(scheme, secret, password, len);
    modmta_passdb_secret_free(field);
    return rc;
}

static int
passdb_redis_secret(void *state, const char *user, char **secret_r)
{
    struct passdb_redis *pr = state;
    enum passdb_scheme scheme;
    const char *secret;
    char *field;
    int rc = passdb_redis_fetch(pr, user, &field);

    if (rc > 0 && (rc = passdb_redis_parse(pr, user, field, &scheme,
                                           &secret)) == 0 &&
        scheme == PASSDB_PLAIN)
        rc = (*secret_r = strdup(secret)) != NULL ? 1 : MODMTA_E_TEMP;
    modmta_passdb_secret_free(field);
    return rc;
}

static void
passdb_redis_close(void *state)
{
    struct passdb_redis *pr = state;

    if (pr->map != NULL)
        map_redis_backend.close(pr->map);
    free(pr->dummy);
    free(pr);
}
