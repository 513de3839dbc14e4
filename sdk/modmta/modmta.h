/* modmta SDK: everything a module may include, in one header. */
#ifndef MODMTA_MODMTA_H
#define MODMTA_MODMTA_H

#include <modmta/err.h>
#include <modmta/module.h>
#include <modmta/ctx.h>
#include <modmta/conn.h>
#include <modmta/addr.h>
#include <modmta/map.h>
#include <modmta/conf.h>
#include <modmta/log.h>
#include <modmta/passdb.h>
#include <modmta/lockout.h>
#include <modmta/mbox.h>
#include <modmta/dns.h>
#include <modmta/shared.h>
#include <modmta/base64.h>
#include <modmta/sasl.h>
#include <modmta/reload.h>

#endif
