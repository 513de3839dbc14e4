/*
 * The built-in passdb backends of libmodmta (not installed).
 */
#ifndef MODMTA_PASSDB_PRIV_H
#define MODMTA_PASSDB_PRIV_H

#include <modmta/passdb.h>

extern const modmta_passdb_backend passdb_file_backend;
extern const modmta_passdb_backend passdb_saslauthd_backend;

#endif
