/* spasm.c: the local twitch response as a transient in the ball's force.
 *
 * Time as measured: the ball's force, the body's (everything else on the mat)
 * and the hotspot's position are resampled from the frames' own timestamps onto a fixed grid of
 * SP_GRID_HZ (linear interpolation between frames), so every window below is
 * in seconds whatever the mat's rate or its jitter. A gap of more than
 * SP_GAP_S restarts the window.
 *
 * Rules, each from the signal model (docs/detection.md), none from one
 * generator's waveform:
 *  - A twitch is a transient of 60-600 ms with its energy at ~2-20 Hz
 *    (contraction 47-102 ms, half-relaxation 41-150 ms; monophasic, biphasic
 *    or ringing; either sign). Measured: the band energy (SP_BAND_LO_HZ up to
 *    SP_BAND_HI_HZ, and below 0.45 x the measured frame rate) of the ball's
 *    force over the last SP_GRID_N / SP_GRID_HZ (0.32 s), normalised to its mean, detrended
 *    (breathing, settling) and Hann-windowed. Sign-agnostic by construction.
 *  - Less what moves with the body: when the ball's and the body's band
 *    signals go together (talking, a cough), the share the body explains
 *    (corr^2) is taken out of the ball's energy.
 *  - Against the ball's own recent baseline: the running median of that log
 *    energy (not its quiet floor: the spread of an energy estimate from few
 *    frames, at 25 Hz or from a coarse ADC, would put a floor far below the
 *    typical). It must stand out by spasm_threshold.
 *  - A twitch moves load between the ball and the body (the rest of the
 *    mat): the body's weight does not change, so when the ball takes more
 *    the body carries less, and the reverse. A cough or talking moves the
 *    whole trunk: ball and body go up and down together. So the band-limited
 *    correlation of the ball's force with the body's must be under
 *    SP_COUPLING_MAX (a twitch gives about -1, or ~0 when the body's sum is
 *    noisy; the trunk gives > 0.5). A sign, not a ratio of energies: the sum
 *    over hundreds of cells carries their common noise (a matrix's reference
 *    moving per scan), which would hide a cough in a ratio.
 *  - A twitch is a twitch, not a lift-off or a landing: the decision waits
 *    SP_CONFIRM_S, and is dropped if the force departs more than
 *    SP_MAX_DEPARTURE from its level, the ball moves, or the coupling rises
 *    over SP_COUPLING_MAX meanwhile; or if at its end the force is
 *    SP_MONO_DEPARTURE away and went SP_MONO_STEP further over the last
 *    SP_MONO_S (a twitch has peaked within ~100 ms of contraction; lifting
 *    off keeps going); a force still heading away but not yet that far
 *    waits up to SP_CONFIRM_MAX_S, and is dropped if it is then still heading
 *    away SP_MONO_LATE from the level.
 *  - A twitch does not move the ball; shifting position does. The hotspot
 *    must not have moved more than SP_STILL_MM over the last SP_STILL_S and
 *    must be at least SP_MIN_AGE_S old.
 * Onset: the first grid sample, walking back from the largest departure from
 * the window's older quarter, where the departure is still above
 * SP_ONSET_SHARE of it. One spasm per burst: after a decision the detector
 * waits until the band energy has fallen back under the threshold (at least
 * SP_REFRACTORY_S, at most SP_REFRACTORY_MAX_S).
 * Below SP_MIN_RATE_HZ (measured) a twitch cannot be seen: off, and said in
 * km_dsp_stats.spasm_enabled. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_internal.h"

#define SP_BAND_LO_HZ 2.5     /* above breathing and the heartbeat's fundamental */
#define SP_BAND_HI_HZ 20.0    /* a twitch's energy (50-100 ms features) */
#define SP_GAP_S 0.25         /* a longer hole between frames restarts the window */
#define SP_MIN_RATE_HZ 20.0   /* a 100 ms twitch needs >= 2 frames across its rise */
#define SP_COUPLING_MAX 0.3   /* ball-body band correlation: above it, the whole trunk moved */
#define SP_CONFIRM_S 0.12     /* a decision waits this long for a collapse or a jump */
#define SP_CONFIRM_MAX_S 0.22 /* ... longer while the force still heads away */
#define SP_MAX_DEPARTURE 0.35 /* beyond it the force did not twitch: lift-off, landing */
#define SP_MONO_DEPARTURE 0.12 /* ... nor if it is this far and still heading away */
#define SP_MONO_S 0.05        /* ... over the last 50 ms */
#define SP_MONO_STEP 0.02     /* ... by this much */
#define SP_MONO_LATE 0.08     /* ... or this far when still heading away at SP_CONFIRM_MAX_S */
#define SP_STILL_MM 1.0       /* mm: the ball has not moved (a twitch does not move it) ... */
#define SP_STILL_S 1.0        /* s: ... over this long */
#define SP_MIN_AGE_S 2.5      /* s: the hotspot has settled (landing transients are over) */
#define SP_WARM_S 2.0         /* s: the baseline's first estimate */
#define SP_BASE_STEP 0.005    /* log units per grid sample: 0.5/s, a factor 1.65 a second */
#define SP_ONSET_SHARE 0.25   /* of the largest departure: where the twitch began */
#define SP_REFRACTORY_S 0.8   /* s: one spasm per burst (an LTR burst is 1-3 twitches) ... */
#define SP_REFRACTORY_MAX_S 2.0 /* s: ... but a second knot may twitch after this */
#define SP_CONF_A 1.7         /* confidence at the threshold: logit 1.7 = 0.85 */
#define SP_CONF_B 1.5         /* per unit of log(score / threshold) */
#define SP_MIN_FORCE_N 10.0   /* N: the hold minimum: below it there is no ball */
#define SP_NYQUIST_SHARE 0.45 /* of the measured rate: the band stops short of Nyquist */
#define SP_STILL_COVER 0.9    /* of SP_STILL_S: positions known over this much of it */
#define SP_PRE_SHARE 4        /* the window's first quarter is the pre-twitch level */
#define SP_MIN_DEPARTURE 0.015 /* of the force: under 4 % (the model's smallest) halved by a
                                  lagging sensor, it is noise or an ADC step on a quiet mat */

