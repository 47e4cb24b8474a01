/*
 * cfg_helpers.h -- helpers shared by test_cfg.c and test_cfg_value.c:
 * temporary INI files, cfg_load on a NULL-terminated argument list, and
 * the exact-message check of a refused file.
 *
 * Owns:       the temporary files it creates, which the caller removes
 *             with tmp_remove; a load_ok cfg, which the caller frees.
 * Called by:  tests/unit/test_cfg.c, tests/unit/test_cfg_value.c.
 * Invariants: temporary files are made with mkstemp in /tmp; error
 *             messages name them "herald.ini" (rename_file), so expected
 *             causes do not depend on the random name.
 */
#ifndef HERALD_TEST_CFG_HELPERS_H
#define HERALD_TEST_CFG_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"

#define GOOD_SECRET "0123456789abcdef0123456789abcdef"
#define MAX_ARGS 32

/* Write content to a new temporary file; returns its malloc'd path. */
static inline char *tmp_write(const char *content, size_t len)
{
    char *path = strdup("/tmp/herald-test-cfg-XXXXXX");
    int fd;

    assert_non_null(path);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static inline char *tmp_ini(const char *content)
{
    return tmp_write(content, strlen(content));
}

static inline void tmp_remove(char *path)
{
    unlink(path);
    free(path);
}

/* Run cfg_load on "herald" followed by the NULL-terminated arguments in ap. */
static inline int vload(struct cfg *c, enum cfg_action *action, char **cause, va_list ap)
{
    char *argv[MAX_ARGS + 2] = {"herald"};
    int argc = 1;
    const char *a;

    while ((a = va_arg(ap, const char *)) != NULL) {
        assert_true(argc <= MAX_ARGS);
        argv[argc++] = (char *)a;
    }
    argv[argc] = NULL;
    return cfg_load(argc, argv, c, action, cause);
}

/* Expect success; the cfg is left for the caller to check and free. */
static inline void load_ok(struct cfg *c, ...)
{
    enum cfg_action action;
    char *cause = NULL;
    va_list ap;
    int r;

    va_start(ap, c);
    r = vload(c, &action, &cause, ap);
    va_end(ap);
    if (r != 0)
        fail_msg("cfg_load failed: %s", cause);
    assert_int_equal(action, CFG_RUN);
    assert_null(cause);
}

/* Expect failure; returns the malloc'd cause. */
static inline char *load_err(const char *first, ...)
{
    struct cfg c;
    enum cfg_action action;
    char *cause = NULL;
    va_list ap;
    int r;
    char *argv[MAX_ARGS + 2] = {"herald", (char *)first};
    int argc = 2;
    const char *a;

    va_start(ap, first);
    while ((a = va_arg(ap, const char *)) != NULL) {
        assert_true(argc <= MAX_ARGS);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    r = cfg_load(argc, argv, &c, &action, &cause);
    assert_int_equal(r, -1);
    assert_non_null(cause);
    assert_null(c.listen); /* *out is left empty on failure */
    return cause;
}

/* Replace every occurrence of path in s by "herald.ini", in place. */
static inline void rename_file(char *s, const char *path)
{
    size_t n = strlen(path), m = strlen("herald.ini");
    char *p;

    while ((p = strstr(s, path)) != NULL) {
        memmove(p + m, p + n, strlen(p + n) + 1);
        memcpy(p, "herald.ini", m);
    }
}

/*
 * Load an INI text with -c (plus extra flags) and expect this exact cause,
 * with the temporary file's path shown as "herald.ini".
 */
static inline void expect_ini_error(const char *ini, const char *extra, const char *want)
{
    char *path = tmp_ini(ini);
    char *cause =
        extra != NULL ? load_err("-c", path, "--secret", extra, NULL) : load_err("-c", path, NULL);

    rename_file(cause, path);
    if (strcmp(cause, want) != 0)
        fail_msg("ini:\n%s\nwant: %s\ngot:  %s", ini, want, cause);
    free(cause);
    tmp_remove(path);
}

#endif
