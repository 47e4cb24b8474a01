/*
 * status.h -- `herald status`: a running daemon's figures, site by site,
 * read through the sites' API sockets (GET /stats), for an admin without
 * Prometheus.
 *
 * Owns:       nothing past the call.
 * Called by:  main.c, when the first argument is "status", before the
 *             daemon's own flags are read.
 * Invariants: one thread, no daemon state: it reads the config the way the
 *             daemon does (cfg_load_peek, which reads no secret), asks
 *             every site at once, and waits at most --timeout in all.
 * Errors:     the exit status: 0 every site answered, 1 some site did not
 *             (each one's reason printed) or the config could not be read,
 *             2 a usage error.
 * Tests:      tests/integration/36-status.py, tests/unit/test_status.c.
 */
#ifndef HERALD_STATUS_H
#define HERALD_STATUS_H

#define STATUS_OK 0
#define STATUS_UNREACHABLE 1
#define STATUS_USAGE 2

/* Run `herald status`; argv[0] is "status". Returns the exit status. */
int status_main(int argc, char **argv);

#endif