int km_dsp_spasm_init_(km_dsp *d)
{
    spasm_t *sp = &d->sp;
    memset(sp, 0, sizeof *sp);
    sp->n = SP_GRID_N;
    sp->last_t = NAN;
    d->stats.spasm_enabled = d->rate >= SP_MIN_RATE_HZ; /* the nominal rate until measured */
    sp->buf = fftwf_alloc_real((size_t)sp->n);
    sp->spec = fftwf_alloc_complex((size_t)sp->n / 2 + 1);
    if (!sp->buf || !sp->spec)
        return KM_ENOMEM;
    sp->plan = fftwf_plan_dft_r2c_1d(sp->n, sp->buf, sp->spec, FFTW_ESTIMATE);
    if (!sp->plan)
        return KM_ENOMEM;
    for (int i = 0; i < sp->n; i++)
        sp->win[i] = (float)(0.5 - 0.5 * cos(2 * M_PI * (i + 0.5) / sp->n));
    return KM_OK;
}

void km_dsp_spasm_free_(km_dsp *d)
{
    spasm_t *sp = &d->sp;
    if (sp->plan)
        fftwf_destroy_plan(sp->plan);
    fftwf_free(sp->buf);
    fftwf_free(sp->spec);
}

/* The last n grid samples of circular `v` (newest at pos - 1), normalised to
 * their mean, into `raw` (time order) and, detrended, into `rel`. */
