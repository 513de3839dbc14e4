/*
 * What the map backends of libmodmta share (not installed): a string hash
 * table with case-insensitive keys, the logical-line reader of the
 * Postfix-style text formats and the readers of each format, the
 * built-in backends, and what modmtactl needs to write redis: maps.
 */
#ifndef MODMTA_MAP_PRIV_H
#define MODMTA_MAP_PRIV_H

#include <stddef.h>
#include <stdio.h>

#include <modmta/map.h>
#include <modmta/shared.h>

typedef struct map_table map_table;

map_table *map_table_new(void);
/* Keys are stored lower-cased (ASCII). Returns 1 when added, 0 when the
 * key was already there (the first value is kept), MODMTA_E_NOMEM. */
int map_table_put(map_table *t, const char *key, const char *value);
/* The value (owned by the table), or NULL; key compared without case. */
const char *map_table_get(const map_table *t, const char *key);
size_t map_table_count(const map_table *t);
void map_table_free(map_table *t);
/* Call fn for each entry (in no particular order) until it returns
 * non-zero; returns that, or 0. */
int map_table_foreach(const map_table *t,
                      int (*fn)(void *arg, const char *key,
                                const char *value),
                      void *arg);

/* Called for each logical line "KEY VALUE" of a text table: key and value
 * are trimmed (value may be "" when the line has none), lineno is where
 * the logical line starts. Return 0, or <0 with err_r->msg set to the
 * message alone: the reader prefixes it with "PATH:LINE: ". */
typedef int (*map_file_entry_fn)(void *arg, const char *key,
                                 const char *value, unsigned lineno,
                                 modmta_err *err_r);

/* Read a Postfix-style text table from f (open at its start; path names
 * it): '#' comment lines and blank lines are skipped, a line starting
 * with whitespace continues the previous one. Errors are "PATH:LINE:
 * ..." messages with json_path as err_r->path. */
int map_file_read(FILE *f, const char *path, const char *json_path,
                  map_file_entry_fn fn, void *arg, modmta_err *err_r);

/* The readers of the formats: fn gets each entry as a lookup of the
 * backend returns it (file: a key and its value, which may not be
 * empty; aliases: a name and its targets joined again, "a, \"|cmd x\"",
 * after the checks of map_aliases.c), duplicates included, with the
 * line it starts on. Errors as map_file_read's. */
int map_file_entries(FILE *f, const char *path, const char *json_path,
                     map_file_entry_fn fn, void *arg, modmta_err *err_r);
int map_aliases_entries(FILE *f, const char *path, const char *json_path,
                        map_file_entry_fn fn, void *arg, modmta_err *err_r);
typedef int (*map_reader_fn)(FILE *f, const char *path,
                             const char *json_path, map_file_entry_fn fn,
                             void *arg, modmta_err *err_r);
/* A table of what reader reads from f: the first entry of a key counts,
 * later ones are logged ("map TYPE:PATH:LINE: duplicate key"). NULL
 * with err_r filled. */
map_table *map_table_load(map_reader_fn reader, const char *type, FILE *f,
                          const char *path, const char *json_path,
                          modmta_err *err_r);
/* A file format whose table is re-read when the file changes
 * (modmta/reload.h): the file: and aliases: backends are these three
 * functions over their format. */
struct map_file_format {
    const char *type;       /* "file", "aliases" */
    map_reader_fn reader;
};
void *map_file_table_open(const struct map_file_format *fmt,
                          const char *arg, const char *json_path,
                          modmta_err *err_r);
int map_file_table_lookup(void *state, const char *key, char **value_r);
void map_file_table_close(void *state);
/* The entry callback of map_table_load, for a reader of one's own that
 * checks more before it (arg a struct map_table_loader). */
struct map_table_loader {
    map_table *table;
    const char *type;
    const char *path;
};
int map_table_load_entry(void *arg, const char *key, const char *value,
                         unsigned lineno, modmta_err *err_r);

extern const modmta_map_backend map_file_backend;
extern const modmta_map_backend map_cidr_backend;
extern const modmta_map_backend map_aliases_backend; /* map_aliases.c */
extern const modmta_map_backend map_redis_backend;   /* map_redis.c */

/* ---- redis: maps (map_redis.c) ---- */

/* The longest KEYPREFIX of "redis:KEYPREFIX" (maps and passdbs): most
 * of MODMTA_SHARED_KEY_MAX is left to the keys looked up. */
#define MAP_REDIS_PREFIX_MAX 128

/* 1 if s may be (part of) a shared-state key: 1 to max octets, no
 * white space, no control character. */
int map_redis_key_part_ok(const char *s, size_t max);
/* Check what a redis: map or passdb (what: "maps", "passdbs") is opened
 * with: a host's store that is Redis, and arg, its key prefix (ending
 * with ':', not a reserved namespace: shared_reserved). 0, or
 * MODMTA_E_CONFIG with err_r filled (json_path). */
int map_redis_arg_check(const char *arg, const modmta_shared *shared,
                        const char *what, const char *json_path,
                        modmta_err *err_r);

/* The state of a "redis:ARG" map on shared, which must be Redis (else
 * the config error "redis: maps need the \"redis\" section"). NULL
 * with err_r filled. */
void *map_redis_open(const char *arg, modmta_shared *shared,
                     const char *json_path, modmta_err *err_r);
/* The state of m when it is a redis: map, else NULL (map.c). */
void *map_redis_state(modmta_map *m);
/* The map's key prefix ("alias:" for "redis:alias:"). */
const char *map_redis_prefix(const void *state);
/* The shared-state key of the entry key: the map's prefix and key in
 * lower case, into buf. MODMTA_E_INVAL when no entry can have that key
 * (empty, white space or a control character, too long). */
int map_redis_key(const void *state, const char *key, char *buf,
                  size_t size);
/* 1 if value may be a map value: no control character but tab. */
int map_redis_value_ok(const char *value);
/* Write (no expiry) or delete the entry key: as modmta_shared_set and
 * _del; MODMTA_E_INVAL for a key map_redis_key refuses or a value
 * map_redis_value_ok refuses. */
int map_redis_put(void *state, const char *key, const char *value);
int map_redis_del(void *state, const char *key);

#endif
