/*
 * The "file:" map backend: a Postfix-style "key value" text table held
 * in a hash table, re-read when the file changes. The logical-line reader
 * here is shared with the cidr backend.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <modmta/log.h>
#include <modmta/map.h>

#include "map_priv.h"

/* What tells us the file changed. */
struct map_file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct map_file {
    char *path;
    pthread_rwlock_t lock;      /* guards table */
    map_table *table;
    pthread_mutex_t check_lock; /* one thread at a time checks the file */
    time_t checked;             /* monotonic second of the last stat() */
    struct map_file_id id;      /* the file last parsed (even if it failed) */
    int stat_failed;            /* last stat() failed (logged once) */
};

/* A growing buffer holding one logical line. */
struct map_file_buf {
    char *s;
    size_t len, cap;
};

static void *map_file_open(const char *arg, const char *json_path,
                           modmta_err *err_r);
static int map_file_lookup(void *state, const char *key, char **value_r);
static void map_file_close(void *state);

const modmta_map_backend map_file_backend = {
    .type = "file",
    .open = map_file_open,
    .lookup = map_file_lookup,
    .close = map_file_close,
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
map_file_read(const char *path, const char *json_path, map_file_entry_fn fn,
              void *arg, modmta_err *err_r)
{
    struct map_file_reader r = {.fn = fn, .arg = arg};
    unsigned lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *f;
    int rc = 0;

    if ((f = fopen(path, "re")) == NULL) {
        modmta_err_set(err_r, json_path, "%s: %s", path, strerror(errno));
        return MODMTA_E_IO;
    }
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
    if (rc == 0 && ferror(f)) {
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
    fclose(f);
    return rc;
}

/* ---- the file: backend ---- */

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
map_file_entries(const char *path, const char *json_path,
                 map_file_entry_fn fn, void *arg, modmta_err *err_r)
{
    struct map_file_checker c = {fn, arg};

    return map_file_read(path, json_path, map_file_check, &c, err_r);
}

static time_t
map_file_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void
map_file_id_of(const struct stat *st, struct map_file_id *id)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
}

static int
map_file_id_equal(const struct map_file_id *a, const struct map_file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void
map_file_free(struct map_file *mf)
{
    map_table_free(mf->table);
    free(mf->path);
    free(mf);
}

static void *
map_file_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    struct map_file *mf;
    struct stat st;

    if (arg[0] == '\0') {
        modmta_err_set(err_r, json_path, "file: map without a path");
        return NULL;
    }
    if ((mf = calloc(1, sizeof(*mf))) == NULL ||
        (mf->path = strdup(arg)) == NULL) {
        free(mf);
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    /* stat() before reading: a change during the read is seen later. */
    if (stat(arg, &st) == 0)
        map_file_id_of(&st, &mf->id);
    mf->table = map_table_load(map_file_entries, "file", arg, json_path,
                               err_r);
    if (mf->table == NULL) {
        map_file_free(mf);
        return NULL;
    }
    mf->checked = map_file_now();
    pthread_rwlock_init(&mf->lock, NULL);
    pthread_mutex_init(&mf->check_lock, NULL);
    return mf;
}

/* Parse the changed file and swap it in; on failure keep the old one. */
static void
map_file_reload(struct map_file *mf)
{
    modmta_err err = {"", ""};
    map_table *t, *old;

    t = map_table_load(map_file_entries, "file", mf->path, NULL, &err);
    if (t == NULL) {
        modmta_logf(MODMTA_LOG_WARN,
                    "map file:%s: reload failed, keeping the previous "
                    "table: %s", mf->path, err.msg);
        return;
    }
    pthread_rwlock_wrlock(&mf->lock);
    old = mf->table;
    mf->table = t;
    pthread_rwlock_unlock(&mf->lock);
    map_table_free(old);
    modmta_logf(MODMTA_LOG_INFO, "map file:%s: reloaded, %zu keys",
                mf->path, map_table_count(t));
}

/* At most once per second, stat() the file and re-read it if it changed.
 * A thread finding another one checking does not wait for it. */
static void
map_file_refresh(struct map_file *mf)
{
    struct map_file_id id;
    struct stat st;
    time_t now = map_file_now();

    if (pthread_mutex_trylock(&mf->check_lock) != 0)
        return;
    if (now - mf->checked >= 1) {
        mf->checked = now;
        if (stat(mf->path, &st) < 0) {
            if (!mf->stat_failed)
                modmta_logf(MODMTA_LOG_WARN,
                            "map file:%s: %s, keeping the previous table",
                            mf->path, strerror(errno));
            mf->stat_failed = 1;
        } else {
            mf->stat_failed = 0;
            map_file_id_of(&st, &id);
            if (!map_file_id_equal(&id, &mf->id)) {
                mf->id = id;
                map_file_reload(mf);
            }
        }
    }
    pthread_mutex_unlock(&mf->check_lock);
}

static int
map_file_lookup(void *state, const char *key, char **value_r)
{
    struct map_file *mf = state;
    const char *v;
    int rc = 1;

    map_file_refresh(mf);
    pthread_rwlock_rdlock(&mf->lock);
    v = map_table_get(mf->table, key);
    if (v == NULL)
        rc = 0;
    else if (value_r != NULL && (*value_r = strdup(v)) == NULL)
        rc = MODMTA_E_NOMEM;
    pthread_rwlock_unlock(&mf->lock);
    return rc;
}

static void
map_file_close(void *state)
{
    struct map_file *mf = state;

    pthread_rwlock_destroy(&mf->lock);
    pthread_mutex_destroy(&mf->check_lock);
    map_file_free(mf);
}
