/*
 * Unit tests of RFC 3464 delivery status notifications (core/dsn.c):
 * what is due for each recipient (NOTIFY, delay warnings), and the
 * generated message parsed back (headers, MIME parts, boundary,
 * per-message and per-recipient fields).
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
#define ARRIVAL 1700000000
#define NOW (ARRIVAL + 500)
#define LIFETIME 432000

struct fixture {
    char spool[64];
    queue *q;
    queue_rcpt rcpts[6];
    queue_param params[4];
    queue_env env;
    char path[256];
    struct dsn_params p;
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
        .arrival = ARRIVAL, .helo = "client.example.org",
        .params = fx->params,
    };
    w = queue_writer_new(fx->q, &err);
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, ORIG, strlen(ORIG)), 0);
    assert_int_equal(queue_writer_commit(w, &fx->env), 0);
    assert_int_equal(queue_content_path(fx->q, fx->env.id, fx->path,
                                        sizeof(fx->path)), 0);
    fx->p = (struct dsn_params){
        .content_path = fx->path, .hostname = HOST, .now = NOW,
        .delay_warning = 0, .lifetime = LIFETIME,
    };
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

/* One recipient group of the delivery-status part (its fields between
 * empty lines), by Final-Recipient. */
static char *
rcpt_group(const char *status_part, const char *addr)
{
    char key[128];
    const char *start, *end, *p;

    snprintf(key, sizeof(key), "\r\nFinal-Recipient: rfc822; %s\r\n", addr);
    p = strstr(status_part, key);
    if (p == NULL)
        return NULL;
    for (start = p; start > status_part; start--)
        if (strncmp(start, "\r\n\r\n", 4) == 0)
            break;
    start += 4;
    end = strstr(p, "\r\n\r\n");
    if (end == NULL)
        end = p + strlen(p);
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

/* A report to the message's sender (alice), nothing expanded. */
static int
report(struct fixture *fx, char id[QUEUE_ID_MAX])
{
    return dsn_report_to(fx->q, &fx->env, "alice@example.org", NULL, 0,
                         &fx->p, id);
}

static size_t
mark(struct fixture *fx, const char *to)
{
    return dsn_mark_sent_to(&fx->env, to, fx->p.now, fx->p.delay_warning);
}

/* Report, then parse the report queued. */
static void
report_parsed(struct fixture *fx, struct parsed *p)
{
    char id[QUEUE_ID_MAX], path[256];

    assert_int_equal(report(fx, id), DSN_QUEUED);
    assert_int_equal(queue_content_path(fx->q, id, path, sizeof(path)), 0);
    parse_dsn(path, p);
    assert_int_equal(p->nparts, 3);
}

/* Only the recipient at index keep stays due as the fixture has it; the
 * others are reported already. */
static void
only(struct fixture *fx, int keep)
{
    for (int i = 0; i < 6; i++)
        if (i != keep)
            fx->rcpts[i].dsn_sent = 1;
    fx->rcpts[5].state = keep == 5 ? QRCPT_PENDING : QRCPT_DELIVERED;
}

static void
test_dsn_message(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX], path[256], line[256], *g;
    struct parsed p;
    queue_env *dsn;
    const char *st;

    assert_int_equal(report(fx, id), DSN_QUEUED);
    assert_true(queue_id_valid(id));
    assert_string_not_equal(id, fx->env.id);
    assert_int_equal(queue_count(fx->q), 2);

    /* envelope: from <> to the original sender */
    assert_int_equal(queue_load(fx->q, id, &dsn), 0);
    assert_string_equal(dsn->sender, "");
    assert_int_equal(dsn->nrcpts, 1);
    assert_string_equal(dsn->rcpts[0].addr, "alice@example.org");
    assert_int_equal(dsn->rcpts[0].state, QRCPT_PENDING);
    assert_int_equal(dsn->nparams, 0);
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
    assert_non_null(strstr(p.parts[0], "<carol@example.com> (expanded from "
                                       "<carol-alias@example.com>): mailbox"));
    assert_null(strstr(p.parts[0], "dave@example.com"));
    assert_non_null(strstr(p.parts[1],
                           "Content-Type: message/delivery-status\r\n"));
    assert_non_null(strstr(p.parts[2],
                           "Content-Type: text/rfc822-headers\r\n"));
    assert_non_null(strstr(p.parts[2], "Content-Description: Undelivered "
                                       "Message Headers\r\n"));

    /* message/delivery-status: per-message fields, then one group per
     * failed recipient not yet reported */
    st = part_body(p.parts[1]);
    assert_int_equal(strncmp(st, "Reporting-MTA: dns; " HOST "\r\n", 36), 0);
    assert_true(has_line(st, strlen(st),
                         "Received-From-MTA: dns; client.example.org"));
    assert_int_equal(count_prefix(st, "Arrival-Date: "), 1);
    assert_int_equal(count_prefix(st, "Original-Envelope-Id: "), 0);
    assert_int_equal(count_prefix(st, "Final-Recipient: "), 3);
    assert_int_equal(count_prefix(st, "Action: failed"), 3);
    assert_int_equal(count_prefix(st, "Status: "), 3);
    assert_int_equal(count_prefix(st, "Original-Recipient: "), 1);
    assert_int_equal(count_prefix(st, "Will-Retry-Until: "), 0);
    assert_int_equal(count_prefix(st, "Remote-MTA: "), 0);
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
    assert_non_null(strstr(g, "\r\nLast-Attempt-Date: "));
    assert_null(strstr(g, "Original-Recipient"));
    free(g);
    g = rcpt_group(st, "carol@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g), "Status: 5.0.0"));
    /* RFC 3464 2.3: Original-Recipient comes first */
    assert_int_equal(strncmp(g, "Original-Recipient: rfc822; "
                             "carol-alias@example.com\r\n", 51), 0);
    /* a local reason has no SMTP diagnostic, but modmta's own */
    assert_null(strstr(g, "Diagnostic-Code: smtp;"));
    assert_non_null(strstr(g, "\r\nDiagnostic-Code: X-modmta; "));
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
    assert_int_equal(dsn_report_to(fx->q, &fx->env, "", NULL, 0, &fx->p,
                                   id), DSN_NULL_SENDER);
    assert_string_equal(id, "");
    assert_int_equal(queue_count(fx->q), 1);
}

static void
test_dsn_mark_sent(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX];

    assert_int_equal(mark(fx, "alice@example.org"), 3);
    assert_int_equal(fx->rcpts[0].dsn_sent, 1);
    assert_int_equal(fx->rcpts[2].dsn_sent, 0);    /* delivered */
    assert_int_equal(fx->rcpts[5].dsn_sent, 0);    /* pending */
    assert_int_equal(fx->rcpts[5].delay_sent, 0);
    assert_int_equal(report(fx, id), DSN_NONE);
    assert_int_equal(queue_count(fx->q), 1);
    assert_int_equal(mark(fx, "alice@example.org"), 0);
}

