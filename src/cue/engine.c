/* engine.c: the cue engine. Renders every cue at start-up, then plays them
 * through libsoundio, or renders the session's cue track into a WAV file.
 *
 * Real-time contract of write_callback (libsoundio's audio thread): it only
 * pops the SPSC command queue, copies pre-rendered samples into the stream
 * and updates atomic counters. No malloc, free, locks, printf, sleep or I/O.
 * Up to VOICES cues sound together (mixed); more wait in a small pending
 * list owned by the callback (queued, never torn).
 * Backends: explicit, and "auto" tries PulseAudio, JACK, ALSA in that order
 * and says which one it got; it never falls back to Dummy (libsoundio's
 * soundio_connect() would, silently). A missing server is a warning and the
 * session goes on silent; a dying server is noticed in km_cue_engine_poll. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <soundio/soundio.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cue_internal.h"
#include "internal.h"
#include "knotmat/outfile.h"
#include "spsc.h"

#define VOICES 8
#define QUEUE 256 /* commands to the audio callback: a power of two (spsc.h) */
#define PENDING 32
#define LAT_RING 256
/* Clips: one per event type, then the start-up words, the time words of
 * the dose schedule, and one slot for words made during the session (the
 * shut-down summary). cue_cmd.type is a clip index. */
#define CLIP_READY KM_EV_TYPE_COUNT
#define CLIP_TIME0 (CLIP_READY + 1)
#define CLIP_SAY (CLIP_TIME0 + CUE_MAX_TIMES)
#define CLIP_PLAN0 (CLIP_SAY + 1) /* "first: left glute", "next: right glute", ... */
#define CLIP_PLAN_END (CLIP_PLAN0 + KM_CUE_MAX_PLAN)
#define CLIP_MORE (CLIP_PLAN_END + 1) /* pressure guidance */
#define CLIP_LESS (CLIP_MORE + 1)
#define CLIP_BREATHE (CLIP_LESS + 1) /* paced breathing */
#define CLIP_MARK0 (CLIP_BREATHE + 1) /* "twitch noted", "ouch noted", "release noted" */
#define NCLIPS (CLIP_MARK0 + KM_MARK_COUNT - 1)
_Static_assert(NCLIPS <= 256, "cue_cmd.type is a uint8_t clip index");

typedef struct {
    uint8_t type;
    int64_t t_ns; /* CLOCK_MONOTONIC when it is to sound: queued, or later */
} cue_cmd;

enum backend_kind { BK_NONE, BK_SOUNDIO, BK_WAV };

