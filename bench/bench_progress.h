/* bench_progress.h: a one-line progress indicator for the benchmarks, on a
 * terminal only (stderr a tty), with the rate and the time left; nothing
 * when the output goes to a file or a pipe, so the printed numbers stay
 * clean. */
#ifndef KM_BENCH_PROGRESS_H
#define KM_BENCH_PROGRESS_H

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static inline double bench_progress_now_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* done of total steps; call with done == total at the end (clears the line). */
static inline void bench_progress(const char *label, long done, long total)
{
    static double t0 = 0;
    if (!isatty(STDERR_FILENO))
        return;
    double now = bench_progress_now_();
    if (done == 0 || t0 == 0)
        t0 = now;
    if (done >= total) {
        fprintf(stderr, "\r\x1b[K");
        t0 = 0;
        return;
    }
    double el = now - t0, left = done > 0 ? el * (total - done) / done : 0;
    fprintf(stderr, "\r%s %ld/%ld  %.1f/s  %d:%02d left\x1b[K", label, done, total,
            el > 0 ? done / el : 0.0, (int)left / 60, (int)left % 60);
    fflush(stderr);
}

#endif
