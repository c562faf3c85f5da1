/* test_sim.c: the simulated mat is deterministic, plays what each scenario
 * promises, and its frames obey the physics it documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "knotmat/sim.h"
#include "knotmat/stats.h"

static km_sim *make(const char *scenario, uint64_t seed, double duration)
{
    km_sim_params p;
    km_sim_params_default(&p);
    snprintf(p.scenario, sizeof p.scenario, "%s", scenario);
    p.seed = seed;
    p.duration_s = duration;
    km_sim *s;
    char err[256];
    assert_int_equal(km_sim_new(&p, &s, err, sizeof err), KM_OK);
    return s;
}

static void test_deterministic_from_seed(void **state)
{
    (void)state;
    km_sim *a = make("busy", 5, 10), *b = make("busy", 5, 10), *c = make("busy", 6, 10);
    km_frame *fa = km_frame_new(1024), *fb = km_frame_new(1024), *fc = km_frame_new(1024);
    int differ = 0;
    for (int i = 0; i < 600; i++) {
        assert_int_equal(km_sim_next(a, fa), KM_OK);
        assert_int_equal(km_sim_next(b, fb), KM_OK);
        assert_int_equal(km_sim_next(c, fc), KM_OK);
        assert_memory_equal(fa->kpa, fb->kpa, 1024 * sizeof(float));
        assert_memory_equal(fa->raw, fb->raw, 1024 * sizeof(uint16_t));
        differ |= memcmp(fa->raw, fc->raw, 1024 * sizeof(uint16_t)) != 0;
    }
    assert_true(differ);
    km_frame_free(fa);
    km_frame_free(fb);
    km_frame_free(fc);
    km_sim_free(a);
    km_sim_free(b);
    km_sim_free(c);
}

static int count(const km_sim *s, enum km_sim_event_type t)
{
    const km_sim_event *ev;
    size_t n = km_sim_truth(s, &ev), k = 0;
    for (size_t i = 0; i < n; i++)
        k += ev[i].type == t;
    return (int)k;
}

static void test_scenarios_play_what_they_promise(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        for (const char *const *sc = km_sim_scenarios(); *sc; sc++) {
            km_sim *s = make(*sc, seed, 120);
            const km_sim_event *ev;
            size_t n = km_sim_truth(s, &ev);
            for (size_t i = 1; i < n; i++)
                assert_true(ev[i].t_s >= ev[i - 1].t_s);
            int sp = count(s, KM_SIM_SPASM), rel = count(s, KM_SIM_RELEASE);
            int targets = !strcmp(*sc, "release") || !strcmp(*sc, "talk") ||
                          !strcmp(*sc, "busy") || !strcmp(*sc, "shift_release") ||
                          !strcmp(*sc, "double");
            if (targets) {
                assert_true(sp >= 1);
                assert_int_equal(rel, !strcmp(*sc, "double") ? 2 : 1);
                for (size_t i = 0; i < n; i++) {
                    if (ev[i].type == KM_SIM_RELEASE) {
                        assert_true(ev[i].magnitude >= 0.10 && ev[i].magnitude <= 0.30);
                        assert_true(i > 0); /* a twitch comes first */
                    }
                    if (ev[i].type == KM_SIM_SPASM || ev[i].type == KM_SIM_RELEASE) {
                        assert_true(ev[i].x_mm > 0 && ev[i].x_mm < 31 * 12.7);
                        assert_true(ev[i].y_mm > 0 && ev[i].y_mm < 31 * 12.7);
                    }
                }
            } else {
                assert_int_equal(sp, 0);
                assert_int_equal(rel, 0);
            }
            if (!strcmp(*sc, "roll_off"))
                assert_int_equal(count(s, KM_SIM_ROLL_OFF), 1);
            if (!strcmp(*sc, "cough"))
                assert_true(count(s, KM_SIM_COUGH) >= 5);
            if (!strcmp(*sc, "restless"))
                assert_true(count(s, KM_SIM_SHIFT) >= 8);
            if (!strcmp(*sc, "talk"))
                assert_true(count(s, KM_SIM_TALK) >= 1);
            km_sim_free(s);
        }
    }
}

/* Force (N) inside a disc of radius_cells around (x_mm, y_mm). */
static double disc_force(const km_frame *f, double x, double y, double r_in, double r_out)
{
    double s = 0, cell = (double)f->pitch_mm * f->pitch_mm * 1e-3; /* kPa -> N */
    for (int r = 0; r < f->rows; r++)
        for (int c = 0; c < f->cols; c++) {
            double d = hypot(c * f->pitch_mm - x, r * f->pitch_mm - y) / f->pitch_mm;
            if (d >= r_in && d < r_out)
                s += f->kpa[r * f->cols + c] * cell;
        }
    return s;
}

