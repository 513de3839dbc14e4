/*
 * modmtactl map: read and write maps without the daemon (usage in
 * docs/operations.md). Redis is reached through libmodmta's shared state
 * built from the config's "redis" section, so the keys are the daemon's
 * (its prefix, its database, its password, which is never printed).
 *
 *   get SPEC KEY            any map: the value a lookup gives
 *   set SPEC KEY VALUE      redis: maps only
 *   del SPEC KEY
 *   import [--replace] SPEC SOURCE
 *                           SOURCE "aliases:FILE" or "file:FILE", read
 *                           by the parsers of those maps and checked
 *                           whole, then written in one atomic command
 *                           (shared_write_all): all or nothing. The
 *                           map's other keys stay, or with --replace
 *                           are deleted in the same command.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <modmta/conf.h>
#include <modmta/map.h>
#include <modmta/reload.h>

#include "ctx_priv.h"
#include "file_open_priv.h"
#include "map_priv.h"
#include "modmtactl.h"
#include "shared_priv.h"

/* What a map command works with. */
struct ctl_map {
    struct config *cfg;
    modmta_shared *shared;
    modmta_host *host;
    modmta_map *map;
    const char *spec;
};

/* An import in progress. */
struct ctl_import {
    struct map_table_loader l;
    void *redis;                /* the target map's state */
    int aliases;                /* the source is an aliases(5) file */
    char **keys;                /* the entries' shared-state keys */
    const char **values;        /* their values (the table's) */
    size_t n;
};

static void
ctl_map_usage(void)
{
    fprintf(stderr, "modmtactl: usage: modmtactl map get SPEC KEY\n"
            "                 modmtactl map set SPEC KEY VALUE\n"
            "                 modmtactl map del SPEC KEY\n"
            "                 modmtactl map import [--replace] SPEC "
            "aliases:FILE|file:FILE\n");
}

static void
ctl_map_close(struct ctl_map *c)
{
    modmta_map_close(c->map);
    modmta_host_free(c->host);
    modmta_shared_free(c->shared);
    if (c->cfg != NULL)
        config_free(c->cfg);
}

/* Open SPEC as the daemon would, with the config's shared state; for
 * writing (need_redis) only a redis: map will do. */