/* A failed recipient marked no_dsn (a bcc copy) is never reported:
 * alone it queues nothing; beside others it is left out of the report. */
static void
test_dsn_no_dsn(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX];
    struct parsed p;
    const char *st;

    fx->rcpts[0].no_dsn = 1;
    assert_int_equal(dsn_rcpt_due(&fx->env, &fx->rcpts[0], NOW, 0),
                     DSN_ACT_NONE);
    assert_int_equal(dsn_rcpt_due(&fx->env, &fx->rcpts[1], NOW, 0),
                     DSN_ACT_FAILED);
    report_parsed(fx, &p);
    st = part_body(p.parts[1]);
    assert_null(strstr(st, "bob@example.com"));
    assert_non_null(strstr(st, "carol@example.com"));
    assert_null(strstr(part_body(p.parts[0]), "bob@example.com"));
    parsed_free(&p);
    assert_int_equal(mark(fx, "alice@example.org"), 2);
    assert_int_equal(fx->rcpts[0].dsn_sent, 0);

    /* only no_dsn failures left: nothing to send */
    fx->rcpts[1].no_dsn = 1;
    fx->rcpts[1].dsn_sent = 0;
    fx->rcpts[4].dsn_sent = 1;
    assert_int_equal(report(fx, id), DSN_NONE);
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
    report_parsed(fx, &p);
    assert_true(has_line(p.msg, p.hdr_len, "To: <alice@example.org>"));
    st = part_body(p.parts[1]);
    assert_non_null(strstr(st, "frank@example.com"));
    assert_null(strstr(st, "bob@example.com"));
    assert_null(strstr(st, "carol@example.com"));
    parsed_free(&p);

    /* the owner: bob only, to the owner, delivered to what the owner
     * expands to */
    assert_int_equal(dsn_report_to(fx->q, &fx->env, owner, targets, 2,
                                   &fx->p, id), DSN_QUEUED);
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
    assert_int_equal(dsn_report_to(fx->q, &fx->env, "", NULL, 0, &fx->p,
                                   id), DSN_NULL_SENDER);
    assert_int_equal(queue_count(fx->q), 3);

    /* marking by sender */
    assert_int_equal(mark(fx, owner), 1);
    assert_int_equal(fx->rcpts[0].dsn_sent, 1);
    assert_int_equal(fx->rcpts[4].dsn_sent, 0);
    assert_int_equal(dsn_report_to(fx->q, &fx->env, owner, NULL, 0, &fx->p,
                                   id), DSN_NONE);
    assert_int_equal(mark(fx, "alice@example.org"), 1);
    assert_int_equal(mark(fx, ""), 1);
}

