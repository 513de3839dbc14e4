/*
 * store_maildir: the Maildir writer (maildir_write.h).
 *
 * Everything is done relative to the Maildir's directory descriptor,
 * opened without following a symbolic link, so a link planted between
 * two steps cannot redirect a write.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <modmta/err.h>

#include "maildir_name.h"
#include "maildir_write.h"
#include "store_out.h"

/* ---- the Maildir itself ---- */

/* Give the directory fd was opened on to the mail user: through the
 * descriptor, never by name, and only while it is ours (made by this
 * delivery, or by a concurrent one that has not given it away yet), as
 * whoever owns the parent could have put another entry under the name.
 * Already the mail user's: nothing to do. 0 or an errno. */
static int
maildir_write_own(int fd, const maildir_req *req)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return errno;
    if (st.st_uid == req->uid)
        return 0;
    if (st.st_uid != geteuid())
        return EPERM;
    return fchown(fd, req->uid, req->gid) < 0 ? errno : 0;
}

/* mkdirat mode 0700, given to the mail user while it is ours (also when
 * a concurrent delivery made it a moment ago); 0 or an errno. */
static int
maildir_write_mkdir(int dfd, const char *name, const maildir_req *req)
{
    int fd, e;

    if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
        return errno;
    if (!req->set_owner)
        return 0;
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno;
    e = maildir_write_own(fd, req);
    close(fd);
    return e;
}

/* fsync the directory holding path (its new entry made durable). 0 or an
 * errno. */
static int
maildir_write_sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char parent[PATH_MAX];
    int fd, e = 0;

    if (slash == NULL)
        snprintf(parent, sizeof(parent), ".");
    else if ((size_t)(slash - path) >= sizeof(parent))
        return ENAMETOOLONG;
    else
        snprintf(parent, sizeof(parent), "%.*s",
                 slash == path ? 1 : (int)(slash - path), path);
    fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    if (fsync(fd) < 0)
        e = errno;
    close(fd);
    return e;
}

/* Open the Maildir (made if missing, with tmp/ new/ cur/). */
static int
maildir_write_open(const maildir_req *req, int *fd_r, char *why,
                   size_t whylen)
{
    static const char *const subs[] = { "tmp", "new", "cur" };
    struct stat st;
    int fd, e, made;
    size_t i;

    made = mkdir(req->maildir, 0700) == 0;
    e = !made && errno != EEXIST ? errno : 0;
    if (e != 0) {
        store_why(why, whylen, "cannot create Maildir %s: %s",
                  req->maildir, strerror(e));
        return modmta_err_from_errno(e);
    }
    fd = open(req->maildir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        e = errno;
        store_why(why, whylen, "%s %s", e == ELOOP || e == ENOTDIR ?
                  "not a directory:" : "cannot open Maildir",
                  req->maildir);
        return e == ELOOP || e == ENOTDIR ? MODMTA_E_PERM
                                          : modmta_err_from_errno(e);
    }
    /* EPERM: someone else's, refused just below with its owner named */
    e = req->set_owner ? maildir_write_own(fd, req) : 0;
    if (e != 0 && e != EPERM) {
        store_why(why, whylen, "cannot give Maildir %s to uid %lu: %s",
                  req->maildir, (unsigned long)req->uid, strerror(e));
        close(fd);
        return modmta_err_from_errno(e);
    }
    if (fstat(fd, &st) == 0 && req->set_owner && st.st_uid != req->uid) {
        store_why(why, whylen, "Maildir %s is owned by uid %lu, "
                  "not %lu", req->maildir, (unsigned long)st.st_uid,
                  (unsigned long)req->uid);
        close(fd);
        return MODMTA_E_PERM;
    }
    for (i = 0, e = 0; e == 0 && i < sizeof(subs) / sizeof(subs[0]); i++)
        e = maildir_write_mkdir(fd, subs[i], req);
    if (e == 0 && made && req->fsync && fsync(fd) < 0)
        e = errno;
    if (e == 0 && made && req->fsync)
        e = maildir_write_sync_parent(req->maildir);
    if (e != 0) {
        store_why(why, whylen, "cannot create Maildir %s: %s",
                  req->maildir, strerror(e));
        close(fd);
        return modmta_err_from_errno(e);
    }
    *fd_r = fd;
    return 0;
}

