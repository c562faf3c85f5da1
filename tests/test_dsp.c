/* test_dsp.c: each detector on small synthetic signals: a known twitch is
 * found at the right time, a cough is not a twitch, creep is not a release, a
 * release is found at its onset, holds start and end, safety limits fire,
 * breathing is measured, and bad input (empty, all-zero, saturated, NaN,
 * corrupt, wrong geometry, time going back) raises no false event and no
 * crash; every twitch shape of the signal model (docs/detection.md), either
 * sign, at 25-200 frames/s with and without jittered intervals, is found at
 * its onset; a rate measured too low turns the twitch detector off; fidgets
 * are not twitches, passive relaxation is not a release; a release that a
 * shift or a lift-off interrupts 1.5 s after its onset is still reported. Frames are drawn by hand here, not by the simulator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "knotmat/dsp.h"

#define R 32
#define C 32
#define PITCH 12.7
#define RATE 100.0

typedef struct {
    double ball_n;     /* ball force */
    double bx, by;     /* ball centre, cells */
    double body_kpa;   /* body imprint level */
    double lift_cells; /* body lifted within this radius of the ball */
    double gain;       /* whole-frame multiplier (creep, cough) */
} scene;

static void draw(km_frame *f, const scene *s, double t)
{
    km_frame_reset(f, R, C, (float)PITCH);
    f->device_ns = (int64_t)llround(t * 1e9);
    double sigma = 0.9, cell = PITCH * PITCH * 1e-3;
    double p0 = s->ball_n / (2 * M_PI * sigma * sigma * cell);
    for (int y = 0; y < R; y++)
        for (int x = 0; x < C; x++) {
            double d = hypot(x - s->bx, y - s->by);
            double body = s->body_kpa * (1 + 0.3 * sin(x * 0.3) * cos(y * 0.2));
            if (d < s->lift_cells)
                body *= d / s->lift_cells * d / s->lift_cells;
            double ball = s->ball_n > 0 ? p0 * exp(-d * d / (2 * sigma * sigma)) : 0;
            /* a deterministic speckle so that nothing is perfectly flat */
            double speckle = 0.02 * sin(x * 12.9898 + y * 78.233 + t * 3.1);
            f->kpa[y * C + x] = (float)((body + ball + speckle) * s->gain);
        }
}

static km_dsp *make(km_dsp_config *cfg)
{
    km_dsp_config def;
    if (!cfg) {
        km_dsp_config_default(&def);
        cfg = &def;
    }
    cfg->fftw_measure = 0;
    km_dsp *d;
    char err[256];
    assert_int_equal(km_dsp_new(cfg, R, C, (float)PITCH, RATE, &d, err, sizeof err), KM_OK);
    return d;
}

typedef struct {
    km_event ev[512];
    int n;
} log_t;

static void feed(km_dsp *d, km_frame *f, log_t *lg)
{
    km_event ev[32];
    size_t n = km_dsp_process(d, f, ev, 32);
    for (size_t i = 0; i < n && lg->n < 512; i++)
        lg->ev[lg->n++] = ev[i];
}

static int count(const log_t *lg, enum km_event_type t)
{
    int k = 0;
    for (int i = 0; i < lg->n; i++)
        k += lg->ev[i].type == t;
    return k;
}

static const km_event *first(const log_t *lg, enum km_event_type t)
{
    for (int i = 0; i < lg->n; i++)
        if (lg->ev[i].type == t)
            return &lg->ev[i];
    return NULL;
}

static scene base(void)
{
    scene s = {70, 10.3, 12.6, 3.0, 7.0, 1.0}; /* body lifted within ~90 mm */
    return s;
}

