/*
 * milter: the idle connections of one milter, kept between SMTP
 * sessions when its "reuse" is on. A session that ends with the milter
 * at rest (after an answered end of message or unknown command, where
 * libmilter accepts it; an unknown command brings a milter that wants
 * none there) sends QUIT_NC and puts the connection here; the
 * next session takes it instead of connecting and negotiating again.
 * Sessions run on several threads: a mutex guards the list.
 */
#ifndef MILTER_POOL_H
#define MILTER_POOL_H

#include <pthread.h>
#include <stddef.h>

#include "milter_session.h"

struct milter_idle;

struct milter_pool {
    pthread_mutex_t lock;
    struct milter_idle *idle; /* oldest first */
    size_t n;
    size_t cap;   /* the milter's pool_size */
    int idle_ms;  /* the milter's idle_timeout */
    long long settle_off_until; /* monotonic ms: no unknown command to
                                 * bring it to rest before then */
    int settle_late; /* such commands in a row not answered in time */
    long long settle_late_at; /* monotonic ms: the last of them seen */
};

/* 0, or -1 out of memory. */
int milter_pool_init(struct milter_pool *pl, const struct milter_spec *spec);
/* Close every idle connection (the milter sees the end of file). */
void milter_pool_free(struct milter_pool *pl);
/* Give p the most recently pooled connection that is still open and
 * not past its idle time, with what was negotiated on it: 1, or 0 when
 * there is none (p unchanged). */
int milter_pool_take(struct milter_pool *pl, struct milter_peer *p);
/* The deadline (monotonic ms) timeout_ms from now, for a release. */
long long milter_pool_deadline(int timeout_ms);
/* At the end of a session, by the deadline: QUIT_NC and pool p's
 * connection when it is (or was brought) at rest (the oldest idle one
 * closed if the pool is full), else QUIT and close. A milter that
 * refused the unknown command meant to bring it to rest, or let the
 * deadline pass without an answer MILTER_SETTLE_LATE_MAX times in a
 * row, is sent none for MILTER_SETTLE_OFF_MS (a milter at rest is
 * still pooled): one that never answers would cost every session end
 * the whole deadline, which the client waits out before its 221. */
#define MILTER_SETTLE_OFF_MS 60000
#define MILTER_SETTLE_LATE_MAX 3
#define MILTER_SETTLE_MIN_MS 100
void milter_pool_release(struct milter_pool *pl, struct milter_peer *p,
                         long long deadline);

#endif