static double normalise(const spasm_t *sp, const float *v, float *rel, float *raw)
{
    int n = sp->n;
    double mean = 0;
    for (int i = 0; i < n; i++)
        mean += v[i];
    mean /= n;
    if (mean <= 1e-6) {
        /* nothing there (the ball carries the whole mat): a flat window */
        for (int i = 0; i < n; i++) {
            rel[i] = 0;
            if (raw)
                raw[i] = 0;
        }
        return 0;
    }
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

/* The ball's band energy and its band-limited correlation with the body's
 * (the real part of the cross-spectrum over both energies):
 * +1 when they move together (the whole trunk), -1 when load passes between
 * them (a twitch). */
static void band(spasm_t *sp, const float *rb, const float *ro, int k_lo, int k_hi, double *eb,
                 double *corr)
{
    for (int i = 0; i < sp->n; i++)
        sp->buf[i] = rb[i] * sp->win[i];
    fftwf_execute_dft_r2c(sp->plan, sp->buf, sp->spec);
    for (int k = 0; k <= sp->n / 2; k++) {
        sp->spec_b[k][0] = sp->spec[k][0];
        sp->spec_b[k][1] = sp->spec[k][1];
    }
    for (int i = 0; i < sp->n; i++)
        sp->buf[i] = ro[i] * sp->win[i];
    fftwf_execute_dft_r2c(sp->plan, sp->buf, sp->spec);
    double b = 0, o = 0, c = 0;
    for (int k = k_lo; k <= k_hi; k++) {
        double br = sp->spec_b[k][0], bi = sp->spec_b[k][1];
        double orr = sp->spec[k][0], oi = sp->spec[k][1];
        b += br * br + bi * bi;
        o += orr * orr + oi * oi;
        c += br * orr + bi * oi;
    }
    *eb = b;
    *corr = b > 0 && o > 0 ? c / sqrt(b * o) : 0;
}

static void reset_window(spasm_t *sp)
{
    sp->filled = 0;
    sp->pos = 0;
    sp->mfilled = 0;
    sp->mpos = 0;
    sp->pending = 0;
}

/* The hotspot's largest distance (mm) from where it is now over the last
 * SP_STILL_S of grid samples; *look: how many samples that covered. */
static double moved_mm(const km_dsp *d, int *look)
{
    const spasm_t *sp = &d->sp;
    int n = (int)fmin(SP_STILL_S * SP_GRID_HZ, sp->mfilled);
    int last = (sp->mpos + SP_HIST_N - 1) % SP_HIST_N;
    double m2 = 0;
    for (int k = 0; k < n; k++) {
        int i = (sp->mpos + SP_HIST_N - 1 - k) % SP_HIST_N;
        double dx = sp->hist_x[i] - sp->hist_x[last], dy = sp->hist_y[i] - sp->hist_y[last];
        m2 = fmax(m2, dx * dx + dy * dy);
    }
    *look = n;
    return sqrt(m2) * d->pitch;
}

/* A decision waiting for its confirmation: the force has not collapsed or
 * jumped (lifting off, landing: a twitch is at most ~25 %), the ball has
 * not moved, and the body has not turned out to move with the ball (a
 * cough's coupling shows once more of it is in the window). */
static void confirm(km_dsp *d, double tg, double moved, double corr, km_event *out, size_t max,
                    size_t *nout)
{
    spasm_t *sp = &d->sp;
    int n = sp->n;
    double dev = (sp->ball[(sp->pos + n - 1) % n] - sp->pend_level) / sp->pend_level;
    /* still heading away from the level at every sample: a twitch has
     * peaked by now (contraction <= ~100 ms), lifting off has not */
    int lag = (int)(SP_MONO_S * SP_GRID_HZ);
    sp->pend_hist[sp->pend_n % SP_PEND_HIST] = dev;
    sp->pend_n++;
    double then = sp->pend_n > lag ? sp->pend_hist[(sp->pend_n - 1 - lag) % SP_PEND_HIST] : 0;
    int heading = dev > 0 ? dev - then >= SP_MONO_STEP : then - dev >= SP_MONO_STEP;
    int at_end = tg >= sp->pend_until, at_max = tg >= sp->pend_until_max;
    int away = heading && fabs(dev) >= (at_max ? SP_MONO_LATE : SP_MONO_DEPARTURE);
    if (fabs(dev) > SP_MAX_DEPARTURE || moved >= SP_STILL_MM || corr >= SP_COUPLING_MAX ||
        (at_end && away)) {
        sp->pending = 0;
        d->stats.spasm_rejected++;
    } else if (at_end && (!heading || at_max)) {
        /* a force still heading away (but not yet far) waits up to
         * SP_CONFIRM_MAX_S: a slow twitch peaks, a lift-off goes on */
        km_event *e0 = out + *nout;
        km_dsp_emit_(d, out, max, nout, KM_EV_SPASM, sp->pend_onset, sp->pend_x * d->pitch,
                     sp->pend_y * d->pitch, sp->pend_level, sp->pend_conf, sp->pend_value);
        if (e0 < out + *nout)
            e0->detected_t_s = d->t; /* decided on this frame */
        sp->pending = 0;
    }
}

/* A score over the threshold on a still, settled hold: the candidate's
 * onset (the departure from the older quarter's level, either sign), level
 * and confidence, pending its confirmation. */
/* A candidate from the window's raw force: 0 (none) when it departs from
 * its level by less than any twitch would. */
static int open_candidate(km_dsp *d, const track_t *tr, double tg, double mean, double score,
                          const float *raw)
{
    spasm_t *sp = &d->sp;
    int n = sp->n;
    double pre = 0;
    int q = n / SP_PRE_SHARE;
    for (int i = 0; i < q; i++)
        pre += raw[i];
    pre /= q;
    int ip = q;
    double big = 0;
    for (int i = q; i < n; i++)
        if (fabs(raw[i] - pre) > big) {
            big = fabs(raw[i] - pre);
            ip = i;
        }
    if (big < SP_MIN_DEPARTURE)
        return 0;
    int i0 = ip;
    while (i0 > q && fabs(raw[i0 - 1] - pre) > SP_ONSET_SHARE * big)
        i0--;
    /* confidence: a logistic of the log score, fitted on sim:// only
     * (bench_accuracy's reliability table: among detections at the
     * threshold 85 % were real); sim2:// checks it */
    double z = log(score / d->cfg.spasm_threshold);
    sp->pending = 1;
    sp->pend_onset = tg - (n - 1 - i0) / SP_GRID_HZ;
    sp->pend_until = tg + SP_CONFIRM_S;
    sp->pend_until_max = tg + SP_CONFIRM_MAX_S;
    sp->pend_level = mean * (1 + pre);
    sp->pend_conf = 1.0 / (1.0 + exp(-(SP_CONF_A + SP_CONF_B * z)));
    sp->pend_value = raw[ip] - pre;
    sp->pend_n = 0;
    sp->pend_x = tr->x;
    sp->pend_y = tr->y;
    sp->refractory_until = tg + SP_REFRACTORY_S;
    sp->burst_max = tg + SP_REFRACTORY_MAX_S;
    sp->in_burst = 1;
    return 1;
}

/* One grid sample at time tg: decide. */
static void grid_step(km_dsp *d, const track_t *tr, double tg, km_event *out, size_t max,
                      size_t *nout)
{
    spasm_t *sp = &d->sp;
    int n = sp->n;
    if (sp->filled < n)
        return;
    float rb[SP_GRID_N], ro[SP_GRID_N], raw[SP_GRID_N];
    double mean = normalise(sp, sp->ball, rb, raw);
    normalise(sp, sp->body, ro, NULL);
    if (mean < SP_MIN_FORCE_N)
        return;
    int look;
    double moved = moved_mm(d, &look);
    /* the band, and below what the mat's measured rate can carry */
    double hi = fmin(SP_BAND_HI_HZ, SP_NYQUIST_SHARE * d->rate);
    int k_lo = (int)ceil(SP_BAND_LO_HZ * n / SP_GRID_HZ), k_hi = (int)floor(hi * n / SP_GRID_HZ);
    if (k_lo < 1)
        k_lo = 1;
    if (k_hi > n / 2)
        k_hi = n / 2;
    if (k_hi < k_lo)
        return;
    double eb, corr;
    band(sp, rb, ro, k_lo, k_hi, &eb, &corr);
    if (sp->pending)
        confirm(d, tg, moved, corr, out, max, nout);
    /* the ball's band energy less what moves with the body (talking,
     * breathing's harmonics, a cough): the part of it the body's signal
     * explains when they go together; load passing between them (< 0) is
     * what a twitch does and stays */
    double resid = corr > 0 ? eb * (1 - corr * corr) : eb;
    double leb = log(resid + 1e-12);
    if (sp->base_n < (int)(SP_WARM_S * SP_GRID_HZ)) {
        sp->log_base = (sp->log_base * sp->base_n + leb) / (sp->base_n + 1);
        sp->base_n++;
        return;
    }
    double score = exp(leb - sp->log_base);
    int over = score > d->cfg.spasm_threshold;
    if (tg < sp->refractory_until || (sp->in_burst && over && tg < sp->burst_max)) {
        sp->in_burst = sp->in_burst && over;
        return;
    }
    sp->in_burst = 0;
    int old_enough = tg - tr->first_t >= SP_MIN_AGE_S;
    if (over && old_enough && corr < SP_COUPLING_MAX && moved < SP_STILL_MM &&
        look >= (int)(SP_STILL_COVER * SP_STILL_S * SP_GRID_HZ) &&
        open_candidate(d, tr, tg, mean, score, raw))
        return;
    /* the baseline: a running median of the log energy (a sign tracker,
     * SP_BASE_STEP per sample: a burst or a spell of talking moves it only
     * slowly, and a few loud samples not at all) */
    sp->log_base += leb > sp->log_base ? SP_BASE_STEP : -SP_BASE_STEP;
}

void km_dsp_spasm_(km_dsp *d, km_event *out, size_t max, size_t *nout)
{
    spasm_t *sp = &d->sp;
    int enabled = d->rate >= SP_MIN_RATE_HZ;
    d->stats.spasm_enabled = enabled;
    if (!enabled || d->primary < 0) {
        reset_window(sp);
        sp->last_t = NAN;
        return;
    }
    const track_t *tr = &d->tracks[d->primary];
    /* the ball, and the body: everything else on the mat */
    double b = tr->force, tot = fmax(0.0, d->frame_total_n - tr->force), x = tr->x, y = tr->y;
    double t = d->t;
    if (tr->id != sp->track || isnan(sp->last_t) || t - sp->last_t > SP_GAP_S) {
        sp->track = tr->id;
        reset_window(sp);
        sp->last_t = t;
        sp->lb = b;
        sp->lt = tot;
        sp->lx = x;
        sp->ly = y;
        sp->next_g = ceil(t * SP_GRID_HZ) / SP_GRID_HZ;
        return;
    }
    /* grid samples in (last_t, t], interpolated between the two frames */
    double span = t - sp->last_t;
    while (sp->next_g <= t + 1e-12) {
        double w = (sp->next_g - sp->last_t) / span;
        if (w < 0)
            w = 0;
        sp->ball[sp->pos] = (float)(sp->lb + w * (b - sp->lb));
        sp->body[sp->pos] = (float)(sp->lt + w * (tot - sp->lt));
        sp->pos = (sp->pos + 1) % sp->n;
        if (sp->filled < sp->n)
            sp->filled++;
        sp->hist_x[sp->mpos] = sp->lx + w * (x - sp->lx);
        sp->hist_y[sp->mpos] = sp->ly + w * (y - sp->ly);
        sp->mpos = (sp->mpos + 1) % SP_HIST_N;
        if (sp->mfilled < SP_HIST_N)
            sp->mfilled++;
        grid_step(d, tr, sp->next_g, out, max, nout);
        sp->next_g += 1.0 / SP_GRID_HZ;
    }
    sp->last_t = t;
    sp->lb = b;
    sp->lt = tot;
    sp->lx = x;
    sp->ly = y;
}
