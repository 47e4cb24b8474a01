/*
 * pub.c -- number, keep and hand out a publish (see pub.h).
 *
 * Owns:       the numbered job it builds, until it is submitted.
 * Called by:  API threads and worker threads.
 * Invariants: the history stripes a job touches are locked in increasing
 *             order and held until the job is in the workers' queues; no
 *             other lock is held on entry.
 */
#include "pub.h"

#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "dir.h"
#include "hist.h"
#include "msg.h"
#include "proto.h"
#include "site.h"
#include "xmalloc.h"

/* The workers holding any target of the job (in the job's site). */
static void pub_mask(const struct cmd_hub *hub, const struct cmd_job *job, struct dir_mask *mask)
{
    struct site *site = &hub->sites[job->site];

    memset(mask, 0, sizeof *mask);
    for (size_t i = 0; i < job->nitems; i++) {
        const struct cmd_item *it = &job->items[i];

        if (it->broadcast) {
            dir_mask_all(mask, hub->nqueues);
            return;
        }
        if (it->channel != NULL)
            dir_lookup(&site->chans, it->channel, mask);
        for (size_t u = 0; u < it->nusers; u++)
            dir_lookup(&site->users, it->users[u], mask);
    }
}

struct cmd_job *pub_hand_out(const struct cmd_hub *hub, struct cmd_job *job, int detached)
{
    struct dir_mask mask;

    pub_mask(hub, job, &mask);
    if (detached) {
        cmd_submit_detached(hub, job, &mask);
        return NULL;
    }
    cmd_submit_to(hub, job, &mask);
    return job;
}

/* Mark the stripes of every stream the job publishes to. */
static void pub_stripes(const struct cmd_hub *hub, const struct cmd_job *job,
                        unsigned char used[HIST_STRIPES])
{
    const char *site = hub->sites[job->site].name;
    char key[HIST_KEY_MAX];

    for (size_t i = 0; i < job->nitems; i++) {
        const struct cmd_item *it = &job->items[i];

        if (it->channel != NULL)
            used[hist_stripe_of(hist_key(key, sizeof key, site, 'c', it->channel))] = 1;
        for (size_t u = 0; u < it->nusers; u++)
            used[hist_stripe_of(hist_key(key, sizeof key, site, 'u', it->users[u]))] = 1;
    }
}

/* Number one message for stream key and keep it; returns its frame. */
static struct msg *pub_keep(struct hist *h, const char *key, const char *text, uint64_t *off)
{
    struct hist_stream *s = hist_get(h, key);
    char id[HIST_ID_MAX];
    struct msg *m;

    *off = hist_next(h, s, id);
    m = proto_text_frame(text, id);
    hist_push(h, s, *off, m);
    return m;
}

/* The items a numbered job needs: one per user, one per channel or broadcast. */
static size_t pub_count(const struct cmd_job *job)
{
    size_t n = 0;

    for (size_t i = 0; i < job->nitems; i++)
        n += job->items[i].nusers > 0 ? job->items[i].nusers : 1;
    return n;
}

/* The numbered copy of job: every message to a stream gets its id. Stripes are locked. */
static struct cmd_job *pub_number(const struct cmd_hub *hub, const struct cmd_job *job,
                                  char *const *texts)
{
    struct cmd_job *nj = cmd_job_new(CMD_PUBLISH, hub->nqueues, pub_count(job));
    const char *site = hub->sites[job->site].name;
    char key[HIST_KEY_MAX];
    size_t k = 0;

    nj->site = job->site;
    for (size_t i = 0; i < job->nitems; i++) {
        const struct cmd_item *it = &job->items[i];
        struct cmd_item *out = &nj->items[k];

        if (it->broadcast) {
            out->msg = proto_text_frame(texts[i], NULL);
            out->broadcast = 1;
            out->group = i;
            k++;
        } else if (it->channel != NULL) {
            out->msg = pub_keep(hub->hist, hist_key(key, sizeof key, site, 'c', it->channel),
                                texts[i], &out->offset);
            out->channel = xstrdup(it->channel);
            out->skip_conn = it->skip_conn;
            out->group = i;
            k++;
        }
        for (size_t u = 0; u < it->nusers; u++, k++) {
            out = &nj->items[k];
            out->msg = pub_keep(hub->hist, hist_key(key, sizeof key, site, 'u', it->users[u]),
                                texts[i], &out->offset);
            out->users = xcalloc(1, sizeof *out->users);
            out->users[0] = xstrdup(it->users[u]);
            out->nusers = 1;
            out->group = i;
        }
    }
    return nj;
}

struct cmd_job *pub_submit(const struct cmd_hub *hub, struct cmd_job *job, char *const *texts,
                           int detached)
{
    unsigned char used[HIST_STRIPES] = {0};
    struct cmd_job *nj;

    if (!hist_on(hub->hist)) {
        /* No ids: one frame per message, as it is. */
        for (size_t i = 0; i < job->nitems; i++) {
            job->items[i].msg = proto_text_frame(texts[i], NULL);
            job->items[i].group = i;
        }
        return pub_hand_out(hub, job, detached);
    }
    pub_stripes(hub, job, used);
    for (unsigned s = 0; s < HIST_STRIPES; s++)
        if (used[s])
            hist_lock(hub->hist, s);
    nj = pub_number(hub, job, texts);
    cmd_job_free(job);
    nj = pub_hand_out(hub, nj, detached);
    for (unsigned s = 0; s < HIST_STRIPES; s++)
        if (used[s])
            hist_unlock(hub->hist, s);
    return nj;
}
