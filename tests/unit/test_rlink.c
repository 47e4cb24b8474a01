/*
 * test_rlink.c -- the link to Redis (lib/store/rlink.c) against a real
 * redis-server (Debian's), started by each test on a unix socket of its
 * own and killed by its pid: commands and their replies, an error reply,
 * a hung server (SIGSTOP) timed out and the link back once it answers, a
 * server killed and restarted, AUTH and SELECT, a wrong password, commands
 * in flight answered when the link is freed, and malformed addresses.
 * Pub/sub: a subscriber link's pushes (subscribed, messages published by
 * another link, binary-safe, unsubscribed); fake servers that send a
 * malformed push, which drops the link (it reconnects) instead of
 * crashing in hiredis; rlink_reset; rlink_command_argv, binary-safe.
 * rlink_eval: EVALSHA with the script's digest, loaded once a connection,
 * binary-safe; after SCRIPT FLUSH the call is refused, the link reconnects
 * and loads it again. rlink_stats (for /metrics): round trips, errors and
 * reconnects counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rlink.h"

#include "redis_fixture.h"

/* What the callbacks saw. */
struct seen {
    int answers; /* replies handed on */
    int err;     /* the last one's */
    char text[128];
    int ups, downs; /* state changes */
};

static void on_reply(void *arg, int err, const redisReply *reply)
{
    struct seen *s = arg;

    s->answers++;
    s->err = err;
    s->text[0] = '\0';
    if (reply != NULL && reply->str != NULL)
        snprintf(s->text, sizeof s->text, "%s", reply->str);
    else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
        snprintf(s->text, sizeof s->text, "%lld", reply->integer);
}

static void on_state(void *arg, int up)
{
    struct seen *s = arg;

    if (up)
        s->ups++;
    else
        s->downs++;
}

/* A link to sock with a 200 ms deadline and a short backoff; the test waits until it is up. */
static struct rlink *link_up(struct seen *s, const char *password, int db)
{
    char address[128];
    struct rlink_cfg cfg = {.address = address,
                            .password = password,
                            .db = db,
                            .timeout = 0.2,
                            .backoff_min = 0.05,
                            .backoff_max = 0.2};
    struct rlink *l;

    snprintf(address, sizeof address, "unix:%s", sock);
    l = rlink_new(loop, &cfg, on_state, s);
    assert_non_null(l);
    run_until(&s->ups, 1, 3);
    assert_int_equal(s->ups, 1);
    assert_true(rlink_up(l));
    return l;
}

/* Send a command and wait for its answer (at most 3 s); returns its error. */
static int command(struct rlink *l, struct seen *s, const char *fmt, const char *arg)
{
    int before = s->answers;

    assert_int_equal(rlink_command(l, on_reply, s, fmt, arg), RLINK_OK);
    run_until(&s->answers, before + 1, 3);
    assert_int_equal(s->answers, before + 1);
    return s->err;
}

/* The round trips an rlink_stats counted, added up. */
static uint64_t round_trips(const struct rlink_stats *st)
{
    struct histo h = {0};

    histo_add_shared(&h, &st->rtt);
    return histo_count(&h);
}

static void test_rlink_runs_commands(void **state)
{
    struct seen s = {0}, r = {0};
    struct rlink_stats st = {0};
    struct rlink *l;

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
    rlink_set_stats(l, &st);
    assert_int_equal(command(l, &r, "SET herald:k %s", "v1"), RLINK_OK);
    assert_string_equal(r.text, "OK");
    assert_int_equal(command(l, &r, "GET %s", "herald:k"), RLINK_OK);
    assert_string_equal(r.text, "v1");
    /* Redis's own refusal comes back as such, with its message. */
    assert_int_equal(command(l, &r, "INCR %s", "herald:k"), RLINK_E_REPLY);
    assert_non_null(strstr(r.text, "not an integer"));
    /* The link is still good after an error reply. */
    assert_int_equal(command(l, &r, "INCR %s", "herald:n"), RLINK_OK);
    assert_string_equal(r.text, "1");
    /* /metrics: every reply is a round trip; the refusal is an error too. */
    assert_int_equal(round_trips(&st), 4);
    assert_int_equal(atomic_load(&st.errors), 1);
    assert_int_equal(atomic_load(&st.reconnects), 0);
    rlink_free(l);
    assert_int_equal(s.downs, 0);
}

