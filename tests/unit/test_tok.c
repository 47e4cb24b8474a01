/*
 * test_tok.c -- unit tests for tok.c: HS256 compact JWS verification.
 *
 * Every token is copied to the end of a page followed by a PROT_NONE guard
 * page before tok_verify sees it, so a read past the token's length crashes
 * the test. Tokens are built here with OpenSSL's own base64 and HMAC rather
 * than with tok_sign, so the signer and the verifier are checked against an
 * independent encoder. The known-answer vector is shared with the PHP client
 * (php-client/tests/Unit/TokenTest.php); change both or neither.
 */
#include "tok.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "token_helpers.h"

/* Known answer, produced identically by PHP's Token::sign. */
#define KAT_SECRET "test-secret"
#define KAT_TOKEN                                                                                  \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"                                                         \
    ".eyJzdWIiOiI0MiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ"                              \
    ".G4mieqaE7BMTnnEZPQKNYzSBHAo-7en-8ogbyDdi4mc"

#define SECRET "unit-secret"
#define NOW 1700000000
#define LEEWAY 30

/* tok_verify on a copy of token[0..len) that ends right before a guard page. */
static int verify_len(const char *token, size_t len, const char *secret, time_t now, int leeway,
                      struct tok_claims *c)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = (len / page + 2) * page;
    char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *copy;
    int rc;

    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + size - page, page, PROT_NONE), 0);
    copy = map + size - page - len;
    memcpy(copy, token, len);
    rc = tok_verify(copy, len, (const unsigned char *)secret, strlen(secret), now, leeway, c);
    munmap(map, size);
    return rc;
}

static int verify(const char *token, time_t now, struct tok_claims *c)
{
    return verify_len(token, strlen(token), SECRET, now, LEEWAY, c);
}

/* Sign claims with the HS256 header and return tok_verify's result at NOW. */
static int verify_claims(const char *claims, struct tok_claims *c)
{
    char *token = make_token(HS256, claims, SECRET);
    int rc = verify(token, NOW, c);

    free(token);
    return rc;
}

/* After a refusal *out must hold nothing. */
static void assert_empty(const struct tok_claims *c)
{
    assert_null(c->payload);
    assert_string_equal(c->sub, "");
    assert_int_equal(c->exp, 0);
}

static void test_tok_known_answer_verifies(void **state)
{
    struct tok_claims c;
    int rc = verify_len(KAT_TOKEN, strlen(KAT_TOKEN), KAT_SECRET, 1700000001, LEEWAY, &c);

    assert_int_equal(rc, 0);
    assert_string_equal(c.sub, "42");
    assert_int_equal(c.exp, 1700003600);
    assert_int_equal(json_integer_value(json_object_get(c.payload, "iat")), 1700000000);
    assert_int_equal(c.payload->refcount, 1);
    tok_claims_free(&c);
}

static void test_tok_known_answer_signs(void **state)
{
    json_t *claims = json_pack("{s:s, s:I, s:I}", "sub", "42", "iat", (json_int_t)1700000000, "exp",
                               (json_int_t)1700003600);
    char *token = tok_sign(claims, (const unsigned char *)KAT_SECRET, strlen(KAT_SECRET));
    char *independent =
        make_token(HS256, "{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700003600}", KAT_SECRET);

    assert_non_null(token);
    assert_string_equal(token, KAT_TOKEN);
    assert_string_equal(independent, KAT_TOKEN);
    free(token);
    free(independent);
    json_decref(claims);
}

static void test_tok_known_answer_wrong_secret(void **state)
{
    struct tok_claims c;
    int rc = verify_len(KAT_TOKEN, strlen(KAT_TOKEN), "test-secreT", 1700000001, LEEWAY, &c);

    assert_int_equal(rc, TOK_E_SIGNATURE);
    assert_empty(&c);
}

