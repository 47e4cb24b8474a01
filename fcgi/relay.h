/*
 * relay.h -- hand libfcgi a request the gate has already checked, and take
 * its answer back, without libfcgi ever touching a caller's socket.
 *
 * Owns:       struct relay: one thread's FCGX_Request and its two memory
 *             files (memfd): libfcgi reads the request from one and writes
 *             the answer to the other.
 * Called by:  apiconn.c on an API thread (each thread has its own relay);
 *             tests/fuzz/fuzz_gate.c.
 * Invariants: libfcgi only ever reads a request that is whole and well
 *             formed (a BEGIN_REQUEST, PARAMS that gate_params_check
 *             passed, an empty STDIN), from a file that never blocks, and
 *             writes to a file that never blocks: so nothing a caller sends
 *             or fails to read can make libfcgi wait, abort or linger.
 *             The body does not pass through libfcgi: the caller already
 *             holds it, checked and bounded, and gives it to the handler.
 *
 * libfcgi's reader is kept because the project's design names it; it is
 * the gate, not libfcgi, that decides what a caller may send. Writing the
 * canonical request costs a few calls on a memory file per request.
 */
#ifndef HERALD_RELAY_H
#define HERALD_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <fcgiapp.h>

struct relay {
    int in_fd;            /* owned: memfd libfcgi reads requests from, or -1 */
    int out_fd;           /* owned: memfd libfcgi writes answers to, or -1 */
    FCGX_Request req;     /* libfcgi's request state, reused */
};

/*
 * Answer one request: read what it needs from req (FCGX_GetParam on
 * req->envp) and write the CGI response with FCGX_PutStr to req->out.
 */
typedef void relay_handler(void *arg, FCGX_Request *req);

/* Ready a relay (FCGX_Init must have been called). Returns 0, or -1 with *cause set. */
int relay_init(struct relay *r, char **cause);

/* Close the relay's files and free libfcgi's state. */
void relay_free(struct relay *r);

/*
 * Run handler on request id with these PARAMS (gate_params_check passed)
 * through libfcgi, and return its whole FastCGI answer (STDOUT records and
 * END_REQUEST, for request id) in *answer (malloc'd, *len bytes). Returns
 * 0, or -1 (logged) when libfcgi or a memory file failed.
 */
int relay_run(struct relay *r, unsigned id, const uint8_t *params, size_t plen,
              relay_handler *handler, void *arg, uint8_t **answer, size_t *len);

#endif
