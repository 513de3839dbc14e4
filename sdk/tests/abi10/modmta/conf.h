/*
 * modmta SDK: declarative validation of a module's JSON section, the nginx
 * way. A module lists its keys; modmta_conf_parse() fills a struct,
 * applies nothing for absent keys (the caller sets defaults first),
 * rejects unknown keys and wrong types, and reports the first error with
 * its JSON path ("$.modules[2].users: expected a string").
 * Defaults: set INT and BOOL fields before the call; leave STRING,
 * STRLIST, MAP and JSON fields NULL (a stored value replaces and frees
 * what the field held) and apply their defaults after it.
 *
 *   struct mbox_conf { char *directory; int fsync; modmta_map *users; };
 *   static const modmta_opt mbox_opts[] = {
 *       { "directory", MODMTA_OPT_STRING, offsetof(struct mbox_conf,
 *         directory), MODMTA_OPT_REQUIRED },
 *       { "fsync", MODMTA_OPT_BOOL, offsetof(struct mbox_conf, fsync), 0 },
 *       { NULL, 0, 0, 0 }
 *   };
 *
 * The keys "module" and "name" (the instance name) belong to the core and
 * are always allowed.
 */
#ifndef MODMTA_CONF_H
#define MODMTA_CONF_H

#include <stddef.h>
#include <jansson.h>

#include <modmta/module.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum modmta_opt_type {
    MODMTA_OPT_STRING = 1,  /* char * (malloc'ed; free with modmta_free) */
    MODMTA_OPT_BOOL = 2,    /* int */
    MODMTA_OPT_INT = 3,     /* long long, non-negative */
    MODMTA_OPT_STRLIST = 4, /* char ** NULL-terminated (modmta_strlist_free) */
    MODMTA_OPT_MAP = 5,     /* modmta_map * (string spec or inline JSON) */
    MODMTA_OPT_JSON = 6,    /* json_t * (a new reference; json_decref) */
} modmta_opt_type;

enum { MODMTA_OPT_REQUIRED = 1u << 0 };

typedef struct modmta_opt {
    const char *key;
    modmta_opt_type type;
    size_t offset;
    unsigned flags;
} modmta_opt;

/* 0, or MODMTA_E_CONFIG with err_r filled. Paths are built from
 * modmta_host_path(host). */
int modmta_conf_parse(const json_t *conf, const modmta_host *host,
                      const modmta_opt *opts, void *out, modmta_err *err_r);
/* Free what modmta_conf_parse stored (strings, lists, maps, JSON). */
void modmta_conf_free(const modmta_opt *opts, void *out);
void modmta_strlist_free(char **list);

#ifdef __cplusplus
}
#endif

#endif
