/* stats.c: whole-frame summary numbers. Pure function of one frame, no
 * allocation: safe in the frame path. */
#include <math.h>

#include "knotmat/stats.h"

void km_frame_summarize(const km_frame *f, km_frame_summary *out)
{
    uint32_t n = km_frame_cells(f);
    double cell_m2 = (double)f->pitch_mm * f->pitch_mm * 1e-6;
    double sum = 0, sx = 0, sy = 0, peak = 0;
    uint32_t contact = 0, peak_i = 0;
    for (uint32_t i = 0; i < n; i++) {
        float p = f->kpa[i];
        if ((f->cell_flags[i] & KM_CELL_DEAD) || !isfinite(p) || p <= 0)
            continue;
        uint32_t r = i / f->cols, c = i % f->cols;
        sum += p;
        sx += p * (double)c;
        sy += p * (double)r;
        contact += p >= KM_CONTACT_KPA;
        if (p > peak) {
            peak = p;
            peak_i = i;
        }
    }
    out->total_force_n = sum * 1e3 * cell_m2;
    out->contact_cells = contact;
    out->contact_cm2 = contact * cell_m2 * 1e4;
    out->peak_kpa = peak;
    out->peak_row = peak_i / f->cols;
    out->peak_col = peak_i % f->cols;
    if (sum > 0) {
        out->cop_x_mm = sx / sum * f->pitch_mm;
        out->cop_y_mm = sy / sum * f->pitch_mm;
    } else {
        out->cop_x_mm = NAN;
        out->cop_y_mm = NAN;
    }
}