static void test_tok_sign_roundtrip(void **state)
{
    json_t *claims = json_pack("{s:I, s:I, s:s}", "sub", (json_int_t)7, "exp", (json_int_t)NOW + 60,
                               "room", "a/b é");
    char *token = tok_sign(claims, (const unsigned char *)SECRET, strlen(SECRET));
    struct tok_claims c;

    assert_non_null(token);
    assert_int_equal(verify(token, NOW, &c), 0);
    assert_string_equal(c.sub, "7");
    assert_int_equal(c.exp, NOW + 60);
    assert_string_equal(json_string_value(json_object_get(c.payload, "room")), "a/b é");
    tok_claims_free(&c);
    free(token);
    json_decref(claims);
}

static void test_tok_sign_refuses(void **state)
{
    json_t *claims = json_pack("{s:s}", "sub", "1");
    json_t *array = json_array();

    assert_null(tok_sign(claims, (const unsigned char *)"", 0));
    assert_null(tok_sign(array, (const unsigned char *)SECRET, strlen(SECRET)));
    assert_null(tok_sign(NULL, (const unsigned char *)SECRET, strlen(SECRET)));
    json_decref(claims);
    json_decref(array);
}

/* A secret is bytes: embedded NULs count, and an empty secret verifies nothing. */
static void test_tok_secret_bytes(void **state)
{
    static const unsigned char secret[] = {'a', 0, 'b'};
    json_t *claims = json_pack("{s:s}", "sub", "u");
    char *token = tok_sign(claims, secret, sizeof(secret));
    struct tok_claims c;

    assert_int_equal(tok_verify(token, strlen(token), secret, sizeof(secret), NOW, 0, &c), 0);
    tok_claims_free(&c);
    assert_int_equal(tok_verify(token, strlen(token), secret, 1, NOW, 0, &c), TOK_E_SIGNATURE);
    assert_int_equal(tok_verify(token, strlen(token), secret, 0, NOW, 0, &c), TOK_E_SIGNATURE);
    free(token);
    /* a token really signed with the empty key is refused too */
    token = make_token(HS256, "{\"sub\":\"u\"}", "");
    assert_int_equal(tok_verify(token, strlen(token), (const unsigned char *)"", 0, NOW, 0, &c),
                     TOK_E_SIGNATURE);
    free(token);
    json_decref(claims);
}

/* Header cases: every token here is correctly signed, so only the header decides. */
static const struct {
    const char *header;
    int rc;
} header_cases[] = {
    {HS256, 0},                                               /* the one we issue */
    {"{\"alg\":\"HS256\"}", 0},                               /* typ is optional */
    {"{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", 0},            /* and ignored */
    {"{\"alg\":\"none\",\"typ\":\"JWT\"}", TOK_E_ALG},        /* unsecured JWS */
    {"{\"alg\":\"None\"}", TOK_E_ALG},                        /* in any case */
    {"{\"alg\":\"HS512\"}", TOK_E_ALG},                       /* other HMAC */
    {"{\"alg\":\"RS256\"}", TOK_E_ALG},                       /* key confusion */
    {"{\"alg\":\"hs256\"}", TOK_E_ALG},                       /* names are case-sensitive */
    {"{\"alg\":\"HS256 \"}", TOK_E_ALG},                      /* exact match only */
    {"{\"typ\":\"JWT\"}", TOK_E_ALG},                         /* alg missing */
    {"{\"alg\":256}", TOK_E_ALG},                             /* alg not a string */
    {"{\"alg\":[\"HS256\"]}", TOK_E_ALG},                     /* nor a list */
    {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", TOK_E_FORMAT}, /* no extension understood */
    {"{\"alg\":\"none\",\"alg\":\"HS256\"}", TOK_E_FORMAT},   /* duplicate names */
    {"[\"HS256\"]", TOK_E_FORMAT},                            /* not an object */
    {"\"HS256\"", TOK_E_FORMAT},                              /* not an object */
    {"{\"alg\":\"HS256\"", TOK_E_FORMAT},                     /* truncated JSON */
    {"{\"alg\":\"HS256\"} x", TOK_E_FORMAT},                  /* trailing garbage */
    {"", TOK_E_FORMAT},                                       /* empty */
};

static void test_tok_header(void **state)
{
    for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
        char *token = make_token(header_cases[i].header, "{\"sub\":\"1\"}", SECRET);
        struct tok_claims c;
        int rc = verify(token, NOW, &c);

        if (rc != header_cases[i].rc)
            fail_msg("header %s: got %d, want %d", header_cases[i].header, rc, header_cases[i].rc);
        tok_claims_free(&c);
        free(token);
    }
}

