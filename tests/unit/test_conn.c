/*
 * test_conn.c -- one WebSocket connection (lib/event/conn.c) and the
 * browser protocol behind it (lib/event/client.c, through conn_ops), over a
 * socketpair: a real worker (worker.c) whose loop this thread drives, with
 * real history, directory and command queue, and no listener traffic. The
 * test's end of the pair is the browser. What a browser sees: the 101 and
 * its accept key, answers to commands, a publish delivered, and the close
 * code for each kind of bad input, with every other connection untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cfg_helpers.h"
#include "client.h"
#include "cmd.h"
#include "conn.h"
#include "engine.h"
#include "hist.h"
#include "lim.h"
#include "net.h"
#include "proto.h"
#include "site.h"
#include "stats.h"
#include "token_helpers.h"
#include "worker.h"
#include "xmalloc.h"

#define UPGRADE                                                                                    \
    "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"                              \
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                       \
    "Sec-WebSocket-Version: 13\r\n\r\n"

static struct cfg cfg;
static char *ini;
static struct site site;
static struct lim lim;
static struct hist hist;
static struct engine *engine;
static struct cmd_hub hub;
static struct cmd_queue *queues[1];
static struct worker *w;

static int setup(void **state)
{
    char text[512], *cause = NULL;
    const char *names[1];
    size_t budgets[1];

    snprintf(text, sizeof text,
             "[herald]\nlisten = unix:/tmp/herald-test-conn-%d.sock\nsecret = " GOOD_SECRET
             "\nallow_anonymous = yes\npublic_channels = news room\npresence_channels = room\n"
             "ping_interval = 0\n"
             "workers = 1\n",
             (int)getpid());
    ini = tmp_ini(text);
    load_ok(&cfg, "-c", ini, NULL);
    site_init(&site, cfg.sites[0]->site);
    lim_init(&lim);
    names[0] = cfg.sites[0]->site;
    budgets[0] = (size_t)cfg.sites[0]->history_max_bytes;
    hist_init(&hist, (size_t)cfg.history_size, cfg.history_ttl, 1, names, budgets);
    engine = eng_memory_new(&hist, 1, names, 1, cmd_deliver, client_presence_event, &hub);
    hub.sites = &site;
    hub.nsites = 1;
    hub.engine = engine;
    hub.lim = &lim;
    w = worker_new(0, &cfg, &hub, &client_conn_ops, client_rpc_done, -1, &cause);
    if (w == NULL)
        fail_msg("worker_new: %s", cause);
    queues[0] = &w->queue;
    hub.queues = queues;
    hub.nqueues = 1;
    return 0;
}

static int teardown(void **state)
{
    worker_free(w);
    /* The worker listened (as main.c has it do) but the socket file is main.c's to remove. */
    net_unlink(cfg.listen);
    eng_free(engine);
    hist_free(&hist);
    lim_free(&lim);
    site_free(&site);
    cfg_free(&cfg);
    tmp_remove(ini);
    return 0;
}

/* Run the worker's loop until fd has something to read (or is closed), at most 2 s. */
static int pump(int fd)
{
    struct timespec t0, t;
    struct pollfd p = {.fd = fd, .events = POLLIN};

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        ev_run(w->cx.loop, EVRUN_NOWAIT);
        if (poll(&p, 1, 5) > 0)
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec >= 2)
            return -1;
    }
}

/* A browser: one end of a socketpair, the other handed to the worker. */
static int browser(void)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    conn_accept(&w->cx, sv[0]);
    return sv[1];
}

/* Read the response head; returns its status code. */
static int read_head(int fd, char *head, size_t size)
{
    size_t n = 0;

    while (n < size - 1 && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
        assert_int_equal(pump(fd), 0);
        if (read(fd, head + n, 1) != 1)
            break;
        n++;
    }
    head[n] = '\0';
    return n > 12 ? atoi(head + 9) : -1;
}

