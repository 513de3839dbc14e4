/*
 * Tables read from a file and read again when it changes (see
 * modmta/reload.h).
 *
 * Generations: the current table and every replaced one still held are
 * counted under r->lock, which is only ever held for a few instructions;
 * the file is looked at and loaded under r->check_lock, which readers
 * never wait for (trylock), so a slow load delays nobody but the thread
 * doing it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <modmta/log.h>
#include <modmta/reload.h>

#include "file_open_priv.h"
#include "reload_priv.h"

/* What tells us the file changed. */
struct reload_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct reload_gen {
    void *table;
    unsigned long refs;        /* acquired, not yet released */
    struct reload_gen *next;   /* on r->old */
};

struct modmta_reload {
    char *path;
    modmta_reload_load_fn load;
    modmta_reload_free_fn free_fn;
    void *arg;
    modmta_reload_clock_fn clock;
    void *clock_arg;
    pthread_mutex_t lock;       /* guards cur, old and the refs */
    struct reload_gen *cur;
    struct reload_gen *old;     /* replaced, still held */
    pthread_mutex_t check_lock; /* one thread looks at the file */
    atomic_llong checked;       /* clock of the last look */
    struct reload_id id;        /* the version last loaded or tried */
    int stat_failed;            /* the last stat() failed (logged) */
};

static pthread_mutex_t reload_clock_lock = PTHREAD_MUTEX_INITIALIZER;
static modmta_reload_clock_fn reload_clock_fn;
static void *reload_clock_arg;

