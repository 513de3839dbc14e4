/*
 * hello: a teaching example of a modmta module, built out of tree against
 * the installed SDK (see README.md beside this file and docs/sdk.md).
 *
 * What it shows, one SDK feature per hook:
 *
 *   create      validate the JSON section with modmta_conf_parse_options(),
 *               add checks of our own, report every error with its JSON
 *               path (modmta_conf_error)
 *   on_connect  log one key=value line with modmta_log()
 *   on_helo     keep per-session data with modmta_ctx_set_data() and a
 *               destructor the core runs on every exit path
 *   on_rcpt     refuse recipients in "reject_domains" with REJECT and a
 *               reply set through modmta_reply()
 *   on_data     add a header, a milter action allowed by MODMTA_CAP_ADDHDRS
 *   on_disconnect  log what the session did, from the per-session data
 *
 * Config:
 *
 *   {"module": "hello", "greeting": "Hello from example.com",
 *    "reject_domains": ["spam.example", "nowhere.test"]}
 *
 * Rules every module follows (STYLE.md, "Ten rules"): include only
 * <modmta/...> headers; export nothing but the descriptor (everything
 * else is static, and the build uses hidden visibility); never keep a
 * hook argument after the hook returns; never exit or abort; never change
 * the instance after create() returns, because hooks run on many session
 * threads at once.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/modmta.h>

#define HELLO_DEFAULT_GREETING "Hello from modmta"
#define HELLO_HELO_MAX 256

/* What the config says. modmta_conf_parse_options() fills it from
 * hello_opts. */
struct hello_conf {
    char *greeting;        /* NULL: HELLO_DEFAULT_GREETING */
    char **reject_domains; /* NULL-terminated, or NULL for none */
};

/* One instance per "modules" entry and config generation. Read-only once
 * create() has returned: no locks are needed to read it from hooks. */
struct hello {
    struct hello_conf conf;
};

/* Per-session state. A session runs on one thread, so hooks may change
 * it freely; the core frees it with hello_sess_free at disconnect. */
struct hello_sess {
    char helo[HELLO_HELO_MAX];
    unsigned rejected; /* recipients refused in this session */
};

static const modmta_option hello_opts[] = {
    MODMTA_OPTION_STRING("greeting", struct hello_conf, greeting, 0),
    MODMTA_OPTION_STRLIST("reject_domains", struct hello_conf, reject_domains,
                          0),
    MODMTA_OPTION_END
};

static int
hello_check(const struct hello_conf *c, const modmta_host *host,
            modmta_err *err_r);
static void hello_destroy(void *inst);
static void hello_sess_free(void *data);
static struct hello_sess *hello_sess(const struct hello *h, modmta_ctx *ctx);
static int hello_domain_refused(const struct hello *h, const char *domain);

/* ---- life cycle ---- */

/*
 * Runs unprivileged, once per config generation (start-up and every
 * reload). `conf` is borrowed: what we keep is copied by
 * modmta_conf_parse_options(). On error, return NULL: every error was
 * recorded with its key's path, and `modmta --check-config` lists them.
 */
static void *
hello_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    struct hello *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    /* Unknown keys and wrong types are refused here, with their path
     * ("$.modules[0].greting: unknown key"). */
    if (modmta_conf_parse_options(conf, host, hello_opts, &h->conf,
                                  err_r) < 0 ||
        hello_check(&h->conf, host, err_r) < 0) {
        hello_destroy(h);
        return NULL;
    }
    modmta_log_host(host, MODMTA_LOG_DEBUG, "created greeting=\"%s\"",
                    h->conf.greeting != NULL ? h->conf.greeting
                                             : HELLO_DEFAULT_GREETING);
    return h;
}

/* Checks the SDK cannot know about: the greeting becomes a header value,
 * so it must be one line; a domain must not be empty. */
static int
hello_check(const struct hello_conf *c, const modmta_host *host,
            modmta_err *err_r)
{
    char path[300];
    size_t i;
    int rc = 0;

    if (c->greeting != NULL &&
        (c->greeting[0] == '\0' || strpbrk(c->greeting, "\r\n") != NULL)) {
        snprintf(path, sizeof(path), "%s.greeting", modmta_host_path(host));
        rc = modmta_conf_error(host, err_r, path,
                               "expected one non-empty line of text");
    }
    /* Go on after an error: the administrator sees them all at once. */
    for (i = 0; c->reject_domains != NULL && c->reject_domains[i]; i++) {
        if (c->reject_domains[i][0] == '\0') {
            snprintf(path, sizeof(path), "%s.reject_domains[%zu]",
                     modmta_host_path(host), i);
            rc = modmta_conf_error(host, err_r, path, "empty domain");
        }
    }
    return rc;
}

