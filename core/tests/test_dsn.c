/*
 * Unit tests of RFC 3464 delivery status notifications (core/dsn.c):
 * the generated message is parsed back (headers, MIME parts, boundary,
 * per-recipient fields).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <files.h>

#include "dsn.h"
#include "queue.h"

#define ORIG "From: alice@example.org\r\nSubject: Hello there\r\n" \
             "Message-ID: <m1@example.org>\r\n\r\nsecret body line\r\n"
#define HOST "mx.example.net"

struct fixture {
    char spool[64];
    queue *q;
    queue_rcpt rcpts[6];
    queue_env env;
    char path[256];
};

static int
setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    queue_rcpt rcpts[6] = {
        {.addr = "bob@example.com", .orcpt = "bob@example.com",
         .state = QRCPT_FAILED, .status = "550 5.1.1 <bob>: user unknown"},
        {.addr = "carol@example.com", .orcpt = "carol-alias@example.com",
         .state = QRCPT_FAILED, .status = "mailbox is full"},
        {.addr = "dave@example.com", .state = QRCPT_DELIVERED,
         .status = "250 2.0.0 ok"},
        {.addr = "erin@example.com", .state = QRCPT_FAILED,
         .status = "5.1.1 gone", .dsn_sent = 1},
        {.addr = "frank@example.com", .state = QRCPT_FAILED,
         .status = "4.4.7 message expired\r\nX-Injected: yes"},
        {.addr = "gina@example.com", .state = QRCPT_PENDING},
    };
    modmta_err err;
    queue_writer *w;

    assert_non_null(fx);
    modmta_test_tmpdir(fx->spool, sizeof(fx->spool), "modmta-dsntest");
    fx->q = queue_open(fx->spool, &err);
    assert_non_null(fx->q);
    memcpy(fx->rcpts, rcpts, sizeof(rcpts));
    fx->env = (queue_env){
        .sender = "alice@example.org", .rcpts = fx->rcpts, .nrcpts = 6,
        .arrival = 1700000000, .helo = "client.example.org",
    };
    w = queue_writer_new(fx->q, &err);
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, ORIG, strlen(ORIG)), 0);
    assert_int_equal(queue_writer_commit(w, &fx->env), 0);
    assert_int_equal(queue_content_path(fx->q, fx->env.id, fx->path,
                                        sizeof(fx->path)), 0);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *fx = *state;

    queue_close(fx->q);
    modmta_test_rmtree(fx->spool);
    free(fx);
    return 0;
}

static int
count_cb(const queue_env *env, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static int
queue_count(queue *q)
{
    int n = 0;

    assert_int_equal(queue_foreach(q, count_cb, &n), 0);
    return n;
}

/* Does the header block (or part headers) hold this exact line? */
static int
has_line(const char *block, size_t len, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = block; p < block + len;) {
        const char *e = strstr(p, "\r\n");

        if (e == NULL || e > block + len)
            e = block + len;
        if ((size_t)(e - p) == n && memcmp(p, line, n) == 0)
            return 1;
        p = e + 2;
    }
    return 0;
}

static int
count_prefix(const char *s, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);

    for (const char *p = s; p != NULL; p = strstr(p, "\r\n")) {
        if (p != s)
            p += 2;
        n += strncmp(p, prefix, len) == 0;
    }
    return n;
}

/* One recipient group of the delivery-status part, by Final-Recipient. */
static char *
rcpt_group(const char *status_part, const char *addr)
{
    char key[128];
    const char *start, *end;

    snprintf(key, sizeof(key), "\r\nFinal-Recipient: rfc822; %s\r\n", addr);
    start = strstr(status_part, key);
    if (start == NULL)
        return NULL;
    start += 2;
    end = strstr(start, "\r\n\r\n");
    if (end == NULL)
        end = start + strlen(start);
    return strndup(start, (size_t)(end - start + 2));
}

struct parsed {
    char *msg;
    size_t hdr_len;        /* top-level header block */
    char boundary[128];
    char *parts[8];        /* each part: headers, blank line, body */
    int nparts;
};

