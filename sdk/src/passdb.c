/*
 * Password databases: the backend registry and the passdb handle (the
 * same shape as map.c). "redis:" is opened here with the host (its
 * generation's shared state), the other backends through their open().
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/passdb.h>

#include "passdb_priv.h"

#define PASSDB_BACKENDS_MAX 8

struct modmta_passdb {
    const modmta_passdb_backend *backend;
    void *state;
    char *name;
};

/* Backends registered by modules; never removed, so pointers stay valid
 * for the life of the process. */
static pthread_mutex_t passdb_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static modmta_passdb_backend passdb_registry[PASSDB_BACKENDS_MAX];
static size_t passdb_registry_count;

static const modmta_passdb_backend *const passdb_builtin[] = {
    &passdb_file_backend,
    &passdb_saslauthd_backend,
    &passdb_redis_backend,
};

static const modmta_passdb_backend *
passdb_find(const char *type, size_t len)
{
    const modmta_passdb_backend *b = NULL;
    size_t i;

    for (i = 0; i < sizeof(passdb_builtin) / sizeof(passdb_builtin[0]); i++)
        if (strlen(passdb_builtin[i]->type) == len
            && strncmp(passdb_builtin[i]->type, type, len) == 0)
            return passdb_builtin[i];
    pthread_mutex_lock(&passdb_registry_lock);
    for (i = 0; i < passdb_registry_count && b == NULL; i++)
        if (strlen(passdb_registry[i].type) == len
            && strncmp(passdb_registry[i].type, type, len) == 0)
            b = &passdb_registry[i];
    pthread_mutex_unlock(&passdb_registry_lock);
    return b;
}

int
modmta_passdb_register(const modmta_passdb_backend *backend)
{
    int rc = 0;

    if (backend == NULL || backend->type == NULL || backend->open == NULL
        || backend->verify == NULL)
        return MODMTA_E_INVAL;
    if (passdb_find(backend->type, strlen(backend->type)) != NULL)
        return MODMTA_E_INVAL;
    pthread_mutex_lock(&passdb_registry_lock);
    if (passdb_registry_count == PASSDB_BACKENDS_MAX)
        rc = MODMTA_E_LIMIT;
    else
        passdb_registry[passdb_registry_count++] = *backend;
    pthread_mutex_unlock(&passdb_registry_lock);
    return rc;
}

modmta_passdb *
modmta_passdb_open(const char *spec, const char *json_path,
                   modmta_err *err_r)
{
    return modmta_passdb_open_host(spec, NULL, json_path, err_r);
}

modmta_passdb *
modmta_passdb_open_host(const char *spec, const modmta_host *host,
                        const char *json_path, modmta_err *err_r)
{
    const char *colon = spec != NULL ? strchr(spec, ':') : NULL;
    const modmta_passdb_backend *b;
    modmta_passdb *db;

    if (colon == NULL || colon == spec || colon[1] == '\0') {
        modmta_err_set(err_r, json_path, "expected \"TYPE:ARGUMENT\" "
                       "(file:PATH, saslauthd:SOCKET, redis:KEYPREFIX)");
        return NULL;
    }
    b = passdb_find(spec, (size_t)(colon - spec));
    if (b == NULL) {
        modmta_err_set(err_r, json_path, "unknown passdb type \"%.*s\"",
                       (int)(colon - spec), spec);
        return NULL;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL || (db->name = strdup(spec)) == NULL) {
        free(db);
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    db->backend = b;
    if (b == &passdb_redis_backend)
        db->state = passdb_redis_open(colon + 1, host != NULL ?
                                      modmta_host_shared(host) : NULL,
                                      json_path, err_r);
    else
        db->state = b->open(colon + 1, json_path, err_r);
    if (db->state == NULL) {
        free(db->name);
        free(db);
        return NULL;
    }
    return db;
}

int
modmta_passdb_verify(modmta_passdb *db, const char *user,
                     const char *password, size_t len)
{
    if (db == NULL || user == NULL || password == NULL)
        return MODMTA_E_INVAL;
    if (memchr(password, '\0', len) != NULL)
        return 0;
    return db->backend->verify(db->state, user, password, len);
}

int
modmta_passdb_has_secrets(const modmta_passdb *db)
{
    return db != NULL && db->backend->secret != NULL;
}

int
modmta_passdb_secret(modmta_passdb *db, const char *user, char **secret_r)
{
    if (db == NULL || user == NULL || secret_r == NULL)
        return MODMTA_E_INVAL;
    *secret_r = NULL;
    if (db->backend->secret == NULL)
        return MODMTA_E_UNSUPPORTED;
    return db->backend->secret(db->state, user, secret_r);
}

void
modmta_passdb_secret_free(char *secret)
{
    if (secret == NULL)
        return;
    /* volatile so the compiler keeps the wipe of memory about to die */
    for (volatile char *p = secret; *p != '\0'; p++)
        *p = '\0';
    free(secret);
}

const char *
modmta_passdb_name(const modmta_passdb *db)
{
    return db != NULL ? db->name : "";
}

void
modmta_passdb_close(modmta_passdb *db)
{
    if (db == NULL)
        return;
    if (db->backend->close != NULL)
        db->backend->close(db->state);
    free(db->name);
    free(db);
}
