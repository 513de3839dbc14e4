/*
 * store_maildir: the Maildir++ "maildirsize" file (maildir_quota.h).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <modmta/err.h>

#include "maildir_name.h"
#include "maildir_quota.h"

int
maildir_quota_parse_size(const char *s, long long *out)
{
    static const char units[] = "kmgt";
    long long v, mult = 1;
    const char *u;
    char *end;

    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0)
        return -1;
    if (*end != '\0' && (u = strchr(units, tolower((unsigned char)*end))) !=
                            NULL) {
        for (; u >= units; u--)
            mult *= 1024;
        end++;
    }
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0' || v > LLONG_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* One item of a rule, n octets at s. */
static int
maildir_quota_rule_item(const char *s, size_t n, maildir_quota *q)
{
    char item[64];
    long long v;
    size_t vlen;

    if (n >= sizeof(item))
        return -1;
    memcpy(item, s, n);
    item[n] = '\0';
    if (strcasecmp(item, "none") == 0) {
        q->bytes = q->count = 0;
        return 0;
    }
    if (strncasecmp(item, "storage=", 8) == 0) {
        /* Dovecot's: kilobytes unless a unit says otherwise */
        if (maildir_quota_parse_size(item + 8, &v) < 0)
            return -1;
        vlen = strlen(item + 8);
        if (isdigit((unsigned char)item[8 + vlen - 1])) {
            if (v > LLONG_MAX / 1024)
                return -1;
            v *= 1024;
        }
        q->bytes = v;
        return 0;
    }
    if (strncasecmp(item, "bytes=", 6) == 0)
        return maildir_quota_parse_size(item + 6, &q->bytes);
    if (strncasecmp(item, "messages=", 9) == 0)
        return maildir_quota_parse_size(item + 9, &q->count);
    return maildir_quota_parse_size(item, &q->bytes);
}

int
maildir_quota_parse_rule(const char *s, maildir_quota *q)
{
    maildir_quota out = *q;
    int items = 0;

    if (strncmp(s, "*:", 2) == 0) /* pasted from a Dovecot userdb */
        s += 2;
    for (;;) {
        size_t n;

        while (*s == ' ' || *s == '\t' || *s == ',' || *s == ':')
            s++;
        if (*s == '\0')
            break;
        n = strcspn(s, " \t,:");
        if (maildir_quota_rule_item(s, n, &out) < 0)
            return -1;
        items++;
        s += n;
    }
    if (items == 0)
        return -1;
    *q = out;
    return 0;
}

void
maildir_quota_definition(const maildir_quota *q, char *out, size_t len)
{
    if (q->bytes > 0 && q->count > 0)
        snprintf(out, len, "%lldS,%lldC", q->bytes, q->count);
    else if (q->count > 0)
        snprintf(out, len, "%lldC", q->count);
    else
        snprintf(out, len, "%lldS", q->bytes);
}

/* The limits line of a file, parsed: 0, or -1 if malformed. */
static int
maildir_quota_parse_definition(const char *s, size_t n, maildir_quota *q)
{
    const char *end = s + n;

    q->bytes = q->count = 0;
    while (s < end) {
        long long v = 0;

        if (!isdigit((unsigned char)*s))
            return -1;
        for (; s < end && isdigit((unsigned char)*s); s++) {
            if (v > (LLONG_MAX - 9) / 10)
                return -1;
            v = v * 10 + (*s - '0');
        }
        if (s == end)
            return -1;
        if (*s == 'S')
            q->bytes = v;
        else if (*s == 'C')
            q->count = v;
        else
            return -1;
        s++;
        if (s < end && *s++ != ',')
            return -1;
    }
    return 0;
}

/* 1 if v is within +-MAILDIR_QUOTA_VALUE_MAX (no llabs: LLONG_MIN). */
static int
maildir_quota_value_ok(long long v)
{
    return v >= -MAILDIR_QUOTA_VALUE_MAX && v <= MAILDIR_QUOTA_VALUE_MAX;
}

/* "<bytes> <count>" with optional spaces and signs: Maildir++ readers
 * (Dovecot, Courier) append negative lines when mail is removed. Each
 * value is bounded so that no sum of a file's lines can overflow. */
static int
maildir_quota_parse_line(const char *s, size_t n, long long *b,
                         long long *c)
{
    char line[128], *end;

    if (n >= sizeof(line))
        return -1;
    memcpy(line, s, n);
    line[n] = '\0';
    errno = 0;
    *b = strtoll(line, &end, 10);
    if (end == line || errno != 0 || !maildir_quota_value_ok(*b))
        return -1;
    s = end;
    *c = strtoll(s, &end, 10);
    if (end == s || errno != 0 || !maildir_quota_value_ok(*c))
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    return *end == '\0' ? 0 : -1;
}