/* ---- after a crash: is the delivery there already? ---- */

/* 1 if an entry of sub/ has the token (with unlink_them: remove each
 * one, returning 0), 0 if none, <0 on error. */
static int
maildir_write_find(int mdfd, const char *sub, const char *token,
                   int unlink_them)
{
    int fd = openat(mdfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                   O_CLOEXEC), found = 0;
    struct dirent *de;
    DIR *d;

    if (fd < 0)
        return MODMTA_E_IO;
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return MODMTA_E_IO;
    }
    while (!found && (de = readdir(d)) != NULL) {
        if (!maildir_name_has_token(de->d_name, token))
            continue;
        if (unlink_them)
            unlinkat(dirfd(d), de->d_name, 0);
        else
            found = 1;
    }
    closedir(d);
    return found;
}

/* The dedup check: any copy of the delivery in tmp/ removed (written
 * in part, or linked into new/ by a writer killed before it could
 * remove it), then the delivery looked for in new/ and in cur/ (a
 * reader may have moved it there). */
static int
maildir_write_dedup(int mdfd, const char *token, const maildir_req *req,
                    char *why, size_t whylen)
{
    int rc = maildir_write_find(mdfd, "tmp", token, 1);

    if (rc == 0)
        rc = maildir_write_find(mdfd, "new", token, 0);
    if (rc == 0)
        rc = maildir_write_find(mdfd, "cur", token, 0);
    if (rc < 0)
        store_why(why, whylen, "cannot read Maildir %s: %s",
                  req->maildir, strerror(errno));
    return rc;
}

/* ---- writing the message into tmp/ ---- */

