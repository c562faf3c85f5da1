/* stage.c: the recorder as a ring consumer thread. It owns the recorder
 * (only this thread writes the file); events arrive through an SPSC queue.
 * Touches: the ring (as its consumer), the recording. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#include "knotmat/record.h"

struct km_record_stage {
    km_recorder *rec;
    km_ring_consumer *c;
    km_event_queue *events;
    km_frame *frame;
    pthread_t thread;
    _Atomic int stop, done, error;
};

static void drain_events(km_record_stage *s)
{
    km_event e;
    while (km_event_queue_pop_spsc(s->events, &e))
        if (!atomic_load(&s->error) && km_recorder_add_event(s->rec, &e))
            atomic_store(&s->error, KM_EIO);
}

/* Pop frames (gaps become gap blocks), hand events to the recorder, and
 * sync on time even when no frame comes. After the ring is closed and
 * drained the thread keeps taking events until km_record_stage_stop(), so
 * the detector's last events (decided while it drains) still reach the
 * file. */
static void *run(void *arg)
{
    km_record_stage *s = arg;
    uint64_t last = 0;
    int have_last = 0, drained = 0;
    while (!atomic_load(&s->stop)) {
        drain_events(s);
        int64_t now = km_mono_ns_(), wait = 100000000;
        int64_t due = km_recorder_deadline_ns(s->rec);
        if (due != INT64_MAX && due - now < wait)
            wait = due > now ? due - now : 0;
        if (drained) {
            if (!atomic_load(&s->error) && km_recorder_poll(s->rec))
                atomic_store(&s->error, KM_EIO);
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
            continue;
        }
        uint64_t lost = 0;
        int rc = km_ring_pop_wait_spmc(s->c, s->frame, &lost, wait);
        if (rc == KM_ECLOSED) {
            drained = 1;
            atomic_store(&s->done, 1);
            continue;
        }
        if (atomic_load(&s->error))
            continue; /* after a write error the session goes on without writing */
        int err = KM_OK;
        if (rc == KM_ETIMEOUT) {
            err = km_recorder_poll(s->rec);
        } else if (rc == KM_OK) {
            if (have_last && s->frame->seq > last + 1) {
                uint64_t missing = s->frame->seq - last - 1;
                err = km_recorder_add_gap(s->rec, last + 1, missing,
                                          lost >= missing ? KM_GAP_RING : KM_GAP_DEVICE);
            }
            last = s->frame->seq;
            have_last = 1;
            if (!err)
                err = km_recorder_add_frame(s->rec, s->frame);
        }
        if (err)
            atomic_store(&s->error, err);
    }
    drain_events(s);
    atomic_store(&s->done, 1);
    return NULL;
}

int km_record_stage_start(km_recorder *rec, km_ring *ring, km_record_stage **out)
{
    *out = NULL;
    km_record_stage *s = calloc(1, sizeof *s);
    if (!s)
        return KM_ENOMEM;
    s->rec = rec;
    s->events = km_event_queue_new(1024);
    s->frame = km_frame_new(km_ring_max_cells(ring));
    int rc = (!s->events || !s->frame) ? KM_ENOMEM : km_ring_consumer_add(ring, "recorder", &s->c);
    if (!rc && pthread_create(&s->thread, NULL, run, s) != 0)
        rc = KM_ENOMEM;
    if (rc) {
        if (s->c)
            km_ring_consumer_remove(s->c);
        km_event_queue_free(s->events);
        km_frame_free(s->frame);
        free(s);
        return rc;
    }
    *out = s;
    return KM_OK;
}

km_event_queue *km_record_stage_queue(km_record_stage *s) { return s->events; }

bool km_record_stage_add_event(km_record_stage *s, const km_event *e)
{
    return km_event_queue_push_spsc(s->events, e);
}

int km_record_stage_error(const km_record_stage *s) { return atomic_load(&s->error); }

uint64_t km_record_stage_lost(const km_record_stage *s)
{
    km_ring_stats st;
    km_ring_consumer_stats(s->c, &st);
    return st.lost;
}
bool km_record_stage_done(const km_record_stage *s) { return atomic_load(&s->done) != 0; }

void km_record_stage_stop(km_record_stage *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    km_ring_consumer_remove(s->c);
    km_event_queue_free(s->events);
    km_frame_free(s->frame);
    free(s);
}
