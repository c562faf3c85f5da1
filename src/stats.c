/* stats.c: whole-frame summary numbers (a pure function of one frame, no
 * allocation: safe in the frame path) and time as measured from the frames'
 * timestamps (offline: it keeps the intervals). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
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

/* ---- time as measured --------------------------------------------------- */

struct km_timing {
    float *dt;          /* intervals, s */
    size_t n, cap;
    uint64_t frames;
    int64_t first, last;
};

km_timing *km_timing_new(void) { return calloc(1, sizeof(km_timing)); }

void km_timing_free(km_timing *t)
{
    if (t)
        free(t->dt);
    free(t);
}

int km_timing_add(km_timing *t, int64_t device_ns)
{
    if (t->frames) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 4096;
            float *d = realloc(t->dt, cap * sizeof *d);
            if (!d)
                return KM_ENOMEM;
            t->dt = d;
            t->cap = cap;
        }
        t->dt[t->n++] = (float)((double)(device_ns - t->last) * 1e-9);
    } else {
        t->first = device_ns;
    }
    t->last = device_ns;
    t->frames++;
    return KM_OK;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void km_timing_get(km_timing *t, km_timing_report *out)
{
    memset(out, 0, sizeof *out);
    out->frames = t->frames;
    out->first_s = (double)t->first * 1e-9;
    out->last_s = (double)t->last * 1e-9;
    if (t->n == 0)
        return;
    float *s = malloc(t->n * sizeof *s);
    if (!s)
        return;
    memcpy(s, t->dt, t->n * sizeof *s);
    qsort(s, t->n, sizeof *s, cmp_float);
    double med = s[t->n / 2];
    size_t ok = t->n;
    if (med > 0) {
        out->rate_hz = 1.0 / med;
        while (ok > 0 && s[ok - 1] > 1.5 * med)
            ok--;
        for (size_t i = ok; i < t->n; i++) {
            out->gaps++;
            out->lost_s += s[i] - med;
        }
        out->jitter_ms = 1e3 * (s[(ok * 9) / 10 < ok ? (ok * 9) / 10 : ok - 1] - s[ok / 10]);
    }
    out->duration_s = (double)(t->last - t->first) * 1e-9 + med;
    out->lost_share = out->duration_s > 0 ? out->lost_s / out->duration_s : 0;
    free(s);
}

int km_rate_meter_add_(km_rate_meter_ *m, int64_t device_ns)
{
    int counted = 0;
    if (m->have) {
        double dt = (double)(device_ns - m->last_ns);
        if (dt > 0 && (m->n_dt < 8 || dt < 3 * m->ew_dt_ns)) {
            double a = m->n_dt < 32 ? 1.0 / (double)(m->n_dt + 1) : 1.0 / 32;
            m->ew_dt_ns += a * (dt - m->ew_dt_ns);
            m->sum_dt_ns += dt;
            m->n_dt++;
            double mean = m->sum_dt_ns / (double)m->n_dt;
            m->ew_dev_ns += (fabs(dt - mean) - m->ew_dev_ns) / (double)m->n_dt;
            counted = 1;
        }
    }
    m->last_ns = device_ns;
    m->have = 1;
    return counted;
}

double km_rate_meter_hz_(const km_rate_meter_ *m)
{
    return m->n_dt ? 1e9 * (double)m->n_dt / m->sum_dt_ns : 0;
}

double km_rate_meter_jitter_ms_(const km_rate_meter_ *m) { return m->ew_dev_ns * 1e-6; }
