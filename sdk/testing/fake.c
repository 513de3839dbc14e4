/* libmodmta-test: a real ctx filled by hand, for module unit tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "budget_priv.h"
#include "conn_priv.h"
#include "ctx_priv.h"
#include "dns_priv.h"
#include "fake.h"
#include "shared_priv.h"

static modmta_shared *fake_store_new(void);

modmta_host *
modmta_test_host_new(const char *instance, const char *first_domain, ...)
{
    const char *domains[33];
    modmta_shared *s;
    modmta_host *h;
    size_t n = 0;
    va_list ap;

    va_start(ap, first_domain);
    for (const char *d = first_domain; d != NULL && n < 32;
         d = va_arg(ap, const char *))
        domains[n++] = d;
    va_end(ap);
    domains[n] = NULL;
    h = modmta_host_new(instance, "$.modules[0]", "mx.test", ".",
                        (char *const *)domains, 0);
    if (h == NULL)
        return NULL;
    /* the process's memory store, as the daemon without "redis" */
    if ((s = fake_store_new()) == NULL) {
        modmta_host_free(h);
        return NULL;
    }
    modmta_host_set_shared(h, s);
    return h;
}

void
modmta_test_host_free(modmta_host *h)
{
    /* Owners, resolver and listeners here are the fake's (the chain
     * lends its own). */
    if (h != NULL) {
        free((struct modmta_owner *)h->owners);
        modmta_dns_free(h->dns);
        modmta_shared_free(h->shared);
        free((struct sockaddr_storage *)h->own);
    }
    modmta_host_free(h);
}

int
modmta_test_host_set_dns(modmta_host *h, const char *server, long timeout_s)
{
    char *servers[] = { (char *)server, NULL };
    modmta_dns *dns = modmta_dns_new(servers, timeout_s, NULL, NULL);

    if (dns == NULL)
        return MODMTA_E_NOMEM;
    modmta_dns_free(h->dns);
    modmta_host_set_net(h, dns, h->own, h->nown);
    return 0;
}

int
modmta_test_host_add_own(modmta_host *h, const char *ip, int port)
{
    struct sockaddr_storage ss, *own;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
    } else {
        return MODMTA_E_INVAL;
    }
    own = realloc((struct sockaddr_storage *)h->own,
                  (h->nown + 1) * sizeof(*own));
    if (own == NULL)
        return MODMTA_E_NOMEM;
    own[h->nown] = ss;
    modmta_host_set_net(h, h->dns, own, h->nown + 1);
    return 0;
}

int
modmta_test_host_add_owner(modmta_host *h,
                           int (*owns_domain)(void *inst, const char *domain),
                           void *inst)
{
    struct modmta_owner *o;

    o = realloc((struct modmta_owner *)h->owners,
                (h->nowners + 1) * sizeof(*o));
    if (o == NULL)
        return MODMTA_E_NOMEM;
    o[h->nowners].owns_domain = owns_domain;
    o[h->nowners].inst = inst;
    modmta_host_set_owners(h, o, h->nowners + 1);
    return 0;
}

void
modmta_test_host_set_root(modmta_host *h, int is_root)
{
    h->is_root = is_root;
}

int
modmta_test_host_set_delimiter(modmta_host *h, const char *delims)
{
    return modmta_host_set_recipient_delimiter(h, delims);
}

