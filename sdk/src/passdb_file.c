/*
 * passdb "file:PATH": "user:{SCHEME}hash" lines.
 *
 *   # comment
 *   alice:{CRYPT}$y$j9T$...
 *   bob:{PLAIN}secret        (tests only: the password in clear)
 *
 * A bare crypt hash ("alice:$6$...") is taken as {CRYPT}. User names are
 * compared exactly. The table is re-read when the file changes, by the
 * rule of modmta/reload.h (looked at at most once a second; a re-read
 * that fails keeps the old table and logs PATH:LINE). Secrets are parsed
 * and checked by passdb_scheme.c.
 *
 * An unknown user costs what a known one does: verify runs crypt_r
 * against a dummy hash made with each table ($y$ when the file has $y$
 * entries, else $6$), so the response time does not tell which users
 * exist.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/passdb.h>
#include <modmta/reload.h>

#include "passdb_priv.h"

struct passdb_entry {
    char *user;
    char *secret;              /* the hash, or the clear text */
    enum passdb_scheme scheme;
};

struct passdb_table {
    struct passdb_entry *e;    /* sorted by user */
    size_t n, cap;
    char *dummy;               /* a valid hash of the table's method */
};

static void *passdb_file_open(const char *arg, const char *json_path,
                              modmta_err *err_r);
static int passdb_file_verify(void *state, const char *user,
                              const char *password, size_t len);
static int passdb_file_secret(void *state, const char *user,
                              char **secret_r);
static void passdb_file_close(void *state);

const modmta_passdb_backend passdb_file_backend = {
    .type = "file",
    .open = passdb_file_open,
    .verify = passdb_file_verify,
    .secret = passdb_file_secret,
    .close = passdb_file_close,
};

static void
passdb_table_free(void *p)
{
    struct passdb_table *t = p;
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->n; i++) {
        free(t->e[i].user);
        modmta_passdb_secret_free(t->e[i].secret);
    }
    free(t->e);
    free(t->dummy);
    free(t);
}
static int
passdb_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct passdb_entry *)a)->user,
                  ((const struct passdb_entry *)b)->user);
}

/* Parse "user:{SCHEME}secret" into e; <0 with a message. */
static int
passdb_parse_line(char *line, struct passdb_entry *e, const char **why_r)
{
    char *colon = strchr(line, ':');
    const char *secret;

    if (colon == NULL || colon == line) {
        *why_r = "expected user:{SCHEME}secret";
        return MODMTA_E_INVAL;
    }
    *colon = '\0';
    if (passdb_secret_parse(colon + 1, &e->scheme, &secret, why_r) < 0)
        return MODMTA_E_INVAL;
    if (strpbrk(line, " \t") != NULL) {
        *why_r = "white space in the user name";
        return MODMTA_E_INVAL;
    }
    e->user = strdup(line);
    e->secret = strdup(secret);
    if (e->user == NULL || e->secret == NULL) {
        free(e->user);
        free(e->secret);
        *why_r = "out of memory";
        return MODMTA_E_NOMEM;
    }
    return 0;
}

static int
passdb_table_add(struct passdb_table *t, char *line, const char **why_r)
{
    struct passdb_entry *n;

    if (t->n == t->cap) {
        n = realloc(t->e, (t->cap * 2 + 16) * sizeof(*n));
        if (n == NULL) {
            *why_r = "out of memory";
            return MODMTA_E_NOMEM;
        }
        t->e = n;
        t->cap = t->cap * 2 + 16;
    }
    if (passdb_parse_line(line, &t->e[t->n], why_r) < 0)
        return MODMTA_E_INVAL;
    t->n++;
    return 0;
}

static int
passdb_table_dup_check(const struct passdb_table *t, const char **user_r)
{
    size_t i;

    for (i = 1; i < t->n; i++) {
        if (strcmp(t->e[i - 1].user, t->e[i].user) == 0) {
            *user_r = t->e[i].user;
            return MODMTA_E_INVAL;
        }
    }
    return 0;
}