static void
parse_dsn(const char *path, struct parsed *p)
{
    char delim[160];
    const char *b, *body, *cur, *next;

    memset(p, 0, sizeof(*p));
    p->msg = modmta_test_read_file(path, NULL);
    assert_non_null(p->msg);
    /* every line ends in CRLF */
    for (const char *c = p->msg; (c = strchr(c, '\n')) != NULL; c++)
        assert_true(c > p->msg && c[-1] == '\r');
    body = strstr(p->msg, "\r\n\r\n");
    assert_non_null(body);
    p->hdr_len = (size_t)(body - p->msg) + 2;
    body += 4;
    b = strstr(p->msg, "boundary=\"");
    assert_non_null(b);
    assert_true(b < body);
    b += strlen("boundary=\"");
    assert_true(strchr(b, '"') - b < (long)sizeof(p->boundary));
    snprintf(p->boundary, sizeof(p->boundary), "%.*s",
             (int)(strchr(b, '"') - b), b);
    assert_true(strlen(p->boundary) >= 1 && strlen(p->boundary) <= 70);

    snprintf(delim, sizeof(delim), "\r\n--%s", p->boundary);
    cur = strstr(body - 2, delim);
    assert_non_null(cur);
    for (;;) {
        cur += strlen(delim);
        if (strncmp(cur, "--", 2) == 0)
            break;                     /* close delimiter */
        assert_int_equal(strncmp(cur, "\r\n", 2), 0);
        cur += 2;
        next = strstr(cur, delim);
        assert_non_null(next);
        assert_true(p->nparts < 8);
        p->parts[p->nparts++] = strndup(cur, (size_t)(next - cur));
        cur = next;
    }
}

static void
parsed_free(struct parsed *p)
{
    for (int i = 0; i < p->nparts; i++)
        free(p->parts[i]);
    free(p->msg);
}

static const char *
part_body(const char *part)
{
    const char *b = strstr(part, "\r\n\r\n");

    assert_non_null(b);
    return b + 4;
}