/* alg is judged before the signature: an unsigned "none" token is an alg error. */
static void test_tok_alg_none_unsigned(void **state)
{
    char *h = b64url("{\"alg\":\"none\"}", 14);
    char *p = b64url("{\"sub\":\"1\"}", 11);
    char token[128];
    struct tok_claims c;

    snprintf(token, sizeof(token), "%s.%s.", h, p);
    assert_int_equal(verify(token, NOW, &c), TOK_E_ALG);
    assert_empty(&c);
    free(h);
    free(p);
}

static void test_tok_wrong_signature(void **state)
{
    char *token = make_token(HS256, "{\"sub\":\"1\"}", "other-secret");
    char *good = make_token(HS256, "{\"sub\":\"1\"}", SECRET);
    size_t len = strlen(good);
    struct tok_claims c;

    assert_int_equal(verify(token, NOW, &c), TOK_E_SIGNATURE);
    assert_empty(&c);
    /* change each signature character in turn, keeping the encoding canonical */
    for (size_t i = len - 43; i < len; i++) {
        const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char was = good[i];
        int v = (int)(strchr(alphabet, was) - alphabet);

        good[i] = alphabet[i == len - 1 ? v ^ 4 : v ^ 1]; /* the last one has 2 unused bits */
        if (verify(good, NOW, &c) != TOK_E_SIGNATURE)
            fail_msg("signature changed at %zu still verifies", i);
        good[i] = was;
    }
    assert_int_equal(verify(good, NOW, &c), 0);
    tok_claims_free(&c);
    free(token);
    free(good);
}

/* Claims that expired are refused only after the signature: a forger learns nothing. */
static void test_tok_signature_before_claims(void **state)
{
    char *token = make_token(HS256, "{\"sub\":\"\",\"exp\":1}", "other-secret");
    struct tok_claims c;

    assert_int_equal(verify(token, NOW, &c), TOK_E_SIGNATURE);
    free(token);
    token = make_token(HS256, "not json at all", "other-secret");
    assert_int_equal(verify(token, NOW, &c), TOK_E_SIGNATURE);
    free(token);
}

static void test_tok_truncated_signature(void **state)
{
    char *good = make_token(HS256, "{\"sub\":\"1\"}", SECRET);
    size_t len = strlen(good);
    struct tok_claims c;

    assert_int_equal(verify_len(good, len, SECRET, NOW, LEEWAY, &c), 0);
    tok_claims_free(&c);
    for (size_t cut = 1; cut <= 43; cut++) {
        int rc = verify_len(good, len - cut, SECRET, NOW, LEEWAY, &c);

        if (rc != TOK_E_SIGNATURE)
            fail_msg("signature cut by %zu: got %d", cut, rc);
    }
    /* the signature with one more character is not 43 characters either */
    good = realloc(good, len + 2);
    strcpy(good + len, "A");
    assert_int_equal(verify(good, NOW, &c), TOK_E_SIGNATURE);
    free(good);
}

/* A signature with non-zero unused bits decodes to the same MAC: refused all the same. */
static void test_tok_signature_noncanonical(void **state)
{
    char *good = make_token(HS256, "{\"sub\":\"1\"}", SECRET);
    size_t len = strlen(good);
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int last = (int)(strchr(alphabet, good[len - 1]) - alphabet);
    struct tok_claims c;

    assert_int_equal(last & 3, 0);
    for (int low = 1; low < 4; low++) {
        good[len - 1] = alphabet[last | low];
        assert_int_equal(verify(good, NOW, &c), TOK_E_SIGNATURE);
    }
    free(good);
}

