/*
 * Unit tests of the configuration loader: the embedded default, a full
 * production config, and one fixture per kind of mistake, each checked
 * against the exact list of "path: message" errors it must produce.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include <modmta/log.h>

#include "config.h"

#if !defined(CONFIG_FIXTURES) || !defined(CONFIG_EXAMPLE)
#error "CONFIG_FIXTURES and CONFIG_EXAMPLE must be defined by the build"
#endif

static const char *
fixture(const char *name)
{
    static char path[1024];

    snprintf(path, sizeof(path), "%s/%s", CONFIG_FIXTURES, name);
    return path;
}

static struct config *
load_ok(const char *path)
{
    struct config_errors errs = { NULL, 0 };
    struct config *cfg = config_load(path, &errs);
    size_t i;

    for (i = 0; i < errs.n; i++)
        print_error("unexpected: %s\n", errs.msgs[i]);
    assert_int_equal(errs.n, 0);
    assert_non_null(cfg);
    config_errors_free(&errs);
    return cfg;
}

/* Load a file that must fail with exactly these errors, in this order
 * (NULL-terminated). A leading "@" stands for the fixture's own path. */
static void
load_fails(const char *path, const char *const *want)
{
    struct config_errors errs = { NULL, 0 };
    struct config *cfg = config_load(path, &errs);
    char expect[2048];
    size_t i, n = 0;

    while (want[n] != NULL)
        n++;
    if (errs.n != n)
        for (i = 0; i < errs.n; i++)
            print_message("# got: %s\n", errs.msgs[i]);
    assert_null(cfg);
    assert_int_equal(errs.n, n);
    for (i = 0; i < n; i++) {
        if (want[i][0] == '@')
            snprintf(expect, sizeof(expect), "%s%s", path, want[i] + 1);
        else
            snprintf(expect, sizeof(expect), "%s", want[i]);
        assert_string_equal(errs.msgs[i], expect);
    }
    config_errors_free(&errs);
}

static void
assert_inet(const struct config_listener *l, int family, const char *ip,
            int port)
{
    char buf[INET6_ADDRSTRLEN];
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->sa;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l->sa;

    assert_int_equal(l->sa.ss_family, family);
    if (family == AF_INET) {
        assert_int_equal(l->salen, sizeof(*sin));
        assert_int_equal(ntohs(sin->sin_port), port);
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    } else {
        assert_int_equal(l->salen, sizeof(*sin6));
        assert_int_equal(ntohs(sin6->sin6_port), port);
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    }
    assert_string_equal(buf, ip);
}

static void
test_default(void **state)
{
    struct config *cfg = load_ok(NULL);
    char host[256] = "";
    size_t i;

    (void)state;
    gethostname(host, sizeof(host) - 1);
    assert_string_equal(cfg->path, "(default)");
    assert_string_equal(cfg->hostname, host);
    assert_null(cfg->user);
    assert_false(cfg->run_as_root);
    assert_false(cfg->daemonize);
    assert_null(cfg->pid_file);
    assert_null(cfg->recipient_delimiter);
    assert_string_equal(cfg->spool, "./var/spool");
    assert_string_equal(cfg->control_socket, "./var/spool/control.sock");
    assert_string_equal(cfg->module_path[0], MODMTA_MODULEDIR);
    assert_null(cfg->module_path[1]);
    assert_string_equal(cfg->local_domains[0], "localhost");
    if (strcmp(host, "localhost") == 0) {
        assert_null(cfg->local_domains[1]);
    } else {
        for (i = 0; host[i] != '\0'; i++)
            host[i] = (char)tolower((unsigned char)host[i]);
        assert_string_equal(cfg->local_domains[1], host);
        assert_null(cfg->local_domains[2]);
    }
    assert_int_equal(cfg->log_level, MODMTA_LOG_INFO);
    assert_false(cfg->log_syslog);
    assert_string_equal(cfg->log_facility, "mail");
    assert_int_equal(cfg->limits.max_sessions, 1000);
    assert_int_equal(cfg->limits.max_sessions_per_client, 50);
    assert_int_equal(cfg->limits.message_size, 20000000);
    assert_int_equal(cfg->limits.recipients, 100);
    assert_int_equal(cfg->limits.command_timeout, 300);
    assert_int_equal(cfg->limits.data_timeout, 600);
    assert_int_equal(cfg->limits.errors, 10);
    assert_int_equal(cfg->limits.rewrite_depth, 10);
    assert_int_equal(cfg->limits.rewrite_max, 1000);
    assert_int_equal(cfg->limits.max_hops, 50);
    assert_false(cfg->smtp.helo_required);
    assert_false(cfg->smtp.strict_envelopes);
    assert_int_equal(cfg->queue.lifetime, 432000);
    assert_int_equal(cfg->queue.retry_min, 300);
    assert_int_equal(cfg->queue.retry_max, 4000);
    assert_int_equal(cfg->queue.workers, 4);
    assert_null(cfg->tls.cert);
    assert_null(cfg->tls.key);
    assert_string_equal(cfg->tls.min_version, "TLSv1.2");
    assert_null(cfg->tls.ciphers);
    assert_null(cfg->redis);
    assert_int_equal(cfg->nlisteners, 1);
    assert_string_equal(cfg->listeners[0].name, "smtp");
    assert_string_equal(cfg->listeners[0].address, "127.0.0.1:2525");
    assert_string_equal(cfg->listeners[0].protocol, "smtp");
    assert_int_equal(cfg->listeners[0].tls, TLS_NONE);
    assert_int_equal(cfg->listeners[0].auth, AUTH_OPTIONAL);
    assert_inet(&cfg->listeners[0], AF_INET, "127.0.0.1", 2525);
    assert_true(json_is_array(cfg->modules));
    assert_int_equal(json_array_size(cfg->modules), 2);
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(cfg->modules, 0), "module")), "relay_access");
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(cfg->modules, 1), "module")), "store_mbox");
    assert_ptr_equal(cfg->modules, json_object_get(cfg->root, "modules"));
    config_free(cfg);
}