/* The content is gone: the report is still sent, without headers. */
static void
test_dsn_missing_content(void **state)
{
    struct fixture *fx = *state;
    struct parsed p;

    fx->p.content_path = "/nonexistent/x.msg";
    report_parsed(fx, &p);
    assert_string_equal(part_body(p.parts[2]), "");
    parsed_free(&p);
}

/* RFC 3461 4.1 NOTIFY and queue.delay_warning: what is due when. */
static void
test_dsn_due(void **state)
{
    static const struct {
        queue_rcpt_state state;
        unsigned notify;
        int dsn_sent, delay_sent, relayed, no_dsn;
        long age, delay_warning;
        enum dsn_action want;
    } cases[] = {
        {QRCPT_FAILED, 0, 0, 0, 0, 0, 0, 0, DSN_ACT_FAILED},
        {QRCPT_FAILED, QNOTIFY_FAILURE, 0, 0, 0, 0, 0, 0, DSN_ACT_FAILED},
        {QRCPT_FAILED, QNOTIFY_SUCCESS | QNOTIFY_FAILURE, 0, 0, 0, 0, 0, 0,
         DSN_ACT_FAILED},
        {QRCPT_FAILED, QNOTIFY_NEVER, 0, 0, 0, 0, 0, 0, DSN_ACT_NONE},
        {QRCPT_FAILED, QNOTIFY_SUCCESS, 0, 0, 0, 0, 0, 0, DSN_ACT_NONE},
        {QRCPT_FAILED, QNOTIFY_DELAY, 0, 0, 0, 0, 0, 0, DSN_ACT_NONE},
        {QRCPT_FAILED, 0, 1, 0, 0, 0, 0, 0, DSN_ACT_NONE},
        {QRCPT_FAILED, 0, 0, 0, 0, 1, 0, 0, DSN_ACT_NONE},
        {QRCPT_FAILED, 0, 0, 1, 0, 0, 900, 600, DSN_ACT_FAILED},
        {QRCPT_DELIVERED, 0, 0, 0, 0, 0, 0, 0, DSN_ACT_NONE},
        {QRCPT_DELIVERED, QNOTIFY_FAILURE, 0, 0, 0, 0, 0, 0, DSN_ACT_NONE},
        {QRCPT_DELIVERED, QNOTIFY_SUCCESS, 0, 0, 0, 0, 0, 0,
         DSN_ACT_DELIVERED},
        {QRCPT_DELIVERED, QNOTIFY_SUCCESS, 0, 0, 1, 0, 0, 0,
         DSN_ACT_RELAYED},
        {QRCPT_DELIVERED, QNOTIFY_SUCCESS, 1, 0, 0, 0, 0, 0, DSN_ACT_NONE},
        {QRCPT_DELIVERED, QNOTIFY_SUCCESS, 0, 0, 0, 1, 0, 0, DSN_ACT_NONE},
        {QRCPT_DELIVERED, QNOTIFY_NEVER, 0, 0, 1, 0, 0, 0, DSN_ACT_NONE},
        {QRCPT_PENDING, 0, 0, 0, 0, 0, 100000, 0, DSN_ACT_NONE},
        {QRCPT_PENDING, 0, 0, 0, 0, 0, 599, 600, DSN_ACT_NONE},
        {QRCPT_PENDING, 0, 0, 0, 0, 0, 600, 600, DSN_ACT_DELAYED},
        {QRCPT_PENDING, QNOTIFY_DELAY, 0, 0, 0, 0, 900, 600,
         DSN_ACT_DELAYED},
        {QRCPT_PENDING, QNOTIFY_FAILURE | QNOTIFY_SUCCESS, 0, 0, 0, 0, 900,
         600, DSN_ACT_NONE},
        {QRCPT_PENDING, QNOTIFY_NEVER, 0, 0, 0, 0, 900, 600, DSN_ACT_NONE},
        {QRCPT_PENDING, 0, 0, 1, 0, 0, 900, 600, DSN_ACT_NONE},
        {QRCPT_PENDING, 0, 0, 0, 0, 1, 900, 600, DSN_ACT_NONE},
    };
    queue_env env = {.sender = "a@example.org", .arrival = ARRIVAL};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        queue_rcpt r = {
            .addr = "b@example.org", .state = cases[i].state,
            .notify = cases[i].notify, .dsn_sent = cases[i].dsn_sent,
            .delay_sent = cases[i].delay_sent, .relayed = cases[i].relayed,
            .no_dsn = cases[i].no_dsn,
        };
        enum dsn_action got = dsn_rcpt_due(&env, &r,
                                           ARRIVAL + cases[i].age,
                                           cases[i].delay_warning);

        if (got != cases[i].want)
            fail_msg("case %zu: %d, want %d", i, got, cases[i].want);
    }
}