/* Shapes and characters refused before anything is decoded. */
static const struct {
    const char *token;
    int rc;
} shape_cases[] = {
    {"", TOK_E_FORMAT},                      /* empty */
    {"abc", TOK_E_FORMAT},                   /* no dots */
    {"eyJhIjoxfQ.eyJhIjoxfQ", TOK_E_FORMAT}, /* two parts */
    {"..", TOK_E_FORMAT},                    /* three empty parts: "" is not JSON */
    {"...", TOK_E_FORMAT},                   /* four empty parts */
    {"a.b.c.d", TOK_E_FORMAT},               /* four parts */
    {"eyJh IjoxfQ.e.e", TOK_E_FORMAT},       /* a space */
    {"eyJhIjoxfQ\n.e.e", TOK_E_FORMAT},      /* a newline */
    {"\neyJhIjoxfQ.e.e", TOK_E_FORMAT},      /* starts with one */
    {"eyJhIjoxfQ.e.e\n", TOK_E_FORMAT},      /* ends with one */
    {"eyJhIjoxfQ.e%2E.e", TOK_E_FORMAT},     /* still percent-encoded */
};

static void test_tok_shape(void **state)
{
    char *good = make_token(HS256, "{\"sub\":\"1\"}", SECRET);
    char buf[512];
    struct tok_claims c;
    const char *dot1 = strchr(good, '.');
    const char *dot2 = strchr(dot1 + 1, '.');
    int hlen = (int)(dot1 - good), plen = (int)(dot2 - dot1 - 1);

    for (size_t i = 0; i < sizeof(shape_cases) / sizeof(shape_cases[0]); i++) {
        int rc = verify(shape_cases[i].token, NOW, &c);

        if (rc != shape_cases[i].rc)
            fail_msg("token \"%s\": got %d", shape_cases[i].token, rc);
        assert_empty(&c);
    }
    /* a valid token with a fourth part, empty or not */
    snprintf(buf, sizeof(buf), "%s.", good);
    assert_int_equal(verify(buf, NOW, &c), TOK_E_FORMAT);
    snprintf(buf, sizeof(buf), "%s.%s", good, dot2 + 1);
    assert_int_equal(verify(buf, NOW, &c), TOK_E_FORMAT);
    /* a leading dot: empty header */
    snprintf(buf, sizeof(buf), ".%s", dot1 + 1);
    assert_int_equal(verify(buf, NOW, &c), TOK_E_FORMAT);
    /* a bad character in each part in turn, the rest intact */
    snprintf(buf, sizeof(buf), "%.*s*%s", hlen - 1, good, dot1);
    assert_int_equal(verify(buf, NOW, &c), TOK_E_FORMAT);
    snprintf(buf, sizeof(buf), "%.*s!%s", hlen + plen, good, dot2);
    assert_int_equal(verify(buf, NOW, &c), TOK_E_FORMAT);
    snprintf(buf, sizeof(buf), "%s", good);
    buf[strlen(buf) - 5] = ' ';
    assert_int_equal(verify(buf, NOW, &c), TOK_E_FORMAT);
    /* a NUL inside the token is outside the alphabet too */
    snprintf(buf, sizeof(buf), "%s", good);
    buf[hlen + 3] = '\0';
    assert_int_equal(verify_len(buf, strlen(good), SECRET, NOW, LEEWAY, &c), TOK_E_FORMAT);
    assert_empty(&c);
    free(good);
}

static void test_tok_padding_refused(void **state)
{
    /* the header encodes 27 bytes: 36 characters, no padding needed; pad the claims */
    char *h = b64url(HS256, strlen(HS256));
    char *p = b64url("{\"sub\":\"12\"}", 12);   /* 12 bytes: 16 chars, none */
    char *p2 = b64url("{\"sub\":\"123\"}", 13); /* 13 bytes: 18 chars, "==" in std b64 */
    char padded[128];
    char *token;
    struct tok_claims c;

    snprintf(padded, sizeof(padded), "%s==", p2);
    token = sign_parts(h, padded, SECRET);
    assert_int_equal(verify(token, NOW, &c), TOK_E_FORMAT);
    free(token);
    token = sign_parts(h, p2, SECRET);
    assert_int_equal(verify(token, NOW, &c), 0);
    tok_claims_free(&c);
    free(token);
    /* padding after the signature */
    token = sign_parts(h, p, SECRET);
    snprintf(padded, sizeof(padded), "%s=", token);
    assert_int_equal(verify(padded, NOW, &c), TOK_E_FORMAT);
    free(token);
    free(h);
    free(p);
    free(p2);
}

