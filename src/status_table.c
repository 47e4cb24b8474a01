/*
 * status_table.c -- `herald status`'s output (status_table.h): the figures
 * of each site's /stats answer in a table, its errors by kind below, or the
 * answers as one JSON object.
 *
 * Owns:       the cells and texts it makes, freed before it returns.
 * Called by:  status.c (status_main).
 * Invariants: see status_table.h. A rate is a count over the window GET
 *             /stats names ("last_minute": published, delivered, seconds)
 *             divided by its seconds; an older daemon that gives none shows
 *             "-". The errors column adds up API errors by status,
 *             handshakes refused by reason, protocol closes by code, slow
 *             consumers, and RPC calls failed and hooks dropped.
 * Tests:      tests/unit/test_status.c, tests/integration/36-status.py.
 */
#include "status_table.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/* The figures of one /stats answer the table shows. */
struct figures {
    long long uptime, connections, users, channels, subscriptions;
    long long published, delivered, errors;
    long long minute_published, minute_delivered, minute_seconds; /* seconds 0: not given */
    char *details; /* owned: the errors by kind, "" when there are none */
};

/* An uptime in seconds as "42s", "12m05s", "4h12m" or "3d04h": one word, for the table. */
static void format_uptime(char *buf, size_t size, long long s)
{
    if (s < 60)
        snprintf(buf, size, "%llds", s);
    else if (s < 3600)
        snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, size, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, size, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

/* o[key] as a count (an integer, 0 or more); 0, or -1 when it is not one. */
static int read_count(const json_t *o, const char *key, long long *out)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/*
 * Add o[key], an object of counts by kind ({"400": 3, ...}), to *sum, and
 * write its non-zero ones to f after label ("; api errors 400: 3, 413: 1").
 * Returns 0, or -1 when it is not such an object.
 */
static int read_kinds(const json_t *o, const char *key, const char *label, FILE *f, long long *sum)
{
    json_t *kinds = json_object_get(o, key), *v;
    const char *kind;
    long long n = 0;

    if (!json_is_object(kinds))
        return -1;
    json_object_foreach (kinds, kind, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return -1;
        if (json_integer_value(v) == 0)
            continue;
        if (n == 0)
            fprintf(f, "; %s %s: %lld", label, kind, (long long)json_integer_value(v));
        else
            fprintf(f, ", %s: %lld", kind, (long long)json_integer_value(v));
        n += json_integer_value(v);
    }
    *sum += n;
    return 0;
}

/* One count that is an error kind of its own ("; slow consumers 2"), when not 0. */
static void add_kind(FILE *f, const char *label, long long n, long long *sum)
{
    if (n > 0)
        fprintf(f, "; %s %lld", label, n);
    *sum += n;
}

/* The errors of answer o: their sum in fig->errors, by kind in fig->details. 0, or -1. */
static int read_errors(const json_t *o, struct figures *fig)
{
    json_t *rpc = json_object_get(o, "rpc");
    long long slow, failed, dropped;
    size_t size = 0;
    char *text = NULL;
    FILE *f = open_memstream(&text, &size);
    int r = -1;

    if (f == NULL)
        return -1;
    fig->errors = 0;
    if (read_kinds(o, "api_errors", "api errors", f, &fig->errors) == 0 &&
        read_kinds(o, "handshakes_refused", "handshakes refused", f, &fig->errors) == 0 &&
        read_kinds(o, "protocol_errors", "protocol closes", f, &fig->errors) == 0 &&
        read_count(o, "slow_consumers", &slow) == 0 && read_count(rpc, "failed", &failed) == 0 &&
        read_count(rpc, "dropped", &dropped) == 0) {
        add_kind(f, "slow consumers", slow, &fig->errors);
        add_kind(f, "rpc failed", failed, &fig->errors);
        add_kind(f, "rpc hooks dropped", dropped, &fig->errors);
        r = 0;
    }
    if (fclose(f) != 0)
        r = -1;
    if (r == 0)
        fig->details = xstrdup(size > 2 ? text + 2 : ""); /* without the first "; " */
    free(text);
    return r;
}

/*
 * Read the figures the table shows from a /stats answer. Returns 0, or -1
 * with *error set (malloc'd) naming the first field that is wrong.
 */
static int read_figures(const json_t *o, struct figures *fig, char **error)
{
    static const char *const keys[] = {"uptime",        "connections", "users",    "channels",
                                       "subscriptions", "published",   "delivered"};
    long long *const vals[] = {&fig->uptime,   &fig->connections,   &fig->users,
                               &fig->channels, &fig->subscriptions, &fig->published,
                               &fig->delivered};
    json_t *minute = json_object_get(o, "last_minute");

    memset(fig, 0, sizeof *fig);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (read_count(o, keys[i], vals[i]) != 0) {
            *error = xasprintf("malformed answer: \"%s\" is not a count", keys[i]);
            return -1;
        }
    /* An older herald has no "last_minute": the table shows "-" for its rates. */
    if (minute != NULL &&
        (read_count(minute, "published", &fig->minute_published) != 0 ||
         read_count(minute, "delivered", &fig->minute_delivered) != 0 ||
         read_count(minute, "seconds", &fig->minute_seconds) != 0 || fig->minute_seconds == 0)) {
        *error = xstrdup("malformed answer: \"last_minute\" is not three counts");
        return -1;
    }
    if (read_errors(o, fig) != 0) {
        *error = xstrdup("malformed answer: the error counts are not counts");
        return -1;
    }
    return 0;
}

#define NCOLS 11

static const char *const heads[NCOLS] = {"SITE",      "UPTIME",    "CONNS",     "USERS",
                                         "CHANNELS",  "SUBS",      "PUBLISH/S", "PUBLISHED",
                                         "DELIVER/S", "DELIVERED", "ERRORS"};

/* A per-second rate over the window, or "-" when the daemon gives none (malloc'd). */
static char *format_rate(long long count, long long seconds)
{
    return seconds > 0 ? xasprintf("%.2f", (double)count / (double)seconds) : xstrdup("-");
}

/* The table's cells but the first (the site's name) for a site that answered (malloc'd). */
static void row_cells(const struct figures *f, char **cell)
{
    char up[32];

    format_uptime(up, sizeof up, f->uptime);
    cell[1] = xstrdup(up);
    cell[2] = xasprintf("%lld", f->connections);
    cell[3] = xasprintf("%lld", f->users);
    cell[4] = xasprintf("%lld", f->channels);
    cell[5] = xasprintf("%lld", f->subscriptions);
    cell[6] = format_rate(f->minute_published, f->minute_seconds);
    cell[7] = xasprintf("%lld", f->published);
    cell[8] = format_rate(f->minute_delivered, f->minute_seconds);
    cell[9] = xasprintf("%lld", f->delivered);
    cell[10] = xasprintf("%lld", f->errors);
}

/* Print one row: the first column left-aligned, the others right-aligned. */
static void print_row(FILE *out, char *const *cell, const int *width)
{
    fprintf(out, "%-*s", width[0], cell[0]);
    for (int c = 1; c < NCOLS; c++)
        fprintf(out, "  %*s", width[c], cell[c]);
    fputc('\n', out);
}

/* The widths the columns need for the heads and every row's cells (NULL: none). */
static void column_widths(char **cells, size_t nrows, int *width)
{
    for (int c = 0; c < NCOLS; c++) {
        width[c] = (int)strlen(heads[c]);
        for (size_t r = 0; r < nrows; r++) {
            char *v = cells[r * NCOLS + c];

            if (v != NULL && (int)strlen(v) > width[c])
                width[c] = (int)strlen(v);
        }
    }
}

/*
 * Print the table: a row per site (or why it did not answer), a line
 * saying what the columns count, and each site's errors by kind.
 */
size_t status_table_print(FILE *out, struct status_table_site *sites, size_t n)
{
    char **cells = xcalloc(n * NCOLS, sizeof *cells);
    char **details = xcalloc(n, sizeof *details);
    int width[NCOLS];
    size_t answered = 0;
    struct figures fig;

    for (size_t i = 0; i < n; i++) {
        cells[i * NCOLS] = xstrdup(sites[i].name);
        if (sites[i].error == NULL && read_figures(sites[i].answer, &fig, &sites[i].error) == 0) {
            row_cells(&fig, &cells[i * NCOLS]);
            details[i] = fig.details;
            answered++;
        }
    }
    column_widths(cells, n, width);
    print_row(out, (char *const *)heads, width);
    for (size_t i = 0; i < n; i++) {
        if (sites[i].error != NULL) {
            fprintf(out, "%-*s  error: %s\n", width[0], sites[i].name, sites[i].error);
        } else {
            print_row(out, &cells[i * NCOLS], width);
        }
    }
    if (answered > 0)
        fprintf(out, "\nPUBLISH/S, DELIVER/S: messages published, frames delivered a second, over "
                     "the last minute.\nPUBLISHED, DELIVERED: since start. ERRORS: API errors, "
                     "refused handshakes, protocol\ncloses, slow consumers, RPC failures; by kind "
                     "below.\n");
    for (size_t i = 0; i < n; i++)
        if (details[i] != NULL && details[i][0] != '\0')
            fprintf(out, "%s errors: %s\n", sites[i].name, details[i]);
    for (size_t i = 0; i < n * NCOLS; i++)
        free(cells[i]);
    for (size_t i = 0; i < n; i++)
        free(details[i]);
    free(cells);
    free(details);
    return n - answered;
}

/* Print {"site": answer, ...}; a site that did not answer gets {"ok": false, "error": why}. */
size_t status_table_print_json(FILE *out, const struct status_table_site *sites, size_t n)
{
    json_t *all = json_object();
    size_t failed = 0;

    for (size_t i = 0; i < n; i++) {
        json_t *v = sites[i].answer != NULL
                        ? json_incref(sites[i].answer)
                        : json_pack("{s:b, s:s}", "ok", 0, "error", sites[i].error);

        if (sites[i].answer == NULL)
            failed++;
        json_object_set_new(all, sites[i].name, v);
    }
    json_dumpf(all, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(all);
    return failed;
}
