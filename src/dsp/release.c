/* release.c: the 10 Hz series of slow signals, and the release detector.
 *
 * Series: every frame adds the hotspot's force, the body force in an annulus
 * around it, the whole-mat force and the hotspot's position into the current
 * 0.1 s bin; missing bins (slow mats) repeat the last value.
 *
 * Release (checked on every new bin during a hold, once per hold): the ball
 * force smoothed over one breath (the measured breathing period, 2.5-6 s,
 * 4 s until known; a boxcar over one period cancels breathing) must have
 * fallen by at least release_drop (8 %) below its level 6-15 s earlier (the
 * median), but not by more than half (that is rolling or lifting off), while
 * the body's force in the annulus around the ball grew by at least 2 % (the
 * body sinks around the ball as the muscle lets go). The reference level is
 * taken only since the ball last moved more than 3 mm (a release does not
 * move the ball; shifting does, and changes the force in a step). Creep raises both readings and slow
 * settling is far slower than the 6-15 s comparison, so neither trips it.
 * Once the conditions hold for 1 s the detector waits for the fall to level
 * off (or 6 s) and reports the release at the midpoint of the fall. */
#include <math.h>

#include "dsp_internal.h"

void km_dsp_series_push_(km_dsp *d)
{
    series_t *s = &d->s;
    int64_t bin = (int64_t)floor((d->t - d->t0) * SERIES_HZ);
    if (s->cur < 0)
        s->cur = bin;
    if (bin > s->cur) {
        /* close the current bin */
        int64_t i = s->cur;
        double n = s->acc_n ? s->acc_n : 1;
        SER(s->ball, i) = (float)(s->acc_ball / n);
        SER(s->annulus, i) = (float)(s->acc_ann / n);
        SER(s->total, i) = (float)(s->acc_total / n);
        SER(s->valid, i) = s->acc_valid * 2 > s->acc_n;
        SER(s->x, i) = s->acc_valid ? (float)(s->acc_x / s->acc_valid) : -1e6f;
        SER(s->y, i) = s->acc_valid ? (float)(s->acc_y / s->acc_valid) : -1e6f;
        /* bins without frames repeat it (at most a whole history); after a
         * lost device they are unknown: invalid, so a hold must settle anew */
        int64_t fill_to = bin - i > SERIES_LEN ? i + SERIES_LEN : bin;
        for (int64_t j = i + 1; j < fill_to; j++) {
            SER(s->ball, j) = SER(s->ball, i);
            SER(s->annulus, j) = SER(s->annulus, i);
            SER(s->total, j) = SER(s->total, i);
            SER(s->valid, j) = s->gap_unknown ? 0 : SER(s->valid, i);
            SER(s->x, j) = SER(s->x, i);
            SER(s->y, j) = SER(s->y, i);
        }
        s->gap_unknown = 0;
        s->n = bin;
        s->cur = bin;
        s->acc_ball = s->acc_ann = s->acc_total = s->acc_x = s->acc_y = 0;
        s->acc_n = s->acc_valid = 0;
    }
    s->acc_n++;
    s->acc_total += d->frame_total_n;
    if (d->primary >= 0) {
        const track_t *tr = &d->tracks[d->primary];
        s->acc_ball += tr->force;
        s->acc_ann += d->annulus_n;
        s->acc_x += tr->x;
        s->acc_y += tr->y;
        s->acc_valid++;
    }
}

/* Trailing boxcar mean of arr over w bins ending at bin i. */
static double smooth(const float *arr, int64_t i, int w)
{
    double s = 0;
    for (int k = 0; k < w; k++)
        s += SER(arr, i - k);
    return s / w;
}

/* Insertion sort of a few values (qsort may allocate; this path must not). */
static void sort_small(double *v, int n)
{
    for (int i = 1; i < n; i++) {
        double x = v[i];
        int j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

void km_dsp_release_(km_dsp *d, km_event *out, size_t max, size_t *n)
{
    const series_t *s = &d->s;
    release_t *r = &d->rel;
    if (!d->holding || !r->armed)
        return;
    int w = isnan(d->br.bpm) ? 40 : (int)lround(600.0 / d->br.bpm);
    if (w < 25) w = 25;
    if (w > 60) w = 60;
    int64_t now = s->n - 1;
    if (now < 10)
        return;
    int64_t hold_bin = (int64_t)ceil((d->hold_start - d->t0) * SERIES_HZ);
    int64_t first_ref = now - 150, last_ref = now - 60;
    if (first_ref < hold_bin + w)
        first_ref = hold_bin + w;
    if (last_ref - first_ref < 20)
        return; /* the hold is too young to compare */
    /* compare only with force measured at this very spot: the reference
     * starts after the ball last moved more than 3 mm from where it is now */
    double ax = 0, ay = 0;
    for (int64_t i = now - 9; i <= now; i++) {
        if (!SER(s->valid, i)) {
            r->cond_since = NAN;
            return;
        }
        ax += SER(s->x, i) / 10.0;
        ay += SER(s->y, i) / 10.0;
    }
    int64_t still_from = now;
    while (still_from > now - 200 && still_from > 0 && SER(s->valid, still_from - 1) &&
           hypot(SER(s->x, still_from - 1) - ax, SER(s->y, still_from - 1) - ay) * d->pitch <= 3.0)
        still_from--;
    if (first_ref < still_from + w)
        first_ref = still_from + w;
    if (last_ref - first_ref < 20) {
        r->cond_since = NAN;
        return;
    }
    double refs[64], anns[64];
    int nr = 0;
    for (int64_t i = first_ref; i <= last_ref && nr < 64; i += 3) {
        refs[nr] = smooth(s->ball, i, w);
        anns[nr] = smooth(s->annulus, i, w);
        nr++;
    }
    sort_small(refs, nr);
    sort_small(anns, nr);
    double ref = refs[nr / 2], ann_ref = anns[nr / 2];
    double cur = smooth(s->ball, now, w), ann = smooth(s->annulus, now, w);
    double fast = smooth(s->ball, now, 5);
    if (ref <= 0 || ann_ref <= 0)
        return;
    double drop = 1.0 - cur / ref, grow = ann / ann_ref - 1.0;
    int cond = drop >= d->cfg.release_drop && fast > 0.5 * ref && grow >= 0.02;
    if (!cond) {
        r->cond_since = NAN;
        return;
    }
    if (isnan(r->cond_since))
        r->cond_since = d->t;
    double held = d->t - r->cond_since;
    /* still falling? compare with the smoothed force a second ago */
    double prev = smooth(s->ball, now - 10, w);
    int levelled = prev - cur < 0.005 * ref;
    if (held < 1.0 || (!levelled && held < 6.0))
        return;
    /* midpoint: where the smoothed force last crossed halfway down */
    double mid_level = ref - 0.5 * (ref - cur);
    int64_t i = now;
    while (i > now - 150 && i >= w && smooth(s->ball, i, w) < mid_level)
        i--;
    double t_mid = d->t0 + (i + 0.5 - 0.5 * w) / SERIES_HZ;
    double conf = fmin(1.0, drop / 0.2) * fmin(1.0, 0.5 + grow / 0.1);
    km_dsp_emit_(d, out, max, n, KM_EV_RELEASE, t_mid, d->hold_x * d->pitch, d->hold_y * d->pitch,
                 cur, conf, drop);
    r->armed = 0;
}
