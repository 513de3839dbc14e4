/* milter: the idle connections of one milter (milter_pool.h). */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "milter_pool.h"

struct milter_idle {
    struct milter_conn conn;
    uint32_t version;
    uint32_t actions;
    uint32_t proto;
    size_t chunk;
    char *macros[MILTER_M_COUNT];
    long long since_ms;
};

static long long
milter_pool_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What is left of a release's time, at least 1 ms (a last try). */
static int
milter_pool_left(long long deadline_ms)
{
    long long left = deadline_ms - milter_pool_now();

    return left > 0 ? (int)left : 1;
}

int
milter_pool_init(struct milter_pool *pl, const struct milter_spec *spec)
{
    memset(pl, 0, sizeof(*pl));
    pl->idle = calloc((size_t)spec->pool_size, sizeof(*pl->idle));
    if (pl->idle == NULL)
        return -1;
    pl->cap = (size_t)spec->pool_size;
    pl->idle_ms = spec->idle_ms;
    pthread_mutex_init(&pl->lock, NULL);
    return 0;
}

/* A pooled connection is closed without QUIT: libmilter ignores a QUIT
 * after QUIT_NC, and treats the end of file as the end. */
static void
milter_idle_close(struct milter_idle *e)
{
    milter_conn_close(&e->conn);
    for (size_t i = 0; i < MILTER_M_COUNT; i++)
        free(e->macros[i]);
}

/* Drop entry i, keeping the order. */
static void
milter_pool_drop(struct milter_pool *pl, size_t i)
{
    milter_idle_close(&pl->idle[i]);
    memmove(&pl->idle[i], &pl->idle[i + 1],
            (pl->n - i - 1) * sizeof(*pl->idle));
    pl->n--;
}

/* The oldest first: close those idle too long. Under the lock. */
static void
milter_pool_expire(struct milter_pool *pl, long long now)
{
    while (pl->n > 0 && now - pl->idle[0].since_ms > pl->idle_ms)
        milter_pool_drop(pl, 0);
}

void
milter_pool_free(struct milter_pool *pl)
{
    if (pl->idle == NULL)
        return;
    while (pl->n > 0)
        milter_pool_drop(pl, pl->n - 1);
    free(pl->idle);
    pl->idle = NULL;
    pthread_mutex_destroy(&pl->lock);
}

/* An idle connection says nothing: readable means the milter closed it
 * (or sent what it should not have), HUP or an error that it is gone. */
static int
milter_idle_quiet(const struct milter_conn *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};

    return poll(&pfd, 1, 0) == 0;
}

int
milter_pool_take(struct milter_pool *pl, struct milter_peer *p)
{
    struct milter_idle e;
    int found = 0;

    pthread_mutex_lock(&pl->lock);
    milter_pool_expire(pl, milter_pool_now());
    while (!found && pl->n > 0) {
        e = pl->idle[--pl->n]; /* the most recently used */
        if (milter_idle_quiet(&e.conn))
            found = 1;
        else
            milter_idle_close(&e);
    }
    pthread_mutex_unlock(&pl->lock);
    if (!found)
        return 0;
    p->conn = e.conn;
    p->version = e.version;
    p->actions = e.actions;
    p->proto = e.proto;
    p->chunk = e.chunk;
    memcpy(p->macros, e.macros, sizeof(p->macros));
    return 1;
}

/* libmilter takes QUIT_NC after an answered end of message or unknown
 * command only (elsewhere it ignores it, and then the next CONNECT):
 * the peer is "at rest" there, with nothing queued or unread. QUIT_NC
 * is protocol version 6. */
static int
milter_peer_at_rest(const struct milter_peer *p)
{
    return p->at_rest && !p->in_txn && !p->failed && p->conn.fd >= 0 &&
           p->version >= 6 && p->conn.out.len == 0 &&
           p->conn.in_pos == p->conn.in_len;
}

enum { SETTLE_REFUSED = -1, SETTLE_LATE = -2 };

/* Elsewhere — a session without a message, a message the milter
 * accepted (ACCEPT sends libmilter back to HELO) or rejected, one that
 * was aborted or never reached its end of message here — an unknown
 * command brings libmilter to rest: it takes one from each of those
 * states (after an ABORT, which a transaction still open gets first, as
 * with QUIT). Sent only to a milter that asked for none (NOUNKNOWN:
 * what libmilter announces for a filter without an unknown callback, so
 * libmilter answers it itself) and that replies to them; the connection
 * is kept only on that CONTINUE. 1 when p is at rest, 0 when it may not
 * be brought there (or the connection failed: closed), SETTLE_REFUSED
 * when it answered other than CONTINUE, SETTLE_LATE when no answer came
 * by the deadline (progress replies until then included). */