/* --print-default-config prints this: valid JSON, one key a line. */
static void
test_default_text(void **state)
{
    const char *text = config_default_text();
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    (void)state;
    assert_non_null(j);
    assert_true(json_is_object(j));
    assert_null(json_object_get(j, "local_domains"));
    assert_null(json_object_get(j, "user"));
    assert_non_null(strstr(text, "\n  \"spool\": \"./var/spool\",\n"));
    assert_int_equal(text[strlen(text) - 1], '\n');
    json_decref(j);
}

static void
test_full(void **state)
{
    struct config *cfg = load_ok(fixture("good.json"));
    const struct config_listener *l = cfg->listeners;

    (void)state;
    assert_string_equal(cfg->hostname, "Mail.Example.com");
    assert_string_equal(cfg->recipient_delimiter, "+-");
    assert_string_equal(cfg->user, "modmta");
    assert_false(cfg->run_as_root);
    assert_true(cfg->daemonize);
    assert_string_equal(cfg->pid_file, "/run/modmta.pid");
    /* Relative paths stay relative to the working directory. */
    assert_string_equal(cfg->spool, "./var");
    assert_string_equal(cfg->control_socket, "./var/control.sock");
    assert_string_equal(cfg->module_path[0], "/usr/lib/modmta/modules");
    assert_string_equal(cfg->module_path[1], "./build/modules");
    assert_null(cfg->module_path[2]);
    assert_string_equal(cfg->local_domains[0], "example.com");
    assert_string_equal(cfg->local_domains[1], "mail.example.com");
    assert_string_equal(cfg->local_domains[2], "localhost");
    assert_null(cfg->local_domains[3]);
    assert_int_equal(cfg->log_level, MODMTA_LOG_DEBUG);
    assert_true(cfg->log_syslog);
    assert_string_equal(cfg->log_facility, "local3");
    assert_int_equal(cfg->limits.max_sessions, 200);
    assert_int_equal(cfg->limits.max_sessions_per_client, 5);
    assert_int_equal(cfg->limits.message_size, 0);
    assert_int_equal(cfg->limits.recipients, 50);
    assert_int_equal(cfg->limits.command_timeout, 60);
    assert_int_equal(cfg->limits.data_timeout, 120);
    assert_int_equal(cfg->limits.errors, 3);
    assert_int_equal(cfg->limits.rewrite_depth, 4);
    assert_int_equal(cfg->limits.rewrite_max, 20);
    assert_true(cfg->smtp.helo_required);
    assert_true(cfg->smtp.strict_envelopes);
    assert_int_equal(cfg->queue.lifetime, 86400);
    assert_int_equal(cfg->queue.retry_min, 60);
    assert_int_equal(cfg->queue.retry_max, 600);
    assert_int_equal(cfg->queue.workers, 8);
    assert_string_equal(cfg->tls.cert, "/etc/modmta/cert.pem");
    assert_string_equal(cfg->tls.key, "/etc/modmta/key.pem");
    assert_string_equal(cfg->tls.min_version, "TLSv1.3");
    assert_string_equal(cfg->tls.ciphers, "HIGH:!aNULL");
    /* Redis defaults are filled into the object the modules will read. */
    assert_non_null(cfg->redis);
    assert_string_equal(json_string_value(json_object_get(cfg->redis,
                        "address")), "[::1]:6379");
    assert_int_equal(json_integer_value(json_object_get(cfg->redis, "db")),
                     0);
    assert_string_equal(json_string_value(json_object_get(cfg->redis,
                        "prefix")), "modmta:");

    assert_int_equal(cfg->nlisteners, 5);
    assert_string_equal(l[0].name, "mx");
    assert_inet(&l[0], AF_INET, "0.0.0.0", 25);
    assert_string_equal(l[0].protocol, "smtp");
    assert_int_equal(l[0].tls, TLS_STARTTLS);   /* a cert is configured */
    assert_int_equal(l[0].auth, AUTH_OPTIONAL);
    assert_string_equal(l[1].name, "mx6");
    assert_string_equal(l[1].address, "[::1]:2525");
    assert_inet(&l[1], AF_INET6, "::1", 2525);
    assert_int_equal(l[2].tls, TLS_STARTTLS_REQUIRED);
    assert_int_equal(l[2].auth, AUTH_REQUIRED);
    assert_int_equal(l[3].tls, TLS_IMPLICIT);
    assert_string_equal(l[4].protocol, "pop3");
    assert_int_equal(l[4].tls, TLS_NONE);
    assert_int_equal(json_array_size(cfg->modules), 2);
    config_free(cfg);
}

