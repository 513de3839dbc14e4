/*
 * The "aliases:" map backend: an aliases(5) file ("name: a, b, c",
 * continuation lines starting with white space, '#' comments, quoted
 * names), held in a hash table and re-read when the file changes, like
 * "file:" (map_file.c's reloading table). A lookup of NAME returns its
 * targets as one list, "a, b, \"|cmd x\"", that modmta_map_list_split()
 * splits again. The logical-line reader is map_file.c's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/conf.h>
#include <modmta/map.h>

#include "map_priv.h"

/* A growing string. */
struct map_aliases_buf {
    char *s;
    size_t len, cap;
};

static void *map_aliases_open(const char *arg, const char *json_path,
                              modmta_err *err_r);

const modmta_map_backend map_aliases_backend = {
    .type = "aliases",
    .open = map_aliases_open,
    .lookup = map_file_table_lookup,
    .close = map_file_table_close,
};

/* ---- lists ---- */

static int
map_aliases_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

static int
map_aliases_putc(struct map_aliases_buf *b, char c)
{
    char *p;

    if (b->len + 2 > b->cap) {
        p = realloc(b->s, b->cap * 2 + 32);
        if (p == NULL)
            return MODMTA_E_NOMEM;
        b->s = p;
        b->cap = b->cap * 2 + 32;
    }
    b->s[b->len++] = c;
    b->s[b->len] = '\0';
    return 0;
}

/* Append a copy of item to the NULL-terminated list of *n items and
 * room for *cap pointers; the room doubles (an include file of 200,000
 * addresses grown by one each time was quadratic). */
static int
map_aliases_push(char ***list, size_t *n, size_t *cap, const char *item)
{
    char **l = *list;
    size_t want = *cap < 8 ? 8 : *cap * 2;

    if (*n + 2 > *cap) {
        if (want > SIZE_MAX / sizeof(*l) ||
            (l = realloc(*list, want * sizeof(*l))) == NULL)
            return MODMTA_E_NOMEM;
        *list = l;
        *cap = want;
    }
    if ((l[*n] = strdup(item)) == NULL)
        return MODMTA_E_NOMEM;
    l[++*n] = NULL;
    return 0;
}

/* One item starting at *sp: up to an unquoted comma or white space,
 * copied as written (inside quotes a backslash escapes the next octet). */
static int
map_aliases_item(const char **sp, struct map_aliases_buf *b,
                 modmta_err *err_r)
{
    const char *s = *sp;
    int quoted = 0, rc = 0;

    b->len = 0;
    if (b->s != NULL)
        b->s[0] = '\0';
    for (; *s != '\0' && rc == 0; s++) {
        if (!quoted && (*s == ',' || map_aliases_is_space(*s)))
            break;
        if (*s == '"')
            quoted = !quoted;
        else if (quoted && *s == '\\' && s[1] != '\0')
            rc = map_aliases_putc(b, *s++);
        if (rc == 0)
            rc = map_aliases_putc(b, *s);
    }
    *sp = s;
    if (rc < 0) {
        modmta_err_set(err_r, NULL, "out of memory");
        return rc;
    }
    if (quoted) {
        modmta_err_set(err_r, NULL, "unbalanced double quote");
        return MODMTA_E_INVAL;
    }
    return 0;
}

/* An item that is one quoted string ("|cmd arg") loses its quotes and
 * escapes; quotes around a part only ("john smith"@example.org) are the
 * address's own and stay. */
static void
map_aliases_unwrap(struct map_aliases_buf *b)
{
    size_t i, n = 0;

    if (b->len < 2 || b->s[0] != '"')
        return;
    for (i = 1; i < b->len && b->s[i] != '"'; i++)
        if (b->s[i] == '\\')
            i++;
    if (i != b->len - 1)
        return;
    for (i = 1; i < b->len - 1; i++) {
        if (b->s[i] == '\\')
            i++;
        b->s[n++] = b->s[i];
    }
    b->s[n] = '\0';
    b->len = n;
}

char **
modmta_map_list_split(const char *value, modmta_err *err_r)
{
    struct map_aliases_buf b = {NULL, 0, 0};
    char **list = calloc(1, sizeof(*list));
    size_t n = 0, cap = 1;
    int rc = list == NULL ? MODMTA_E_NOMEM : 0;

    while (rc == 0 && *value != '\0') {
        if (*value == ',' || map_aliases_is_space(*value)) {
            value++;
            continue;
        }
        rc = map_aliases_item(&value, &b, err_r);
        if (rc == 0)
            map_aliases_unwrap(&b);
        if (rc == 0 && b.len > 0 && map_aliases_push(&list, &n, &cap, b.s) < 0)
            rc = MODMTA_E_NOMEM;
    }
    free(b.s);
    if (rc < 0) {
        if (rc == MODMTA_E_NOMEM)
            modmta_err_set(err_r, NULL, "out of memory");
        modmta_strlist_free(list);
        return NULL;
    }
    return list;
}

/* An item as map_aliases_item() reads it back. */
static int
map_aliases_quote(struct map_aliases_buf *b, const char *item)
{
    int rc = 0;

    if (strpbrk(item, ", \t\"") == NULL) {
        for (; *item != '\0' && rc == 0; item++)
            rc = map_aliases_putc(b, *item);
        return rc;
    }
    rc = map_aliases_putc(b, '"');
    for (; *item != '\0' && rc == 0; item++) {
        if (*item == '"' || *item == '\\')
            rc = map_aliases_putc(b, '\\');
        if (rc == 0)
            rc = map_aliases_putc(b, *item);
    }
    return rc < 0 ? rc : map_aliases_putc(b, '"');
}