static int
milter_peer_settle(struct milter_peer *p, long long deadline_ms)
{
    int r;

    if (p->at_rest && !p->in_txn)
        return 1;
    if (p->failed || p->conn.fd < 0 || p->version < 6 ||
        !(p->proto & MILTER_P_NOUNKNOWN) || (p->proto & MILTER_P_NR_UNKN) ||
        p->conn.in_pos != p->conn.in_len) /* unread: a reply is owed */
        return 0;
    if (p->in_txn && milter_pkt_empty(&p->conn.out, MILTER_C_ABORT) < 0)
        return 0;
    p->in_txn = 0;
    if (milter_pkt_begin(&p->conn.out, MILTER_C_UNKNOWN) < 0 ||
        milter_pkt_str(&p->conn.out, "QUIT") < 0)
        return 0;
    milter_pkt_end(&p->conn.out);
    if (milter_conn_flush(&p->conn, milter_pool_left(deadline_ms)) < 0) {
        milter_peer_close(p); /* part written: no QUIT after it */
        return 0;
    }
    do
        r = milter_conn_read(&p->conn, milter_pool_left(deadline_ms));
    while (r == 0 && p->conn.code == MILTER_R_PROGRESS &&
           milter_pool_now() < deadline_ms);
    if (r < 0)
        return r == MODMTA_E_TIMEOUT ? SETTLE_LATE : 0;
    if (p->conn.code == MILTER_R_PROGRESS)
        return SETTLE_LATE;
    p->at_rest = p->conn.code == MILTER_R_CONTINUE;
    return p->at_rest ? 1 : SETTLE_REFUSED;
}

/* milter_peer_settle, unless it is off for this milter (milter_pool.h):
 * after a refusal, or MILTER_SETTLE_LATE_MAX answers in a row that did
 * not come in time (those of sessions ending at the same moment, all
 * waiting out one stall, count once: only a wait that began after the
 * last late one was seen counts). Not tried with less than
 * MILTER_SETTLE_MIN_MS of the release left (another milter of the
 * session used it up): no answer could be expected, none is held
 * against it. 1 when p is at rest. */
static int
milter_pool_settle(struct milter_pool *pl, struct milter_peer *p,
                   long long deadline_ms)
{
    long long began;
    int off, r;

    if (p->at_rest && !p->in_txn)
        return 1; /* pooled as it is, off or not */
    began = milter_pool_now();
    pthread_mutex_lock(&pl->lock);
    off = began < pl->settle_off_until;
    pthread_mutex_unlock(&pl->lock);
    if (off || deadline_ms - began < MILTER_SETTLE_MIN_MS)
        return 0;
    r = milter_peer_settle(p, deadline_ms);
    pthread_mutex_lock(&pl->lock);
    if (r == 1) {
        pl->settle_late = 0;
    } else if (r == SETTLE_LATE && began >= pl->settle_late_at) {
        pl->settle_late++;
        pl->settle_late_at = milter_pool_now();
    }
    if (r == SETTLE_REFUSED || pl->settle_late >= MILTER_SETTLE_LATE_MAX) {
        pl->settle_off_until = milter_pool_now() + MILTER_SETTLE_OFF_MS;
        pl->settle_late = 0;
    }
    pthread_mutex_unlock(&pl->lock);
    return r > 0;
}

long long
milter_pool_deadline(int timeout_ms)
{
    return milter_pool_now() + timeout_ms;
}

void
milter_pool_release(struct milter_pool *pl, struct milter_peer *p,
                    long long deadline)
{
    struct milter_idle e = {0};

    if (pl == NULL || !milter_pool_settle(pl, p, deadline) ||
        !milter_peer_at_rest(p)) {
        milter_peer_quit(p, milter_pool_left(deadline));
        return;
    }
    if (milter_pkt_empty(&p->conn.out, MILTER_C_QUIT_NC) < 0 ||
        milter_conn_flush(&p->conn, milter_pool_left(deadline)) < 0) {
        milter_peer_close(p);
        return;
    }
    e.conn = p->conn;
    e.version = p->version;
    e.actions = p->actions;
    e.proto = p->proto;
    e.chunk = p->chunk;
    memcpy(e.macros, p->macros, sizeof(e.macros));
    memset(p->macros, 0, sizeof(p->macros));
    memset(&p->conn, 0, sizeof(p->conn));
    p->conn.fd = -1;
    pthread_mutex_lock(&pl->lock);
    e.since_ms = milter_pool_now();
    milter_pool_expire(pl, e.since_ms);
    if (pl->n == pl->cap)
        milter_pool_drop(pl, 0); /* the oldest makes room */
    pl->idle[pl->n++] = e;
    pthread_mutex_unlock(&pl->lock);
}
