/*
 * modmta SDK: lookup maps, the Postfix "dict" idea.
 *
 * A map is named in the config as "BACKEND:ARGUMENT" or given inline:
 *   "file:/etc/modmta/access"   key<whitespace>value lines, '#' comments,
 *                               continuation lines start with whitespace;
 *                               keys compared without case; the file is
 *                               re-read when it changes by the rule of
 *                               modmta/reload.h (looked at at most once a
 *                               second; a change that fails to parse
 *                               keeps the old table and logs file:line).
 *   "cidr:/etc/modmta/clients"  "network/prefix value" lines, IPv4 and
 *                               IPv6, first match in file order.
 *   "aliases:/etc/modmta/aliases"  aliases(5): "name: a, b, c", quoted
 *                               names, continuations, '#' comments; the
 *                               value is the list (modmta_map_list_split);
 *                               re-read on change like "file:".
 *   "redis:alias:"              the shared state's key KEYPREFIX + KEY,
 *                               KEY in lower case (ABI 1.4): "alias:root"
 *                               under the config's redis "prefix"
 *                               ("modmta:alias:root"); needs the config's
 *                               "redis" section and the module's host
 *                               (modmta_map_open_host); read at every
 *                               lookup, so a change made with modmtactl
 *                               map set is seen by every node at once.
 *                               A key with white space or a control
 *                               character is never found; a value with a
 *                               control character but tab is an error.
 *   {"key": "value", ...}       inline object; an array value is joined
 *                               with ", ".
 *   ["a", "b"]                  inline set: every listed key is found,
 *                               with the value "".
 * Lookups have three outcomes (rule 5 of STYLE.md): found (1), not found
 * (0), error (<0, MODMTA_E_TEMP: answer 4xx, never "unknown user").
 * Maps are safe to share between threads.
 */
#ifndef MODMTA_MAP_H
#define MODMTA_MAP_H

#include <jansson.h>

#include <modmta/err.h>
#include <modmta/module.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct modmta_map modmta_map;

/* Open the map named by `spec` (a JSON string, object or array).
 * json_path names spec in errors ("$.modules[2].map"). */
modmta_map *modmta_map_open(const json_t *spec, const char *json_path,
                            modmta_err *err_r);
/* The same with the module's host (ABI 1.4), which "redis:" maps need:
 * they read the host's shared state (modmta_host_shared), which must be
 * Redis. MODMTA_OPT_MAP options are opened this way; call it instead of
 * modmta_map_open when opening a map by hand in create(). host may be
 * NULL (= modmta_map_open). The map must be closed before the host's
 * generation ends (in destroy()). */
modmta_map *modmta_map_open_host(const json_t *spec, const modmta_host *host,
                                 const char *json_path, modmta_err *err_r);
/* 1 found (*value_r malloc'ed, free with modmta_free), 0 not found,
 * <0 error. value_r may be NULL to test membership only. */
int modmta_map_lookup(modmta_map *m, const char *key, char **value_r);
/* 1 when the map's values come from a store shared over the network
 * (redis:), which whoever can reach Redis may write (ABI 1.4): never let
 * such a value name a command, a file or an include (alias defers the
 * recipient). 0 for the files, inline maps and modules' backends. */
int modmta_map_is_shared(const modmta_map *m);
/* "file:/etc/modmta/access", "inline", ... for logs. */
const char *modmta_map_name(const modmta_map *m);
void modmta_map_close(modmta_map *m);

/* ---- backends ----
 * A backend opens "TYPE:ARG" strings. Register before the config is read
 * (a module's load()). Returns 0, or MODMTA_E_INVAL on a duplicate type. */
typedef struct modmta_map_backend {
    const char *type; /* "file", "cidr", "redis" */
    /* Return the backend's state, or NULL with err_r filled. */
    void *(*open)(const char *arg, const char *json_path, modmta_err *err_r);
    int (*lookup)(void *state, const char *key, char **value_r);
    void (*close)(void *state);
} modmta_map_backend;

int modmta_map_register(const modmta_map_backend *backend);

/* Split a list value as aliases(5) writes it ("a, b, \"|cmd x, y\"") into
 * its items: commas and white space separate them, double quotes protect
 * both (inside them a backslash escapes the next octet), empty items are
 * dropped. Quotes that wrap a whole item are removed with their escapes
 * ("|cmd x, y"); quotes around a part only are kept as written
 * ("\"john smith\"@example.org" stays so: an address's quoted local
 * part). The "aliases:PATH" backend returns its values in this form.
 * Returns a NULL-terminated list (free it with
 * modmta_strlist_free), or NULL with err_r filled (unbalanced quote). */
char **modmta_map_list_split(const char *value, modmta_err *err_r);

#ifdef __cplusplus
}
#endif

#endif
