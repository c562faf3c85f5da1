/* dsp.c: the detector's life cycle and the per-frame pipeline:
 * sanitise -> hotspots (hotspot.c) -> tracking, hold (track.c) -> 10 Hz series,
 * release (release.c), breathing (breath.c) -> spasm (spasm.c) -> safety.
 * Also the DSP stage: the detector as a ring consumer on its own thread. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_internal.h"
#include "internal.h"
#include "spsc.h"

/* FFTW's planner is not thread-safe: serialise plan creation/destruction. */
static pthread_mutex_t planner_lock = PTHREAD_MUTEX_INITIALIZER;

/* The settings a person may change; the why of each default is in the
 * Parameters table of docs/detection.md. Everything else the detectors use
 * is a named constant at the top of its file, with its unit and why. */
void km_dsp_config_default(km_dsp_config *c)
{
    c->ball_mm = 63;
    c->min_ball_kpa = 30;
    c->hold_radius_mm = 10;
    c->hold_settle_s = 3;
    c->hold_interval_s = 10;
    c->move_away_mm = 25;
    c->max_hold_s = 90;
    c->max_force_n = 120;
    c->max_kpa = 280;
    c->spasm_threshold = 14;
    c->release_drop = 0.08;
    c->emit_hotspot_events = 1;
    c->fftw_measure = 1;
}

/* Every setting by name, with its bounds: the one table behind set, format
 * and parse (a recording stores the settings it was made with). */
static const struct {
    const char *name;
    size_t off;
    double lo, hi;
    int is_int;
} config_keys[] = {
    {"ball_mm", offsetof(km_dsp_config, ball_mm), 10, 300, 0},
    {"min_ball_kpa", offsetof(km_dsp_config, min_ball_kpa), 0.1, 10000, 0},
    {"hold_radius_mm", offsetof(km_dsp_config, hold_radius_mm), 0.5, 200, 0},
    {"hold_settle_s", offsetof(km_dsp_config, hold_settle_s), 0.5, 60, 0},
    {"hold_interval_s", offsetof(km_dsp_config, hold_interval_s), 1, 600, 0},
    {"move_away_mm", offsetof(km_dsp_config, move_away_mm), 1, 500, 0},
    {"max_hold_s", offsetof(km_dsp_config, max_hold_s), 5, 3600, 0},
    {"max_force_n", offsetof(km_dsp_config, max_force_n), 1, 5000, 0},
    {"max_kpa", offsetof(km_dsp_config, max_kpa), 1, 100000, 0},
    {"spasm_threshold", offsetof(km_dsp_config, spasm_threshold), 1, 1e6, 0},
    {"release_drop", offsetof(km_dsp_config, release_drop), 0.01, 0.5, 0},
    {"emit_hotspot_events", offsetof(km_dsp_config, emit_hotspot_events), 0, 1, 1},
    {"fftw_measure", offsetof(km_dsp_config, fftw_measure), 0, 1, 1},
};
#define N_CONFIG_KEYS (sizeof config_keys / sizeof config_keys[0])

static double config_get(const km_dsp_config *c, size_t i)
{
    const char *p = (const char *)c + config_keys[i].off;
    return config_keys[i].is_int ? (double)*(const int *)(const void *)p
                                 : *(const double *)(const void *)p;
}

int km_dsp_config_set(km_dsp_config *c, const char *key, const char *value, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        if (strcmp(config_keys[i].name, key))
            continue;
        char *end;
        double v = strtod(value, &end);
        if (end == value || *end || !isfinite(v) || v < config_keys[i].lo ||
            v > config_keys[i].hi) {
            km_errf_(err, errlen, "dsp: %s=%s out of range [%g, %g]", key, value,
                     config_keys[i].lo, config_keys[i].hi);
            return KM_EINVAL;
        }
        if (config_keys[i].is_int)
            *(int *)(void *)((char *)c + config_keys[i].off) = (int)v;
        else
            *(double *)(void *)((char *)c + config_keys[i].off) = v;
        return KM_OK;
    }
    km_errf_(err, errlen, "dsp: unknown parameter '%s'", key);
    return KM_EINVAL;
}

