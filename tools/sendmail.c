/*
 * modmta-sendmail: sendmail(8), mailq(1) and newaliases(1) for modmta
 * (argv[0] decides). Not set-uid: the daemon learns who calls from the
 * kernel (SO_PEERCRED on the submission socket, the file owner in the
 * maildrop). See docs/architecture.md and modmta-sendmail(8).
 */
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "maildrop.h"
#include "modmtactl.h"
#include "sendmail.h"
#include "submit_client.h"

#define SM_IO_TIMEOUT 300
#define SM_HEADER_NOTE "\n--- the message's header ---\n\n"
#define SM_FULLNAME_MAX 256      /* octets of -F kept in From: */

struct sm {
    struct sm_opts o;
    struct config *cfg;
    char *sender;                 /* qualified; "" for <> */
    char **rcpts;
    size_t nrcpts;
    struct sm_buf msg;
};

/* The caller's login name (the uid's, never $USER: that is the caller's
 * to set); its number when it has none. */
static void
sm_login(char *buf, size_t len)
{
    struct passwd *pw = getpwuid(getuid());

    if (pw != NULL)
        snprintf(buf, len, "%s", pw->pw_name);
    else
        snprintf(buf, len, "%lu", (unsigned long)getuid());
}

/* The envelope: -f or the caller, qualified; the operands and -t's. */
static int
sm_envelope(struct sm *s)
{
    const char *domain = s->cfg->local.domain;
    char login[256];

    sm_login(login, sizeof(login));
    if (s->o.sender != NULL && strcmp(s->o.sender, "<>") == 0)
        s->sender = strdup("");
    else
        s->sender = sm_qualify(s->o.sender != NULL ? s->o.sender : login,
                               domain);
    if (s->sender == NULL)
        return EX_OSERR;
    for (size_t i = 0; i < s->o.nrcpts; i++) {
        /* An operand may be a list: "a, b". */
        const char *r = s->o.rcpts[i];
        char *hdr;

        if (asprintf(&hdr, "To: %s\n\n", r) < 0 ||
            sm_extract_rcpts(hdr, strlen(hdr), domain, &s->rcpts,
                             &s->nrcpts) < 0) {
            return EX_OSERR;
        }
        free(hdr);
    }
    if (s->o.extract &&
        sm_extract_rcpts(s->msg.p, sm_header_len(s->msg.p, s->msg.len),
                         domain, &s->rcpts, &s->nrcpts) < 0)
        return EX_OSERR;
    if (s->nrcpts == 0) {
        fprintf(stderr, "sendmail: no recipients found\n");
        return EX_USAGE;
    }
    if (!maildrop_addr_ok(s->sender)) {
        fprintf(stderr, "sendmail: invalid sender address\n");
        return EX_DATAERR;
    }
    for (size_t i = 0; i < s->nrcpts; i++)
        if (!maildrop_addr_ok(s->rcpts[i])) {
            fprintf(stderr, "sendmail: invalid recipient address\n");
            return EX_DATAERR;
        }
    return 0;
}

/* 1 if the message starts with a header field ("Name: ..."). */
static int
sm_starts_with_header(const struct sm_buf *b)
{
    size_t i = 0;

    while (i < b->len && b->p[i] > ' ' && b->p[i] < 0x7f && b->p[i] != ':')
        i++;
    return i > 0 && i < b->len && b->p[i] == ':';
}

/* "Full Name" as a quoted string, for From:: control characters (CR,
 * LF: no header can be slipped in) are dropped, and the name is cut at
 * SM_FULLNAME_MAX octets on a UTF-8 character boundary so that the
 * field stays far below RFC 5322's 998-octet line. */
