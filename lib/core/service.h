/*
 * service.h -- running under a service manager: readiness and state for
 * systemd (the sd_notify datagram protocol, without libsystemd), and
 * dropping root privileges once the sockets are bound.
 *
 * Owns:       nothing between calls.
 * Called by:  main.c, on the main thread.
 * Invariants: every function is a no-op outside systemd (no NOTIFY_SOCKET)
 *             or when there is nothing to drop; failures to notify are
 *             logged, never fatal, because the daemon works without them.
 */
#ifndef HERALD_SERVICE_H
#define HERALD_SERVICE_H

#include <sys/types.h>

/* Send one state line ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...") to systemd. */
void svc_notify(const char *state);

/*
 * Become user (and group, or the user's primary group when NULL), with that
 * user's supplementary groups. Both NULL: nothing to do. Returns 0, or -1
 * with *cause set (malloc'd).
 */
int svc_drop_privileges(const char *user, const char *group, char **cause);

/*
 * The uid the process runs as once svc_drop_privileges(user, ...) is done:
 * user's, or the effective uid when user is NULL or unknown (then the drop
 * itself fails and says so).
 */
uid_t svc_run_uid(const char *user);

#endif
