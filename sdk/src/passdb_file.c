/*
 * passdb "file:PATH": "user:{SCHEME}hash" lines.
 *
 *   # comment
 *   alice:{CRYPT}$y$j9T$...
 *   bob:{PLAIN}secret        (tests only: the password in clear)
 *
 * A bare crypt hash ("alice:$6$...") is taken as {CRYPT}. User names are
 * compared exactly. The table is re-read when the file's identity (inode,
 * size, mtime) changes; a re-read that fails keeps the old table and logs
 * the error. Secrets are parsed and checked by passdb_scheme.c.
 *
 * An unknown user costs what a known one does: verify runs crypt_r
 * against a dummy hash made at open ($y$ when the file has $y$ entries,
 * else $6$), so the response time does not tell which users exist.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <modmta/log.h>
#include <modmta/passdb.h>

#include "passdb_priv.h"

struct passdb_entry {
    char *user;
    char *secret;              /* the hash, or the clear text */
    enum passdb_scheme scheme;
};

struct passdb_table {
    struct passdb_entry *e;    /* sorted by user */
    size_t n, cap;
};

struct passdb_file {
    char *path;
    pthread_mutex_t lock;      /* guards table and the file identity */
    struct passdb_table *table;
    struct stat id;
    char *dummy;               /* a valid hash of the default method */
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
passdb_table_free(struct passdb_table *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->n; i++) {
        free(t->e[i].user);
        modmta_passdb_secret_free(t->e[i].secret);
    }
    free(t->e);
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

/* Read the whole file; NULL with err_r "PATH:LINE: message". */
static struct passdb_table *
passdb_file_load(const char *path, const char *json_path, struct stat *st_r,
                 modmta_err *err_r)
{
    struct passdb_table *t = calloc(1, sizeof(*t));
    FILE *f = fopen(path, "re");
    char *line = NULL;
    const char *why = NULL, *dup;
    size_t cap = 0;
    unsigned lineno = 0;
    ssize_t len;

    if (t == NULL || f == NULL) {
        modmta_err_set(err_r, json_path, "%s: %s", path,
                       t == NULL ? "out of memory" : strerror(errno));
        goto fail;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if (passdb_table_add(t, line, &why) < 0) {
            modmta_err_set(err_r, json_path, "%s:%u: %s", path, lineno, why);
            goto fail;
        }
    }
    if (ferror(f) || fstat(fileno(f), st_r) < 0) {
        modmta_err_set(err_r, json_path, "%s: %s", path, strerror(errno));
        goto fail;
    }
    qsort(t->e, t->n, sizeof(*t->e), passdb_entry_cmp);
    if (passdb_table_dup_check(t, &dup) < 0) {
        modmta_err_set(err_r, json_path, "%s: user \"%s\" listed twice",
                       path, dup);
        goto fail;
    }
    if (line != NULL)
        memset(line, 0, cap);
    free(line);
    fclose(f);
    return t;
fail:
    if (line != NULL)
        memset(line, 0, cap);
    free(line);
    if (f != NULL)
        fclose(f);
    passdb_table_free(t);
    return NULL;
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

static void *
passdb_file_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    struct passdb_file *pf = calloc(1, sizeof(*pf));

    if (pf == NULL || (pf->path = strdup(arg)) == NULL) {
        free(pf);
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    pf->table = passdb_file_load(arg, json_path, &pf->id, err_r);
    if (pf->table != NULL) {
        pf->dummy = passdb_file_dummy(pf->table);
        if (pf->dummy == NULL)
            modmta_err_set(err_r, json_path, "%s: cannot make the dummy "
                           "hash", arg);
    }
    if (pf->dummy == NULL) {
        passdb_table_free(pf->table);
        free(pf->path);
        free(pf);
        return NULL;
    }
    pthread_mutex_init(&pf->lock, NULL);
    return pf;
}

/* With pf->lock held: re-read the file if it changed. */
static void
passdb_file_refresh(struct passdb_file *pf)
{
    struct passdb_table *t;
    struct stat st;
    modmta_err err;

    if (stat(pf->path, &st) < 0 || (st.st_ino == pf->id.st_ino
        && st.st_dev == pf->id.st_dev && st.st_size == pf->id.st_size
        && st.st_mtim.tv_sec == pf->id.st_mtim.tv_sec
        && st.st_mtim.tv_nsec == pf->id.st_mtim.tv_nsec))
        return; /* unchanged, or gone: keep what we have */
    t = passdb_file_load(pf->path, "", &st, &err);
    if (t == NULL) {
        modmta_logf(MODMTA_LOG_WARN, "passdb: keeping the old table: %s",
                    err.msg);
        pf->id = st; /* log once per change */
        return;
    }
    passdb_table_free(pf->table);
    pf->table = t;
    pf->id = st;
}

/* With pf->lock held. */
static const struct passdb_entry *
passdb_file_find(struct passdb_file *pf, const char *user)
{
    struct passdb_entry key = {.user = (char *)user};

    passdb_file_refresh(pf);
    return bsearch(&key, pf->table->e, pf->table->n, sizeof(key),
                   passdb_entry_cmp);
}

static int
passdb_file_verify(void *state, const char *user, const char *password,
                   size_t len)
{
    struct passdb_file *pf = state;
    const struct passdb_entry *e;
    enum passdb_scheme scheme = PASSDB_CRYPT;
    char *secret = NULL;
    int rc;

    pthread_mutex_lock(&pf->lock);
    e = passdb_file_find(pf, user);
    if (e != NULL) {
        scheme = e->scheme;
        secret = strdup(e->secret);
    }
    pthread_mutex_unlock(&pf->lock);
    if (e == NULL)
        return passdb_dummy_check(pf->dummy, password);
    if (secret == NULL)
        return MODMTA_E_TEMP;
    /* crypt_r is slow on purpose: run it without the lock */
    rc = passdb_secret_check(scheme, secret, password, len);
    modmta_passdb_secret_free(secret);
    return rc;
}

static int
passdb_file_secret(void *state, const char *user, char **secret_r)
{
    struct passdb_file *pf = state;
    const struct passdb_entry *e;
    int rc = 0;

    pthread_mutex_lock(&pf->lock);
    e = passdb_file_find(pf, user);
    if (e != NULL && e->scheme == PASSDB_PLAIN) {
        *secret_r = strdup(e->secret);
        rc = *secret_r != NULL ? 1 : MODMTA_E_TEMP;
    }
    pthread_mutex_unlock(&pf->lock);
    return rc;
}

static void
passdb_file_close(void *state)
{
    struct passdb_file *pf = state;

    passdb_table_free(pf->table);
    pthread_mutex_destroy(&pf->lock);
    free(pf->dummy);
    free(pf->path);
    free(pf);
}
