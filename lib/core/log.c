/*
 * log.c -- one line per event on stderr, with time, level and subsystem;
 * when stderr is systemd's journal, a priority prefix ("<6>") instead of
 * the time and level, which journald records itself.
 *
 * Owns:       the level threshold (written once at startup, then read by
 *             every thread, hence atomic).
 * Called by:  every module, on any thread.
 * Invariants: a line is formatted into a stack buffer and written with one
 *             write(2), so lines from different threads never interleave.
 *             Callers never pass tokens or secrets.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024

static atomic_int log_level = LOG_INFO;

static const char *const log_names[] = {"debug", "info", "warn", "error"};
static const char *const log_journal_prio[] = {"<7>", "<6>", "<4>", "<3>"};

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static int log_to_journal; /* stderr is systemd's journal: it adds time and level */

/* Is stderr the stream systemd named in JOURNAL_STREAM ("DEV:INODE")? */
static void log_detect_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    log_to_journal = js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
                     fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
                     (unsigned long long)st.st_ino == ino;
}

void log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, log_names[i]) == 0)
            return i;
    return -1;
}

/* Format and write one line; the message is cut to fit, never split. */
static void log_write(int level, const char *tag, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int r;

    pthread_once(&log_once, log_detect_journal);
    if (log_to_journal) {
        n = 0;
        r = snprintf(line, sizeof line, "%s%s: ", log_journal_prio[level], tag);
    } else {
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        r = snprintf(line + n, sizeof line - n, ".%03ldZ %s %s: ", ts.tv_nsec / 1000000,
                     log_names[level], tag);
    }
    if (r > 0)
        n += (size_t)r;
    r = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (r > 0)
        n += (size_t)r;
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    /* A failed write to stderr has nowhere to be reported. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

void log_msg(int level, const char *tag, const char *fmt, ...)
{
    va_list ap;

    if (level < atomic_load(&log_level))
        return;
    va_start(ap, fmt);
    log_write(level, tag, fmt, ap);
    va_end(ap);
}

void log_fatal(const char *tag, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_write(LOG_ERROR, tag, fmt, ap);
    va_end(ap);
    exit(1);
}