static void test_hotspot_position_force_and_hold(void **state)
{
    (void)state;
    km_dsp *d = make(NULL);
    km_frame *f = km_frame_new(R * C);
    log_t lg = {0};
    scene s = base();
    for (int i = 0; i < 1700; i++) {
        if (i == 1400)
            s.ball_n = 0; /* the person lifts off the ball */
        draw(f, &s, i / RATE);
        feed(d, f, &lg);
        if (i == 1000) {
            const km_hotspot *h;
            assert_int_equal(km_dsp_hotspots(d, &h), 1);
            /* sub-cell position within a quarter pitch, force within 10 % */
            assert_true(fabs(h[0].x_mm - 10.3 * PITCH) < 0.25 * PITCH);
            assert_true(fabs(h[0].y_mm - 12.6 * PITCH) < 0.25 * PITCH);
            assert_true(fabs(h[0].force_n - 70) < 7);
            km_dsp_stats st;
            km_dsp_stats_get(d, &st);
            assert_true(st.holding);
        }
    }
    assert_int_equal(count(&lg, KM_EV_HOTSPOT), 1);
    const km_event *on = first(&lg, KM_EV_ON_TARGET);
    assert_non_null(on);
    assert_true(on->t_s >= 3.0 && on->t_s <= 3.6); /* after hold_settle_s of stillness */
    assert_int_equal(count(&lg, KM_EV_HOLD), 1);     /* at 10 s of hold */
    const km_event *off = first(&lg, KM_EV_OFF_TARGET);
    assert_non_null(off);
    assert_true(off->t_s >= 14.0 && off->t_s <= 14.8);
    assert_int_equal(count(&lg, KM_EV_SPASM), 0);
    assert_int_equal(count(&lg, KM_EV_RELEASE), 0);
    char json[512];
    km_event_to_json(on, json, sizeof json);
    assert_non_null(strstr(json, "\"type\":\"on_target\",\"x_mm\":"));
    assert_non_null(strstr(json, ",\"force_n\":"));
    assert_non_null(strstr(json, ",\"confidence\":1.00"));
    km_frame_free(f);
    km_dsp_free(d);
}

/* The mat unplugged during a hold and plugged back: device_lost (in order,
 * at the marker's time), the hold ends with it, device_back on the first
 * frame after; the hold starts again only after settling anew. */
static void test_device_lost_and_back(void **state)
{
    (void)state;
    km_dsp *d = make(NULL);
    km_frame *f = km_frame_new(R * C);
    log_t lg = {0};
    scene s = base();
    for (int i = 0; i < 1200; i++) {
        double t = i / RATE;
        if (i >= 500 && i < 600)
            continue; /* unplugged: nothing arrives */
        draw(f, &s, t);
        if (i == 499) {
            feed(d, f, &lg);
            km_dsp_stats st;
            km_dsp_stats_get(d, &st);
            assert_true(st.holding);
            /* the driver's marker right after the last frame */
            km_frame_reset(f, R, C, (float)PITCH);
            f->device_ns = (int64_t)llround(5.001 * 1e9);
            f->flags = KM_FRAME_DEVICE_LOST | KM_FRAME_CORRUPT;
            feed(d, f, &lg);
            km_dsp_stats_get(d, &st);
            assert_false(st.holding);
            continue;
        }
        if (i == 600)
            f->flags |= KM_FRAME_DEVICE_BACK;
        feed(d, f, &lg);
    }
    assert_int_equal(count(&lg, KM_EV_DEVICE_LOST), 1);
    assert_int_equal(count(&lg, KM_EV_DEVICE_BACK), 1);
    const km_event *lost = first(&lg, KM_EV_DEVICE_LOST), *back = first(&lg, KM_EV_DEVICE_BACK);
    assert_true(fabs(lost->t_s - 5.001) < 1e-6 && fabs(back->t_s - 6.0) < 1e-6);
    assert_int_equal(count(&lg, KM_EV_ON_TARGET), 2); /* before and after the loss */
    const km_event *on2 = NULL;
    for (int i = 0; i < lg.n; i++)
        if (lg.ev[i].type == KM_EV_ON_TARGET)
            on2 = &lg.ev[i];
    assert_true(on2->t_s >= 6.0 + 2.5); /* it had to settle again */
    km_frame_free(f);
    km_dsp_free(d);
}

/* A twitch: the ball force rises by `amp` with a 40 ms time constant; the
 * body carries correspondingly less (the total stays). */
static double twitch(double t, double t0, double amp)
{
    double u = (t - t0) / 0.04;
    return u > 0 ? amp * u * exp(1 - u) : 0;
}