/* The documented production example stays valid. */
static void
test_example(void **state)
{
    struct config *cfg = load_ok(CONFIG_EXAMPLE);

    (void)state;
    assert_string_equal(cfg->hostname, "mail.example.com");
    assert_int_equal(cfg->nlisteners, 5);
    assert_int_equal(cfg->listeners[1].tls, TLS_STARTTLS_REQUIRED);
    assert_int_equal(cfg->listeners[2].tls, TLS_IMPLICIT);
    assert_string_equal(cfg->listeners[3].protocol, "pop3");
    assert_int_equal(cfg->listeners[4].tls, TLS_IMPLICIT);
    assert_int_equal(json_array_size(cfg->modules), 9);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(cfg->modules, 8), "module")),
                        "deliver_smtp");
    assert_true(cfg->log_syslog);
    config_free(cfg);
}

/* Keys left out take their defaults; the key defaults to the cert. */
static void
test_minimal(void **state)
{
    struct config *cfg = load_ok(fixture("minimal.json"));

    (void)state;
    assert_string_equal(cfg->tls.cert, "both.pem");
    assert_string_equal(cfg->tls.key, "both.pem");
    assert_string_equal(cfg->control_socket,
                        "/srv/modmta/spool/control.sock");
    assert_int_equal(cfg->nlisteners, 1);
    assert_string_equal(cfg->listeners[0].name, "smtp");
    assert_int_equal(cfg->listeners[0].tls, TLS_STARTTLS);
    assert_string_equal(json_string_value(json_object_get(cfg->redis,
                        "prefix")), "");
    assert_string_equal(json_string_value(json_object_get(cfg->redis,
                        "address")), "127.0.0.1:6379");
    assert_true(json_is_array(cfg->modules));
    assert_int_equal(json_array_size(cfg->modules), 0);
    assert_string_equal(cfg->local.socket,
                        "/srv/modmta/spool/public/submit.sock");
    assert_string_equal(cfg->local.maildrop, "/srv/modmta/spool/maildrop");
    assert_int_equal(cfg->local.pickup_interval, 60);
    config_free(cfg);
}

static void
test_local_submission(void **state)
{
    struct config *cfg = load_ok(fixture("local_submission.json"));

    (void)state;
    assert_string_equal(cfg->local.socket, "/run/modmta/submit.sock");
    assert_string_equal(cfg->local.maildrop, "/var/spool/modmta/maildrop");
    assert_string_equal(cfg->local.domain, "example.org");
    assert_int_equal(cfg->local.pickup_interval, 300);
    config_free(cfg);
}