/* NOTIFY=SUCCESS: a delivered recipient gets a success notice, a
 * relayed one says so; without it, nothing. */
static void
test_dsn_success(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX], *g;
    struct parsed p;
    const char *st;

    only(fx, 2);                       /* dave, delivered */
    assert_int_equal(report(fx, id), DSN_NONE);
    fx->rcpts[2].notify = QNOTIFY_SUCCESS;
    fx->rcpts[2].status = "2.0.0 delivered to mailbox";
    report_parsed(fx, &p);
    assert_true(has_line(p.msg, p.hdr_len,
                         "Subject: Successful Mail Delivery Report"));
    assert_non_null(strstr(p.parts[0], "<dave@example.com>: 2.0.0 "
                                       "delivered to mailbox"));
    assert_null(strstr(p.parts[0], "could not"));
    st = part_body(p.parts[1]);
    g = rcpt_group(st, "dave@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g), "Action: delivered"));
    assert_true(has_line(g, strlen(g), "Status: 2.0.0"));
    free(g);
    assert_int_equal(count_prefix(st, "Final-Recipient: "), 1);
    assert_non_null(strstr(p.parts[2], "Content-Description: Message "
                                       "Headers\r\n"));
    parsed_free(&p);
    assert_int_equal(mark(fx, "alice@example.org"), 1);
    assert_int_equal(fx->rcpts[2].dsn_sent, 1);
    assert_int_equal(report(fx, id), DSN_NONE);

    /* handed to a next hop without DSN */
    fx->rcpts[2].dsn_sent = 0;
    fx->rcpts[2].relayed = 1;
    fx->rcpts[2].code = 250;
    fx->rcpts[2].esc = "2.0.0";
    fx->rcpts[2].text = "Ok: queued as 4Xyz";
    fx->rcpts[2].remote = "mx1.example.com";
    report_parsed(fx, &p);
    st = part_body(p.parts[1]);
    g = rcpt_group(st, "dave@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g), "Action: relayed"));
    assert_true(has_line(g, strlen(g), "Remote-MTA: dns; mx1.example.com"));
    assert_true(has_line(g, strlen(g),
        "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 4Xyz"));
    free(g);
    assert_non_null(strstr(p.parts[0], "sends no delivery"));
    parsed_free(&p);
}

/* RET=FULL: a failure returns the whole message as message/rfc822;
 * RET=HDRS, no RET, or a report without failure: the headers only. */
static void
test_dsn_ret(void **state)
{
    struct fixture *fx = *state;
    struct parsed p;
    const char *body;

    fx->params[0] = (queue_param){"RET", "FULL"};
    fx->env.nparams = 1;
    report_parsed(fx, &p);
    assert_non_null(strstr(p.parts[2], "Content-Type: message/rfc822\r\n"));
    assert_non_null(strstr(p.parts[2], "Content-Description: Undelivered "
                                       "Message\r\n"));
    assert_null(strstr(p.parts[2], "Content-Transfer-Encoding"));
    body = part_body(p.parts[2]);
    assert_string_equal(body, ORIG);
    parsed_free(&p);

    fx->params[0] = (queue_param){"RET", "HDRS"};
    report_parsed(fx, &p);
    assert_non_null(strstr(p.parts[2], "text/rfc822-headers"));
    assert_null(strstr(p.parts[2], "secret body line"));
    parsed_free(&p);

    /* no failure in the report: never the body */
    fx->params[0] = (queue_param){"RET", "FULL"};
    only(fx, 2);
    fx->rcpts[2].notify = QNOTIFY_SUCCESS;
    report_parsed(fx, &p);
    assert_non_null(strstr(p.parts[2], "text/rfc822-headers"));
    assert_null(strstr(p.parts[2], "secret body line"));
    parsed_free(&p);
}

/* An 8-bit message returned whole: the part says 8bit, the report's
 * envelope BODY=8BITMIME. */
static void
test_dsn_ret_8bit(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX], path[256];
    struct parsed p;
    queue_env *dsn;

    fx->params[0] = (queue_param){"BODY", "8BITMIME"};
    fx->params[1] = (queue_param){"RET", "FULL"};
    fx->env.nparams = 2;
    assert_int_equal(report(fx, id), DSN_QUEUED);
    assert_int_equal(queue_load(fx->q, id, &dsn), 0);
    assert_int_equal(dsn->nparams, 1);
    assert_string_equal(dsn->params[0].name, "BODY");
    assert_string_equal(dsn->params[0].value, "8BITMIME");
    queue_env_free(dsn);
    assert_int_equal(queue_content_path(fx->q, id, path, sizeof(path)), 0);
    parse_dsn(path, &p);
    assert_non_null(strstr(p.parts[2], "Content-Transfer-Encoding: 8bit"));
    parsed_free(&p);
}