int
maildir_quota_parse(const char *text, size_t len, const maildir_quota *q,
                    maildir_usage *u)
{
    const char *p = text, *end = text + len;
    maildir_quota def;
    int first = 1;

    u->bytes = u->count = 0;
    if (len == 0 || len > MAILDIR_QUOTA_FILE_MAX || text[len - 1] != '\n')
        return 0; /* a torn last line is rebuilt, not guessed at */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(nl - p);
        long long b, c;

        if (first) {
            if (maildir_quota_parse_definition(p, n, &def) < 0 ||
                def.bytes != q->bytes || def.count != q->count)
                return 0;
            first = 0;
        } else if (n > 0) {
            if (maildir_quota_parse_line(p, n, &b, &c) < 0 ||
                __builtin_add_overflow(u->bytes, b, &u->bytes) ||
                __builtin_add_overflow(u->count, c, &u->count))
                return 0;
        }
        p = nl + 1;
    }
    /* below zero in the end: lines lost or made up, recount */
    return u->bytes >= 0 && u->count >= 0;
}

int
maildir_quota_over(const maildir_quota *q, const maildir_usage *u,
                   long long size)
{
    long long used = u->bytes > 0 ? u->bytes : 0;

    if (q->bytes > 0 && (used > q->bytes || size > q->bytes - used))
        return 1;
    return q->count > 0 && u->count >= q->count;
}

/* 1 if the maildirsize open as fd is the Maildir's own: a regular file
 * with one link, owned by the Maildir's owner. A hard link the mailbox
 * owner planted (to a file of someone else's) or a FIFO is not. */
static int
maildir_quota_file_ok(int mdfd, int fd, struct stat *st)
{
    struct stat dir;

    return fstat(fd, st) == 0 && S_ISREG(st->st_mode) &&
           st->st_nlink == 1 && fstat(mdfd, &dir) == 0 &&
           st->st_uid == dir.st_uid;
}

int
maildir_quota_read(int mdfd, const maildir_quota *q, maildir_usage *u,
                   time_t *mtime_r)
{
    char buf[MAILDIR_QUOTA_FILE_MAX + 1];
    struct stat st;
    size_t len = 0;
    ssize_t n;
    int fd = openat(mdfd, MAILDIR_QUOTA_FILE, O_RDONLY | O_NOFOLLOW |
                                                  O_NONBLOCK | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ? 0 : MODMTA_E_IO;
    if (!maildir_quota_file_ok(mdfd, fd, &st)) {
        close(fd);
        return 0; /* rebuilt: a new file renamed over this name */
    }
    while (len < sizeof(buf) &&
           (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return MODMTA_E_IO;
        }
        len += (size_t)n;
    }
    close(fd);
    *mtime_r = st.st_mtime;
    return maildir_quota_parse(buf, len, q, u);
}

/* Add the messages of one directory (new/ or cur/ of a folder). */
static int
maildir_quota_count_dir(int dfd, const char *sub, maildir_usage *u)
{
    int fd = openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                  O_CLOEXEC);
    struct dirent *de;
    DIR *d;

    if (fd < 0)
        return errno == ENOENT ? 0 : MODMTA_E_IO;
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return MODMTA_E_IO;
    }
    while ((de = readdir(d)) != NULL) {
        long long size = maildir_name_size(de->d_name);
        struct stat st;

        if (de->d_name[0] == '.')
            continue;
        if (size < 0) {
            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0
                || !S_ISREG(st.st_mode))
                continue; /* gone meanwhile (read, moved), or not mail */
            size = (long long)st.st_size;
        }
        if (__builtin_add_overflow(u->bytes, size, &u->bytes))
            u->bytes = LLONG_MAX;
        if (u->count < LLONG_MAX)
            u->count++;
    }
    closedir(d);
    return 0;
}

/* Add new/ and cur/ of a folder (the INBOX is the Maildir itself). */
static int
maildir_quota_count_folder(int dfd, maildir_usage *u)
{
    int rc = maildir_quota_count_dir(dfd, "new", u);

    return rc < 0 ? rc : maildir_quota_count_dir(dfd, "cur", u);
}

static int
maildir_quota_count(int mdfd, maildir_usage *u)
{
    struct dirent *de;
    int fd, rc;
    DIR *d;

    u->bytes = u->count = 0;
    rc = maildir_quota_count_folder(mdfd, u);
    if (rc < 0)
        return rc;
    fd = openat(mdfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return MODMTA_E_IO;
    }
    /* Maildir++ folders: ".name" directories beside new/ and cur/ */
    while (rc == 0 && (de = readdir(d)) != NULL) {
        int ffd;

        if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
            strcmp(de->d_name, "..") == 0)
            continue;
        ffd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
                                               O_NOFOLLOW | O_CLOEXEC);
        if (ffd < 0)
            continue; /* not a folder */
        rc = maildir_quota_count_folder(ffd, u);
        close(ffd);
    }
    closedir(d);
    return rc;
}

/* Write all of buf to fd; 0 or an errno. */
static int
maildir_quota_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Maildirs whose lock was not had within the wait lately: until
 * `until` their lock is tried once, not waited for, so that a holder
 * that never lets go costs one wait per MAILDIR_QUOTA_STUCK_S, not one
 * per delivery. Process-wide: a Maildir is the same for every instance
 * and every thread. */