/* The standard alphabet's '+' and '/' are not base64url. */
static void test_tok_std_alphabet_refused(void **state)
{
    char token[] = KAT_TOKEN;
    char *dash = strrchr(token, '-');
    char *h = b64url(HS256, strlen(HS256));
    struct tok_claims c;
    char *t;

    assert_non_null(dash);
    *dash = '+';
    assert_int_equal(verify_len(token, strlen(token), KAT_SECRET, 1700000001, 0, &c), TOK_E_FORMAT);
    *dash = '/';
    assert_int_equal(verify_len(token, strlen(token), KAT_SECRET, 1700000001, 0, &c), TOK_E_FORMAT);
    /* {"sub":"?"} is "..._In0" in base64url and ".../In0" in standard base64 */
    t = sign_parts(h, "eyJzdWIiOiI_In0", SECRET);
    assert_int_equal(verify(t, NOW, &c), 0);
    assert_string_equal(c.sub, "?");
    tok_claims_free(&c);
    free(t);
    t = sign_parts(h, "eyJzdWIiOiI/In0", SECRET);
    assert_int_equal(verify(t, NOW, &c), TOK_E_FORMAT);
    free(t);
    /* {"sub":">"}: "-" in base64url, "+" in standard base64 */
    t = sign_parts(h, "eyJzdWIiOiI+In0", SECRET);
    assert_int_equal(verify(t, NOW, &c), TOK_E_FORMAT);
    free(t);
    t = sign_parts(h, "eyJzdWIiOiI-In0", SECRET);
    assert_int_equal(verify(t, NOW, &c), 0);
    assert_string_equal(c.sub, ">");
    tok_claims_free(&c);
    free(t);
    free(h);
}

/* Header and claims whose length or trailing bits no encoder produces. */
static void test_tok_noncanonical_parts(void **state)
{
    char *h = b64url(HS256, strlen(HS256));
    struct tok_claims c;
    char buf[256];
    char *t;

    /* claims "eyJzdWIiOiIxIn0" is {"sub":"1"}; its last char '0' carries 2 unused bits */
    t = sign_parts(h, "eyJzdWIiOiIxIn0", SECRET);
    assert_int_equal(verify(t, NOW, &c), 0);
    tok_claims_free(&c);
    free(t);
    t = sign_parts(h, "eyJzdWIiOiIxIn1", SECRET);
    assert_int_equal(verify(t, NOW, &c), TOK_E_FORMAT);
    free(t);
    /* a claims part of 4n+1 characters */
    t = sign_parts(h, "eyJzdWIiOiIxIn0A", SECRET);
    assert_int_equal(verify(t, NOW, &c), TOK_E_FORMAT);
    free(t);
    /* a header of 4n+1 characters */
    snprintf(buf, sizeof(buf), "%sA", h);
    t = sign_parts(buf, "eyJzdWIiOiIxIn0", SECRET);
    assert_int_equal(verify(t, NOW, &c), TOK_E_FORMAT);
    free(t);
    free(h);
}

/* Claims that are not a JSON object, each correctly signed. */
static const char *const bad_claims[] = {
    "",                               /* empty */
    "null",                           /* scalar */
    "\"sub\"",                        /* string */
    "42",                             /* number */
    "[{\"sub\":\"1\"}]",              /* array */
    "{\"sub\":\"1\"",                 /* truncated */
    "{\"sub\":\"1\",}",               /* trailing comma */
    "{\"sub\":\"1\",\"sub\":\"2\"}",  /* duplicate sub */
    "{\"sub\":\"\\u0000\"}",          /* NUL in a string: jansson refuses it */
    "{\"sub\":\"\xff\"}",             /* not UTF-8 */
    "{\"sub\":1e400}",                /* number overflow */
    "{\"sub\":99999999999999999999}", /* integer overflow */
};

