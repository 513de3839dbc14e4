/* Error reports, the text of MODMTA_E_* codes, and errno's. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include <modmta/err.h>

void
modmta_err_set(modmta_err *err, const char *path, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    snprintf(err->path, sizeof(err->path), "%s", path ? path : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

const char *
modmta_strerror(int code)
{
    switch (code) {
    case MODMTA_OK: return "success";
    case MODMTA_E_NOMEM: return "out of memory";
    case MODMTA_E_INVAL: return "invalid argument or syntax";
    case MODMTA_E_TEMP: return "temporary failure";
    case MODMTA_E_PERM: return "not permitted";
    case MODMTA_E_STATE: return "not allowed in this phase";
    case MODMTA_E_UNSUPPORTED: return "not supported";
    case MODMTA_E_NOTFOUND: return "not found";
    case MODMTA_E_CONFIG: return "configuration error";
    case MODMTA_E_IO: return "I/O error";
    case MODMTA_E_LIMIT: return "limit exceeded";
    case MODMTA_E_TIMEOUT: return "timed out";
    case MODMTA_E_NOSPACE: return "no space left on device";
    default: return "unknown error";
    }
}

int
modmta_err_from_errno(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return MODMTA_E_NOSPACE;
    case EFBIG:
        return MODMTA_E_LIMIT;
    case ENOENT:
    case ENOTDIR:
        return MODMTA_E_NOTFOUND;
    case EACCES:
    case EPERM:
    case EROFS:
    case ELOOP:
        return MODMTA_E_PERM;
    case ENOMEM:
        return MODMTA_E_NOMEM;
    case ETIMEDOUT:
        return MODMTA_E_TIMEOUT;
    default:
        return MODMTA_E_IO;
    }
}