static void
test_local_submission_bad(void **state)
{
    static const char *const want[] = {
        "$.local_submission.other: unknown key",
        "$.local_submission.socket: expected a non-empty string",
        "$.local_submission.maildrop: expected a non-empty string",
        "$.local_submission.domain: \"not a domain\" is not a domain name",
        "$.local_submission.pickup_interval: expected an integer from 1 to "
        "86400",
        NULL
    };

    (void)state;
    load_fails(fixture("local_submission_bad.json"), want);
}

static void
test_unknown_keys(void **state)
{
    static const char *const want[] = {
        "$.spoool: unknown key",
        "$.Modules: unknown key",
        "$.log.colour: unknown key",
        "$.limits.max_sesions: unknown key",
        "$.smtp.strict_rfc821_envelopes: unknown key",
        "$.tls.chain: unknown key",
        "$.redis.passwd: unknown key",
        "$.listen[0].port: unknown key",
        NULL
    };

    (void)state;
    load_fails(fixture("unknown_keys.json"), want);
}

static void
test_types(void **state)
{
    static const char *const want[] = {
        "$.hostname: expected a non-empty string",
        "$.user: expected a non-empty string",
        "$.run_as_root: expected true or false",
        "$.daemonize: expected true or false",
        "$.spool: expected a non-empty string",
        "$.module_path: expected an array of strings",
        "$.local_domains[1]: expected a non-empty string",
        "$.local_domains[2]: expected a non-empty string",
        "$.local_domains[3]: \"bad domain\" is not a domain name",
        "$.log.level: expected one of err, warn, notice, info, debug",
        "$.log.syslog: expected true or false",
        "$.log.facility: expected one of mail, daemon, user, local0, "
        "local1, local2, local3, local4, local5, local6, local7",
        "$.limits.max_sessions: expected an integer from 1 to 2147483647",
        "$.limits.message_size: expected an integer >= 0",
        "$.limits.recipients: expected an integer from 1 to 2147483647",
        "$.limits.command_timeout: expected an integer from 1 to 86400",
        "$.limits.data_timeout: expected an integer from 1 to 86400",
        "$.smtp.helo_required: expected true or false",
        "$.queue.workers: expected an integer from 1 to 1024",
        "$.tls.min_version: expected one of TLSv1.2, TLSv1.3",
        "$.tls.ciphers: expected a non-empty string",
        "$.redis.address: \"redis.example.com:6379\": \"redis.example.com\""
        " is a host name, expected an IP address (names are never resolved)",
        "$.redis.db: expected an integer from 0 to 2147483647",
        "$.redis.prefix: expected a string",
        "$.listen[1].name: \"sub mission\": expected letters, digits, '-', "
        "'_' and '.'",
        "$.listen[1].protocol: expected a non-empty string",
        "$.listen[1].tls: expected one of none, starttls, "
        "starttls-required, implicit",
        "$.listen[1].auth: expected one of optional, required",
        NULL
    };

    (void)state;
    load_fails(fixture("types.json"), want);
}

static void
test_addresses(void **state)
{
    static const char *const want[] = {
        "$.listen[0].address: \"localhost:25\": \"localhost\" is a host "
        "name, expected an IP address (names are never resolved)",
        "$.listen[1].address: \"mail.example.com:25\": \"mail.example.com\""
        " is a host name, expected an IP address (names are never "
        "resolved)",
        "$.listen[2].address: \"::1:25\": an IPv6 address goes in "
        "brackets: \"[IPv6]:port\"",
        "$.listen[3].address: \"[::1]\": expected \"[IPv6]:port\"",
        "$.listen[4].address: \"127.0.0.1:0\": expected a port from 1 to "
        "65535",
        "$.listen[5].address: \"127.0.0.1:70000\": expected a port from 1 "
        "to 65535",
        "$.listen[6].address: \"999.1.1.1:25\": \"999.1.1.1\" is not an "
        "IPv4 address",
        "$.listen[7].address: \"[::g]:25\": \"::g\" is not an IPv6 address",
        "$.listen[8].address: \"127.0.0.1\": expected \"IPv4:port\" or "
        "\"[IPv6]:port\"",
        "$.listen[9].address: required, expected \"IPv4:port\" or "
        "\"[IPv6]:port\"",
        "$.listen[10].name: required, expected a non-empty string",
        "$.listen[12]: expected an object",
        NULL
    };

    (void)state;
    load_fails(fixture("addresses.json"), want);
}