#define MAILDIR_QUOTA_STUCK_MAX 16
#define MAILDIR_QUOTA_STUCK_S 60

static struct maildir_quota_stuck {
    dev_t dev;
    ino_t ino;
    time_t until;
} maildir_quota_stuck[MAILDIR_QUOTA_STUCK_MAX];
static pthread_mutex_t maildir_quota_stuck_lock = PTHREAD_MUTEX_INITIALIZER;

/* The Maildir's slot in the table (its own, else a free or the oldest
 * one when `take`), or NULL. Called with the table's lock held. */
static struct maildir_quota_stuck *
maildir_quota_stuck_slot(const struct stat *st, int take, time_t now)
{
    struct maildir_quota_stuck *old = &maildir_quota_stuck[0];

    for (size_t i = 0; i < MAILDIR_QUOTA_STUCK_MAX; i++) {
        struct maildir_quota_stuck *e = &maildir_quota_stuck[i];

        if (e->until > now && e->dev == st->st_dev && e->ino == st->st_ino)
            return e;
        if (e->until < old->until)
            old = e;
    }
    return take ? old : NULL;
}

/* Remember the Maildir as stuck (stuck = 1), or forget it. */
static void
maildir_quota_stuck_set(const struct stat *st, int stuck)
{
    time_t now = time(NULL);
    struct maildir_quota_stuck *e;

    pthread_mutex_lock(&maildir_quota_stuck_lock);
    e = maildir_quota_stuck_slot(st, stuck, now);
    if (e != NULL) {
        e->dev = st->st_dev;
        e->ino = st->st_ino;
        e->until = stuck ? now + MAILDIR_QUOTA_STUCK_S : 0;
    }
    pthread_mutex_unlock(&maildir_quota_stuck_lock);
}

static int
maildir_quota_stuck_now(const struct stat *st)
{
    int stuck;

    pthread_mutex_lock(&maildir_quota_stuck_lock);
    stuck = maildir_quota_stuck_slot(st, 0, time(NULL)) != NULL;
    pthread_mutex_unlock(&maildir_quota_stuck_lock);
    return stuck;
}

static long long
maildir_quota_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
maildir_quota_lock(int mdfd, int exclusive)
{
    int how = (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
    long long deadline = maildir_quota_ms() + MAILDIR_QUOTA_LOCK_WAIT_MS;
    useconds_t step = 1000;
    struct stat st;
    int known = fstat(mdfd, &st) == 0;

    if (known && maildir_quota_stuck_now(&st))
        deadline = 0; /* one try */
    /* polled, not blocking: a holder that never lets go (the owner's
     * own flock) must cost a bounded wait, not a delivery thread */
    while (flock(mdfd, how) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            return 0; /* no flock here: nothing to wait for */
        if (maildir_quota_ms() >= deadline) {
            if (known && deadline != 0)
                maildir_quota_stuck_set(&st, 1);
            return 0;
        }
        usleep(step);
        step = step < 32000 ? step * 2 : 32000;
    }
    if (known && deadline == 0)
        maildir_quota_stuck_set(&st, 0);
    return 1;
}

void
maildir_quota_unlock(int mdfd)
{
    flock(mdfd, LOCK_UN);
}

int
maildir_quota_rebuild(int mdfd, int tmpfd, const maildir_quota *q,
                      const char *tmpname, int set_owner, uid_t uid,
                      gid_t gid, maildir_usage *u)
{
    char text[128], def[64];
    int fd, rc, e;

    rc = maildir_quota_count(mdfd, u);
    if (rc < 0)
        return rc;
    maildir_quota_definition(q, def, sizeof(def));
    snprintf(text, sizeof(text), "%s\n%lld %lld\n", def, u->bytes, u->count);
    fd = openat(tmpfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                    O_CLOEXEC, 0600);
    if (fd < 0)
        return modmta_err_from_errno(errno);
    e = maildir_quota_write_all(fd, text, strlen(text));
    if (e == 0 && set_owner && fchown(fd, uid, gid) < 0)
        e = errno;
    if (close(fd) < 0 && e == 0)
        e = errno;
    if (e == 0 && renameat(tmpfd, tmpname, mdfd, MAILDIR_QUOTA_FILE) < 0)
        e = errno;
    if (e != 0) {
        unlinkat(tmpfd, tmpname, 0);
        return modmta_err_from_errno(e);
    }
    return 0;
}

int
maildir_quota_add(int mdfd, long long bytes, long long count)
{
    char line[64];
    struct stat st;
    int fd, e;

    fd = openat(mdfd, MAILDIR_QUOTA_FILE, O_WRONLY | O_APPEND | O_NOFOLLOW |
                                              O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : modmta_err_from_errno(errno);
    snprintf(line, sizeof(line), "%lld %lld\n", bytes, count);
    if (!maildir_quota_file_ok(mdfd, fd, &st))
        e = EINVAL; /* planted: a FIFO, a device, a hard link */
    else
        e = maildir_quota_write_all(fd, line, strlen(line));
    close(fd);
    return e == 0 ? 0 : modmta_err_from_errno(e);
}