static void test_rlink_times_out_a_hung_server_and_comes_back(void **state)
{
    struct seen s = {0}, r = {0};
    struct rlink *l;
    double took;

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
    kill(redis, SIGSTOP);
    assert_int_equal(rlink_command(l, on_reply, &r, "PING"), RLINK_OK);
    took = run_until(&r.answers, 1, 3);
    assert_int_equal(r.err, RLINK_E_TIMEOUT);
    assert_true(took >= 0.15 && took < 1.5);
    /* The link is down: a command is refused at once, and never answered. */
    assert_int_equal(s.downs, 1);
    assert_false(rlink_up(l));
    assert_int_equal(rlink_command(l, on_reply, &r, "PING"), RLINK_E_DOWN);
    /* The server answers again: the link reconnects by itself. */
    kill(redis, SIGCONT);
    run_until(&s.ups, 2, 5);
    assert_int_equal(s.ups, 2);
    assert_int_equal(command(l, &r, "ECHO %s", "back"), RLINK_OK);
    assert_string_equal(r.text, "back");
    assert_int_equal(r.answers, 2);
    rlink_free(l);
}

/* A script that keeps Redis busy for 100 ms, answering nothing else meanwhile. */
static const char busy_lua[] = "local s = redis.call('TIME')\n"
                               "local t0 = s[1] * 1000000 + s[2]\n"
                               "repeat local n = redis.call('TIME')\n"
                               "until n[1] * 1000000 + n[2] - t0 > 100000\n"
                               "return 1\n";

static void test_rlink_waits_out_a_busy_server_that_still_answers(void **state)
{
    static char pad[40000];
    struct seen s = {0}, r = {0};
    struct rlink *l;
    double took;

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
    /* A burst: 6 commands of 100 ms each, queued at once, against a 200 ms deadline. The
     * last waits 600 ms, but Redis answers every 100 ms: it is busy, not hung. (Each is
     * padded past Redis's 16 KiB read, so it reads, runs and answers them one by one, as it
     * does a long burst; a short one it would read whole and answer at its end.) */
    memset(pad, 'x', sizeof pad - 1);
    for (int i = 0; i < 6; i++)
        assert_int_equal(rlink_command(l, on_reply, &r, "EVAL %s 0 %s", busy_lua, pad), RLINK_OK);
    took = run_until(&r.answers, 6, 5);
    assert_int_equal(r.answers, 6);
    assert_int_equal(r.err, RLINK_OK);
    assert_true(took >= 0.5);
    assert_int_equal(s.downs, 0);
    assert_true(rlink_up(l));
    rlink_free(l);
}

static void test_rlink_reconnects_after_a_restart(void **state)
{
    struct seen s = {0}, r = {0};
    struct rlink_stats st = {0};
    struct rlink *l;

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
    rlink_set_stats(l, &st);
    redis_kill();
    run_until(&s.downs, 1, 3);
    assert_int_equal(s.downs, 1);
    assert_int_equal(rlink_command(l, on_reply, &r, "PING"), RLINK_E_DOWN);
    /* Down for a while: the link keeps trying, backing off, and comes back with the server. */
    run_until(&s.ups, 2, 0.5);
    redis_start(NULL);
    run_until(&s.ups, 2, 5);
    assert_int_equal(s.ups, 2);
    assert_int_equal(command(l, &r, "PING%s", ""), RLINK_OK);
    assert_string_equal(r.text, "PONG");
    assert_int_equal(atomic_load(&st.reconnects), 1);
    rlink_free(l);
}