static void test_tok_claims_not_object(void **state)
{
    for (size_t i = 0; i < sizeof(bad_claims) / sizeof(bad_claims[0]); i++) {
        struct tok_claims c;
        int rc = verify_claims(bad_claims[i], &c);

        if (rc != TOK_E_FORMAT)
            fail_msg("claims %s: got %d", bad_claims[i], rc);
        assert_empty(&c);
    }
}

static void test_tok_expiry(void **state)
{
    char claims[128];
    struct tok_claims c;

    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"exp\":%d}", NOW - LEEWAY + 1);
    assert_int_equal(verify_claims(claims, &c), 0); /* expired, within leeway */
    assert_int_equal(c.exp, NOW - LEEWAY + 1);
    tok_claims_free(&c);
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"exp\":%d}", NOW - LEEWAY);
    assert_int_equal(verify_claims(claims, &c), TOK_E_EXPIRED); /* exp + leeway == now */
    assert_empty(&c);
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"exp\":%d}", NOW - 3600);
    assert_int_equal(verify_claims(claims, &c), TOK_E_EXPIRED); /* beyond leeway */
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"exp\":%d.5}", NOW - LEEWAY);
    assert_int_equal(verify_claims(claims, &c), 0); /* NumericDate may be fractional */
    assert_int_equal(c.exp, NOW - LEEWAY);
    tok_claims_free(&c);
    assert_int_equal(verify_claims("{\"sub\":\"1\",\"exp\":1e300}", &c), 0);
    assert_int_equal(c.exp, LLONG_MAX);
    tok_claims_free(&c);
    assert_int_equal(verify_claims("{\"sub\":\"1\"}", &c), 0); /* exp is optional */
    assert_int_equal(c.exp, 0);
    tok_claims_free(&c);
}

static void test_tok_expiry_no_leeway(void **state)
{
    char *token = make_token(HS256, "{\"sub\":\"1\",\"exp\":1000}", SECRET);
    size_t len = strlen(token);
    struct tok_claims c;

    assert_int_equal(verify_len(token, len, SECRET, 999, 0, &c), 0);
    tok_claims_free(&c);
    assert_int_equal(verify_len(token, len, SECRET, 1000, 0, &c), TOK_E_EXPIRED);
    free(token);
}

static void test_tok_not_before(void **state)
{
    char claims[128];
    struct tok_claims c;

    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"nbf\":%d}", NOW + LEEWAY);
    assert_int_equal(verify_claims(claims, &c), 0); /* nbf - leeway == now */
    tok_claims_free(&c);
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"nbf\":%d}", NOW + LEEWAY + 1);
    assert_int_equal(verify_claims(claims, &c), TOK_E_NOT_YET);
    assert_empty(&c);
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"nbf\":%d}", NOW - 10);
    assert_int_equal(verify_claims(claims, &c), 0);
    tok_claims_free(&c);
}

/* exp and nbf, when present, must be numbers. */
static const char *const bad_times[] = {
    "{\"sub\":\"1\",\"exp\":\"1900000000\"}", "{\"sub\":\"1\",\"exp\":null}",
    "{\"sub\":\"1\",\"exp\":true}",           "{\"sub\":\"1\",\"exp\":[1900000000]}",
    "{\"sub\":\"1\",\"nbf\":\"0\"}",          "{\"sub\":\"1\",\"nbf\":{}}",
};

static void test_tok_time_not_number(void **state)
{
    for (size_t i = 0; i < sizeof(bad_times) / sizeof(bad_times[0]); i++) {
        struct tok_claims c;
        int rc = verify_claims(bad_times[i], &c);

        if (rc != TOK_E_FORMAT)
            fail_msg("claims %s: got %d", bad_times[i], rc);
        assert_empty(&c);
    }
}

