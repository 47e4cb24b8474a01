/*
 * cfg.h -- configuration: one table of settings drives the embedded
 * defaults, the INI file (inih), the command-line flags, validation and
 * --check-config.
 *
 * Owns:       struct cfg (defined in cfg_types.h), an immutable snapshot
 *             once cfg_load returns: the [herald] settings, and in sites[]
 *             one full struct cfg per [site NAME] section (the [herald]
 *             values with the site's own on top; one site named "default"
 *             when the file has none).
 * Called by:  main.c at startup; every other module reads the snapshot.
 * Invariants: built on the main thread before any other thread starts;
 *             read-only afterwards (a reload builds a new snapshot).
 * Errors:     cfg_load returns -1 with *cause set to one line (malloc'd)
 *             naming the file, line, key and what is wrong.
 * Tests:      tests/unit/test_cfg.c, and tests/unit/test_cfg_value.c for
 *             the value parsers of cfg_value.h.
 */
#ifndef HERALD_CFG_H
#define HERALD_CFG_H

#include <stddef.h>

#include "cfg_types.h" /* struct cfg, enum cfg_action */
#include "cfg_value.h" /* the value parsers, public too: cfg_parse_size, ... */

#define CFG_DEV_SECRET "herald-dev-secret"
#define HERALD_VERSION "0.1.0"

/*
 * Build the configuration from defaults, then -c FILE, then flags, and
 * validate it. Returns 0 with *out filled and *action set, or -1 with
 * *cause set (the caller prints it, frees it, and exits 1).
 */
int cfg_load(int argc, char **argv, struct cfg *out, enum cfg_action *action, char **cause);

/*
 * The settings as cfg_load reads them from file (NULL: the development
 * defaults), for a tool that only looks for a running daemon's sockets
 * (herald status): no private file is read, so every site's secret and
 * the Redis password stay NULL, and no api_socket_group membership is
 * asked. Thus a user who may read the file but not every site's secret
 * file still learns every site's api_socket. The snapshot must never run a
 * daemon. Returns 0, or -1 with *cause set as cfg_load does.
 */
int cfg_load_peek(const char *file, struct cfg *out, char **cause);

/*
 * For a reload: every setting of next that may not change while running
 * (no CFG_RELOAD) and differs from running gets running's value back, with
 * a warning logged for each, at the top level (the Redis password read from
 * redis_password_file too) and in each site (the sites must be the same:
 * cfg_same_sites). Returns how many were kept.
 */
int cfg_keep_restart_only(const struct cfg *running, struct cfg *next);

/*
 * May a reload go from running to next? Adding, removing, renaming or
 * reordering sites needs a restart. Returns 1, or 0 with *cause set.
 */
int cfg_same_sites(const struct cfg *running, const struct cfg *next, char **cause);

/* The site index whose name is name, or -1. */
int cfg_site_index(const struct cfg *c, const char *name);

/* Release everything cfg_load stored in *c. */
void cfg_free(struct cfg *c);

/*
 * The INI key of the i-th setting in the table, or NULL past the end: lets
 * tests and tools enumerate every key (docs/config.md, herald.ini.example).
 */
const char *cfg_key_name(size_t i);

#endif
