/*
 * The module loader: finds NAME.so on the module path, refuses files that
 * another user could have written, dlopens it (RTLD_NOW|RTLD_LOCAL, never
 * dlclose), resolves exactly "modmta_descriptor" and checks its ABI
 * version, size, build signature and name.
 *
 * A process-wide table (with its own private mutex) caches modules by
 * path: the same .so used by two instances, or by successive generations,
 * is opened and its load() run once per process. A reload therefore never
 * picks up a changed .so at the same path; a restart does (as nginx).
 */
#ifndef MODMTA_CORE_MODLOAD_H
#define MODMTA_CORE_MODLOAD_H

#include <modmta/module.h>

#include "config.h"

/* Look for DIR/NAME.so, then DIR/NAME/NAME.so (the build tree's layout),
 * in each DIR of module_path in order (NULL or empty: MODMTA_MODULEDIR).
 * Returns the descriptor as this core sees it: fields beyond the module's
 * `size` read as NULL/0. It stays valid for the life of the process.
 * On failure returns NULL and adds one error under jpath
 * ("$.modules[N].module") naming the file and the reason. */
const modmta_module *modload_load(char *const *module_path, const char *name,
                                  const char *jpath,
                                  struct config_errors *errs);

/* Load every module cfg->modules names (errors under "$.modules[N]
 * .module"), without creating instances: the daemon does this as root,
 * before the privilege drop; the generations built afterwards find them
 * loaded. Returns the number of errors added. */
size_t modload_preload(const struct config *cfg, struct config_errors *errs);

/* At exit: run every loaded module's unload(), newest first. The modules
 * stay mapped. Loading again afterwards runs load() again. */
void modload_unload_all(void);

#endif