static void test_twitch_found_at_its_time(void **state)
{
    (void)state;
    km_dsp *d = make(NULL);
    km_frame *f = km_frame_new(R * C);
    log_t lg = {0};
    for (int i = 0; i < 1200; i++) {
        double t = i / RATE;
        scene s = base();
        double k = twitch(t, 8.0, 0.15);
        s.ball_n = 70 * (1 + k);
        s.body_kpa = 3.0 - 70 * k / (C * R * PITCH * PITCH * 1e-3); /* total conserved */
        draw(f, &s, t);
        feed(d, f, &lg);
    }
    assert_int_equal(count(&lg, KM_EV_SPASM), 1);
    const km_event *e = first(&lg, KM_EV_SPASM);
    assert_true(fabs(e->t_s - 8.0) < 0.1);
    assert_true(e->detected_t_s - 8.0 < 0.3); /* live within 300 ms */
    assert_true(fabs(e->x_mm - 10.3 * PITCH) < 0.25 * PITCH);
    assert_true(e->confidence > 0 && e->confidence <= 1);
    km_frame_free(f);
    km_dsp_free(d);
}

static void test_cough_is_not_a_twitch(void **state)
{
    (void)state;
    km_dsp *d = make(NULL);
    km_frame *f = km_frame_new(R * C);
    log_t lg = {0};
    for (int i = 0; i < 1500; i++) {
        double t = i / RATE;
        scene s = base();
        /* three coughs: the whole trunk jolts by 10-15 % for 250 ms */
        for (int c = 0; c < 3; c++) {
            double u = (t - (6.0 + 2.1 * c)) / 0.25;
            if (u > 0 && u < 1)
                s.gain = 1 + (0.10 + 0.025 * c) * sin(M_PI * u);
        }
        draw(f, &s, t);
        feed(d, f, &lg);
    }
    assert_int_equal(count(&lg, KM_EV_SPASM), 0);
    assert_int_equal(count(&lg, KM_EV_RELEASE), 0);
    assert_int_equal(count(&lg, KM_EV_ON_TARGET), 1);
    km_frame_free(f);
    km_dsp_free(d);
}

static void test_creep_is_not_a_release_but_a_release_is(void **state)
{
    (void)state;
    /* creep: every reading drifts up by 15 % over a minute */
    km_dsp *d = make(NULL);
    km_frame *f = km_frame_new(R * C);
    log_t lg = {0};
    for (int i = 0; i < 9000; i++) {
        double t = i / RATE;
        scene s = base();
        s.gain = 1 + 0.15 * (1 - exp(-t / 40));
        draw(f, &s, t);
        feed(d, f, &lg);
    }
    assert_int_equal(count(&lg, KM_EV_RELEASE), 0);
    assert_int_equal(count(&lg, KM_EV_SPASM), 0);
    km_dsp_free(d);

    /* release: ball force falls 20 % over ~4 s around t = 40 s while the
     * body sinks around it (the lifted zone shrinks) */
    d = make(NULL);
    lg.n = 0;
    for (int i = 0; i < 6000; i++) {
        double t = i / RATE;
        scene s = base();
        double k = 1 / (1 + exp(-(t - 40) * 4.4 / 4));
        s.ball_n = 70 * (1 - 0.2 * k);
        s.lift_cells = 7.0 * (1 - 0.3 * k);
        draw(f, &s, t);
        feed(d, f, &lg);
    }
    assert_int_equal(count(&lg, KM_EV_RELEASE), 1);
    const km_event *e = first(&lg, KM_EV_RELEASE);
    /* reported at the onset of the fall (5 % of it: t = 40 - 2.68 s), decided
     * within a few seconds of it */
    assert_true(fabs(e->t_s - 37.3) < 2.0);
    assert_true(e->detected_t_s > e->t_s && e->detected_t_s - 37.3 < 8.0);
    assert_true(e->value > 0.05 && e->value < 0.3); /* the fall it measured */
    km_frame_free(f);
    km_dsp_free(d);
}

/* ---- generalisation: every twitch shape, rate and jitter; what is not a
 * twitch or a release; a release a shift or a lift-off interrupts ------- */

/* A detector for frames of rate `rate` (the nominal figure it is told). */
static km_dsp *make_rate(double rate)
{
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    cfg.fftw_measure = 0;
    km_dsp *d;
    char err[256];
    assert_int_equal(km_dsp_new(&cfg, R, C, (float)PITCH, rate, &d, err, sizeof err), KM_OK);
    return d;
}

