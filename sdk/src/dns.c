/*
 * The resolver (dns.h) on libunbound: one ub_ctx per resolver, made by
 * the first lookup, never before (a config check, or a config without
 * outbound modules, starts nothing).
 *
 * libunbound has no timeout of its own: a dead server holds a lookup
 * for minutes. So its asynchronous mode, driven by a pump thread that
 * waits for ub_fd() and runs ub_process(), which calls dns_callback();
 * a lookup waits on its own condition variable until the callback or
 * its deadline, and on the deadline gives the query up (dns_query_finish
 * explains the race with the callback).
 *
 * Choices: not /etc/hosts (MX and address lookups for mail are DNS
 * only, as Postfix's smtp_host_lookup=dns); the trust anchor is read
 * with ub_ctx_add_ta_file, never written (RFC 5011 tracking would have
 * every generation and the unprivileged daemon write one file: keep it
 * fresh with unbound-anchor or the dns-root-data package).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <unbound.h>

#include <modmta/log.h>

#include "budget_priv.h"
#include "ctx_priv.h"
#include "dns_priv.h"
#include "file_open_priv.h"

#define DNS_RCODE_NXDOMAIN 3

struct modmta_dns {
    char **servers;             /* NULL: resolv.conf */
    long timeout_s;
    char *trust_anchor;         /* NULL: no DNSSEC validation */
    pthread_mutex_t lock;       /* guards ub and every query's state */
    struct ub_ctx *ub;          /* NULL until the first lookup */
    pthread_t pump;
    int wake[2];                /* modmta_dns_free → the pump: stop */
};

struct dns_query {
    modmta_dns *r;
    pthread_cond_t cond;        /* done was set */
    int id;                     /* libunbound's async_id */
    int done;                   /* the callback has run */
    int abandoned;              /* the waiter is gone: the callback frees */
    int err;                    /* from the callback */
    struct ub_result *res;
};

static void dns_strlist_free(char **l);
static int dns_configure(const modmta_dns *r, struct ub_ctx *ub);
static int dns_start(modmta_dns *r);
static void *dns_pump(void *arg);
static void dns_callback(void *arg, int err, struct ub_result *res);
static void dns_query_free(dns_query *q);
static int dns_outcome(int err, struct ub_result *u,
                       modmta_dns_result **res_r);

static void
dns_strlist_free(char **l)
{
    for (size_t i = 0; l != NULL && l[i] != NULL; i++)
        free(l[i]);
    free(l);
}

modmta_dns *
modmta_dns_new(char *const *servers, long timeout_s, const char *trust_anchor,
               modmta_err *err_r)
{
    modmta_dns *r = calloc(1, sizeof(*r));
    size_t n = 0;

    if (r == NULL)
        goto nomem;
    r->wake[0] = r->wake[1] = -1;
    pthread_mutex_init(&r->lock, NULL);
    r->timeout_s = timeout_s > 0 ? timeout_s : 10;
    if (trust_anchor != NULL &&
        (r->trust_anchor = strdup(trust_anchor)) == NULL)
        goto nomem;
    if (servers != NULL) {
        while (servers[n] != NULL)
            n++;
        if ((r->servers = calloc(n + 1, sizeof(char *))) == NULL)
            goto nomem;
        for (size_t i = 0; i < n; i++)
            if ((r->servers[i] = strdup(servers[i])) == NULL)
                goto nomem;
    }
    return r;
nomem:
    modmta_dns_free(r);
    modmta_err_set(err_r, "$.dns", "out of memory");
    return NULL;
}

void
modmta_dns_free(modmta_dns *r)
{
    if (r == NULL)
        return;
    if (r->ub != NULL) {
        /* the pump first: ub_ctx_delete must not overlap ub_process */
        while (write(r->wake[1], "", 1) < 0 && errno == EINTR)
            ;
        pthread_join(r->pump, NULL);
        ub_ctx_delete(r->ub);
        close(r->wake[0]);
        close(r->wake[1]);
    }
    pthread_mutex_destroy(&r->lock);
    dns_strlist_free(r->servers);
    free(r->trust_anchor);
    free(r);
}

modmta_dns *
modmta_host_dns(const modmta_host *h)
{
    return h->dns;
}

/* The trust anchor file, looked at before unbound opens it: a FIFO or
 * a device there would block or feed the resolver's start for ever. */
static int
dns_trust_anchor_readable(const char *path)
{
    modmta_err err = {"", ""};

    if (file_check(path, FILE_OPEN_MAX, &err) < 0) {
        modmta_logf(MODMTA_LOG_ERR, "dns: trust anchor %s", err.msg);
        return -1;
    }
    return 0;
}