size_t km_dsp_config_format(const km_dsp_config *c, char *buf, size_t len)
{
    size_t n = 0;
    if (len)
        buf[0] = 0;
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        /* the shortest of %.15g / %.17g that reads back to the same double */
        double v = config_get(c, i);
        char num[32];
        snprintf(num, sizeof num, "%.15g", v);
        if (strtod(num, NULL) != v)
            snprintf(num, sizeof num, "%.17g", v);
        int w = snprintf(buf + (n < len ? n : len), n < len ? len - n : 0, "%s%s=%s",
                         i ? " " : "", config_keys[i].name, num);
        n += w > 0 ? (size_t)w : 0;
    }
    return n;
}

int km_dsp_config_parse(km_dsp_config *c, const char *text, char *err, size_t errlen)
{
    int first = KM_OK;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, " ");
        char item[128], e[256];
        int rc = KM_EINVAL;
        if (n >= sizeof item) {
            snprintf(e, sizeof e, "dsp: a setting of %zu characters is not KEY=VALUE", n);
        } else if (n) {
            memcpy(item, p, n);
            item[n] = 0;
            char *eq = strchr(item, '=');
            if (!eq) {
                snprintf(e, sizeof e, "dsp: '%s' is not KEY=VALUE", item);
            } else {
                *eq = 0;
                rc = km_dsp_config_set(c, item, eq + 1, e, sizeof e);
            }
        } else {
            rc = KM_OK; /* a second space */
        }
        if (rc && !first) {
            first = rc;
            km_errf_(err, errlen, "%s", e);
        }
        p += n + (p[n] == ' ');
    }
    return first;
}

int km_dsp_new(const km_dsp_config *c, uint16_t rows, uint16_t cols, float pitch_mm,
               double rate_hz, km_dsp **out, char *err, size_t errlen)
{
    *out = NULL;
    /* rate 0: not known; measured from the frames' times from the second on */
    if (!rows || !cols || !(pitch_mm > 0) || !(rate_hz >= 0) || !isfinite(rate_hz)) {
        km_errf_(err, errlen, "dsp: bad geometry %ux%u, pitch %g mm, rate %g Hz", rows, cols,
                 (double)pitch_mm, rate_hz);
        return KM_EINVAL;
    }
    km_dsp *d = calloc(1, sizeof *d);
    if (!d)
        return KM_ENOMEM;
    d->cfg = *c;
    d->rows = rows;
    d->cols = cols;
    d->pitch = pitch_mm;
    d->rate = rate_hz;
    d->cell_n = (double)pitch_mm * pitch_mm * 1e-3; /* kPa x mm^2 -> N */
    d->clean = calloc((size_t)rows * cols, sizeof(float));
    d->scratch = calloc((size_t)rows * cols, sizeof(float));
    d->primary = -1;
    d->s.cur = -1;
    d->over_since = d->under_since = NAN;
    d->stats.breath_bpm = NAN;
    int rc = (!d->clean || !d->scratch) ? KM_ENOMEM : KM_OK;
    pthread_mutex_lock(&planner_lock);
    if (!rc)
        rc = km_dsp_hotspot_init_(d, err, errlen);
    if (!rc && (rc = km_dsp_spasm_init_(d)))
        km_errf_(err, errlen, "dsp: cannot set up the spasm detector");
    if (!rc && (rc = km_dsp_breath_init_(d)))
        km_errf_(err, errlen, "dsp: cannot set up the breathing estimator");
    pthread_mutex_unlock(&planner_lock);
    if (rc) {
        km_dsp_free(d);
        return rc;
    }
    *out = d;
    return KM_OK;
}

void km_dsp_free(km_dsp *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&planner_lock);
    km_dsp_hotspot_free_(d);
    km_dsp_spasm_free_(d);
    km_dsp_breath_free_(d);
    pthread_mutex_unlock(&planner_lock);
    free(d->clean);
    free(d->scratch);
    free(d);
}

