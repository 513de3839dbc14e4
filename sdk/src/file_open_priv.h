/*
 * Opening a file an administrator names (maps, passdbs, tables re-read
 * on change), not installed: without blocking (a FIFO planted there
 * would hang the caller), a regular file (or /dev/null, an empty one),
 * at most a size.
 */
#ifndef MODMTA_FILE_OPEN_PRIV_H
#define MODMTA_FILE_OPEN_PRIV_H

#include <stdio.h>
#include <sys/stat.h>

#include <modmta/err.h>
#include <modmta/reload.h>

/* The size cap of every file an administrator names (the config file,
 * maps, tables, certificates): the one of files re-read on change. */
#define FILE_OPEN_MAX MODMTA_RELOAD_SIZE_MAX

/* Open path for reading as a stream; its identity into st_r. NULL with
 * err_r's message "PATH: what" (the path of err_r left ""): the open's
 * errno, "not a regular file", "larger than N octets". The size fstat()
 * gives is not trusted (a procfs file says 0 and never ends, a file may
 * grow): a read past max octets fails with EFBIG, setting ferror(). The
 * stream has no descriptor (fileno() fails). */
FILE *file_open_read(const char *path, long long max, struct stat *st_r,
                     modmta_err *err_r);

/* The same checks, the descriptor itself (-1 on error): for a stream a
 * module is handed (modmta_reload's load()), which must keep fileno() as
 * in every 1.x; its reads are bounded by the size checked at open only,
 * and procfs and sysfs files are refused. */
int file_open_fd(const char *path, long long max, struct stat *st_r,
                 modmta_err *err_r);

/* The whole of such a file, as long as fstat() found it (a file that
 * grows meanwhile is read no further), NUL-terminated, its length in
 * *len_r; free() it. NULL with err_r set as file_open_read() does. */
char *file_read_all(const char *path, long long max, struct stat *st_r,
                    size_t *len_r, modmta_err *err_r);

/* For a file a library opens by path (OpenSSL's certificates, unbound's
 * trust anchor): 0 if file_open_read() would open it, else -1 with
 * err_r set as it does. The library opens the path again afterwards:
 * this catches a FIFO or a device named there, not one swapped in
 * between. */
int file_check(const char *path, long long max, modmta_err *err_r);

#endif
