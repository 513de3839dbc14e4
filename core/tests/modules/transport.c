/*
 * A transport (ABI 1.3: route + deliver_msg) whose behaviour its JSON
 * section scripts, for the delivery tests:
 *
 *   "route":   {"addr" | "@domain" | "*": "dest:NAME" | a verdict name}
 *              (continue, reject, tempfail, discard; unset: continue)
 *   "results": {"addr" | "*": [status, code, "esc" or null, "stage" or
 *              null, "text"]} status: delivered, relayed, relayed_dsn,
 *              deferred, failed, none (no result reported)
 *   "remote":  ["name", "addr" or null, port]  the server results come from
 *   "down":    true      call modmta_dlv_dest_down
 *   "sleep_ms": N        sleep in deliver_msg (concurrency tests)
 *   "route_overrun": true  route() returns only once its deadline
 *                        (modmta_ctx_deadline) has passed
 *   "log":     "path"    append "begin DEST SENDER RCPT,RCPT... PARAMS"
 *                        and "end DEST" lines per deliver_msg call
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "test_sleep.h"

static const struct {
    const char *name;
    int value;
} transport_status[] = {
    {"delivered", MODMTA_DELIVERED}, {"relayed", MODMTA_RELAYED},
    {"relayed_dsn", MODMTA_RELAYED_DSN}, {"deferred", MODMTA_DEFERRED},
    {"failed", MODMTA_FAILED}, {NULL, 0},
};

static void *
transport_create(const json_t *conf, const modmta_host *host,
                 modmta_err *err_r)
{
    (void)host;
    (void)err_r;
    return json_incref((json_t *)conf);
}

static void
transport_destroy(void *inst)
{
    json_decref(inst);
}

static const json_t *
transport_entry(const json_t *conf, const char *key, const char *addr)
{
    const json_t *map = json_object_get(conf, key), *e;
    const char *at = strrchr(addr, '@');

    if ((e = json_object_get(map, addr)) != NULL)
        return e;
    if (at != NULL && (e = json_object_get(map, at)) != NULL)
        return e;
    return json_object_get(map, "*");
}

static modmta_verdict
transport_route(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const char *v = json_string_value(transport_entry(inst, "route", rcpt));

    if (json_is_true(json_object_get(inst, "route_overrun")))
        test_sleep_past_deadline(ctx);
    if (v == NULL || strcmp(v, "continue") == 0)
        return MODMTA_CONTINUE;
    if (strncmp(v, "dest:", 5) == 0) {
        if (v[5] != '\0' && modmta_dlv_route(ctx, v + 5) < 0)
            return MODMTA_TEMPFAIL;
        return MODMTA_ACCEPT;
    }
    if (strcmp(v, "reject") == 0)
        return MODMTA_REJECT;
    if (strcmp(v, "discard") == 0)
        return MODMTA_DISCARD;
    return MODMTA_TEMPFAIL;
}

static void
transport_log(const json_t *conf, modmta_ctx *ctx, const char *what,
              const char *dest)
{
    const char *path = json_string_value(json_object_get(conf, "log"));
    char line[4096];
    size_t n;
    int fd;

    if (path == NULL)
        return;
    n = (size_t)snprintf(line, sizeof(line), "%s %s", what, dest);
    if (strcmp(what, "begin") == 0) {
        const char *ret = modmta_mail_param(ctx, "RET");

        n += (size_t)snprintf(line + n, sizeof(line) - n, " <%s> ",
                              modmta_sender(ctx));
        for (size_t i = 0; i < modmta_dlv_rcpt_count(ctx) &&
                           n < sizeof(line) - 600; i++) {
            const char *notify = modmta_dlv_rcpt_param(ctx, i, "NOTIFY");

            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s%s%s",
                                  i ? "," : "", modmta_dlv_rcpt_at(ctx, i),
                                  notify ? "/" : "", notify ? notify : "");
        }
        if (ret != NULL && n < sizeof(line) - 64)
            n += (size_t)snprintf(line + n, sizeof(line) - n, " RET=%s",
                                  ret);
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        /* A failed write shows as a missing line: the test fails. */
        ssize_t w = write(fd, line, n);

        (void)w;
        close(fd);
    }
}

static int
transport_status_of(const char *name)
{
    for (size_t i = 0; transport_status[i].name != NULL; i++)
        if (strcmp(transport_status[i].name, name) == 0)
            return transport_status[i].value;
    return -1;
}

static void
transport_deliver_msg(void *inst, modmta_ctx *ctx, const char *dest)
{
    const json_t *conf = inst, *rm = json_object_get(conf, "remote");
    long ms = (long)json_integer_value(json_object_get(conf, "sleep_ms"));

    transport_log(conf, ctx, "begin", dest);
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);
    }
    if (json_is_array(rm))
        modmta_dlv_remote(ctx, json_string_value(json_array_get(rm, 0)),
                          json_string_value(json_array_get(rm, 1)),
                          (int)json_integer_value(json_array_get(rm, 2)));
    for (size_t i = 0; i < modmta_dlv_rcpt_count(ctx); i++) {
        const json_t *r = transport_entry(conf, "results",
                                          modmta_dlv_rcpt_at(ctx, i));
        const char *st = json_string_value(json_array_get(r, 0));
        int status = st != NULL ? transport_status_of(st) : -1;

        if (status < 0)
            continue;
        modmta_dlv_result(ctx, i, (modmta_dstatus)status,
                          (int)json_integer_value(json_array_get(r, 1)),
                          json_string_value(json_array_get(r, 2)),
                          json_string_value(json_array_get(r, 3)),
                          json_string_value(json_array_get(r, 4)));
    }
    if (json_is_true(json_object_get(conf, "down")))
        modmta_dlv_dest_down(ctx);
    transport_log(conf, ctx, "end", dest);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "transport",
    .version = "1.0.0",
    .create = transport_create,
    .destroy = transport_destroy,
    .route = transport_route,
    .deliver_msg = transport_deliver_msg,
};
