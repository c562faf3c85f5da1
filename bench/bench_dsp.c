/* bench_dsp.c: what the detection stage costs per frame, against the obvious
 * alternatives measured in the same run on the same frames.
 *
 * For 32x32, 64x64 and 185x105 frames (simulated: a person on a ball):
 *  - the whole km_dsp_process() (band-pass, peaks, tracking, hold, spasm
 *    STFT, release, breathing, safety): p50 and p99 per frame, frames/s on
 *    one core;
 *  - a bare FFTW r2c + c2r round trip of the same padded size (same planner
 *    flags, aligned buffers): the floor the stage is built on;
 *  - SciPy's way of finding peaks (ndimage.gaussian_filter + maximum_filter +
 *    threshold) on the same frames, when python3-scipy is installed.
 * Then `knotmat analyze` end to end (file reader + DSP, one thread) on a
 * 64x32 100 Hz recording: how many times faster than real time.
 * Medians of REPEATS passes. Prints numbers; asserts nothing.
 * Usage: bench_dsp [repeats] */
#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "knotmat/dsp.h"
#include "bench_util.h"
#include "knotmat/files.h"
#include "knotmat/outfile.h"
#include "knotmat/sim.h"
#include "knotmat/source.h"

typedef struct { uint16_t rows, cols; float pitch; int frames; } size_case;

/* `n` simulated frames of a person on a ball, for one frame size; returns
 * how many were made. */
static int sim_frames(const size_case *c, km_frame **frames, double *rate_hz)
{
    km_sim_params p;
    km_sim_params_default(&p);
    p.rows = c->rows;
    p.cols = c->cols;
    p.pitch_mm = c->pitch;
    p.duration_s = c->frames / p.rate_hz;
    *rate_hz = p.rate_hz;
    km_sim *sim;
    char err[256];
    if (km_sim_new(&p, &sim, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    int nf = 0;
    for (; nf < c->frames; nf++) {
        frames[nf] = km_frame_new((uint32_t)c->rows * c->cols);
        if (km_sim_next(sim, frames[nf]) != KM_OK) {
            km_frame_free(frames[nf]);
            break;
        }
    }
    km_sim_free(sim);
    return nf;
}

typedef struct {
    double p50, p99, fps; /* the whole stage: median over the passes */
    double fft;           /* the bare FFT round trip: median latency */
    double scipy;         /* SciPy's peaks, or NAN */
} size_result;

/* The whole stage, `reps` passes over the frames. */
static void time_stage(const size_case *c, double rate_hz, km_frame **frames, int nf, int reps,
                       double *lat, size_result *res)
{
    double p50s[50], p99s[50], fps[50];
    km_event ev[64];
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    char err[256];
    for (int r = 0; r < reps; r++) {
        km_dsp *d;
        km_dsp_new(&cfg, c->rows, c->cols, c->pitch, rate_hz, &d, err, sizeof err);
        double t0 = now_s();
        for (int i = 0; i < nf; i++) {
            double a = now_s();
            km_dsp_process(d, frames[i], ev, 64);
            lat[i] = (now_s() - a) * 1e6;
        }
        fps[r] = nf / (now_s() - t0);
        p50s[r] = pct(lat, nf, 0.5);
        p99s[r] = pct(lat, nf, 0.99);
        km_dsp_free(d);
    }
    res->p50 = pct(p50s, reps, 0.5);
    res->p99 = pct(p99s, reps, 0.5);
    res->fps = pct(fps, reps, 0.5);
}

/* The bare FFT round trip of the stage's padded size, same flags. */
static double time_bare_fft(const size_case *c, int pr, int pc, km_frame **frames, int nf,
                            int reps, double *lat)
{
    float *in = fftwf_alloc_real((size_t)pr * pc), *out = fftwf_alloc_real((size_t)pr * pc);
    fftwf_complex *spec = fftwf_alloc_complex((size_t)pr * (pc / 2 + 1));
    fftwf_plan fw = fftwf_plan_dft_r2c_2d(pr, pc, in, spec, FFTW_MEASURE);
    fftwf_plan bw = fftwf_plan_dft_c2r_2d(pr, pc, spec, out, FFTW_MEASURE);
    double ffts[50];
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < nf; i++) {
            memset(in, 0, sizeof(float) * (size_t)pr * pc);
            for (int y = 0; y < c->rows; y++)
                memcpy(in + (size_t)y * pc, frames[i]->kpa + (size_t)y * c->cols,
                       sizeof(float) * c->cols);
            double a = now_s();
            fftwf_execute(fw);
            fftwf_execute(bw);
            lat[i] = (now_s() - a) * 1e6;
        }
        ffts[r] = pct(lat, nf, 0.5);
    }
    fftwf_destroy_plan(fw);
    fftwf_destroy_plan(bw);
    fftwf_free(in);
    fftwf_free(out);
    fftwf_free(spec);
    return pct(ffts, reps, 0.5);
}