static void test_rlink_authenticates_and_selects(void **state)
{
    struct seen s = {0}, s0 = {0}, bad = {0}, r = {0};
    struct rlink *l, *l0, *wrong;
    char address[128];
    struct rlink_cfg cfg = {.address = address,
                            .password = "not-the-password",
                            .timeout = 0.2,
                            .backoff_min = 0.05,
                            .backoff_max = 0.2};

    redis_start("s3cret-pass");
    l = link_up(&s, "s3cret-pass", 3);
    l0 = link_up(&s0, "s3cret-pass", 0);
    assert_int_equal(command(l, &r, "SET herald:db %s", "three"), RLINK_OK);
    /* SELECT 3 took: database 0 does not have the key, database 3 does. */
    assert_int_equal(command(l0, &r, "EXISTS %s", "herald:db"), RLINK_OK);
    assert_string_equal(r.text, "0");
    assert_int_equal(command(l, &r, "EXISTS %s", "herald:db"), RLINK_OK);
    assert_string_equal(r.text, "1");
    /* A wrong password never makes a link that is up. */
    snprintf(address, sizeof address, "unix:%s", sock);
    wrong = rlink_new(loop, &cfg, on_state, &bad);
    run_until(&bad.ups, 1, 1);
    assert_int_equal(bad.ups, 0);
    assert_false(rlink_up(wrong));
    rlink_free(wrong);
    rlink_free(l0);
    rlink_free(l);
}

static void test_rlink_free_answers_what_is_in_flight(void **state)
{
    struct seen s = {0}, r = {0};
    struct rlink *l;

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
    kill(redis, SIGSTOP);
    assert_int_equal(rlink_command(l, on_reply, &r, "PING"), RLINK_OK);
    assert_int_equal(rlink_command(l, on_reply, &r, "PING"), RLINK_OK);
    rlink_free(l);
    assert_int_equal(r.answers, 2);
    assert_int_equal(r.err, RLINK_E_DOWN);
}

/*
 * A server that answers the handshake's PING, then answers the next command
 * with header (an array's, or whatever the test gives), and waits.
 */
static pid_t fake_server(const char *header)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    pid_t pid;

    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(lfd, 1), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char buf[256];
        int fd = accept(lfd, NULL, NULL);

        if (read(fd, buf, sizeof buf) <= 0 || write(fd, "+PONG\r\n", 7) != 7 ||
            read(fd, buf, sizeof buf) <= 0 ||
            write(fd, header, strlen(header)) != (ssize_t)strlen(header))
            _exit(1);
        sleep(5);
        _exit(0);
    }
    close(lfd);
    return pid;
}

static void test_rlink_drops_a_reply_that_would_not_fit(void **state)
{
    /* One header claiming 2e9 elements (hiredis alone would allocate 16 GB for these 13
     * bytes), and nested arrays each within the bound but over it together. */
    static const char *const headers[] = {"*2000000000\r\n", "*1\r\n*1048576\r\n"};

    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        struct seen s = {0}, r = {0};
        pid_t server = fake_server(headers[i]);
        struct rlink *l = link_up(&s, NULL, 0);

        assert_int_equal(rlink_command(l, on_reply, &r, "GET %s", "k"), RLINK_OK);
        run_until(&r.answers, 1, 3);
        assert_int_equal(r.err, RLINK_E_DOWN);
        assert_int_equal(s.downs, 1);
        rlink_free(l);
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        unlink(sock);
    }
}

/* What a subscriber link's push callback saw. */
struct pushes {
    int n, subscribed, unsubscribed, messages;
    int type[8];
    char channel[8][32];
    char data[8][32];
    size_t dlen[8];
    int no_data[8]; /* data was NULL */
};

static void on_push(void *arg, int type, const char *channel, size_t clen, const char *data,
                    size_t dlen)
{
    struct pushes *p = arg;
    int i = p->n++;

    assert_true(i < 8);
    p->type[i] = type;
    snprintf(p->channel[i], sizeof p->channel[i], "%.*s", (int)clen, channel);
    p->no_data[i] = data == NULL;
    p->dlen[i] = dlen;
    if (data != NULL && dlen <= sizeof p->data[i])
        memcpy(p->data[i], data, dlen);
    p->subscribed += type == RLINK_PUSH_SUBSCRIBED;
    p->unsubscribed += type == RLINK_PUSH_UNSUBSCRIBED;
    p->messages += type == RLINK_PUSH_MESSAGE;
}

/* PUBLISH data[0..len) on channel through l and wait; returns how many it reached. */
static long long publish(struct rlink *l, const char *channel, const char *data, size_t len)
{
    struct seen r = {0};

    assert_int_equal(rlink_command(l, on_reply, &r, "PUBLISH %s %b", channel, data, len), RLINK_OK);
    run_until(&r.answers, 1, 3);
    assert_int_equal(r.answers, 1);
    assert_int_equal(r.err, RLINK_OK);
    return strtoll(r.text, NULL, 10);
}

