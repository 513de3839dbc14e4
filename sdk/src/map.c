/*
 * Lookup maps: the backend registry, the map handle, the inline JSON
 * backend, and the hash table the text backends share. "redis:" is
 * opened here with the host (its generation's shared state), the other
 * backends through their open().
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>
#include <modmta/map.h>

#include "map_priv.h"

#define MAP_BACKENDS_MAX 16

struct modmta_map {
    const modmta_map_backend *backend;
    void *state;
    char *name;
};

struct map_entry {
    struct map_entry *next;
    char *value;
    char key[];
};

struct map_table {
    struct map_entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

static int map_inline_lookup(void *state, const char *key, char **value_r);
static void map_inline_close(void *state);

static const modmta_map_backend map_inline_backend = {
    .type = "inline",
    .lookup = map_inline_lookup,
    .close = map_inline_close,
};

/* Backends registered by modules; entries are never removed, so pointers
 * into the array stay valid for the life of the process. */
static pthread_mutex_t map_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static modmta_map_backend map_registry[MAP_BACKENDS_MAX];
static size_t map_registry_count;

static const modmta_map_backend *const map_builtin[] = {
    &map_file_backend,
    &map_cidr_backend,
    &map_aliases_backend,
    &map_redis_backend,
};

/* ---- hash table ---- */

static unsigned char
map_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static uint64_t
map_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */

    for (; *key != '\0'; key++)
        h = (h ^ map_lower((unsigned char)*key)) * 1099511628211ULL;
    return h;
}

static int
map_key_equal(const char *a, const char *b)
{
    for (; *a != '\0' && map_lower((unsigned char)*a) ==
                             map_lower((unsigned char)*b);
         a++, b++)
        ;
    return *a == '\0' && *b == '\0';
}

