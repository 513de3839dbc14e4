/*
 * libmodmta-test: files and temporary directories for unit tests. The
 * helpers fail the running cmocka test on an I/O error, so a test reads
 * as what it checks.
 *
 *   char dir[256], path[300];
 *   modmta_test_tmpdir(dir, sizeof(dir), "test_alias");
 *   snprintf(path, sizeof(path), "%s/aliases", dir);
 *   modmta_test_write_file(path, "postmaster: root\n");
 *   ...
 *   modmta_test_rmtree(dir);
 */
#ifndef MODMTA_TESTING_FILES_H
#define MODMTA_TESTING_FILES_H

#include <stddef.h>

/* The whole of path, NUL-terminated, in a string to free(); its length
 * goes to *len_r when len_r is not NULL. NULL if path does not exist. */
char *modmta_test_read_file(const char *path, size_t *len_r);

/* Create or truncate path and write data (a string) to it. */
void modmta_test_write_file(const char *path, const char *data);

/* Replace path by a new file holding data: written to "<path>.tmp",
 * then renamed over path, so a reader sees the old or the new file,
 * never half of it, and the new file has a new inode. */
void modmta_test_replace_file(const char *path, const char *data);

/* Tables re-read when their file changes (modmta/reload.h: maps,
 * passdbs, a module's own files) look at the file at most once per
 * MODMTA_RELOAD_INTERVAL_MS. modmta_test_reload_clock() gives the reload
 * objects opened from then on (call it before create() or the map's
 * open) a clock that stands still until modmta_test_reload_advance()
 * moves it: a test changes a file, advances MODMTA_RELOAD_INTERVAL_MS
 * and looks again, without sleeping. */
void modmta_test_reload_clock(void);
void modmta_test_reload_advance(long long ms);

/* Make a private directory "<$TMPDIR or /tmp>/<name>.XXXXXX" and put its
 * path in buf (len bytes). */
void modmta_test_tmpdir(char *buf, size_t len, const char *name);

/* Remove dir and everything below it, symlinks not followed. 0, or -1
 * with errno set if something could not be removed (a missing dir is
 * not an error). */
int modmta_test_rmtree(const char *dir);

#endif
