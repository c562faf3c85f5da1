/* release.c: the release detector, on the 10 Hz series (series.c).
 *
 * Release (checked on every new bin during a hold, once per hold), from the
 * signal model (docs/detection.md): as the muscle lets go, the ball's force
 * falls 10-30 % from an onset over a time constant of 1-5 s while the body
 * sinks around the ball (its force in the annulus grows). Rules:
 *  - Breathing is cancelled by a boxcar over one measured breath (2.5-6 s;
 *    4 s until measured): a boxcar over one period removes a periodic
 *    signal of any waveform.
 *  - Only force measured at this spot counts: the comparison starts after
 *    the ball last moved more than REL_STILL_MM and REL_SETTLE_S after the
 *    hold began (passive stress relaxation of the tissue is fastest right
 *    after loading and levels off within ~20 s).
 *  - The reference is the level before the fall (a high quantile of the
 *    smoothed force over the look-back, REL_REF_QUANTILE); the onset is the
 *    fall between where the smoothed force crossed REL_ONSET_SHARE and half
 *    of it, extrapolated back to the reference, corrected for the boxcar's
 *    delay.
 *  - An onset is a change: before it the force was level. Relaxation and
 *    slow sinking fall fastest first and slow down, so they are rejected by
 *    requiring the slope over REL_PRE_S before the onset to be under
 *    REL_PRE_SLOPE_SHARE of the fall's mean rate since. Creep raises the
 *    readings: it never makes a fall.
 *  - The level now: the boxcar sits half a breath back; along a fall it is
 *    extrapolated to now with the slope between it and the boxcar before.
 *  - The fall reaches release_drop (default 8 %) and stays under half (more
 *    is rolling or lifting off), and the annulus grew by REL_GROW (the load
 *    the ball gives up goes to the body around it).
 *  - Held for REL_CONFIRM_S, it is reported at its onset.
 * A shift or a lift-off after the onset but before the decision: the state
 * of the last REL_EVAL_KEEP bins is kept; when the hold ends or the ball
 * moves, the evaluations from before the disturbance decide, with half the
 * fall (the rest of the rules the same). */
#include <math.h>

#include "dsp_internal.h"

#define REL_STILL_MM 3.0        /* mm: a release does not move the ball */
#define REL_SETTLE_S 8.0        /* s: onsets this soon after the hold began are relaxation */
#define REL_LOOK_S 20.0         /* s: look-back for the reference (relaxation has levelled off) */
#define REL_MIN_REF_S 3.0       /* s of reference before "now - REL_RECENT_S": a breath or so */
#define REL_RECENT_S 1.5        /* s: the newest, possibly falling, part is not reference */
#define REL_REF_QUANTILE 0.75   /* the level before a fall: high, not the peak of a bump */
#define REL_ONSET_SHARE 0.15    /* of the fall: its first clear crossing, above the noise */
#define REL_BOXCAR_DELAY 0.5    /* of the boxcar: a trailing boxcar delays a ramp by half its width */
#define REL_PRE_S 6.0           /* s before the onset whose slope must be level */
#define REL_PRE_SLOPE_SHARE 0.3 /* of the fall's rate: a steeper fall before it is relaxation */
#define REL_GROW 0.02           /* the annulus's growth: the load goes to the body around */
#define REL_MAX_DROP 0.5        /* a fall beyond half is rolling off or lifting, not a release */
#define REL_CONF_K 13.5         /* confidence logistic: slope ... (fitted on sim:// only) */
#define REL_CONF_C0 0.352       /* ... and centre */
#define REL_CONFIRM_S 0.5       /* s: the rules hold this long before a release is said */
#define REL_BREATH_DEFAULT_S 4.0 /* s: one breath at rest (15/min) until it is measured */
#define REL_BREATH_MIN_S 2.5    /* s: the boxcar's range, 10-24 breaths/min ... */
#define REL_BREATH_MAX_S 6.0    /* ... longer would blur a 1 s fall past its onset */
#define REL_DISTURB_MOVE_MM 1.0 /* mm: a disturbance began where the ball moved this much */
#define REL_DISTURB_FALL 0.85   /* ... or its 0.5 s force fell under this share */
#define REL_DISTURB_MARGIN_S 0.3 /* s: evaluations up to this long before it decide */
#define REL_FAST_S 0.5          /* s: the short boxcar: a lift-off, not a breath */
#define REL_MIN_SINCE_S 0.5     /* s: a fall younger than this has no rate yet */
#define REL_PRE_MIN_S 2.0       /* s of level before the onset, at least, for its slope */
#define REL_WEAK_SHARE 0.5      /* of the strict drop and growth: a weak (pending) release */
#define REL_CONF_DROP 0.2       /* the confidence's drop at which it saturates ... */
#define REL_CONF_GROW 0.1       /* ... and growth that doubles it from half */
#define REL_WHERE_S 1.0         /* s: where the ball is: its mean over the last second */
#define REL_MOVED_S 2.0         /* s: a look-back that starts this much later: the ball moved */

