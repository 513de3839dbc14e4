/*
 * pop3: mailbox leases in the shared state (modmta/shared.h), so that a
 * mailbox has one POP3 session at a time on every node sharing the store
 * (RFC 2449 [IN-USE]).
 *
 * A session takes its mailbox's lease at login with a TTL and gives it
 * back at QUIT or disconnect. While it is held, a renewer thread (one
 * per instance, started by the first lease) renews every lease a third
 * of the TTL, whatever the sessions are doing (idle, a slow RETR): a
 * live session never loses its lease to the TTL, and a node that dies
 * loses its leases within the TTL. A renewal that finds the lease held
 * by someone else marks it lost (the session then ends without applying
 * deletions); one that fails for a store error is tried again at the
 * next round (logged once a round). Before applying deletions a session
 * renews its lease itself (pop3_lease_confirm): a round's answer may be
 * a third of the TTL old.
 */
#ifndef POP3_LEASE_H
#define POP3_LEASE_H

#include <modmta/modmta.h>

struct pop3_leases;
struct pop3_lease;

/* The leases of an instance in h's shared state, with a TTL of ttl_ms
 * (at least 3 ms). NULL out of memory. */
struct pop3_leases *pop3_leases_new(const modmta_host *h, long ttl_ms);
/* Stop the renewer; every lease must have been dropped. */
void pop3_leases_free(struct pop3_leases *ls);

/* Take the lease key for owner ("host/session"): 1 taken (*lease_r is
 * renewed until dropped), 0 held by another owner, <0 a store error
 * (MODMTA_E_TEMP: unreachable) or MODMTA_E_NOMEM. */
int pop3_lease_take(struct pop3_leases *ls, const char *key,
                    const char *owner, struct pop3_lease **lease_r);
/* 0 once a renewal found the lease held by another owner, else 1. */
int pop3_lease_held(struct pop3_leases *ls, const struct pop3_lease *l);
/* Renew l now and wait for the answer (pop3_lease_held may be a round,
 * a third of the TTL, old): 1 held, 0 held by another owner (l is lost
 * from now), <0 a store error. */
int pop3_lease_confirm(struct pop3_leases *ls, struct pop3_lease *l);
/* Stop renewing l, give it back in the store (if still ours) and free
 * it; NULL is ignored. Waits for a renewal of l that is running. */
void pop3_lease_drop(struct pop3_leases *ls, struct pop3_lease *l);

#endif
