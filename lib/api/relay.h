/*
 * relay.h -- hand libfcgi a request the gate has already checked, and wrap
 * the handler's answer in FastCGI records, without libfcgi ever touching a
 * caller's socket.
 *
 * Owns:       struct relay: one thread's FCGX_Request, the memory file
 *             (memfd) libfcgi reads requests from, and the buffers the
 *             answer is built in.
 * Called by:  apiconn.c on an API thread (each thread has its own relay);
 *             tests/fuzz/fuzz_gate.c.
 * Invariants: libfcgi only ever reads a request that is whole and well
 *             formed (a BEGIN_REQUEST and PARAMS that gate_params_check
 *             passed, up to their empty record), from a file that never
 *             blocks; it writes nothing at all. So nothing a caller sends or
 *             fails to read can make libfcgi wait, abort or linger. The body
 *             does not pass through libfcgi either: the caller already holds
 *             it, checked and bounded, and gives it to the handler.
 *
 * libfcgi parses every request's params because the project's design names
 * it for that; it is the gate, not libfcgi, that decides what a caller may
 * send. The answer's records (STDOUT, the empty STDOUT, END_REQUEST) are a
 * fixed few bytes of framing, written here into memory, and the request is
 * written into the mapped file, so a request costs libfcgi's own read and
 * no other call.
 */
#ifndef HERALD_RELAY_H
#define HERALD_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fcgiapp.h>

/*
 * A growing byte buffer: the CGI response a handler writes, the records
 * around it, and (apiconn.c) a request's params and body as they arrive.
 */
struct relay_buf {
    uint8_t *p; /* owned, or NULL */
    size_t len, cap;
};

/* The offset past which libfcgi is sent back to the file's start: the file's memory budget. */
#define RELAY_REWIND (1 << 18)

struct relay {
    int in_fd;            /* owned: memfd libfcgi reads requests from, or -1 */
    uint8_t *map;         /* owned: in_fd mapped, requests are written here */
    size_t in_at;         /* where the next request goes, and in_fd's offset then */
    size_t in_len;        /* the length of the request last written */
    size_t chunk;         /* bytes libfcgi reads at once, or 0: in_fd's offset is set each time */
    FCGX_Request req;     /* libfcgi's request state, reused */
    struct relay_buf cgi; /* the handler's CGI response (head and body) */
    struct relay_buf answer; /* that response in FastCGI records */
};

/*
 * Answer one request: read what it needs from req (FCGX_GetParam on
 * req->envp) and append the CGI response (Status and other headers, a
 * blank line, the body) to out with relay_put.
 */
typedef void relay_handler(void *arg, FCGX_Request *req, struct relay_buf *out);

/*
 * Make room in b for n more bytes, allocating no more than limit bytes in
 * all (0: no limit); the caller keeps len + n within limit.
 */
void relay_reserve(struct relay_buf *b, size_t n, size_t limit);

/* Append p[0..n) to b. */
void relay_put(struct relay_buf *b, const void *p, size_t n);

/* Ready a relay (FCGX_Init must have been called). Returns 0, or -1 with *cause set. */
int relay_init(struct relay *r, char **cause);

/* Close the relay's file and free libfcgi's state and the buffers. */
void relay_free(struct relay *r);

/*
 * Run handler on request id with these PARAMS (gate_params_check passed),
 * parsed by libfcgi, and return its whole FastCGI answer (STDOUT records
 * and END_REQUEST, for request id) in *answer, *len bytes of the relay's
 * own buffer, valid until the next relay_run. Returns 0, or -1 (logged)
 * when libfcgi or the memory file failed.
 */
int relay_run(struct relay *r, unsigned id, const uint8_t *params, size_t plen,
              relay_handler *handler, void *arg, uint8_t **answer, size_t *len);

#endif
