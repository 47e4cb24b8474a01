/*
 * tok.c -- connection tokens: verify (and, for tests, sign) HS256 compact JWS.
 *
 * Owns:       nothing but what it stores in a struct tok_claims: the user id
 *             copy and one jansson reference to the claims object.
 * Called by:  conn.c once the handshake has produced a token (query string
 *             or subprotocol), on the worker's thread; tok_sign by tests and
 *             tools.
 * Invariants: no I/O, no locks, no globals: safe on any thread. Decoding
 *             uses one stack buffer bounded by TOK_MAX_LEN; only jansson
 *             allocates in tok_verify. The MAC is compared in constant time
 *             and is checked before the claims are decoded, so bytes that
 *             are not signed with the secret never reach the claims parser.
 *             Nothing here logs, and nothing copies the token or the secret.
 * Errors:     tok_verify returns 0 or a TOK_E_* code. The checks run in a
 *             fixed order -- length, shape, header, signature, claims (exp,
 *             nbf, sub) -- and the first one that fails names the error.
 * Spec notes: RFC 7515 base64url without padding only: '=', '+', '/' and
 *             encodings whose unused trailing bits are not zero are refused,
 *             so every token has exactly one spelling; a signature spelled in
 *             anything but 43 canonical characters is a bad signature. The
 *             header's "typ" is ignored. A "crit" header is refused (format),
 *             since this code understands no extension (RFC 7515 4.1.11).
 *             Duplicate member names are refused (format): RFC 7519 section 4
 *             allows that, and it keeps us from reading another "sub" than a
 *             decoder that keeps the last duplicate, as PHP's does. exp and
 *             nbf may be fractional (NumericDate) and are compared as doubles,
 *             exact for any integer time. An empty secret verifies and signs
 *             nothing.
 * Tests:      tests/unit/test_tok.c, tests/fuzz/fuzz_tok.c.
 *
 *   token = B64URL(header) "." B64URL(claims) "." B64URL(mac)
 *   mac   = HMAC-SHA256(secret, B64URL(header) "." B64URL(claims))
 *           32 bytes, so exactly 43 base64url characters.
 */
#include "tok.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define TOK_MAC_LEN 32
#define TOK_MAC_B64_LEN 43 /* 32 bytes in unpadded base64url */
#define TOK_MAX_DECODED (TOK_MAX_LEN / 4 * 3 + 2)
#define B64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0)) /* unpadded */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const char tok_header_json[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* One dot-separated segment of the token: a view into the caller's bytes. */
struct tok_part {
    const char *p; /* borrowed: points into the token */
    size_t len;
};

/* The 6-bit value of a base64url character, or -1 outside the alphabet. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Decode unpadded base64url into out, which has room for len / 4 * 3 + 2
 * bytes. Returns the decoded length, or -1 for a character outside the
 * alphabet, a length no encoder produces (len % 4 == 1) or unused trailing
 * bits that are not zero.
 */
static long b64url_decode(const char *in, size_t len, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long n = 0;

    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);

        if (v < 0)
            return -1;
        acc = ((acc << 6) | (uint32_t)v) & 0x3fff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return n;
}

/* Encode len bytes as base64url into out (room for B64URL_LEN(len) + 1); returns the length. */
static size_t b64url_encode(const unsigned char *in, size_t len, char *out)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        out[n++] = b64url_alphabet[v >> 18];
        out[n++] = b64url_alphabet[(v >> 12) & 63];
        out[n++] = b64url_alphabet[(v >> 6) & 63];
        out[n++] = b64url_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);

        out[n++] = b64url_alphabet[v >> 18];
        out[n++] = b64url_alphabet[(v >> 12) & 63];
        if (i + 1 < len)
            out[n++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[n] = '\0';
    return n;
}

/*
 * Split the token at its two dots into three parts of base64url characters.
 * Only the alphabet is checked here: a part that is not a valid encoding is
 * refused when it is decoded (format for header and claims, signature for
 * the MAC, whose only valid spelling is 43 canonical characters).
 */