/* Unit-peak twitch shapes of the signal model (docs/detection.md), u in s
 * after the onset: 0 monophasic (70 ms contraction, 80 ms half-relaxation),
 * 1 biphasic, 2 damped 6 Hz oscillation, 3 damped 10 Hz. */
static double shape_at(int shape, double u)
{
    if (u <= 0)
        return 0;
    const double tc = 0.07, thr = 0.08;
    double mono = u < tc ? 0.5 - 0.5 * cos(M_PI * u / tc) : exp2(-(u - tc) / thr);
    switch (shape) {
    case 0: return mono;
    case 1: return mono - 0.7 * shape_at(0, u - tc - thr);
    case 2: return sin(2 * M_PI * 6 * u) * exp(-u / 0.12);
    default: return sin(2 * M_PI * 10 * u) * exp(-u / 0.08);
    }
}

/* The times of frames at `rate` with intervals jittered by +- `jitter` of a
 * period (a deterministic sequence). */
static double frame_time(int i, double rate, double jitter)
{
    double j = jitter * sin(i * 2.3999632) * (i > 0);
    return (i + j) / rate;
}

/* 0..1 over u in [0, 1], smooth at both ends. */
static double ramp01(double u) { return u <= 0 ? 0 : u >= 1 ? 1 : u * u * (3 - 2 * u); }

/* What changes the base scene at time t; ctx: the test's parameters. */
typedef void (*scene_fn)(scene *s, double t, const void *ctx);

/* Frames of base() changed by `fn` at `rate` (jittered) for `secs` into `d`;
 * its events into lg. */
static void play(km_dsp *d, double secs, double rate, double jitter, scene_fn fn, const void *ctx,
                 log_t *lg)
{
    km_frame *f = km_frame_new(R * C);
    for (int i = 0; frame_time(i, rate, jitter) < secs; i++) {
        double t = frame_time(i, rate, jitter);
        scene s = base();
        if (fn)
            fn(&s, t, ctx);
        draw(f, &s, t);
        feed(d, f, lg);
    }
    km_frame_free(f);
}

typedef struct { int shape, sign; } twitch_ctx;

/* A twitch of 12 % at t = 8 s; the body carries what the ball takes. */
static void twitch_scene(scene *s, double t, const void *ctx)
{
    const twitch_ctx *c = ctx;
    double k = 0.12 * c->sign * shape_at(c->shape, t - 8.0);
    s->ball_n = 70 * (1 + k);
    s->body_kpa = 3.0 - 70 * k / (C * R * PITCH * PITCH * 1e-3);
}

static void test_twitch_shapes_rates_and_jitter(void **state)
{
    (void)state;
    static const double rates[] = {25, 50, 100, 200};
    for (int shape = 0; shape < 4; shape++)
        for (int sign = -1; sign <= 1; sign += 2)
            for (size_t ri = 0; ri < sizeof rates / sizeof rates[0]; ri++)
                for (int jit = 0; jit < 2; jit++) {
                    double rate = rates[ri], jitter = jit ? 0.3 : 0;
                    km_dsp *d = make_rate(rate);
                    log_t lg = {0};
                    twitch_ctx c = {shape, sign};
                    play(d, 11.0, rate, jitter, twitch_scene, &c, &lg);
                    if (count(&lg, KM_EV_SPASM) != 1)
                        fail_msg("shape %d sign %d at %.0f Hz jitter %.1f: %d spasms", shape,
                                 sign, rate, jitter, count(&lg, KM_EV_SPASM));
                    const km_event *e = first(&lg, KM_EV_SPASM);
                    assert_true(fabs(e->t_s - 8.0) < 0.5);         /* at its onset */
                    assert_true(e->detected_t_s - 8.0 < 0.4);      /* live, within 400 ms */
                    assert_true(e->confidence > 0 && e->confidence <= 1);
                    km_dsp_stats st;
                    km_dsp_stats_get(d, &st);
                    assert_true(fabs(st.measured_rate_hz - rate) < 0.05 * rate);
                    km_dsp_free(d);
                }
}

/* A source that states no rate (0): the detectors go by the frames' times
 * and decide what they decide when told the true rate. */