static void test_rlink_subscriber_gets_pushes(void **state)
{
    struct seen s = {0}, ss = {0};
    struct pushes p = {0};
    struct rlink *l, *sub;
    char address[128];
    struct rlink_cfg cfg = {
        .address = address, .timeout = 0.2, .backoff_min = 0.05, .backoff_max = 0.2};

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
    snprintf(address, sizeof address, "unix:%s", sock);
    sub = rlink_new(loop, &cfg, on_state, &ss);
    assert_non_null(sub);
    rlink_set_push(sub, on_push, &p);
    /* Not up yet: refused at once. */
    assert_int_equal(rlink_subscribe(sub, "herald:t"), RLINK_E_DOWN);
    run_until(&ss.ups, 1, 3);
    assert_int_equal(rlink_subscribe(sub, "herald:t"), RLINK_OK);
    assert_int_equal(rlink_subscribe(sub, "herald:u"), RLINK_OK);
    run_until(&p.subscribed, 2, 3);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.type[0], RLINK_PUSH_SUBSCRIBED);
    assert_string_equal(p.channel[0], "herald:t");
    assert_true(p.no_data[0]);
    assert_int_equal(p.dlen[0], 0);
    assert_string_equal(p.channel[1], "herald:u");
    /* Messages from another link, binary-safe, each on its own channel. */
    assert_int_equal(publish(l, "herald:t", "hello world", 11), 1);
    assert_int_equal(publish(l, "herald:u", "a\0b c", 5), 1);
    run_until(&p.messages, 2, 3);
    assert_int_equal(p.messages, 2);
    assert_int_equal(p.type[2], RLINK_PUSH_MESSAGE);
    assert_string_equal(p.channel[2], "herald:t");
    assert_int_equal(p.dlen[2], 11);
    assert_memory_equal(p.data[2], "hello world", 11);
    assert_string_equal(p.channel[3], "herald:u");
    assert_int_equal(p.dlen[3], 5);
    assert_memory_equal(p.data[3], "a\0b c", 5);
    /* Unsubscribed: told so, and a message there reaches nobody. */
    assert_int_equal(rlink_unsubscribe(sub, "herald:t"), RLINK_OK);
    run_until(&p.unsubscribed, 1, 3);
    assert_int_equal(p.type[4], RLINK_PUSH_UNSUBSCRIBED);
    assert_string_equal(p.channel[4], "herald:t");
    assert_true(p.no_data[4]);
    assert_int_equal(publish(l, "herald:t", "gone", 4), 0);
    assert_int_equal(publish(l, "herald:u", "still", 5), 1);
    run_until(&p.messages, 3, 3);
    assert_int_equal(p.n, 6);
    assert_string_equal(p.channel[5], "herald:u");
    assert_int_equal(ss.downs, 0);
    rlink_free(sub);
    rlink_free(l);
}

/*
 * A server that answers the handshake's PING, then answers the SUBSCRIBE
 * with push (malformed), then takes the reconnect and answers its PING.
 */
static pid_t fake_pubsub_server(const char *push)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    pid_t pid;

    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(lfd, 2), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char buf[256];
        int fd, again;

        /* Gone in 10 s even if the test dies before it kills this one. */
        alarm(10);
        fd = accept(lfd, NULL, NULL);
        if (read(fd, buf, sizeof buf) <= 0 || write(fd, "+PONG\r\n", 7) != 7 ||
            read(fd, buf, sizeof buf) <= 0 ||
            write(fd, push, strlen(push)) != (ssize_t)strlen(push))
            _exit(1);
        again = accept(lfd, NULL, NULL);
        if (read(again, buf, sizeof buf) <= 0 || write(again, "+PONG\r\n", 7) != 7)
            _exit(1);
        sleep(5);
        _exit(0);
    }
    close(lfd);
    return pid;
}