#define SEC(x) ((int64_t)lround((x) * SERIES_HZ))

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

/* Evaluate the release rules with the data up to bin `now`. */
static void evaluate(const km_dsp *d, int64_t now, int64_t from, int w, double ax, double ay,
                     rel_eval_t *ev)
{
    const series_t *s = &d->s;
    ev->ok_strict = ev->ok_weak = 0;
    ev->bin = now;
    ev->x = ax;
    ev->y = ay;
    ev->fast = smooth(s->ball, now, SEC(REL_FAST_S));
    int64_t first = from + w - 1, last_ref = now - SEC(REL_RECENT_S);
    if (last_ref - first < SEC(REL_MIN_REF_S))
        return;
    double vals[REL_LOOK_N];
    int nv = 0;
    for (int64_t i = first; i <= last_ref && nv < REL_LOOK_N; i++)
        vals[nv++] = smooth(s->ball, i, w);
    sort_small(vals, nv);
    double ref = vals[(int)(REL_REF_QUANTILE * (nv - 1))];
    /* the level now: the boxcar over the last breath is centred half a
     * breath back; extrapolated to now along the fall between it and the
     * boxcar before it (both free of breathing) */
    double cur = smooth(s->ball, now, w), fast = ev->fast;
    double before = now - 2 * w + 1 >= 0 ? smooth(s->ball, now - w, w) : cur;
    if (cur < before)
        cur += (cur - before) * 0.5 * (w - 1) / w;
    if (!(ref > 0))
        return;
    double drop = 1.0 - cur / ref;
    ev->drop = drop;
    if (drop <= 0)
        return;
    /* the onset: where the smoothed force last stood above a share of the fall */
    double level = ref - REL_ONSET_SHARE * (ref - cur), half = ref - 0.5 * (ref - cur);
    int64_t i = now, i50 = now;
    while (i > first && smooth(s->ball, i, w) < level) {
        if (smooth(s->ball, i, w) < half)
            i50 = i - 1;
        i--;
    }
    /* the fall between its REL_ONSET_SHARE and half crossings, extrapolated
     * back to the level it left: the onset of a slow (logistic) start as of a
     * sharp (exponential) one */
    double back = (i50 - i) * REL_ONSET_SHARE / (0.5 - REL_ONSET_SHARE);
    double on_bin = i - back - REL_BOXCAR_DELAY * w;
    double onset = d->t0 + (on_bin + 0.5) / SERIES_HZ;
    ev->onset = onset;
    double since = (now - on_bin) / SERIES_HZ;
    if (onset < d->hold_start + REL_SETTLE_S || since <= REL_MIN_SINCE_S)
        return;
    /* level before the onset: least-squares slope of the smoothed force */
    int64_t p1 = (int64_t)floor(on_bin), p0 = p1 - SEC(REL_PRE_S);
    if (p0 < first)
        p0 = first;
    double pre_slope = 0;
    if (p1 - p0 >= SEC(REL_PRE_MIN_S)) {
        double sx = 0, sy = 0, sxy = 0, sxx = 0;
        int m = 0;
        for (int64_t k = p0; k <= p1; k++, m++) {
            double x = (double)(k - p0) / SERIES_HZ, y = smooth(s->ball, k, w) / ref;
            sx += x;
            sy += y;
            sxy += x * y;
            sxx += x * x;
        }
        pre_slope = (m * sxy - sx * sy) / (m * sxx - sx * sx);
    }
    double rate = drop / since;
    int level_before = -pre_slope < REL_PRE_SLOPE_SHARE * rate;
    /* the body around the ball took the load */
    double ann_ref = smooth(s->annulus, p1 > first ? p1 : first, w);
    double ann = smooth(s->annulus, now, w);
    double grow = ann_ref > 0 ? ann / ann_ref - 1.0 : 0;
    ev->grow = grow;
    ev->cur = cur;
    int shape = level_before && fast > REL_MAX_DROP * ref && drop < REL_MAX_DROP;
    ev->ok_strict = shape && drop >= d->cfg.release_drop && grow >= REL_GROW;
    ev->ok_weak = shape && drop >= REL_WEAK_SHARE * d->cfg.release_drop &&
                  grow >= REL_WEAK_SHARE * REL_GROW;
}

static void emit(km_dsp *d, const rel_eval_t *ev, km_event *out, size_t max, size_t *n)
{
    /* evidence: the fall and the body's growth, mapped by a logistic fitted
     * on sim:// only (reliability: 0.3 -> a third real, 0.5 -> 88 %) */
    double c = fmin(1.0, ev->drop / REL_CONF_DROP) * fmin(1.0, 0.5 + ev->grow / REL_CONF_GROW);
    double conf = 1.0 / (1.0 + exp(-REL_CONF_K * (c - REL_CONF_C0)));
    km_dsp_emit_(d, out, max, n, KM_EV_RELEASE, ev->onset, d->hold_x * d->pitch,
                 d->hold_y * d->pitch, ev->cur, conf, ev->drop);
    d->rel.armed = 0;
}