static void
test_names(void **state)
{
    static const char *const want[] = {
        "$.hostname: \"mail example.com\" is not a valid host name",
        "$.control_socket: \"/run/"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/control.sock\" is "
        "longer than 107 bytes, the limit of a socket path",
        "$.recipient_delimiter: expected 1 to 8 delimiter characters "
        "(\"+\", \"+-\"): no letter, digit, space, control character or "
        "any of @ \" \\ . ( ) < > , ; : [ ]",
        "$.redis.address: \"redis.sock\": expected \"IP:port\", "
        "\"[IPv6]:port\" or the absolute path of a socket",
        NULL
    };

    (void)state;
    load_fails(fixture("names.json"), want);
}

/* The default socket path follows spool, and is checked too; a socket
 * path for Redis is fine. */
static void
test_long_spool(void **state)
{
    static const char *const want[] = {
        "$.control_socket: \"/var/"
        "ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
        "ssssssssssssssssssssssssssssssssss/control.sock\" (from spool) is "
        "longer than 107 bytes, the limit of a socket path",
        "$.local_submission.socket: \"/var/"
        "ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
        "ssssssssssssssssssssssssssssssssss/public/submit.sock\" (from "
        "spool) is longer than 107 bytes, the limit of a socket path",
        NULL
    };

    (void)state;
    load_fails(fixture("long_spool.json"), want);
}

static void
test_duplicates(void **state)
{
    static const char *const want[] = {
        "$.listen[1].name: \"mx\" is already the name of $.listen[0]",
        "$.listen[3].address: \"127.0.0.1:2525\" is already the address "
        "of $.listen[0]",
        "$.listen[4].address: \"[0:0::1]:2525\" is already the address "
        "of $.listen[2]",
        NULL
    };

    (void)state;
    load_fails(fixture("duplicates.json"), want);
}

static void
test_tls_without_cert(void **state)
{
    static const char *const want[] = {
        "$.tls.key: set without tls.cert",
        "$.listen[1].tls: \"starttls-required\" needs a certificate in "
        "tls.cert",
        "$.listen[2].tls: \"implicit\" needs a certificate in tls.cert",
        "$.listen[3].tls: \"starttls\" needs a certificate in tls.cert",
        NULL
    };

    (void)state;
    load_fails(fixture("tls_modes.json"), want);
}

static void
test_syntax_error(void **state)
{
    static const char *const want[] = {
        "@:3:26: string or '}' expected near '}'", NULL
    };

    (void)state;
    load_fails(fixture("syntax.json"), want);
}

static void
test_duplicate_key(void **state)
{
    static const char *const want[] = {
        "@:3:9: duplicate object key near '\"spool\"'", NULL
    };

    (void)state;
    load_fails(fixture("duplicate_key.json"), want);
}

static void
test_missing_file(void **state)
{
    static const char *const want[] = {
        "@: No such file or directory", NULL
    };

    (void)state;
    load_fails(fixture("no-such-file.json"), want);
}

static void
test_not_object(void **state)
{
    static const char *const want[] = { "$: expected an object", NULL };

    (void)state;
    load_fails(fixture("not_object.json"), want);
}

static void
test_modules_not_array(void **state)
{
    static const char *const want[] = {
        "$.modules: expected an array of objects", NULL
    };

    (void)state;
    load_fails(fixture("modules_not_array.json"), want);
}

static void
test_modules_bad(void **state)
{
    static const char *const want[] = {
        "$.modules[1].module: required, expected a module name",
        "$.modules[2]: expected an object",
        "$.modules[3].module: expected a module name (letters, digits, "
        "'-' and '_')",
        "$.modules[4].module: expected a module name (letters, digits, "
        "'-' and '_')",
        NULL
    };

    (void)state;
    load_fails(fixture("modules_bad.json"), want);
}

static void
test_queue_and_empty_listen(void **state)
{
    static const char *const want[] = {
        "$.queue.retry_max: 600 is less than retry_min (900)",
        "$.listen: expected a non-empty array of objects",
        NULL
    };

    (void)state;
    load_fails(fixture("queue_retry.json"), want);
}

/* Every "redis" key; times as strings or integers become integers, the
 * way the backend reads them. */