static void test_tok_integer_subject(void **state)
{
    struct tok_claims c;

    assert_int_equal(verify_claims("{\"sub\":42}", &c), 0);
    assert_string_equal(c.sub, "42");
    tok_claims_free(&c);
    assert_int_equal(verify_claims("{\"sub\":-7}", &c), 0);
    assert_string_equal(c.sub, "-7");
    tok_claims_free(&c);
    assert_int_equal(verify_claims("{\"sub\":0}", &c), 0);
    assert_string_equal(c.sub, "0");
    tok_claims_free(&c);
    assert_int_equal(verify_claims("{\"sub\":9223372036854775807}", &c), 0);
    assert_string_equal(c.sub, "9223372036854775807");
    tok_claims_free(&c);
}

/* Subjects that are refused, each in a correctly signed token. */
static const char *const bad_subjects[] = {
    "{}",                       /* missing */
    "{\"sub\":\"\"}",           /* empty */
    "{\"sub\":null}",           /* null */
    "{\"sub\":true}",           /* boolean */
    "{\"sub\":42.0}",           /* a real, even a whole one */
    "{\"sub\":[\"1\"]}",        /* array */
    "{\"sub\":{\"id\":1}}",     /* object */
    "{\"sub\":\"a\\u0001b\"}",  /* C0 control */
    "{\"sub\":\"a\\tb\"}",      /* tab */
    "{\"sub\":\"a\\nb\"}",      /* newline: would split a log line */
    "{\"sub\":\"\\u001f\"}",    /* last C0 */
    "{\"sub\":\"del\\u007f\"}", /* DEL */
    "{\"Sub\":\"1\"}",          /* names are case-sensitive */
};

static void test_tok_bad_subject(void **state)
{
    for (size_t i = 0; i < sizeof(bad_subjects) / sizeof(bad_subjects[0]); i++) {
        struct tok_claims c;
        int rc = verify_claims(bad_subjects[i], &c);

        if (rc != TOK_E_SUBJECT)
            fail_msg("claims %s: got %d", bad_subjects[i], rc);
        assert_empty(&c);
    }
}

static void test_tok_subject_length(void **state)
{
    char claims[512], sub[TOK_MAX_SUB + 2];
    struct tok_claims c;

    memset(sub, 'x', sizeof(sub));
    sub[TOK_MAX_SUB] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\"}", sub);
    assert_int_equal(verify_claims(claims, &c), 0);
    assert_int_equal(strlen(c.sub), TOK_MAX_SUB);
    tok_claims_free(&c);
    sub[TOK_MAX_SUB] = 'x';
    sub[TOK_MAX_SUB + 1] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\"}", sub);
    assert_int_equal(verify_claims(claims, &c), TOK_E_SUBJECT);
    /* the limit is in bytes: 64 two-byte characters fit, 65 do not */
    strcpy(claims, "{\"sub\":\"");
    for (int i = 0; i < 64; i++)
        strcat(claims, "\xc3\xa9");
    strcat(claims, "\"}");
    assert_int_equal(verify_claims(claims, &c), 0);
    assert_int_equal(strlen(c.sub), 128);
    tok_claims_free(&c);
    strcpy(claims + strlen(claims) - 2, "\xc3\xa9\"}");
    assert_int_equal(verify_claims(claims, &c), TOK_E_SUBJECT);
    /* escapes count as the bytes they decode to */
    assert_int_equal(verify_claims("{\"sub\":\"\\u00e9\\/x\"}", &c), 0);
    assert_string_equal(c.sub, "\xc3\xa9/x");
    tok_claims_free(&c);
}

/* Sign claims padded so the token is exactly `want` bytes long. */
static char *token_of_length(size_t want)
{
    char *pad = malloc(want + 1);
    char *token = NULL;

    for (size_t n = 0; n < want; n++) {
        json_t *claims;

        memset(pad, 'p', n);
        pad[n] = '\0';
        claims = json_pack("{s:s, s:s}", "sub", "1", "pad", pad);
        token = tok_sign(claims, (const unsigned char *)SECRET, strlen(SECRET));
        json_decref(claims);
        if (strlen(token) >= want)
            break;
        free(token);
        token = NULL;
    }
    free(pad);
    return token;
}

