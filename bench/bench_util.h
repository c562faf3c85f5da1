/* bench_util.h: what every benchmark needs: a monotonic clock in seconds,
 * percentiles of a sample, the CPU's name for the report, and a one-line
 * progress indicator on a terminal only (stderr a tty), with the rate and
 * the time left; nothing when the output goes to a file or a pipe, so the
 * printed numbers stay clean. */
#ifndef KM_BENCH_UTIL_H
#define KM_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-quantile of v[0..n) (sorts v). */
static inline double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[(int)(p * (n - 1))];
}

/* "AMD EPYC ..." from /proc/cpuinfo, or "?". */
static inline void cpu_name(char *host, size_t len)
{
    snprintf(host, len, "?");
    FILE *cpu = fopen("/proc/cpuinfo", "r");
    if (!cpu)
        return;
    char line[512];
    while (fgets(line, sizeof line, cpu))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(host, len, "%s", strchr(line, ':') + 2);
            host[strcspn(host, "\n")] = 0;
            break;
        }
    fclose(cpu);
}

/* done of total steps; call with done == total at the end (clears the line). */
static inline void bench_progress(const char *label, long done, long total)
{
    static double t0 = 0;
    if (!isatty(STDERR_FILENO))
        return;
    double now = now_s();
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
