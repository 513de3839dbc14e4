/*
 * Declarative validation of a module's JSON section (nginx's slots).
 *
 * Pointer fields (STRING, STRLIST, MAP, JSON) must hold NULL or memory
 * the SDK may free before the call: a stored value replaces and frees the
 * previous one, and modmta_conf_free_options() frees them all. Set
 * defaults for those fields after the call ("if (c->dir == NULL) c->dir =
 * strdup(..)"). Every key is checked, every error recorded (conf_error.c);
 * on error, what the call stored is freed and its fields reset to NULL.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <modmta/conf.h>
#include <modmta/map.h>

#include "conf_priv.h"

/* The keys of a module entry that belong to the core (chain.c,
 * chain_budget.c): always allowed, never the module's. */
static const char *const conf_core_keys[] = {
    "module", "name", "hook_timeout", "on_hook_timeout", NULL
};

/* One parse: where errors go, and how many this call recorded. */
struct conf_run {
    const modmta_host *host;
    modmta_err *err_r;
    size_t nerr;
};

static void conf_fail(struct conf_run *r, const char *path, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));

static void
conf_fail(struct conf_run *r, const char *path, const char *fmt, ...)
{
    char msg[sizeof(((modmta_err *)0)->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* err_r keeps the call's first error; the host lists them all. */
    conf_error_record(r->host, r->nerr == 0 ? r->err_r : NULL, path, msg);
    r->nerr++;
}

static int
conf_is_core_key(const char *key)
{
    for (size_t i = 0; conf_core_keys[i] != NULL; i++)
        if (strcmp(conf_core_keys[i], key) == 0)
            return 1;
    return 0;
}

/* The smallest entry any SDK wrote: size, key, type and offset. */
#define CONF_ENTRY_MIN offsetof(modmta_option, flags)

/* The next entry of a sized table; NULL at its end. An entry from an
 * older SDK is shorter: *o gets its fields, the newer ones 0. A shorter
 * entry than any SDK wrote also ends it (conf_table_ok reports it). */
static const modmta_option *
conf_entry(const modmta_option *p, modmta_option *o)
{
    if (p == NULL || p->size < CONF_ENTRY_MIN || p->key == NULL)
        return NULL;
    memset(o, 0, sizeof(*o));
    memcpy(o, p, p->size < sizeof(*o) ? p->size : sizeof(*o));
    return (const modmta_option *)((const char *)p + p->size);
}

/* 1 if every entry of the table is at least CONF_ENTRY_MIN long, else
 * an error naming the module and the entry: its key would be garbage. */
static int
conf_table_ok(struct conf_run *r, const char *base, const modmta_option *p)
{
    for (size_t i = 0; p != NULL && p->size != 0; i++) {
        if (p->size < CONF_ENTRY_MIN) {
            conf_fail(r, base, "module %s: its option table's entry %zu "
                      "has size %zu, less than the %zu of any SDK "
                      "(a module bug: build its table with the "
                      "MODMTA_OPTION_* macros)",
                      r->host != NULL ? modmta_host_instance(r->host)
                                      : "(unknown)",
                      i, p->size, (size_t)CONF_ENTRY_MIN);
            return 0;
        }
        if (p->key == NULL)
            break;
        p = (const modmta_option *)((const char *)p + p->size);
    }
    return 1;
}

static int
conf_known(const modmta_option *opts, const char *key)
{
    const modmta_option *next;
    modmta_option o;

    for (; (next = conf_entry(opts, &o)) != NULL; opts = next)
        if (strcmp(o.key, key) == 0)
            return 1;
    return 0;
}

static int
conf_is_pointer(modmta_opt_type type)
{
    return type == MODMTA_OPT_STRING || type == MODMTA_OPT_STRLIST ||
           type == MODMTA_OPT_MAP || type == MODMTA_OPT_JSON;
}

/* Free what an option field holds and reset it. */
static void
conf_clear(const modmta_option *opt, void *out)
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
conf_strlist(struct conf_run *r, const json_t *v, const char *path)
{
    size_t i, n = json_array_size(v);
    const json_t *s;
    char **list, epath[330];
    int bad = 0;

    if (!json_is_array(v)) {
        conf_fail(r, path, "expected an array of strings");
        return NULL;
    }
    if ((list = calloc(n + 1, sizeof(*list))) == NULL) {
        conf_fail(r, path, "out of memory");
        return NULL;
    }
    json_array_foreach(v, i, s) {
        snprintf(epath, sizeof(epath), "%s[%zu]", path, i);
        if (!json_is_string(s)) {
            conf_fail(r, epath, "expected a string");
            bad = 1;
        } else if ((list[i] = strdup(json_string_value(s))) == NULL) {
            conf_fail(r, path, "out of memory");
            bad = 1;
            break;
        }
    }
    if (bad) {
        /* Elements after a hole are not reached by strlist_free. */
        for (i = 0; i < n; i++)
            free(list[i]);
        free(list);
        return NULL;
    }
    return list;
}

/* The index of s in names (case-insensitively with ANYCASE), or -1. */
static int
conf_name_index(const modmta_option *o, const char *s)
{
    for (int i = 0; o->names != NULL && o->names[i] != NULL; i++)
        if ((o->flags & MODMTA_OPT_ANYCASE ? strcasecmp(o->names[i], s)
                                           : strcmp(o->names[i], s)) == 0)
            return i;
    return -1;
}

/* "one of \"a\", \"b\"" into buf. */
static const char *
conf_names(const modmta_option *o, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; o->names != NULL && o->names[i] != NULL; i++) {
        int n = snprintf(buf + used, len - used, "%s\"%s\"",
                         i > 0 ? ", " : "", o->names[i]);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

static int
conf_enum(struct conf_run *r, const modmta_option *o, const json_t *v,
          const char *path, int *out)
{
    char all[300];
    int i = json_is_string(v) ? conf_name_index(o, json_string_value(v)) : -1;

    if (i < 0) {
        if (json_is_string(v))
            conf_fail(r, path, "\"%s\": expected one of %s",
                      json_string_value(v), conf_names(o, all, sizeof(all)));
        else
            conf_fail(r, path, "expected one of %s",
                      conf_names(o, all, sizeof(all)));
        return -1;
    }
    *out = i;
    return 0;
}

static int
conf_enumset(struct conf_run *r, const modmta_option *o, const json_t *v,
             const char *path, unsigned *out)
{
    char epath[330], all[300];
    const json_t *s;
    unsigned set = 0;
    size_t i;
    int k, bad = 0;

    if (!json_is_array(v)) {
        conf_fail(r, path, "expected an array of %s",
                  conf_names(o, all, sizeof(all)));
        return -1;
    }
    json_array_foreach(v, i, s) {
        snprintf(epath, sizeof(epath), "%s[%zu]", path, i);
        if (conf_enum(r, o, s, epath, &k) < 0) {
            bad = 1;
        } else if (k >= 32) {
            conf_fail(r, epath, "option has more than 32 names");
            bad = 1;
        } else {
            set |= 1u << k;
        }
    }
    if (bad)
        return -1;
    *out = set;
    return 0;
}

/* A time for messages: "90s", "15m", "500ms". */
static const char *
conf_fmt_ms(long long ms, char *buf, size_t len)
{
    static const struct { const char *unit; long long ms; } units[] = {
        {"w", 604800000LL}, {"d", 86400000LL}, {"h", 3600000LL},
        {"m", 60000LL}, {"s", 1000LL},
    };

    if (ms == 0)
        return "0s";
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (ms % units[i].ms == 0) {
            snprintf(buf, len, "%lld%s", ms / units[i].ms, units[i].unit);
            return buf;
        }
    snprintf(buf, len, "%lldms", ms);
    return buf;
}

static const char *
conf_fmt_size(long long n, char *buf, size_t len)
{
    static const char units[] = "TGMk";

    for (int i = 0; i < 4; i++) {
        long long m = 1LL << (10 * (4 - i));
        if (n != 0 && n % m == 0) {
            snprintf(buf, len, "%lld%c", n / m, units[i]);
            return buf;
        }
    }
    snprintf(buf, len, "%lld", n);
    return buf;
}

/* SECONDS, MILLISECONDS: an integer of seconds or a duration string,
 * in ms; SIZE: an integer of bytes or a size string. */
static int
conf_quantity(struct conf_run *r, const modmta_option *o, const json_t *v,
              const char *path, long long *out)
{
    int size = o->type == MODMTA_OPT_SIZE;
    int secs = o->type == MODMTA_OPT_SECONDS;
    long long n = -1, min = o->min, max = o->max;
    char a[32], b[32];

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        n = json_integer_value(v);
        if (!size)
            n = n <= LLONG_MAX / 1000 ? n * 1000 : -1;
    } else if (json_is_string(v) &&
               (size ? modmta_parse_size(json_string_value(v), &n)
                     : modmta_parse_duration_ms(json_string_value(v), &n)) <
                   0) {
        n = -1;
    }
    if (n < 0) {
        conf_fail(r, path, size ? "expected a size (\"512k\", \"10M\", "
                                  "\"1G\", or an integer of bytes)"
                                : "expected a duration (\"500ms\", \"30s\", "
                                  "\"15m\", \"4h\", \"2d\", or an integer "
                                  "of seconds)");
        return -1;
    }
    if (secs) {
        if (n % 1000 != 0) {
            conf_fail(r, path, "%s is not a whole number of seconds",
                      conf_fmt_ms(n, a, sizeof(a)));
            return -1;
        }
        min = min <= LLONG_MAX / 1000 ? min * 1000 : LLONG_MAX;
        max = max <= LLONG_MAX / 1000 ? max * 1000 : LLONG_MAX;
    }
    if (n < min || n > max) {
        char c[32];
        if (size)
            conf_fail(r, path, "%s is out of range %s..%s",
                      conf_fmt_size(n, c, sizeof(c)),
                      conf_fmt_size(min, a, sizeof(a)),
                      conf_fmt_size(max, b, sizeof(b)));
        else
            conf_fail(r, path, "%s is out of range %s..%s",
                      conf_fmt_ms(n, c, sizeof(c)),
                      conf_fmt_ms(min, a, sizeof(a)),
                      conf_fmt_ms(max, b, sizeof(b)));
        return -1;
    }
    *out = secs ? n / 1000 : n;
    return 0;
}

/* Convert v for o and store it; the old value of a pointer field is
 * freed. Maps are opened with the host (redis: maps need its shared
 * state). 0, or -1 with the error recorded. */
static int
conf_store(struct conf_run *r, const modmta_option *o, const json_t *v,
           const char *path, void *out)
{
    char *field = (char *)out + o->offset;
    void *p = NULL;
    modmta_err e;
    long long n;

    switch (o->type) {
    case MODMTA_OPT_BOOL:
        if (!json_is_boolean(v)) {
            conf_fail(r, path, "expected true or false");
            return -1;
        }
        *(int *)field = json_is_true(v);
        return 0;
    case MODMTA_OPT_INT:
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            conf_fail(r, path, "expected a non-negative integer");
            return -1;
        }
        *(long long *)field = json_integer_value(v);
        return 0;
    case MODMTA_OPT_RANGE:
        if (!json_is_integer(v)) {
            conf_fail(r, path, "expected an integer from %lld to %lld",
                      o->min, o->max);
            return -1;
        }
        n = json_integer_value(v);
        if (n < o->min || n > o->max) {
            conf_fail(r, path, "%lld is out of range %lld..%lld", n, o->min,
                      o->max);
            return -1;
        }
        *(long long *)field = n;
        return 0;
    case MODMTA_OPT_ENUM:
        return conf_enum(r, o, v, path, (int *)field);
    case MODMTA_OPT_ENUMSET:
        return conf_enumset(r, o, v, path, (unsigned *)field);
    case MODMTA_OPT_SECONDS:
    case MODMTA_OPT_MILLISECONDS:
    case MODMTA_OPT_SIZE:
        return conf_quantity(r, o, v, path, (long long *)field);
    case MODMTA_OPT_STRING:
        if (!json_is_string(v)) {
            conf_fail(r, path, "expected a string");
            return -1;
        }
        if ((p = strdup(json_string_value(v))) == NULL)
            conf_fail(r, path, "out of memory");
        break;
    case MODMTA_OPT_STRLIST:
        p = conf_strlist(r, v, path);
        break;
    case MODMTA_OPT_MAP:
        memset(&e, 0, sizeof(e));
        p = modmta_map_open_host(v, r->host, path, &e);
        if (p == NULL)
            conf_fail(r, e.path[0] ? e.path : path, "%s",
                      e.msg[0] ? e.msg : "cannot open the map");
        break;
    case MODMTA_OPT_JSON:
        p = json_incref((json_t *)v);
        break;
    default:
        conf_fail(r, path, "option has an unknown type %d", (int)o->type);
        return -1;
    }
    if (p == NULL)
        return -1;
    conf_clear(o, out);
    *(void **)field = p;
    return 0;
}

static void
conf_check_keys(struct conf_run *r, const json_t *conf, const char *base,
                const modmta_option *opts)
{
    const char *key;
    const json_t *v;
    char path[300];

    json_object_foreach((json_t *)conf, key, v) {
        if (conf_is_core_key(key) || conf_known(opts, key))
            continue;
        snprintf(path, sizeof(path), "%s.%s", base, key);
        conf_fail(r, path, "unknown key");
    }
}

int
modmta_conf_parse_options(const json_t *conf, const modmta_host *host,
                          const modmta_option *opts, void *out,
                          modmta_err *err_r)
{
    struct conf_run r = {host, err_r, 0};
    const char *base = host != NULL ? modmta_host_path(host) : "$";
    const modmta_option *p, *next;
    const json_t *v;
    modmta_option o;
    char path[300];
    unsigned char *stored;
    size_t i, n = 0;

    if (!json_is_object(conf)) {
        conf_fail(&r, base, "expected an object");
        return MODMTA_E_CONFIG;
    }
    if (!conf_table_ok(&r, base, opts))
        return MODMTA_E_CONFIG;
    for (p = opts; (next = conf_entry(p, &o)) != NULL; p = next)
        n++;
    if ((stored = calloc(n + 1, 1)) == NULL) {
        conf_fail(&r, base, "out of memory");
        return MODMTA_E_CONFIG;
    }
    conf_check_keys(&r, conf, base, opts);
    for (i = 0, p = opts; (next = conf_entry(p, &o)) != NULL; p = next, i++) {
        v = json_object_get(conf, o.key);
        snprintf(path, sizeof(path), "%s.%s", base, o.key);
        if (v == NULL && (o.flags & MODMTA_OPT_REQUIRED))
            conf_fail(&r, base, "missing required key \"%s\"", o.key);
        else if (v != NULL)
            stored[i] = conf_store(&r, &o, v, path, out) == 0;
    }
    /* On error, undo what this call stored. */
    for (i = 0, p = opts; r.nerr > 0 && (next = conf_entry(p, &o)) != NULL;
         p = next, i++)
        if (stored[i] && conf_is_pointer(o.type))
            conf_clear(&o, out);
    free(stored);
    return r.nerr > 0 ? MODMTA_E_CONFIG : 0;
}

void
modmta_conf_free_options(const modmta_option *opts, void *out)
{
    const modmta_option *next;
    modmta_option o;

    if (out == NULL)
        return;
    for (; (next = conf_entry(opts, &o)) != NULL; opts = next)
        conf_clear(&o, out);
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