#define ANN_GAP_CELLS 1.0     /* the ring starts a cell outside the ball's blob ... */
#define ANN_OUTER_MM 100.0    /* ... and ends where a 63 mm ball stops lifting the body ... */
#define ANN_REF_BALL_MM 63.0  /* ... scaled with the ball */
#define ANN_MIN_WIDTH_CELLS 2.0 /* at least two cells wide on coarse mats */
#define SATURATED_SHARE 4     /* 1/4 of the cells at full scale: no shape left to analyse */

/* Body force in a ring around the primary hotspot: from just outside the
 * blob to 100 mm (the lifted zone of a 63 mm ball, scaled with the ball). */
static double annulus_force(const km_dsp *d)
{
    const track_t *tr = &d->tracks[d->primary];
    double r_in = d->r_blob + ANN_GAP_CELLS,
           r_out = fmax(r_in + ANN_MIN_WIDTH_CELLS,
                        ANN_OUTER_MM * d->cfg.ball_mm / ANN_REF_BALL_MM / d->pitch);
    int r0 = (int)floor(tr->y - r_out), r1 = (int)ceil(tr->y + r_out);
    int c0 = (int)floor(tr->x - r_out), c1 = (int)ceil(tr->x + r_out);
    double s = 0;
    for (int y = r0 < 0 ? 0 : r0; y <= r1 && y < d->rows; y++)
        for (int x = c0 < 0 ? 0 : c0; x <= c1 && x < d->cols; x++) {
            double d2 = (x - tr->x) * (x - tr->x) + (y - tr->y) * (y - tr->y);
            if (d2 >= r_in * r_in && d2 <= r_out * r_out)
                s += d->clean[y * d->cols + x];
        }
    return s * d->cell_n;
}

size_t km_dsp_process(km_dsp *d, const km_frame *f, km_event *out, size_t max)
{
    size_t n = 0;
    double t = f->device_ns * 1e-9;
    if (f->flags & (KM_FRAME_DEVICE_LOST | KM_FRAME_DEVICE_BACK)) {
        /* the mat went away or came back: say so in the event stream, in
         * order with the frames; a hold cannot survive not seeing the mat */
        int lost = (f->flags & KM_FRAME_DEVICE_LOST) != 0;
        if (n < max)
            out[n++] = (km_event){.type = lost ? KM_EV_DEVICE_LOST : KM_EV_DEVICE_BACK,
                                  .t_s = t, .x_mm = NAN, .y_mm = NAN, .force_n = NAN,
                                  .confidence = 1, .value = NAN, .detected_t_s = t};
        if (lost) {
            d->holding = 0;
            d->primary = -1;
            d->nhot = 0;
            d->s.gap_unknown = 1;
            d->stats.skipped++;
            d->stats.holding = 0;
            return n;
        }
    }
    if ((f->flags & KM_FRAME_CORRUPT) || f->rows != d->rows || f->cols != d->cols ||
        (d->have_t && t <= d->t) || !isfinite(t)) {
        d->stats.skipped++;
        return 0;
    }
    if (!d->have_t) {
        d->have_t = 1;
        d->t0 = t;
    }
    /* the rate as measured (gaps left out): every window in seconds uses
     * it, the nominal figure only until two frames have come */
    if (km_rate_meter_add_(&d->meter, f->device_ns)) {
        d->rate = km_rate_meter_hz_(&d->meter);
        d->stats.measured_rate_hz = d->rate;
    }
    d->t = t;
    /* sanitise: NaN/inf, negative and dead cells carry no load */
    uint32_t cells = km_frame_cells(f);
    double total = 0, peak = 0;
    uint32_t saturated = 0;
    for (uint32_t i = 0; i < cells; i++) {
        float p = f->kpa[i];
        saturated += (f->cell_flags[i] & KM_CELL_SATURATED) != 0;
        if (!isfinite(p)) {
            d->stats.nonfinite_cells++;
            p = 0;
        }
        if (p < 0 || (f->cell_flags[i] & KM_CELL_DEAD))
            p = 0;
        d->clean[i] = p;
        total += p;
        if (p > peak)
            peak = p;
    }
    d->frame_total_n = total * d->cell_n;
    d->frame_peak_kpa = peak;
    if (saturated * SATURATED_SHARE > cells) {
        /* a mat mostly at full scale shows no shape to analyse, only that
         * it is overloaded: warn, and let the tracks lapse */
        d->stats.saturated_frames++;
        d->primary = -1;
        d->nhot = 0;
        km_dsp_safety_(d, out, max, &n);
        return n;
    }
    km_dsp_find_peaks_(d);
    km_dsp_track_(d, out, max, &n);
    km_dsp_safety_(d, out, max, &n); /* first: the hold reads whether it is dangerous now */
    d->annulus_n = d->primary >= 0 ? annulus_force(d) : 0;
    int64_t bins_before = d->s.n;
    km_dsp_series_push_(d);
    if (d->s.n != bins_before)
        km_dsp_breath_(d, out, max, &n);
    km_dsp_hold_(d, out, max, &n);
    if (d->s.n != bins_before)
        km_dsp_release_(d, out, max, &n);
    km_dsp_spasm_(d, out, max, &n);
    d->stats.frames++;
    d->stats.holding = d->holding;
    d->stats.hold_s = d->holding ? d->t - d->hold_start : 0;
    return n;
}

