/* breath.c: breathing rate from the whole-mat load. Once a second, the last
 * 32 s of the 10 Hz total-force series (mean removed, Hann window, padded to
 * 320 samples) go through an FFT; the strongest bin between 0.1 and 0.5 Hz,
 * refined by a parabola through its neighbours, is the rate. It is trusted
 * when that peak holds at least 25 % of the band's power, and reported as a
 * `breathing` event every 10 s. Needs 20 s of data. */
#include <math.h>
#include <string.h>

#include "dsp_internal.h"

#define BR_MIN_HISTORY_S 20.0 /* s: two breaths at the slowest rate, plus the window's ramps */
#define BR_LO_HZ 0.1          /* 6 breaths/min: slow, paced breathing (relaxation) */
#define BR_HI_HZ 0.5          /* 30 breaths/min: fast breathing at rest; above, not breathing */
#define BR_MIN_SHARE 0.25     /* of the band's power in the peak: below, no clear rhythm */
#define BR_REPORT_S 10.0      /* s between `breathing` events (the rate is kept every second) */
#define BR_MIN_LOAD_N 20.0    /* N on the whole mat, mean: less is no body lying on it */

int km_dsp_breath_init_(km_dsp *d)
{
    breath_t *b = &d->br;
    b->in = fftwf_alloc_real(BREATH_N);
    b->spec = fftwf_alloc_complex(BREATH_N / 2 + 1);
    if (!b->in || !b->spec)
        return KM_ENOMEM;
    b->plan = fftwf_plan_dft_r2c_1d(BREATH_N, b->in, b->spec, FFTW_ESTIMATE);
    b->bpm = NAN;
    b->next_t = NAN;
    return b->plan ? KM_OK : KM_ENOMEM;
}

void km_dsp_breath_free_(km_dsp *d)
{
    breath_t *b = &d->br;
    if (b->plan)
        fftwf_destroy_plan(b->plan);
    fftwf_free(b->in);
    fftwf_free(b->spec);
}

void km_dsp_breath_(km_dsp *d, km_event *out, size_t max, size_t *n)
{
    const series_t *s = &d->s;
    breath_t *b = &d->br;
    if (s->n < (int64_t)(BR_MIN_HISTORY_S * SERIES_HZ) || s->n / SERIES_HZ == b->last_sec)
        return; /* once per second of series */
    b->last_sec = s->n / SERIES_HZ;
    int len = s->n < BREATH_N ? (int)s->n : BREATH_N;
    double mean = 0;
    for (int i = 0; i < len; i++)
        mean += SER(s->total, s->n - len + i);
    mean /= len;
    if (mean < BR_MIN_LOAD_N)
        return; /* an empty mat's noise has no breath in it */
    memset(b->in, 0, BREATH_N * sizeof(float));
    for (int i = 0; i < len; i++) {
        double w = 0.5 - 0.5 * cos(2 * M_PI * (i + 0.5) / len);
        b->in[i] = (float)((SER(s->total, s->n - len + i) - mean) * w);
    }
    fftwf_execute_dft_r2c(b->plan, b->in, b->spec);
    const double df = (double)SERIES_HZ / BREATH_N;
    int k0 = (int)ceil(BR_LO_HZ / df), k1 = (int)floor(BR_HI_HZ / df);
    double best = 0, total = 0;
    int kb = -1;
    double pw[BREATH_N / 2 + 1];
    for (int k = k0 - 1; k <= k1 + 1; k++)
        pw[k] = (double)b->spec[k][0] * b->spec[k][0] + (double)b->spec[k][1] * b->spec[k][1];
    for (int k = k0; k <= k1; k++) {
        total += pw[k];
        if (pw[k] > best) {
            best = pw[k];
            kb = k;
        }
    }
    if (kb < 0 || total <= 0)
        return;
    /* the peak and its two neighbours: a windowed sinusoid spreads over them */
    double conf = (pw[kb] + pw[kb - 1] + pw[kb + 1]) / (total + pw[k0 - 1] + pw[k1 + 1]);
    if (conf < BR_MIN_SHARE)
        return;
    /* the vertex of the parabola through the three bins, within half a bin */
    double a = pw[kb - 1], c = pw[kb + 1], den = a - 2 * pw[kb] + c;
    double delta = den != 0 ? 0.5 * (a - c) / den : 0;
    if (delta > 0.5) delta = 0.5;
    if (delta < -0.5) delta = -0.5;
    b->bpm = (kb + delta) * df * 60.0;
    d->stats.breath_bpm = b->bpm;
    if (isnan(b->next_t) || d->t >= b->next_t) {
        b->next_t = d->t + BR_REPORT_S;
        km_dsp_emit_(d, out, max, n, KM_EV_BREATHING, d->t, NAN, NAN, NAN, conf > 1 ? 1 : conf,
                     b->bpm);
    }
}