/* Our headers, then the message with CRLF turned into LF. */
static int
maildir_write_copy(store_out *o, const maildir_req *req, char *why,
                   size_t whylen)
{
    FILE *in = fopen(req->message, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;

    if (in == NULL) {
        store_why(why, whylen, "cannot open message %s: %s",
                  req->message, strerror(errno));
        return MODMTA_E_IO;
    }
    store_out_delivery_headers(o, req->sender, req->orcpt, req->rcpt);
    while (o->err == 0 && (n = getline(&line, &cap, in)) > 0) {
        if (n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n') {
            line[n - 2] = '\n';
            n--;
        }
        store_out_put(o, line, (size_t)n);
    }
    /* getline() failing for want of memory sets no error flag: short of
     * the end is an error too, not a shorter file */
    if (o->err == 0 && (ferror(in) || !feof(in))) {
        store_why(why, whylen, "cannot read message %s: %s",
                  req->message, strerror(errno));
        rc = MODMTA_E_IO;
    }
    store_out_flush(o);
    free(line);
    fclose(in);
    return rc;
}

/* Write tmp/<base> (tmpfd: tmp/): 0 with the sizes filled, or an error
 * (the file is gone again). */
static int
maildir_write_tmp(int tmpfd, const char *tmp, const maildir_req *req,
                  long long *size_r, long long *vsize_r, char *why,
                  size_t whylen)
{
    store_out *o = malloc(sizeof(*o));
    int rc, e = 0;

    if (o == NULL)
        return MODMTA_E_NOMEM;
    store_out_start(o, openat(tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL |
                                             O_NOFOLLOW | O_CLOEXEC, 0600));
    if (o->fd < 0) {
        e = errno;
        store_why(why, whylen, "cannot create %s/tmp/%s: %s",
                  req->maildir, tmp, strerror(e));
        free(o);
        return modmta_err_from_errno(e);
    }
    if (req->set_owner && fchown(o->fd, req->uid, req->gid) < 0)
        o->err = errno;
    rc = maildir_write_copy(o, req, why, whylen);
    if (rc == 0 && o->err == 0 && req->fsync && fsync(o->fd) < 0)
        o->err = errno;
    if (close(o->fd) < 0 && o->err == 0)
        o->err = errno;
    if (rc == 0 && o->err != 0) {
        store_why(why, whylen, "cannot write %s/tmp/%s: %s",
                  req->maildir, tmp, strerror(o->err));
        rc = modmta_err_from_errno(o->err);
    }
    *size_r = o->total;
    *vsize_r = o->total + o->lines;
    free(o);
    if (rc < 0)
        unlinkat(tmpfd, tmp, 0);
    return rc;
}

/* ---- quota ---- */

/* 1 if a message of size octets would pass the user's quota, 0 if not,
 * <0 on error. The file is rebuilt when it must be (maildir_quota.h). */
static int
maildir_write_quota_check(int mdfd, int tmpfd, const maildir_req *req,
                          const char *base, long long size, char *why,
                          size_t whylen)
{
    char tmpname[MAILDIR_NAME_MAX + 8];
    maildir_usage u;
    time_t mtime = 0;
    int rc, rebuilt = 0;

    snprintf(tmpname, sizeof(tmpname), "%s.quota", base);
    rc = maildir_quota_read(mdfd, &req->quota, &u, &mtime);
    if (rc > 0 && maildir_quota_over(&req->quota, &u, size) &&
        time(NULL) - mtime > MAILDIR_QUOTA_STALE_S)
        rc = 0; /* maybe mail was removed without the file knowing */
    if (rc == 0) {
        int locked = maildir_quota_lock(mdfd, 1);

        rc = maildir_quota_rebuild(mdfd, tmpfd, &req->quota, tmpname,
                                   req->set_owner, req->uid, req->gid, &u);
        if (locked)
            maildir_quota_unlock(mdfd);
        else
            store_why(why, whylen, MAILDIR_WRITE_UNLOCKED);
        rebuilt = 1;
    }
    if (rc < 0) {
        store_why(why, whylen, "cannot %s %s/%s: %s",
                  rebuilt ? "rebuild" : "read", req->maildir,
                  MAILDIR_QUOTA_FILE, modmta_strerror(rc));
        return rc;
    }
    if (!maildir_quota_over(&req->quota, &u, size))
        return 1;
    if (req->quota.count > 0 && u.count >= req->quota.count)
        store_why(why, whylen, "mailbox full: %lld of %lld "
                  "messages", u.count, req->quota.count);
    else
        store_why(why, whylen, "mailbox full: %lld of %lld octets "
                  "used, the message has %lld", u.bytes,
                  req->quota.bytes, size);
    return 0;
}

int
maildir_write_known_full(const char *maildir, const maildir_quota *q,
                         long long size)
{
    maildir_usage u;
    time_t mtime;
    int fd, rc;

    if (q->bytes == 0 && q->count == 0)
        return 0;
    fd = open(maildir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    rc = maildir_quota_read(fd, q, &u, &mtime);
    close(fd);
    return rc > 0 && maildir_quota_over(q, &u, size);
}

/* ---- delivery ---- */

/* The directories a delivery writes in, each opened without following
 * a symbolic link: whoever owns a Maildir could make tmp/ or new/ one,
 * and a delivery running as root must not create or link files through
 * it. */
struct maildir_dirs {
    int md;  /* the Maildir: maildirsize */
    int box; /* the mailbox: md, or a folder's ".<name>" in it */
    int tmp, new;
};

/* tmp/<base> into new/<final>: a hard link, which never replaces a file;
 * a rename where the file system has no hard links. */
static int
maildir_write_publish(const struct maildir_dirs *d, const char *base,
                      const char *final)
{
    if (linkat(d->tmp, base, d->new, final, 0) == 0) {
        unlinkat(d->tmp, base, 0);
        return 0;
    }
    if (errno != EPERM && errno != ENOSYS && errno != EOPNOTSUPP)
        return errno;
    return renameat(d->tmp, base, d->new, final) == 0 ? 0 : errno;
}

/* tmp/<base> published in new/ and counted in maildirsize (if quota:
 * with the Maildir's lock held shared, maildir_quota.h). */
static int
maildir_write_finish(const struct maildir_dirs *d, const maildir_req *req,
                     const char *token, const char *base, long long size,
                     long long vsize, int quota, char *why, size_t whylen)
{
    char fin[MAILDIR_NAME_MAX];
    int e;

    if (maildir_name_final(base, size, vsize, fin, sizeof(fin)) < 0)
        e = ENAMETOOLONG;
    else
        e = maildir_write_publish(d, base, fin);
    if (e == 0 && req->fsync && fsync(d->new) < 0) {
        /* In new/ but not durable: taken back, as store_mbox cuts a
         * failed append away, or the retry would deliver it twice. A
         * reader may have moved it (to cur/) meanwhile: then it is
         * delivered, and the retry must not deliver it again. */
        e = errno;
        if (unlinkat(d->new, fin, 0) < 0 &&
            (maildir_write_find(d->box, "cur", token, 0) > 0 ||
             maildir_write_find(d->box, "new", token, 0) > 0)) {
            store_why(why, whylen, "cannot fsync %s/new/: %s",
                      req->maildir, strerror(e));
            unlinkat(d->tmp, base, 0);
            if (quota)
                maildir_quota_add(d->md, size, 1);
            return MAILDIR_WRITE_TAKEN;
        }
    }
    if (e != 0) {
        store_why(why, whylen, "cannot move %s/tmp/%s into new/: %s",
                  req->maildir, base, strerror(e));
        unlinkat(d->tmp, base, 0);
        return modmta_err_from_errno(e);
    }
    /* Counted after the fact, as Dovecot does: a crash in between leaves
     * the file short by one message until it is next rebuilt. */
    if (quota)
        maildir_quota_add(d->md, size, 1);
    return MAILDIR_WRITE_DONE;
}

/* With the Maildir open: dedup, write, quota, publish. */
static int
maildir_write_in(const struct maildir_dirs *d, const maildir_req *req,
                 char *why, size_t whylen)
{
    char token[MAILDIR_TOKEN_MAX], base[MAILDIR_NAME_MAX];
    long long size = 0, vsize = 0;
    int quota = req->quota.bytes > 0 || req->quota.count > 0, rc, locked;
    struct timeval tv;

    if (maildir_name_token(req->queue_id, req->rcpt, token,
                           sizeof(token)) < 0) {
        store_why(why, whylen, "queue ID too long");
        return MODMTA_E_INVAL;
    }
    if (req->dedup) {
        rc = maildir_write_dedup(d->box, token, req, why, whylen);
        if (rc != 0)
            return rc < 0 ? rc : MAILDIR_WRITE_DUPLICATE;
    }
    gettimeofday(&tv, NULL);
    if (maildir_name_unique(&tv, getpid(), token, req->hostname, base,
                            sizeof(base)) < 0) {
        store_why(why, whylen, "host name too long for a file name");
        return MODMTA_E_INVAL;
    }
    rc = maildir_write_tmp(d->tmp, base, req, &size, &vsize, why, whylen);
    if (rc < 0)
        return rc;
    if (quota && (rc = maildir_write_quota_check(d->md, d->tmp, req, base,
                                                 size, why, whylen)) <= 0) {
        unlinkat(d->tmp, base, 0);
        return rc < 0 ? rc : MAILDIR_WRITE_OVER_QUOTA;
    }
    locked = quota && maildir_quota_lock(d->md, 0);
    if (quota && !locked)
        store_why(why, whylen, MAILDIR_WRITE_UNLOCKED);
    rc = maildir_write_finish(d, req, token, base, size, vsize, quota, why,
                              whylen);
    if (locked)
        maildir_quota_unlock(d->md);
    return rc;
}

/* Open sub/ of the Maildir into *fd_r. */
static int
maildir_write_open_sub(const maildir_req *req, int mdfd, const char *sub,
                       int *fd_r, char *why, size_t whylen)
{
    int e;

    *fd_r = openat(mdfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                  O_CLOEXEC);
    if (*fd_r >= 0)
        return 0;
    e = errno;
    if (e == ELOOP || e == ENOTDIR) {
        store_why(why, whylen, "%s/%s is not a directory", req->maildir, sub);
        return MODMTA_E_PERM;
    }
    store_why(why, whylen, "cannot open %s/%s: %s", req->maildir, sub,
              strerror(e));
    return modmta_err_from_errno(e);
}

/* The folder's empty "maildirfolder" file, made if missing. O_EXCL: a
 * name already there is never opened nor chowned, as the mailbox's
 * owner could have made it a hard link to a file of root's or a FIFO
 * (which would block the delivery); an existing one must be a regular
 * file. */
static int
maildir_write_marker(const maildir_req *req, int boxfd, const char *name,
                     char *why, size_t whylen)
{
    struct stat st;
    int fd, e = 0;

    fd = openat(boxfd, "maildirfolder", O_WRONLY | O_CREAT | O_EXCL |
                O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (req->set_owner && fchown(fd, req->uid, req->gid) < 0)
            e = errno;
        close(fd);
    } else if (errno != EEXIST) {
        e = errno;
    } else if (fstatat(boxfd, "maildirfolder", &st,
                       AT_SYMLINK_NOFOLLOW) < 0) {
        e = errno;
    } else if (!S_ISREG(st.st_mode)) {
        store_why(why, whylen, "%s/%s/maildirfolder is not a regular file",
                  req->maildir, name);
        return MODMTA_E_PERM;
    }
    if (e != 0) {
        store_why(why, whylen, "cannot create %s/%s/maildirfolder: %s",
                  req->maildir, name, strerror(e));
        return modmta_err_from_errno(e);
    }
    return 0;
}

/* The folder's name as the Maildir has it: an entry ".<folder>" that
 * matches in any case (a folder "Spam" made by an IMAP client takes
 * "bob+spam"; the exact name first), else ".<folder>" to be made. The
 * folder names only letters, digits, '-' and '_', so a match does too. */
static void
maildir_write_folder_entry(int mdfd, const char *folder, char *name,
                           size_t len)
{
    int fd = openat(mdfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *de;
    DIR *d;

    snprintf(name, len, ".%s", folder);
    if (fd < 0)
        return;
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' || strcasecmp(de->d_name + 1, folder) != 0)
            continue;
        memcpy(name, de->d_name, strlen(folder) + 2); /* same length */
        if (strcmp(de->d_name + 1, folder) == 0)
            break;
    }
    closedir(d);
}

/* The folder's directory (Maildir++: ".<folder>" with tmp/ new/ cur/
 * and an empty "maildirfolder" file, made if missing) into *fd_r; the
 * name was checked by the caller (maildir_folder_name). */
static int
maildir_write_open_folder(const maildir_req *req, int mdfd, int *fd_r,
                          char *why, size_t whylen)
{
    static const char *const subs[] = { "tmp", "new", "cur" };
    char name[MAILDIR_FOLDER_MAX + 2];
    struct stat st;
    size_t i;
    int e, rc;

    maildir_write_folder_entry(mdfd, req->folder, name, sizeof(name));
    e = maildir_write_mkdir(mdfd, name, req);
    if (e != 0) {
        store_why(why, whylen, "cannot create folder %s/%s: %s",
                  req->maildir, name, strerror(e));
        return modmta_err_from_errno(e);
    }
    rc = maildir_write_open_sub(req, mdfd, name, fd_r, why, whylen);
    if (rc < 0)
        return rc;
    if (req->set_owner && fstat(*fd_r, &st) == 0 && st.st_uid != req->uid) {
        store_why(why, whylen, "folder %s/%s is owned by uid %lu, not %lu",
                  req->maildir, name, (unsigned long)st.st_uid,
                  (unsigned long)req->uid);
        return MODMTA_E_PERM;
    }
    for (i = 0, e = 0; e == 0 && i < sizeof(subs) / sizeof(subs[0]); i++)
        e = maildir_write_mkdir(*fd_r, subs[i], req);
    if (e != 0) {
        store_why(why, whylen, "cannot create folder %s/%s: %s",
                  req->maildir, name, strerror(e));
        return modmta_err_from_errno(e);
    }
    return maildir_write_marker(req, *fd_r, name, why, whylen);
}

int
maildir_write(const maildir_req *req, char *why, size_t whylen)
{
    struct maildir_dirs d = { -1, -1, -1, -1 };
    int rc;

    if (why != NULL && whylen > 0)
        why[0] = '\0';
    rc = maildir_write_open(req, &d.md, why, whylen);
    if (rc == 0 && req->folder != NULL)
        rc = maildir_write_open_folder(req, d.md, &d.box, why, whylen);
    else
        d.box = d.md;
    if (rc == 0)
        rc = maildir_write_open_sub(req, d.box, "tmp", &d.tmp, why, whylen);
    if (rc == 0)
        rc = maildir_write_open_sub(req, d.box, "new", &d.new, why, whylen);
    if (rc == 0)
        rc = maildir_write_in(&d, req, why, whylen);
    if (d.new >= 0)
        close(d.new);
    if (d.tmp >= 0)
        close(d.tmp);
    if (d.box >= 0 && d.box != d.md)
        close(d.box);
    if (d.md >= 0)
        close(d.md);
    return rc;
}