modmta_ctx *
modmta_test_ctx_new(const modmta_host *h, const char *client_ip)
{
    modmta_ctx *ctx = modmta_ctx_new(h);
    struct sockaddr_storage ss;
    socklen_t len = 0;

    if (ctx == NULL)
        return NULL;
    memset(&ss, 0, sizeof(ss));
    if (client_ip != NULL && strchr(client_ip, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(40000);
        if (inet_pton(AF_INET6, client_ip, &in6->sin6_addr) == 1)
            len = sizeof(*in6);
    } else if (client_ip != NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(40000);
        if (inet_pton(AF_INET, client_ip, &in->sin_addr) == 1)
            len = sizeof(*in);
    }
    modmta_ctx_set_session(ctx, "TESTSESSION", len ? (void *)&ss : NULL, len,
                           "unknown", "test");
    return ctx;
}

void
modmta_test_set_session_id(modmta_ctx *ctx, const char *id)
{
    snprintf(ctx->session_id, sizeof(ctx->session_id), "%s", id);
}

void
modmta_test_ctx_free(modmta_ctx *ctx)
{
    modmta_ctx_free(ctx);
}

modmta_conn *
modmta_test_conn_from_fd(int fd)
{
    return modmta_conn_new(fd, NULL);
}

void
modmta_test_conn_close(modmta_conn *c)
{
    modmta_conn_free(c);
}

void
modmta_test_enter(modmta_ctx *ctx, modmta_phase phase,
                  const modmta_module *mod, const void *inst)
{
    modmta_ctx_enter(ctx, phase, mod, inst, NULL);
}

void
modmta_test_set_helo(modmta_ctx *ctx, const char *helo)
{
    modmta_ctx_set_helo(ctx, helo, 1);
}

void
modmta_test_set_auth(modmta_ctx *ctx, const char *user)
{
    ctx->auth_user = user ? modmta_arena_strdup(ctx->sess_arena, user) : NULL;
}

void
modmta_test_set_tls(modmta_ctx *ctx, int tls)
{
    modmta_ctx_set_tls(ctx, tls);
}

void
modmta_test_set_sender(modmta_ctx *ctx, const char *queue_id,
                       const char *sender)
{
    modmta_ctx_set_sender(ctx, queue_id, sender);
}

void
modmta_test_add_rcpt(modmta_ctx *ctx, const char *rcpt)
{
    modmta_ctx_add_rcpt(ctx, rcpt);
}

void
modmta_test_add_header(modmta_ctx *ctx, const char *name, const char *value)
{
    modmta_ctx_add_header(ctx, name, value);
}

void
modmta_test_set_message(modmta_ctx *ctx, const char *path)
{
    struct stat st;

    modmta_ctx_set_message(ctx, path, stat(path, &st) == 0 ? st.st_size : 0);
}

void
modmta_test_set_delivery(modmta_ctx *ctx, const char *queue_id,
                         const char *sender, int maybe_done)
{
    modmta_ctx_set_delivery(ctx, queue_id, sender, 0, maybe_done);
}

void
modmta_test_budget_begin(modmta_ctx *ctx, long ms)
{
    budget_begin(ctx, budget_now_ms() + ms);
}

int
modmta_test_budget_end(modmta_ctx *ctx)
{
    return budget_end(ctx);
}

void
modmta_test_add_mail_param(modmta_ctx *ctx, const char *name,
                           const char *value)
{
    assert_int_equal(modmta_ctx_add_param(ctx, name, value), 0);
}

void
modmta_test_set_dlv_group(modmta_ctx *ctx, const char *const *rcpts,
                          size_t n)
{
    struct ctx_dlv_rcpt *g = modmta_ctx_dlv_group(ctx, n);

    assert_non_null(g);
    for (size_t i = 0; i < n; i++)
        g[i].addr = modmta_txn_strdup(ctx, rcpts[i]);
}

void
modmta_test_set_dlv_param(modmta_ctx *ctx, size_t i, const char *name,
                          const char *value)
{
    const char *v = modmta_txn_strdup(ctx, value);

    assert_true(i < ctx->ndlv);
    if (strcasecmp(name, "NOTIFY") == 0)
        ctx->dlv[i].notify = v;
    else if (strcasecmp(name, "ORCPT") == 0)
        ctx->dlv[i].orcpt_param = v;
    else if (strcmp(name, "original") == 0)
        ctx->dlv[i].original = v;
    else
        fail_msg("modmta_test_set_dlv_param: unknown name %s", name);
}

const char *
modmta_test_route(const modmta_ctx *ctx)
{
    return ctx->dlv_route;
}

int
modmta_test_dlv_result(const modmta_ctx *ctx, size_t i,
                       modmta_dstatus *status_r, int *code_r,
                       const char **esc_r, const char **stage_r,
                       const char **text_r)
{
    const struct ctx_dlv_rcpt *r;

    assert_true(i < ctx->ndlv);
    r = &ctx->dlv[i];
    if (!r->has_result)
        return 0;
    if (status_r != NULL)
        *status_r = r->status;
    if (code_r != NULL)
        *code_r = r->code;
    if (esc_r != NULL)
        *esc_r = r->esc[0] ? r->esc : NULL;
    if (stage_r != NULL)
        *stage_r = r->stage;
    if (text_r != NULL)
        *text_r = r->text;
    return 1;
}

const char *
modmta_test_dlv_remote(const modmta_ctx *ctx, size_t i, const char **addr_r,
                       int *port_r)
{
    const struct ctx_dlv_remote *rm;

    assert_true(i < ctx->ndlv);
    rm = ctx->dlv[i].remote;
    if (addr_r != NULL)
        *addr_r = rm != NULL ? rm->addr : NULL;
    if (port_r != NULL)
        *port_r = rm != NULL ? rm->port : 0;
    return rm != NULL ? rm->name : NULL;
}

int
modmta_test_dlv_dest_down(const modmta_ctx *ctx)
{
    return ctx->dlv_dest_down;
}

int
modmta_test_reply_code(const modmta_ctx *ctx)
{
    return ctx->reply_code;
}

const char *
modmta_test_reply_esc(const modmta_ctx *ctx)
{
    return ctx->reply_esc;
}

const char *
modmta_test_reply_text(const modmta_ctx *ctx)
{
    return ctx->reply_text;
}

size_t
modmta_test_rewrite_count(const modmta_ctx *ctx)
{
    return ctx->nrewrites;
}

const char *
modmta_test_rewrite_at(const modmta_ctx *ctx, size_t i)
{
    return i < ctx->nrewrites ? ctx->rewrites[i] : NULL;
}

size_t
modmta_test_added_count(const modmta_ctx *ctx)
{
    return ctx->nadded;
}

const char *
modmta_test_added_at(const modmta_ctx *ctx, size_t i)
{
    return i < ctx->nadded ? ctx->added[i] : NULL;
}

size_t
modmta_test_ehlo_count(const modmta_ctx *ctx)
{
    return ctx->nehlo;
}

const char *
modmta_test_ehlo_at(const modmta_ctx *ctx, size_t i)
{
    return i < ctx->nehlo ? ctx->ehlo[i] : NULL;
}

int
modmta_test_added_no_dsn(const modmta_ctx *ctx, const char *addr)
{
    return modmta_ctx_rcpt_no_dsn(ctx, addr);
}

const char *
modmta_test_rewrite_sender(const modmta_ctx *ctx)
{
    return ctx->rewrite_sender;
}

void *
modmta_test_create(const modmta_module *mod, const char *conf,
                   const modmta_host *h, modmta_err *err_r)
{
    json_error_t jerr;
    json_t *j = json_loads(conf, 0, &jerr);
    void *inst;

    memset(err_r, 0, sizeof(*err_r));
    if (j == NULL) {
        modmta_err_set(err_r, NULL, "test config is not JSON: %s",
                       jerr.text);
        return NULL;
    }
    inst = mod->create(j, h, err_r);
    json_decref(j);
    return inst;
}

void *
modmta_test_create_ok(const modmta_module *mod, const char *conf,
                      const modmta_host *h)
{
    modmta_err err;
    void *inst = modmta_test_create(mod, conf, h, &err);

    if (inst == NULL)
        fail_msg("create: %s: %s", err.path, err.msg);
    return inst;
}

void
modmta_test_create_fails(const modmta_module *mod, const char *conf,
                         const modmta_host *h, const char *path)
{
    modmta_test_create_fails_with(mod, conf, h, path, "");
}

void
modmta_test_create_fails_with(const modmta_module *mod, const char *conf,
                              const modmta_host *h, const char *path,
                              const char *what)
{
    json_t *j = json_loads(conf, 0, NULL);
    modmta_err err;
    void *inst;

    if (j == NULL)
        fail_msg("test config is not JSON: %s", conf);
    memset(&err, 0, sizeof(err));
    inst = mod->create(j, h, &err);
    json_decref(j);
    if (inst != NULL) {
        mod->destroy(inst);
        fail_msg("create() accepted %s", conf);
    }
    if (strcmp(err.path, path) != 0 || strstr(err.msg, what) == NULL)
        fail_msg("%s: got %s: %s; expected %s: ...%s...", conf, err.path,
                 err.msg, path, what);
}

void
modmta_test_release(const modmta_module *mod, void *inst, modmta_ctx *ctx,
                    modmta_host *h)
{
    modmta_test_ctx_free(ctx);
    if (inst != NULL)
        mod->destroy(inst);
    modmta_test_host_free(h);
}

static void *
fake_fail_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    static int state;

    return &state;
}