static void
test_dsn_message(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX], path[256], line[256], *g;
    struct parsed p;
    queue_env *dsn;
    const char *st;

    assert_int_equal(dsn_bounce(fx->q, &fx->env, fx->path, HOST,
                                1700000500, id), DSN_QUEUED);
    assert_true(queue_id_valid(id));
    assert_string_not_equal(id, fx->env.id);
    assert_int_equal(queue_count(fx->q), 2);

    /* envelope: from <> to the original sender */
    assert_int_equal(queue_load(fx->q, id, &dsn), 0);
    assert_string_equal(dsn->sender, "");
    assert_int_equal(dsn->nrcpts, 1);
    assert_string_equal(dsn->rcpts[0].addr, "alice@example.org");
    assert_int_equal(dsn->rcpts[0].state, QRCPT_PENDING);
    queue_env_free(dsn);

    assert_int_equal(queue_content_path(fx->q, id, path, sizeof(path)), 0);
    parse_dsn(path, &p);
    assert_true(has_line(p.msg, p.hdr_len,
        "From: MAILER-DAEMON@" HOST " (Mail Delivery System)"));
    assert_true(has_line(p.msg, p.hdr_len, "To: <alice@example.org>"));
    assert_true(has_line(p.msg, p.hdr_len,
                         "Subject: Undelivered Mail Returned to Sender"));
    assert_true(has_line(p.msg, p.hdr_len, "Auto-Submitted: auto-replied"));
    assert_true(has_line(p.msg, p.hdr_len, "MIME-Version: 1.0"));
    snprintf(line, sizeof(line), "Message-ID: <%s@%s>", id, HOST);
    assert_true(has_line(p.msg, p.hdr_len, line));
    assert_non_null(strstr(p.msg, "\r\nDate: "));
    assert_non_null(strstr(p.msg, "Content-Type: multipart/report; "
                                  "report-type=delivery-status;"));

    assert_int_equal(p.nparts, 3);
    assert_non_null(strstr(p.parts[0],
                           "Content-Type: text/plain; charset=us-ascii"));
    assert_non_null(strstr(p.parts[0], "<bob@example.com>: 550 5.1.1"));
    assert_null(strstr(p.parts[0], "dave@example.com"));
    assert_non_null(strstr(p.parts[1],
                           "Content-Type: message/delivery-status\r\n"));
    assert_non_null(strstr(p.parts[2],
                           "Content-Type: text/rfc822-headers\r\n"));

    /* message/delivery-status: per-message fields, then one group per
     * failed recipient not yet reported */
    st = part_body(p.parts[1]);
    assert_int_equal(strncmp(st, "Reporting-MTA: dns; " HOST "\r\n", 36), 0);
    assert_true(has_line(st, strlen(st),
                         "Received-From-MTA: dns; client.example.org"));
    assert_int_equal(count_prefix(st, "Arrival-Date: "), 1);
    assert_int_equal(count_prefix(st, "Final-Recipient: "), 3);
    assert_int_equal(count_prefix(st, "Action: failed"), 3);
    assert_int_equal(count_prefix(st, "Status: "), 3);
    assert_int_equal(count_prefix(st, "Original-Recipient: "), 1);
    assert_int_equal(count_prefix(st, "X-Injected"), 0);
    assert_null(strstr(st, "dave@"));
    assert_null(strstr(st, "erin@"));
    assert_null(strstr(st, "gina@"));

    g = rcpt_group(st, "bob@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g), "Status: 5.1.1"));
    assert_true(has_line(g, strlen(g), "Action: failed"));
    assert_true(has_line(g, strlen(g),
        "Diagnostic-Code: smtp; 550 5.1.1 <bob>: user unknown"));
    assert_null(strstr(g, "Original-Recipient"));
    free(g);
    g = rcpt_group(st, "carol@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g), "Status: 5.0.0"));
    assert_true(has_line(g, strlen(g),
        "Original-Recipient: rfc822; carol-alias@example.com"));
    free(g);
    g = rcpt_group(st, "frank@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g), "Status: 4.4.7"));
    free(g);

    /* the original headers, not the body */
    st = part_body(p.parts[2]);
    assert_int_equal(strncmp(st, "From: alice@example.org\r\n", 25), 0);
    assert_true(has_line(st, strlen(st), "Subject: Hello there"));
    assert_null(strstr(st, "secret body line"));
    parsed_free(&p);
}

static void
test_dsn_null_sender(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX] = "X";

    fx->env.sender = "";
    assert_int_equal(dsn_bounce(fx->q, &fx->env, fx->path, HOST,
                                1700000500, id), DSN_NULL_SENDER);
    assert_string_equal(id, "");
    assert_int_equal(queue_count(fx->q), 1);
}

static void
test_dsn_mark_sent(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX];

    assert_int_equal(dsn_mark_sent(&fx->env), 3);
    assert_int_equal(fx->rcpts[0].dsn_sent, 1);
    assert_int_equal(fx->rcpts[2].dsn_sent, 0);    /* delivered */
    assert_int_equal(fx->rcpts[5].dsn_sent, 0);    /* pending */
    assert_int_equal(dsn_bounce(fx->q, &fx->env, fx->path, HOST,
                                1700000500, id), DSN_NONE);
    assert_int_equal(queue_count(fx->q), 1);
    assert_int_equal(dsn_mark_sent(&fx->env), 0);
}

/* A failed recipient marked no_dsn (a bcc copy) is never reported:
 * alone it queues nothing; beside others it is left out of the report. */
static void
test_dsn_no_dsn(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX], path[256];
    struct parsed p;
    const char *st;

    fx->rcpts[0].no_dsn = 1;
    assert_int_equal(dsn_rcpt_due(&fx->rcpts[0]), 0);
    assert_int_equal(dsn_rcpt_due(&fx->rcpts[1]), 1);
    assert_int_equal(dsn_bounce(fx->q, &fx->env, fx->path, HOST,
                                1700000500, id), DSN_QUEUED);
    assert_int_equal(queue_content_path(fx->q, id, path, sizeof(path)), 0);
    parse_dsn(path, &p);
    st = part_body(p.parts[1]);
    assert_null(strstr(st, "bob@example.com"));
    assert_non_null(strstr(st, "carol@example.com"));
    assert_null(strstr(part_body(p.parts[0]), "bob@example.com"));
    parsed_free(&p);
    assert_int_equal(dsn_mark_sent(&fx->env), 2);
    assert_int_equal(fx->rcpts[0].dsn_sent, 0);

    /* only no_dsn failures left: nothing to send */
    fx->rcpts[1].no_dsn = 1;
    fx->rcpts[1].dsn_sent = 0;
    fx->rcpts[4].dsn_sent = 1;
    assert_int_equal(dsn_bounce(fx->q, &fx->env, fx->path, HOST,
                                1700000600, id), DSN_NONE);
    assert_int_equal(queue_count(fx->q), 2);
}

