/*
 * Declarative validation of a module's JSON section (nginx's slots).
 *
 * Pointer fields (STRING, STRLIST, MAP, JSON) must hold NULL or memory
 * the SDK may free before the call: a stored value replaces and frees the
 * previous one, and modmta_conf_free() frees them all. Set defaults for
 * those fields after the call ("if (c->dir == NULL) c->dir = strdup(..)").
 * On error, what the call stored is freed and its fields reset to NULL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/conf.h>
#include <modmta/map.h>

/* The keys of a module entry that belong to the core (chain.c,
 * chain_budget.c): always allowed, never the module's. */
static const char *const conf_core_keys[] = {
    "module", "name", "hook_timeout", "on_hook_timeout", NULL
};

static int
conf_is_core_key(const char *key)
{
    for (size_t i = 0; conf_core_keys[i] != NULL; i++)
        if (strcmp(conf_core_keys[i], key) == 0)
            return 1;
    return 0;
}

static const modmta_opt *
conf_find(const modmta_opt *opts, const char *key)
{
    for (; opts->key != NULL; opts++)
        if (strcmp(opts->key, key) == 0)
            return opts;
    return NULL;
}

static const char *
conf_type_name(modmta_opt_type type)
{
    switch (type) {
    case MODMTA_OPT_STRING:
        return "a string";
    case MODMTA_OPT_BOOL:
        return "true or false";
    default:
        return "a non-negative integer";
    }
}

/* Free what an option field holds and reset it. */
static void
conf_clear(const modmta_opt *opt, void *out)
{
    void **field = (void **)((char *)out + opt->offset);

    switch (opt->type) {
    case MODMTA_OPT_STRING:
        free(*field);
        break;
    case MODMTA_OPT_STRLIST:
        modmta_strlist_free(*field);
        break;
    case MODMTA_OPT_MAP:
        modmta_map_close(*field);
        break;
    case MODMTA_OPT_JSON:
        json_decref(*field);
        break;
    default:
        return;
    }
    *field = NULL;
}

static char **
conf_strlist(const json_t *v, const char *path, modmta_err *err_r)
{
    size_t i, n = json_array_size(v);
    const json_t *s;
    char **list, epath[300];

    if (!json_is_array(v)) {
        modmta_err_set(err_r, path, "expected an array of strings");
        return NULL;
    }
    if ((list = calloc(n + 1, sizeof(*list))) == NULL) {
        modmta_err_set(err_r, path, "out of memory");
        return NULL;
    }
    json_array_foreach(v, i, s) {
        if (!json_is_string(s)) {
            snprintf(epath, sizeof(epath), "%s[%zu]", path, i);
            modmta_err_set(err_r, epath, "expected a string");
            break;
        }
        if ((list[i] = strdup(json_string_value(s))) == NULL) {
            modmta_err_set(err_r, path, "out of memory");
            break;
        }
    }
    if (i < n) {
        modmta_strlist_free(list);
        return NULL;
    }
    return list;
}

/* Convert v for opt and store it; the old value of the field is freed.
 * Maps are opened with the host (redis: maps need its shared state). */
static int
conf_store(const modmta_opt *opt, const json_t *v, const modmta_host *host,
           const char *path, void *out, modmta_err *err_r)
{
    char *field = (char *)out + opt->offset;
    void *p = NULL;

    switch (opt->type) {
    case MODMTA_OPT_BOOL:
        if (!json_is_boolean(v))
            goto type_error;
        *(int *)field = json_is_true(v);
        return 0;
    case MODMTA_OPT_INT:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            goto type_error;
        *(long long *)field = json_integer_value(v);
        return 0;
    case MODMTA_OPT_STRING:
        if (!json_is_string(v))
            goto type_error;
        if ((p = strdup(json_string_value(v))) == NULL) {
            modmta_err_set(err_r, path, "out of memory");
            return MODMTA_E_CONFIG;
        }
        break;
    case MODMTA_OPT_STRLIST:
        p = conf_strlist(v, path, err_r);
        break;
    case MODMTA_OPT_MAP:
        p = modmta_map_open_host(v, host, path, err_r);
        break;
    case MODMTA_OPT_JSON:
        p = json_incref((json_t *)v);
        break;
    default:
        modmta_err_set(err_r, path, "option has an unknown type %d",
                       (int)opt->type);
        return MODMTA_E_CONFIG;
    }
    if (p == NULL)
        return MODMTA_E_CONFIG;
    conf_clear(opt, out);
    *(void **)field = p;
    return 0;

type_error:
    modmta_err_set(err_r, path, "expected %s", conf_type_name(opt->type));
    return MODMTA_E_CONFIG;
}

static int
conf_check_keys(const json_t *conf, const char *base, const modmta_opt *opts,
                modmta_err *err_r)
{
    const char *key;
    const json_t *v;
    char path[256];

    json_object_foreach((json_t *)conf, key, v) {
        if (conf_is_core_key(key) || conf_find(opts, key) != NULL)
            continue;
        snprintf(path, sizeof(path), "%s.%s", base, key);
        modmta_err_set(err_r, path, "unknown key");
        return MODMTA_E_CONFIG;
    }
    return 0;
}

int
modmta_conf_parse(const json_t *conf, const modmta_host *host,
                  const modmta_opt *opts, void *out, modmta_err *err_r)
{
    const char *base = host != NULL ? modmta_host_path(host) : "$";
    const json_t *v;
    char path[256];
    size_t i;
    int rc = 0;

    if (!json_is_object(conf)) {
        modmta_err_set(err_r, base, "expected an object");
        return MODMTA_E_CONFIG;
    }
    if (conf_check_keys(conf, base, opts, err_r) < 0)
        return MODMTA_E_CONFIG;
    for (i = 0; opts[i].key != NULL; i++) {
        v = json_object_get(conf, opts[i].key);
        if (v == NULL && (opts[i].flags & MODMTA_OPT_REQUIRED)) {
            modmta_err_set(err_r, base, "missing required key \"%s\"",
                           opts[i].key);
            rc = MODMTA_E_CONFIG;
        } else if (v != NULL) {
            snprintf(path, sizeof(path), "%s.%s", base, opts[i].key);
            rc = conf_store(&opts[i], v, host, path, out, err_r);
        }
        if (rc < 0)
            break;
    }
    /* On error, undo what this call stored before the failing option. */
    while (rc < 0 && i-- > 0)
        if (json_object_get(conf, opts[i].key) != NULL)
            conf_clear(&opts[i], out);
    return rc;
}

void
modmta_conf_free(const modmta_opt *opts, void *out)
{
    if (opts == NULL || out == NULL)
        return;
    for (; opts->key != NULL; opts++)
        conf_clear(opts, out);
}

void
modmta_strlist_free(char **list)
{
    size_t i;

    if (list == NULL)
        return;
    for (i = 0; list[i] != NULL; i++)
        free(list[i]);
    free(list);
}