/* The dummy hash: same method as the file's entries, so the same cost. */
static char *
passdb_file_dummy(const struct passdb_table *t)
{
    const char *prefix = "$6$";
    size_t i;

    for (i = 0; i < t->n; i++)
        if (t->e[i].scheme == PASSDB_CRYPT
            && strncmp(t->e[i].secret, "$y$", 3) == 0)
            prefix = "$y$";
    return passdb_dummy_new(prefix);
}

/* Read the whole file into a table (modmta/reload.h's load); NULL with
 * err_r "PATH:LINE: message". */
static void *
passdb_file_load(FILE *f, const char *path, void *arg, modmta_err *err_r)
{
    struct passdb_table *t = calloc(1, sizeof(*t));
    char *line = NULL;
    const char *why = NULL, *dup;
    size_t cap = 0;
    unsigned lineno = 0;
    ssize_t len;

    (void)arg;
    if (t == NULL) {
        modmta_err_set(err_r, NULL, "%s: out of memory", path);
        return NULL;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if (passdb_table_add(t, line, &why) < 0) {
            modmta_err_set(err_r, NULL, "%s:%u: %s", path, lineno, why);
            goto fail;
        }
    }
    /* getline() failing for want of memory sets no error flag: short of
     * the end is an error too, not a shorter file */
    if (ferror(f) || !feof(f)) {
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (t->n > 1) /* an empty file has no array: qsort(NULL) is UB */
        qsort(t->e, t->n, sizeof(*t->e), passdb_entry_cmp);
    if (passdb_table_dup_check(t, &dup) < 0) {
        modmta_err_set(err_r, NULL, "%s: user \"%s\" listed twice", path,
                       dup);
        goto fail;
    }
    if ((t->dummy = passdb_file_dummy(t)) == NULL) {
        modmta_err_set(err_r, NULL, "%s: cannot make the dummy hash", path);
        goto fail;
    }
    if (line != NULL)
        explicit_bzero(line, cap);
    free(line);
    return t;
fail:
    if (line != NULL)
        explicit_bzero(line, cap);
    free(line);
    passdb_table_free(t);
    return NULL;
}

static void *
passdb_file_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    return modmta_reload_open(arg, passdb_file_load, passdb_table_free, NULL,
                              json_path, err_r);
}

static const struct passdb_entry *
passdb_file_find(const struct passdb_table *t, const char *user)
{
    struct passdb_entry key = {.user = (char *)user};

    if (t->n == 0) /* an empty file has no array: bsearch(NULL) is UB */
        return NULL;
    return bsearch(&key, t->e, t->n, sizeof(key), passdb_entry_cmp);
}

static int
passdb_file_verify(void *state, const char *user, const char *password,
                   size_t len)
{
    const struct passdb_table *t = modmta_reload_acquire(state);
    const struct passdb_entry *e = passdb_file_find(t, user);
    int rc;

    /* crypt_r is slow on purpose: the table is held, no lock is */
    if (e == NULL)
        rc = passdb_dummy_check(t->dummy, password);
    else
        rc = passdb_secret_check(e->scheme, e->secret, password, len);
    modmta_reload_release(state, (void *)t);
    return rc;
}

static int
passdb_file_secret(void *state, const char *user, char **secret_r)
{
    const struct passdb_table *t = modmta_reload_acquire(state);
    const struct passdb_entry *e = passdb_file_find(t, user);
    int rc = 0;

    if (e != NULL && e->scheme == PASSDB_PLAIN) {
        *secret_r = strdup(e->secret);
        rc = *secret_r != NULL ? 1 : MODMTA_E_TEMP;
    }
    modmta_reload_release(state, (void *)t);
    return rc;
}

static void
passdb_file_close(void *state)
{
    modmta_reload_close(state);
}
