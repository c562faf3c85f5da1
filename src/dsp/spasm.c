/* spasm.c: the local twitch as a short burst in the hotspot's force.
 *
 * Every frame, the last ~0.32 s of the hotspot's force and of the whole-mat
 * force (a power-of-two window, 32 frames at 100 Hz) are normalised to their
 * mean, detrended (removes breathing and slow settling), Hann-windowed and
 * transformed (FFTW r2c). The band energy from 2.5 to 25 Hz, above breathing
 * and the heartbeat's fundamental, is compared with
 *  - the session's own baseline for the hotspot: the quiet floor of its log
 *    band energy (follows drops within ~1 s, rises only over ~30 s, so a
 *    spell of talking or fidgeting does not raise it much); the burst must
 *    stand out by spasm_threshold (default 14);
 *  - the same band of the whole-mat force: a twitch moves load between the
 *    ball and the body (the total stays), a cough or talking moves the whole
 *    trunk, so the hotspot's relative band energy must be 15x the total's
 *    (measured here: twitches 25-800x within 30 ms of onset; coughs and
 *    talking 1-2x; quick weight shifts 5-10x).
 * The burst must go up (the muscle pushes on the ball): the newer half of the
 * window must rise at least 3 % above the older half's mean (not detrended:
 * a line fit tilts towards a bump at the window's end). The hotspot must not
 * have moved more than 1 mm in the last second (shifting position is not a
 * twitch; a twitch does not move the ball) and must be at least 2.5 s old.
 * A twitch is fast: the force must rise at 80 %/s or more over 20 ms (a
 * 25-60 ms twitch of 8-25 % rises at 90-400 %/s; shifting one's weight,
 * spread over 0.4-1 s, at most about 60 %/s).
 * Onset = where the rise first reaches 30 % of its peak. One spasm per
 * second at most.
 * Below 25 frames/s a 100 ms twitch cannot be seen: the detector is off and
 * says so in km_dsp_stats.spasm_enabled. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_internal.h"

int km_dsp_spasm_init_(km_dsp *d)
{
    spasm_t *sp = &d->sp;
    memset(sp, 0, sizeof *sp);
    sp->enabled = d->rate >= 25.0;
    d->stats.spasm_enabled = sp->enabled;
    if (!sp->enabled)
        return KM_OK;
    int want = (int)lround(0.32 * d->rate), n = 8;
    while (n < want && n < 128)
        n <<= 1;
    sp->n = n;
    sp->ball = calloc((size_t)n, sizeof(float));
    sp->total = calloc((size_t)n, sizeof(float));
    sp->win = calloc((size_t)n, sizeof(float));
    sp->buf = fftwf_alloc_real((size_t)n);
    sp->spec = fftwf_alloc_complex((size_t)n / 2 + 1);
    if (!sp->ball || !sp->total || !sp->win || !sp->buf || !sp->spec)
        return KM_ENOMEM;
    sp->plan = fftwf_plan_dft_r2c_1d(n, sp->buf, sp->spec, FFTW_ESTIMATE);
    if (!sp->plan)
        return KM_ENOMEM;
    for (int i = 0; i < n; i++)
        sp->win[i] = (float)(0.5 - 0.5 * cos(2 * M_PI * (i + 0.5) / n));
    sp->k_lo = (int)ceil(2.5 * n / d->rate);
    if (sp->k_lo < 1)
        sp->k_lo = 1;
    sp->k_hi = (int)floor(25.0 * n / d->rate);
    if (sp->k_hi > n / 2)
        sp->k_hi = n / 2;
    return KM_OK;
}

void km_dsp_spasm_free_(km_dsp *d)
{
    spasm_t *sp = &d->sp;
    if (sp->plan)
        fftwf_destroy_plan(sp->plan);
    free(sp->ball);
    free(sp->total);
    free(sp->win);
    fftwf_free(sp->buf);
    fftwf_free(sp->spec);
}

/* Normalise the circular window `v` (oldest at pos) to its mean into `raw`
 * (time order, may be NULL) and, detrended, into `rel`. Returns the mean. */
static double normalise(const spasm_t *sp, const float *v, float *rel, float *raw)
{
    int n = sp->n;
    double mean = 0;
    for (int i = 0; i < n; i++)
        mean += v[i];
    mean /= n;
    if (mean <= 1e-6)
        return 0;
    /* least-squares line over i = 0..n-1 */
    double sx = 0, sxy = 0, sy = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        double y = v[(sp->pos + i) % n] / mean - 1.0;
        rel[i] = (float)y;
        if (raw)
            raw[i] = (float)y;
        sx += i;
        sy += y;
        sxy += i * y;
        sxx += (double)i * i;
    }
    double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), icpt = (sy - slope * sx) / n;
    for (int i = 0; i < n; i++)
        rel[i] -= (float)(icpt + slope * i);
    return mean;
}