static void
hello_destroy(void *inst)
{
    struct hello *h = inst;

    if (h == NULL)
        return;
    modmta_conf_free_options(hello_opts, &h->conf);
    free(h);
}

/* ---- hooks ---- */

/* CONTINUE: no opinion, the next module (or the core) decides. */
static modmta_verdict
hello_on_connect(void *inst, modmta_ctx *ctx)
{
    (void)inst; /* every hook gets the instance; this one needs none */
    modmta_log(ctx, MODMTA_LOG_INFO, "connect client=%s listener=%s",
               modmta_client_addr(ctx), modmta_listener_name(ctx));
    return MODMTA_CONTINUE;
}

/*
 * `helo` is borrowed: copy it. A client may say HELO/EHLO more than once;
 * we keep one hello_sess per session and update it.
 */
static modmta_verdict
hello_on_helo(void *inst, modmta_ctx *ctx, const char *helo)
{
    struct hello_sess *s = hello_sess(inst, ctx);

    if (s == NULL)
        return MODMTA_TEMPFAIL; /* out of memory: 4xx, the client retries */
    snprintf(s->helo, sizeof(s->helo), "%s", helo);
    return MODMTA_CONTINUE;
}

/*
 * REJECT a recipient whose domain is listed; CONTINUE lets the modules
 * after us decide (store_mbox claims local users). The chain also runs
 * this hook on addresses an alias or virtual module rewrote to.
 */
static modmta_verdict
hello_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const struct hello *h = inst;
    const char *at = strrchr(rcpt, '@');
    struct hello_sess *s;

    if (at == NULL || !hello_domain_refused(h, at + 1))
        return MODMTA_CONTINUE;
    /* Session data exists only after HELO; the count is a nicety, so a
     * failure to allocate it does not change the verdict. */
    s = hello_sess(h, ctx);
    if (s != NULL)
        s->rejected++;
    modmta_log(ctx, MODMTA_LOG_INFO, "reject rcpt=<%s> reason=domain",
               rcpt);
    modmta_reply(ctx, 550, "5.7.1", "<%s>: mail to %s is refused here",
                 rcpt, at + 1);
    return MODMTA_REJECT;
}

/*
 * End of message: headers are parsed and the body is spooled. Adding a
 * header needs MODMTA_CAP_ADDHDRS in the descriptor, else the call fails
 * with MODMTA_E_PERM. An internal error is a TEMPFAIL, never a 5xx.
 */
static modmta_verdict
hello_on_data(void *inst, modmta_ctx *ctx)
{
    const struct hello *h = inst;
    const char *greeting = h->conf.greeting != NULL ? h->conf.greeting
                                                    : HELLO_DEFAULT_GREETING;
    int rc = modmta_hdr_add(ctx, "X-Hello", greeting);

    if (rc < 0) {
        modmta_log(ctx, MODMTA_LOG_ERR, "add header failed error=\"%s\"",
                   modmta_strerror(rc));
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_CONTINUE;
}

/* Runs for every session that connected, whatever the verdicts were.
 * The core frees our session data after this hook. */
static void
hello_on_disconnect(void *inst, modmta_ctx *ctx)
{
    const struct hello_sess *s = modmta_ctx_get_data(ctx, inst);

    if (s != NULL)
        modmta_log(ctx, MODMTA_LOG_INFO, "disconnect helo=%s rejected=%u",
                   s->helo, s->rejected);
}

/* ---- helpers ---- */

static void
hello_sess_free(void *data)
{
    free(data);
}

/* This instance's session data, created on first use. The key is the
 * instance pointer, so two "hello" instances in one chain do not share. */
static struct hello_sess *
hello_sess(const struct hello *h, modmta_ctx *ctx)
{
    struct hello_sess *s = modmta_ctx_get_data(ctx, h);

    if (s != NULL)
        return s;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (modmta_ctx_set_data(ctx, h, s, hello_sess_free) < 0) {
        free(s); /* not registered: still ours to free */
        return NULL;
    }
    return s;
}

static int
hello_domain_refused(const struct hello *h, const char *domain)
{
    size_t i;

    for (i = 0; h->conf.reject_domains != NULL &&
                h->conf.reject_domains[i] != NULL; i++)
        if (modmta_domain_equal(domain, h->conf.reject_domains[i]))
            return 1;
    return 0;
}

/* ---- the one exported symbol ---- */

/* Designated initialisers: hooks left out are NULL ("not interested"),
 * and fields appended to the ABI later are zero. */
MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "hello",
    .version = "1.0.0",
    .caps = MODMTA_CAP_ADDHDRS,
    .create = hello_create,
    .destroy = hello_destroy,
    .on_connect = hello_on_connect,
    .on_helo = hello_on_helo,
    .on_rcpt = hello_on_rcpt,
    .on_data = hello_on_data,
    .on_disconnect = hello_on_disconnect,
};
