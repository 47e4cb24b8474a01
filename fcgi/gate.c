/*
 * gate.c -- whole-request check and the waiting list (see gate.h).
 *
 * Owns:       the waiting list's array.
 * Called by:  API threads.
 * Invariants: the list is touched only under its mutex; entries taken out
 *             belong to the taking thread until it parks, serves or closes
 *             each one.
 */
#include "gate.h"

#include <stdlib.h>
#include <unistd.h>

#include "xmalloc.h"

#define GATE_HEADER 8
#define GATE_VERSION 1
#define GATE_BEGIN_REQUEST 1
#define GATE_ABORT_REQUEST 2
#define GATE_PARAMS 4
#define GATE_STDIN 5
#define GATE_DATA 8
#define GATE_GET_VALUES 9

enum gate_result gate_scan(const uint8_t *p, size_t n)
{
    size_t off = 0;

    while (n - off >= GATE_HEADER) {
        uint8_t type = p[off + 1];
        size_t clen = (size_t)p[off + 4] << 8 | p[off + 5];
        size_t rec = GATE_HEADER + clen + p[off + 6];

        if (p[off] != GATE_VERSION || type < GATE_BEGIN_REQUEST || type > GATE_GET_VALUES ||
            (type > GATE_STDIN && type != GATE_DATA && type != GATE_GET_VALUES))
            return GATE_BAD;
        if (n - off < rec)
            return GATE_PARTIAL;
        /* libfcgi answers these on their own; a request ends with an empty STDIN. */
        if (type == GATE_GET_VALUES || type == GATE_ABORT_REQUEST ||
            (type == GATE_STDIN && clen == 0))
            return GATE_COMPLETE;
        off += rec;
    }
    return GATE_PARTIAL;
}

void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    g->w = NULL;
    g->n = g->cap = 0;
}

void gate_free(struct gate *g)
{
    for (size_t i = 0; i < g->n; i++)
        close(g->w[i].fd);
    free(g->w);
    pthread_mutex_destroy(&g->lock);
}

void gate_park(struct gate *g, int fd, int site, double since)
{
    pthread_mutex_lock(&g->lock);
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->w = xrealloc(g->w, g->cap * sizeof *g->w);
    }
    g->w[g->n].fd = fd;
    g->w[g->n].site = site;
    g->w[g->n].since = since;
    g->n++;
    pthread_mutex_unlock(&g->lock);
}

struct gate_wait *gate_take(struct gate *g, size_t *n)
{
    struct gate_wait *w;

    pthread_mutex_lock(&g->lock);
    w = g->w;
    *n = g->n;
    g->w = NULL;
    g->n = g->cap = 0;
    pthread_mutex_unlock(&g->lock);
    return w;
}