struct km_cue_engine {
    km_cue_options opt;
    char voice[64], wav_path[1024];
    km_outfile *wav;      /* wav: the file, published at km_cue_engine_free() */
    cue_scheme scheme;
    int rate;
    float *samples[NCLIPS];
    size_t nsamples[NCLIPS];
    double last_hold_s;   /* km_cue_play's thread: the hold's time so far */
    char plan[KM_CUE_MAX_PLAN][64]; /* the spots of --plan, in order */
    int nplan, plan_at;   /* km_cue_play's thread: the next spot to say */
    int last_clip;        /* km_cue_play's thread: the clip it queued last */
    int64_t busy_until_ns; /* km_cue_play's thread: when what it queued has sounded */
    _Atomic int say_busy; /* CLIP_SAY queued or sounding: not to be replaced */
    double freqs[KM_EV_TYPE_COUNT][5];
    enum backend_kind kind;
    const char *backend_name;
    /* libsoundio */
    struct SoundIo *sio;
    struct SoundIoDevice *dev;
    struct SoundIoOutStream *os;
    /* command queue: main thread -> audio callback */
    cue_cmd cmd[QUEUE];
    km_spsc_ cmdq; /* its index pair (spsc.h): QUEUE slots */
    /* owned by the audio callback */
    _Alignas(64) struct { int type, damaged; size_t pos; } voice_state[VOICES];
    cue_cmd pending[PENDING];
    int npending;
    int rt_tried;                /* the callback asked for real-time priority */
    uint64_t frames_out;         /* written since the stream (re)started */
    /* counters and the latency record, written by the callback */
    _Atomic uint64_t queued, started, dropped, underflows, errors, damaged;
    _Atomic int dead;
    _Atomic int underflowed;     /* set by underflow_callback, taken by write_callback */
    _Atomic int rt_state;        /* 0 not yet known, 1 granted, -errno refused, 2 not asked */
    _Atomic uint32_t lat_us[LAT_RING];
    _Atomic uint32_t lat_n;
    int warned;
    enum SoundIoBackend backend; /* the one that worked, to reconnect to */
    int disconnected;            /* sio has no backend (a reconnect failed) */
    int64_t next_retry_ns;       /* after the server went away */
    /* wav */
    float *track;
    size_t track_len, track_cap;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void km_cue_options_default(km_cue_options *o)
{
    memset(o, 0, sizeof *o);
    o->render_silent = true;
    o->audio = "auto";
    o->voice = "en";
    o->volume = 0.7;
    o->scheme_file = NULL;
    o->latency_s = KM_CUE_LATENCY_DEFAULT_S;
    o->sample_rate = 48000;
    o->realtime = true;
}

/* ---- the audio callback ------------------------------------------------- */

static void start_voices(km_cue_engine *e, int64_t now, double latency_s)
{
    uint32_t first, ready = km_spsc_consume_begin_(&e->cmdq, &first), took = 0;
    while (took < ready && e->npending < PENDING)
        e->pending[e->npending++] = e->cmd[km_spsc_slot_(&e->cmdq, first + took++)];
    km_spsc_consume_end_(&e->cmdq, took);
    int k = 0;
    for (int i = 0; i < e->npending; i++) {
        int v = 0;
        while (v < VOICES && e->voice_state[v].type)
            v++;
        if (v == VOICES || e->pending[i].t_ns > now) { /* all busy, or not yet: wait */
            e->pending[k++] = e->pending[i];
            continue;
        }
        e->voice_state[v].type = e->pending[i].type;
        e->voice_state[v].damaged = 0;
        e->voice_state[v].pos = 0;
        atomic_fetch_add_explicit(&e->started, 1, memory_order_relaxed);
        /* event -> first sample at the server: waited so far plus what is
         * already buffered ahead of it */
        double ms = (now - e->pending[i].t_ns) * 1e-6 + latency_s * 1e3;
        uint32_t n = atomic_load_explicit(&e->lat_n, memory_order_relaxed);
        atomic_store_explicit(&e->lat_us[n % LAT_RING], (uint32_t)(ms * 1000), memory_order_relaxed);
        atomic_store_explicit(&e->lat_n, n + 1, memory_order_release);
    }
    e->npending = k;
}

/* Once, from the audio thread itself (libsoundio owns it): round-robin
 * real-time priority, below PulseAudio's own (5), above every ordinary
 * process. One system call at the first callback, never again. */
static void ask_realtime(km_cue_engine *e)
{
    e->rt_tried = 1;
    if (!e->opt.realtime) {
        atomic_store_explicit(&e->rt_state, 2, memory_order_release);
        return;
    }
    struct sched_param sp = {.sched_priority = KM_CUE_RT_PRIORITY};
    int rc = pthread_setschedparam(pthread_self(), SCHED_RR, &sp);
    atomic_store_explicit(&e->rt_state, rc ? -rc : 1, memory_order_release);
}

/* The server ran dry since the last callback: every cue still sounding has
 * a hole in it. Counted once per cue. */
static void count_damage(km_cue_engine *e, const struct SoundIoOutStream *os)
{
    if (!atomic_exchange_explicit(&e->underflowed, 0, memory_order_acq_rel))
        return;
    /* a stream starts playing before its buffer is full and says it ran dry:
     * nothing written was lost then (its first two buffers) */
    if (e->frames_out < (uint64_t)(2 * os->software_latency * os->sample_rate))
        return;
    for (int v = 0; v < VOICES; v++)
        if (e->voice_state[v].type && !e->voice_state[v].damaged) {
            e->voice_state[v].damaged = 1;
            atomic_fetch_add_explicit(&e->damaged, 1, memory_order_relaxed);
        }
}

static void write_callback(struct SoundIoOutStream *os, int frame_count_min, int frame_count_max)
{
    km_cue_engine *e = os->userdata;
    if (!e->rt_tried)
        ask_realtime(e);
    count_damage(e, os); /* before new voices start: they were not playing */
    /* what is buffered ahead of the next sample in this stream: libsoundio
     * asks the server; the stream holds at most its software latency, and
     * anything the server adds is the device's (a null sink, having no clock,
     * may claim hundreds of ms while its monitor hears the sound at once) */
    double latency = 0;
    soundio_outstream_get_latency(os, &latency);
    if (latency > os->software_latency)
        latency = os->software_latency;
    start_voices(e, mono_ns(), latency);
    /* fill what the server asks for: its buffer is one software latency
     * long, so this keeps it full without adding latency */
    int frames_left = frame_count_max > 0 ? frame_count_max : frame_count_min;
    if (frames_left <= 0)
        return;
    const float vol = (float)e->scheme.volume;
    while (frames_left > 0) {
        struct SoundIoChannelArea *areas;
        int n = frames_left;
        if (soundio_outstream_begin_write(os, &areas, &n) || n <= 0) {
            atomic_fetch_add_explicit(&e->errors, 1, memory_order_relaxed);
            return;
        }
        for (int f = 0; f < n; f++) {
            float s = 0;
            for (int v = 0; v < VOICES; v++) {
                int type = e->voice_state[v].type;
                if (!type)
                    continue;
                s += e->samples[type][e->voice_state[v].pos++];
                if (e->voice_state[v].pos >= e->nsamples[type]) {
                    e->voice_state[v].type = 0;
                    if (type == CLIP_SAY)
                        atomic_store_explicit(&e->say_busy, 0, memory_order_release);
                }
            }
            s *= vol;
            if (s > 0.98f) s = 0.98f;   /* a safety clip; cues are scaled */
            if (s < -0.98f) s = -0.98f; /* well below it */
            for (int ch = 0; ch < os->layout.channel_count; ch++)
                *(float *)(void *)(areas[ch].ptr + (size_t)areas[ch].step * f) = s;
        }
        if (soundio_outstream_end_write(os)) {
            atomic_fetch_add_explicit(&e->errors, 1, memory_order_relaxed);
            return;
        }
        frames_left -= n;
        e->frames_out += (uint64_t)n;
    }
}

static void underflow_callback(struct SoundIoOutStream *os)
{
    km_cue_engine *e = os->userdata;
    atomic_fetch_add_explicit(&e->underflows, 1, memory_order_relaxed);
    atomic_store_explicit(&e->underflowed, 1, memory_order_release);
}

static void error_callback(struct SoundIoOutStream *os, int err)
{
    km_cue_engine *e = os->userdata;
    (void)err;
    atomic_fetch_add_explicit(&e->errors, 1, memory_order_relaxed);
    atomic_store(&e->dead, 1);
}

static void on_disconnect(struct SoundIo *sio, int err)
{
    km_cue_engine *e = sio->userdata;
    (void)err;
    atomic_store(&e->dead, 1);
}

static void quiet_jack(const char *msg) { (void)msg; }

/* ---- set-up ------------------------------------------------------------- */

/* The words as loud as the tones they follow (a words-only cue: as a plain
 * tone at its gain would be), peaks under the ceiling the mix allows. */
static void level_words(const km_cue_engine *e, const cue_def *c, const float *tones, size_t nt,
                        float *words, size_t nw)
{
    double target = km_cue_active_rms_(tones, nt, e->rate);
    if (!(target > 0)) {
        cue_def ref = {.seg = {{1000, 1000, 300}}, .nseg = 1, .gain = c->gain};
        size_t nr;
        float *r = km_cue_render_tones_(&ref, e->rate, &nr);
        target = km_cue_active_rms_(r, nr, e->rate);
        free(r);
    }
    km_cue_level_words_(words, nw, e->rate, target, CUE_WORDS_CEILING);
}

/* Words alone into clip k, as loud as a plain tone at `gain`. */
static int render_words(km_cue_engine *e, int k, const char *text, double gain)
{
    float *w;
    size_t n;
    char err[256];
    int rc = km_cue_speak_(e->voice, text, e->rate, &w, &n, err, sizeof err);
    if (rc)
        return rc == KM_ENOMEM ? rc : KM_OK; /* said once already by render_all */
    cue_def plain = {.gain = gain};
    level_words(e, &plain, NULL, 0, w, n);
    e->samples[k] = w;
    e->nsamples[k] = n;
    return KM_OK;
}

/* The start-up words and the time of the dose schedule in words. */
static int render_spoken(km_cue_engine *e)
{
    if (!strcmp(e->voice, "none"))
        return KM_OK;
    int rc = render_words(e, CLIP_READY, e->scheme.ready, CUE_SAY_GAIN);
    for (int k = 0; k < e->nplan && !rc; k++) {
        char text[80];
        snprintf(text, sizeof text, "%s: %s", k ? "next" : "first", e->plan[k]);
        rc = render_words(e, CLIP_PLAN0 + k, text, CUE_SAY_GAIN);
    }
    if (e->nplan && !rc)
        rc = render_words(e, CLIP_PLAN_END, "that was the last spot", CUE_SAY_GAIN);
    if (!rc)
        rc = render_words(e, CLIP_MORE, "a little more weight", CUE_SAY_GAIN);
    if (!rc)
        rc = render_words(e, CLIP_LESS, "a little less weight", CUE_SAY_GAIN);
    if (!rc)
        rc = render_words(e, CLIP_BREATHE, "breathe out, let it sink", CUE_SAY_GAIN);
    for (int k = 0; k < e->scheme.ntimes && !rc; k++) {
        int t = (int)e->scheme.times[k];
        char text[64];
        if (t % 60 || t < 60)
            snprintf(text, sizeof text, "%d seconds", t);
        else
            snprintf(text, sizeof text, "%d minute%s", t / 60, t == 60 ? "" : "s");
        rc = render_words(e, CLIP_TIME0 + k, text, e->scheme.cue[KM_EV_HOLD].gain);
    }
    return rc;
}

/* Cue `c`'s tones, then `words` (as loud as the tones), into clip k.
 * *speech_warned: the speech failed (said once in `warning`). */
static int render_cue(km_cue_engine *e, int k, const cue_def *c, const char *words_text,
                      int *speech_warned, char *warning, size_t warnlen)
{
    size_t nt = 0, nw = 0;
    float *tones = c->nseg ? km_cue_render_tones_(c, e->rate, &nt) : NULL;
    float *words = NULL;
    if (words_text[0] && strcmp(e->voice, "none") && !*speech_warned) {
        char err[256];
        if (km_cue_speak_(e->voice, words_text, e->rate, &words, &nw, err, sizeof err)) {
            if (warning && !warning[0])
                km_errf_(warning, warnlen, "spoken words off: %s", err);
            *speech_warned = 1;
        } else {
            level_words(e, c, tones, nt, words, nw);
        }
    }
    size_t gap = (nt && nw) ? (size_t)(0.06 * e->rate) : 0;
    size_t n = nt + gap + nw;
    float *all = n ? calloc(n, sizeof(float)) : NULL;
    if (n && !all) {
        free(tones);
        free(words);
        return KM_ENOMEM;
    }
    if (nt)
        memcpy(all, tones, nt * sizeof(float));
    if (nw)
        memcpy(all + nt + gap, words, nw * sizeof(float));
    free(tones);
    free(words);
    e->samples[k] = all;
    e->nsamples[k] = n;
    return KM_OK;
}

/* The person's marks: the mark cue's tones, then what was marked ("twitch
 * noted"); "ouch" also asks to ease off (a protective cue, never more). */
static int render_marks(km_cue_engine *e, int *speech_warned, char *warning, size_t warnlen)
{
    const cue_def *c = &e->scheme.cue[KM_EV_MARK];
    int rc = KM_OK;
    for (int m = 1; m < KM_MARK_COUNT && !rc; m++) {
        char text[160] = "";
        if (c->words[0])
            snprintf(text, sizeof text, "%s %s%s", km_mark_name(m), c->words,
                     m == KM_MARK_OUCH ? ", ease off" : "");
        rc = render_cue(e, CLIP_MARK0 + m - 1, c, text, speech_warned, warning, warnlen);
    }
    return rc;
}

static int render_all(km_cue_engine *e, char *warning, size_t warnlen)
{
    int speech_warned = 0, rc = KM_OK;
    for (int t = 1; t < KM_EV_TYPE_COUNT && !rc; t++) {
        const cue_def *c = &e->scheme.cue[t];
        int k = 0;
        for (int s = 0; s < c->nseg && k < 4; s++)
            if (c->seg[s].f0 > 0) {
                int dup = 0;
                for (int j = 0; j < k; j++)
                    dup |= e->freqs[t][j] == c->seg[s].f0;
                if (!dup)
                    e->freqs[t][k++] = c->seg[s].f0;
            }
        rc = render_cue(e, t, c, c->words, &speech_warned, warning, warnlen);
    }
    if (!rc)
        rc = render_marks(e, &speech_warned, warning, warnlen);
    if (rc)
        return rc;
    return speech_warned ? KM_OK : render_spoken(e);
}

/* Connect one backend and open an output stream on its default device. */
static int try_backend(km_cue_engine *e, enum SoundIoBackend b, char *why, size_t whylen)
{
    if (!soundio_have_backend(b)) {
        km_errf_(why, whylen, "%s: not compiled into libsoundio", soundio_backend_name(b));
        return -1;
    }
    int rc = soundio_connect_backend(e->sio, b);
    if (rc) {
        km_errf_(why, whylen, "%s: %s", soundio_backend_name(b), soundio_strerror(rc));
        return -1;
    }
    soundio_flush_events(e->sio);
    int idx = soundio_default_output_device_index(e->sio);
    if (idx < 0) {
        km_errf_(why, whylen, "%s: no output device", soundio_backend_name(b));
        soundio_disconnect(e->sio);
        return -1;
    }
    e->dev = soundio_get_output_device(e->sio, idx);
    if (!e->dev || e->dev->probe_error) {
        km_errf_(why, whylen, "%s: cannot probe the output device", soundio_backend_name(b));
        if (e->dev)
            soundio_device_unref(e->dev);
        e->dev = NULL;
        soundio_disconnect(e->sio);
        return -1;
    }
    return 0;
}

static int open_stream(km_cue_engine *e, char *why, size_t whylen)
{
    if (!soundio_device_supports_format(e->dev, SoundIoFormatFloat32NE)) {
        km_errf_(why, whylen, "the output device does not take 32-bit float samples");
        return -1;
    }
    if (!soundio_device_supports_sample_rate(e->dev, e->rate))
        e->rate = soundio_device_nearest_sample_rate(e->dev, e->rate);
    e->os = soundio_outstream_create(e->dev);
    if (!e->os)
        return -1;
    e->os->format = SoundIoFormatFloat32NE;
    e->os->sample_rate = e->rate;
    e->os->software_latency = e->opt.latency_s;
    e->os->write_callback = write_callback;
    e->os->underflow_callback = underflow_callback;
    e->os->error_callback = error_callback;
    e->os->userdata = e;
    e->os->name = "knotmat cues";
    int rc = soundio_outstream_open(e->os);
    if (rc) {
        km_errf_(why, whylen, "cannot open the output stream: %s", soundio_strerror(rc));
        return -1;
    }
    return 0;
}

/* The first of `order` that plays, with its stream open; none: a warning,
 * the engine stays silent. KM_ENOMEM only when libsoundio cannot start. */
static int connect_sound(km_cue_engine *e, const enum SoundIoBackend *order, int norder,
                         char *warning, size_t warnlen)
{
    char why[3][200] = {"", "", ""};
    {
        e->sio = soundio_create();
        if (!e->sio)
            return KM_ENOMEM;
        e->sio->app_name = "knotmat";
        e->sio->userdata = e;
        e->sio->on_backend_disconnect = on_disconnect;
        e->sio->jack_error_callback = quiet_jack;
        e->sio->jack_info_callback = quiet_jack;
        for (int i = 0; i < norder && e->kind == BK_NONE; i++)
            if (!try_backend(e, order[i], why[i], sizeof why[i])) {
                e->kind = BK_SOUNDIO;
                e->backend = order[i];
                e->backend_name = soundio_backend_name(order[i]);
            }
        if (e->kind == BK_NONE) {
            km_errf_(warning, warnlen, "no sound (%s%s%s%s%s); cues are off, the session goes on",
                     why[0], norder > 1 ? "; " : "", norder > 1 ? why[1] : "",
                     norder > 2 ? "; " : "", norder > 2 ? why[2] : "");
            e->backend_name = "none";
        }
    }
    if (e->kind == BK_SOUNDIO) {
        char w[200] = "";
        if (open_stream(e, w, sizeof w)) {
            km_errf_(warning, warnlen, "no sound (%s: %s); cues are off, the session goes on",
                     e->backend_name, w);
            if (e->os)
                soundio_outstream_destroy(e->os);
            e->os = NULL;
            e->kind = BK_NONE;
            e->backend_name = "none";
        }
    }
    return KM_OK;
}

/* "left glute, right glute" (commas or new lines) into e->plan */
static int parse_plan(km_cue_engine *e, const char *plan, char *err, size_t errlen)
{
    const char *p = plan;
    while (*p) {
        size_t n = strcspn(p, ",\n");
        while (n && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t' || p[m - 1] == '\r'))
            m--;
        if (m) {
            if (e->nplan == KM_CUE_MAX_PLAN || m >= sizeof e->plan[0]) {
                km_errf_(err, errlen, "a plan is at most %d spots of at most %zu characters",
                         KM_CUE_MAX_PLAN, sizeof e->plan[0] - 1);
                return -1;
            }
            memcpy(e->plan[e->nplan], p, m);
            e->plan[e->nplan++][m] = 0;
        }
        p += n;
        if (*p)
            p++;
    }
    if (!e->nplan) {
        km_errf_(err, errlen, "the plan names no spot (e.g. \"left glute, right glute\")");
        return -1;
    }
    return 0;
}

int km_cue_engine_new(const km_cue_options *o, km_cue_engine **out, char *err, size_t errlen,
                      char *warning, size_t warnlen)
{
    *out = NULL;
    if (warning && warnlen)
        warning[0] = 0;
    if (!(o->volume >= 0 && o->volume <= 1)) {
        km_errf_(err, errlen, "volume must be between 0 and 1");
        return KM_EINVAL;
    }
    if (!(o->latency_s >= KM_CUE_LATENCY_MIN_S && o->latency_s <= KM_CUE_LATENCY_MAX_S)) {
        km_errf_(err, errlen, "audio latency must be between %.0f and %.0f ms",
                 KM_CUE_LATENCY_MIN_S * 1e3, KM_CUE_LATENCY_MAX_S * 1e3);
        return KM_EINVAL;
    }
    km_cue_engine *e = calloc(1, sizeof *e);
    if (!e)
        return KM_ENOMEM;
    if (o->plan && parse_plan(e, o->plan, err, errlen)) {
        free(e);
        return KM_EINVAL;
    }
    km_spsc_init_(&e->cmdq, QUEUE);
    e->opt = *o;
    snprintf(e->voice, sizeof e->voice, "%s", o->voice ? o->voice : "none");
    e->rate = o->sample_rate > 0 ? o->sample_rate : 48000;
    km_cue_scheme_default_(&e->scheme);
    int rc = KM_OK;
    if (o->scheme_file && (rc = km_cue_scheme_load_(&e->scheme, o->scheme_file, err, errlen))) {
        free(e);
        return rc;
    }
    e->scheme.volume *= o->volume / 0.7; /* --volume scales the scheme's level */
    if (e->scheme.volume > 1)
        e->scheme.volume = 1;
    const char *a = o->audio ? o->audio : "auto";
    static const struct { const char *name; enum SoundIoBackend b; } named[] = {
        {"pulseaudio", SoundIoBackendPulseAudio}, {"alsa", SoundIoBackendAlsa},
        {"jack", SoundIoBackendJack}, {"dummy", SoundIoBackendDummy}};
    enum SoundIoBackend order[3];
    int norder = 0;
    if (!strncmp(a, "wav:", 4) && a[4]) {
        e->kind = BK_WAV;
        e->backend_name = "wav";
        snprintf(e->wav_path, sizeof e->wav_path, "%s", a + 4);
        /* created now (fail now, not after the session), in place at the end */
        int orc = km_outfile_open(e->wav_path, o->overwrite ? KM_OUT_FORCE : 0, NULL, &e->wav,
                                  err, errlen);
        if (orc) {
            free(e);
            return orc;
        }
    } else if (!strcmp(a, "none")) {
        e->kind = BK_NONE;
        e->backend_name = "none";
    } else if (!strcmp(a, "auto")) {
        order[norder++] = SoundIoBackendPulseAudio;
        order[norder++] = SoundIoBackendJack;
        order[norder++] = SoundIoBackendAlsa;
    } else {
        for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
            if (!strcmp(a, named[i].name))
                order[norder++] = named[i].b;
        if (!norder) {
            km_errf_(err, errlen, "--audio '%s': use auto, pulseaudio, alsa, jack, dummy, none "
                     "or wav:FILE", a);
            free(e);
            return KM_EINVAL;
        }
    }
    if (norder && connect_sound(e, order, norder, warning, warnlen)) {
        free(e);
        return KM_ENOMEM;
    }
    /* render at the stream's rate, before the stream starts pulling */
    char w2[256] = "";
    if ((e->kind != BK_NONE || o->render_silent) && (rc = render_all(e, w2, sizeof w2))) {
        km_outfile_abort(e->wav); /* no session: no file */
        e->wav = NULL;
        km_cue_engine_free(e, NULL, 0);
        return rc;
    }
    if (w2[0] && warning && !warning[0])
        km_errf_(warning, warnlen, "%s", w2);
    if (e->kind == BK_SOUNDIO) {
        int src = soundio_outstream_start(e->os);
        if (src) {
            km_errf_(warning, warnlen, "no sound (%s: cannot start: %s); cues are off",
                     e->backend_name, soundio_strerror(src));
            soundio_outstream_destroy(e->os);
            e->os = NULL;
            e->kind = BK_NONE;
            e->backend_name = "none";
        }
    }
    *out = e;
    return KM_OK;
}

const char *km_cue_engine_backend(const km_cue_engine *e) { return e->backend_name; }

static int write_wav(km_outfile *of, const float *x, size_t n, int rate, char *err,
                     size_t errlen)
{
    FILE *fp = km_outfile_stream_(of);
    if (!fp) {
        km_outfile_abort(of);
        return KM_ENOMEM;
    }
    uint32_t data = (uint32_t)(n * 2), riff = 36 + data, fmt_len = 16, srate = (uint32_t)rate,
             brate = srate * 2;
    uint16_t pcm = 1, ch = 1, align = 2, bits = 16;
    fwrite("RIFF", 1, 4, fp);
    fwrite(&riff, 4, 1, fp);
    fwrite("WAVEfmt ", 1, 8, fp);
    fwrite(&fmt_len, 4, 1, fp);
    fwrite(&pcm, 2, 1, fp);
    fwrite(&ch, 2, 1, fp);
    fwrite(&srate, 4, 1, fp);
    fwrite(&brate, 4, 1, fp);
    fwrite(&align, 2, 1, fp);
    fwrite(&bits, 2, 1, fp);
    fwrite("data", 1, 4, fp);
    fwrite(&data, 4, 1, fp);
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 1 ? 1 : x[i] < -1 ? -1 : x[i];
        int16_t s = (int16_t)lrintf(v * 32767);
        fwrite(&s, 2, 1, fp);
    }
    int bad = ferror(fp);
    if (fclose(fp) || bad) {
        km_errf_(err, errlen, "%s: write failed: %s", km_outfile_target(of), strerror(errno));
        km_outfile_abort(of);
        return KM_EIO;
    }
    return km_outfile_commit(of, err, errlen);
}

int km_cue_engine_free(km_cue_engine *e, char *err, size_t errlen)
{
    if (!e)
        return KM_OK;
    int rc = KM_OK;
    if (e->os)
        soundio_outstream_destroy(e->os);
    if (e->dev)
        soundio_device_unref(e->dev);
    if (e->sio)
        soundio_destroy(e->sio);
    if (e->kind == BK_WAV && e->wav)
        rc = write_wav(e->wav, e->track, e->track_len, e->rate, err, errlen);
    for (int t = 0; t < NCLIPS; t++)
        free(e->samples[t]);
    free(e->track);
    free(e);
    return rc;
}

/* ---- playing ------------------------------------------------------------ */

static bool place_in_track(km_cue_engine *e, int type, double t_s)
{
    if (!(t_s >= 0) || t_s > 24 * 3600)
        return false;
    size_t at = (size_t)llround(t_s * e->rate), end = at + e->nsamples[type];
    if (end > e->track_cap) {
        size_t cap = e->track_cap ? e->track_cap : (size_t)e->rate * 60;
        while (cap < end)
            cap *= 2;
        float *t = realloc(e->track, cap * sizeof(float));
        if (!t)
            return false;
        memset(t + e->track_cap, 0, (cap - e->track_cap) * sizeof(float));
        e->track = t;
        e->track_cap = cap;
    }
    for (size_t i = 0; i < e->nsamples[type]; i++)
        e->track[at + i] += e->samples[type][i] * (float)e->scheme.volume;
    if (end > e->track_len)
        e->track_len = end;
    return true;
}

static double clip_s(const km_cue_engine *e, int clip)
{
    return (double)e->nsamples[clip] / e->rate;
}

/* Queue clip `type` to sound `delay_s` from now (placed at t_s + delay_s
 * on a wav track). */
static bool play_clip_after(km_cue_engine *e, int type, double t_s, double delay_s)
{
    if (type <= 0 || type >= NCLIPS || !e->samples[type] || e->kind == BK_NONE)
        return false;
    if (e->kind == BK_WAV) {
        bool ok = place_in_track(e, type, t_s + delay_s);
        atomic_fetch_add(ok ? &e->queued : &e->dropped, 1);
        if (ok)
            atomic_fetch_add(&e->started, 1);
        return ok;
    }
    int64_t slot = km_spsc_produce_begin_(&e->cmdq);
    if (slot < 0) {
        atomic_fetch_add_explicit(&e->dropped, 1, memory_order_relaxed);
        return false;
    }
    int64_t at = mono_ns() + (int64_t)(delay_s * 1e9),
            end = at + (int64_t)(clip_s(e, type) * 1e9 + e->opt.latency_s * 1e9);
    e->cmd[slot] = (cue_cmd){(uint8_t)type, at};
    km_spsc_produce_end_(&e->cmdq);
    if (end > e->busy_until_ns)
        e->busy_until_ns = end;
    atomic_fetch_add_explicit(&e->queued, 1, memory_order_relaxed);
    return true;
}

static bool play_clip(km_cue_engine *e, int type, double t_s)
{
    return play_clip_after(e, type, t_s, 0);
}

/* A hold's tick, or its time in words when the hold has just passed a mark
 * of the dose schedule (a tick every 10 s, "30 seconds", "1 minute"). */
static int hold_clip(km_cue_engine *e, double held_s)
{
    double last = e->last_hold_s;
    e->last_hold_s = held_s;
    if (held_s < last) /* a new hold */
        last = 0;
    for (int k = 0; k < e->scheme.ntimes; k++)
        if (last < e->scheme.times[k] && held_s >= e->scheme.times[k] &&
            e->samples[CLIP_TIME0 + k])
            return CLIP_TIME0 + k;
    return KM_EV_HOLD;
}

bool km_cue_play(km_cue_engine *e, const km_event *ev)
{
    int type = ev->type;
    if (type <= 0 || type >= KM_EV_TYPE_COUNT)
        return false;
    if (type == KM_EV_HOLD)
        type = hold_clip(e, ev->value);
    else if (km_event_mark(ev))
        type = CLIP_MARK0 + km_event_mark(ev) - 1;
    else if (type == KM_EV_ON_TARGET || type == KM_EV_OFF_TARGET)
        e->last_hold_s = 0;
    e->last_clip = type;
    return play_clip(e, type, ev->detected_t_s);
}

bool km_cue_guide(km_cue_engine *e, int direction, const km_event *after)
{
    if (!direction)
        return false;
    return play_clip_after(e, direction > 0 ? CLIP_MORE : CLIP_LESS, after->detected_t_s,
                           clip_s(e, e->last_clip) + CUE_AFTER_S);
}

bool km_cue_breathe(km_cue_engine *e, const km_event *at)
{
    return play_clip(e, CLIP_BREATHE, at->detected_t_s);
}

bool km_cue_ready(km_cue_engine *e)
{
    bool ok = play_clip(e, CLIP_READY, 0);
    if (e->nplan) /* then "first: left glute" */
        play_clip_after(e, CLIP_PLAN0, 0, clip_s(e, CLIP_READY) + CUE_AFTER_S);
    return ok;
}

const char *km_cue_next(km_cue_engine *e, const km_event *after)
{
    if (e->plan_at >= e->nplan)
        return NULL;
    int type = after && after->type > 0 && after->type < KM_EV_TYPE_COUNT ? after->type : 0;
    double t_s = after ? after->detected_t_s : 0, wait = clip_s(e, type) + CUE_AFTER_S;
    if (++e->plan_at == e->nplan) {
        play_clip_after(e, CLIP_PLAN_END, t_s, wait);
        return "";
    }
    play_clip_after(e, CLIP_PLAN0 + e->plan_at, t_s, wait);
    return e->plan[e->plan_at];
}

double km_cue_say(km_cue_engine *e, const char *text, double t_s)
{
    if (e->kind == BK_NONE || !strcmp(e->voice, "none") ||
        atomic_load_explicit(&e->say_busy, memory_order_acquire))
        return 0;
    if (e->kind == BK_WAV && t_s < 0) /* after everything on the track */
        t_s = (double)e->track_len / e->rate + 0.5;
    float *w;
    size_t n;
    char err[256];
    if (km_cue_speak_(e->voice, text, e->rate, &w, &n, err, sizeof err))
        return 0;
    cue_def plain = {.gain = CUE_SAY_GAIN};
    level_words(e, &plain, NULL, 0, w, n);
    free(e->samples[CLIP_SAY]); /* not sounding (say_busy is clear) */
    e->samples[CLIP_SAY] = w;
    e->nsamples[CLIP_SAY] = n;
    /* live: after everything queued (and a breath), from when it is queued */
    double wait = 0;
    int64_t now = mono_ns();
    if (e->kind == BK_SOUNDIO && t_s < 0 && e->busy_until_ns > now)
        wait = (double)(e->busy_until_ns - now) * 1e-9 + CUE_AFTER_S;
    if (e->kind == BK_SOUNDIO)
        atomic_store_explicit(&e->say_busy, 1, memory_order_release);
    if (!play_clip_after(e, CLIP_SAY, t_s, wait)) {
        atomic_store_explicit(&e->say_busy, 0, memory_order_release);
        return 0;
    }
    return wait + (double)n / e->rate;
}

/* The server went away: once every 2 s, connect again at the rendering's
 * sample rate. Called from the control thread; the old stream is gone, so
 * no callback runs while the voices and the queue are reset (cues queued
 * while nothing played are stale: dropped, counted). */
static int reconnect(km_cue_engine *e, char *why, size_t whylen)
{
    if (e->os)
        soundio_outstream_destroy(e->os);
    e->os = NULL;
    if (e->dev)
        soundio_device_unref(e->dev);
    e->dev = NULL;
    if (!e->disconnected)
        soundio_disconnect(e->sio);
    e->disconnected = 1;
    int rate = e->rate;
    if (try_backend(e, e->backend, why, whylen))
        return -1;
    e->disconnected = 0;
    if (open_stream(e, why, whylen) || e->rate != rate) {
        if (e->rate != rate)
            km_errf_(why, whylen, "the device now wants %d Hz, the cues are at %d Hz", e->rate,
                     rate);
        e->rate = rate;
        return -1;
    }
    memset(e->voice_state, 0, sizeof e->voice_state);
    e->npending = 0;
    e->rt_tried = 0; /* a new audio thread: it asks again */
    e->frames_out = 0;
    atomic_store(&e->say_busy, 0);
    atomic_store(&e->underflowed, 0);
    uint32_t first, stale = km_spsc_consume_begin_(&e->cmdq, &first); /* no callback runs */
    atomic_fetch_add(&e->dropped, stale);
    km_spsc_consume_end_(&e->cmdq, stale);
    atomic_store(&e->dead, 0);
    int rc = soundio_outstream_start(e->os);
    if (rc) {
        km_errf_(why, whylen, "cannot start: %s", soundio_strerror(rc));
        atomic_store(&e->dead, 1);
        return -1;
    }
    return 0;
}

bool km_cue_engine_poll(km_cue_engine *e, char *warning, size_t warnlen)
{
    if (e->kind != BK_SOUNDIO)
        return true;
    if (!e->disconnected)
        soundio_flush_events(e->sio);
    if (!atomic_load(&e->dead))
        return true;
    if (!e->warned) {
        e->warned = 1;
        e->next_retry_ns = mono_ns() + 2000000000LL;
        km_errf_(warning, warnlen, "the sound server (%s) went away; cues are off until it is "
                 "back, the session goes on", e->backend_name);
        return false;
    }
    if (mono_ns() < e->next_retry_ns)
        return false;
    e->next_retry_ns = mono_ns() + 2000000000LL;
    char why[200];
    if (reconnect(e, why, sizeof why))
        return false;
    e->warned = 0;
    km_errf_(warning, warnlen, "the sound server (%s) is back; cues are on again",
             e->backend_name);
    return false;
}

int km_cue_engine_realtime(const km_cue_engine *e, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    if (e->kind != BK_SOUNDIO)
        return -2; /* nothing plays in real time: nothing to say */
    int st = atomic_load_explicit(&e->rt_state, memory_order_acquire);
    if (st == 1 && why)
        km_errf_(why, whylen, "real-time priority (round-robin %d)", KM_CUE_RT_PRIORITY);
    else if (st == 2 && why)
        km_errf_(why, whylen, "ordinary priority (real-time not asked)");
    else if (st < 0 && why)
        km_errf_(why, whylen, "real-time priority refused (%s): cues may break when the "
                 "machine is busy (docs/cues.md says how to allow it)", strerror(-st));
    return st == 1 ? 1 : st == 0 ? 0 : st == 2 ? -2 : -1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void km_cue_engine_stats(km_cue_engine *e, km_cue_stats *out)
{
    memset(out, 0, sizeof *out);
    out->queued = atomic_load(&e->queued);
    out->started = atomic_load(&e->started);
    out->dropped = atomic_load(&e->dropped);
    out->underflows = atomic_load(&e->underflows);
    out->damaged = atomic_load(&e->damaged);
    out->errors = atomic_load(&e->errors);
    uint32_t n = atomic_load_explicit(&e->lat_n, memory_order_acquire);
    uint32_t m = n < LAT_RING ? n : LAT_RING, v[LAT_RING];
    for (uint32_t i = 0; i < m; i++)
        v[i] = atomic_load_explicit(&e->lat_us[i], memory_order_relaxed);
    out->latency_n = m;
    out->latency_p50_ms = out->latency_p99_ms = NAN;
    if (m) {
        qsort(v, m, sizeof v[0], cmp_u32);
        out->latency_p50_ms = v[m / 2] / 1000.0;
        out->latency_p99_ms = v[(size_t)((m - 1) * 0.99)] / 1000.0;
    }
}

const float *km_cue_samples(const km_cue_engine *e, enum km_event_type t, size_t *n)
{
    if (t <= 0 || t >= KM_EV_TYPE_COUNT) {
        *n = 0;
        return NULL;
    }
    *n = e->nsamples[t];
    return e->samples[t];
}

const double *km_cue_frequencies(const km_cue_engine *e, enum km_event_type t)
{
    static const double none[1] = {0};
    return (t > 0 && t < KM_EV_TYPE_COUNT) ? e->freqs[t] : none;
}
