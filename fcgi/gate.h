/*
 * gate.h -- hold API connections until a whole FastCGI request has
 * arrived, so libfcgi's blocking reads never wait on a slow or idle caller.
 *
 * Owns:       struct gate (the connections still waiting for their bytes).
 * Called by:  api.c on the API threads.
 * Invariants: gate_scan only reads the bytes it is given (a peek of the
 *             socket); a connection is in the waiting list or in the epoll
 *             set or being served by exactly one thread, never two of these.
 */
#ifndef HERALD_GATE_H
#define HERALD_GATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum gate_result {
    GATE_COMPLETE,  /* a whole request (up to its empty STDIN record) is there */
    GATE_PARTIAL,   /* well formed so far: wait for more */
    GATE_BAD,       /* not FastCGI: close without answering */
};

/* Scan the records in p[0..n): is there a whole request? */
enum gate_result gate_scan(const uint8_t *p, size_t n);

struct gate_wait {
    int fd;
    int site;          /* whose API socket it came in on */
    double since;      /* monotonic seconds when it started waiting */
};

struct gate {
    pthread_mutex_t lock;
    struct gate_wait *w;   /* owned */
    size_t n, cap;
};

void gate_init(struct gate *g);

/* Close every waiting connection and free the list. */
void gate_free(struct gate *g);

/* Add fd, a connection to site's socket, to the waiting list. */
void gate_park(struct gate *g, int fd, int site, double since);

/* Take the whole waiting list (malloc'd, *n entries) for one thread to look at. */
struct gate_wait *gate_take(struct gate *g, size_t *n);

#endif
