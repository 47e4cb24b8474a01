/*
 * pub.c -- number, keep and hand out a publish (see pub.h).
 *
 * Owns:       the job's frames and history bodies it makes, until the job
 *             is submitted.
 * Called by:  API threads and worker threads.
 * Invariants: the history stripes a job touches are locked in increasing
 *             order and held until the job is in the workers' queues; no
 *             other lock is held on entry. Under them each user's
 *             connections are looked up in the directory after its offset
 *             is handed out: a connection that registered before is found
 *             (and gets the frame), one that registers after reads the
 *             stream's position under the same lock, after this offset, and
 *             skips it (worker.c), so none is missed or served twice.
 *
 * A message to many users is kept once, as one body shared by every user's
 * entry (hist.h). A user's frame, which carries that user's id, is made
 * here only for a user the directory shows online, once for all the
 * workers holding the user; an offline user costs an entry, no frame.
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

/* Submit job to the workers in mask; returns it unless detached. */
static struct cmd_job *pub_send(const struct cmd_hub *hub, struct cmd_job *job,
                                const struct dir_mask *mask, int detached)
{
    if (detached) {
        cmd_submit_detached(hub, job, mask);
        return NULL;
    }
    cmd_submit_to(hub, job, mask);
    return job;
}

struct cmd_job *pub_hand_out(const struct cmd_hub *hub, struct cmd_job *job, int detached)
{
    struct dir_mask mask;

    pub_mask(hub, job, &mask);
    return pub_send(hub, job, &mask, detached);
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

/* Number a message to users, each in its own stream, and make the online users' frames. */
static void pub_users(const struct cmd_hub *hub, int site, struct cmd_item *it,
                      struct hist_body *body, double now, struct dir_mask *mask)
{
    const char *name = hub->sites[site].name;
    char key[HIST_KEY_MAX], id[HIST_ID_MAX];
    struct dir_mask one;

    it->offsets = xmalloc(it->nusers * sizeof *it->offsets);
    it->frames = xcalloc(it->nusers, sizeof *it->frames);
    for (size_t u = 0; u < it->nusers; u++) {
        hist_key(key, sizeof key, name, 'u', it->users[u]);
        it->offsets[u] = hist_publish(hub->hist, site, key, body, now, id);
        memset(&one, 0, sizeof one);
        dir_lookup(&hub->sites[site].users, it->users[u], &one);
        if (dir_mask_empty(&one))
            continue;
        it->frames[u] = proto_text_frame(body->text, id);
        for (size_t w = 0; w < sizeof one.bits / sizeof one.bits[0]; w++)
            mask->bits[w] |= one.bits[w];
    }
}

/* Number and keep every message of the job, in place; stripes are locked. Fills mask. */
static void pub_number(const struct cmd_hub *hub, struct cmd_job *job, char **texts,
                       struct dir_mask *mask)
{
    struct site *site = &hub->sites[job->site];
    char key[HIST_KEY_MAX], id[HIST_ID_MAX];
    double now = hist_clock();

    memset(mask, 0, sizeof *mask);
    for (size_t i = 0; i < job->nitems; i++) {
        struct cmd_item *it = &job->items[i];
        struct hist_body *body;

        it->group = i;
        if (it->broadcast) {
            it->msg = proto_text_frame(texts[i], NULL);
            dir_mask_all(mask, hub->nqueues);
            continue;
        }
        /* The history keeps the text itself: no copy. */
        body = hist_body_new(texts[i], strlen(texts[i]));
        texts[i] = NULL;
        if (it->channel != NULL) {
            hist_key(key, sizeof key, site->name, 'c', it->channel);
            it->offset = hist_publish(hub->hist, job->site, key, body, now, id);
            it->msg = proto_text_frame(body->text, id);
            dir_lookup(&site->chans, it->channel, mask);
        } else {
            pub_users(hub, job->site, it, body, now, mask);
        }
        hist_body_unref(body);
    }
}

struct cmd_job *pub_submit(const struct cmd_hub *hub, struct cmd_job *job, char **texts,
                           int detached)
{
    unsigned char used[HIST_STRIPES] = {0};
    struct dir_mask mask;

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
    pub_number(hub, job, texts, &mask);
    job = pub_send(hub, job, &mask, detached);
    for (unsigned s = 0; s < HIST_STRIPES; s++)
        if (used[s])
            hist_unlock(hub->hist, s);
    return job;
}
