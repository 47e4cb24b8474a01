/*
 * test_rlink.c -- the link to Redis (lib/store/rlink.c) against a real
 * redis-server (Debian's), started by each test on a unix socket of its
 * own and killed by its pid: commands and their replies, an error reply,
 * a hung server (SIGSTOP) timed out and the link back once it answers, a
 * server killed and restarted, AUTH and SELECT, a wrong password, commands
 * in flight answered when the link is freed, and malformed addresses.
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
    struct rlink_cfg cfg = {address, password, db, 0.2, 0.05, 0.2};
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

static void test_rlink_runs_commands(void **state)
{
    struct seen s = {0}, r = {0};
    struct rlink *l;

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
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

static void test_rlink_reconnects_after_a_restart(void **state)
{
    struct seen s = {0}, r = {0};
    struct rlink *l;

    redis_start(NULL);
    l = link_up(&s, NULL, 0);
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
    rlink_free(l);
}

static void test_rlink_authenticates_and_selects(void **state)
{
    struct seen s = {0}, s0 = {0}, bad = {0}, r = {0};
    struct rlink *l, *l0, *wrong;
    char address[128];
    struct rlink_cfg cfg = {address, "not-the-password", 0, 0.2, 0.05, 0.2};

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

static void test_rlink_refuses_a_malformed_address(void **state)
{
    static const char *const bad[] = {
        "redis.example.com:6379", "127.0.0.1",          "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:6379x",        "unix:relative.sock", ":6379"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rlink_cfg cfg = {bad[i], NULL, 0, 0.2, 0.05, 0.2};

        assert_null(rlink_new(loop, &cfg, NULL, NULL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rlink_runs_commands, redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_times_out_a_hung_server_and_comes_back,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_reconnects_after_a_restart, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_authenticates_and_selects, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_free_answers_what_is_in_flight, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_drops_a_reply_that_would_not_fit, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rlink_refuses_a_malformed_address, redis_setup,
                                        redis_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
