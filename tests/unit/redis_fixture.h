/*
 * redis_fixture.h -- a real redis-server for a unit test: started on a unix
 * socket of the test's own (no persistence), killed by its pid; and a loop
 * runner that waits for a callback to have happened.
 *
 * Owns:       the server process it starts, until redis_kill.
 * Called by:  tests/unit/test_rlink.c, tests/unit/test_rhist.c (cmocka
 *             tests: include cmocka.h first).
 * Invariants: header-only, static: each test binary has its own. setup
 *             sets sock and loop; teardown kills the server.
 */
#ifndef HERALD_TEST_REDIS_FIXTURE_H
#define HERALD_TEST_REDIS_FIXTURE_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

static char sock[108];
static pid_t redis = -1;
static struct ev_loop *loop;

/* Start redis-server on sock, with requirepass when password is not NULL; wait until it answers. */
static void redis_start(const char *password)
{
    char *argv[16];
    int n = 0;

    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--unixsocket";
    argv[n++] = sock;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--loglevel";
    argv[n++] = "warning";
    if (password != NULL) {
        argv[n++] = "--requirepass";
        argv[n++] = (char *)password;
    }
    argv[n] = NULL;
    redis = fork();
    assert_true(redis >= 0);
    if (redis == 0) {
        int null = open("/dev/null", O_WRONLY);

        /* Its own log lines would bury the test's. */
        dup2(null, STDOUT_FILENO);
        execvp("redis-server", argv);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        int ok;

        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
        ok = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
        close(fd);
        if (ok)
            return;
        usleep(10000);
    }
    fail_msg("redis-server did not start on %s", sock);
}

/* Kill the server (ours, by its pid) and reap it. */
static void redis_kill(void)
{
    if (redis <= 0)
        return;
    kill(redis, SIGCONT);
    kill(redis, SIGKILL);
    waitpid(redis, NULL, 0);
    redis = -1;
    unlink(sock);
}

static int redis_setup(void **state)
{
    snprintf(sock, sizeof sock, "/tmp/herald-test-redis-%d.sock", (int)getpid());
    unlink(sock);
    loop = ev_loop_new(EVFLAG_AUTO);
    return loop == NULL ? -1 : 0;
}

static int redis_teardown(void **state)
{
    redis_kill();
    ev_loop_destroy(loop);
    return 0;
}

/* Run the loop until *flag reaches want, at most seconds; returns the seconds it took. */
static inline double run_until(const int *flag, int want, double seconds)
{
    struct timespec t0, t;
    double took;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        ev_run(loop, EVRUN_NOWAIT);
        clock_gettime(CLOCK_MONOTONIC, &t);
        took = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
        if (*flag >= want || took > seconds)
            return took;
        usleep(1000);
    }
}

#endif
