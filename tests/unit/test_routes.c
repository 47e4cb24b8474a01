/*
 * test_routes.c -- the API's routes (lib/api/routes.c) when the engine
 * cannot do what is asked: a stand-in engine whose every operation answers
 * ENG_E_UNAVAILABLE, as a network engine does while its server is away. A
 * publish is refused at once with 503 engine_unavailable (never accepted
 * and dropped; the job it built is freed, which ASan checks), /presence
 * likewise, and /stats still answers with this node's own figures, saying
 * the engine is unavailable. Then the same routes over the memory engine
 * answer 200: the refusal is the engine's, not the route's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api.h"
#include "cfg_helpers.h"
#include "cmd.h"
#include "engine.h"
#include "hist.h"
#include "site.h"

/* The stand-in: every operation that has an answer says "unavailable". */
static void down_publish(struct engine *e, struct eng_pub *p, eng_done_fn *done, void *arg)
{
    (void)e;
    (void)p;
    if (done != NULL)
        done(arg, ENG_E_UNAVAILABLE);
}

static void down_hold(struct engine *e, const struct eng_stream *s, int worker, int held)
{
    (void)e;
    (void)s;
    (void)worker;
    (void)held;
}

static void down_members(struct engine *e, const struct eng_stream *ch, int counts,
                         eng_members_fn *done, void *arg)
{
    (void)e;
    (void)ch;
    (void)counts;
    done(arg, ENG_E_UNAVAILABLE, NULL);
}

static void down_online(struct engine *e, int site, const char *user, eng_online_fn *done,
                        void *arg)
{
    (void)e;
    (void)site;
    (void)user;
    done(arg, ENG_E_UNAVAILABLE, NULL);
}

static void down_counts(struct engine *e, int site, eng_counts_fn *done, void *arg)
{
    (void)e;
    (void)site;
    done(arg, ENG_E_UNAVAILABLE, NULL);
}

static void down_free(struct engine *e)
{
    (void)e;
}

static const struct eng_ops down_ops = {
    .name = "down",
    .publish = down_publish,
    .hold = down_hold,
    .members = down_members,
    .online = down_online,
    .counts = down_counts,
    .free = down_free,
};

static struct engine down = {.ops = &down_ops, .history = 1};

static struct cfg cfg;
static char *ini;
static struct site site;
static struct hist hist;
static struct cmd_hub hub; /* no workers: a job handed out is done at once */
static struct api_site asite = {.lfd = -1};
static struct api a;

static int setup(void **state)
{
    const char *names[1];
    size_t budgets[1];

    ini = tmp_ini("[herald]\nsecret = " GOOD_SECRET "\npresence_channels = room\n");
    load_ok(&cfg, "-c", ini, NULL);
    site_init(&site, cfg.sites[0]->site);
    names[0] = cfg.sites[0]->site;
    budgets[0] = 1 << 20;
    hist_init(&hist, 100, 300, 1, names, budgets);
    hub.sites = &site;
    hub.nsites = 1;
    a.cfg = &cfg;
    a.hub = &hub;
    a.sites = &asite;
    a.nsites = 1;
    a.started = time(NULL);
    return 0;
}

static int teardown(void **state)
{
    hist_free(&hist);
    site_free(&site);
    cfg_free(&cfg);
    tmp_remove(ini);
    return 0;
}

/* Route one request; the answer's body into out (its status returned). */
static int route(const char *method, const char *path, const char *query, const char *body,
                 char *out, size_t size)
{
    struct api_response resp = {0};
    int status;

    api_route(&a, 0, method, path, query, body, strlen(body), &resp);
    snprintf(out, size, "%s", resp.body != NULL ? resp.body : "");
    status = resp.status;
    free(resp.body);
    return status;
}

static void test_routes_refuse_what_the_engine_cannot_do(void **state)
{
    char body[4096];

    hub.engine = &down;
    assert_int_equal(
        route("POST", "/publish", "", "{\"users\":[\"42\"],\"event\":\"e\"}", body, sizeof body),
        503);
    assert_string_equal(body, "{\"ok\":false,\"error\":\"engine_unavailable\"}");
    /* A batch: nothing of it is published either. */
    assert_int_equal(
        route("POST", "/publish", "",
              "[{\"channel\":\"a\",\"event\":\"e\"},{\"broadcast\":true,\"event\":\"e\"}]", body,
              sizeof body),
        503);
    assert_int_equal(route("GET", "/presence", "channel=room", "", body, sizeof body), 503);
    assert_int_equal(route("GET", "/presence", "user=42", "", body, sizeof body), 503);
    assert_string_equal(body, "{\"ok\":false,\"error\":\"engine_unavailable\"}");
    /* Bad input is still the caller's fault first: 400, not 503. */
    assert_int_equal(route("POST", "/publish", "", "{\"event\":\"e\"}", body, sizeof body), 400);
    /* /stats answers from this node, and says the engine could not. */
    assert_int_equal(route("GET", "/stats", "", "", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"engine\":{\"name\":\"down\",\"available\":false}"));
    /* Nothing was counted as published (api.c counts the 503s by status). */
    assert_int_equal(atomic_load(&asite.stats.published), 0);
}

static void test_routes_answer_over_the_memory_engine(void **state)
{
    const char *names[1] = {cfg.sites[0]->site};
    struct engine *mem = eng_memory_new(&hist, 1, names, 0, cmd_deliver, NULL, &hub);
    char body[4096];

    hub.engine = mem;
    assert_int_equal(
        route("POST", "/publish", "", "{\"users\":[\"42\"],\"event\":\"e\"}", body, sizeof body),
        200);
    assert_string_equal(body, "{\"ok\":true,\"delivered\":0}");
    assert_int_equal(route("GET", "/presence", "user=42", "", body, sizeof body), 200);
    assert_string_equal(body, "{\"ok\":true,\"user\":\"42\",\"online\":false,\"connections\":0}");
    assert_int_equal(route("GET", "/presence", "channel=room", "", body, sizeof body), 200);
    assert_int_equal(route("GET", "/stats", "", "", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"engine\":{\"name\":\"memory\",\"available\":true}"));
    /* The publish to an offline user was kept: history counts it. */
    assert_non_null(strstr(body, "\"messages\":1"));
    eng_free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes_refuse_what_the_engine_cannot_do, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_routes_answer_over_the_memory_engine, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
