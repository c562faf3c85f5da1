/* validate.c: the one set of bounds on what a file or device may say
 * (geometry, pitch, rate, time, cell values; the numbers are in
 * include/knotmat/frame.h and docs/file-format.md "Bounds"). Every reader
 * (knotmat CSV, PmatData, Tekscan, XSENSOR, .kmr) calls these, so the
 * resources the rest of the pipeline takes (FFT sizes, bins, pages) are
 * bounded by construction. Touches nothing. */
#include <math.h>
#include <stdio.h>

#include "internal.h"

int km_check_geometry_(double rows, double cols, double pitch_mm, char *why, size_t n)
{
    if (!(rows >= 1 && rows <= KM_FRAME_MAX_DIM && cols >= 1 && cols <= KM_FRAME_MAX_DIM) ||
        rows != floor(rows) || cols != floor(cols)) {
        km_errf_(why, n, "%g x %g cells: a mat has 1 to %d rows and columns", rows, cols,
                 KM_FRAME_MAX_DIM);
        return KM_EFORMAT;
    }
    if (!(pitch_mm >= KM_PITCH_MIN_MM && pitch_mm <= KM_PITCH_MAX_MM)) {
        km_errf_(why, n, "cell pitch %g mm is outside %g-%g mm", pitch_mm, KM_PITCH_MIN_MM,
                 KM_PITCH_MAX_MM);
        return KM_EFORMAT;
    }
    return KM_OK;
}

int km_check_rate_(double rate_hz, char *why, size_t n)
{
    if (rate_hz == 0)
        return KM_OK; /* not stated: measured from the frames' times */
    if (!(rate_hz >= KM_RATE_MIN_HZ && rate_hz <= KM_RATE_MAX_HZ)) {
        km_errf_(why, n, "frame rate %g Hz is outside %g-%g Hz", rate_hz, KM_RATE_MIN_HZ,
                 KM_RATE_MAX_HZ);
        return KM_EFORMAT;
    }
    return KM_OK;
}

int km_check_time_s_(double t_s, char *why, size_t n)
{
    /* device_ns must hold it without overflow, with room for differences */
    if (!(fabs(t_s) <= 4.0e9)) {
        km_errf_(why, n, "time %g s is outside +-4e9 s", t_s);
        return KM_EFORMAT;
    }
    return KM_OK;
}

int km_frame_check_(km_frame_checker_ *c, const km_frame *f, char *why, size_t n)
{
    if (c->have) {
        int64_t back, span;
        if (__builtin_sub_overflow(c->last_ns, f->device_ns, &back) || back > 0) {
            km_errf_(why, n, "time goes back %.6f s", (double)c->last_ns * 1e-9 -
                     (double)f->device_ns * 1e-9);
            return KM_EFORMAT;
        }
        if (__builtin_sub_overflow(f->device_ns, c->first_ns, &span) ||
            (double)span > KM_TIME_MAX_S * 1e9) {
            km_errf_(why, n, "time %.3f s is more than %g days after the first frame",
                     ((double)f->device_ns - (double)c->first_ns) * 1e-9, KM_TIME_MAX_S / 86400);
            return KM_EFORMAT;
        }
    }
    uint32_t cells = km_frame_cells(f);
    const float *k = f->kpa;
    int bad = 0;
    for (uint32_t i = 0; i < cells; i++)
        bad |= !(fabsf(k[i]) <= (float)KM_KPA_MAX);
    if (bad) {
        uint32_t i = 0;
        while (i < cells && fabsf(k[i]) <= (float)KM_KPA_MAX)
            i++;
        km_errf_(why, n, "cell r%uc%u: %g kPa is outside +-%g kPa", i / f->cols, i % f->cols,
                 (double)k[i], KM_KPA_MAX);
        return KM_EFORMAT;
    }
    if (!c->have) {
        c->first_ns = f->device_ns;
        c->have = 1;
    }
    c->last_ns = f->device_ns;
    return KM_OK;
}
