/*
 * log.h -- one line per event on stderr: time, level, subsystem, message.
 *
 * Owns:       the current level (set once at startup, read by all threads).
 * Called by:  every module.
 * Invariants: each line goes out in one write(2), so lines from different
 *             threads never interleave. Never pass tokens or secrets.
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#define LOG_DEBUG 0
#define LOG_INFO 1
#define LOG_WARN 2
#define LOG_ERROR 3

/* Set the lowest level that is written. */
void log_set_level(int level);

/* Parse "debug", "info", "warn" or "error"; -1 otherwise. */
int log_level_parse(const char *name);

/* Write one line: "2026-11-21T23:58:51.123Z info tag: message". */
void log_msg(int level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Log at error level and exit(1): for impossible states only. */
void log_fatal(const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#endif