static double band_energy(spasm_t *sp, const float *rel)
{
    for (int i = 0; i < sp->n; i++)
        sp->buf[i] = rel[i] * sp->win[i];
    fftwf_execute_dft_r2c(sp->plan, sp->buf, sp->spec);
    double e = 0;
    for (int k = sp->k_lo; k <= sp->k_hi; k++)
        e += (double)sp->spec[k][0] * sp->spec[k][0] + (double)sp->spec[k][1] * sp->spec[k][1];
    return e;
}

void km_dsp_spasm_(km_dsp *d, km_event *out, size_t max, size_t *nout)
{
    spasm_t *sp = &d->sp;
    if (!sp->enabled)
        return;
    if (d->primary < 0) {
        sp->filled = 0;
        return;
    }
    const track_t *tr = &d->tracks[d->primary];
    if (tr->id != sp->track) {
        sp->track = tr->id;
        sp->filled = 0;
        sp->pos = 0;
        sp->mfilled = 0;
    }
    int n = sp->n;
    sp->ball[sp->pos] = (float)tr->force;
    sp->total[sp->pos] = (float)d->frame_total_n;
    sp->hist_x[sp->mpos] = tr->x;
    sp->hist_y[sp->mpos] = tr->y;
    sp->mpos = (sp->mpos + 1) % 128;
    if (sp->mfilled < 128)
        sp->mfilled++;
    sp->pos = (sp->pos + 1) % n;
    if (sp->filled < n) {
        sp->filled++;
        return;
    }
    float rb[128], rt[128], raw[128];
    double mean = normalise(sp, sp->ball, rb, raw);
    double mean_t = normalise(sp, sp->total, rt, NULL);
    if (mean < 10.0 || mean_t <= 0)
        return;
    double eb = band_energy(sp, rb), et = band_energy(sp, rt);
    double leb = log(eb + 1e-12);
    /* warm-up: the first 2 s build the baseline */
    int warm = (int)(2.0 * d->rate);
    if (sp->base_n < warm) {
        sp->log_base = (sp->log_base * sp->base_n + leb) / (sp->base_n + 1);
        sp->base_n++;
        return;
    }
    double score = exp(leb - sp->log_base);
    /* the rise: newer half against the older half's mean */
    double pre = 0;
    for (int i = 0; i < n / 2; i++)
        pre += raw[i];
    pre /= n / 2;
    double up = -1e9, down = 1e9;
    int ip = n / 2;
    for (int i = n / 2; i < n; i++) {
        if (raw[i] - pre > up) {
            up = raw[i] - pre;
            ip = i;
        }
        if (raw[i] - pre < down)
            down = raw[i] - pre;
    }
    /* motion of the hotspot over the last second */
    int look = (int)fmin(d->rate, sp->mfilled);
    int last = (sp->mpos + 127) % 128;
    double moved2 = 0;
    for (int k = 0; k < look; k++) {
        int i = (sp->mpos + 127 - k) % 128;
        double dx = sp->hist_x[i] - sp->hist_x[last], dy = sp->hist_y[i] - sp->hist_y[last];
        moved2 = fmax(moved2, dx * dx + dy * dy);
    }
    double moved = sqrt(moved2) * d->pitch;
    /* steepest rise over 20 ms in the newer half, per second of the mean */
    int lag = (int)fmax(1.0, lround(0.02 * d->rate));
    if (lag > n / 2)
        lag = n / 2; /* the window holds at most n samples (above ~3 kHz 20 ms is more) */
    double slope = 0;
    for (int i = n / 2; i < n; i++)
        slope = fmax(slope, (raw[i] - raw[i - lag]) * d->rate / lag);
    int old_enough = d->t - tr->first_t >= 2.5;
    if (d->t >= sp->refractory_until && old_enough && score > d->cfg.spasm_threshold &&
        eb > 15.0 * et && up >= 0.03 && up > -down && slope >= 0.8 && moved < 1.0 &&
        look >= d->rate * 0.9) {
        int i0 = ip;
        while (i0 > 0 && raw[i0 - 1] - pre > 0.3 * up)
            i0--;
        double onset = d->t - (n - 1 - i0) / d->rate;
        double conf = 1.0 - exp(-score / (2.0 * d->cfg.spasm_threshold));
        km_dsp_emit_(d, out, max, nout, KM_EV_SPASM, onset, tr->x * d->pitch, tr->y * d->pitch,
                     mean, conf, up);
        sp->refractory_until = d->t + 1.0;
        return;
    }
    /* the quiet floor: quick to follow a drop, slow to follow a rise */
    double alpha = 1.0 / ((leb < sp->log_base ? 1.0 : 30.0) * d->rate);
    if (d->t >= sp->refractory_until)
        sp->log_base += alpha * (leb - sp->log_base);
}