static int
fake_fail_lookup(void *state, const char *key, char **value_r)
{
    return MODMTA_E_TEMP;
}

static void
fake_fail_close(void *state)
{
}

int
modmta_test_register_failing_map(void)
{
    static const modmta_map_backend failing = {
        .type = "failtest",
        .open = fake_fail_open,
        .lookup = fake_fail_lookup,
        .close = fake_fail_close,
    };
    static int registered;

    if (registered)
        return 0;
    if (modmta_map_register(&failing) < 0)
        return MODMTA_E_INVAL;
    registered = 1;
    return 0;
}

/* ---- the fake host's store: the memory store, or down ----
 * A switch in front of the process's memory store: while down, every
 * call fails as with an unreachable Redis. The host keeps the one front
 * throughout, so a module's thread (a renewer) that looks the store up
 * while a test flips the switch never meets a freed one. */

struct fake_store {
    atomic_int down;
};

#define FAKE_MEM(b, call) \
    (((struct fake_store *)(b))->down ? MODMTA_E_TEMP \
                                      : shared_mem_ops()->call)

static int
fake_store_get(void *b, const char *key, char **value_r)
{
    return FAKE_MEM(b, get(shared_mem_get_store(), key, value_r));
}

static int
fake_store_set(void *b, const char *key, const char *value, long ttl_ms)
{
    return FAKE_MEM(b, set(shared_mem_get_store(), key, value, ttl_ms));
}