static int
dns_configure(const modmta_dns *r, struct ub_ctx *ub)
{
    int e = ub_ctx_async(ub, 1); /* a thread, not a forked process */

    for (size_t i = 0; e == 0 && r->servers != NULL && r->servers[i] != NULL;
         i++)
        e = ub_ctx_set_fwd(ub, r->servers[i]);
    if (e == 0 && r->servers == NULL)
        e = ub_ctx_resolvconf(ub, NULL);
    /* unbound answers some reserved zones itself (RFC 6761, 6303); as a
     * stub it leaves to the servers it asks the private reverse zones (a
     * site's server has them) and "test." (test setups serve it). The
     * latter also ends the configuration: an error in it (a bad trust
     * anchor) shows here. */
    if (e == 0)
        e = ub_ctx_set_option(ub, "unblock-lan-zones:", "yes");
    if (e == 0 && r->trust_anchor != NULL)
        e = dns_trust_anchor_readable(r->trust_anchor) < 0
            ? UB_READFILE : ub_ctx_add_ta_file(ub, r->trust_anchor);
    if (e == 0)
        e = ub_ctx_zone_add(ub, "test.", "transparent");
    return e;
}

/* With r->lock held: the ub_ctx and the pump, unless they run already.
 * A failure is logged and tried again by the next lookup. */
static int
dns_start(modmta_dns *r)
{
    struct ub_ctx *ub;
    sigset_t all, old;
    int e;

    if (r->ub != NULL)
        return 0;
    if ((ub = ub_ctx_create()) == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "dns: cannot create the resolver: %s",
                    strerror(errno));
        return MODMTA_E_TEMP;
    }
    if ((e = dns_configure(r, ub)) != 0) {
        modmta_logf(MODMTA_LOG_ERR, "dns: cannot set up the resolver: %s "
                    "(servers from %s%s%s)", ub_strerror(e),
                    r->servers != NULL ? "dns.servers" : "/etc/resolv.conf",
                    r->trust_anchor != NULL ? ", trust anchor " : "",
                    r->trust_anchor != NULL ? r->trust_anchor : "");
        ub_ctx_delete(ub);
        return MODMTA_E_TEMP;
    }
    if (pipe2(r->wake, O_CLOEXEC) < 0) {
        modmta_logf(MODMTA_LOG_ERR, "dns: pipe: %s", strerror(errno));
        ub_ctx_delete(ub);
        return MODMTA_E_TEMP;
    }
    r->ub = ub;
    /* signals are the application's business, never the pump's */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    e = pthread_create(&r->pump, NULL, dns_pump, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        modmta_logf(MODMTA_LOG_ERR, "dns: cannot start a thread: %s",
                    strerror(e));
        close(r->wake[0]);
        close(r->wake[1]);
        r->wake[0] = r->wake[1] = -1;
        ub_ctx_delete(ub);
        r->ub = NULL;
        return MODMTA_E_TEMP;
    }
    return 0;
}

static void *
dns_pump(void *arg)
{
    modmta_dns *r = arg;
    struct pollfd pfd[2] = {
        { .fd = r->wake[0], .events = POLLIN },
        { .fd = ub_fd(r->ub), .events = POLLIN },
    };
    int e;

    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            modmta_logf(MODMTA_LOG_ERR, "dns: poll: %s", strerror(errno));
            return NULL;        /* lookups time out from now on */
        }
        if (pfd[0].revents != 0)
            return NULL;
        if (pfd[1].revents != 0 && (e = ub_process(r->ub)) != 0) {
            modmta_logf(MODMTA_LOG_ERR, "dns: the resolver failed: %s",
                        ub_strerror(e));
            pfd[1].fd = -1;     /* lookups time out from now on */
        }
    }
}

/* From ub_process() on the pump thread. */
static void
dns_callback(void *arg, int err, struct ub_result *res)
{
    dns_query *q = arg;
    modmta_dns *r = q->r;

    pthread_mutex_lock(&r->lock);
    if (q->abandoned) {
        pthread_mutex_unlock(&r->lock);
        ub_resolve_free(res);
        dns_query_free(q);
        return;
    }
    q->done = 1;
    q->err = err;
    q->res = res;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&r->lock);
}

static void
dns_query_free(dns_query *q)
{
    if (q == NULL)
        return;
    pthread_cond_destroy(&q->cond);
    free(q);
}

void
dns_deadline(const modmta_dns *r, struct timespec *ts)
{
    long long ms = budget_cut(budget_now_ms() + r->timeout_s * 1000);

    ts->tv_sec = (time_t)(ms / 1000);
    ts->tv_nsec = (long)(ms % 1000) * 1000000;
}

