/*
 * modmta SDK: error codes and the error report a failing call fills in.
 *
 * Functions return 0 on success or a negative MODMTA_E_* code. Functions
 * that return a pointer return NULL and fill a modmta_err, which carries a
 * message and, for configuration errors, the JSON path at fault.
 * Values are append-only.
 */
#ifndef MODMTA_ERR_H
#define MODMTA_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    MODMTA_OK = 0,
    MODMTA_E_NOMEM = -1,       /* out of memory */
    MODMTA_E_INVAL = -2,       /* bad argument or syntax */
    MODMTA_E_TEMP = -3,        /* temporary failure: caller answers 4xx */
    MODMTA_E_PERM = -4,        /* action not permitted (capabilities) */
    MODMTA_E_STATE = -5,       /* action not allowed in this phase */
    MODMTA_E_UNSUPPORTED = -6, /* feature not built in */
    MODMTA_E_NOTFOUND = -7,
    MODMTA_E_CONFIG = -8,      /* configuration error */
    MODMTA_E_IO = -9,          /* I/O error or peer closed */
    MODMTA_E_LIMIT = -10,      /* a limit was exceeded */
    MODMTA_E_TIMEOUT = -11,
    MODMTA_E_NOSPACE = -12,    /* disk full or quota */
};

typedef struct modmta_err {
    char path[256]; /* JSON path ("$.modules[2].map") or file:line; may be "" */
    char msg[512];
} modmta_err;

/* Fill err (if not NULL) with a path (may be NULL) and a message. */
void modmta_err_set(modmta_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Static text for a MODMTA_E_* code. */
const char *modmta_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
