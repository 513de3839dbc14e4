/*
 * greylist_duration: "delay" and "expire". The SDK on this ABI has no
 * duration option type; this is the plugin's one parser, to be replaced
 * by the SDK's when it has one.
 */
#include <errno.h>
#include <stdlib.h>

#include "greylist.h"

/* Seconds per unit suffix; 0: unknown suffix. */
static long
greylist_duration_unit(const char *s)
{
    if (s[0] != '\0' && s[1] != '\0')
        return 0;
    switch (s[0]) {
    case '\0':
    case 's':
        return 1;
    case 'm':
        return 60;
    case 'h':
        return 3600;
    case 'd':
        return 86400;
    default:
        return 0;
    }
}

int
greylist_duration(const json_t *v, long min, long max, const char *path,
                  long *secs_r, modmta_err *err_r)
{
    long long n;
    long unit = 1;

    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;

        errno = 0;
        n = strtoll(s, &end, 10);
        if (s[0] < '0' || s[0] > '9' || errno != 0 ||
            (unit = greylist_duration_unit(end)) == 0)
            goto bad;
    } else {
        goto bad;
    }
    if (n < 0 || n > max / unit || n * unit < min) {
        modmta_err_set(err_r, path, "out of range: %lds to %lds", min, max);
        return MODMTA_E_CONFIG;
    }
    *secs_r = (long)(n * unit);
    return 0;
bad:
    modmta_err_set(err_r, path,
                   "expected a duration: seconds, or a number with s, m, h "
                   "or d (\"5m\", \"35d\")");
    return MODMTA_E_CONFIG;
}
