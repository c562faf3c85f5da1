/* session.c: the live pipeline (knotmat/session.h): source -> ring -> DSP
 * stage -> one queue per listener, and the recorder as a second ring
 * consumer. The owner's thread only reads queues; nothing here waits on
 * anything a listener does. Touches: the source, the recording file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "knotmat/session.h"

#define DEFAULT_SLOTS 256
#define SLOT_BUDGET_BYTES ((size_t)256 << 20) /* a 1024 x 1024 mat gets fewer slots */

struct km_session {
    km_session_config cfg;
    char record_path[1024];
    km_source *src;
    km_source_info info;
    km_ring *ring;
    km_dsp *dsp;
    km_dsp_stage *stage;
    km_recorder *rec;
    km_record_stage *rstage;
    km_event_queue *queues[KM_DSP_STAGE_MAX_QUEUES];
    char names[KM_DSP_STAGE_MAX_QUEUES][24];
    size_t nlisteners;
    km_ring_consumer *watchers[KM_RING_MAX_CONSUMERS];
    size_t nwatchers;
    int started, stopped, finished;
    /* kept for the stats once the parts are gone */
    uint64_t dsp_lost, recorded, recorder_lost, recorder_events_lost;
    uint64_t marks, marks_lost; /* the owner's thread */
    int record_error;
};

void km_session_config_default(km_session_config *c)
{
    memset(c, 0, sizeof *c);
    c->source = "sim://";
    km_dsp_config_default(&c->dsp);
    km_recorder_options_default(&c->record);
}

static uint32_t slots_for(uint32_t cells, uint32_t wanted)
{
    size_t per = km_frame_block_bytes(cells) + sizeof(km_frame);
    size_t fit = SLOT_BUDGET_BYTES / per;
    if (wanted > fit)
        wanted = fit < 8 ? 8 : (uint32_t)fit;
    return wanted;
}