/* Upgrade a new browser; returns its end. */
static int open_browser(void)
{
    char head[1024];
    int fd = browser();

    assert_int_equal(write(fd, UPGRADE, strlen(UPGRADE)), (ssize_t)strlen(UPGRADE));
    assert_int_equal(read_head(fd, head, sizeof head), 101);
    /* RFC 6455, section 1.3: the sample key's accept value. */
    assert_non_null(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    return fd;
}

/* Send one frame, masked as a browser must unless mask is 0. */
static void send_frame(int fd, int fin_op, const char *p, size_t n, int mask)
{
    uint8_t f[256 + 8], key[4] = {1, 2, 3, 4};
    size_t h = 2;

    assert_true(n < 126);
    f[0] = (uint8_t)fin_op;
    f[1] = (uint8_t)((mask ? 0x80 : 0) | n);
    if (mask) {
        memcpy(f + 2, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < n; i++)
        f[h + i] = mask ? (uint8_t)(p[i] ^ key[i % 4]) : (uint8_t)p[i];
    assert_int_equal(write(fd, f, h + n), (ssize_t)(h + n));
}

static void send_text(int fd, const char *text)
{
    send_frame(fd, 0x81, text, strlen(text), 1);
}

/* Read one frame from the server; returns its opcode (-1 at EOF), payload in buf. */
static int read_frame(int fd, char *buf, size_t size)
{
    uint8_t h[10];
    size_t n;

    if (pump(fd) != 0 || read(fd, h, 2) != 2)
        return -1;
    n = h[1] & 0x7f;
    if (n == 126) {
        assert_int_equal(read(fd, h + 2, 2), 2);
        n = (size_t)h[2] << 8 | h[3];
    }
    assert_true(n < size);
    for (size_t got = 0; got < n;) {
        ssize_t r;

        assert_int_equal(pump(fd), 0);
        r = read(fd, buf + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    buf[n] = '\0';
    return h[0] & 0x0f;
}

/* Connections the site's /stats counts as closed with a protocol error of this code. */
static uint64_t protocol_errors(int code)
{
    for (int i = 0; i < STATS_NPROTO; i++)
        if (stats_proto_codes[i] == code)
            return w->cx.sites[0].stats.protocol_errors[i];
    fail_msg("%d is not a counted close code", code);
    return 0;
}

/* The close code of a close frame's payload. */
static int close_code(const char *p)
{
    return (uint8_t)p[0] << 8 | (uint8_t)p[1];
}

static void test_conn_upgrades_and_answers_commands(void **state)
{
    char buf[512];
    int fd = open_browser();

    send_text(fd, "{\"op\":\"subscribe\",\"channel\":\"news\",\"ref\":1}");
    assert_int_equal(read_frame(fd, buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "\"op\":\"ok\""));
    assert_non_null(strstr(buf, "\"ref\":1"));
    /* A channel nobody granted: refused with its code, and the connection stays. */
    send_text(fd, "{\"op\":\"subscribe\",\"channel\":\"secret\",\"ref\":2}");
    assert_int_equal(read_frame(fd, buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "\"code\":\"forbidden\""));
    send_text(fd, "not json");
    assert_int_equal(read_frame(fd, buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "\"code\":\"bad_json\""));
    assert_int_equal(w->cx.sites[0].stats.client_errors[PROTO_E_BAD_JSON], 1);
    close(fd);
}

static void test_conn_delivers_a_publish_to_its_subscriber(void **state)
{
    char buf[512], *texts[1];
    struct cmd_job *job = cmd_job_new(CMD_PUBLISH, 1, 1);
    struct eng_pub p;
    int fd = open_browser();

    send_text(fd, "{\"op\":\"subscribe\",\"channel\":\"news\",\"ref\":1}");
    assert_int_equal(read_frame(fd, buf, sizeof buf), 1);
    job->site = 0;
    job->items[0].channel = xstrdup("news");
    texts[0] = proto_channel_text("news", "headline", NULL, NULL);
    p = (struct eng_pub){0, job->items, job->nitems, texts, job, 1};
    eng_publish(engine, &p, NULL, NULL);
    /* History took the text over; the job is the worker's now. */
    assert_null(texts[0]);
    assert_int_equal(read_frame(fd, buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "\"channel\":\"news\""));
    assert_non_null(strstr(buf, "\"event\":\"headline\""));
    assert_non_null(strstr(buf, "\"id\":\""));
    close(fd);
}

static void test_conn_closes_bad_input_with_its_code_and_spares_the_others(void **state)
{
    char buf[512];
    int bystander = open_browser(), fd;

    /* An unmasked frame from a browser: 1002. */
    fd = open_browser();
    send_frame(fd, 0x81, "{}", 2, 0);
    assert_int_equal(read_frame(fd, buf, sizeof buf), 8);
    assert_int_equal(close_code(buf), 1002);
    close(fd);
    /* Text that is not UTF-8: 1007. */
    fd = open_browser();
    send_frame(fd, 0x81, "\xff\xfe", 2, 1);
    assert_int_equal(read_frame(fd, buf, sizeof buf), 8);
    assert_int_equal(close_code(buf), 1007);
    close(fd);
    assert_int_equal(protocol_errors(1002), 1);
    assert_int_equal(protocol_errors(1007), 1);
    /* The bystander still talks. */
    send_text(bystander, "{\"op\":\"subscribe\",\"channel\":\"news\",\"ref\":\"b\"}");
    assert_int_equal(read_frame(bystander, buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "\"ref\":\"b\""));
    close(bystander);
}

static void test_conn_refuses_a_head_that_is_not_an_upgrade(void **state)
{
    static const char get[] = "GET /ws HTTP/1.1\r\nHost: example.com\r\n\r\n";
    char head[1024];
    int fd = browser();

    assert_int_equal(write(fd, get, sizeof get - 1), (ssize_t)(sizeof get - 1));
    assert_int_equal(read_head(fd, head, sizeof head), 400);
    close(fd);
}

/* -- An engine that answers later ------------------------------------------ */

/*
 * A stand-in for a network engine: since, join and members are held until
 * the test releases them (on this thread, the worker's loop, as engine.h
 * says a later answer comes), then answered by the memory engine; every
 * other operation goes straight to it.
 */
enum held_op { HELD_SINCE, HELD_JOIN, HELD_MEMBERS };

struct held {
    enum held_op op;
    struct eng_stream st;
    char name[64], user[64], since[64], info[128];
    int has_info, counts;
    void *done, *arg;
};

static struct held held[8];
static int nheld;

static void late_publish(struct engine *e, struct eng_pub *p, eng_done_fn *done, void *arg)
{
    eng_publish(engine, p, done, arg);
}

static void late_hold(struct engine *e, const struct eng_stream *s, int worker, int on)
{
    eng_hold(engine, s, worker, on);
}

static void late_id(struct engine *e, const struct eng_stream *s, uint64_t off, char *id)
{
    eng_id(engine, s, off, id);
}

static void late_leave(struct engine *e, const struct eng_stream *ch, const char *user)
{
    eng_leave(engine, ch, user);
}

static void late_online(struct engine *e, int site_index, const char *user, eng_online_fn *done,
                        void *arg)
{
    eng_online(engine, site_index, user, done, arg);
}

static void late_counts(struct engine *e, int site_index, eng_counts_fn *done, void *arg)
{
    eng_counts(engine, site_index, done, arg);
}

static void late_free(struct engine *e)
{
}

/* Hold one call: its stream, what it names, and its callback. */
static struct held *late_hold_call(enum held_op op, const struct eng_stream *s, void *done,
                                   void *arg)
{
    struct held *h = &held[nheld++];

    assert_true(nheld <= 8);
    memset(h, 0, sizeof *h);
    h->op = op;
    h->st = *s;
    snprintf(h->name, sizeof h->name, "%s", s->name);
    h->st.name = h->name;
    h->done = done;
    h->arg = arg;
    return h;
}

static void late_since(struct engine *e, const struct eng_stream *s, const char *since,
                       eng_since_fn *done, void *arg)
{
    struct held *h = late_hold_call(HELD_SINCE, s, (void *)done, arg);

    snprintf(h->since, sizeof h->since, "%s", since);
}

static void late_join(struct engine *e, const struct eng_stream *ch, const char *user,
                      const char *info, eng_members_fn *done, void *arg)
{
    struct held *h = late_hold_call(HELD_JOIN, ch, (void *)done, arg);

    snprintf(h->user, sizeof h->user, "%s", user);
    h->has_info = info != NULL;
    snprintf(h->info, sizeof h->info, "%s", info != NULL ? info : "");
}

static void late_members(struct engine *e, const struct eng_stream *ch, int counts,
                         eng_members_fn *done, void *arg)
{
    late_hold_call(HELD_MEMBERS, ch, (void *)done, arg)->counts = counts;
}

static const struct eng_ops late_ops = {
    .name = "late",
    .publish = late_publish,
    .hold = late_hold,
    .since = late_since,
    .id = late_id,
    .join = late_join,
    .leave = late_leave,
    .members = late_members,
    .online = late_online,
    .counts = late_counts,
    .free = late_free,
};

static struct engine late = {.ops = &late_ops};

/* Answer every held call now, through the memory engine; a call an answer makes is held anew. */
static int release(void)
{
    struct held now[8];
    int n = nheld;

    memcpy(now, held, sizeof now);
    nheld = 0;
    for (int i = 0; i < n; i++) {
        struct held *h = &now[i];

        h->st.name = h->name;
        if (h->op == HELD_SINCE)
            eng_since(engine, &h->st, h->since, (eng_since_fn *)h->done, h->arg);
        else if (h->op == HELD_JOIN)
            eng_join(engine, &h->st, h->user, h->has_info ? h->info : NULL,
                     (eng_members_fn *)h->done, h->arg);
        else
            eng_members(engine, &h->st, h->counts, (eng_members_fn *)h->done, h->arg);
    }
    return n;
}

/* Put the late engine in the memory engine's place (history on, as by default). */
static void use_late_engine(void)
{
    late.history = engine->history;
    late.deliver = engine->deliver;
    late.event = engine->event;
    late.arg = engine->arg;
    hub.engine = &late;
}

/* Run the worker's loop until n calls are held, at most 2 s. */
static void wait_held(int n)
{
    for (int i = 0; i < 2000 && nheld < n; i++) {
        ev_run(w->cx.loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(nheld, n);
}

/* A browser with a token for user, upgraded; returns its end. */
static int open_user(const char *user)
{
    char claims[128], head[1024], req[1024];
    char *token;
    int fd = browser(), n;

    snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"exp\":%lld}", user,
             (long long)time(NULL) + 600);
    token = make_token(HS256, claims, GOOD_SECRET);
    n = snprintf(req, sizeof req,
                 "GET /ws?token=%s HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n",
                 token);
    free(token);
    assert_int_equal(write(fd, req, (size_t)n), n);
    assert_int_equal(read_head(fd, head, sizeof head), 101);
    return fd;
}

/* eng_members_fn: the list as compact JSON text into arg's buffer. */
static void got_room_members(void *arg, int err, json_t *members)
{
    struct {
        char *out;
        size_t size;
    } *into = arg;
    char *text = json_dumps(members, JSON_COMPACT);

    assert_int_equal(err, ENG_OK);
    snprintf(into->out, into->size, "%s", text);
    free(text);
    json_decref(members);
}

/* The members of room, as the memory engine has them (compact JSON) into out. */
static void room_members(char *out, size_t size)
{
    struct eng_stream room = {0, 'c', "room"};
    struct {
        char *out;
        size_t size;
    } into = {out, size};

    eng_members(engine, &room, 0, got_room_members, &into);
}

static void test_conn_answers_when_a_late_engine_does(void **state)
{
    char buf[1024];
    int fd;

    use_late_engine();
    fd = open_user("alice");
    send_text(fd, "{\"op\":\"subscribe\",\"channel\":\"room\",\"ref\":7}");
    /* The join is asked; nothing is answered until the engine answers. */
    wait_held(1);
    assert_int_equal(held[0].op, HELD_JOIN);
    assert_int_equal(pump(fd), -1);
    /* The join answers, then the position is asked for: then the ok, with both. */
    assert_int_equal(release(), 1);
    wait_held(1);
    assert_int_equal(held[0].op, HELD_SINCE);
    assert_int_equal(release(), 1);
    assert_int_equal(read_frame(fd, buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "\"ref\":7"));
    assert_non_null(strstr(buf, "\"members\":[{\"user\":\"alice\"}]"));
    assert_non_null(strstr(buf, "\"id\":\""));
    close(fd);
}

static void test_conn_gone_before_a_late_engine_answers(void **state)
{
    char members[256];
    int fd;

    use_late_engine();
    fd = open_user("bob");
    send_text(fd, "{\"op\":\"subscribe\",\"channel\":\"room\",\"ref\":1}");
    wait_held(1);
    /* bob closes while the engine is still joining him. */
    close(fd);
    for (int i = 0; i < 200 && w->cx.nconns > 0; i++) {
        ev_run(w->cx.loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(w->cx.nconns, 0);
    /* The join lands after he left: he must not stay a member (ASan checks nothing
     * reaches the freed connection). */
    assert_int_equal(release(), 1);
    assert_int_equal(nheld, 0);
    room_members(members, sizeof members);
    assert_string_equal(members, "[]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conn_upgrades_and_answers_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_delivers_a_publish_to_its_subscriber, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_conn_closes_bad_input_with_its_code_and_spares_the_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_refuses_a_head_that_is_not_an_upgrade, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_answers_when_a_late_engine_does, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_gone_before_a_late_engine_answers, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
