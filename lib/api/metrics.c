/*
 * metrics.c -- the Prometheus text exposition format (metrics.h).
 *
 * Owns:       struct metrics_buf's text.
 * Called by:  scrape.c, on an API thread or the metrics listener's thread,
 *             each with a buffer of its own.
 * Invariants: label values are escaped as the format says (\\, \" and \n),
 *             so a site name, the only value that comes from outside the
 *             code, cannot break a line; seconds are written from integer
 *             nanoseconds, so no value depends on float formatting.
 * Tests:      tests/unit/test_metrics.c.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void metrics_buf_init(struct metrics_buf *b)
{
    b->cap = 4096;
    b->p = xmalloc(b->cap);
    b->p[0] = '\0';
    b->len = 0;
}

void metrics_buf_free(struct metrics_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Room for n more bytes and the NUL. */
static void metrics_reserve(struct metrics_buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    while (b->len + n + 1 > b->cap)
        b->cap *= 2;
    b->p = xrealloc(b->p, b->cap);
}

/* Append n bytes. */
static void metrics_put(struct metrics_buf *b, const char *s, size_t n)
{
    metrics_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Append a string. */
static void metrics_puts(struct metrics_buf *b, const char *s)
{
    metrics_put(b, s, strlen(s));
}

/* Append formatted text. */
static void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    metrics_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Append a label value, escaped: backslash, double quote and line feed. */
static void metrics_escape(struct metrics_buf *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\')
            metrics_puts(b, "\\\\");
        else if (*v == '"')
            metrics_puts(b, "\\\"");
        else if (*v == '\n')
            metrics_puts(b, "\\n");
        else
            metrics_put(b, v, 1);
    }
}

/* Append "name{l1="v1",...} " (no braces without labels). */
static void metrics_head(struct metrics_buf *b, const char *name, const char *suffix,
                         const struct metrics_label *labels, size_t nlabels)
{
    metrics_puts(b, name);
    metrics_puts(b, suffix);
    if (nlabels > 0) {
        metrics_put(b, "{", 1);
        for (size_t i = 0; i < nlabels; i++) {
            metrics_printf(b, "%s%s=\"", i > 0 ? "," : "", labels[i].name);
            metrics_escape(b, labels[i].value);
            metrics_put(b, "\"", 1);
        }
        metrics_put(b, "}", 1);
    }
    metrics_put(b, " ", 1);
}

/* ns nanoseconds as decimal seconds into out, without trailing zeros ("0.00025", "10"). */
static void metrics_fmt_seconds(char out[32], uint64_t ns)
{
    char frac[16];
    int n = snprintf(frac, sizeof frac, "%09llu", (unsigned long long)(ns % 1000000000ull));

    while (n > 0 && frac[n - 1] == '0')
        frac[--n] = '\0';
    snprintf(out, 32, "%llu%s%s", (unsigned long long)(ns / 1000000000ull), n > 0 ? "." : "", frac);
}

/* Append ns nanoseconds as decimal seconds. */
static void metrics_seconds(struct metrics_buf *b, uint64_t ns)
{
    char s[32];

    metrics_fmt_seconds(s, ns);
    metrics_puts(b, s);
}

void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
    metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
                    size_t nlabels, uint64_t value)
{
    metrics_head(b, name, "", labels, nlabels);
    metrics_printf(b, "%llu\n", (unsigned long long)value);
}

void metrics_sample_ns(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
                       size_t nlabels, uint64_t ns)
{
    metrics_head(b, name, "", labels, nlabels);
    metrics_seconds(b, ns);
    metrics_put(b, "\n", 1);
}

void metrics_histogram(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
                       size_t nlabels, const struct histo *h)
{
    struct metrics_label l[8];
    uint64_t cum = 0;
    size_t n = nlabels < 7 ? nlabels : 7;

    memcpy(l, labels, n * sizeof *l);
    l[n].name = "le";
    for (unsigned i = 0; i < HISTO_NBUCKETS; i++) {
        char le[32];

        cum += h->bucket[i];
        if (i < HISTO_NBOUNDS)
            metrics_fmt_seconds(le, histo_bounds_ns[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        l[n].value = le;
        metrics_head(b, name, "_bucket", l, n + 1);
        metrics_printf(b, "%llu\n", (unsigned long long)cum);
    }
    metrics_head(b, name, "_sum", labels, n);
    metrics_seconds(b, h->sum_ns);
    metrics_put(b, "\n", 1);
    metrics_head(b, name, "_count", labels, n);
    metrics_printf(b, "%llu\n", (unsigned long long)cum);
}