typedef struct { double t, total, ball, ring; int peak_r, peak_c; } sample;

static sample *run_release(km_sim *s, size_t *n)
{
    sample *v = calloc(12000, sizeof *v);
    const km_sim_event *ev;
    size_t ne = km_sim_truth(s, &ev);
    double bx = 0, by = 0;
    for (size_t i = 0; i < ne; i++)
        if (ev[i].type == KM_SIM_RELEASE) {
            bx = ev[i].x_mm;
            by = ev[i].y_mm;
        }
    km_frame *f = km_frame_new(1024);
    size_t k = 0;
    while (km_sim_next(s, f) == KM_OK) {
        km_frame_summary sum;
        km_frame_summarize(f, &sum);
        v[k].t = f->device_ns * 1e-9;
        v[k].total = sum.total_force_n;
        v[k].ball = disc_force(f, bx, by, 0, 2.5);
        v[k].ring = disc_force(f, bx, by, 3, 8);
        v[k].peak_r = (int)sum.peak_row;
        v[k].peak_c = (int)sum.peak_col;
        k++;
    }
    km_frame_free(f);
    *n = k;
    return v;
}

static double mean_between(const sample *v, size_t n, double t0, double t1, size_t off)
{
    double s = 0;
    int k = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].t >= t0 && v[i].t < t1) {
            s += *(const double *)((const char *)&v[i] + off);
            k++;
        }
    return k ? s / k : NAN;
}

static void test_release_physics(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        km_sim *s = make("release", seed, 120);
        const km_sim_event *ev;
        size_t ne = km_sim_truth(s, &ev);
        const km_sim_event *rel = NULL, *sp = NULL;
        for (size_t i = 0; i < ne; i++) {
            if (ev[i].type == KM_SIM_RELEASE)
                rel = &ev[i];
            if (ev[i].type == KM_SIM_SPASM && !sp)
                sp = &ev[i];
        }
        size_t n;
        sample *v = run_release(s, &n);
        assert_int_equal(n, 12000);
        /* load on the mat: the upper-trunk share of 70 kg (206 N), plus creep */
        double total = mean_between(v, n, 10, 20, offsetof(sample, total));
        assert_true(total > 180 && total < 270);
        /* the hottest cell sits on the ball during the hold */
        for (size_t i = 1000; i < 2000; i += 100) {
            assert_true(fabs(v[i].peak_c * 12.7 - rel->x_mm) <= 12.7);
            assert_true(fabs(v[i].peak_r * 12.7 - rel->y_mm) <= 12.7);
        }
        /* release: from its onset the ball force falls, the body's contact
         * around it grows; level before the onset */
        double tau = fabs(rel->duration_s), done = rel->t_s + 4 * tau + 1;
        double b0 = mean_between(v, n, rel->t_s - 4, rel->t_s, offsetof(sample, ball));
        double b1 = mean_between(v, n, done, done + 4, offsetof(sample, ball));
        double r0 = mean_between(v, n, rel->t_s - 4, rel->t_s, offsetof(sample, ring));
        double r1 = mean_between(v, n, done, done + 4, offsetof(sample, ring));
        assert_true(b1 < b0 * (1 - 0.6 * rel->magnitude) && b1 > b0 * 0.6);
        assert_true(r1 > r0 * 1.03);
        /* spasm: a brief transient in ball force (either sign first) */
        double base = mean_between(v, n, sp->t_s - 1, sp->t_s, offsetof(sample, ball));
        double dev = 0;
        for (size_t i = 0; i < n; i++)
            if (v[i].t >= sp->t_s && v[i].t < sp->t_s + 0.6)
                dev = fmax(dev, fabs(v[i].ball - base));
        assert_true(sp->duration_s >= 0.06 && sp->duration_s <= 1.3);
        assert_true(fabs(sp->magnitude) >= 0.04 && fabs(sp->magnitude) <= 0.25);
        assert_true(dev > base * fabs(sp->magnitude) * 0.3);
        double after = mean_between(v, n, sp->t_s + sp->duration_s + 0.3,
                                    sp->t_s + sp->duration_s + 0.8, offsetof(sample, ball));
        /* brief: once the burst is over the force is back inside its
         * breathing range */
        double lo = 1e9, hi = 0;
        for (size_t i = 0; i < n; i++)
            if (v[i].t >= sp->t_s - 3 && v[i].t < sp->t_s) {
                lo = fmin(lo, v[i].ball);
                hi = fmax(hi, v[i].ball);
            }
        assert_true(after > lo * 0.97 && after < hi * 1.03);
        free(v);
        km_sim_free(s);
    }
}

