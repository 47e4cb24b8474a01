/*
 * mlisten.h -- the metrics listener: plain HTTP/1.1 on metrics_listen,
 * answering GET and HEAD /metrics for a Prometheus server with every
 * site's series and the process's.
 *
 * Owns:       struct mlisten: its listening socket, its thread with an epoll
 *             set of its own, its connections, and its refusal counters.
 * Called by:  main.c (start after the API, stop before it).
 * Invariants: it faces the network, so nothing a peer sends can hold more
 *             than a bounded share: MLISTEN_MAX_CONNS connections, a head
 *             of MLISTEN_MAX_HEAD bytes read within MLISTEN_HEAD_TIMEOUT,
 *             the answer taken within MLISTEN_IO_TIMEOUT; past any of them
 *             the connection is answered (400, 404, 405, 431) or closed,
 *             and counted. It runs on its own thread, so a slow peer never
 *             holds a worker or an API thread.
 */
#ifndef HERALD_MLISTEN_H
#define HERALD_MLISTEN_H

#include "api.h"

struct mlisten;

/* Listen on addr ("HOST:PORT") and start the thread. NULL with *cause set. */
struct mlisten *mlisten_start(struct api *a, const char *addr, char **cause);

/* Stop the thread, close every connection and the socket, free. NULL is a no-op. */
void mlisten_stop(struct mlisten *m);

#endif