static void test_rlink_subscriber_drops_a_malformed_push(void **state)
{
    /* Each one hiredis 0.14 would assert on, or hand on as what it is not. */
    static const char *const pushes[] = {
        "*0\r\n",                                                    /* empty */
        "*2\r\n$7\r\nmessage\r\n$1\r\nc\r\n",                        /* two elements */
        "*4\r\n$8\r\npmessage\r\n$1\r\nc\r\n$1\r\nc\r\n$1\r\nx\r\n", /* four */
        "*3\r\n$7\r\nmessage\r\n*1\r\n$1\r\nc\r\n$1\r\nx\r\n",       /* a nested array */
        "*1\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n",       /* a push inside one */
        "*3\r\n$7\r\nmessage\r\n:5\r\n$1\r\nx\r\n",                  /* an integer channel */
        "*3\r\n$9\r\nsubscribe\r\n$-1\r\n:1\r\n",                    /* a nil channel */
        "*3\r\n:1\r\n$1\r\nc\r\n$1\r\nx\r\n",                        /* an integer kind */
        "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n:1\r\n",                  /* an integer payload */
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n$1\r\n0\r\n",        /* a string count */
    };

    for (size_t i = 0; i < sizeof pushes / sizeof pushes[0]; i++) {
        struct seen s = {0};
        struct pushes p = {0};
        pid_t server = fake_pubsub_server(pushes[i]);
        struct rlink *l = link_up(&s, NULL, 0);

        rlink_set_push(l, on_push, &p);
        assert_int_equal(rlink_subscribe(l, "c"), RLINK_OK);
        /* Dropped, not crashed; nothing handed on; and back with the server. */
        run_until(&s.downs, 1, 3);
        assert_int_equal(s.downs, 1);
        run_until(&s.ups, 2, 3);
        assert_int_equal(s.ups, 2);
        assert_true(rlink_up(l));
        assert_int_equal(p.n, 0);
        rlink_free(l);
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        unlink(sock);
    }
}

/* rlink_state_fn that writes the changes down, "1" up and "0" down. */
static char trail[16];

static void on_trail(void *arg, int up)
{
    size_t n = strlen(trail);

    if (n + 1 < sizeof trail) {
        trail[n] = up ? '1' : '0';
        trail[n + 1] = '\0';
    }
    on_state(arg, up);
}

static void test_rlink_reset_drops_and_reconnects(void **state)
{
    struct seen s = {0}, ss = {0}, r = {0};
    struct pushes p = {0};
    struct rlink *l, *sub;
    char address[128];
    struct rlink_cfg cfg = {
        .address = address, .timeout = 0.2, .backoff_min = 0.05, .backoff_max = 0.2};

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
    snprintf(address, sizeof address, "unix:%s", sock);
    trail[0] = '\0';
    sub = rlink_new(loop, &cfg, on_trail, &ss);
    rlink_set_push(sub, on_push, &p);
    run_until(&ss.ups, 1, 3);
    assert_int_equal(rlink_subscribe(sub, "herald:t"), RLINK_OK);
    run_until(&p.subscribed, 1, 3);
    /* A command in flight is answered at once; the link is down at once. */
    assert_int_equal(rlink_command(sub, on_reply, &r, "PING"), RLINK_OK);
    rlink_reset(sub);
    assert_int_equal(r.answers, 1);
    assert_int_equal(r.err, RLINK_E_DOWN);
    assert_false(rlink_up(sub));
    assert_string_equal(trail, "10");
    assert_int_equal(rlink_subscribe(sub, "herald:t"), RLINK_E_DOWN);
    /* Already down: nothing more to drop. */
    rlink_reset(sub);
    assert_string_equal(trail, "10");
    run_until(&ss.ups, 2, 3);
    assert_string_equal(trail, "101");
    /* The subscription went with the connection; made again, it delivers. */
    assert_int_equal(publish(l, "herald:t", "lost", 4), 0);
    assert_int_equal(rlink_subscribe(sub, "herald:t"), RLINK_OK);
    run_until(&p.subscribed, 2, 3);
    assert_int_equal(publish(l, "herald:t", "back", 4), 1);
    run_until(&p.messages, 1, 3);
    assert_int_equal(p.messages, 1);
    assert_memory_equal(p.data[2], "back", 4);
    /* A command link too. */
    rlink_reset(l);
    assert_int_equal(s.downs, 1);
    run_until(&s.ups, 2, 3);
    assert_int_equal(command(l, &r, "ECHO %s", "again"), RLINK_OK);
    assert_string_equal(r.text, "again");
    rlink_free(sub);
    rlink_free(l);
}