static void test_rate_not_stated(void **state)
{
    (void)state;
    static const double rates[] = {25, 100};
    for (size_t ri = 0; ri < 2; ri++) {
        log_t told = {0}, unknown = {0};
        twitch_ctx c = {0, 1};
        km_dsp *a = make_rate(rates[ri]), *b = make_rate(0);
        play(a, 11.0, rates[ri], 0.2, twitch_scene, &c, &told);
        play(b, 11.0, rates[ri], 0.2, twitch_scene, &c, &unknown);
        assert_int_equal(count(&unknown, KM_EV_SPASM), 1);
        assert_int_equal(count(&unknown, KM_EV_ON_TARGET), count(&told, KM_EV_ON_TARGET));
        assert_true(fabs(first(&unknown, KM_EV_SPASM)->t_s - first(&told, KM_EV_SPASM)->t_s) <
                    1e-6);
        km_dsp_stats st;
        km_dsp_stats_get(b, &st);
        assert_true(fabs(st.measured_rate_hz - rates[ri]) < 0.05 * rates[ri]);
        km_dsp_free(a);
        km_dsp_free(b);
    }
}

static void test_measured_rate_too_low_says_so(void **state)
{
    (void)state;
    /* told 100 Hz, the frames come at 12 Hz: the twitch detector is off */
    km_dsp *d = make_rate(100);
    log_t lg = {0};
    play(d, 20.0, 12.0, 0, NULL, NULL, &lg);
    km_dsp_stats st;
    km_dsp_stats_get(d, &st);
    assert_false(st.spasm_enabled);
    assert_true(fabs(st.measured_rate_hz - 12) < 0.5);
    km_dsp_free(d);
}

/* Every 4 s from 6 s the person shifts: the ball moves 6 mm within 0.4 s and
 * its force steps by 8 % (up and down in turn). */
static void fidget_scene(scene *s, double t, const void *ctx)
{
    (void)ctx;
    double x = 0, g = 1;
    for (int k = 0; k < 14; k++) {
        double m = ramp01((t - (6.0 + 4.0 * k)) / 0.4);
        x += (k % 2 ? -1 : 1) * 6.0 / PITCH * m;
        g *= 1 + (k % 2 ? -0.08 : 0.08) * m;
    }
    s->bx += x;
    s->ball_n *= g;
}

static void test_fidgets_are_not_twitches(void **state)
{
    (void)state;
    km_dsp *d = make(NULL);
    log_t lg = {0};
    play(d, 60.0, RATE, 0, fidget_scene, NULL, &lg);
    assert_int_equal(count(&lg, KM_EV_SPASM), 0);
    assert_int_equal(count(&lg, KM_EV_RELEASE), 0);
    km_dsp_free(d);
}

/* After loading the tissue relaxes: the ball force eases 9 % (time constants
 * 2 s and 6 s) and the body settles around it; then it holds. */
static void relax_scene(scene *s, double t, const void *ctx)
{
    (void)ctx;
    double k = 0.04 * (1 - exp(-t / 2.0)) + 0.05 * (1 - exp(-t / 6.0));
    s->ball_n = 70 * (1 - k);
    s->lift_cells = 7.0 * (1 - 0.5 * k);
}

static void test_passive_relaxation_is_not_a_release(void **state)
{
    (void)state;
    km_dsp *d = make(NULL);
    log_t lg = {0};
    play(d, 90.0, RATE, 0, relax_scene, NULL, &lg);
    assert_int_equal(count(&lg, KM_EV_ON_TARGET), 1);
    assert_int_equal(count(&lg, KM_EV_RELEASE), 0);
    assert_int_equal(count(&lg, KM_EV_SPASM), 0);
    km_dsp_free(d);
}

typedef struct { int release, kind; double t_dist; } disturb_ctx;

/* With `release`, a release from t = 40 s (exponential, 2 s, 20 %); at t_dist a
 * shift of 20 mm (kind 0) or lifting off (kind 1) over 0.8 s. */
static void disturb_scene(scene *s, double t, const void *ctx)
{
    const disturb_ctx *c = ctx;
    if (c->release) {
        double k = t > 40 ? 1 - exp(-(t - 40) / 2.0) : 0;
        s->ball_n = 70 * (1 - 0.2 * k);
        s->lift_cells = 7.0 * (1 - 0.3 * k);
    }
    double m = ramp01((t - c->t_dist) / 0.8);
    if (c->kind == 0)
        s->bx += m * 20.0 / PITCH;
    else
        s->ball_n *= 1 - m;
}

