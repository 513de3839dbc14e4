/*
 * What the map backends of libmodmta share (not installed): a string hash
 * table with case-insensitive keys, the logical-line reader of the
 * Postfix-style text formats, and the built-in backends.
 */
#ifndef MODMTA_MAP_PRIV_H
#define MODMTA_MAP_PRIV_H

#include <stddef.h>

#include <modmta/map.h>

typedef struct map_table map_table;

map_table *map_table_new(void);
/* Keys are stored lower-cased (ASCII). Returns 1 when added, 0 when the
 * key was already there (the first value is kept), MODMTA_E_NOMEM. */
int map_table_put(map_table *t, const char *key, const char *value);
/* The value (owned by the table), or NULL; key compared without case. */
const char *map_table_get(const map_table *t, const char *key);
size_t map_table_count(const map_table *t);
void map_table_free(map_table *t);

/* Called for each logical line "KEY VALUE" of a text table: key and value
 * are trimmed (value may be "" when the line has none), lineno is where
 * the logical line starts. Return 0, or <0 with err_r->msg set to the
 * message alone: the reader prefixes it with "PATH:LINE: ". */
typedef int (*map_file_entry_fn)(void *arg, const char *key,
                                 const char *value, unsigned lineno,
                                 modmta_err *err_r);

/* Read a Postfix-style text table: '#' comment lines and blank lines are
 * skipped, a line starting with whitespace continues the previous one.
 * Errors are "PATH:LINE: ..." messages with json_path as err_r->path. */
int map_file_read(const char *path, const char *json_path,
                  map_file_entry_fn fn, void *arg, modmta_err *err_r);

extern const modmta_map_backend map_file_backend;
extern const modmta_map_backend map_cidr_backend;
extern const modmta_map_backend map_aliases_backend; /* map_aliases.c */

#endif