size_t km_dsp_hotspots(const km_dsp *d, const km_hotspot **out)
{
    *out = d->hot;
    return d->nhot;
}

void km_dsp_stats_get(const km_dsp *d, km_dsp_stats *out) { *out = d->stats; }

void km_dsp_fft_size(const km_dsp *d, int *prows, int *pcols)
{
    *prows = d->pr;
    *pcols = d->pc;
}

/* ---- the stage ---------------------------------------------------------- */

#define STAGE_MARKS 64 /* marks waiting for their frame: a power of two (spsc.h) */
/* A mark waits for the first frame the host received at or after the key
 * press (pressing twice per frame is the most a person does), so that it
 * takes its place among the detector's events in the source's time. */
#define MARK_IDLE_NS 50000000 /* with no frame for this long, the last frame's clock */

typedef struct {
    int64_t at_ns; /* CLOCK_MONOTONIC of the key press */
    int mark;      /* enum km_mark */
} stage_mark;

struct km_dsp_stage {
    km_dsp *dsp;
    km_ring *ring;
    km_ring_consumer *consumer;
    km_event_queue *q[KM_DSP_STAGE_MAX_QUEUES]; /* this thread is each one's producer */
    size_t nq;
    km_frame *frame;
    pthread_t thread;
    _Atomic int stop, done;
    stage_mark marks[STAGE_MARKS]; /* the owner's thread -> this stage's thread */
    km_spsc_ markq;
    _Atomic uint64_t marks_lost;
    /* this stage's thread: the last frame's clocks, to place a mark */
    double last_t_s;
    int64_t last_host_ns;
    int have_frame;
};

static void fan_out(km_dsp_stage *s, const km_event *ev, size_t n)
{
    /* every listener has its own bounded queue, so a slow one (a stalled
     * printer) loses its own events, counted, and nobody else's */
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s->nq; k++)
            km_event_queue_push_spsc(s->q[k], &ev[i]);
}

/* The marks pressed up to `upto_ns` (all of them when `all`) as events,
 * timed on the source's clock by the last frame's pair of clocks. */
static void stage_marks(km_dsp_stage *s, int64_t upto_ns, int all)
{
    uint32_t first, n = km_spsc_consume_begin_(&s->markq, &first), used = 0;
    for (; used < n; used++) {
        const stage_mark *m = &s->marks[km_spsc_slot_(&s->markq, first + used)];
        if (!all && m->at_ns > upto_ns)
            break;
        double t = s->have_frame ? s->last_t_s + (double)(m->at_ns - s->last_host_ns) * 1e-9 : 0;
        km_event ev = {.type = KM_EV_MARK, .t_s = t, .x_mm = NAN, .y_mm = NAN,
                       .force_n = NAN, .confidence = 1, .value = m->mark,
                       .detected_t_s = s->have_frame ? fmax(t, s->last_t_s) : t};
        fan_out(s, &ev, 1);
    }
    if (used)
        km_spsc_consume_end_(&s->markq, used);
}

