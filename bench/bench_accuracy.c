/* bench_accuracy.c: how well the detectors find spasms and releases.
 *
 * Corpus: every simulator scenario x 5 seeds (2 minutes each, 100 Hz, 32x32 at
 * 12.7 mm), made in memory; the detector sees only frames (never the truth,
 * never the seed). Then a held-out set the detector was never tuned on:
 * other seeds, body masses, grids, pitches and ball sizes. Then every real
 * PmatData recording (people on a bed, no ball, no release): any spasm or
 * release there is a false alarm.
 * Matching: a detection matches an unmatched truth of its type within 0.5 s
 * (spasm) or 2 s (release). Prints per type precision, recall, F1, median
 * timing error, live detection delay (frame on which it was decided minus the
 * true onset), hotspot position error (RMS, mm and fraction of the pitch),
 * and false alarms per hour on recordings without targets.
 * Usage: bench_accuracy [PMATDATA_DIR]   (default ../shared/data/pmatdata-S1,
 * then tests/data/pmatdata-S1). A benchmark: it prints, it asserts nothing. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "knotmat/dsp.h"
#include "knotmat/sim.h"
#include "knotmat/source.h"

#define MAXV 100000

typedef struct {
    int tp, fp, fn;
    double terr[MAXV / 10], delay[MAXV / 10];
    int nterr;
} score_t;

typedef struct {
    score_t spasm, release;
    double pos_sq_mm, pos_sq_pitch;
    long pos_n, pos_missing;
    double fa_hours;
    int fa_count;
    double frames, seconds_cpu;
} tally_t;

static double median_abs(double *v, int n, int absval)
{
    if (!n)
        return NAN;
    double *c = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++)
        c[i] = absval ? fabs(v[i]) : v[i];
    qsort(c, (size_t)n, sizeof *c, cmp_d);
    double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return m;
}

static double p90(double *v, int n)
{
    if (!n)
        return NAN;
    double *c = malloc(sizeof(double) * (size_t)n);
    memcpy(c, v, sizeof(double) * (size_t)n);
    qsort(c, (size_t)n, sizeof *c, cmp_d);
    double m = c[(int)(0.9 * (n - 1))];
    free(c);
    return m;
}

static void match(score_t *sc, const km_sim_event *truth, size_t nt, enum km_sim_event_type tt,
                  const km_event *det, size_t nd, enum km_event_type dt, double tol, int *tp_out,
                  int *fp_out, int *fn_out)
{
    int used[64] = {0};
    int tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < nd; i++) {
        if (det[i].type != dt)
            continue;
        int best = -1;
        double bd = tol;
        for (size_t k = 0; k < nt && k < 64; k++)
            if (truth[k].type == tt && !used[k] && fabs(det[i].t_s - truth[k].t_s) <= bd) {
                bd = fabs(det[i].t_s - truth[k].t_s);
                best = (int)k;
            }
        if (best < 0) {
            fp++;
            continue;
        }
        used[best] = 1;
        tp++;
        if (sc->nterr < MAXV / 10) {
            sc->terr[sc->nterr] = det[i].t_s - truth[best].t_s;
            sc->delay[sc->nterr] = det[i].detected_t_s - truth[best].t_s;
            sc->nterr++;
        }
    }
    for (size_t k = 0; k < nt && k < 64; k++)
        fn += truth[k].type == tt && !used[k];
    sc->tp += tp;
    sc->fp += fp;
    sc->fn += fn;
    *tp_out = tp;
    *fp_out = fp;
    *fn_out = fn;
}

static int has_targets(const km_sim *s)
{
    const km_sim_event *ev;
    size_t n = km_sim_truth(s, &ev);
    for (size_t i = 0; i < n; i++)
        if (ev[i].type == KM_SIM_SPASM || ev[i].type == KM_SIM_RELEASE)
            return 1;
    return 0;
}

static void run_sim(const km_sim_params *p, tally_t *t, int verbose)
{
    km_sim *sim;
    char err[256];
    if (km_sim_new(p, &sim, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    cfg.ball_mm = p->ball_mm; /* the user tells knotmat which ball they use */
    cfg.fftw_measure = 0;
    km_dsp *d;
    if (km_dsp_new(&cfg, p->rows, p->cols, p->pitch_mm, p->rate_hz, &d, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    km_frame *f = km_frame_new((uint32_t)p->rows * p->cols);
    static km_event ev[4096];
    size_t nev = 0;
    km_event buf[64];
    while (km_sim_next(sim, f) == KM_OK) {
        size_t n = km_dsp_process(d, f, buf, 64);
        for (size_t i = 0; i < n && nev < 4096; i++)
            if (buf[i].type == KM_EV_SPASM || buf[i].type == KM_EV_RELEASE)
                ev[nev++] = buf[i];
        /* position error while the ball is loaded and still */
        double tt = f->device_ns * 1e-9, x, y, force, x2, y2, f2;
        km_sim_ball_truth(sim, tt, &x, &y, &force);
        km_sim_ball_truth(sim, tt - 0.3, &x2, &y2, &f2);
        if (force > 30 && hypot(x - x2, y - y2) < 0.1) {
            const km_hotspot *h;
            size_t nh = km_dsp_hotspots(d, &h);
            double best = 1e9;
            for (size_t i = 0; i < nh; i++)
                best = fmin(best, hypot(h[i].x_mm - x, h[i].y_mm - y));
            if (best < 30) {
                t->pos_sq_mm += best * best;
                t->pos_sq_pitch += best * best / ((double)p->pitch_mm * p->pitch_mm);
                t->pos_n++;
            } else {
                t->pos_missing++;
            }
        }
        t->frames++;
    }
    const km_sim_event *truth;
    size_t nt = km_sim_truth(sim, &truth);
    int stp, sfp, sfn, rtp, rfp, rfn;
    match(&t->spasm, truth, nt, KM_SIM_SPASM, ev, nev, KM_EV_SPASM, 0.5, &stp, &sfp, &sfn);
    match(&t->release, truth, nt, KM_SIM_RELEASE, ev, nev, KM_EV_RELEASE, 2.0, &rtp, &rfp, &rfn);
    if (!has_targets(sim)) {
        t->fa_hours += p->duration_s / 3600.0;
        t->fa_count += sfp + rfp;
    }
    if (verbose && (sfp || sfn || rfp || rfn)) {
        printf("    %-14s seed %-4llu spasm tp %d fp %d fn %d, release tp %d fp %d fn %d\n",
               p->scenario, (unsigned long long)p->seed, stp, sfp, sfn, rtp, rfp, rfn);
        for (size_t i = 0; i < nt; i++)
            if (truth[i].type == KM_SIM_SPASM || truth[i].type == KM_SIM_RELEASE)
                printf("        truth %-8s %7.2f s\n", km_sim_event_name(truth[i].type),
                       truth[i].t_s);
        for (size_t i = 0; i < nev; i++)
            printf("        found %-8s %7.2f s (decided %.2f s)\n", km_event_type_name(ev[i].type),
                   ev[i].t_s, ev[i].detected_t_s);
    }
    km_frame_free(f);
    km_dsp_free(d);
    km_sim_free(sim);
}

static void print_type(const char *name, const score_t *s, double tol)
{
    double p = s->tp + s->fp ? (double)s->tp / (s->tp + s->fp) : 0;
    double r = s->tp + s->fn ? (double)s->tp / (s->tp + s->fn) : 0;
    double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
    score_t *m = (score_t *)s;
    printf(
        "  %-8s tp %4d fp %4d fn %4d  precision %.3f recall %.3f F1 %.3f  "
        "|timing error| median %.3f s  live delay median %.3f s p90 %.3f s  (tolerance %.1f s)\n",
        name, s->tp, s->fp, s->fn, p, r, f1, median_abs(m->terr, s->nterr, 1),
        median_abs(m->delay, s->nterr, 0), p90(m->delay, s->nterr), tol);
}

static void report(const char *title, tally_t *t)
{
    printf("%s\n", title);
    print_type("spasm", &t->spasm, 0.5);
    print_type("release", &t->release, 2.0);
    printf(
        "  hotspot position error: RMS %.2f mm = %.3f pitch over %ld frames (%ld frames with the "
        "ball loaded but no hotspot within 30 mm)\n",
        sqrt(t->pos_sq_mm / (t->pos_n ? t->pos_n : 1)),
        sqrt(t->pos_sq_pitch / (t->pos_n ? t->pos_n : 1)), t->pos_n, t->pos_missing);
    printf("  false alarms (spasm + release) on recordings without targets: %d in %.2f h = %.2f "
           "per hour\n",
           t->fa_count, t->fa_hours, t->fa_hours > 0 ? t->fa_count / t->fa_hours : 0);
}

static int real_data(const char *dir)
{
    DIR *dd = opendir(dir);
    if (!dd)
        return -1;
    struct dirent *e;
    int files = 0, spasm = 0, release = 0, holds = 0, hotspots = 0;
    long frames = 0;
    while ((e = readdir(dd))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".txt"))
            continue;
        char uri[1200], err[512];
        snprintf(uri, sizeof uri, "file://%s/%s", dir, e->d_name);
        km_source *src;
        if (km_source_open(uri, &src, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            continue;
        }
        km_source_info info;
        km_source_describe(src, &info);
        km_dsp_config cfg;
        km_dsp_config_default(&cfg);
        cfg.fftw_measure = 0;
        km_dsp *d;
        if (km_dsp_new(&cfg, info.rows, info.cols, info.pitch_mm, info.rate_hz, &d, err,
                       sizeof err)) {
            km_source_close(src);
            continue;
        }
        km_frame *f = km_frame_new(km_source_max_cells(src));
        km_event ev[64];
        while (km_source_read(src, f) == KM_OK) {
            size_t n = km_dsp_process(d, f, ev, 64);
            for (size_t i = 0; i < n; i++) {
                spasm += ev[i].type == KM_EV_SPASM;
                release += ev[i].type == KM_EV_RELEASE;
                holds += ev[i].type == KM_EV_ON_TARGET;
                hotspots += ev[i].type == KM_EV_HOTSPOT;
            }
            frames++;
        }
        files++;
        km_frame_free(f);
        km_dsp_free(d);
        km_source_close(src);
    }
    closedir(dd);
    printf("real PmatData recordings (%s): %d files, %ld frames: false spasms %d, false releases "
           "%d (hotspots %d, holds %d)\n",
           dir, files, frames, spasm, release, hotspots, holds);
    return spasm + release;
}