/* Lifting off the ball unloads it smoothly: the ball force does not jump
 * at the moment the person starts to lift (the tissue's relaxation is not
 * undone at once; a step there was read as a twitch). */
static void test_lift_off_is_smooth(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        km_sim *s = make("double", seed, 150);
        const km_sim_event *ev;
        size_t ne = km_sim_truth(s, &ev);
        int offs = 0;
        for (size_t i = 0; i < ne; i++) {
            if (ev[i].type != KM_SIM_OFF_BALL)
                continue;
            offs++;
            double x, y, f0, f;
            km_sim_ball_truth(s, ev[i].t_s - 0.01, &x, &y, &f0);
            for (double t = ev[i].t_s; t < ev[i].t_s + 1.0; t += 0.01) {
                km_sim_ball_truth(s, t, &x, &y, &f);
                if (f > f0 * 1.03)
                    fail_msg("seed %u: ball force %.1f N at %.2f s, %.1f N as the lift began",
                             (unsigned)seed, f, t, f0);
            }
        }
        assert_int_equal(offs, 1);
        km_sim_free(s);
    }
}

static void test_breathing_in_band(void **state)
{
    (void)state;
    km_sim *s = make("no_release", 4, 70);
    size_t n;
    sample *v = run_release(s, &n);
    /* DFT of the total load between 10 s and 70 s, 0.05-2 Hz */
    double best_f = 0, best = 0, heart = 0;
    for (double fq = 0.05; fq <= 2.0; fq += 0.005) {
        double re = 0, im = 0, m = mean_between(v, n, 10, 70, offsetof(sample, total));
        for (size_t i = 1000; i < n; i++) {
            re += (v[i].total - m) * cos(2 * M_PI * fq * v[i].t);
            im += (v[i].total - m) * sin(2 * M_PI * fq * v[i].t);
        }
        double p = re * re + im * im;
        if (p > best) {
            best = p;
            best_f = fq;
        }
        if (fq >= 1.0 && fq <= 1.4 && p > heart)
            heart = p;
    }
    assert_true(best_f >= 0.18 && best_f <= 0.36); /* breathing 0.2-0.33 Hz */
    assert_true(heart > 0 && heart < best);         /* a weaker heartbeat line */
    free(v);
    km_sim_free(s);
}

static void test_sensor_model(void **state)
{
    (void)state;
    km_sim_params p;
    km_sim_params_default(&p);
    char err[256];
    assert_int_equal(km_sim_params_set(&p, "full_scale", "50", err, sizeof err), KM_OK);
    assert_int_equal(km_sim_params_set(&p, "dead", "0.05", err, sizeof err), KM_OK);
    assert_int_equal(km_sim_params_set(&p, "rows", "24", err, sizeof err), KM_OK);
    p.duration_s = 10;
    km_sim *s;
    assert_int_equal(km_sim_new(&p, &s, err, sizeof err), KM_OK);
    km_frame *f = km_frame_new(24 * 32);
    for (int i = 0; i < 800; i++)
        assert_int_equal(km_sim_next(s, f), KM_OK);
    assert_int_equal(f->rows, 24);
    assert_true(f->n_saturated > 0);
    assert_true(f->n_dead >= 10 && f->n_dead <= 70);
    double lsb = 50.0 / 4095;
    for (uint32_t i = 0; i < km_frame_cells(f); i++) {
        if (f->cell_flags[i] & KM_CELL_DEAD)
            assert_int_equal(f->raw[i], 0);
        if (f->cell_flags[i] & KM_CELL_SATURATED)
            assert_int_equal(f->raw[i], 4095);
        assert_true(fabs(f->kpa[i] - f->raw[i] * lsb) < 1e-3);
    }
    /* the simulation ends after its duration */
    int rc;
    while ((rc = km_sim_next(s, f)) == KM_OK)
        ;
    assert_int_equal(rc, KM_EEOF);
    km_frame_free(f);
    km_sim_free(s);
}