/* SciPy's way of finding peaks on the same frames: median latency in us. */
static double time_scipy(const char *py, const size_case *c, km_frame **frames, int nf, int reps)
{
    double scipy_us = NAN;
    char path[] = "/tmp/km_bench_frames_XXXXXX";
    int fd = mkstemp(path);
    FILE *fp = fdopen(fd, "wb");
    for (int i = 0; i < nf; i++)
        fwrite(frames[i]->kpa, sizeof(float), (size_t)c->rows * c->cols, fp);
    fclose(fp);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s -c \"\n"
             "import numpy as np, scipy.ndimage as nd, time\n"
             "f = np.fromfile('%s', dtype=np.float32).reshape(-1, %d, %d)\n"
             "best = []\n"
             "for r in range(%d):\n"
             "    lat = []\n"
             "    for x in f:\n"
             "        t = time.perf_counter()\n"
             "        g = nd.gaussian_filter(x, 1.0)\n"
             "        m = (g == nd.maximum_filter(g, size=3)) & (g > 30)\n"
             "        pk = np.argwhere(m)\n"
             "        lat.append(time.perf_counter() - t)\n"
             "    best.append(np.median(lat))\n"
             "print(np.median(best) * 1e6)\n\"",
             py, path, c->rows, c->cols, reps);
    FILE *pp = popen(cmd, "r");
    if (pp) {
        if (fscanf(pp, "%lf", &scipy_us) != 1)
            scipy_us = NAN;
        pclose(pp);
    }
    unlink(path);
    return scipy_us;
}

