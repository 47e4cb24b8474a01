/*
 * hist_file.c -- history across a restart: written on a clean shutdown,
 * read back at start, so clients that reconnect to the new process still
 * recover what they missed (same epoch, offsets carry on).
 *
 * Owns:       the file at history_file while it is written or read.
 * Called by:  main.c only, before the workers start (load) and after they
 *             have stopped (save): no other thread touches the history then.
 * Invariants: the file is written to a temporary name, synced and renamed,
 *             so it is whole or absent; it is removed as soon as it is
 *             read, so a process that later dies without saving can never
 *             hand its epoch and offsets out twice. Mode 0600: it holds
 *             message payloads.
 */
#include "hist.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "msg.h"
#include "ws.h"
#include "xmalloc.h"

/* 2: keys carry their site ("<site>/u:<id>"); a version 1 file would match no stream. */
#define HIST_FILE_VERSION 2

/* One stream as [key, floor, last, [[offset, age, payload], ...]]. */
static json_t *hist_file_stream(const struct hist_stream *s, double now)
{
    json_t *entries = json_array();

    for (const struct hist_entry *e = s->head; e != NULL; e = e->next) {
        size_t len;
        const uint8_t *p = msg_payload(e->msg, &len);

        json_array_append_new(entries, json_pack("[I, f, s#]", (json_int_t)e->offset,
                                                 now - e->time, (const char *)p, len));
    }
    return json_pack("[s, I, I, o]", s->key, (json_int_t)s->floor, (json_int_t)s->last,
                     entries);
}

int hist_save(struct hist *h, const char *path)
{
    json_t *streams = json_array(), *doc;
    double now = hist_clock();
    char *tmp = xasprintf("%s.tmp", path);
    int fd, r = -1;
    FILE *f;

    for (int i = 0; i < HIST_STRIPES; i++)
        for (struct hist_stream *s = h->table[i]; s != NULL; s = s->hh.next)
            json_array_append_new(streams, hist_file_stream(s, now));
    doc = json_pack("{s:i, s:s, s:I, s:I, s:o}", "version", HIST_FILE_VERSION, "epoch",
                    h->epoch, "next", (json_int_t)atomic_load(&h->next_offset), "saved",
                    (json_int_t)time(NULL), "streams", streams);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f != NULL && json_dumpf(doc, f, JSON_COMPACT) == 0 && fflush(f) == 0 &&
        fsync(fd) == 0)
        r = 0;
    if (f != NULL)
        fclose(f);
    else if (fd >= 0)
        close(fd);
    if (r == 0 && rename(tmp, path) != 0)
        r = -1;
    if (r != 0) {
        log_msg(LOG_ERROR, "hist", "cannot write %s: %s; history is lost", path,
                strerror(errno));
        unlink(tmp);
    } else {
        log_msg(LOG_INFO, "hist", "history saved to %s (%zu messages)", path,
                atomic_load(&h->messages));
    }
    json_decref(doc);
    free(tmp);
    return r;
}

/* Restore one stream's entries that are still young enough. */
static void hist_file_entries(struct hist *h, struct hist_stream *s, json_t *entries,
                              double now, double away)
{
    size_t i;
    json_t *e;

    json_array_foreach(entries, i, e) {
        json_int_t off = json_integer_value(json_array_get(e, 0));
        double age = json_number_value(json_array_get(e, 1)) + away;
        json_t *p = json_array_get(e, 2);
        struct msg *m;

        if (!json_is_string(p) || off <= 0 || age > h->ttl)
            continue;
        m = msg_new(WS_OP_TEXT, json_string_value(p), json_string_length(p));
        hist_push(h, s, (uint64_t)off, m);
        msg_unref(m);
        /* hist_push stamps now; keep the entry's real age. */
        s->tail->time = now - age;
    }
}

/* Restore the streams of a parsed file. */
static void hist_file_streams(struct hist *h, json_t *streams, double away)
{
    double now = hist_clock();
    size_t i;
    json_t *st;

    json_array_foreach(streams, i, st) {
        const char *key = json_string_value(json_array_get(st, 0));
        struct hist_stream *s;

        if (key == NULL)
            continue;
        s = hist_begin(h, key);
        s->floor = (uint64_t)json_integer_value(json_array_get(st, 1));
        s->last = (uint64_t)json_integer_value(json_array_get(st, 2));
        s->touched = now;
        hist_file_entries(h, s, json_array_get(st, 3), now, away);
        hist_end(h, s);
    }
}

int hist_load(struct hist *h, const char *path)
{
    json_error_t err;
    json_t *doc = json_load_file(path, 0, &err);
    const char *epoch;
    json_int_t next, saved;

    if (doc == NULL) {
        if (access(path, F_OK) == 0)
            log_msg(LOG_WARN, "hist", "%s: %s (line %d); starting with no history", path,
                    err.text, err.line);
        unlink(path);
        return -1;
    }
    unlink(path);
    epoch = json_string_value(json_object_get(doc, "epoch"));
    next = json_integer_value(json_object_get(doc, "next"));
    saved = json_integer_value(json_object_get(doc, "saved"));
    if (json_integer_value(json_object_get(doc, "version")) != HIST_FILE_VERSION ||
        epoch == NULL || strlen(epoch) != 8 || next < 0) {
        log_msg(LOG_WARN, "hist", "%s is not a history file of this version; ignored", path);
        json_decref(doc);
        return -1;
    }
    memcpy(h->epoch, epoch, 9);
    atomic_store(&h->next_offset, (uint64_t)next);
    hist_file_streams(h, json_object_get(doc, "streams"),
                      saved > 0 && time(NULL) > saved ? (double)(time(NULL) - saved) : 0);
    log_msg(LOG_INFO, "hist", "history read from %s: epoch %s, %zu messages", path, h->epoch,
            atomic_load(&h->messages));
    json_decref(doc);
    return 0;
}
