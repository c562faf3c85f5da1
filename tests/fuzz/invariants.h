/* invariants.h: what every reader promises about a frame it returns KM_OK
 * for, whatever bytes it was given (the bounds of knotmat/frame.h,
 * docs/file-format.md "Bounds"). A fuzz target aborts on a violation, so
 * libFuzzer reports it like a crash. */
#ifndef KNOTMAT_FUZZ_INVARIANTS_H
#define KNOTMAT_FUZZ_INVARIANTS_H

#include <math.h>
#include <stdlib.h>

#include "knotmat/frame.h"

typedef struct { int have; int64_t first, last; } fuzz_time;

static inline void fuzz_check_geometry(unsigned rows, unsigned cols, double pitch, double rate)
{
    if (rows < 1 || rows > KM_FRAME_MAX_DIM || cols < 1 || cols > KM_FRAME_MAX_DIM ||
        !(pitch >= KM_PITCH_MIN_MM && pitch <= KM_PITCH_MAX_MM) ||
        !(rate == 0 || (rate >= KM_RATE_MIN_HZ && rate <= KM_RATE_MAX_HZ)))
        abort();
}

static inline void fuzz_check_frame(const km_frame *f, unsigned rows, unsigned cols,
                                    fuzz_time *t)
{
    if (f->rows != rows || f->cols != cols)
        abort();
    for (uint32_t i = 0; i < km_frame_cells(f); i++)
        if (!(fabsf(f->kpa[i]) <= (float)KM_KPA_MAX))
            abort();
    if (t->have && (f->device_ns < t->last ||
                    (double)f->device_ns - (double)t->first > KM_TIME_MAX_S * 1e9 + 1))
        abort();
    if (!t->have)
        t->first = f->device_ns;
    t->have = 1;
    t->last = f->device_ns;
    if (f->n_contacts > KM_FRAME_MAX_CONTACTS)
        abort();
}

#endif