int main(int argc, char **argv)
{
    int verbose = getenv("KM_BENCH_VERBOSE") != NULL;
    static tally_t tune, held;
    memset(&tune, 0, sizeof tune);
    memset(&held, 0, sizeof held);
    const char *const *sc = km_sim_scenarios();
    int nsc = 0;
    while (sc[nsc])
        nsc++;
    printf("accuracy benchmark: %d scenarios x 5 seeds x 120 s at 100 Hz (32x32, 12.7 mm, 70 kg, "
           "63 mm ball), then a held-out set\n", nsc);
    long step = 0, steps = (long)nsc * 5 + 6L * nsc;
    for (int i = 0; i < nsc; i++)
        for (uint64_t seed = 1; seed <= 5; seed++) {
            bench_progress("sessions", step++, steps);
            km_sim_params p;
            km_sim_params_default(&p);
            snprintf(p.scenario, sizeof p.scenario, "%s", sc[i]);
            p.seed = seed;
            run_sim(&p, &tune, verbose);
        }
    if (isatty(STDERR_FILENO))
        fputs("\r\x1b[K", stderr); /* the progress line gives way to the table */
    report("tuning corpus (seeds 1-5):", &tune);
    /* held out: other people, mats and balls */
    static const struct { uint16_t rows, cols; float pitch; double weight, ball, rate; } var[] = {
        {32, 32, 12.7f, 55, 63, 100}, {32, 32, 12.7f, 95, 63, 100}, {48, 48, 8.5f, 70, 63, 100},
        {24, 24, 16.0f, 80, 63, 100}, {32, 32, 12.7f, 70, 80, 100}, {40, 40, 10.0f, 65, 50, 120},
    };
    for (size_t v = 0; v < sizeof var / sizeof var[0]; v++)
        for (int i = 0; i < nsc; i++) {
            bench_progress("sessions", step++, steps);
            km_sim_params p;
            km_sim_params_default(&p);
            snprintf(p.scenario, sizeof p.scenario, "%s", sc[i]);
            p.seed = 101 + v * 17 + (uint64_t)i;
            p.rows = var[v].rows;
            p.cols = var[v].cols;
            p.pitch_mm = var[v].pitch;
            p.weight_kg = var[v].weight;
            p.ball_mm = var[v].ball;
            p.rate_hz = var[v].rate;
            run_sim(&p, &held, verbose);
        }
    bench_progress("sessions", steps, steps);
    report(
        "held-out corpus (6 variants of body mass, grid, pitch, ball and rate x every scenario):",
        &held);
    const char *dir = argc > 1 ? argv[1] : "../shared/data/pmatdata-S1";
    if (real_data(dir) < 0 && real_data("tests/data/pmatdata-S1") < 0)
        printf("real PmatData recordings: directory not found\n");
    return 0;
}