static long long
reload_monotonic(void *arg)
{
    struct timespec ts;

    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
modmta_reload_set_clock(modmta_reload_clock_fn now_ms, void *arg)
{
    pthread_mutex_lock(&reload_clock_lock);
    reload_clock_fn = now_ms;
    reload_clock_arg = arg;
    pthread_mutex_unlock(&reload_clock_lock);
}

static void
reload_id_of(const struct stat *st, struct reload_id *id)
{
    memset(id, 0, sizeof(*id));
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
    id->ctime = st->st_ctim;
}

static int
reload_id_equal(const struct reload_id *a, const struct reload_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size
           && a->mtime.tv_sec == b->mtime.tv_sec
           && a->mtime.tv_nsec == b->mtime.tv_nsec
           && a->ctime.tv_sec == b->ctime.tv_sec
           && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Open and load the file: a new table, its version in *id_r (set even
 * when the load fails, when the file could be opened). NULL with err_r
 * filled, its path json_path. */
static void *
reload_read(modmta_reload *r, struct reload_id *id_r, const char *json_path,
            modmta_err *err_r)
{
    struct stat st;
    void *table = NULL;
    FILE *f = NULL;
    int fd;

    err_r->msg[0] = '\0';
    /* a descriptor stream: a module's load() may use fileno() (1.x) */
    fd = file_open_fd(r->path, MODMTA_RELOAD_SIZE_MAX, &st, err_r);
    if (fd >= 0 && (f = fdopen(fd, "re")) == NULL) {
        modmta_err_set(err_r, NULL, "%s: %s", r->path, strerror(errno));
        close(fd);
    }
    if (f != NULL) {
        reload_id_of(&st, id_r);
        table = r->load(f, r->path, r->arg, err_r);
        if (table != NULL && ftello(f) > MODMTA_RELOAD_SIZE_MAX) {
            /* it grew past the cap while it was read: not a table */
            r->free_fn(table);
            table = NULL;
            modmta_err_set(err_r, NULL, "%s: %s", r->path, strerror(EFBIG));
        }
        fclose(f);
        if (table == NULL && err_r->msg[0] == '\0')
            modmta_err_set(err_r, NULL, "%s: cannot be loaded", r->path);
    }
    snprintf(err_r->path, sizeof(err_r->path), "%s",
             json_path != NULL ? json_path : "");
    return table;
}

static struct reload_gen *
reload_gen_new(void *table)
{
    struct reload_gen *g = calloc(1, sizeof(*g));

    if (g != NULL)
        g->table = table;
    return g;
}

static void
reload_gen_free(modmta_reload *r, struct reload_gen *g)
{
    r->free_fn(g->table);
    free(g);
}

modmta_reload *
modmta_reload_open(const char *path, modmta_reload_load_fn load,
                   modmta_reload_free_fn free_fn, void *arg,
                   const char *json_path, modmta_err *err_r)
{
    modmta_reload *r = calloc(1, sizeof(*r));
    modmta_err err = {"", ""};
    void *table;

    if (r == NULL || (r->path = strdup(path)) == NULL) {
        free(r);
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    r->load = load;
    r->free_fn = free_fn;
    r->arg = arg;
    pthread_mutex_lock(&reload_clock_lock);
    r->clock = reload_clock_fn != NULL ? reload_clock_fn : reload_monotonic;
    r->clock_arg = reload_clock_arg;
    pthread_mutex_unlock(&reload_clock_lock);
    if ((table = reload_read(r, &r->id, json_path, &err)) == NULL
        || (r->cur = reload_gen_new(table)) == NULL) {
        if (table != NULL) {
            free_fn(table);
            modmta_err_set(&err, json_path, "out of memory");
        }
        modmta_err_set(err_r, err.path, "%s", err.msg);
        free(r->path);
        free(r);
        return NULL;
    }
    atomic_init(&r->checked, r->clock(r->clock_arg));
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->check_lock, NULL);
    return r;
}

/* Make table the current one; the replaced one goes when released. */
static int
reload_swap(modmta_reload *r, void *table)
{
    struct reload_gen *g = reload_gen_new(table), *was;

    if (g == NULL)
        return MODMTA_E_NOMEM;
    pthread_mutex_lock(&r->lock);
    was = r->cur;
    r->cur = g;
    if (was->refs > 0) {
        was->next = r->old;
        r->old = was;
        was = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    if (was != NULL)
        reload_gen_free(r, was);
    return 0;
}

/* With check_lock held: load the file if it changed. */
static void
reload_check(modmta_reload *r)
{
    modmta_err err = {"", ""};
    struct reload_id id;
    struct stat st;
    void *table;

    if (stat(r->path, &st) < 0) {
        if (!r->stat_failed)
            modmta_logf(MODMTA_LOG_WARN, "reload file=%s error=\"%s\": "
                        "keeping the previous table", r->path,
                        strerror(errno));
        r->stat_failed = 1;
        return;
    }
    r->stat_failed = 0;
    reload_id_of(&st, &id);
    if (reload_id_equal(&id, &r->id))
        return;
    r->id = id; /* this version is tried once, loaded or not */
    table = reload_read(r, &r->id, NULL, &err);
    if (table != NULL && reload_swap(r, table) < 0) {
        r->free_fn(table);
        table = NULL;
        modmta_err_set(&err, NULL, "out of memory");
    }
    if (table == NULL)
        modmta_logf(MODMTA_LOG_WARN, "reload failed file=%s error=\"%s\": "
                    "keeping the previous table", r->path, err.msg);
    else
        modmta_logf(MODMTA_LOG_INFO, "reloaded file=%s", r->path);
}

/* Look at the file if that is due, unless another thread is at it. */
static void
reload_refresh(modmta_reload *r)
{
    long long now = r->clock(r->clock_arg);

    if (now - atomic_load(&r->checked) < MODMTA_RELOAD_INTERVAL_MS
        || pthread_mutex_trylock(&r->check_lock) != 0)
        return;
    if (now - atomic_load(&r->checked) >= MODMTA_RELOAD_INTERVAL_MS) {
        atomic_store(&r->checked, now);
        reload_check(r);
    }
    pthread_mutex_unlock(&r->check_lock);
}

void *
modmta_reload_acquire(modmta_reload *r)
{
    void *table;

    reload_refresh(r);
    pthread_mutex_lock(&r->lock);
    r->cur->refs++;
    table = r->cur->table;
    pthread_mutex_unlock(&r->lock);
    return table;
}

void
modmta_reload_release(modmta_reload *r, void *table)
{
    struct reload_gen *g = NULL, **p;

    pthread_mutex_lock(&r->lock);
    if (r->cur->table == table) {
        if (r->cur->refs > 0)
            r->cur->refs--;
    } else {
        for (p = &r->old; *p != NULL && (*p)->table != table;
             p = &(*p)->next)
            ;
        if ((g = *p) != NULL && --g->refs == 0)
            *p = g->next;
        else
            g = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    if (g != NULL)
        reload_gen_free(r, g);
}

const char *
modmta_reload_path(const modmta_reload *r)
{
    return r->path;
}

void
modmta_reload_close(modmta_reload *r)
{
    struct reload_gen *g, *next;

    if (r == NULL)
        return;
    for (g = r->old; g != NULL; g = next) {
        next = g->next;
        reload_gen_free(r, g);
    }
    reload_gen_free(r, r->cur);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->check_lock);
    free(r->path);
    free(r);
}