static int
ctl_map_open(struct ctl_map *c, const char *config, const char *spec,
             int need_redis)
{
    modmta_err err = {"", ""};
    json_t *j;

    c->spec = spec;
    if (need_redis && strncmp(spec, "redis:", 6) != 0) {
        fprintf(stderr, "modmtactl: %s: only a redis: map can be written "
                "(\"redis:alias:\")\n", spec);
        return CTL_EXIT_USAGE;
    }
    if ((c->cfg = ctl_config_load(config)) == NULL)
        return CTL_EXIT_USAGE;
    c->shared = modmta_shared_new(c->cfg->redis, &err);
    c->host = modmta_host_new("modmtactl", "$", c->cfg->hostname,
                              c->cfg->spool, c->cfg->local_domains, 0);
    if (c->shared == NULL || c->host == NULL) {
        fprintf(stderr, "modmtactl: %s: %s\n", config,
                c->shared == NULL ? err.msg : "out of memory");
        return CTL_EXIT_USAGE;
    }
    modmta_host_set_shared(c->host, c->shared);
    j = json_string(spec);
    c->map = j != NULL ? modmta_map_open_host(j, c->host, spec, &err) : NULL;
    json_decref(j);
    if (c->map == NULL) {
        fprintf(stderr, "modmtactl: %s: %s\n", spec, err.msg);
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

/* A store that did not answer: the connection problem of exit 2. */
static int
ctl_map_failed(const struct ctl_map *c, const char *what, int rc)
{
    fprintf(stderr, "modmtactl: %s: %s failed: %s%s\n", c->spec, what,
            modmta_strerror(rc), rc == MODMTA_E_TEMP ? " (is Redis "
            "reachable?)" : "");
    return CTL_EXIT_USAGE;
}

static int
ctl_map_get(struct ctl_map *c, const char *key)
{
    char *value = NULL;
    int rc = modmta_map_lookup(c->map, key, &value);

    if (rc < 0)
        return ctl_map_failed(c, "lookup", rc);
    if (rc == 0) {
        fprintf(stderr, "modmtactl: %s: not found in %s\n", key, c->spec);
        return CTL_EXIT_ERROR;
    }
    printf("%s\n", value);
    free(value);
    return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/* Why key or value cannot be an entry of a redis: map, or NULL. */
static const char *
ctl_map_refuse(void *redis, const char *key, const char *value)
{
    char full[MODMTA_SHARED_KEY_MAX];

    if (map_redis_key(redis, key, full, sizeof(full)) < 0)
        return "the key is empty, too long, or holds white space or a "
               "control character";
    /* as no file: line or alias can be: a lookup would find nothing
     * to use (alias answers 550, virtual 451) */
    if (value != NULL && value[0] == '\0')
        return "the value is empty";
    if (value != NULL && !map_redis_value_ok(value))
        return "the value holds a control character";
    if (value != NULL && strlen(value) > MODMTA_SHARED_VALUE_MAX)
        return "the value is longer than 64 KiB";
    return NULL;
}

static int
ctl_map_set(struct ctl_map *c, const char *key, const char *value)
{
    void *redis = map_redis_state(c->map);
    const char *why = ctl_map_refuse(redis, key, value);
    int rc;

    if (why != NULL) {
        fprintf(stderr, "modmtactl: %s: %s\n", key, why);
        return CTL_EXIT_USAGE;
    }
    if ((rc = map_redis_put(redis, key, value)) < 0)
        return ctl_map_failed(c, "set", rc);
    printf("%s: set\n", key);
    return CTL_EXIT_OK;
}

static int
ctl_map_del(struct ctl_map *c, const char *key)
{
    void *redis = map_redis_state(c->map);
    const char *why = ctl_map_refuse(redis, key, NULL);
    int rc;

    if (why != NULL) {
        fprintf(stderr, "modmtactl: %s: %s\n", key, why);
        return CTL_EXIT_USAGE;
    }
    if ((rc = map_redis_del(redis, key)) < 0)
        return ctl_map_failed(c, "del", rc);
    if (rc == 0) {
        fprintf(stderr, "modmtactl: %s: not found in %s\n", key, c->spec);
        return CTL_EXIT_ERROR;
    }
    printf("%s: deleted\n", key);
    return CTL_EXIT_OK;
}

/* 1 if an alias's targets name a command, a file or an include, which
 * alias never takes from Redis; -1 if they cannot be split. */
static int
ctl_import_special(const char *value)
{
    char **items = modmta_map_list_split(value, NULL);
    int special = items == NULL ? -1 : 0;
    size_t i;

    for (i = 0; items != NULL && items[i] != NULL; i++)
        if (items[i][0] == '|' || items[i][0] == '/' ||
            strncmp(items[i], ":include:", 9) == 0)
            special = 1;
    modmta_strlist_free(items);
    return special;
}

/* One entry of the source, checked before anything is loaded. */
static int
ctl_import_entry(void *arg, const char *key, const char *value,
                 unsigned lineno, modmta_err *err_r)
{
    struct ctl_import *im = arg;
    const char *why = ctl_map_refuse(im->redis, key, value);

    if (why == NULL && im->aliases && ctl_import_special(value) != 0)
        why = "a command, file or include target cannot come from Redis "
              "(alias defers such a recipient)";
    if (why != NULL) {
        modmta_err_set(err_r, NULL, "\"%s\": %s", key, why);
        return MODMTA_E_CONFIG;
    }
    return map_table_load_entry(&im->l, key, value, lineno, err_r);
}

/* One entry of the table into im's arrays. */
static int
ctl_import_collect(void *arg, const char *key, const char *value)
{
    struct ctl_import *im = arg;
    char full[MODMTA_SHARED_KEY_MAX];

    if (map_redis_key(im->redis, key, full, sizeof(full)) < 0)
        return MODMTA_E_INVAL;          /* ctl_import_entry checked it */
    if ((im->keys[im->n] = strdup(full)) == NULL)
        return MODMTA_E_NOMEM;
    im->values[im->n++] = value;
    return 0;
}

/* 1 when the map key k is one the import writes: a table entry's key,
 * in the lower case map_redis_key writes. */
static int
ctl_import_writes(const struct ctl_import *im, const char *k)
{
    for (const char *p = k; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            return 0;
    return map_table_get(im->l.table, k) != NULL;
}

/* The map's keys in Redis that the import does not write (for
 * --replace): 0 with *stale_r (NULL-terminated, *n_r of them), or <0. */
static int
ctl_import_stale(struct ctl_map *c, const struct ctl_import *im,
                 char ***stale_r, size_t *n_r)
{
    const char *prefix = map_redis_prefix(im->redis);
    size_t plen = strlen(prefix), n, m = 0;
    char **found;
    int rc;

    if ((rc = shared_keys(c->shared, prefix, &found, &n)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (ctl_import_writes(im, found[i] + plen))
            free(found[i]);
        else
            found[m++] = found[i];
    }
    found[m] = NULL;
    *stale_r = found;
    *n_r = m;
    return 0;
}

/* Write im's entries (and with replace delete the map's other keys) in
 * one atomic command: 0, or <0 (nothing written). */
static int
ctl_import_write(struct ctl_map *c, struct ctl_import *im, int replace,
                 size_t *deleted_r)
{
    char **stale = NULL;
    size_t n = map_table_count(im->l.table);
    int rc;

    *deleted_r = 0;
    im->keys = calloc(n + 1, sizeof(*im->keys));
    im->values = calloc(n + 1, sizeof(*im->values));
    if (im->keys == NULL || im->values == NULL)
        rc = MODMTA_E_NOMEM;
    else
        rc = map_table_foreach(im->l.table, ctl_import_collect, im);
    if (rc == 0 && replace)
        rc = ctl_import_stale(c, im, &stale, deleted_r);
    if (rc == 0)
        rc = shared_write_all(c->shared, stale, *deleted_r, im->keys,
                              im->values, im->n);
    modmta_strlist_free(stale);
    modmta_strlist_free(im->keys);
    free(im->values);
    return rc;
}

static int
ctl_map_import(struct ctl_map *c, const char *source, int replace)
{
    struct ctl_import im = {{NULL, "", ""}, map_redis_state(c->map), 0,
                            NULL, NULL, 0};
    modmta_err err = {"", ""};
    map_reader_fn reader;
    struct stat st;
    size_t n, deleted;
    FILE *f;
    int rc;

    im.aliases = strncmp(source, "aliases:", 8) == 0;
    if ((!im.aliases && strncmp(source, "file:", 5) != 0) ||
        strchr(source, ':')[1] == '\0') {
        fprintf(stderr, "modmtactl: %s: expected aliases:FILE (an "
                "aliases(5) file) or file:FILE (\"key value\" lines)\n",
                source);
        return CTL_EXIT_USAGE;
    }
    reader = im.aliases ? map_aliases_entries : map_file_entries;
    im.l.type = im.aliases ? "aliases" : "file";
    im.l.path = strchr(source, ':') + 1;
    if ((im.l.table = map_table_new()) == NULL) {
        fprintf(stderr, "modmtactl: out of memory\n");
        return CTL_EXIT_USAGE;
    }
    f = file_open_read(im.l.path, MODMTA_RELOAD_SIZE_MAX, &st, &err);
    rc = f != NULL ? reader(f, im.l.path, NULL, ctl_import_entry, &im, &err)
                   : MODMTA_E_IO;
    if (f != NULL)
        fclose(f);
    if (rc < 0) {
        fprintf(stderr, "modmtactl: %s (nothing imported)\n", err.msg);
        map_table_free(im.l.table);
        return CTL_EXIT_ERROR;
    }
    n = map_table_count(im.l.table);
    rc = ctl_import_write(c, &im, replace, &deleted);
    map_table_free(im.l.table);
    if (rc < 0) {
        /* a timeout leaves it unknown whether Redis ran the command */
        fprintf(stderr, "modmtactl: %s: import failed: %s (%s)\n", c->spec,
                modmta_strerror(rc), rc == MODMTA_E_TEMP
                    ? "is Redis reachable? one atomic command: nothing "
                      "was written, or all if Redis got it before the "
                      "timeout"
                    : "nothing imported");
        return CTL_EXIT_USAGE;
    }
    printf("%s: %zu entries imported from %s", c->spec, n, source);
    if (replace)
        printf(", %zu other keys deleted", deleted);
    printf("\n");
    return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

int
ctl_map(int argc, char **argv, const char *config)
{
    struct ctl_map c = {0};
    const char *op = argc > 1 ? argv[1] : "";
    int set = strcmp(op, "set") == 0, rc;
    int replace = strcmp(op, "import") == 0 && argc > 2 &&
                  strcmp(argv[2], "--replace") == 0;

    if ((strcmp(op, "get") != 0 && strcmp(op, "del") != 0 &&
         strcmp(op, "import") != 0 && !set) ||
        argc != 4 + set + replace) {
        ctl_map_usage();
        return CTL_EXIT_USAGE;
    }
    argv += replace;
    /* hiredis writes with write(2): a closed connection must not kill
     * us (redis_priv.h) */
    signal(SIGPIPE, SIG_IGN);
    rc = ctl_map_open(&c, config, argv[2], strcmp(op, "get") != 0);
    if (rc == CTL_EXIT_OK) {
        if (op[0] == 'g')
            rc = ctl_map_get(&c, argv[3]);
        else if (set)
            rc = ctl_map_set(&c, argv[3], argv[4]);
        else if (op[0] == 'd')
            rc = ctl_map_del(&c, argv[3]);
        else
            rc = ctl_map_import(&c, argv[3], replace);
    }
    ctl_map_close(&c);
    return rc;
}