static int
fake_store_del(void *b, const char *key)
{
    return FAKE_MEM(b, del(shared_mem_get_store(), key));
}

static int
fake_store_incr(void *b, const char *key, long long by, long window_s,
                long long *value_r)
{
    return FAKE_MEM(b, incr(shared_mem_get_store(), key, by, window_s,
                            value_r));
}

static int
fake_store_lease(void *b, const char *key, const char *owner, long ttl_ms)
{
    return FAKE_MEM(b, lease(shared_mem_get_store(), key, owner, ttl_ms));
}

static int
fake_store_release(void *b, const char *key, const char *owner)
{
    return FAKE_MEM(b, release(shared_mem_get_store(), key, owner));
}

static int
fake_store_publish(void *b, const char *channel, const char *msg)
{
    return FAKE_MEM(b, publish(shared_mem_get_store(), channel, msg));
}

static int
fake_store_subscribe(void *b, const char *channel, size_t prefix_len,
                     void (*cb)(void *arg, const char *channel,
                                const char *msg),
                     void *arg, modmta_shared_sub **sub_r)
{
    return FAKE_MEM(b, subscribe(shared_mem_get_store(), channel,
                                 prefix_len, cb, arg, sub_r));
}

static int
fake_store_decr(void *b, const char *key, long long by)
{
    return FAKE_MEM(b, decr(shared_mem_get_store(), key, by));
}

static int
fake_store_gauge_join(void *b, const char *key, const char *member,
                      long long max, long ttl_ms, long long *count_r)
{
    return FAKE_MEM(b, gauge_join(shared_mem_get_store(), key, member, max,
                                  ttl_ms, count_r));
}

static int
fake_store_gauge_leave(void *b, const char *key, const char *member)
{
    return FAKE_MEM(b, gauge_leave(shared_mem_get_store(), key, member));
}

static const struct shared_ops fake_store_ops = {
    .get = fake_store_get,
    .set = fake_store_set,
    .del = fake_store_del,
    .incr = fake_store_incr,
    .lease = fake_store_lease,
    .release = fake_store_release,
    .publish = fake_store_publish,
    .subscribe = fake_store_subscribe,
    .free = free,
    .decr = fake_store_decr,
    .gauge_join = fake_store_gauge_join,
    .gauge_leave = fake_store_gauge_leave,
};

/* The fake host's store (NULL out of memory). */
static modmta_shared *
fake_store_new(void)
{
    struct fake_store *fs = calloc(1, sizeof(*fs));
    modmta_shared *s = fs != NULL ? shared_new_backend(&fake_store_ops, fs)
                                  : NULL;

    if (s == NULL)
        free(fs);
    return s;
}

int
modmta_test_host_fail_shared(modmta_host *h, int fail)
{
    struct fake_store *fs = shared_backend(h->shared);

    fs->down = fail != 0;
    return 0;
}