/* Recipients with their own envelope sender (a list's owner) are
 * reported to it, apart from the others; never to <>. */
static void
test_dsn_by_sender(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX], path[256];
    const char *owner = "owner-list@example.com";
    char *targets[] = {"boss@example.com", "deputy@example.com"};
    struct parsed p;
    queue_env *dsn;
    const char *st;

    fx->rcpts[0].sender = (char *)owner;       /* bob */
    fx->rcpts[1].sender = "";                  /* carol: <> */
    assert_string_equal(dsn_rcpt_sender(&fx->env, &fx->rcpts[0]), owner);
    assert_string_equal(dsn_rcpt_sender(&fx->env, &fx->rcpts[4]),
                        "alice@example.org");

    /* the message's sender: frank only */
    assert_int_equal(dsn_bounce(fx->q, &fx->env, fx->path, HOST,
                                1700000500, id), DSN_QUEUED);
    assert_int_equal(queue_content_path(fx->q, id, path, sizeof(path)), 0);
    parse_dsn(path, &p);
    assert_true(has_line(p.msg, p.hdr_len, "To: <alice@example.org>"));
    st = part_body(p.parts[1]);
    assert_non_null(strstr(st, "frank@example.com"));
    assert_null(strstr(st, "bob@example.com"));
    assert_null(strstr(st, "carol@example.com"));
    parsed_free(&p);

    /* the owner: bob only, to the owner, delivered to what the owner
     * expands to */
    assert_int_equal(dsn_bounce_to(fx->q, &fx->env, owner, targets, 2,
                                   fx->path, HOST, 1700000500, id),
                     DSN_QUEUED);
    assert_int_equal(queue_load(fx->q, id, &dsn), 0);
    assert_string_equal(dsn->sender, "");
    assert_int_equal(dsn->nrcpts, 2);
    assert_string_equal(dsn->rcpts[0].addr, "boss@example.com");
    assert_string_equal(dsn->rcpts[1].addr, "deputy@example.com");
    assert_string_equal(dsn->rcpts[1].orcpt, owner);
    queue_env_free(dsn);
    assert_int_equal(queue_content_path(fx->q, id, path, sizeof(path)), 0);
    parse_dsn(path, &p);
    assert_true(has_line(p.msg, p.hdr_len,
                         "To: <owner-list@example.com>"));
    st = part_body(p.parts[1]);
    assert_non_null(strstr(st, "bob@example.com"));
    assert_null(strstr(st, "frank@example.com"));
    assert_null(strstr(part_body(p.parts[0]), "frank@example.com"));
    parsed_free(&p);

    /* <>: nothing queued */
    assert_int_equal(dsn_bounce_to(fx->q, &fx->env, "", NULL, 0, fx->path,
                                   HOST, 1700000500, id), DSN_NULL_SENDER);
    assert_int_equal(queue_count(fx->q), 3);

    /* marking by sender */
    assert_int_equal(dsn_mark_sent_to(&fx->env, owner), 1);
    assert_int_equal(fx->rcpts[0].dsn_sent, 1);
    assert_int_equal(fx->rcpts[4].dsn_sent, 0);
    assert_int_equal(dsn_bounce_to(fx->q, &fx->env, owner, NULL, 0,
                                   fx->path, HOST, 1700000500, id),
                     DSN_NONE);
    assert_int_equal(dsn_mark_sent(&fx->env), 2);
}

/* The content is gone: the report is still sent, without headers. */
static void
test_dsn_missing_content(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX], path[256];
    struct parsed p;

    assert_int_equal(dsn_bounce(fx->q, &fx->env, "/nonexistent/x.msg", HOST,
                                1700000500, id), DSN_QUEUED);
    assert_int_equal(queue_content_path(fx->q, id, path, sizeof(path)), 0);
    parse_dsn(path, &p);
    assert_int_equal(p.nparts, 3);
    assert_string_equal(part_body(p.parts[2]), "");
    parsed_free(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dsn_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_null_sender, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dsn_mark_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_by_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_no_dsn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_missing_content, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