static void
test_redis_full(void **state)
{
    struct config *cfg = load_ok(fixture("redis_full.json"));
    const json_t *r = cfg->redis;

    (void)state;
    assert_string_equal(json_string_value(json_object_get(r, "address")),
                        "/run/redis/redis.sock");
    assert_int_equal(json_integer_value(json_object_get(r, "db")), 2);
    assert_string_equal(json_string_value(json_object_get(r, "password")),
                        "s3cret");
    assert_int_equal(json_integer_value(json_object_get(r, "pool")), 8);
    assert_true(json_is_integer(json_object_get(r, "timeout")));
    assert_int_equal(json_integer_value(json_object_get(r, "timeout")), 3);
    assert_int_equal(json_integer_value(json_object_get(r,
                     "connect_timeout")), 1);
    config_free(cfg);
}

/* Sentinels instead of an address: no default address is added; the
 * other defaults are. */
static void
test_redis_sentinel(void **state)
{
    struct config *cfg = load_ok(fixture("redis_sentinel.json"));
    const json_t *r = cfg->redis;

    (void)state;
    assert_null(json_object_get(r, "address"));
    assert_int_equal(json_array_size(json_object_get(r, "sentinels")), 2);
    assert_string_equal(json_string_value(json_object_get(r, "master")),
                        "mymaster");
    assert_int_equal(json_integer_value(json_object_get(r, "pool")), 4);
    assert_int_equal(json_integer_value(json_object_get(r, "timeout")), 2);
    assert_int_equal(json_integer_value(json_object_get(r,
                     "connect_timeout")), 2);
    assert_int_equal(json_integer_value(json_object_get(r, "db")), 0);
    config_free(cfg);
}

static void
test_redis_bad(void **state)
{
    static const char *const bad[] = {
        "$.redis.sentinels[1]: \"sentinel.example.com:26379\": "
        "\"sentinel.example.com\" is a host name, expected an IP address "
        "(names are never resolved)",
        "$.redis.sentinels[2]: \"/run/sentinel.sock\": expected "
        "\"IP:port\" or \"[IPv6]:port\"",
        "$.redis.sentinels[3]: expected a non-empty string",
        "$.redis.address: either \"address\" or \"sentinels\", not both",
        "$.redis.master: required with \"sentinels\": the name the "
        "sentinels monitor",
        "$.redis.password: expected a non-empty string",
        "$.redis.pool: expected an integer from 1 to 64",
        "$.redis.timeout: \"2 seconds\": expected a time from 1 to 3600 "
        "seconds, as an integer or with a unit (\"30s\", \"15m\", \"4h\", "
        "\"5d\")",
        "$.redis.connect_timeout: expected an integer from 1 to 3600",
        NULL
    };
    static const char *const master[] = {
        "$.redis.sentinels: expected at least one \"IP:port\"",
        "$.redis.master: expected a non-empty string",
        NULL
    };
    static const char *const no_sentinels[] = {
        "$.redis.master: only with \"sentinels\"",
        "$.redis.password: expected a non-empty string",
        NULL
    };

    (void)state;
    load_fails(fixture("redis_bad.json"), bad);
    load_fails(fixture("redis_master.json"), master);
    load_fails(fixture("redis_no_sentinels.json"), no_sentinels);
}

static void
test_errors_add(void **state)
{
    struct config_errors errs = { NULL, 0 };

    (void)state;
    config_errors_add(&errs, "$.a[2]", "expected %s", "a string");
    config_errors_add(&errs, NULL, "out of %s", "memory");
    config_errors_add(&errs, "", "plain");
    assert_int_equal(errs.n, 3);
    assert_string_equal(errs.msgs[0], "$.a[2]: expected a string");
    assert_string_equal(errs.msgs[1], "out of memory");
    assert_string_equal(errs.msgs[2], "plain");
    config_errors_free(&errs);
    assert_int_equal(errs.n, 0);
    assert_null(errs.msgs);
    config_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_default_text),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_long_spool),
        cmocka_unit_test(test_local_submission),
        cmocka_unit_test(test_local_submission_bad),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_tls_without_cert),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_not_object),
        cmocka_unit_test(test_modules_not_array),
        cmocka_unit_test(test_modules_bad),
        cmocka_unit_test(test_queue_and_empty_listen),
        cmocka_unit_test(test_errors_add),
        cmocka_unit_test(test_redis_full),
        cmocka_unit_test(test_redis_sentinel),
        cmocka_unit_test(test_redis_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
