/*
 * fuzz_cfg.c -- libFuzzer target for the configuration file reader
 * (cfg_file.c: our line reader in front of inih, [herald] and [site NAME]
 * sections; every value parser, and the site checks of cfg.c).
 *
 * Owns:       one scratch file the input is written to, reused across runs.
 * Checks:     cfg_load either succeeds with at least one site, each named,
 *             with an API socket and a secret, or fails with one line that
 *             names the file; nothing leaks (LeakSanitizer) either way.
 * Build:      make fuzz, or see tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static char path[] = "/tmp/herald-fuzz-cfg-XXXXXX";

/* Replace the scratch file's content with the input. */
static void write_input(const uint8_t *data, size_t size)
{
    static int fd = -1;

    if (fd < 0) {
        fd = mkstemp(path);
        CHECK(fd >= 0);
        log_set_level(LOG_ERROR + 1);
    }
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char a0[] = "herald", a1[] = "-c";
    char *argv[] = {a0, a1, path, NULL};
    enum cfg_action action;
    char *cause = NULL;
    struct cfg c;

    write_input(data, size);
    if (cfg_load(3, argv, &c, &action, &cause) != 0) {
        CHECK(cause != NULL && strchr(cause, '\n') == NULL);
        free(cause);
        return 0;
    }
    CHECK(cause == NULL && c.nsites >= 1 && c.workers >= 1);
    for (size_t i = 0; i < c.nsites; i++) {
        CHECK(c.sites[i]->site != NULL && c.sites[i]->api_socket != NULL);
        CHECK(c.sites[i]->secret != NULL && c.sites[i]->secret_len >= 16);
        CHECK(c.sites[i]->nuids == c.sites[i]->npublish_uids);
    }
    cfg_free(&c);
    return 0;
}