static void test_parameter_errors(void **state)
{
    (void)state;
    km_sim_params p;
    km_sim_params_default(&p);
    char err[256];
    assert_int_equal(km_sim_params_set(&p, "scenario", "nap", err, sizeof err), KM_EUNSUPPORTED);
    assert_non_null(strstr(err, "unknown scenario 'nap'"));
    assert_int_equal(km_sim_params_set(&p, "rate", "0", err, sizeof err), KM_EINVAL);
    assert_int_equal(km_sim_params_set(&p, "rate", "abc", err, sizeof err), KM_EINVAL);
    assert_int_equal(km_sim_params_set(&p, "colour", "red", err, sizeof err), KM_EINVAL);
    assert_non_null(strstr(err, "unknown parameter 'colour'"));
    assert_int_equal(km_sim_params_set(&p, "ball", "40", err, sizeof err), KM_OK);
    assert_true(p.ball_mm == 40);
}

/* sim2://, the simulator written apart: deterministic, its scenarios play
 * what they promise, its mat carries the trunk's load, its scans come at the
 * stated rate on average with jittered, increasing timestamps. */
static km_sim *make2(const char *scenario, uint64_t seed, double duration, double jitter)
{
    km_sim_params p;
    km_sim_params_default(&p);
    p.model = 2;
    char err[256];
    assert_int_equal(km_sim_params_set(&p, "scenario", scenario, err, sizeof err), KM_OK);
    p.seed = seed;
    p.duration_s = duration;
    p.jitter = jitter;
    km_sim *s;
    assert_int_equal(km_sim_new(&p, &s, err, sizeof err), KM_OK);
    return s;
}

static void test_sim2(void **state)
{
    (void)state;
    char err[256];
    km_sim_params p;
    km_sim_params_default(&p);
    p.model = 2;
    /* its own scenarios, not sim://'s */
    assert_int_equal(km_sim_params_set(&p, "scenario", "release", err, sizeof err),
                     KM_EUNSUPPORTED);
    for (uint64_t seed = 1; seed <= 4; seed++)
        for (const char *const *sc = km_sim_model_scenarios(2); *sc; sc++) {
            km_sim *s = make2(*sc, seed, 240, 0);
            int sp = count(s, KM_SIM_SPASM), rel = count(s, KM_SIM_RELEASE);
            const km_sim_event *ev;
            size_t n = km_sim_truth(s, &ev);
            for (size_t i = 0; i < n; i++) {
                if (i)
                    assert_true(ev[i].t_s >= ev[i - 1].t_s);
                if (ev[i].type == KM_SIM_SPASM)
                    assert_true(fabs(ev[i].magnitude) >= 0.04 && fabs(ev[i].magnitude) <= 0.25);
                if (ev[i].type == KM_SIM_RELEASE)
                    assert_true(ev[i].magnitude >= 0.09 && ev[i].magnitude <= 0.31);
            }
            if (!strcmp(*sc, "session"))
                assert_true(sp >= 1 && rel >= 1);
            else
                assert_true(sp == 0 && rel == 0);
            km_sim_free(s);
        }
    km_sim *a = make2("session", 3, 20, 0.3), *b = make2("session", 3, 20, 0.3);
    km_frame *fa = km_frame_new(1024), *fb = km_frame_new(1024);
    int frames = 0;
    double last = -1, total = 0;
    while (km_sim_next(a, fa) == KM_OK) {
        assert_int_equal(km_sim_next(b, fb), KM_OK);
        assert_memory_equal(fa->kpa, fb->kpa, 1024 * sizeof(float));
        assert_true(fa->device_ns * 1e-9 > last);
        last = fa->device_ns * 1e-9;
        if (last > 10) {
            km_frame_summary sum;
            km_frame_summarize(fa, &sum);
            total += sum.total_force_n;
            frames++;
        }
    }
    /* about 100 frames/s over 20 s (a missed scan in 500, jitter averages out) */
    assert_true(last > 19.5 && last < 20.0);
    /* the trunk's share of 70 kg (165-233 N) read through the FSR's response */
    total /= frames;
    assert_true(total > 110 && total < 330);
    km_frame_free(fa);
    km_frame_free(fb);
    km_sim_free(a);
    km_sim_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_from_seed),
        cmocka_unit_test(test_scenarios_play_what_they_promise),
        cmocka_unit_test(test_release_physics),
        cmocka_unit_test(test_lift_off_is_smooth),
        cmocka_unit_test(test_breathing_in_band),
        cmocka_unit_test(test_sensor_model),
        cmocka_unit_test(test_parameter_errors),
        cmocka_unit_test(test_sim2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