/* What a reply held, byte for byte. */
struct bytes {
    int answers, err, type;
    char str[64];
    size_t len;
};

static void on_bytes(void *arg, int err, const redisReply *reply)
{
    struct bytes *b = arg;

    b->answers++;
    b->err = err;
    b->type = reply != NULL ? reply->type : -1;
    b->len = 0;
    if (reply != NULL && reply->type == REDIS_REPLY_STRING && reply->len <= sizeof b->str) {
        memcpy(b->str, reply->str, reply->len);
        b->len = reply->len;
    }
}

/* rlink_command_argv and wait for its answer. */
static void command_argv(struct rlink *l, struct bytes *b, int argc, const char **argv,
                         const size_t *lens)
{
    int before = b->answers;

    assert_int_equal(rlink_command_argv(l, on_bytes, b, argc, argv, lens), RLINK_OK);
    run_until(&b->answers, before + 1, 3);
    assert_int_equal(b->answers, before + 1);
    assert_int_equal(b->err, RLINK_OK);
}

static void test_rlink_command_argv_is_binary_safe(void **state)
{
    static const char key[] = "herald:a b\0k", other[] = "herald:a b\0j", value[] = "v a\0l\r\nue";
    const char *set[] = {"SET", key, value}, *get[] = {"GET", key}, *get_other[] = {"GET", other};
    const size_t set_lens[] = {3, sizeof key - 1, sizeof value - 1},
                 get_lens[] = {3, sizeof key - 1};
    const char *plain_set[] = {"SET", "herald:p q", "x y"}, *plain_get[] = {"GET", "herald:p q"};
    struct seen s = {0};
    struct bytes b = {0};
    struct rlink *l;
    char address[128];
    struct rlink_cfg cfg = {
        .address = address, .timeout = 0.2, .backoff_min = 0.05, .backoff_max = 0.2};

    redis_start(NULL);
    snprintf(address, sizeof address, "unix:%s", sock);
    l = rlink_new(loop, &cfg, on_state, &s);
    /* Not up yet: refused at once, never answered. */
    assert_int_equal(rlink_command_argv(l, on_bytes, &b, 2, get, get_lens), RLINK_E_DOWN);
    run_until(&s.ups, 1, 3);
    assert_int_equal(b.answers, 0);
    command_argv(l, &b, 3, set, set_lens);
    command_argv(l, &b, 2, get, get_lens);
    assert_int_equal(b.type, REDIS_REPLY_STRING);
    assert_int_equal(b.len, sizeof value - 1);
    assert_memory_equal(b.str, value, sizeof value - 1);
    /* The key differs from it only after its NUL: another key. */
    command_argv(l, &b, 2, get_other, get_lens);
    assert_int_equal(b.type, REDIS_REPLY_NIL);
    /* No lengths: each argument is a C string, spaces and all. */
    command_argv(l, &b, 3, plain_set, NULL);
    command_argv(l, &b, 2, plain_get, NULL);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.str, "x y", 3);
    rlink_free(l);
}

/* INFO's text, whole. */
static char info[16384];
static int info_answers;

static void on_info(void *arg, int err, const redisReply *reply)
{
    info_answers++;
    snprintf(info, sizeof info, "%s", err == RLINK_OK ? reply->str : "");
}

/* Calls of cmd in INFO commandstats ("evalsha", "script|load"), read through l; -1: none. */
static long stat_calls(struct rlink *l, const char *cmd)
{
    char want[64];
    const char *at;
    int before = info_answers;

    assert_int_equal(rlink_command(l, on_info, NULL, "INFO commandstats"), RLINK_OK);
    run_until(&info_answers, before + 1, 3);
    snprintf(want, sizeof want, "cmdstat_%s:calls=", cmd);
    at = strstr(info, want);
    return at != NULL ? strtol(at + strlen(want), NULL, 10) : -1;
}

/* An echo script's answer: {KEYS[1], ARGV[1]}, kept whole. */
struct echo {
    int answers, err;
    char key[32], arg[32];
    size_t klen, alen;
};

