/*
 * net.h -- listening sockets: TCP HOST:PORT or unix:PATH.
 *
 * Owns:       nothing after it returns: the caller owns each fd.
 * Called by:  main.c (unix sockets, bound once and shared by the workers)
 *             and worker.c (TCP: one SO_REUSEPORT listener per worker, so
 *             the kernel spreads connections over the workers).
 * Invariants: every fd is non-blocking and close-on-exec.
 * Errors:     startup errors come back through *cause (malloc'd, one line).
 */
#ifndef HERALD_NET_H
#define HERALD_NET_H

#include <sys/types.h>

/* Is this address a unix: path? */
int net_is_unix(const char *addr);

/*
 * Listen on addr ("HOST:PORT", "[V6]:PORT" or "unix:PATH"). A unix socket
 * replaces a stale socket file (never another kind of file) and is chmod'ed
 * to mode. reuseport sets SO_REUSEPORT on TCP. Returns the fd, or -1 with
 * *cause set.
 */
int net_listen(const char *addr, mode_t mode, int reuseport, char **cause);

/*
 * Accept one connection: non-blocking, close-on-exec, TCP_NODELAY on TCP.
 * Returns the fd, or -1 with errno (EAGAIN when there is none).
 */
int net_accept(int lfd);

/*
 * Start a non-blocking connect to "unix:PATH" or numeric "HOST:PORT".
 * Returns the fd (connected, or connecting: wait for writability and read
 * SO_ERROR), or -1 with *cause set (malloc'd).
 */
int net_connect(const char *addr, char **cause);

/* An IPv4 or IPv6 address as 16 bytes (IPv4 mapped to ::ffff:a.b.c.d); 0, or -1. */
int net_parse_addr(const char *s, unsigned char addr[16]);

/*
 * "ADDRESS" or "ADDRESS/BITS" (IPv4 bits 0-32, IPv6 0-128) as 16 bytes and
 * a prefix length out of 128 (an IPv4 /24 is 120); 0, or -1 when malformed.
 */
int net_parse_cidr(const char *s, unsigned char addr[16], int *bits);

/* Remove a unix socket file left by net_listen (addr may be unix:PATH or a path). */
void net_unlink(const char *addr);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit. */
long net_raise_fd_limit(void);

#endif