static void *stage_thread(void *arg)
{
    km_dsp_stage *s = arg;
    km_event ev[32];
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        int rc = km_ring_pop_wait_spmc(s->consumer, s->frame, NULL, 100000000);
        if (rc == KM_ECLOSED)
            break;
        if (rc != KM_OK) {
            if (s->have_frame) /* no frame (a mat lost): the marks go on the last clock */
                stage_marks(s, km_mono_ns_() - MARK_IDLE_NS, 0);
            continue;
        }
        size_t n = km_dsp_process(s->dsp, s->frame, ev, 32);
        fan_out(s, ev, n);
        s->last_t_s = s->frame->device_ns * 1e-9;
        s->last_host_ns = s->frame->host_ns;
        s->have_frame = 1;
        stage_marks(s, s->frame->host_ns, 0);
    }
    stage_marks(s, 0, 1);
    atomic_store(&s->done, 1);
    return NULL;
}

bool km_dsp_stage_mark_spsc(km_dsp_stage *s, int mark, int64_t at_ns)
{
    if (mark <= 0 || mark >= KM_MARK_COUNT)
        return false;
    int64_t slot = km_spsc_produce_begin_(&s->markq);
    if (slot < 0) {
        atomic_fetch_add_explicit(&s->marks_lost, 1, memory_order_relaxed);
        return false;
    }
    s->marks[slot] = (stage_mark){at_ns, mark};
    km_spsc_produce_end_(&s->markq);
    return true;
}

uint64_t km_dsp_stage_marks_lost(const km_dsp_stage *s)
{
    return atomic_load_explicit(&s->marks_lost, memory_order_relaxed);
}

int km_dsp_stage_start(km_dsp *d, km_ring *ring, km_event_queue *q, km_dsp_stage **out)
{
    return km_dsp_stage_start_fanout(d, ring, &q, 1, out);
}

int km_dsp_stage_start_fanout(km_dsp *d, km_ring *ring, km_event_queue *const *qs, size_t nq,
                              km_dsp_stage **out)
{
    *out = NULL;
    if (nq > KM_DSP_STAGE_MAX_QUEUES)
        return KM_EINVAL;
    km_dsp_stage *s = calloc(1, sizeof *s);
    if (!s)
        return KM_ENOMEM;
    s->dsp = d;
    s->ring = ring;
    for (size_t i = 0; i < nq; i++)
        s->q[i] = qs[i];
    s->nq = nq;
    km_spsc_init_(&s->markq, STAGE_MARKS);
    s->frame = km_frame_new((uint32_t)d->rows * d->cols);
    int rc = s->frame ? km_ring_consumer_add(ring, "dsp", &s->consumer) : KM_ENOMEM;
    if (!rc && pthread_create(&s->thread, NULL, stage_thread, s) != 0)
        rc = KM_ENOMEM;
    if (rc) {
        if (s->consumer)
            km_ring_consumer_remove(s->consumer);
        km_frame_free(s->frame);
        free(s);
        return rc;
    }
    *out = s;
    return KM_OK;
}

bool km_dsp_stage_done(const km_dsp_stage *s) { return atomic_load(&s->done) != 0; }

uint64_t km_dsp_stage_lost(const km_dsp_stage *s)
{
    km_ring_stats st;
    km_ring_consumer_stats(s->consumer, &st);
    return st.lost;
}

void km_dsp_stage_stop(km_dsp_stage *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    /* marks made while the thread was ending: given out now (after the
     * join this thread is the queues' one producer) */
    stage_marks(s, 0, 1);
    km_ring_consumer_remove(s->consumer);
    km_frame_free(s->frame);
    free(s);
}