/* One frame size: the stage, the bare FFT, SciPy; one table row. */
static int bench_size(const size_case *c, int reps, const char *py)
{
    km_frame **frames = calloc((size_t)c->frames, sizeof *frames);
    double rate_hz;
    int nf = sim_frames(c, frames, &rate_hz);
    if (nf < 0) {
        free(frames);
        return 1;
    }
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    km_dsp *d;
    char err[256];
    if (km_dsp_new(&cfg, c->rows, c->cols, c->pitch, rate_hz, &d, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int pr, pc;
    km_dsp_fft_size(d, &pr, &pc);
    km_dsp_free(d);
    double *lat = malloc(sizeof(double) * (size_t)(nf > 0 ? nf : 1));
    size_result res;
    time_stage(c, rate_hz, frames, nf, reps, lat, &res);
    res.fft = time_bare_fft(c, pr, pc, frames, nf, reps, lat);
    res.scipy = py ? time_scipy(py, c, frames, nf, reps) : NAN;
    char name[32], fsz[32], sc[32], ratio[32];
    snprintf(name, sizeof name, "%ux%u", c->cols, c->rows);
    snprintf(fsz, sizeof fsz, "%dx%d", pc, pr);
    if (isnan(res.scipy)) {
        snprintf(sc, sizeof sc, "n/a");
        snprintf(ratio, sizeof ratio, "n/a");
    } else {
        snprintf(sc, sizeof sc, "%.1f", res.scipy);
        snprintf(ratio, sizeof ratio, "%.1f", res.scipy / res.p50);
    }
    printf("%-9s %-9s %10.1f %10.1f %12.0f %12.1f %9.2f %12s %10s\n", name, fsz, res.p50, res.p99,
           res.fps, res.fft, res.p50 / res.fft, sc, ratio);
    for (int i = 0; i < nf; i++)
        km_frame_free(frames[i]);
    free(frames);
    free(lat);
    return 0;
}

/* A 60 s 64x32 100 Hz CSV recording of the simulator at `csv`. */
static void write_csv(const char *csv, float *pitch_mm)
{
    km_sim_params p;
    km_sim_params_default(&p);
    p.rows = 64;
    p.cols = 32;
    p.duration_s = 60;
    *pitch_mm = p.pitch_mm;
    km_sim *sim;
    char err[256];
    km_sim_new(&p, &sim, err, sizeof err);
    km_csv_writer *w;
    km_csv_writer_open(csv, KM_OUT_FORCE, 64, 32, p.pitch_mm, 100, NULL, &w, err, sizeof err);
    km_frame *f = km_frame_new(64 * 32);
    while (km_sim_next(sim, f) == KM_OK)
        km_csv_writer_write(w, f->device_ns * 1e-9, f);
    km_csv_writer_close(w, err, sizeof err);
    km_frame_free(f);
    km_sim_free(sim);
}

/* Seconds of recording per second of work: read + DSP, reading alone, and
 * the DSP alone on the frames held in memory. */
static void time_analyze(const char *csv, float pitch_mm, km_frame **mem, int nmem, km_frame *f,
                         double *xs, double *parse_x, double *mem_x)
{
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    char err[256];
    km_event ev[64];
    km_source *src;
    km_source_open(csv, &src, err, sizeof err);
    km_dsp *d;
    km_dsp_new(&cfg, 64, 32, pitch_mm, 100, &d, err, sizeof err);
    int n = 0;
    double t0 = now_s();
    while (km_source_read(src, f) == KM_OK) {
        km_dsp_process(d, f, ev, 64);
        n++;
    }
    *xs = (n / 100.0) / (now_s() - t0);
    km_dsp_free(d);
    km_source_close(src);
    km_source_open(csv, &src, err, sizeof err);
    t0 = now_s();
    n = 0;
    while (km_source_read(src, f) == KM_OK)
        n++;
    *parse_x = (n / 100.0) / (now_s() - t0);
    km_source_close(src);
    km_dsp_new(&cfg, 64, 32, pitch_mm, 100, &d, err, sizeof err);
    t0 = now_s();
    for (int i = 0; i < nmem; i++)
        km_dsp_process(d, mem[i], ev, 64);
    *mem_x = (nmem / 100.0) / (now_s() - t0);
    km_dsp_free(d);
}

/* knotmat analyze end to end on a 64x32 100 Hz CSV recording. */
static void bench_analyze(int reps)
{
    char csv[] = "/tmp/km_bench_XXXXXX.csv";
    int fd = mkstemps(csv, 4);
    close(fd);
    float pitch_mm;
    write_csv(csv, &pitch_mm);
    char err[256];
    double xs[50], parse_x[50], mem_x[50];
    km_frame **mem = calloc(6000, sizeof *mem);
    int nmem = 0;
    km_source *src;
    km_source_open(csv, &src, err, sizeof err);
    while (nmem < 6000 && (mem[nmem] = km_frame_new(64 * 32)) &&
           km_source_read(src, mem[nmem]) == KM_OK)
        nmem++;
    km_source_close(src);
    km_frame *f = km_frame_new(64 * 32);
    for (int r = 0; r < reps; r++)
        time_analyze(csv, pitch_mm, mem, nmem, f, &xs[r], &parse_x[r], &mem_x[r]);
    for (int i = 0; i <= nmem && i < 6000; i++)
        km_frame_free(mem[i]);
    free(mem);
    printf("knotmat analyze, 64x32 at 100 Hz, 60 s CSV: %.0fx real time end to end "
           "(CSV reading alone %.0fx; the DSP alone on frames in memory %.0fx)\n",
           pct(xs, reps, 0.5), pct(parse_x, reps, 0.5), pct(mem_x, reps, 0.5));
    km_frame_free(f);
    unlink(csv);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1 || reps > 50)
        reps = 5;
    char host[256];
    cpu_name(host, sizeof host);
    /* Debian's python3 (which python3-scipy installs into) may not be the
     * first python3 on PATH */
    const char *py = "/usr/bin/python3";
    int have_scipy = system("/usr/bin/python3 -c 'import scipy.ndimage' >/dev/null 2>&1") == 0;
    if (!have_scipy) {
        py = "python3";
        have_scipy = system("python3 -c 'import scipy.ndimage' >/dev/null 2>&1") == 0;
    }
    printf(
        "DSP speed benchmark on %s (%ld cores online), FFTW_MEASURE plans, median of %d passes\n",
        host, sysconf(_SC_NPROCESSORS_ONLN), reps);
    printf("%-9s %-9s %10s %10s %12s %12s %9s %12s %10s\n", "frame", "FFT size", "dsp p50 us",
           "dsp p99 us", "dsp frames/s", "bare FFT us", "dsp/FFT", "scipy us", "scipy/dsp");
    static const size_case cases[] = {
        {32, 32, 12.7f, 3000}, {64, 64, 6.35f, 2000}, {105, 185, 1.25f, 600}};
    for (size_t ci = 0; ci < 3; ci++)
        if (bench_size(&cases[ci], reps, have_scipy ? py : NULL))
            return 1;
    if (!have_scipy)
        printf("(python3-scipy not installed: no SciPy comparison)\n");
    bench_analyze(reps);
    return 0;
}