static int split_token(const char *token, size_t len, struct tok_part parts[3])
{
    int n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && token[i] != '.') {
            if (b64url_value((unsigned char)token[i]) < 0)
                return TOK_E_FORMAT;
            continue;
        }
        if (n == 3)
            return TOK_E_FORMAT; /* a third dot */
        parts[n].p = token + start;
        parts[n].len = i - start;
        n++;
        start = i + 1;
    }
    return n == 3 ? 0 : TOK_E_FORMAT;
}

/* Decode one part as JSON; NULL unless it is an object without duplicate names. */
static json_t *decode_object(const struct tok_part *part)
{
    unsigned char buf[TOK_MAX_DECODED];
    long n = b64url_decode(part->p, part->len, buf);
    json_t *obj;

    if (n < 0)
        return NULL;
    obj = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (obj != NULL && !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Check the JOSE header: a JSON object, alg exactly "HS256", no "crit". */
static int check_header(const struct tok_part *part)
{
    json_t *hdr = decode_object(part);
    const json_t *alg;
    int rc = 0;

    if (hdr == NULL)
        return TOK_E_FORMAT;
    alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg) || json_string_length(alg) != 5 ||
        memcmp(json_string_value(alg), "HS256", 5) != 0)
        rc = TOK_E_ALG;
    else if (json_object_get(hdr, "crit") != NULL)
        rc = TOK_E_FORMAT;
    json_decref(hdr);
    return rc;
}

/* HMAC-SHA256 of the signing input into mac; 0, or -1 if OpenSSL fails. */
static int compute_mac(const char *input, size_t len, const unsigned char *secret,
                       size_t secret_len, unsigned char mac[TOK_MAC_LEN])
{
    unsigned int mac_len = 0;

    if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)input, len, mac,
             &mac_len) == NULL ||
        mac_len != TOK_MAC_LEN)
        return -1;
    return 0;
}

/* Compare the token's signature part with the MAC of its first two parts. */
static int check_signature(const char *token, const struct tok_part parts[3],
                           const unsigned char *secret, size_t secret_len)
{
    unsigned char want[TOK_MAC_LEN];
    unsigned char got[TOK_MAC_LEN];
    size_t input_len = (size_t)(parts[1].p + parts[1].len - token);
    int rc = TOK_E_SIGNATURE;

    if (secret_len == 0 || secret_len > INT_MAX || parts[2].len != TOK_MAC_B64_LEN)
        return TOK_E_SIGNATURE;
    if (b64url_decode(parts[2].p, parts[2].len, got) != TOK_MAC_LEN)
        return TOK_E_SIGNATURE;
    if (compute_mac(token, input_len, secret, secret_len, want) == 0 &&
        CRYPTO_memcmp(want, got, TOK_MAC_LEN) == 0)
        rc = 0;
    OPENSSL_cleanse(want, sizeof(want));
    return rc;
}

/*
 * Read the optional NumericDate claim `name` into *t. Returns 1 when present,
 * 0 when absent, TOK_E_FORMAT when present but not a number.
 */
static int read_time(const json_t *claims, const char *name, double *t)
{
    const json_t *v = json_object_get(claims, name);

    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return TOK_E_FORMAT;
    *t = json_number_value(v);
    return 1;
}

/* Check exp and nbf against now, with leeway seconds either side; store exp. */
static int check_times(const json_t *claims, time_t now, int leeway, long long *exp_out)
{
    double exp = 0, nbf = 0;
    int has_exp = read_time(claims, "exp", &exp);
    int has_nbf = read_time(claims, "nbf", &nbf);

    if (has_exp < 0 || has_nbf < 0)
        return TOK_E_FORMAT;
    if (has_exp && (double)now >= exp + leeway)
        return TOK_E_EXPIRED;
    if (has_nbf && (double)now < nbf - leeway)
        return TOK_E_NOT_YET;
    if (!has_exp)
        *exp_out = 0;
    else if (exp >= 9.2e18)
        *exp_out = LLONG_MAX; /* doubles this far out do not fit a long long */
    else if (exp <= -9.2e18)
        *exp_out = LLONG_MIN;
    else
        *exp_out = (long long)exp;
    return 0;
}

