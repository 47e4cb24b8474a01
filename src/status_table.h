/*
 * status_table.h -- what `herald status` prints: each site's GET /stats
 * answer read into one row of a table, or every answer as one JSON object.
 *
 * Owns:       nothing past the call.
 * Called by:  status.c, once the sites have answered or failed.
 * Invariants: no I/O but the stream written to; an answer is read, never
 *             trusted: a figure that is missing or not a count makes the
 *             site's row an error instead of a number.
 * Tests:      tests/unit/test_status.c, tests/integration/36-status.py.
 */
#ifndef HERALD_STATUS_TABLE_H
#define HERALD_STATUS_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* One site as the printers see it. */
struct status_table_site {
    const char *name;     /* borrowed: the site's name */
    json_t *answer;       /* borrowed: its /stats answer (an object with "ok": true), or NULL */
    char *error;          /* owned: why there is no answer, or NULL; set by the table too */
};

/*
 * Print a row per site (its figures, or "error: why"), what the columns
 * count, and each site's errors by kind. A site whose answer lacks a
 * figure gets its error set. Returns how many sites have no figures.
 */
size_t status_table_print(FILE *out, struct status_table_site *sites, size_t n);

/*
 * Print {"site": answer, ...}, each answer as it came, or for a site that
 * did not answer {"ok": false, "error": why}. Returns how many did not.
 */
size_t status_table_print_json(FILE *out, const struct status_table_site *sites, size_t n);

#endif
