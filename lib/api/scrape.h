/*
 * scrape.h -- Herald's figures as Prometheus series (GET /metrics).
 *
 * Owns:       nothing beyond one call: it gathers the counters (a CMD_STATS
 *             job per site, the engine's counts, the API's atomics, the
 *             process's descriptors) and writes them through metrics.h.
 * Called by:  routes.c (a site's API socket: that site's series only) and
 *             mlisten.c (the metrics listener: every site's and the
 *             process's), on their own threads; it blocks until the
 *             workers and the engine have answered.
 * Invariants: a site's series carry its name in the label site, and a
 *             scrape of one site reads nothing of another. Every label
 *             value but the site name comes from a fixed table (stats.h,
 *             handshake.h, proto.h): never a user id or channel name.
 */
#ifndef HERALD_SCRAPE_H
#define HERALD_SCRAPE_H

#include "api.h"
#include "metrics.h"

/*
 * Write the series of site into b; site < 0: those of every site, then the
 * process-wide ones (build, descriptors, engine, handshakes no site owns).
 */
void scrape_write(struct api *a, int site, struct metrics_buf *b);

#endif
