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
    for (size_t ci = 0; ci < 3; ci++) {
        const size_case *c = &cases[ci];
        km_sim_params p;
        km_sim_params_default(&p);
        p.rows = c->rows;
        p.cols = c->cols;
        p.pitch_mm = c->pitch;
        p.duration_s = c->frames / p.rate_hz;
        km_sim *sim;
        char err[256];
        if (km_sim_new(&p, &sim, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        uint32_t cells = (uint32_t)c->rows * c->cols;
        km_frame **frames = calloc((size_t)c->frames, sizeof *frames);
        int nf = 0;
        for (; nf < c->frames; nf++) {
            frames[nf] = km_frame_new(cells);
            if (km_sim_next(sim, frames[nf]) != KM_OK)
                break;
        }
        km_sim_free(sim);
        km_dsp_config cfg;
        km_dsp_config_default(&cfg);
        km_dsp *d;
        if (km_dsp_new(&cfg, c->rows, c->cols, c->pitch, p.rate_hz, &d, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        int pr, pc;
        km_dsp_fft_size(d, &pr, &pc);
        km_dsp_free(d);

        /* the whole stage */
        double *lat = malloc(sizeof(double) * (size_t)nf);
        double p50s[50], p99s[50], fps[50];
        km_event ev[64];
        for (int r = 0; r < reps; r++) {
            km_dsp_new(&cfg, c->rows, c->cols, c->pitch, p.rate_hz, &d, err, sizeof err);
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
        /* the bare FFT round trip, same size and flags */
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
        /* SciPy on the same frames */
        double scipy_us = NAN;
        if (have_scipy) {
            char path[] = "/tmp/km_bench_frames_XXXXXX";
            int fd = mkstemp(path);
            FILE *fp = fdopen(fd, "wb");
            for (int i = 0; i < nf; i++)
                fwrite(frames[i]->kpa, sizeof(float), cells, fp);
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
        }
        double dp50 = pct(p50s, reps, 0.5), dp99 = pct(p99s, reps, 0.5);
        double fft = pct(ffts, reps, 0.5), dfps = pct(fps, reps, 0.5);
        char name[32], fsz[32], sc[32], ratio[32];
        snprintf(name, sizeof name, "%ux%u", c->cols, c->rows);
        snprintf(fsz, sizeof fsz, "%dx%d", pc, pr);
        if (isnan(scipy_us)) {
            snprintf(sc, sizeof sc, "n/a");
            snprintf(ratio, sizeof ratio, "n/a");
        } else {
            snprintf(sc, sizeof sc, "%.1f", scipy_us);
            snprintf(ratio, sizeof ratio, "%.1f", scipy_us / dp50);
        }
        printf("%-9s %-9s %10.1f %10.1f %12.0f %12.1f %9.2f %12s %10s\n", name, fsz, dp50, dp99,
               dfps, fft, dp50 / fft, sc, ratio);
        for (int i = 0; i < nf; i++)
            km_frame_free(frames[i]);
        free(frames);
        free(lat);
    }
    if (!have_scipy)
        printf("(python3-scipy not installed: no SciPy comparison)\n");

    /* knotmat analyze end to end on a 64x32 100 Hz CSV recording */
    char csv[] = "/tmp/km_bench_XXXXXX.csv";
    int fd = mkstemps(csv, 4);
    close(fd);
    km_sim_params p;
    km_sim_params_default(&p);
    p.rows = 64;
    p.cols = 32;
    p.duration_s = 60;
    km_sim *sim;
    char err[256];
    km_sim_new(&p, &sim, err, sizeof err);
    km_csv_writer *w;
    km_csv_writer_open(csv, KM_OUT_FORCE, 64, 32, p.pitch_mm, 100, NULL, &w, err, sizeof err);
    km_frame *f = km_frame_new(64 * 32);
    while (km_sim_next(sim, f) == KM_OK)
        km_csv_writer_write(w, f->device_ns * 1e-9, f);
    km_csv_writer_close(w, err, sizeof err);
    km_sim_free(sim);
    double xs[50], parse_x[50], mem_x[50];
    /* the DSP alone on the same frames held in memory */
    km_frame **mem = calloc(6000, sizeof *mem);
    int nmem = 0;
    {
        km_source *src;
        km_source_open(csv, &src, err, sizeof err);
        while (nmem < 6000 && (mem[nmem] = km_frame_new(64 * 32)) &&
               km_source_read(src, mem[nmem]) == KM_OK)
            nmem++;
        km_source_close(src);
    }
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    for (int r = 0; r < reps; r++) {
        km_source *src;
        km_source_open(csv, &src, err, sizeof err);
        km_dsp *d;
        km_dsp_new(&cfg, 64, 32, p.pitch_mm, 100, &d, err, sizeof err);
        km_event ev[64];
        int n = 0;
        double t0 = now_s();
        while (km_source_read(src, f) == KM_OK) {
            km_dsp_process(d, f, ev, 64);
            n++;
        }
        xs[r] = (n / 100.0) / (now_s() - t0);
        km_dsp_free(d);
        km_source_close(src);
        km_source_open(csv, &src, err, sizeof err);
        t0 = now_s();
        n = 0;
        while (km_source_read(src, f) == KM_OK)
            n++;
        parse_x[r] = (n / 100.0) / (now_s() - t0);
        km_source_close(src);
        km_dsp_new(&cfg, 64, 32, p.pitch_mm, 100, &d, err, sizeof err);
        t0 = now_s();
        for (int i = 0; i < nmem; i++)
            km_dsp_process(d, mem[i], ev, 64);
        mem_x[r] = (nmem / 100.0) / (now_s() - t0);
        km_dsp_free(d);
    }
    for (int i = 0; i <= nmem && i < 6000; i++)
        km_frame_free(mem[i]);
    free(mem);
    printf("knotmat analyze, 64x32 at 100 Hz, 60 s CSV: %.0fx real time end to end "
           "(CSV reading alone %.0fx; the DSP alone on frames in memory %.0fx)\n",
           pct(xs, reps, 0.5), pct(parse_x, reps, 0.5), pct(mem_x, reps, 0.5));
    km_frame_free(f);
    unlink(csv);
    return 0;
}