int tok_user_valid(const char *s, size_t n)
{
    if (n == 0 || n > TOK_MAX_SUB)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int tok_user_id(const json_t *v, char out[TOK_MAX_SUB + 1])
{
    if (json_is_integer(v)) {
        snprintf(out, TOK_MAX_SUB + 1, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (!json_is_string(v) || !tok_user_valid(json_string_value(v), json_string_length(v)))
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* Copy "sub" into sub: a user id (tok_user_id). */
static int read_subject(const json_t *claims, char sub[TOK_MAX_SUB + 1])
{
    return tok_user_id(json_object_get(claims, "sub"), sub) == 0 ? 0 : TOK_E_SUBJECT;
}

int tok_verify(const char *token, size_t len, const unsigned char *secret, size_t secret_len,
               time_t now, int leeway, struct tok_claims *out)
{
    struct tok_part parts[3];
    json_t *claims = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > TOK_MAX_LEN)
        return TOK_E_TOO_LONG;
    if (token == NULL || (rc = split_token(token, len, parts)) < 0)
        return TOK_E_FORMAT;
    if ((rc = check_header(&parts[0])) < 0)
        return rc;
    if ((rc = check_signature(token, parts, secret, secret_len)) < 0)
        return rc;
    if ((claims = decode_object(&parts[1])) == NULL)
        return TOK_E_FORMAT;
    if ((rc = check_times(claims, now, leeway, &out->exp)) < 0)
        goto fail;
    if ((rc = read_subject(claims, out->sub)) < 0)
        goto fail;
    out->payload = claims;
    return 0;

fail:
    json_decref(claims);
    memset(out, 0, sizeof(*out));
    return rc;
}

void tok_claims_free(struct tok_claims *c)
{
    if (c == NULL)
        return;
    json_decref(c->payload);
    memset(c, 0, sizeof(*c));
}

const char *tok_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case TOK_E_FORMAT: return "format";
    case TOK_E_ALG: return "alg";
    case TOK_E_SIGNATURE: return "signature";
    case TOK_E_EXPIRED: return "expired";
    case TOK_E_NOT_YET: return "not_yet";
    case TOK_E_SUBJECT: return "subject";
    case TOK_E_TOO_LONG: return "too_long";
    default: return "unknown";
    }
}

/*
 * The claims are serialised with json_dumpb rather than json_dumps, so the
 * text lands in our own malloc'd buffer whatever allocator jansson was given.
 * The result may exceed TOK_MAX_LEN: tests use that to build long tokens.
 */
char *tok_sign(const json_t *claims, const unsigned char *secret, size_t secret_len)
{
    unsigned char mac[TOK_MAC_LEN];
    char *json = NULL, *token = NULL;
    size_t json_len, hdr_len = sizeof(tok_header_json) - 1, n;

    if (!json_is_object(claims) || secret_len == 0 || secret_len > INT_MAX)
        return NULL;
    json_len = json_dumpb(claims, NULL, 0, JSON_COMPACT);
    if (json_len == 0 || json_len > SIZE_MAX / 2 || (json = malloc(json_len)) == NULL)
        goto fail;
    if (json_dumpb(claims, json, json_len, JSON_COMPACT) != json_len)
        goto fail;
    token = malloc(B64URL_LEN(hdr_len) + 1 + B64URL_LEN(json_len) + 1 + TOK_MAC_B64_LEN + 1);
    if (token == NULL)
        goto fail;
    n = b64url_encode((const unsigned char *)tok_header_json, hdr_len, token);
    token[n++] = '.';
    n += b64url_encode((const unsigned char *)json, json_len, token + n);
    if (compute_mac(token, n, secret, secret_len, mac) < 0)
        goto fail;
    token[n++] = '.';
    b64url_encode(mac, TOK_MAC_LEN, token + n);
    free(json);
    return token;

fail:
    free(json);
    free(token);
    return NULL;
}