int
dns_query_start(modmta_dns *r, const char *name, int type, dns_query **q_r)
{
    dns_query *q = calloc(1, sizeof(*q));
    pthread_condattr_t ca;
    struct ub_ctx *ub;
    int e;

    *q_r = NULL;
    if (q == NULL)
        return MODMTA_E_NOMEM;
    q->r = r;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&r->lock);
    e = dns_start(r);
    ub = r->ub;
    pthread_mutex_unlock(&r->lock);
    /* The callback may run before this returns: it only waits for the
     * lock, and q->id is this thread's. */
    if (e == 0 &&
        (e = ub_resolve_async(ub, name, type, 1, q, dns_callback, &q->id))
        != 0) {
        modmta_logf(MODMTA_LOG_ERR, "dns: cannot look up %s: %s", name,
                    ub_strerror(e));
        e = MODMTA_E_TEMP;
    }
    if (e < 0) {
        dns_query_free(q);
        return e;
    }
    *q_r = q;
    return 0;
}

/*
 * On the deadline, ub_cancel() under the lock decides who frees q. In
 * thread mode it only marks the query: UB_NOERROR means unbound still
 * held it, so its callback will never run, and q is freed here; an
 * error means ub_process() has taken the answer already and the
 * callback, waiting for the lock, will find q abandoned and free it.
 * (The answer of a cancelled query is freed by unbound, and the queries
 * still out when the resolver is freed by ub_ctx_delete.)
 */
int
dns_query_finish(modmta_dns *r, dns_query *q, const struct timespec *deadline,
                 modmta_dns_result **res_r)
{
    int e = 0;

    *res_r = NULL;
    pthread_mutex_lock(&r->lock);
    while (!q->done && e == 0)
        e = pthread_cond_timedwait(&q->cond, &r->lock, deadline);
    if (!q->done) {
        if (ub_cancel(r->ub, q->id) != UB_NOERROR) {
            q->abandoned = 1;
            q = NULL;
        }
        pthread_mutex_unlock(&r->lock);
        dns_query_free(q);
        budget_spent();
        return MODMTA_E_TEMP;
    }
    pthread_mutex_unlock(&r->lock);
    e = dns_outcome(q->err, q->res, res_r);
    dns_query_free(q);
    return e;
}

/* The three outcomes from libunbound's result (freed here). */
static int
dns_outcome(int err, struct ub_result *u, modmta_dns_result **res_r)
{
    const char *canon;
    int r;

    if (err != 0 || u == NULL) {
        modmta_logf(MODMTA_LOG_WARN, "dns: lookup failed: %s",
                    ub_strerror(err));
        return MODMTA_E_TEMP;
    }
    canon = u->canonname != NULL ? u->canonname : u->qname;
    if (u->bogus) {
        /* tampered with, or a broken signature: never an answer */
        modmta_logf(MODMTA_LOG_WARN, "dns: DNSSEC-bogus answer name=%s "
                    "type=%d: %s", u->qname, u->qtype,
                    u->why_bogus != NULL ? u->why_bogus : "unknown");
        r = MODMTA_E_TEMP;
    } else if (u->rcode == DNS_RCODE_NXDOMAIN) {
        r = dns_result_build(u->qtype, canon, 1, u->secure, NULL, NULL,
                             res_r);
    } else if (u->rcode != 0) {
        r = MODMTA_E_TEMP;      /* SERVFAIL, REFUSED...: ask later */
    } else {
        r = dns_result_build(u->qtype, canon, 0, u->secure, u->data, u->len,
                             res_r);
        if (r == MODMTA_E_TEMP)
            modmta_logf(MODMTA_LOG_WARN, "dns: malformed record name=%s "
                        "type=%d", u->qname, u->qtype);
    }
    ub_resolve_free(u);
    return r;
}

int
modmta_dns_lookup(modmta_dns *r, const char *name, int type,
                  modmta_dns_result **res_r)
{
    char buf[DNS_NAME_MAX + 1];
    struct timespec deadline;
    dns_query *q;
    int e;

    *res_r = NULL;
    /* not OPT (41) nor the query-only and meta types (RFC 6895) */
    if (type <= 0 || type > 65535 || type == 41 ||
        (type >= 128 && type <= 255) || dns_wire_name_check(name, buf) < 0)
        return MODMTA_E_INVAL;
    dns_deadline(r, &deadline);
    if ((e = dns_query_start(r, buf, type, &q)) < 0)
        return e;
    return dns_query_finish(r, q, &deadline, res_r);
}
