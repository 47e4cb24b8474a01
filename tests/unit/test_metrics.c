/*
 * test_metrics.c -- the Prometheus text format (lib/api/metrics.c) and the
 * histograms behind it (lib/core/histo.c): HELP and TYPE lines, label
 * values escaped, cumulative buckets ending in +Inf with _sum and _count,
 * and the counters that feed them (stats.c: close codes, routes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "histo.h"
#include "metrics.h"
#include "stats.h"

static void test_metrics_family_lines(void **state)
{
    struct metrics_buf b;

    metrics_buf_init(&b);
    metrics_family(&b, "herald_connections", "gauge", "Open WebSocket connections.");
    metrics_sample(&b, "herald_connections", NULL, 0, 7);
    assert_string_equal(b.p, "# HELP herald_connections Open WebSocket connections.\n"
                             "# TYPE herald_connections gauge\n"
                             "herald_connections 7\n");
    assert_int_equal(b.len, strlen(b.p));
    metrics_buf_free(&b);
}

static void test_metrics_labels_escaped(void **state)
{
    struct metrics_buf b;
    struct metrics_label l[2] = {{"site", "a\"b\\c\nd"}, {"kind", "user"}};

    metrics_buf_init(&b);
    metrics_sample(&b, "x_total", l, 2, 18446744073709551615ull);
    assert_string_equal(b.p,
                        "x_total{site=\"a\\\"b\\\\c\\nd\",kind=\"user\"} 18446744073709551615\n");
    metrics_buf_free(&b);
}

static void test_metrics_seconds_exact(void **state)
{
    struct metrics_buf b;

    metrics_buf_init(&b);
    metrics_sample_ns(&b, "a", NULL, 0, 0);
    metrics_sample_ns(&b, "b", NULL, 0, 250000);
    metrics_sample_ns(&b, "c", NULL, 0, 10000000000ull);
    metrics_sample_ns(&b, "d", NULL, 0, 1500000001ull);
    assert_string_equal(b.p, "a 0\nb 0.00025\nc 10\nd 1.500000001\n");
    metrics_buf_free(&b);
}

/* The line of text that starts with prefix, or NULL. */
static const char *line_of(const char *text, const char *prefix)
{
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            return p;
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return NULL;
}

static void test_metrics_histogram_cumulative(void **state)
{
    struct histo h;
    struct metrics_buf b;
    struct metrics_label l = {"site", "s"};

    memset(&h, 0, sizeof h);
    histo_observe(&h, 50000);          /* 50 us: le 0.0001 */
    histo_observe(&h, 100000);         /* exactly on the bound: le 0.0001 */
    histo_observe(&h, 3000000);        /* 3 ms: le 0.005 */
    histo_observe(&h, 20000000000ull); /* 20 s: only +Inf */
    metrics_buf_init(&b);
    metrics_histogram(&b, "lag_seconds", &l, 1, &h);
    assert_non_null(line_of(b.p, "lag_seconds_bucket{site=\"s\",le=\"0.0001\"} 2\n"));
    assert_non_null(line_of(b.p, "lag_seconds_bucket{site=\"s\",le=\"0.0025\"} 2\n"));
    assert_non_null(line_of(b.p, "lag_seconds_bucket{site=\"s\",le=\"0.005\"} 3\n"));
    assert_non_null(line_of(b.p, "lag_seconds_bucket{site=\"s\",le=\"10\"} 3\n"));
    assert_non_null(line_of(b.p, "lag_seconds_bucket{site=\"s\",le=\"+Inf\"} 4\n"));
    assert_non_null(line_of(b.p, "lag_seconds_sum{site=\"s\"} 20.00315\n"));
    assert_non_null(line_of(b.p, "lag_seconds_count{site=\"s\"} 4\n"));
    /* One line per bound, +Inf last among the buckets, then _sum and _count. */
    assert_null(strstr(strstr(b.p, "+Inf") + 1, "+Inf"));
    assert_true(strstr(b.p, "_sum") > strstr(b.p, "+Inf"));
    assert_true(strstr(b.p, "_count") > strstr(b.p, "_sum"));
    {
        size_t n = 0;

        for (const char *p = b.p; (p = strstr(p, "_bucket{")) != NULL; p++)
            n++;
        assert_int_equal(n, HISTO_NBUCKETS);
    }
    metrics_buf_free(&b);
}

