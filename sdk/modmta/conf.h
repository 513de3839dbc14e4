/*
 * modmta SDK: declarative validation of a module's JSON section, the nginx
 * way. A module lists its keys; the parser fills a struct, applies
 * nothing for absent keys (the caller sets defaults first), rejects
 * unknown keys, wrong types and values out of bounds, and reports every
 * error with its JSON path ("$.modules[2].timeout: 5 is out of range
 * 600..86400").
 * Defaults: set scalar fields (BOOL, INT, RANGE, ENUM, ENUMSET, SECONDS,
 * MILLISECONDS, SIZE) before the call; leave STRING, STRLIST, MAP and
 * JSON fields NULL (a stored value replaces and frees what the field
 * held) and apply their defaults after it.
 *
 * Since ABI 1.6 a table is an array of modmta_option, each entry sized
 * (append-only, like the descriptor) and written with the macros below:
 *
 *   struct mbox_conf { char *directory; int fsync; long long timeout; };
 *   static const modmta_option mbox_options[] = {
 *       MODMTA_OPTION_STRING("directory", struct mbox_conf, directory,
 *                            MODMTA_OPT_REQUIRED),
 *       MODMTA_OPTION_BOOL("fsync", struct mbox_conf, fsync, 0),
 *       MODMTA_OPTION_SECONDS("timeout", struct mbox_conf, timeout, 0,
 *                             1, 3600),
 *       MODMTA_OPTION_END
 *   };
 *   ... modmta_conf_parse_options(conf, host, mbox_options, &c, err_r) ...
 *
 * The 1.0 table (modmta_opt, positional entries, modmta_conf_parse) still
 * works: the SDK converts it and runs the same parser.
 *
 * The keys "module", "name" (the instance name), and since ABI 1.5
 * "hook_timeout" and "on_hook_timeout" (the hooks' time budget, ctx.h)
 * belong to the core and are always allowed: a module has no key of
 * those names.
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
    /* ABI 1.6, modmta_option tables only: */
    MODMTA_OPT_RANGE = 7,   /* long long, from min to max */
    MODMTA_OPT_ENUM = 8,    /* int: the index of the value in names */
    MODMTA_OPT_ENUMSET = 9, /* unsigned: bit i set for names[i] (an array
                             * of names; at most 32 names) */
    MODMTA_OPT_SECONDS = 10, /* long long seconds, from min to max */
    MODMTA_OPT_MILLISECONDS = 11, /* long long ms, from min to max (ms) */
    MODMTA_OPT_SIZE = 12,   /* long long bytes, from min to max */
} modmta_opt_type;

enum {
    MODMTA_OPT_REQUIRED = 1u << 0,
    MODMTA_OPT_ANYCASE = 1u << 1, /* ABI 1.6: ENUM, ENUMSET ignore case */
};

typedef struct modmta_opt {
    const char *key;
    modmta_opt_type type;
    size_t offset;
    unsigned flags;
} modmta_opt;

/* 0, or MODMTA_E_CONFIG with err_r filled. Paths are built from
 * modmta_host_path(host). Since ABI 1.6 it converts opts to a
 * modmta_option table and runs modmta_conf_parse_options. */
int modmta_conf_parse(const json_t *conf, const modmta_host *host,
                      const modmta_opt *opts, void *out, modmta_err *err_r);
/* Free what modmta_conf_parse stored (strings, lists, maps, JSON). */
void modmta_conf_free(const modmta_opt *opts, void *out);
void modmta_strlist_free(char **list);

/* ---- ABI 1.6: sized option tables ----
 *
 * Values by type (JSON → field):
 *   STRING        string → char * (free with modmta_conf_free_options)
 *   BOOL          true/false → int
 *   INT           integer >= 0 → long long
 *   RANGE         integer from min to max → long long
 *   ENUM          one of names → int (its index)
 *   ENUMSET       array of names → unsigned (bit per index; a name
 *                 listed twice counts once)
 *   SECONDS       integer (seconds) or duration string → long long s
 *   MILLISECONDS  integer (seconds) or duration string → long long ms
 *   SIZE          integer (bytes) or size string → long long bytes
 *   STRLIST, MAP, JSON as in modmta_opt.
 * A duration string is digits and a unit: "500ms", "30s", "15m", "4h",
 * "2d", "1w"; digits alone are seconds ("90"). SECONDS refuses a value
 * that is not a whole number of seconds ("1500ms"). A size string is
 * digits and an optional unit, binary multiples: "512", "512B", "64k",
 * "10M", "2G", "1T" (k K, M m, G g, T t; an optional "B" after).
 * An entry's size is its stride: a shorter one (from an older SDK) has
 * its newer fields taken as 0; one shorter than size, key, type and
 * offset is a config error naming the module. */
