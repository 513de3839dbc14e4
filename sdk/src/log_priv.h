/* Where log lines go: set by the core at start and at reload. */
#ifndef MODMTA_LOG_PRIV_H
#define MODMTA_LOG_PRIV_H

/* level: MODMTA_LOG_*; use_syslog: 0 writes to stderr; facility: a
 * syslog facility name ("mail", "local0"...). Returns MODMTA_E_INVAL for
 * an unknown facility. */
int modmta_log_setup(int level, int use_syslog, const char *facility);
/* "info" → MODMTA_LOG_INFO; -1 if unknown. */
int modmta_log_level_parse(const char *name);

#endif