static void test_metrics_histo_shared_adds_up(void **state)
{
    struct histo_shared s;
    struct histo a, sum;

    memset(&s, 0, sizeof s);
    memset(&a, 0, sizeof a);
    memset(&sum, 0, sizeof sum);
    histo_observe_shared(&s, 1000);
    histo_observe_shared(&s, 600000000);
    histo_observe(&a, 7000000000ull);
    histo_add_shared(&sum, &s);
    histo_add(&sum, &a);
    assert_int_equal(histo_count(&sum), 3);
    assert_int_equal(sum.sum_ns, 7600001000ull);
    assert_int_equal(sum.bucket[0], 1);
    assert_int_equal(sum.bucket[histo_index(600000000)], 1);
    assert_int_equal(histo_index(600000000), 12); /* le 1 */
    assert_int_equal(sum.bucket[histo_index(7000000000ull)], 1);
    assert_int_equal(histo_index(7000000000ull), 15); /* le 10 */
    assert_int_equal(histo_index(10000000001ull), HISTO_NBOUNDS);
    assert_true(histo_now_ns() > 0);
}

static void test_metrics_counted_labels_bounded(void **state)
{
    struct stats st;
    struct stats_api api;

    memset(&st, 0, sizeof st);
    memset(&api, 0, sizeof api);
    stats_count_close(&st, 1000);
    stats_count_close(&st, 1008);
    stats_count_close(&st, 4321); /* an application's code: "other" */
    stats_count_close(&st, 3000);
    assert_int_equal(st.closes[0], 1);
    assert_int_equal(st.closes[7], 1);
    assert_int_equal(stats_close_codes[7], 1008);
    assert_int_equal(st.closes[STATS_NCLOSE - 1], 2);

    assert_int_equal(stats_route_of("/publish"), STATS_ROUTE_PUBLISH);
    assert_int_equal(stats_route_of("/metrics"), STATS_ROUTE_METRICS);
    assert_int_equal(stats_route_of("/user/42/secret"), STATS_ROUTE_OTHER);
    assert_int_equal(stats_route_of("publish"), STATS_ROUTE_OTHER);
    assert_int_equal(stats_route_of("/other"), STATS_ROUTE_OTHER);
    assert_int_equal(stats_route_of(""), STATS_ROUTE_OTHER);
    stats_count_api(&api, STATS_ROUTE_PUBLISH, 200);
    stats_count_api(&api, STATS_ROUTE_PUBLISH, 418);
    stats_count_api_status(&api, 408);
    assert_int_equal(atomic_load(&api.requests), 3);
    assert_int_equal(atomic_load(&api.by_route[STATS_ROUTE_PUBLISH][0]), 1);
    assert_int_equal(atomic_load(&api.by_route[STATS_ROUTE_PUBLISH][STATS_NSTATUS - 1]), 1);
    assert_int_equal(atomic_load(&api.by_route[STATS_ROUTE_OTHER][5]), 1);
    assert_int_equal(stats_statuses[5], 408);
    assert_int_equal(atomic_load(&api.errors[4]), 1); /* /stats' api_errors still count 408 */
}

static void test_metrics_buffer_grows(void **state)
{
    struct metrics_buf b;
    char name[64];

    metrics_buf_init(&b);
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "m%d", i);
        metrics_sample(&b, name, NULL, 0, (uint64_t)i);
    }
    assert_int_equal(b.len, strlen(b.p));
    assert_non_null(line_of(b.p, "m1999 1999\n"));
    metrics_buf_free(&b);
    assert_null(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_family_lines),
        cmocka_unit_test(test_metrics_labels_escaped),
        cmocka_unit_test(test_metrics_seconds_exact),
        cmocka_unit_test(test_metrics_histogram_cumulative),
        cmocka_unit_test(test_metrics_histo_shared_adds_up),
        cmocka_unit_test(test_metrics_counted_labels_bounded),
        cmocka_unit_test(test_metrics_buffer_grows),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
