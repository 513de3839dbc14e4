/*
 * modmta SDK: a table read from a file and read again when the file
 * changes (ABI 1.5): the rule every file an administrator edits while
 * the daemon runs follows (file: and aliases: maps, file: passdbs,
 * relay_access's access file), for a module's own files too.
 *
 *   static void *rules_load(FILE *f, const char *path, void *arg,
 *                           modmta_err *err_r);     parse f into a table
 *   static void rules_free(void *table);
 *
 *   create():  in->rules = modmta_reload_open(path, rules_load, rules_free,
 *                                             in, json_path, err_r);
 *   a hook:    struct rules *r = modmta_reload_acquire(in->rules);
 *              ... read r ...
 *              modmta_reload_release(in->rules, r);
 *   destroy(): modmta_reload_close(in->rules);
 *
 * The rule:
 * - open() reads the file once; if that fails, so does open() (a config
 *   error with json_path).
 * - acquire() looks at the file at most once per
 *   MODMTA_RELOAD_INTERVAL_MS per file: a stat() of its device, inode,
 *   size and change and modification times (nanoseconds). A thread that
 *   finds another one looking does not wait for it.
 * - When the file changed it is opened without blocking (a regular file
 *   of at most MODMTA_RELOAD_SIZE_MAX octets, or /dev/null, an empty one;
 *   else an error) and load() builds a new table. From then on acquire()
 *   gives the new table; whoever holds the old one keeps it until
 *   release(), and the last release() frees it. Nobody waits for a load.
 * - A change that does not load (load() failed, the file is unreadable or
 *   gone) keeps the previous table in service and is logged once, as a
 *   warning with load()'s message ("PATH:LINE: what"): that version of
 *   the file is not tried again, the next change is.
 * - Replacing the file (an editor's save, mv, install) is always seen.
 *   A rewrite in place that keeps the size within one tick of the file
 *   system's clock may not be: replace files, or touch them after.
 * A reload object is thread-safe: keep it in the read-only instance.
 * Tables are shared by every thread that acquired them: read-only.
 */
#ifndef MODMTA_RELOAD_H
#define MODMTA_RELOAD_H

#include <stdio.h>

#include <modmta/err.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MODMTA_RELOAD_INTERVAL_MS 1000     /* look at a file at most so often */
#define MODMTA_RELOAD_SIZE_MAX (1LL << 30) /* octets of a file: 1 GiB */

typedef struct modmta_reload modmta_reload;

/* Parse f, open for reading at its start (do not close it; path names
 * it in messages), into a new table: a regular file (or /dev/null) of at
 * most MODMTA_RELOAD_SIZE_MAX octets when it was opened. After a getline()
 * loop check feof(f), not only ferror(f): getline() fails for want of
 * memory without setting the error flag. NULL on error with err_r's message
 * saying where: "PATH:LINE: what" (its path is filled in by the SDK). */
typedef void *(*modmta_reload_load_fn)(FILE *f, const char *path, void *arg,
                                       modmta_err *err_r);
/* Free a table load() made. */
typedef void (*modmta_reload_free_fn)(void *table);
/* Read path with load (arg is handed to it) into the first table. NULL
 * with err_r filled (its path: json_path) when path cannot be read or
 * load() fails. */
modmta_reload *modmta_reload_open(const char *path,
                                  modmta_reload_load_fn load,
                                  modmta_reload_free_fn free_fn, void *arg,
                                  const char *json_path, modmta_err *err_r);
/* The current table (never NULL), held until modmta_reload_release().
 * First re-reads the file if it is due and changed, as above. */
void *modmta_reload_acquire(modmta_reload *r);
/* Give back a table acquire() gave (once per acquire()). */
void modmta_reload_release(modmta_reload *r, void *table);
/* The file's path, for logs. */
const char *modmta_reload_path(const modmta_reload *r);
/* Free r and its table: every table must have been released. NULL is a
 * no-op. */
void modmta_reload_close(modmta_reload *r);

#ifdef __cplusplus
}
#endif

#endif