static void test_release_before_a_shift_or_a_lift_off(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        log_t lg = {0};
        km_dsp *d = make(NULL);
        disturb_ctx c = {1, kind, 41.5};
        play(d, 55.0, RATE, 0, disturb_scene, &c, &lg);
        km_dsp_free(d);
        if (count(&lg, KM_EV_RELEASE) != 1)
            fail_msg("%s 1.5 s after the onset: %d releases", kind ? "lift-off" : "shift",
                     count(&lg, KM_EV_RELEASE));
        const km_event *e = first(&lg, KM_EV_RELEASE);
        assert_true(fabs(e->t_s - 40.0) < 2.0);
        /* the same disturbance without a release is not one */
        log_t none = {0};
        d = make(NULL);
        disturb_ctx c0 = {0, kind, 43.5};
        play(d, 55.0, RATE, 0, disturb_scene, &c0, &none);
        km_dsp_free(d);
        assert_int_equal(count(&none, KM_EV_RELEASE), 0);
    }
}

static void test_bad_input_no_false_events(void **state)
{
    (void)state;
    km_dsp *d = make(NULL);
    km_frame *f = km_frame_new(64 * 64);
    log_t lg = {0};
    for (int i = 0; i < 3000; i++) {
        double t = i / RATE;
        int kind = (i / 300) % 5;
        km_frame_reset(f, R, C, (float)PITCH);
        f->device_ns = (int64_t)llround(t * 1e9);
        for (int k = 0; k < R * C; k++) {
            switch (kind) {
            case 0: f->kpa[k] = 0; break;                            /* all zero */
            case 1: f->kpa[k] = 300; f->cell_flags[k] = KM_CELL_SATURATED; break;
            case 2: f->kpa[k] = (k % 7) ? NAN : INFINITY; break;     /* NaN and inf */
            case 3: f->kpa[k] = (k % 2) ? -5.0f : 2.0f; break;        /* negative */
            case 4: f->kpa[k] = 1.0f; f->cell_flags[k] = KM_CELL_DEAD; break;
            }
        }
        feed(d, f, &lg);
    }
    km_dsp_stats st;
    km_dsp_stats_get(d, &st);
    assert_int_equal(st.frames, 3000 - 600);
    assert_int_equal(st.saturated_frames, 600);
    assert_true(st.nonfinite_cells > 0);
    for (int i = 0; i < lg.n; i++) {
        /* a fully saturated mat is worth a warning; nothing else is */
        if (!(lg.ev[i].type == KM_EV_OVERPRESSURE || lg.ev[i].type == KM_EV_BREATHING))
            fail_msg("unexpected %s at %.2f s", km_event_type_name(lg.ev[i].type), lg.ev[i].t_s);
    }
    /* frames that must be skipped, not analysed */
    km_frame_reset(f, R, C, (float)PITCH);
    f->device_ns = (int64_t)(31 * 1e9);
    f->flags = KM_FRAME_CORRUPT;
    feed(d, f, &lg);
    km_frame_reset(f, 64, 64, (float)PITCH);
    f->device_ns = (int64_t)(32 * 1e9);
    feed(d, f, &lg);
    km_frame_reset(f, R, C, (float)PITCH);
    f->device_ns = (int64_t)(1 * 1e9); /* back in time */
    feed(d, f, &lg);
    km_dsp_stats_get(d, &st);
    assert_int_equal(st.skipped, 3);
    assert_int_equal(st.frames, 3000 - 600);
    assert_true(count(&lg, KM_EV_OVERPRESSURE) >= 1); /* the saturated mat was flagged */
    km_frame_free(f);
    km_dsp_free(d);
}