typedef struct modmta_option {
    size_t size;            /* sizeof(modmta_option) (the macros set it) */
    const char *key;        /* NULL ends the table */
    modmta_opt_type type;
    size_t offset;
    unsigned flags;         /* MODMTA_OPT_REQUIRED, MODMTA_OPT_ANYCASE */
    long long min, max;     /* RANGE, SECONDS, MILLISECONDS, SIZE */
    const char *const *names; /* ENUM, ENUMSET: NULL-terminated */
} modmta_option;

/* offsetof(st, member), refused at compile time when the member does not
 * have the size of the type the option stores (an int given to a
 * long long option). */
#define MODMTA_OPTION_OFFSET_(st, member, ctype)                           \
    (offsetof(st, member) +                                                \
     0 * sizeof(char[sizeof(((st *)0)->member) == sizeof(ctype) ? 1 : -1]))
#define MODMTA_OPTION_ENTRY_(key, type, ctype, st, member, flags, min, max,  \
                             names)                                        \
    { sizeof(modmta_option), (key), (type),                                \
      MODMTA_OPTION_OFFSET_(st, member, ctype), (flags), (min), (max),     \
      (names) }
#define MODMTA_OPTION_STRING(key, st, member, flags)                        \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_STRING, char *, st, member, flags, \
                         0, 0, NULL)
#define MODMTA_OPTION_BOOL(key, st, member, flags)                          \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_BOOL, int, st, member, flags, 0, 0, \
                         NULL)
#define MODMTA_OPTION_INT(key, st, member, flags)                           \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_INT, long long, st, member, flags, \
                         0, 0, NULL)
#define MODMTA_OPTION_RANGE(key, st, member, flags, min, max)               \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_RANGE, long long, st, member,      \
                         flags, min, max, NULL)
/* MODMTA_OPTION_ENUM("mode", struct c, mode, 0, "fast", "safe") */
#define MODMTA_OPTION_ENUM(key, st, member, flags, ...)                     \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_ENUM, int, st, member, flags, 0, 0, \
                         ((const char *const[]){__VA_ARGS__, NULL}))
#define MODMTA_OPTION_ENUMSET(key, st, member, flags, ...)                  \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_ENUMSET, unsigned, st, member,     \
                         flags, 0, 0,                                      \
                         ((const char *const[]){__VA_ARGS__, NULL}))
/* Bounds in seconds. */
#define MODMTA_OPTION_SECONDS(key, st, member, flags, min, max)             \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_SECONDS, long long, st, member,    \
                         flags, min, max, NULL)
/* Bounds in milliseconds. */
#define MODMTA_OPTION_MILLISECONDS(key, st, member, flags, min, max)        \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_MILLISECONDS, long long, st,       \
                         member, flags, min, max, NULL)
/* Bounds in bytes. */
#define MODMTA_OPTION_SIZE(key, st, member, flags, min, max)                \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_SIZE, long long, st, member,       \
                         flags, min, max, NULL)
#define MODMTA_OPTION_STRLIST(key, st, member, flags)                       \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_STRLIST, char **, st, member,      \
                         flags, 0, 0, NULL)
#define MODMTA_OPTION_MAP(key, st, member, flags)                           \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_MAP, void *, st, member, flags, 0, \
                         0, NULL)
#define MODMTA_OPTION_JSON(key, st, member, flags)                          \
    MODMTA_OPTION_ENTRY_(key, MODMTA_OPT_JSON, void *, st, member, flags, 0, \
                         0, NULL)
#define MODMTA_OPTION_END                                                   \
    { sizeof(modmta_option), NULL, (modmta_opt_type)0, 0, 0, 0, 0, NULL }

/* Parse every key of conf: each error is recorded with
 * modmta_conf_error() (so the core lists them all) and the call goes
 * on. 0, or MODMTA_E_CONFIG with err_r holding the first error of the
 * call; then nothing the call stored is left (pointer fields NULL). */
int modmta_conf_parse_options(const json_t *conf, const modmta_host *host,
                              const modmta_option *opts, void *out,
                              modmta_err *err_r);
/* Free what modmta_conf_parse_options stored. */
void modmta_conf_free_options(const modmta_option *opts, void *out);

/* Record a configuration error of this instance at path (NULL: the
 * instance's path) and fill err_r with it. create() calls it for each of
 * its own checks, then returns NULL once: modmta --check-config, and a
 * start, list every error the host recorded. host may be NULL (err_r
 * only). Returns MODMTA_E_CONFIG. */
int modmta_conf_error(const modmta_host *host, modmta_err *err_r,
                      const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The SDK's one duration and size syntax (above), for values a table
 * does not reach (inside a JSON option). 0, or MODMTA_E_INVAL if s is
 * malformed or overflows. */
int modmta_parse_duration_ms(const char *s, long long *ms_r);
int modmta_parse_size(const char *s, long long *bytes_r);

#ifdef __cplusplus
}
#endif

#endif