/* ENVID as given (xtext) and ORCPT decoded (RFC 3464 2.2.1, 2.3.1). */
static void
test_dsn_envid_orcpt(void **state)
{
    struct fixture *fx = *state;
    struct parsed p;
    const char *st;
    char *g;

    fx->params[0] = (queue_param){"ENVID", "QQ+2B314159"};
    fx->env.nparams = 1;
    fx->rcpts[0].orcpt_param = "rfc822;b+2Bx@example.com";
    fx->rcpts[1].orcpt_param = "utf-8;carol@example.com";
    report_parsed(fx, &p);
    st = part_body(p.parts[1]);
    assert_int_equal(strncmp(st, "Original-Envelope-Id: QQ+2B314159\r\n"
                             "Reporting-MTA: dns; " HOST "\r\n", 71), 0);
    g = rcpt_group(st, "bob@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g),
                         "Original-Recipient: rfc822; b+x@example.com"));
    free(g);
    /* ORCPT wins over the client's address */
    g = rcpt_group(st, "carol@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g),
                         "Original-Recipient: utf-8; carol@example.com"));
    free(g);
    parsed_free(&p);
}

/* The last reply: Remote-MTA, Diagnostic-Code with its number, lines of
 * a multi-line reply joined, folded within the line limit. */
static void
test_dsn_remote_diag(void **state)
{
    struct fixture *fx = *state;
    char long_text[1500], huge[1500], *g, *un, *o;
    struct parsed p;
    const char *st, *e;

    only(fx, 0);
    fx->rcpts[0].code = 550;
    fx->rcpts[0].esc = "5.7.1";
    fx->rcpts[0].text = "line one\nline two";
    fx->rcpts[0].remote = "mx1.example.com";
    fx->rcpts[0].remote_addr = "192.0.2.1:25";
    report_parsed(fx, &p);
    st = part_body(p.parts[1]);
    g = rcpt_group(st, "bob@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g), "Status: 5.7.1"));
    assert_true(has_line(g, strlen(g), "Remote-MTA: dns; mx1.example.com"));
    assert_true(has_line(g, strlen(g),
        "Diagnostic-Code: smtp; 550 5.7.1 line one line two"));
    free(g);
    parsed_free(&p);

    /* long: folded at spaces; a word longer than a line is cut */
    for (size_t i = 0; i + 6 < sizeof(long_text); i += 6)
        memcpy(long_text + i, "word5 ", 6);
    long_text[sizeof(long_text) - 7] = '\0';         /* no final space */
    memset(huge, 'x', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    fx->rcpts[0].text = long_text;
    report_parsed(fx, &p);
    st = part_body(p.parts[1]);
    g = rcpt_group(st, "bob@example.com");
    assert_non_null(g);
    for (const char *l = g; (e = strstr(l, "\r\n")) != NULL; l = e + 2)
        assert_true(e - l <= 78);
    /* unfolded, the text is whole */
    un = strdup(strstr(g, "Diagnostic-Code: "));
    for (o = un, e = un; *e != '\0'; e++) {
        if (strncmp(e, "\r\n ", 3) == 0) {
            e += 1;
            continue;
        }
        *o++ = *e;
    }
    *o = '\0';
    assert_non_null(strstr(un, long_text + 1));
    free(un);
    free(g);
    parsed_free(&p);

    fx->rcpts[0].text = huge;
    report_parsed(fx, &p);
    for (const char *l = p.parts[1]; (e = strstr(l, "\r\n")) != NULL;
         l = e + 2)
        assert_true(e - l <= 998);
    assert_non_null(strstr(p.parts[1], "\r\n xxxxxxxx"));
    parsed_free(&p);
}

/* queue.delay_warning: a pending recipient gets one warning, never
 * two; then its failure is reported all the same. */
static void
test_dsn_delay(void **state)
{
    struct fixture *fx = *state;
    char id[QUEUE_ID_MAX], *g;
    struct parsed p;
    const char *st;

    only(fx, 5);                       /* gina, pending */
    fx->rcpts[5].status = "host mx[192.0.2.1] said: 451 4.3.0 try later";
    fx->rcpts[5].esc = "4.3.0";
    fx->p.delay_warning = 600;
    assert_int_equal(report(fx, id), DSN_NONE);   /* 500 s old */
    fx->p.now = ARRIVAL + 4 * 3600;
    report_parsed(fx, &p);
    assert_true(has_line(p.msg, p.hdr_len,
                         "Subject: Delayed Mail (still being retried)"));
    assert_non_null(strstr(p.parts[0], "warning only"));
    assert_non_null(strstr(p.parts[0], "in the queue for 4 hours"));
    assert_non_null(strstr(p.parts[0], "until\r\nit is 5 days old"));
    assert_non_null(strstr(p.parts[0], "<gina@example.com>: host mx"));
    st = part_body(p.parts[1]);
    g = rcpt_group(st, "gina@example.com");
    assert_non_null(g);
    assert_true(has_line(g, strlen(g), "Action: delayed"));
    assert_true(has_line(g, strlen(g), "Status: 4.3.0"));
    assert_non_null(strstr(g, "\r\nWill-Retry-Until: "));
    free(g);
    assert_non_null(strstr(p.parts[2], "text/rfc822-headers"));
    parsed_free(&p);
    assert_int_equal(mark(fx, "alice@example.org"), 1);
    assert_int_equal(fx->rcpts[5].delay_sent, 1);
    assert_int_equal(fx->rcpts[5].dsn_sent, 0);
    fx->p.now += 3600;
    assert_int_equal(report(fx, id), DSN_NONE);   /* not twice */

    fx->rcpts[5].state = QRCPT_FAILED;
    assert_int_equal(dsn_worst_to(&fx->env, "alice@example.org", fx->p.now,
                                  fx->p.delay_warning), DSN_ACT_FAILED);
    assert_int_equal(report(fx, id), DSN_QUEUED);
}

/* Failed, delayed and delivered recipients of one sender: one report,
 * named by the failure, each recipient with its own action. */
static void
test_dsn_mixed(void **state)
{
    struct fixture *fx = *state;
    struct parsed p;
    const char *st;

    fx->rcpts[2].notify = QNOTIFY_SUCCESS;         /* dave delivered */
    fx->p.delay_warning = 60;                      /* gina delayed */
    assert_int_equal(dsn_worst_to(&fx->env, "alice@example.org", NOW, 60),
                     DSN_ACT_FAILED);
    report_parsed(fx, &p);
    assert_int_equal(queue_count(fx->q), 2);
    assert_true(has_line(p.msg, p.hdr_len,
                         "Subject: Undelivered Mail Returned to Sender"));
    st = part_body(p.parts[1]);
    assert_int_equal(count_prefix(st, "Final-Recipient: "), 5);
    assert_int_equal(count_prefix(st, "Action: failed"), 3);
    assert_int_equal(count_prefix(st, "Action: delayed"), 1);
    assert_int_equal(count_prefix(st, "Action: delivered"), 1);
    assert_non_null(strstr(p.parts[0], "could not"));
    assert_non_null(strstr(p.parts[0], "warning only"));
    assert_non_null(strstr(p.parts[0], "was delivered"));
    parsed_free(&p);
    assert_int_equal(mark(fx, "alice@example.org"), 5);
    assert_int_equal(fx->rcpts[2].dsn_sent, 1);
    assert_int_equal(fx->rcpts[5].delay_sent, 1);
    assert_int_equal(dsn_worst_to(&fx->env, "alice@example.org", NOW, 60),
                     DSN_ACT_NONE);
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
        cmocka_unit_test(test_dsn_due),
        cmocka_unit_test_setup_teardown(test_dsn_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_ret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_ret_8bit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_envid_orcpt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dsn_remote_diag, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dsn_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_mixed, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
