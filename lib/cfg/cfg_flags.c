/*
 * cfg_flags.c -- the command line: -c FILE, --check-config, --help,
 * --version, and one --flag for every setting of the table that names one.
 * argv is scanned once, before the file is read, and the table flags are
 * applied after it (and again over each [site NAME]), so flags win.
 *
 * Owns:       the long options, built from the table, and --help.
 * Called by:  cfg.c (cfg_load to scan and apply, the building of a site to
 *             apply the per-site flags again).
 * Invariants: main thread only, within cfg_load, the only caller of
 *             getopt: its globals are reset (optind = 0) and opterr is
 *             restored on every call. Only --help and --version write to
 *             stdout.
 * Errors:     -1 with *cause set to one malloc'd line, "--flag: what is
 *             wrong" or "unknown option ..."; a secret is never echoed.
 * Tests:      tests/unit/test_cfg.c.
 */
#include "cfg_build.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "xmalloc.h"

enum {
    CFG_OPT_CHECK = 1,
    CFG_OPT_VERSION,
    CFG_OPT_HELP,
    CFG_OPT_DEF = 0x100, /* + index into cfg_defs */
};

/* The long options: the fixed ones, then every setting that has a flag. */
static struct option *build_options(void)
{
    static const struct option fixed[] = {
        {.name = "config", .has_arg = required_argument, .val = 'c'},
        {.name = "check-config", .has_arg = no_argument, .val = CFG_OPT_CHECK},
        {.name = "version", .has_arg = no_argument, .val = CFG_OPT_VERSION},
        {.name = "help", .has_arg = no_argument, .val = CFG_OPT_HELP},
    };
    size_t n = sizeof fixed / sizeof fixed[0];
    struct option *opts = xcalloc(n + CFG_NKEYS + 1, sizeof *opts);

    memcpy(opts, fixed, sizeof fixed);
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (cfg_defs[i].flag == NULL)
            continue;
        opts[n].name = cfg_defs[i].flag;
        opts[n].has_arg = required_argument;
        opts[n++].val = CFG_OPT_DEF + (int)i;
    }
    return opts;
}

/* Print --help, built from the table, on stdout. */
static void print_usage(void)
{
    char left[128];

    printf("usage: herald [-c FILE] [options]\n"
           "       herald status [-c FILE] [--site NAME] [--json] [--timeout SECONDS]\n"
           "           each site's figures, from the running herald (herald status --help)\n\n");
    printf("  %-30s %s\n", "-c, --config FILE", "read settings from an INI file");
    printf("  %-30s %s\n", "", "(every key: docs/config.md, herald.ini.example)");
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_def *d = &cfg_defs[i];

        if (d->flag == NULL)
            continue;
        snprintf(left, sizeof left, "    --%s %s", d->flag, d->metavar);
        if (strlen(left) > 30)
            printf("  %s\n  %-30s %s\n", left, "", d->help);
        else
            printf("  %-30s %s\n", left, d->help);
    }
    printf("  %-30s %s\n", "    --check-config", "validate the configuration and exit");
    printf("  %-30s %s\n", "    --version", "print the version and exit");
    printf("  %-30s %s\n", "    --help", "print this help and exit");
    printf("\nSettings apply in order: built-in defaults, then the -c file, then flags.\n"
           "Without -c Herald runs with development defaults (listen 127.0.0.1:9601,\n"
           "api socket /tmp/herald.sock) and a public development secret, which is\n"
           "refused with -c or off loopback: then set secret or secret_file.\n");
}

int cfg_flags_scan(int argc, char **argv, const char **file, struct cfg_pending *pend,
                   size_t *npend, enum cfg_action *action, char **cause)
{
    struct option *opts = build_options();
    int saved_opterr = opterr, ch, r = 0;

    optind = 0; /* GNU: reinitialise fully, the previous call may have left state */
    opterr = 0;
    while (r == 0 && (ch = getopt_long(argc, argv, "+:c:", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': *file = optarg; break;
        case CFG_OPT_CHECK: *action = CFG_CHECK; break;
        case CFG_OPT_VERSION:
            printf("herald %s\n", HERALD_VERSION);
            r = 1;
            break;
        case CFG_OPT_HELP:
            print_usage();
            r = 1;
            break;
        case ':':
            *cause = xasprintf("option '%s' requires an argument", argv[optind - 1]);
            r = -1;
            break;
        case '?':
            /* optopt names a bad short option; a bad long one is the last argv read */
            if (strncmp(argv[optind - 1], "--", 2) != 0 && optopt > ' ' && optopt < 0x7f)
                *cause = xasprintf("unknown option '-%c' (see --help)", optopt);
            else
                *cause = xasprintf("unknown option '%s' (see --help)", argv[optind - 1]);
            r = -1;
            break;
        default:
            pend[*npend].d = &cfg_defs[ch - CFG_OPT_DEF];
            pend[(*npend)++].value = optarg;
            break;
        }
    }
    if (r == 0 && optind < argc) {
        *cause = xasprintf("unexpected argument '%s' (see --help)", argv[optind]);
        r = -1;
    }
    opterr = saved_opterr;
    free(opts);
    return r;
}

int cfg_flags_apply(struct cfg_build *b, const struct cfg_pending *pend, size_t npend,
                    int site_only, char **cause)
{
    for (size_t k = 0; k < npend; k++) {
        const struct cfg_def *d = pend[k].d, *other;
        size_t i = (size_t)(d - cfg_defs);
        char *why;

        if (site_only && !(d->flags & CFG_SITE))
            continue;

        if ((d->flags & CFG_ONE_OF) && *pend[k].value != '\0' &&
            (other = cfg_one_of_conflict(b, d, CFG_SRC_FLAG)) != NULL) {
            *cause = xasprintf("--%s and --%s cannot be used together", other->flag, d->flag);
            return -1;
        }
        if (cfg_set_value(b, d, pend[k].value, &why) < 0) {
            *cause = xasprintf("--%s: %s", d->flag, why);
            free(why);
            return -1;
        }
        b->src[i] = CFG_SRC_FLAG;
    }
    return 0;
}