map_table *
map_table_new(void)
{
    map_table *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (t->buckets == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

static int
map_table_grow(map_table *t)
{
    size_t n = t->nbuckets * 2, i;
    struct map_entry **b = calloc(n, sizeof(*b)), *e, *next;

    if (b == NULL)
        return MODMTA_E_NOMEM;
    for (i = 0; i < t->nbuckets; i++) {
        for (e = t->buckets[i]; e != NULL; e = next) {
            next = e->next;
            e->next = b[map_hash(e->key) & (n - 1)];
            b[map_hash(e->key) & (n - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

int
map_table_put(map_table *t, const char *key, const char *value)
{
    size_t klen = strlen(key), i;
    struct map_entry *e, **slot;

    if (map_table_get(t, key) != NULL)
        return 0;
    if (t->count >= t->nbuckets - t->nbuckets / 4 && map_table_grow(t) < 0)
        return MODMTA_E_NOMEM;
    e = malloc(sizeof(*e) + klen + 1);
    if (e == NULL)
        return MODMTA_E_NOMEM;
    e->value = strdup(value);
    if (e->value == NULL) {
        free(e);
        return MODMTA_E_NOMEM;
    }
    for (i = 0; i <= klen; i++)
        e->key[i] = (char)map_lower((unsigned char)key[i]);
    slot = &t->buckets[map_hash(key) & (t->nbuckets - 1)];
    e->next = *slot;
    *slot = e;
    t->count++;
    return 1;
}

const char *
map_table_get(const map_table *t, const char *key)
{
    const struct map_entry *e;

    for (e = t->buckets[map_hash(key) & (t->nbuckets - 1)]; e != NULL;
         e = e->next)
        if (map_key_equal(e->key, key))
            return e->value;
    return NULL;
}

size_t
map_table_count(const map_table *t)
{
    return t->count;
}

int
map_table_foreach(const map_table *t,
                  int (*fn)(void *arg, const char *key, const char *value),
                  void *arg)
{
    const struct map_entry *e;
    size_t i;
    int rc;

    for (i = 0; i < t->nbuckets; i++)
        for (e = t->buckets[i]; e != NULL; e = e->next)
            if ((rc = fn(arg, e->key, e->value)) != 0)
                return rc;
    return 0;
}

int
map_table_load_entry(void *arg, const char *key, const char *value,
                     unsigned lineno, modmta_err *err_r)
{
    const struct map_table_loader *l = arg;
    int rc = map_table_put(l->table, key, value);

    if (rc < 0) {
        modmta_err_set(err_r, NULL, "out of memory");
        return rc;
    }
    if (rc == 0)
        modmta_logf(MODMTA_LOG_WARN, "map %s:%s:%u: duplicate key \"%s\" "
                    "ignored", l->type, l->path, lineno, key);
    return 0;
}

map_table *
map_table_load(map_reader_fn reader, const char *type, FILE *f,
               const char *path, const char *json_path, modmta_err *err_r)
{
    struct map_table_loader l = {map_table_new(), type, path};

    if (l.table == NULL) {
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    if (reader(f, path, json_path, map_table_load_entry, &l, err_r) < 0) {
        map_table_free(l.table);
        return NULL;
    }
    return l.table;
}

void
map_table_free(map_table *t)
{
    struct map_entry *e, *next;
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->nbuckets; i++) {
        for (e = t->buckets[i]; e != NULL; e = next) {
            next = e->next;
            free(e->value);
            free(e);
        }
    }
    free(t->buckets);
    free(t);
}

/* ---- registry ---- */

static int
map_type_is(const char *type, const char *name, size_t len)
{
    return strlen(type) == len && strncmp(type, name, len) == 0;
}

/* Caller holds map_registry_lock. */
static const modmta_map_backend *
map_backend_find_locked(const char *type, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(map_builtin) / sizeof(map_builtin[0]); i++)
        if (map_type_is(map_builtin[i]->type, type, len))
            return map_builtin[i];
    for (i = 0; i < map_registry_count; i++)
        if (map_type_is(map_registry[i].type, type, len))
            return &map_registry[i];
    return NULL;
}

static const modmta_map_backend *
map_backend_find(const char *type, size_t len)
{
    const modmta_map_backend *found;

    pthread_mutex_lock(&map_registry_lock);
    found = map_backend_find_locked(type, len);
    pthread_mutex_unlock(&map_registry_lock);
    return found;
}

int
modmta_map_register(const modmta_map_backend *backend)
{
    int rc = 0;

    if (backend == NULL || backend->type == NULL || backend->open == NULL ||
        backend->lookup == NULL || backend->close == NULL ||
        backend->type[0] == '\0' || strchr(backend->type, ':') != NULL)
        return MODMTA_E_INVAL;
    pthread_mutex_lock(&map_registry_lock);
    if (map_backend_find_locked(backend->type, strlen(backend->type)))
        rc = MODMTA_E_INVAL;
    else if (map_registry_count == MAP_BACKENDS_MAX)
        rc = MODMTA_E_LIMIT;
    else
        map_registry[map_registry_count++] = *backend;
    pthread_mutex_unlock(&map_registry_lock);
    return rc;
}

static void
map_names_append(char *buf, size_t size, size_t *n, const char *type)
{
    int w;

    if (*n >= size)
        return;
    w = snprintf(buf + *n, size - *n, "%s%s", *n > 0 ? ", " : "", type);
    *n = w < 0 ? size : *n + (size_t)w;
}

/* "file, cidr, redis" for error messages. */
static void
map_backend_names(char *buf, size_t size)
{
    size_t i, n = 0;

    buf[0] = '\0';
    for (i = 0; i < sizeof(map_builtin) / sizeof(map_builtin[0]); i++)
        map_names_append(buf, size, &n, map_builtin[i]->type);
    pthread_mutex_lock(&map_registry_lock);
    for (i = 0; i < map_registry_count; i++)
        map_names_append(buf, size, &n, map_registry[i].type);
    pthread_mutex_unlock(&map_registry_lock);
}

/* ---- inline JSON ---- */

static int
map_inline_lookup(void *state, const char *key, char **value_r)
{
    const char *v = map_table_get(state, key);

    if (v == NULL)
        return 0;
    if (value_r != NULL && (*value_r = strdup(v)) == NULL)
        return MODMTA_E_NOMEM;
    return 1;
}

static void
map_inline_close(void *state)
{
    map_table_free(state);
}

/* An array of strings joined with ", " into a malloc'ed string. */
static char *
map_inline_join(const json_t *arr, const char *path, modmta_err *err_r)
{
    size_t i, n = 1, off = 0;
    const json_t *v;
    char *s, epath[300];

    json_array_foreach(arr, i, v) {
        if (!json_is_string(v)) {
            snprintf(epath, sizeof(epath), "%s[%zu]", path, i);
            modmta_err_set(err_r, epath, "expected a string");
            return NULL;
        }
        n += json_string_length(v) + 2;
    }
    if ((s = malloc(n)) == NULL) {
        modmta_err_set(err_r, path, "out of memory");
        return NULL;
    }
    json_array_foreach(arr, i, v) {
        off += (size_t)sprintf(s + off, "%s%s", i > 0 ? ", " : "",
                               json_string_value(v));
    }
    s[off] = '\0';
    return s;
}

static int
map_inline_put(map_table *t, const char *key, const json_t *v,
               const char *json_path, modmta_err *err_r)
{
    char path[256], *joined = NULL;
    const char *value;
    int rc;

    snprintf(path, sizeof(path), "%s.%s", json_path, key);
    if (json_is_string(v)) {
        value = json_string_value(v);
    } else if (json_is_array(v)) {
        if ((joined = map_inline_join(v, path, err_r)) == NULL)
            return MODMTA_E_CONFIG;
        value = joined;
    } else {
        modmta_err_set(err_r, path,
                       "expected a string or an array of strings");
        return MODMTA_E_CONFIG;
    }
    rc = map_table_put(t, key, value);
    free(joined);
    if (rc < 0)
        modmta_err_set(err_r, path, "out of memory");
    return rc < 0 ? MODMTA_E_NOMEM : 0;
}

static map_table *
map_inline_build(const json_t *spec, const char *json_path,
                 modmta_err *err_r)
{
    map_table *t = map_table_new();
    const char *key;
    const json_t *v;
    char path[256];
    size_t i;
    int rc = 0;

    if (t == NULL) {
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    if (json_is_object(spec)) {
        json_object_foreach((json_t *)spec, key, v) {
            if ((rc = map_inline_put(t, key, v, json_path, err_r)) < 0)
                break;
        }
    } else {
        json_array_foreach(spec, i, v) {
            snprintf(path, sizeof(path), "%s[%zu]", json_path, i);
            if (!json_is_string(v)) {
                modmta_err_set(err_r, path, "expected a string");
                rc = MODMTA_E_CONFIG;
            } else if (map_table_put(t, json_string_value(v), "") < 0) {
                modmta_err_set(err_r, path, "out of memory");
                rc = MODMTA_E_NOMEM;
            }
            if (rc < 0)
                break;
        }
    }
    if (rc < 0) {
        map_table_free(t);
        return NULL;
    }
    return t;
}

/* ---- maps ---- */

static modmta_map *
map_new(const modmta_map_backend *backend, const char *name)
{
    modmta_map *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->backend = backend;
    if ((m->name = strdup(name)) == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

static modmta_map *
map_open_named(const char *spec, const modmta_host *host,
               const char *json_path, modmta_err *err_r)
{
    const char *colon = strchr(spec, ':');
    const modmta_map_backend *backend;
    char known[256];
    modmta_map *m;

    if (colon == NULL || colon == spec) {
        modmta_err_set(err_r, json_path,
                       "map \"%s\" has no type (expected TYPE:ARGUMENT)",
                       spec);
        return NULL;
    }
    backend = map_backend_find(spec, (size_t)(colon - spec));
    if (backend == NULL) {
        map_backend_names(known, sizeof(known));
        modmta_err_set(err_r, json_path,
                       "unknown map type \"%.*s\" in \"%s\" (known: %s)",
                       (int)(colon - spec), spec, spec, known);
        return NULL;
    }
    if ((m = map_new(backend, spec)) == NULL) {
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    if (backend == &map_redis_backend)
        m->state = map_redis_open(colon + 1, host != NULL ?
                                  modmta_host_shared(host) : NULL,
                                  json_path, err_r);
    else
        m->state = backend->open(colon + 1, json_path, err_r);
    if (m->state == NULL) {
        free(m->name);
        free(m);
        return NULL;
    }
    return m;
}

modmta_map *
modmta_map_open(const json_t *spec, const char *json_path, modmta_err *err_r)
{
    return modmta_map_open_host(spec, NULL, json_path, err_r);
}

modmta_map *
modmta_map_open_host(const json_t *spec, const modmta_host *host,
                     const char *json_path, modmta_err *err_r)
{
    modmta_map *m;

    if (json_path == NULL)
        json_path = "$";
    if (json_is_string(spec))
        return map_open_named(json_string_value(spec), host, json_path,
                              err_r);
    if (!json_is_object(spec) && !json_is_array(spec)) {
        modmta_err_set(err_r, json_path,
                       "expected a map name (\"TYPE:ARGUMENT\"), "
                       "an object or an array");
        return NULL;
    }
    if ((m = map_new(&map_inline_backend, "inline")) == NULL) {
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    if ((m->state = map_inline_build(spec, json_path, err_r)) == NULL) {
        free(m->name);
        free(m);
        return NULL;
    }
    return m;
}

int
modmta_map_lookup(modmta_map *m, const char *key, char **value_r)
{
    if (value_r != NULL)
        *value_r = NULL;
    if (m == NULL || key == NULL)
        return MODMTA_E_INVAL;
    return m->backend->lookup(m->state, key, value_r);
}

int
modmta_map_is_shared(const modmta_map *m)
{
    return m != NULL && m->backend == &map_redis_backend;
}

void *
map_redis_state(modmta_map *m)
{
    return modmta_map_is_shared(m) ? m->state : NULL;
}

const char *
modmta_map_name(const modmta_map *m)
{
    return m != NULL ? m->name : "";
}

void
modmta_map_close(modmta_map *m)
{
    if (m == NULL)
        return;
    m->backend->close(m->state);
    free(m->name);
    free(m);
}
