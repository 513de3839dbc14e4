/*
 * The "redis:KEYPREFIX" map backend: a lookup of KEY reads the shared
 * state's key KEYPREFIX + KEY, KEY in lower case as the file maps
 * compare it (modmta_shared_get, which puts the config's redis.prefix in
 * front: "redis:alias:" reads "modmta:alias:<key>"). KEYPREFIX ends
 * with ':' and is none of the shared state's reserved namespaces
 * (shared.c), so a map cannot reach another map's keys by a key that
 * completes its prefix, nor the cluster's or a module's. Opened by map.c
 * with the generation's host (its shared state must be Redis), and by
 * modmtactl, which also writes entries (map_priv.h).
 *
 * Values come from a store anybody who can reach Redis may write: a
 * value holding a control character other than tab (no line of a file
 * map can), a NUL octet included, or a key of another Redis type is
 * refused as a temporary failure, and modmta_map_is_shared() tells
 * modules never to take a command, file or include from it.
 */
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>
#include <modmta/map.h>
#include <modmta/shared.h>

#include "map_priv.h"
#include "shared_priv.h"

struct map_redis {
    modmta_shared *shared; /* the generation's (lent) */
    char prefix[MAP_REDIS_PREFIX_MAX + 1];
};

static int map_redis_lookup(void *state, const char *key, char **value_r);
static void map_redis_close(void *state);

/* No .open: map.c opens it with the host (map_redis_open). */
const modmta_map_backend map_redis_backend = {
    .type = "redis",
    .lookup = map_redis_lookup,
    .close = map_redis_close,
};

/* What a shared-state key may hold: no space, no control character. */
static int
map_redis_key_char_ok(unsigned char c)
{
    return c > ' ' && c != 0x7f;
}

int
map_redis_key_part_ok(const char *s, size_t max)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++)
        if (!map_redis_key_char_ok((unsigned char)s[n]) || n >= max)
            return 0;
    return n > 0;
}

int
map_redis_arg_check(const char *arg, const modmta_shared *shared,
                    const char *what, const char *json_path,
                    modmta_err *err_r)
{
    const char *reserved;

    if (shared == NULL) {
        modmta_err_set(err_r, json_path, "redis: %s are opened with the "
                       "module's host (modmta_%s_open_host)", what,
                       strcmp(what, "maps") == 0 ? "map" : "passdb");
        return MODMTA_E_CONFIG;
    }
    if (!modmta_shared_is_cluster(shared)) {
        modmta_err_set(err_r, json_path,
                       "redis: %s need the \"redis\" section", what);
        return MODMTA_E_CONFIG;
    }
    if (!map_redis_key_part_ok(arg, MAP_REDIS_PREFIX_MAX) ||
        arg[strlen(arg) - 1] != ':') {
        /* ':' last: "redis:alias" would meet "redis:aliases:" */
        modmta_err_set(err_r, json_path,
                       "redis:%s: expected a key prefix of 1 to %d octets "
                       "without white space, ending with ':' "
                       "(\"redis:%s:\")", arg, MAP_REDIS_PREFIX_MAX,
                       strcmp(what, "maps") == 0 ? "alias" : "passwd");
        return MODMTA_E_CONFIG;
    }
    if ((reserved = shared_reserved(arg)) != NULL) {
        modmta_err_set(err_r, json_path,
                       "redis:%s: \"%s:\" is reserved for modmta's own "
                       "shared state (see docs/sdk.md); choose another "
                       "prefix", arg, reserved);
        return MODMTA_E_CONFIG;
    }
    return 0;
}

void *
map_redis_open(const char *arg, modmta_shared *shared, const char *json_path,
               modmta_err *err_r)
{
    struct map_redis *mr;

    if (map_redis_arg_check(arg, shared, "maps", json_path, err_r) < 0)
        return NULL;
    if ((mr = calloc(1, sizeof(*mr))) == NULL) {
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    mr->shared = shared;
    memcpy(mr->prefix, arg, strlen(arg) + 1);
    return mr;
}

const char *
map_redis_prefix(const void *state)
{
    const struct map_redis *mr = state;

    return mr->prefix;
}

int
map_redis_key(const void *state, const char *key, char *buf, size_t size)
{
    const struct map_redis *mr = state;
    size_t plen = strlen(mr->prefix), n = strlen(key), i;

    if (plen + n >= size ||
        !map_redis_key_part_ok(key, MODMTA_SHARED_KEY_MAX - 1 - plen))
        return MODMTA_E_INVAL;
    memcpy(buf, mr->prefix, plen);
    for (i = 0; i <= n; i++)
        buf[plen + i] = key[i] >= 'A' && key[i] <= 'Z' ? (char)(key[i] + 32)
                                                       : key[i];
    return 0;
}

int
map_redis_value_ok(const char *value)
{
    for (; *value != '\0'; value++)
        if (((unsigned char)*value < ' ' && *value != '\t') ||
            *value == 0x7f)
            return 0;
    return 1;
}

static int
map_redis_lookup(void *state, const char *key, char **value_r)
{
    struct map_redis *mr = state;
    char full[MODMTA_SHARED_KEY_MAX], *v = NULL;
    int rc;

    /* A key no entry can have (white space, too long) is not found. */
    if (map_redis_key(mr, key, full, sizeof(full)) < 0)
        return 0;
    rc = modmta_shared_get(mr->shared, full, &v);
    if (rc == MODMTA_E_INVAL)
        modmta_logf(MODMTA_LOG_ERR, "map redis:%s: key \"%s\": holds "
                    "another Redis type or a NUL octet, refused", mr->prefix,
                    key);
    if (rc < 0)
        return MODMTA_E_TEMP;
    if (rc == 1 && !map_redis_value_ok(v)) {
        modmta_logf(MODMTA_LOG_ERR, "map redis:%s: key \"%s\": the value "
                    "holds a control character, refused", mr->prefix, key);
        free(v);
        return MODMTA_E_TEMP;
    }
    if (value_r != NULL)
        *value_r = v;
    else
        free(v);
    return rc;
}

int
map_redis_put(void *state, const char *key, const char *value)
{
    struct map_redis *mr = state;
    char full[MODMTA_SHARED_KEY_MAX];

    if (map_redis_key(mr, key, full, sizeof(full)) < 0 ||
        !map_redis_value_ok(value))
        return MODMTA_E_INVAL;
    return modmta_shared_set(mr->shared, full, value, 0);
}

int
map_redis_del(void *state, const char *key)
{
    struct map_redis *mr = state;
    char full[MODMTA_SHARED_KEY_MAX];

    if (map_redis_key(mr, key, full, sizeof(full)) < 0)
        return MODMTA_E_INVAL;
    return modmta_shared_del(mr->shared, full);
}

static void
map_redis_close(void *state)
{
    free(state);
}
