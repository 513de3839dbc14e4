/*
 * The embedded default configuration, used when modmta runs without -c and
 * printed by --print-default-config. It runs unprivileged from the source
 * tree (`make run`): relative paths are relative to the working directory.
 * Keys left out take their defaults (docs/config.md); local_domains is
 * omitted so that it becomes "localhost" and the host name. Relay only
 * from loopback (relay_access).
 */
#include "config.h"

static const char config_default[] =
    "{\n"
    "  \"spool\": \"./var/spool\",\n"
    "  \"log\": {\"level\": \"info\"},\n"
    "  \"listen\": [\n"
    "    {\"name\": \"smtp\", \"address\": \"127.0.0.1:2525\","
    " \"protocol\": \"smtp\"}\n"
    "  ],\n"
    "  \"modules\": [\n"
    "    {\"module\": \"relay_access\", \"mynetworks\":"
    " [\"127.0.0.0/8\", \"::1/128\"]},\n"
    "    {\"module\": \"store_mbox\", \"directory\": \"./var/mail\","
    " \"users\": \"any\"}\n"
    "  ]\n"
    "}\n";

const char *
config_default_text(void)
{
    return config_default;
}