static char *
sm_quoted(const char *s)
{
    size_t n = strnlen(s, SM_FULLNAME_MAX + 1), used = 0;
    char *q = malloc(2 * n + 3), *p = q;

    if (q == NULL)
        return NULL;
    if (n > SM_FULLNAME_MAX) {
        n = SM_FULLNAME_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    *p++ = '"';
    for (; used < n; s++, used++) {
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            continue;
        if (*s == '"' || *s == '\\')
            *p++ = '\\';
        *p++ = *s;
    }
    *p++ = '"';
    *p = '\0';
    return q;
}

/* From:, Date: and Message-ID: when the message has none; Bcc: goes. */
static int
sm_edit(struct sm *s)
{
    char line[1024], date[64], rnd[8];
    time_t now = time(NULL);
    struct tm tm;

    if (!sm_starts_with_header(&s->msg) && sm_prepend(&s->msg, "\n") < 0)
        return EX_OSERR;
    if (s->o.extract)
        sm_remove_field(&s->msg, "Bcc");
    if (!sm_has_field(&s->msg, "Message-ID")) {
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            memset(rnd, 0, sizeof(rnd));
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%Y%m%d%H%M%S", &tm);
        snprintf(line, sizeof(line), "Message-ID: <%s.%ld.%02x%02x%02x%02x"
                 "%02x%02x%02x%02x@%s>\n", date, (long)getpid(),
                 rnd[0] & 0xff, rnd[1] & 0xff, rnd[2] & 0xff, rnd[3] & 0xff,
                 rnd[4] & 0xff, rnd[5] & 0xff, rnd[6] & 0xff, rnd[7] & 0xff,
                 s->cfg->hostname);
        if (sm_prepend(&s->msg, line) < 0)
            return EX_OSERR;
    }
    if (!sm_has_field(&s->msg, "Date")) {
        localtime_r(&now, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
        snprintf(line, sizeof(line), "Date: %s\n", date);
        if (sm_prepend(&s->msg, line) < 0)
            return EX_OSERR;
    }
    if (!sm_has_field(&s->msg, "From") && s->sender[0] != '\0') {
        char *name = NULL, *from = NULL;
        int rc = 0;

        if (s->o.fullname != NULL &&
            (name = sm_quoted(s->o.fullname)) == NULL)
            return EX_OSERR;
        if ((name != NULL
                 ? asprintf(&from, "From: %s <%s>\n", name, s->sender)
                 : asprintf(&from, "From: %s\n", s->sender)) < 0)
            from = NULL;
        if (from == NULL || sm_prepend(&s->msg, from) < 0)
            rc = EX_OSERR;
        free(name);
        free(from);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A connection to the submission socket after "submit"; -1 when the
 * daemon does not answer (printed with -v only: the maildrop takes
 * over). */
static int
sm_connect(struct sm *s, const char *request)
{
    struct timeval tv = {SM_IO_TIMEOUT, 0};
    int fd = ctl_connect_quiet(s->cfg->local.socket);

    if (fd < 0) {
        if (s->o.verbose)
            fprintf(stderr, "sendmail: %s: %s\n", s->cfg->local.socket,
                    strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (send(fd, request, strlen(request), MSG_NOSIGNAL) !=
        (ssize_t)strlen(request)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The message into the maildrop for these recipients. */
static int
sm_maildrop(struct sm *s, char **rcpts, size_t n)
{
    struct submit_msg m = {s->sender, rcpts, n, s->msg.p, s->msg.len};
    char name[128], err[512];

    if (maildrop_write(s->cfg->local.maildrop, &m, name, sizeof(name), err,
                       sizeof(err)) < 0) {
        fprintf(stderr, "sendmail: the daemon does not answer and the "
                "maildrop cannot take the message: %s\n", err);
        return EX_TEMPFAIL;
    }
    if (s->o.verbose)
        fprintf(stderr, "sendmail: left in the maildrop as %s/%s for "
                "pickup\n", s->cfg->local.maildrop, name);
    return EX_OK;
}

/* A refusal "<addr>: CODE text": its code; the address into addr. */
static int
sm_refusal(const char *r, char *addr, size_t len)
{
    const char *end = strstr(r, ">: ");

    if (r[0] != '<' || end == NULL)
        return 0;
    snprintf(addr, len, "%.*s", (int)(end - r - 1), r + 1);
    return atoi(end + 3);
}

/* -oem: the refusals mailed back to the sender, with the message's
 * header. 0 when that was queued. */
static int
sm_mail_errors(struct sm *s, const struct submit_result *r)
{
    struct sm_buf b = {0};
    struct submit_result r2;
    char *rcpt = s->sender, *text = NULL;
    struct submit_msg m = {"", &rcpt, 1, NULL, 0};
    int fd, ok = 0;

    if (s->sender[0] == '\0' ||
        asprintf(&text, "From: MAILER-DAEMON@%s\nTo: %s\nSubject: "
                 "Undeliverable mail\n\nThe message could not be sent to "
                 "these recipients:\n\n", s->cfg->local.domain,
                 s->sender) < 0)
        return -1;
    ok = sm_append(&b, text, strlen(text)) == 0;
    free(text);
    for (size_t i = 0; ok && i < r->nrefused; i++)
        ok = sm_append(&b, r->refused[i], strlen(r->refused[i])) == 0 &&
             sm_append(&b, "\n", 1) == 0;
    ok = ok && sm_append(&b, SM_HEADER_NOTE, strlen(SM_HEADER_NOTE)) == 0
         && sm_append(&b, s->msg.p, sm_header_len(s->msg.p, s->msg.len))
                == 0;
    if (ok && (fd = sm_connect(s, "submit\n")) >= 0) {
        m.data = b.p;
        m.len = b.len;
        ok = submit_client_send(fd, "localhost", &m, &r2, s->o.verbose
                                ? stderr : NULL) == SUBMIT_QUEUED;
        submit_result_free(&r2);
        close(fd);
    } else {
        ok = 0;
    }
    free(b.p);
    return ok ? 0 : -1;
}

/* Refusals: printed (-oep) or mailed back (-oem); a 4xx refusal's
 * recipient goes to the maildrop (pickup tries again). */
static int
sm_refused(struct sm *s, const struct submit_result *r)
{
    char **temp = calloc(r->nrefused + 1, sizeof(*temp)), addr[512];
    size_t nt = 0;
    int rc = EX_OK;

    if (temp == NULL)
        return EX_OSERR;
    for (size_t i = 0; i < r->nrefused; i++) {
        int code = sm_refusal(r->refused[i], addr, sizeof(addr));

        if (code / 100 == 4 && (temp[nt] = strdup(addr)) != NULL)
            nt++;
    }
    if (nt > 0)
        rc = sm_maildrop(s, temp, nt);
    for (size_t i = 0; i < nt; i++)
        free(temp[i]);
    free(temp);
    if (!r->refused_perm)
        return rc;
    if (s->o.mail_errors && sm_mail_errors(s, r) == 0)
        return rc;
    for (size_t i = 0; i < r->nrefused; i++)
        if (sm_refusal(r->refused[i], addr, sizeof(addr)) / 100 == 5)
            fprintf(stderr, "sendmail: %s\n", r->refused[i]);
    return EX_NOUSER;
}

/* The message to the daemon, or to the maildrop when it does not
 * answer or says "try later": mail is never lost to a stopped daemon. */
static int
sm_submit(struct sm *s)
{
    struct submit_msg m = {s->sender, s->rcpts, s->nrcpts, s->msg.p,
                           s->msg.len};
    struct submit_result r;
    int fd = sm_connect(s, "submit\n"), rc;

    if (fd < 0)
        return sm_maildrop(s, s->rcpts, s->nrcpts);
    submit_client_send(fd, "localhost", &m, &r, s->o.verbose ? stderr
                                                             : NULL);
    close(fd);
    switch (r.status) {
    case SUBMIT_QUEUED:
        if (s->o.verbose)
            fprintf(stderr, "sendmail: %s\n", r.reply);
        rc = sm_refused(s, &r);
        break;
    case SUBMIT_PERM:
        if (r.nrefused == s->nrcpts) {
            rc = sm_refused(s, &r);
            break;
        }
        fprintf(stderr, "sendmail: refused: %s\n", r.reply);
        rc = EX_UNAVAILABLE;
        break;
    default:
        if (s->o.verbose)
            fprintf(stderr, "sendmail: %s\n", r.reply);
        rc = sm_maildrop(s, s->rcpts, s->nrcpts);
        break;
    }
    submit_result_free(&r);
    return rc;
}

static int
sm_deliver(struct sm *s)
{
    int rc = sm_read_message(stdin, s->o.ignore_dots,
                             s->cfg->limits.message_size, &s->msg);

    if (rc == -2) {
        fprintf(stderr, "sendmail: message larger than the limit of %lld "
                "bytes\n", s->cfg->limits.message_size);
        return EX_DATAERR;
    }
    if (rc == -3) {
        fprintf(stderr, "sendmail: cannot read the message: %s\n",
                strerror(errno));
        return EX_IOERR;
    }
    if (rc < 0) {
        fprintf(stderr, "sendmail: out of memory\n");
        return EX_OSERR;
    }
    if ((rc = sm_envelope(s)) != 0 || (rc = sm_edit(s)) != 0)
        return rc;
    return sm_submit(s);
}

/* Send p with each bare LF made CRLF: a person or a script typing
 * SMTP into -bs ends lines with LF alone, the session wants CRLF.
 * *last is the byte sent before p. */
static int
sm_send_crlf(int fd, const char *p, size_t n, char *last)
{
    char out[16384];
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && *last != '\r')
            out[o++] = '\r';
        out[o++] = p[i];
        *last = p[i];
    }
    return send(fd, out, o, MSG_NOSIGNAL) == (ssize_t)o ? 0 : -1;
}

/* -bs: the caller's SMTP dialogue, relayed to a local session. */
static int
sm_smtp(struct sm *s)
{
    struct pollfd pfd[2];
    char buf[8192];
    int fd = sm_connect(s, "submit\n"), in_open = 1;
    char last = '\0';

    if (fd < 0) {
        printf("421 4.3.0 %s mail system unavailable\r\n",
               s->cfg->hostname);
        return EX_TEMPFAIL;
    }
    for (;;) {
        ssize_t n;

        pfd[0] = (struct pollfd){.fd = in_open ? STDIN_FILENO : -1,
                                 .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = fd, .events = POLLIN};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents != 0) {
            if ((n = recv(fd, buf, sizeof(buf), 0)) <= 0)
                break;
            if (write(STDOUT_FILENO, buf, (size_t)n) != n)
                break;
        }
        if (in_open && pfd[0].revents != 0) {
            n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n <= 0) {
                in_open = 0;
                shutdown(fd, SHUT_WR);
            } else if (sm_send_crlf(fd, buf, (size_t)n, &last) < 0) {
                break;
            }
        }
    }
    close(fd);
    return EX_OK;
}

/* A control-socket request (flush, reload): for root and the daemon's
 * user only, as the socket's mode says. */
static int
sm_control(struct sm *s, const char *req)
{
    int fd = ctl_connect_quiet(s->cfg->control_socket), rc;

    if (fd < 0 && (errno == EACCES || errno == EPERM)) {
        fprintf(stderr, "%s: %s: permission denied: only root and the "
                "daemon's user may do that\n", ctl_progname,
                s->cfg->control_socket);
        return EX_NOPERM;
    }
    if (fd >= 0)
        close(fd);
    rc = ctl_run(s->cfg->control_socket, req);
    if (rc == CTL_EXIT_OK)
        return EX_OK;
    return rc == CTL_EXIT_ERROR && geteuid() != 0 ? EX_NOPERM
                                                 : EX_UNAVAILABLE;
}

static int
sm_run(struct sm *s)
{
    switch (s->o.mode) {
    case SM_MAILQ:
        return ctl_run(s->cfg->local.socket, "showq\n") == CTL_EXIT_OK
            ? EX_OK : EX_UNAVAILABLE;
    case SM_FLUSH:
        return sm_control(s, "flush\n");
    case SM_NEWALIASES:
        if (ctl_aliases_check(s->o.aliases, s->o.config != NULL
                              ? s->o.config : ctl_config_default())
            != CTL_EXIT_OK)
            return EX_DATAERR;
        return sm_control(s, "reload\n");
    case SM_SMTP:
        return sm_smtp(s);
    case SM_IGNORE:
        return EX_OK;
    default:
        return sm_deliver(s);
    }
}

int
main(int argc, char **argv)
{
    struct sm s;
    char err[256];
    int rc;

    memset(&s, 0, sizeof(s));
    ctl_progname = "sendmail";
    if ((rc = sm_parse_opts(argc, argv, &s.o, err, sizeof(err))) != 0) {
        fprintf(stderr, "sendmail: %s\n", err);
        return rc;
    }
    if (s.o.mode == SM_MAILQ)
        ctl_progname = "mailq";
    else if (s.o.mode == SM_NEWALIASES)
        ctl_progname = "newaliases";
    s.cfg = ctl_config_load(s.o.config != NULL ? s.o.config
                                               : ctl_config_default());
    if (s.cfg == NULL)
        return EX_CONFIG;
    rc = sm_run(&s);
    for (size_t i = 0; i < s.nrcpts; i++)
        free(s.rcpts[i]);
    free(s.rcpts);
    free(s.sender);
    free(s.msg.p);
    config_free(s.cfg);
    return rc;
}
