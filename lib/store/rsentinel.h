/*
 * rsentinel.h -- where the Redis master is, asked of Redis Sentinels: each
 * Sentinel in turn gets SENTINEL get-master-addr-by-name, with a deadline,
 * until one answers with an address. rlink.c asks before each connect when
 * it is configured with Sentinels, so a failover is followed on the next
 * reconnect.
 *
 * Owns:       struct rsentinel: the question in progress and its
 *             connection to the Sentinel being asked.
 * Called by:  rlink.c, on its loop's thread only.
 * Invariants: done is called exactly once, always later than the call that
 *             asked (never from inside rsentinel_ask), unless the question
 *             is cancelled first. What a Sentinel answers is checked: a
 *             numeric address and a port, or it counts as no answer.
 * Tests:      tests/integration/89-redis-sentinel.py, against real Sentinels.
 */
#ifndef HERALD_RSENTINEL_H
#define HERALD_RSENTINEL_H

#include <stddef.h>

#include <ev.h>

/* The longest host a Sentinel may answer (an IPv6 address and its NUL fits). */
#define RSENTINEL_HOST_MAX 64

struct rsentinel;

/* The master is at host:port (ok = 1; host lives in the question), or no Sentinel said (ok = 0). */
typedef void rsentinel_fn(void *arg, int ok, const char *host, int port);

/*
 * Ask the Sentinels at addrs[0..n) ("IP:PORT", n > 0), starting with
 * addrs[first % n], where master is; each gets timeout seconds. Returns the question, to
 * cancel; done(arg, ...) is called once, later.
 */
struct rsentinel *rsentinel_ask(struct ev_loop *loop, char *const *addrs, size_t n, size_t first,
                                const char *master, double timeout, rsentinel_fn *done, void *arg);

/* Forget the question (done is not called), or free it once done has been: from inside done too. */
void rsentinel_cancel(struct rsentinel *s);

/*
 * The check behind the answer: a reply of two strings, a numeric address
 * (IPv4 or IPv6) and a port 1-65535, into host and *port; 0, or -1.
 */
struct redisReply;
int rsentinel_parse(const struct redisReply *r, char *host, int *port);

#endif
