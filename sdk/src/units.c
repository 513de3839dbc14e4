/*
 * The one duration and size syntax of modmta (conf.h): the core's
 * configuration, the hooks' budgets and every module's options read
 * times and sizes here.
 */
#include <limits.h>
#include <string.h>

#include <modmta/conf.h>

/* At most 12 digits: no overflow before the unit is applied. */
#define UNITS_DIGITS_MAX 12

struct units_suffix {
    const char *name;
    long long mult;
};

static const struct units_suffix units_time[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000LL}, {"h", 3600 * 1000LL},
    {"d", 86400 * 1000LL}, {"w", 7 * 86400 * 1000LL}, {"", 1000},
    {NULL, 0},
};

static const struct units_suffix units_size[] = {
    {"", 1}, {"B", 1},
    {"k", 1LL << 10}, {"K", 1LL << 10}, {"kB", 1LL << 10}, {"KB", 1LL << 10},
    {"m", 1LL << 20}, {"M", 1LL << 20}, {"mB", 1LL << 20}, {"MB", 1LL << 20},
    {"g", 1LL << 30}, {"G", 1LL << 30}, {"gB", 1LL << 30}, {"GB", 1LL << 30},
    {"t", 1LL << 40}, {"T", 1LL << 40}, {"tB", 1LL << 40}, {"TB", 1LL << 40},
    {NULL, 0},
};

/* Digits then one of the suffixes, into digits * mult. */
static int
units_parse(const char *s, const struct units_suffix *units, long long *r)
{
    size_t digits = s != NULL ? strspn(s, "0123456789") : 0;
    long long n = 0;

    if (digits == 0 || digits > UNITS_DIGITS_MAX)
        return MODMTA_E_INVAL;
    for (size_t i = 0; i < digits; i++)
        n = n * 10 + (s[i] - '0');
    for (; units->name != NULL; units++) {
        if (strcmp(s + digits, units->name) != 0)
            continue;
        if (n > LLONG_MAX / units->mult)
            return MODMTA_E_INVAL;
        *r = n * units->mult;
        return 0;
    }
    return MODMTA_E_INVAL;
}

int
modmta_parse_duration_ms(const char *s, long long *ms_r)
{
    return units_parse(s, units_time, ms_r);
}

int
modmta_parse_size(const char *s, long long *bytes_r)
{
    return units_parse(s, units_size, bytes_r);
}