static void test_safety_limits(void **state)
{
    (void)state;
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    cfg.max_hold_s = 20;
    cfg.max_force_n = 100;
    km_dsp *d = make(&cfg);
    km_frame *f = km_frame_new(R * C);
    log_t lg = {0};
    for (int i = 0; i < 4000; i++) {
        double t = i / RATE;
        scene s = base();
        if (t > 30 && t < 33)
            s.ball_n = 130; /* pressing too hard for 3 s */
        draw(f, &s, t);
        feed(d, f, &lg);
    }
    const km_event *lim = first(&lg, KM_EV_HOLD_LIMIT);
    assert_non_null(lim);
    assert_true(lim->t_s >= 23.0 && lim->t_s <= 23.6); /* hold began ~3 s */
    /* said again every 15 s while the person stays: at ~23 and ~38 s of 40 */
    assert_int_equal(count(&lg, KM_EV_HOLD_LIMIT), 2);
    /* no hold progress after the limit: nothing encourages holding on */
    for (int i = 0; i < lg.n; i++)
        if (lg.ev[i].type == KM_EV_HOLD)
            assert_true(lg.ev[i].t_s <= lim->t_s);
    assert_int_equal(count(&lg, KM_EV_OVERPRESSURE), 1);
    const km_event *op = first(&lg, KM_EV_OVERPRESSURE);
    assert_true(op->t_s >= 30.4 && op->t_s <= 30.7);
    assert_true(op->force_n >= 100);
    km_frame_free(f);
    km_dsp_free(d);
}

static void test_breathing_rate(void **state)
{
    (void)state;
    km_dsp *d = make(NULL);
    km_frame *f = km_frame_new(R * C);
    log_t lg = {0};
    for (int i = 0; i < 4500; i++) {
        double t = i / RATE;
        scene s = base();
        s.gain = 1 + 0.02 * sin(2 * M_PI * 0.25 * t); /* 15 breaths/min */
        draw(f, &s, t);
        feed(d, f, &lg);
    }
    int n = 0;
    for (int i = 0; i < lg.n; i++)
        if (lg.ev[i].type == KM_EV_BREATHING) {
            assert_true(fabs(lg.ev[i].value - 15.0) < 1.0);
            n++;
        }
    assert_true(n >= 2);
    km_dsp_stats st;
    km_dsp_stats_get(d, &st);
    assert_true(fabs(st.breath_bpm - 15.0) < 1.0);
    km_frame_free(f);
    km_dsp_free(d);
}

static void test_spasm_off_at_low_rate_and_config_errors(void **state)
{
    (void)state;
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    cfg.fftw_measure = 0;
    km_dsp *d;
    char err[256];
    assert_int_equal(km_dsp_new(&cfg, 64, 32, 25.4f, 1.0, &d, err, sizeof err), KM_OK);
    km_dsp_stats st;
    km_dsp_stats_get(d, &st);
    assert_false(st.spasm_enabled);
    int pr, pc;
    km_dsp_fft_size(d, &pr, &pc);
    assert_true(pr >= 64 && pc >= 32);
    for (int n = pr; n > 1;) { /* 2^a 3^b 5^c */
        if (n % 2 == 0) n /= 2;
        else if (n % 3 == 0) n /= 3;
        else if (n % 5 == 0) n /= 5;
        else fail();
    }
    km_dsp_free(d);
    assert_int_equal(km_dsp_new(&cfg, 0, 32, 25.4f, 1.0, &d, err, sizeof err), KM_EINVAL);
    assert_int_equal(km_dsp_config_set(&cfg, "max_hold_s", "2", err, sizeof err), KM_EINVAL);
    assert_int_equal(km_dsp_config_set(&cfg, "max_hold_s", "45", err, sizeof err), KM_OK);
    assert_true(cfg.max_hold_s == 45);
    assert_int_equal(km_dsp_config_set(&cfg, "volume", "3", err, sizeof err), KM_EINVAL);
    assert_non_null(strstr(err, "unknown parameter 'volume'"));
    /* every setting as text and back, exactly; a bad item named, the rest applied */
    cfg.release_drop = 0.1 / 3;
    cfg.emit_hotspot_events = 0;
    char text[640];
    assert_true(km_dsp_config_format(&cfg, text, sizeof text) < sizeof text);
    km_dsp_config back;
    km_dsp_config_default(&back);
    assert_int_equal(km_dsp_config_parse(&back, text, err, sizeof err), KM_OK);
    assert_memory_equal(&back, &cfg, sizeof cfg);
    km_dsp_config_default(&back);
    assert_int_equal(km_dsp_config_parse(&back, "max_hold_s=40 colour=red  ball_mm=2 move_away_mm=30",
                                         err, sizeof err), KM_EINVAL);
    assert_non_null(strstr(err, "unknown parameter 'colour'"));
    assert_true(back.max_hold_s == 40 && back.move_away_mm == 30 && back.ball_mm == 63);
    assert_int_equal(km_dsp_new(&cfg, 64, 32, 25.4f, -1, &d, err, sizeof err), KM_EINVAL);
}

