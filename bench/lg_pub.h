/*
 * lg_pub.h -- the load generator's publishers: one POST at a time over
 * FastCGI (Herald's API socket) or HTTP/1.1 (nchan, node, rawsrv).
 *
 * Owns:       struct lg_pub_cfg (parsed once, read-only, shared by the
 *             threads) and struct lg_pub (one per publisher thread).
 * Called by:  lg_run.c, each lg_pub on its own publisher thread; loadgen.c
 *             parses --pub with lg_pub_parse.
 * Invariants: blocking sockets with send and receive timeouts; one request
 *             in flight per lg_pub; no state shared between lg_pubs.
 * Errors:     lg_pub_parse returns -1 with *cause (owned by the caller);
 *             lg_pub_post returns 0 with the answer's status, or -1 with a
 *             reason in the lg_pub (lg_pub_error) when no answer was read.
 */
#ifndef HERALD_LG_PUB_H
#define HERALD_LG_PUB_H

#include <stddef.h>
#include <netinet/in.h>
#include <sys/un.h>

#define LG_PUB_MAX_SCRIPT 128 /* a FastCGI value under 128 bytes has a 1-byte length */

enum lg_pub_kind {
    LG_PUB_FCGI, /* fcgi:/path/api.sock */
    LG_PUB_HTTP, /* http://127.0.0.1:PORT/path/{channel} */
};

struct lg_pub_cfg {
    enum lg_pub_kind kind;
    int keep;                       /* fcgi: FCGI_KEEP_CONN; http: always kept */
    int timeout_ms;                 /* send, receive and connect timeout */
    struct sockaddr_un un;          /* fcgi: the API socket */
    struct sockaddr_in in;          /* http: the server */
    char host[64];                  /* http: the Host header, "127.0.0.1:PORT" */
    char path[512];                 /* http: the path template, may hold {channel} */
    char script[LG_PUB_MAX_SCRIPT]; /* fcgi: SCRIPT_FILENAME for php-fpm, or "" */
};

struct lg_pub;

/* Parse PUB (fcgi:PATH or http://IPv4:PORT/PATH) into *cfg. */
int lg_pub_parse(const char *spec, int keep, int timeout_ms, struct lg_pub_cfg *cfg, char **cause);

/* A publisher with no connection yet; cfg is borrowed and must outlive it. */
struct lg_pub *lg_pub_new(const struct lg_pub_cfg *cfg);

/* Close its connection and free it; NULL is a no-op. */
void lg_pub_free(struct lg_pub *p);

/*
 * POST body (len bytes, JSON) to the publish endpoint; for http, channel
 * fills {channel} in the path. Connects as needed; with a kept connection
 * that turns out closed before any answer byte, reconnects and retries once.
 * Returns 0 with *status set from the answer, or -1 (see lg_pub_error).
 */
int lg_pub_post(struct lg_pub *p, const char *channel, const char *body, size_t len, int *status);

/* The reason for the last -1 from lg_pub_post. */
const char *lg_pub_error(const struct lg_pub *p);

/* Connections opened so far (to see kept connections being kept). */
unsigned long lg_pub_connects(const struct lg_pub *p);

#endif
