/*
 * cfg_file.c -- the INI file of -c FILE: inih parses it, through a line
 * reader of our own, and each "key = value" of [herald] is stored at once,
 * while each [site NAME] section is kept as read, for cfg.c to build the
 * site on top of the [herald] values once the whole file is known.
 *
 * Owns:       the reader's fields of struct cfg_build (fp, buf, lineno,
 *             indented, err) while the file is read, and b->sites, the
 *             [site NAME] sections as read; cfg.c frees them with the build.
 * Called by:  cfg.c (cfg_load), once per load, after the defaults and
 *             before the flags.
 * Invariants: main thread only, within cfg_load. Only the first
 *             error is kept (note_error), or inih's own when its line comes
 *             earlier, so the message names the first line that is wrong.
 * Errors:     cfg_file_load returns -1 with *cause set to one malloc'd line,
 *             "FILE:LINE: key: what is wrong". Secrets are never echoed.
 * Spec notes: the file is read through a line reader of our own, so that
 *             (1) errors carry the line of the setting that caused them,
 *             (2) leading blanks are stripped, which defeats inih's
 *             multi-line values: an indented key is a key, not the
 *             continuation of the previous value, and (3) an empty
 *             [section] of the wrong name is still reported.
 * Tests:      tests/unit/test_cfg.c, tests/fuzz/fuzz_cfg.c.
 */
#include "cfg_build.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "log.h"
#include "xmalloc.h"

#define CFG_SECTION "herald"
#define CFG_SITE_SECTION "site"