/* A disturbance (the hold ended, the ball moved) was noticed at bin now: did
 * a release begin before it? */
static void disturbed(km_dsp *d, int64_t now, km_event *out, size_t max, size_t *n)
{
    release_t *r = &d->rel;
    /* where the disturbance began: the first kept evaluation with the ball
     * away from where it was or its force clearly lower (faster than a
     * release falls) */
    const rel_eval_t *e0 = NULL;
    for (int k = 0; k < REL_EVAL_KEEP; k++) {
        const rel_eval_t *ev = &r->evals[(r->eval_pos + k) % REL_EVAL_KEEP];
        if (ev->bin >= 0 && (!e0 || ev->bin < e0->bin))
            e0 = ev;
    }
    int64_t start = now;
    for (int k = 0; e0 && k < REL_EVAL_KEEP; k++) {
        const rel_eval_t *ev = &r->evals[(r->eval_pos + k) % REL_EVAL_KEEP];
        if (ev->bin < 0 || ev->bin >= start)
            continue;
        if (hypot(ev->x - e0->x, ev->y - e0->y) * d->pitch > REL_DISTURB_MOVE_MM ||
            ev->fast < REL_DISTURB_FALL * e0->fast)
            start = ev->bin;
    }
    const rel_eval_t *best = NULL;
    for (int k = 0; k < REL_EVAL_KEEP; k++) {
        const rel_eval_t *ev = &r->evals[k];
        if (ev->bin < 0 || ev->bin > start - SEC(REL_DISTURB_MARGIN_S) || !ev->ok_weak)
            continue;
        if (!best || ev->drop > best->drop)
            best = ev;
    }
    if (best)
        emit(d, best, out, max, n);
    for (int k = 0; k < REL_EVAL_KEEP; k++)
        r->evals[k].bin = -1;
    r->cond_since = NAN;
}

void km_dsp_release_(km_dsp *d, km_event *out, size_t max, size_t *n)
{
    const series_t *s = &d->s;
    release_t *r = &d->rel;
    int64_t now = s->n - 1;
    if (!r->armed)
        return;
    if (!d->holding) {
        disturbed(d, now, out, max, n);
        r->armed = 0;
        return;
    }
    int w = isnan(d->br.bpm) ? SEC(REL_BREATH_DEFAULT_S) : (int)lround(60.0 * SERIES_HZ / d->br.bpm); /* one breath */
    if (w < SEC(REL_BREATH_MIN_S))
        w = SEC(REL_BREATH_MIN_S);
    if (w > SEC(REL_BREATH_MAX_S))
        w = SEC(REL_BREATH_MAX_S);
    if (now < SEC(REL_WHERE_S))
        return;
    int64_t hold_bin = (int64_t)ceil((d->hold_start - d->t0) * SERIES_HZ);
    /* where the ball is now (the last second) */
    double ax = 0, ay = 0;
    for (int64_t i = now - SEC(REL_WHERE_S) + 1; i <= now; i++) {
        if (!SER(s->valid, i)) {
            r->cond_since = NAN;
            return;
        }
        ax += SER(s->x, i) / SEC(REL_WHERE_S);
        ay += SER(s->y, i) / SEC(REL_WHERE_S);
    }
    int64_t still_from = now;
    while (still_from > now - SEC(REL_LOOK_S) && still_from > 0 && SER(s->valid, still_from - 1) &&
           hypot(SER(s->x, still_from - 1) - ax, SER(s->y, still_from - 1) - ay) * d->pitch <=
               REL_STILL_MM)
        still_from--;
    /* the ball moved since the last bin's look-back began: a disturbance */
    if (r->last_still_from >= 0 && still_from > r->last_still_from + SEC(REL_MOVED_S) &&
        still_from > hold_bin + SEC(REL_WHERE_S)) {
        disturbed(d, now, out, max, n);
        if (!r->armed)
            return;
    }
    r->last_still_from = still_from;
    int64_t from = hold_bin > still_from ? hold_bin : still_from;
    if (from < now - SEC(REL_LOOK_S))
        from = now - SEC(REL_LOOK_S);
    rel_eval_t *ev = &r->evals[r->eval_pos];
    r->eval_pos = (r->eval_pos + 1) % REL_EVAL_KEEP;
    evaluate(d, now, from, w, ax, ay, ev);
    if (!ev->ok_strict) {
        r->cond_since = NAN;
        return;
    }
    if (isnan(r->cond_since))
        r->cond_since = d->t;
    if (d->t - r->cond_since >= REL_CONFIRM_S)
        emit(d, ev, out, max, n);
}