static void test_tok_too_long(void **state)
{
    char *token = token_of_length(TOK_MAX_LEN);
    struct tok_claims c;
    char *junk;

    assert_int_equal(strlen(token), TOK_MAX_LEN);
    assert_int_equal(verify(token, NOW, &c), 0);
    tok_claims_free(&c);
    free(token);
    token = token_of_length(TOK_MAX_LEN + 1);
    assert_int_equal(strlen(token), TOK_MAX_LEN + 1);
    assert_int_equal(verify(token, NOW, &c), TOK_E_TOO_LONG);
    assert_empty(&c);
    free(token);
    /* refused unread: even bytes that are not a token */
    junk = malloc(TOK_MAX_LEN * 4);
    memset(junk, '\xff', TOK_MAX_LEN * 4);
    assert_int_equal(verify_len(junk, TOK_MAX_LEN * 4, SECRET, NOW, 0, &c), TOK_E_TOO_LONG);
    free(junk);
}

static void test_tok_claims_free_idempotent(void **state)
{
    struct tok_claims c;

    assert_int_equal(verify_claims("{\"sub\":\"1\"}", &c), 0);
    tok_claims_free(&c);
    assert_null(c.payload);
    tok_claims_free(&c);
    tok_claims_free(NULL);
    memset(&c, 0, sizeof(c));
    tok_claims_free(&c);
}

static void test_tok_null_token(void **state)
{
    struct tok_claims c;

    assert_int_equal(tok_verify(NULL, 0, (const unsigned char *)SECRET, strlen(SECRET), NOW, 0, &c),
                     TOK_E_FORMAT);
    assert_empty(&c);
}

static void test_tok_strerror(void **state)
{
    assert_string_equal(tok_strerror(0), "ok");
    assert_string_equal(tok_strerror(TOK_E_FORMAT), "format");
    assert_string_equal(tok_strerror(TOK_E_ALG), "alg");
    assert_string_equal(tok_strerror(TOK_E_SIGNATURE), "signature");
    assert_string_equal(tok_strerror(TOK_E_EXPIRED), "expired");
    assert_string_equal(tok_strerror(TOK_E_NOT_YET), "not_yet");
    assert_string_equal(tok_strerror(TOK_E_SUBJECT), "subject");
    assert_string_equal(tok_strerror(TOK_E_TOO_LONG), "too_long");
    assert_string_equal(tok_strerror(-99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tok_known_answer_verifies),
        cmocka_unit_test(test_tok_known_answer_signs),
        cmocka_unit_test(test_tok_known_answer_wrong_secret),
        cmocka_unit_test(test_tok_sign_roundtrip),
        cmocka_unit_test(test_tok_sign_refuses),
        cmocka_unit_test(test_tok_secret_bytes),
        cmocka_unit_test(test_tok_header),
        cmocka_unit_test(test_tok_alg_none_unsigned),
        cmocka_unit_test(test_tok_wrong_signature),
        cmocka_unit_test(test_tok_signature_before_claims),
        cmocka_unit_test(test_tok_truncated_signature),
        cmocka_unit_test(test_tok_signature_noncanonical),
        cmocka_unit_test(test_tok_shape),
        cmocka_unit_test(test_tok_padding_refused),
        cmocka_unit_test(test_tok_std_alphabet_refused),
        cmocka_unit_test(test_tok_noncanonical_parts),
        cmocka_unit_test(test_tok_claims_not_object),
        cmocka_unit_test(test_tok_expiry),
        cmocka_unit_test(test_tok_expiry_no_leeway),
        cmocka_unit_test(test_tok_not_before),
        cmocka_unit_test(test_tok_time_not_number),
        cmocka_unit_test(test_tok_integer_subject),
        cmocka_unit_test(test_tok_bad_subject),
        cmocka_unit_test(test_tok_subject_length),
        cmocka_unit_test(test_tok_too_long),
        cmocka_unit_test(test_tok_claims_free_idempotent),
        cmocka_unit_test(test_tok_null_token),
        cmocka_unit_test(test_tok_strerror),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