/* Record the first error at line lineno: "FILE:LINE: message". */
static void __attribute__((format(printf, 3, 4)))
note_error(struct cfg_build *b, int lineno, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (b->err != NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        log_fatal("cfg", "out of memory formatting an error");
    va_end(ap);
    b->err = xasprintf("%s:%d: %s", b->file, lineno, msg);
    b->err_line = lineno;
    free(msg);
}

/*
 * Is the section text sec[0..len) "site NAME"? Returns -1 when it is not a
 * site section, 0 when it is one with a bad or missing name, else the
 * name's length with *name pointing at it.
 */
static int site_section(const char *sec, size_t len, const char **name)
{
    size_t k = strlen(CFG_SITE_SECTION), n;

    if (len < k || strncmp(sec, CFG_SITE_SECTION, k) != 0 ||
        (len > k && sec[k] != ' ' && sec[k] != '\t'))
        return -1;
    while (k < len && (sec[k] == ' ' || sec[k] == '\t'))
        k++;
    while (len > k && (sec[len - 1] == ' ' || sec[len - 1] == '\t'))
        len--;
    *name = sec + k;
    n = len - k;
    for (size_t i = 0; i < n; i++)
        if (strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", sec[k + i]) == NULL)
            return 0;
    return n <= CFG_SITE_NAME_MAX ? (int)n : 0;
}

/* Start a [site NAME] section read at the current line. */
static void add_site(struct cfg_build *b, const char *name, size_t n)
{
    struct cfg_site_src *site;

    for (size_t i = 0; i < b->nsites; i++)
        if (strlen(b->sites[i].name) == n && memcmp(b->sites[i].name, name, n) == 0) {
            note_error(b, b->lineno, "[site %.*s] is already defined on line %d", (int)n, name,
                       b->sites[i].line);
            return;
        }
    b->sites = xrealloc(b->sites, (b->nsites + 1) * sizeof *b->sites);
    site = &b->sites[b->nsites++];
    memset(site, 0, sizeof *site);
    memcpy(site->name, name, n);
    site->line = b->lineno;
}

/* A "[name]" line: [herald], or a [site NAME] to start; inih itself reports a missing ']'. */
static void check_section_line(struct cfg_build *b, const char *s)
{
    const char *end = strchr(s + 1, ']'), *name;
    size_t len;
    int n;

    if (end == NULL)
        return;
    len = (size_t)(end - s - 1);
    if (len == strlen(CFG_SECTION) && strncmp(s + 1, CFG_SECTION, len) == 0)
        return;
    n = site_section(s + 1, len, &name);
    if (n < 0)
        note_error(b, b->lineno, "unknown section [%.*s] (only [%s] and [%s NAME] are read)",
                   (int)len, s + 1, CFG_SECTION, CFG_SITE_SECTION);
    else if (n == 0)
        note_error(b, b->lineno, "[%.*s]: a site's name is 1 to %d of a-z, 0-9, _ and -", (int)len,
                   s + 1, CFG_SITE_NAME_MAX);
    else
        add_site(b, name, (size_t)n);
}

/*
 * inih's reader: hand over one whole line, without a BOM or leading blanks,
 * counting lines so the handler knows where it is. An overlong line is
 * reported here and replaced by a blank one, so inih never splits it; an
 * overlong comment is simply dropped.
 */
static char *read_line(char *str, int num, void *stream)
{
    struct cfg_build *b = stream;
    ssize_t got = getline(&b->buf, &b->bufsz, b->fp);
    char *s = b->buf;
    size_t len;

    if (got < 0)
        return NULL;
    b->lineno++;
    if (b->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    b->indented = *s == ' ' || *s == '\t';
    s += strspn(s, " \t");
    len = strlen(s);
    if (len >= (size_t)num && (*s == ';' || *s == '#')) {
        s = "\n";
        len = 1;
    } else if (len >= (size_t)num) {
        note_error(b, b->lineno, "line longer than %d bytes", num - 2);
        s = "\n";
        len = 1;
    } else if (*s == '[') {
        check_section_line(b, s);
    }
    memcpy(str, s, len + 1);
    return str;
}

/*
 * A key of the [site NAME] section read last: checked for being a per-site
 * key, not repeated, not fighting another CFG_ONE_OF; its value is parsed
 * when the site is built (build_site in cfg.c), with this line in any error.
 */
static int on_site_key(struct cfg_build *b, const char *name, const char *value)
{
    struct cfg_site_src *site = &b->sites[b->nsites - 1];
    const struct cfg_def *d = cfg_def_find(name);
    struct cfg_pair *p;

    if (d == NULL) {
        note_error(b, b->lineno, "unknown key '%s'%s", name,
                   b->indented ? " (a value cannot continue on the next line)" : "");
        return 0;
    }
    if (!(d->flags & CFG_SITE)) {
        note_error(b, b->lineno, "%s is global: set it under [%s]", name, CFG_SECTION);
        return 0;
    }
    for (size_t i = 0; i < site->npairs; i++) {
        p = &site->pairs[i];
        if (p->d == d) {
            note_error(b, b->lineno, "repeated key '%s' (first set on line %d)", name, p->line);
            return 0;
        }
        if ((d->flags & CFG_ONE_OF) && (p->d->flags & CFG_ONE_OF) && *value != '\0' &&
            *p->value != '\0') {
            note_error(b, b->lineno, "%s: %s is already set on line %d; use one of them", name,
                       p->d->name, p->line);
            return 0;
        }
    }
    site->pairs = xrealloc(site->pairs, (site->npairs + 1) * sizeof *site->pairs);
    p = &site->pairs[site->npairs++];
    p->d = d;
    p->value = xstrdup(value);
    p->line = b->lineno;
    return 1;
}

/* inih's handler: one "key = value" line of the file. Returns 1, or 0 on error. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_build *b = user;
    const struct cfg_def *d, *other;
    const char *site;
    char *why;
    size_t i;

    if (b->err != NULL)
        return 0;
    if (strcmp(section, CFG_SECTION) != 0) {
        if (b->nsites > 0 && site_section(section, strlen(section), &site) > 0)
            return on_site_key(b, name, value);
        if (*section == '\0')
            note_error(b, b->lineno, "'%s' is outside a section; put it under [%s]", name,
                       CFG_SECTION);
        else
            note_error(b, b->lineno, "unknown section [%s]", section);
        return 0;
    }
    d = cfg_def_find(name);
    if (d == NULL) {
        note_error(b, b->lineno, "unknown key '%s'%s", name,
                   b->indented ? " (a value cannot continue on the next line)" : "");
        return 0;
    }
    i = (size_t)(d - cfg_defs);
    if (b->src[i] == CFG_SRC_FILE) {
        note_error(b, b->lineno, "repeated key '%s' (first set on line %d)", name, b->line[i]);
        return 0;
    }
    if ((d->flags & CFG_ONE_OF) && *value != '\0' &&
        (other = cfg_one_of_conflict(b, d, CFG_SRC_FILE)) != NULL) {
        note_error(b, b->lineno, "%s: %s is already set on line %d; use one of them", name,
                   other->name, b->line[other - cfg_defs]);
        return 0;
    }
    if (cfg_set_value(b, d, value, &why) < 0) {
        note_error(b, b->lineno, "%s: %s", name, why);
        free(why);
        return 0;
    }
    b->src[i] = CFG_SRC_FILE;
    b->line[i] = b->lineno;
    return 1;
}

int cfg_file_load(struct cfg_build *b, char **cause)
{
    int r;

    b->fp = fopen(b->file, "re");
    if (b->fp == NULL) {
        *cause = xasprintf("cannot open config file %s: %s", b->file, strerror(errno));
        return -1;
    }
    r = ini_parse_stream(read_line, b, on_key, b);
    if (ferror(b->fp)) {
        *cause = xasprintf("cannot read config file %s: %s", b->file, strerror(errno));
        return -1;
    }
    if (r > 0 && (b->err == NULL || r < b->err_line)) {
        free(b->err);
        b->err = NULL;
        note_error(b, r, "expected 'key = value', '[%s]', '[%s NAME]' or a comment", CFG_SECTION,
                   CFG_SITE_SECTION);
    } else if (r < 0 && b->err == NULL) {
        note_error(b, b->lineno, "the INI parser failed (%d)", r);
    }
    if (b->err != NULL) {
        *cause = b->err;
        b->err = NULL;
        return -1;
    }
    return 0;
}
