/*
 * lg_tok.h -- HS256 connection tokens for the load generator's subscribers.
 *
 * Owns:       nothing.
 * Called by:  lg_recv.c, once per connection, to fill {token}.
 * Invariants: pure (OpenSSL's one-shot HMAC); safe on any thread.
 * Errors:     lg_tok_sign returns the token length, or -1 when out is short.
 */
#ifndef HERALD_LG_TOK_H
#define HERALD_LG_TOK_H

#include <stddef.h>

/* Room for a token whose sub is up to 64 bytes. */
#define LG_TOK_MAX 256

/*
 * Write the compact JWS of {"sub":"<sub>","exp":<exp>} signed HS256 with
 * secret, base64url without padding, into out (cap bytes, NUL-terminated).
 */
int lg_tok_sign(const char *secret, const char *sub, long long exp, char *out, size_t cap);

/* Base64url of n bytes without padding into out (NUL-terminated); its length. */
size_t lg_tok_b64url(const unsigned char *in, size_t n, char *out);

#endif