static void test_event_queue(void **state)
{
    (void)state;
    km_event_queue *q = km_event_queue_new(4);
    km_event e = {.type = KM_EV_SPASM, .t_s = 1.5}, o;
    for (int i = 0; i < 4; i++)
        assert_true(km_event_queue_push_spsc(q, &e));
    assert_false(km_event_queue_push_spsc(q, &e));
    assert_int_equal(km_event_queue_overruns(q), 1);
    assert_true(km_event_queue_pop_spsc(q, &o));
    assert_int_equal(o.type, KM_EV_SPASM);
    assert_true(km_event_queue_push_spsc(q, &e));
    int n = 1;
    while (km_event_queue_pop_spsc(q, &o))
        n++;
    assert_int_equal(n, 5);
    km_event_queue_free(q);
    assert_string_equal(km_event_type_name(KM_EV_HOLD_LIMIT), "hold_limit");
    km_event nan_ev = {.type = KM_EV_BREATHING, .t_s = 2, .x_mm = NAN, .y_mm = NAN,
                       .force_n = NAN, .value = 14.2};
    char buf[256];
    km_event_to_json(&nan_ev, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"x_mm\":null"));
    assert_non_null(strstr(buf, "\"rate_bpm\":14.2"));
}

static void test_stage_on_its_own_thread(void **state)
{
    (void)state;
    km_dsp *d = make(NULL);
    km_ring *ring = km_ring_new(64, R * C, KM_RING_BACKPRESSURE);
    km_event_queue *q = km_event_queue_new(256);
    km_dsp_stage *st;
    assert_int_equal(km_dsp_stage_start(d, ring, q, &st), KM_OK);
    km_frame *f = km_frame_new(R * C);
    for (int i = 0; i < 1200; i++) {
        double t = i / RATE;
        scene s = base();
        double k = twitch(t, 8.0, 0.15);
        s.ball_n = 70 * (1 + k);
        s.body_kpa = 3.0 - 70 * k / (C * R * PITCH * PITCH * 1e-3); /* load moves, not appears */
        draw(f, &s, t);
        assert_int_equal(km_ring_push_spmc(ring, f), KM_OK);
    }
    km_ring_close(ring);
    for (int i = 0; i < 500 && !km_dsp_stage_done(st); i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    assert_true(km_dsp_stage_done(st));
    assert_int_equal(km_dsp_stage_lost(st), 0);
    km_dsp_stage_stop(st);
    int spasms = 0, on = 0;
    km_event e;
    while (km_event_queue_pop_spsc(q, &e)) {
        spasms += e.type == KM_EV_SPASM;
        on += e.type == KM_EV_ON_TARGET;
    }
    assert_int_equal(on, 1);
    assert_int_equal(spasms, 1);
    km_frame_free(f);
    km_event_queue_free(q);
    km_ring_free(ring);
    km_dsp_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hotspot_position_force_and_hold),
        cmocka_unit_test(test_twitch_found_at_its_time),
        cmocka_unit_test(test_cough_is_not_a_twitch),
        cmocka_unit_test(test_creep_is_not_a_release_but_a_release_is),
        cmocka_unit_test(test_twitch_shapes_rates_and_jitter),
        cmocka_unit_test(test_measured_rate_too_low_says_so),
        cmocka_unit_test(test_rate_not_stated),
        cmocka_unit_test(test_fidgets_are_not_twitches),
        cmocka_unit_test(test_passive_relaxation_is_not_a_release),
        cmocka_unit_test(test_release_before_a_shift_or_a_lift_off),
        cmocka_unit_test(test_bad_input_no_false_events),
        cmocka_unit_test(test_safety_limits),
        cmocka_unit_test(test_breathing_rate),
        cmocka_unit_test(test_spasm_off_at_low_rate_and_config_errors),
        cmocka_unit_test(test_event_queue),
        cmocka_unit_test(test_stage_on_its_own_thread),
        cmocka_unit_test(test_device_lost_and_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
