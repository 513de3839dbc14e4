/*
 * A SASL exchange (modmta/sasl.h), shared by its two files (not
 * installed): sasl.c runs the exchange, sasl_verify.c checks its result.
 */
#ifndef MODMTA_SASL_PRIV_H
#define MODMTA_SASL_PRIV_H

#include <modmta/base64.h>
#include <modmta/sasl.h>

/* A stamp: "<" PID "." COUNTER "." 16 hex "." TIME "@" hostname ">". */
#define SASL_STAMP_MAX 384

enum sasl_state {
    SASL_ST_INIT,       /* start() not called yet */
    SASL_ST_PLAIN,      /* waiting for the PLAIN message */
    SASL_ST_LOGIN_USER, /* LOGIN: waiting for the user name */
    SASL_ST_LOGIN_PASS, /* LOGIN: waiting for the password */
    SASL_ST_CRAM,       /* CRAM-MD5: waiting for "user digest" */
    SASL_ST_DONE,       /* credentials complete */
    SASL_ST_END,        /* over: cancelled, refused or verified */
};

struct modmta_sasl {
    unsigned mech;
    enum sasl_state state;
    char hostname[256];
    char stamp[SASL_STAMP_MAX];  /* CRAM-MD5: the challenge in clear */
    char challenge[MODMTA_BASE64_ENCODED_LEN(SASL_STAMP_MAX) + 1];
    char user[MODMTA_SASL_FIELD_MAX + 1];
    char passwd[MODMTA_SASL_FIELD_MAX + 1];
    size_t passwd_len;
    char digest[33];             /* CRAM-MD5: 32 lower-case hex digits */
    char dec[MODMTA_BASE64_DECODED_MAX(MODMTA_SASL_LINE_MAX) + 1];
};

#endif