static void on_echo(void *arg, int err, const redisReply *reply)
{
    struct echo *e = arg;

    e->answers++;
    e->err = err;
    e->klen = e->alen = 0;
    if (err == RLINK_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->len < sizeof e->key && reply->element[1]->len < sizeof e->arg) {
        e->klen = reply->element[0]->len;
        memcpy(e->key, reply->element[0]->str, e->klen);
        e->alen = reply->element[1]->len;
        memcpy(e->arg, reply->element[1]->str, e->alen);
    }
}

static void test_rlink_eval_sends_the_digest_and_loads_once_per_connection(void **state)
{
    static struct rlink_script echo = {"return {KEYS[1], ARGV[1]}", ""};
    static const char key[] = "herald:e\0k", arg[] = "a\0r\r\ng";
    const char *argv[] = {"1", key, arg};
    const size_t lens[] = {1, sizeof key - 1, sizeof arg - 1};
    struct seen s = {0}, r = {0};
    struct echo e = {0};
    struct rlink *l;

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(rlink_eval(l, on_echo, &e, &echo, 3, argv, lens), RLINK_OK);
        run_until(&e.answers, i, 3);
        assert_int_equal(e.answers, i);
        assert_int_equal(e.err, RLINK_OK);
        assert_int_equal(e.klen, sizeof key - 1);
        assert_memory_equal(e.key, key, sizeof key - 1);
        assert_int_equal(e.alen, sizeof arg - 1);
        assert_memory_equal(e.arg, arg, sizeof arg - 1);
    }
    /* The digest rlink made: SHA1 of the text, as Redis makes it. */
    assert_string_equal(echo.sha, "d006f1a90249474274c76f5be725b8f5804a346b");
    /* The format variant: %b binary-safe too. */
    assert_int_equal(rlink_evalf(l, on_echo, &e, &echo, "1 %b %s", key, sizeof key - 1, "x y"),
                     RLINK_OK);
    run_until(&e.answers, 4, 3);
    assert_int_equal(e.err, RLINK_OK);
    assert_memory_equal(e.key, key, sizeof key - 1);
    assert_int_equal(e.alen, 3);
    assert_int_equal(stat_calls(l, "evalsha"), 4);
    assert_int_equal(stat_calls(l, "eval"), -1);
    assert_int_equal(stat_calls(l, "script|load"), 1);
    /* The server forgets its scripts: that call is refused, the link reconnects and loads it. */
    assert_int_equal(command(l, &r, "SCRIPT %s", "FLUSH"), RLINK_OK);
    assert_int_equal(rlink_eval(l, on_echo, &e, &echo, 3, argv, lens), RLINK_OK);
    run_until(&s.ups, 2, 3);
    assert_int_equal(e.answers, 5);
    assert_int_equal(e.err, RLINK_E_REPLY);
    assert_int_equal(s.ups, 2);
    assert_int_equal(rlink_eval(l, on_echo, &e, &echo, 3, argv, lens), RLINK_OK);
    run_until(&e.answers, 6, 3);
    assert_int_equal(e.err, RLINK_OK);
    assert_int_equal(stat_calls(l, "script|load"), 2);
    rlink_free(l);
}

static void test_rlink_refuses_a_malformed_address(void **state)
{
    static const char *const bad[] = {
        "redis.example.com:6379", "127.0.0.1",          "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:6379x",        "unix:relative.sock", ":6379"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rlink_cfg cfg = {
            .address = bad[i], .timeout = 0.2, .backoff_min = 0.05, .backoff_max = 0.2};

        assert_null(rlink_new(loop, &cfg, NULL, NULL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rlink_runs_commands, redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_times_out_a_hung_server_and_comes_back,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_waits_out_a_busy_server_that_still_answers,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_reconnects_after_a_restart, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_authenticates_and_selects, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_free_answers_what_is_in_flight, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_drops_a_reply_that_would_not_fit, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_subscriber_gets_pushes, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_subscriber_drops_a_malformed_push, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_reset_drops_and_reconnects, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_command_argv_is_binary_safe, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(
            test_rlink_eval_sends_the_digest_and_loads_once_per_connection, redis_setup,
            redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_refuses_a_malformed_address, redis_setup,
                                        redis_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