/* "a, b, \"|cmd x\"": malloc'ed, NULL when out of memory. */
static char *
map_aliases_join(char *const *items)
{
    struct map_aliases_buf b = {NULL, 0, 0};
    size_t i;
    int rc = map_aliases_putc(&b, '\0');

    b.len = 0;
    for (i = 0; items[i] != NULL && rc == 0; i++) {
        if (i > 0 && (map_aliases_putc(&b, ',') < 0 ||
                      map_aliases_putc(&b, ' ') < 0))
            rc = MODMTA_E_NOMEM;
        if (rc == 0)
            rc = map_aliases_quote(&b, items[i]);
    }
    if (rc < 0) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ---- parsing ---- */

/* The name of "NAME: ..." or "\"NAME\": ..." into b; *sp is left on the
 * colon. */
static int
map_aliases_name(const char **sp, struct map_aliases_buf *b,
                 modmta_err *err_r)
{
    const char *s = *sp;

    if (*s == '"') {
        for (s++; *s != '\0' && *s != '"'; s++) {
            if (*s == '\\' && s[1] != '\0')
                s++;
            if (map_aliases_putc(b, *s) < 0) {
                modmta_err_set(err_r, NULL, "out of memory");
                return MODMTA_E_NOMEM;
            }
        }
        if (*s++ != '"') {
            modmta_err_set(err_r, NULL, "unbalanced double quote");
            return MODMTA_E_CONFIG;
        }
    } else {
        for (; *s != '\0' && *s != ':' && !map_aliases_is_space(*s); s++)
            if (map_aliases_putc(b, *s) < 0) {
                modmta_err_set(err_r, NULL, "out of memory");
                return MODMTA_E_NOMEM;
            }
    }
    while (map_aliases_is_space(*s))
        s++;
    if (*s != ':' || b->len == 0) {
        modmta_err_set(err_r, NULL,
                       "expected \"NAME: TARGET, ...\" (a name, then a "
                       "colon)");
        return MODMTA_E_CONFIG;
    }
    *sp = s;
    return 0;
}

/* Targets a parsed entry may not have. */
static int
map_aliases_check_items(const char *name, char *const *items,
                        modmta_err *err_r)
{
    size_t i;

    if (items[0] == NULL) {
        modmta_err_set(err_r, NULL, "alias \"%s\" has no targets", name);
        return MODMTA_E_CONFIG;
    }
    for (i = 0; items[i] != NULL; i++) {
        if (strcmp(items[i], ":include:") == 0) {
            modmta_err_set(err_r, NULL,
                           "alias \"%s\": \":include:\" without a path",
                           name);
            return MODMTA_E_CONFIG;
        }
        if (strncmp(items[i], ":include:", 9) == 0 && items[i][9] != '/') {
            modmta_err_set(err_r, NULL,
                           "alias \"%s\": include path \"%s\" is not "
                           "absolute", name, items[i] + 9);
            return MODMTA_E_CONFIG;
        }
    }
    return 0;
}

/* Where map_aliases_entries() hands each entry. */
struct map_aliases_reader {
    map_file_entry_fn fn;
    void *arg;
};

/* One "NAME: TARGET, ..." logical line, handed on as the name and its
 * targets as a lookup returns them. */
static int
map_aliases_line(const struct map_aliases_reader *r, const char *line,
                 unsigned lineno, modmta_err *err_r)
{
    struct map_aliases_buf name = {NULL, 0, 0};
    char **items = NULL, *value = NULL;
    const char *s = line;
    int rc;

    rc = map_aliases_name(&s, &name, err_r);
    if (rc == 0 && (items = modmta_map_list_split(s + 1, err_r)) == NULL)
        rc = MODMTA_E_CONFIG;
    if (rc == 0)
        rc = map_aliases_check_items(name.s, items, err_r);
    if (rc == 0 && (value = map_aliases_join(items)) == NULL) {
        modmta_err_set(err_r, NULL, "out of memory");
        rc = MODMTA_E_NOMEM;
    }
    if (rc == 0)
        rc = r->fn(r->arg, name.s, value, lineno, err_r);
    free(value);
    modmta_strlist_free(items);
    free(name.s);
    return rc;
}

/* map_file_read() splits at the first white space; put it back. */
static int
map_aliases_entry(void *arg, const char *key, const char *value,
                  unsigned lineno, modmta_err *err_r)
{
    char *line;
    int rc;

    if (asprintf(&line, "%s%s%s", key, value[0] != '\0' ? " " : "",
                 value) < 0) {
        modmta_err_set(err_r, NULL, "out of memory");
        return MODMTA_E_NOMEM;
    }
    rc = map_aliases_line(arg, line, lineno, err_r);
    free(line);
    return rc;
}

int
map_aliases_entries(FILE *f, const char *path, const char *json_path,
                    map_file_entry_fn fn, void *arg, modmta_err *err_r)
{
    struct map_aliases_reader r = {fn, arg};

    return map_file_read(f, path, json_path, map_aliases_entry, &r, err_r);
}

/* ---- the backend ---- */

static const struct map_file_format map_aliases_format = {
    "aliases", map_aliases_entries,
};

static void *
map_aliases_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    return map_file_table_open(&map_aliases_format, arg, json_path, err_r);
}
