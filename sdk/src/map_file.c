/*
 * The "file:" map backend: a Postfix-style "key value" text table held
 * in a hash table, re-read when the file changes (modmta/reload.h). The
 * logical-line reader here is shared with the cidr and aliases backends,
 * and so is the reloading table (map_file_table_*), with aliases.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/map.h>
#include <modmta/reload.h>

#include "map_priv.h"

/* A growing buffer holding one logical line. */
struct map_file_buf {
    char *s;
    size_t len, cap;
};

static void *map_file_open(const char *arg, const char *json_path,
                           modmta_err *err_r);

const modmta_map_backend map_file_backend = {
    .type = "file",
    .open = map_file_open,
    .lookup = map_file_table_lookup,
    .close = map_file_table_close,
};

/* ---- the logical-line reader ---- */

static int
map_file_buf_add(struct map_file_buf *b, const char *sep, const char *s)
{
    size_t n = strlen(sep) + strlen(s);
    char *p;

    if (b->len + n + 1 > b->cap) {
        p = realloc(b->s, b->len + n + 64);
        if (p == NULL)
            return MODMTA_E_NOMEM;
        b->s = p;
        b->cap = b->len + n + 64;
    }
    b->len += (size_t)sprintf(b->s + b->len, "%s%s", sep, s);
    return 0;
}

static int
map_file_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

/* Split a logical line at its first whitespace and hand it over. */
static int
map_file_emit(char *line, map_file_entry_fn fn, void *arg, unsigned lineno,
              modmta_err *err_r)
{
    char *value = line;

    while (*value != '\0' && !map_file_is_space(*value))
        value++;
    if (*value != '\0')
        *value++ = '\0';
    while (map_file_is_space(*value))
        value++;
    return fn(arg, line, value, lineno, err_r);
}

/* Parsing state of one text table. */
struct map_file_reader {
    struct map_file_buf b;     /* the pending logical line */
    unsigned start;            /* its first physical line, 0: none */
    unsigned errline;          /* the line an error is about */
    map_file_entry_fn fn;
    void *arg;
    modmta_err msg;
};

static int
map_file_add(struct map_file_reader *r, const char *sep, const char *s,
             unsigned lineno)
{
    if (map_file_buf_add(&r->b, sep, s) == 0)
        return 0;
    r->errline = lineno;
    modmta_err_set(&r->msg, NULL, "out of memory");
    return MODMTA_E_NOMEM;
}

/* Hand the pending logical line, if any, to the callback. */
static int
map_file_flush(struct map_file_reader *r)
{
    int rc;

    if (r->start == 0)
        return 0;
    rc = map_file_emit(r->b.s, r->fn, r->arg, r->start, &r->msg);
    if (rc < 0)
        r->errline = r->start;
    r->start = 0;
    r->b.len = 0;
    return rc;
}

/* One physical line, right-trimmed. */
static int
map_file_feed(struct map_file_reader *r, const char *line, unsigned lineno)
{
    const char *p = line;
    int rc;

    while (map_file_is_space(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    if (p != line) {
        if (r->start == 0) {
            r->errline = lineno;
            modmta_err_set(&r->msg, NULL,
                           "continuation line without a preceding key");
            return MODMTA_E_CONFIG;
        }
        return map_file_add(r, " ", p, lineno);
    }
    if ((rc = map_file_flush(r)) < 0)
        return rc;
    r->start = lineno;
    return map_file_add(r, "", p, lineno);
}

int
map_file_read(FILE *f, const char *path, const char *json_path,
              map_file_entry_fn fn, void *arg, modmta_err *err_r)
{
    struct map_file_reader r = {.fn = fn, .arg = arg};
    unsigned lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;

    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)len) != NULL) {
            r.errline = lineno;
            modmta_err_set(&r.msg, NULL, "line contains a NUL octet");
            rc = MODMTA_E_CONFIG;
            break;
        }
        while (len > 0 && map_file_is_space(line[len - 1]))
            line[--len] = '\0';
        rc = map_file_feed(&r, line, lineno);
    }
    /* getline() failing for want of memory sets no error flag: short of
     * the end is an error too, not a shorter file */
    if (rc == 0 && (ferror(f) || !feof(f))) {
        modmta_err_set(err_r, json_path, "%s: %s", path, strerror(errno));
        rc = MODMTA_E_IO;
    } else {
        if (rc == 0)
            rc = map_file_flush(&r);
        if (rc < 0)
            modmta_err_set(err_r, json_path, "%s:%u: %s", path, r.errline,
                           r.msg.msg);
    }
    free(line);
    free(r.b.s);
    return rc;
}

/* Where map_file_entries() hands each entry. */
struct map_file_checker {
    map_file_entry_fn fn;
    void *arg;
};

/* The format's rule: every key has a value. */
static int
map_file_check(void *arg, const char *key, const char *value,
               unsigned lineno, modmta_err *err_r)
{
    const struct map_file_checker *c = arg;

    if (value[0] == '\0') {
        modmta_err_set(err_r, NULL, "key \"%s\" has no value", key);
        return MODMTA_E_CONFIG;
    }
    return c->fn(c->arg, key, value, lineno, err_r);
}

int
map_file_entries(FILE *f, const char *path, const char *json_path,
                 map_file_entry_fn fn, void *arg, modmta_err *err_r)
{
    struct map_file_checker c = {fn, arg};

    return map_file_read(f, path, json_path, map_file_check, &c, err_r);
}

/* ---- tables re-read on change: file: and aliases: ---- */

static void *
map_file_table_load(FILE *f, const char *path, void *arg, modmta_err *err_r)
{
    const struct map_file_format *fmt = arg;

    return map_table_load(fmt->reader, fmt->type, f, path, NULL, err_r);
}

static void
map_file_table_free(void *table)
{
    map_table_free(table);
}

void *
map_file_table_open(const struct map_file_format *fmt, const char *arg,
                    const char *json_path, modmta_err *err_r)
{
    if (arg[0] == '\0') {
        modmta_err_set(err_r, json_path, "%s: map without a path",
                       fmt->type);
        return NULL;
    }
    return modmta_reload_open(arg, map_file_table_load, map_file_table_free,
                              (void *)fmt, json_path, err_r);
}

int
map_file_table_lookup(void *state, const char *key, char **value_r)
{
    modmta_reload *r = state;
    map_table *t = modmta_reload_acquire(r);
    const char *v = map_table_get(t, key);
    int rc = 1;

    if (v == NULL)
        rc = 0;
    else if (value_r != NULL && (*value_r = strdup(v)) == NULL)
        rc = MODMTA_E_NOMEM;
    modmta_reload_release(r, t);
    return rc;
}

void
map_file_table_close(void *state)
{
    modmta_reload_close(state);
}

/* ---- the file: backend ---- */

static const struct map_file_format map_file_format = {
    "file", map_file_entries,
};

static void *
map_file_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    return map_file_table_open(&map_file_format, arg, json_path, err_r);
}
