/*
 * The maildrop file format and its writer (see maildrop.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "maildrop.h"

int
maildrop_addr_ok(const char *addr)
{
    return modmta_addr_envelope_ok(addr);
}

/* The next "X value\n" line: its value malloc'ed into *v_r; 1, 0 at the
 * empty line that ends the envelope, -1 on error. */
static int
maildrop_field(const char **p, const char *end, char tag, char **v_r)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n;

    if (nl == NULL)
        return -1;
    if (nl == *p) {
        *p = nl + 1;
        return 0;
    }
    n = (size_t)(nl - *p);
    if (n < 2 || (*p)[0] != tag || (*p)[1] != ' ' ||
        memchr(*p, '\0', n) != NULL || n - 2 >= MAILDROP_ADDR_MAX)
        return -1;
    if ((*v_r = strndup(*p + 2, n - 2)) == NULL)
        return -1;
    *p = nl + 1;
    if (!maildrop_addr_ok(*v_r)) {
        free(*v_r);
        *v_r = NULL;
        return -1;
    }
    return 1;
}

int
maildrop_parse(const char *buf, size_t len, struct submit_msg *m,
               char *err, size_t errlen)
{
    const char *p = buf, *end = buf + len;
    char **rcpts = NULL, *v = NULL, *sender = NULL;
    size_t n = 0;
    int rc;

    memset(m, 0, sizeof(*m));
    if (len < strlen(MAILDROP_MAGIC) ||
        memcmp(buf, MAILDROP_MAGIC, strlen(MAILDROP_MAGIC)) != 0) {
        snprintf(err, errlen, "not a maildrop file");
        return -1;
    }
    p += strlen(MAILDROP_MAGIC);
    if (maildrop_uid(buf, len) >= 0)
        p = memchr(p, '\n', (size_t)(end - p)) + 1;
    if (maildrop_field(&p, end, 'S', &sender) != 1) {
        snprintf(err, errlen, "bad sender line");
        return -1;
    }
    while ((rc = maildrop_field(&p, end, 'R', &v)) == 1) {
        char **np = n < MAILDROP_RCPTS_MAX
            ? realloc(rcpts, (n + 1) * sizeof(*rcpts)) : NULL;

        if (np == NULL) {
            free(v);
            rc = -1;
            break;
        }
        rcpts = np;
        rcpts[n++] = v;
    }
    if (rc < 0 || n == 0) {
        snprintf(err, errlen, n == 0 && rc == 0 ? "no recipient"
                 : "bad recipient line");
        m->rcpts = rcpts;
        m->nrcpts = n;
        m->sender = sender;
        maildrop_free(m);
        return -1;
    }
    m->sender = sender;
    m->rcpts = rcpts;
    m->nrcpts = n;
    m->data = p;
    m->len = (size_t)(end - p);
    return 0;
}

long
maildrop_uid(const char *buf, size_t len)
{
    size_t off = strlen(MAILDROP_MAGIC);
    const char *p = buf + off, *nl;
    char *e;
    long v;

    if (len < off + 4 || memcmp(p, "U ", 2) != 0 ||
        (nl = memchr(p, '\n', len - off)) == NULL || p[2] < '0' ||
        p[2] > '9')
        return -1;
    errno = 0;
    v = strtol(p + 2, &e, 10);
    return e == nl && errno == 0 && v >= 0 ? v : -1;
}

void
maildrop_free(struct submit_msg *m)
{
    for (size_t i = 0; i < m->nrcpts; i++)
        free(m->rcpts[i]);
    free((void *)m->rcpts);
    free((void *)m->sender);
    memset(m, 0, sizeof(*m));
}

static int
maildrop_put(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
maildrop_put_line(int fd, const char *tag, const char *value)
{
    return maildrop_put(fd, tag, strlen(tag)) < 0 ||
           maildrop_put(fd, value, strlen(value)) < 0 ||
           maildrop_put(fd, "\n", 1) < 0 ? -1 : 0;
}

/* An unguessable name: other users cannot list the directory, and must
 * not be able to open a file they did not make by guessing. */
static int
maildrop_name(char *name, size_t len)
{
    unsigned char r[16];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -1;
    snprintf(name, len, "%lx.", (unsigned long)time(NULL));
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(name + strlen(name), len - strlen(name), "%02x", r[i]);
    return 0;
}

static int
maildrop_fill(int fd, const struct submit_msg *m, long uid)
{
    char u[32];

    snprintf(u, sizeof(u), "%ld", uid);
    if (maildrop_put(fd, MAILDROP_MAGIC, strlen(MAILDROP_MAGIC)) < 0 ||
        (uid >= 0 && maildrop_put_line(fd, "U ", u) < 0) ||
        maildrop_put_line(fd, "S ", m->sender) < 0)
        return -1;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (maildrop_put_line(fd, "R ", m->rcpts[i]) < 0)
            return -1;
    if (maildrop_put(fd, "\n", 1) < 0)
        return -1;
    /* LF line ends in the file, whatever the caller had: CRs before an
     * LF go, a bare CR becomes an LF and a NUL is dropped (the daemon's
     * SMTP session would refuse either, as sendmail_msg.c does). */
    for (size_t i = 0; i < m->len;) {
        size_t n = 0, k = 0;

        while (i + n < m->len && m->data[i + n] != '\r' &&
               m->data[i + n] != '\0')
            n++;
        if (maildrop_put(fd, m->data + i, n) < 0)
            return -1;
        i += n;
        if (i < m->len && m->data[i] == '\0') {
            i++;
            continue;
        }
        while (i + k < m->len && m->data[i + k] == '\r')
            k++;
        if (!(i + k < m->len && m->data[i + k] == '\n'))
            for (size_t j = 0; j < k; j++)
                if (maildrop_put(fd, "\n", 1) < 0)
                    return -1;
        i += k;
    }
    return 0;
}

int
maildrop_write(const char *dir, const struct submit_msg *m, char *name_r,
               size_t namelen, char *err, size_t errlen)
{
    return maildrop_write_for(dir, m, -1, name_r, namelen, err, errlen);
}

int
maildrop_write_for(const char *dir, const struct submit_msg *m, long uid,
                   char *name_r, size_t namelen, char *err, size_t errlen)
{
    char path[4096];
    int fd = -1, e;

    for (int tries = 0; fd < 0 && tries < 5; tries++) {
        if (maildrop_name(name_r, namelen) < 0 ||
            snprintf(path, sizeof(path), "%s/%s", dir, name_r)
                >= (int)sizeof(path)) {
            snprintf(err, errlen, "cannot make a file name");
            return -1;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                  O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: %s", dir, strerror(errno));
            return -1;
        }
    }
    if (fd < 0) {
        snprintf(err, errlen, "%s: no free file name", dir);
        return -1;
    }
    if (maildrop_fill(fd, m, uid) < 0 || fsync(fd) < 0 ||
        fchmod(fd, MAILDROP_COMPLETE_MODE) < 0) {
        e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        close(fd);
        unlink(path);
        errno = e;
        return -1;
    }
    return close(fd);
}
