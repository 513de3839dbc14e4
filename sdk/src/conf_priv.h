/* The configuration error list of an instance (conf_error.c). */
#ifndef MODMTA_CONF_PRIV_H
#define MODMTA_CONF_PRIV_H

#include <modmta/conf.h>

/* An instance records at most this many errors; the rest are counted. */
#define CONF_ERRORS_MAX 100

/* Record (path, msg) on host (if not NULL) and copy it into err_r (if
 * not NULL). path NULL: the host's path. */
void conf_error_record(const modmta_host *host, modmta_err *err_r,
                       const char *path, const char *msg);

/* For the core: the errors create() recorded on host, in order, and how
 * many were over CONF_ERRORS_MAX. */
size_t conf_errors_count(const modmta_host *host);
const modmta_err *conf_errors_get(const modmta_host *host, size_t i);
size_t conf_errors_dropped(const modmta_host *host);
/* modmta_host_free's part. */
struct conf_errors;
void conf_errors_free(struct conf_errors *e);

#endif