int km_session_open(const km_session_config *c, km_session **out, char *err, size_t errlen)
{
    *out = NULL;
    km_session *s = calloc(1, sizeof *s);
    if (!s)
        return KM_ENOMEM;
    s->cfg = *c;
    int rc = km_source_open(c->source, &s->src, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    km_source_describe(s->src, &s->info);
    km_source_set_notify(s->src, c->note, c->note_user);
    /* a source that can wait (a file or simulator at max speed) waits for
     * the slowest of the detectors and the recorder; a live one never does */
    enum km_ring_mode mode = s->info.speed == 0 ? KM_RING_BACKPRESSURE : KM_RING_LOSSY;
    uint32_t cells = km_source_max_cells(s->src);
    s->ring = km_ring_new(slots_for(cells, c->ring_slots ? c->ring_slots : DEFAULT_SLOTS), cells,
                          mode);
    if (!s->ring) {
        km_errf_(err, errlen, "out of memory for the ring of frames");
        km_session_free(s);
        return KM_ENOMEM;
    }
    /* the stated rate, or 0 when none: the detectors measure it from the
     * frames' times either way */
    double rate = s->info.rate_hz > 0 ? s->info.rate_hz : 0;
    if ((rc = km_dsp_new(&c->dsp, s->info.rows, s->info.cols, s->info.pitch_mm, rate, &s->dsp,
                         err, errlen))) {
        km_session_free(s);
        return rc;
    }
    if (c->record_path) {
        snprintf(s->record_path, sizeof s->record_path, "%s", c->record_path);
        km_record_meta meta = c->meta;
        meta.rows = s->info.rows;
        meta.cols = s->info.cols;
        meta.pitch_mm = s->info.pitch_mm;
        meta.rate_hz = s->info.rate_hz;
        if (!meta.units[0])
            snprintf(meta.units, sizeof meta.units, "kPa");
        if (!meta.device_kind[0])
            snprintf(meta.device_kind, sizeof meta.device_kind, "%s", s->info.kind);
        if (!meta.vid_pid[0])
            snprintf(meta.vid_pid, sizeof meta.vid_pid, "%s", s->info.vid_pid);
        if (!meta.serial[0])
            snprintf(meta.serial, sizeof meta.serial, "%s", s->info.serial);
        if (!meta.calibration[0])
            snprintf(meta.calibration, sizeof meta.calibration, "%s", s->info.calibration);
        /* the settings the recorded events were decided with: a report
         * tells this session, not a re-run with defaults */
        km_dsp_config_format(&c->dsp, meta.settings, sizeof meta.settings);
        km_recorder_options ro = c->record;
        km_uri u;
        const char *own[] = {NULL, NULL};
        if (!ro.inputs && !km_uri_parse(c->source, &u, NULL, 0) && !strcmp(u.scheme, "file")) {
            own[0] = u.path; /* never record over the file being replayed */
            ro.inputs = own;
        }
        if ((rc = km_recorder_open(c->record_path, &meta, &ro, &s->rec, err, errlen))) {
            km_session_free(s);
            return rc;
        }
    }
    *out = s;
    return KM_OK;
}

const km_source_info *km_session_source_info(const km_session *s) { return &s->info; }
uint32_t km_session_max_cells(const km_session *s) { return km_source_max_cells(s->src); }

km_event_queue *km_session_listen(km_session *s, const char *name, uint32_t capacity)
{
    /* one queue of the fan-out stays for the recorder */
    if (s->started || s->nlisteners >= KM_DSP_STAGE_MAX_QUEUES - 1)
        return NULL;
    km_event_queue *q = km_event_queue_new(capacity);
    if (!q)
        return NULL;
    snprintf(s->names[s->nlisteners], sizeof s->names[0], "%s", name ? name : "listener");
    s->queues[s->nlisteners++] = q;
    return q;
}

int km_session_watch_frames(km_session *s, const char *name, km_ring_consumer **out)
{
    if (s->started || s->nwatchers >= KM_RING_MAX_CONSUMERS)
        return KM_EBUSY;
    int rc = km_ring_consumer_add_lossy(s->ring, name, out);
    if (!rc)
        s->watchers[s->nwatchers++] = *out;
    return rc;
}

int km_session_start(km_session *s, char *err, size_t errlen)
{
    if (s->started)
        return KM_EBUSY;
    km_event_queue *qs[KM_DSP_STAGE_MAX_QUEUES];
    size_t nq = 0;
    for (size_t i = 0; i < s->nlisteners; i++)
        qs[nq++] = s->queues[i];
    int rc;
    if (s->rec) {
        if ((rc = km_record_stage_start(s->rec, s->ring, &s->rstage))) {
            km_errf_(err, errlen, "cannot start the recorder: %s", km_strerror(rc));
            return rc;
        }
        qs[nq++] = km_record_stage_queue(s->rstage);
    }
    if ((rc = km_dsp_stage_start_fanout(s->dsp, s->ring, qs, nq, &s->stage))) {
        km_errf_(err, errlen, "cannot start the detectors: %s", km_strerror(rc));
        return rc;
    }
    if ((rc = km_source_start(s->src, s->ring))) {
        km_errf_(err, errlen, "cannot start the source: %s", km_strerror(rc));
        return rc;
    }
    s->started = 1;
    return KM_OK;
}

bool km_session_mark(km_session *s, int mark)
{
    if (!s->stage || mark <= 0 || mark >= KM_MARK_COUNT) {
        s->marks_lost += mark > 0 && mark < KM_MARK_COUNT;
        return false;
    }
    bool ok = km_dsp_stage_mark_spsc(s->stage, mark, km_mono_ns_());
    if (ok)
        s->marks++;
    else
        s->marks_lost++;
    return ok;
}

bool km_session_source_ended(const km_session *s)
{
    return s->started && !km_source_running(s->src);
}

void km_session_stop(km_session *s)
{
    if (!s->started || s->stopped)
        return;
    km_source_stop(s->src); /* closes the ring: the consumers drain it */
    s->stopped = 1;
}

bool km_session_drained(const km_session *s)
{
    return !s->started || (s->stage && km_dsp_stage_done(s->stage));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

int km_session_finish(km_session *s, char *err, size_t errlen)
{
    if (s->finished)
        return KM_OK;
    km_session_stop(s);
    if (s->stage) {
        while (!km_dsp_stage_done(s->stage))
            sleep_ms(2);
        s->dsp_lost = km_dsp_stage_lost(s->stage);
        km_dsp_stage_stop(s->stage); /* every event is in the queues now */
        s->stage = NULL;
    }
    int rc = KM_OK;
    if (s->rstage) {
        while (!km_record_stage_done(s->rstage))
            sleep_ms(2);
        s->recorder_lost = km_record_stage_lost(s->rstage);
        s->recorder_events_lost = km_event_queue_overruns(km_record_stage_queue(s->rstage));
        s->record_error = km_record_stage_error(s->rstage);
        km_record_stage_stop(s->rstage); /* writes the queued events */
        s->rstage = NULL;
    }
    if (s->rec) {
        km_recorder_flush(s->rec); /* so that the count is what the file holds */
        s->recorded = km_recorder_frames_written(s->rec);
        rc = km_recorder_close(s->rec, err, errlen);
        s->rec = NULL;
        if (!rc && s->record_error) {
            km_errf_(err, errlen, "%s: the recording stopped early (%s)", s->record_path,
                     km_strerror(s->record_error));
            rc = s->record_error;
        }
        if (rc && !s->record_error)
            s->record_error = rc;
    }
    s->finished = 1;
    return rc;
}

void km_session_stats_get(const km_session *s, km_session_stats *out)
{
    memset(out, 0, sizeof *out);
    out->frames = s->ring ? km_ring_pushed(s->ring) : 0;
    if (s->src)
        km_source_stats_get(s->src, &out->source);
    out->dsp_lost = s->stage ? km_dsp_stage_lost(s->stage) : s->dsp_lost;
    out->recording = s->cfg.record_path != NULL;
    if (s->rstage) {
        out->recorder_lost = km_record_stage_lost(s->rstage);
        out->recorder_events_lost = km_event_queue_overruns(km_record_stage_queue(s->rstage));
        out->record_error = km_record_stage_error(s->rstage);
    } else {
        out->recorder_lost = s->recorder_lost;
        out->recorder_events_lost = s->recorder_events_lost;
        out->record_error = s->record_error;
    }
    out->recorded = s->rec ? km_recorder_frames_written(s->rec) : s->recorded;
    out->marks = s->marks;
    out->marks_lost = s->marks_lost;
    out->nlisteners = s->nlisteners;
    for (size_t i = 0; i < s->nlisteners; i++) {
        snprintf(out->listeners[i].name, sizeof out->listeners[i].name, "%s", s->names[i]);
        out->listeners[i].overruns = km_event_queue_overruns(s->queues[i]);
    }
}

void km_session_free(km_session *s)
{
    if (!s)
        return;
    if (s->started)
        km_session_finish(s, NULL, 0);
    km_dsp_stage_stop(s->stage);
    km_record_stage_stop(s->rstage);
    km_recorder_close(s->rec, NULL, 0);
    for (size_t i = 0; i < s->nwatchers; i++)
        km_ring_consumer_remove(s->watchers[i]);
    km_source_close(s->src);
    km_dsp_free(s->dsp);
    for (size_t i = 0; i < s->nlisteners; i++)
        km_event_queue_free(s->queues[i]);
    km_ring_free(s->ring);
    free(s);
}
