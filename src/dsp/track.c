/* track.c: hotspot identities across frames, the hold state machine and the
 * safety limits. Per frame, no allocation.
 *
 * Tracking: each live track takes the nearest peak within 30 mm (strongest
 * peaks first); other peaks start new tracks; a track unseen for 0.3 s (or
 * 2.5 frame periods at low rates) ends. A track seen for 0.2 s is reported
 * once as a `hotspot`.
 * Hold: the strongest track, still (every 10 Hz sample of the last
 * hold_settle_s within hold_radius_mm of its mean) and steady (force
 * coefficient of variation under 0.25, at least 10 N), starts a hold
 * (`on_target`). Progress every hold_interval_s (`hold`), `hold_limit` once
 * after max_hold_s, `off_target` when no hotspot is within move_away_mm of the
 * hold for 0.5 s or its force stays under 35 % of the hold's for 0.5 s. */
#include <math.h>

#include "dsp_internal.h"

/* Durations with a floor in frame periods: at low rates a fixed time would
 * be less than one or two frames. */
#define TR_GATE_MM 30.0        /* a ball does not travel this far in one frame (hand speed) */
#define TR_GATE_MIN_CELLS 2.0  /* ... nor less than two cells on coarse mats */
#define TR_GAP_S 0.3           /* unseen this long, a track ends: a lift, not a missed peak */
#define TR_GAP_FRAMES 2.5      /* ... at least this many frame periods */
#define TR_REPORT_S 0.2        /* seen this long, a hotspot is real (not a brushing hand) */
#define TR_REPORT_FRAMES 1.5   /* ... at most this many frame periods */
#define HOLD_MIN_FORCE_N 10.0  /* the least load a ball hold carries (body part on the ball) */
#define HOLD_MAX_CV 0.25       /* force's coefficient of variation: above, the person shifts */
#define HOLD_END_SHARE 0.35    /* of the hold's force: under it, the person has lifted off */
#define HOLD_GRACE_S 0.5       /* lost or weak this long ends a hold (a breath does not) */
#define HOLD_GRACE_FRAMES 1.5  /* ... at least this many frame periods */
#define SAFE_ON_S 0.5          /* over a limit this long: a cue (a bump does not set it off) */
#define SAFE_ON_FRAMES 1.5     /* ... at least this many frame periods */
#define SAFE_CLEAR_SHARE 0.9   /* of each limit: under it, the danger is over (hysteresis) */
#define SAFE_REARM_S 2.0       /* under the limits this long before a new warning can start */
#define SAFE_REPEAT_S 5.0      /* the warning again while the danger lasts (its cue is ~0.6 s) */
#define LIMIT_REPEAT_S 15.0    /* "time to move on" again while the person stays on the spot */
#define SPENT_REST_S 60.0      /* off the ball this long, a spot held to its limit may be held
                                * again (a choice: rest at least as long as the dose's lower end) */

static double track_gap_s(const km_dsp *d) { return fmax(TR_GAP_S, TR_GAP_FRAMES / d->rate); }

void km_dsp_track_(km_dsp *d, km_event *out, size_t max, size_t *n)
{
    const double gate = fmax(TR_GATE_MM / d->pitch, TR_GATE_MIN_CELLS); /* cells */
    int used[KM_MAX_PEAKS] = {0};
    /* strongest peaks claim their track first */
    for (int round = 0; round < d->npeaks; round++) {
        int best = -1;
        for (int i = 0; i < d->npeaks; i++)
            if (!used[i] && (best < 0 || d->peaks[i].force > d->peaks[best].force))
                best = i;
        const peak_t *p = &d->peaks[best];
        used[best] = 1;
        int match = -1;
        double md = gate;
        for (int k = 0; k < KM_MAX_TRACKS; k++) {
            track_t *tr = &d->tracks[k];
            if (!tr->alive || tr->last_t == d->t)
                continue;
            double dist = hypot(tr->x - p->x, tr->y - p->y);
            if (dist < md) {
                md = dist;
                match = k;
            }
        }
        if (match < 0) {
            for (int k = 0; k < KM_MAX_TRACKS; k++)
                if (!d->tracks[k].alive) {
                    match = k;
                    d->tracks[k].alive = 1;
                    d->tracks[k].id = ++d->next_id;
                    d->tracks[k].first_t = d->t;
                    d->tracks[k].reported = 0;
                    break;
                }
            if (match < 0)
                continue; /* all slots busy with stronger hotspots */
        }
        track_t *tr = &d->tracks[match];
        tr->x = p->x;
        tr->y = p->y;
        tr->force = p->force;
        tr->area = p->area;
        tr->peak = p->peak;
        tr->last_t = d->t;
    }
    d->primary = -1;
    d->nhot = 0;
    for (int k = 0; k < KM_MAX_TRACKS; k++) {
        track_t *tr = &d->tracks[k];
        if (!tr->alive)
            continue;
        if (d->t - tr->last_t > track_gap_s(d)) {
            tr->alive = 0;
            continue;
        }
        if (tr->last_t != d->t)
            continue; /* not seen in this frame: coasting */
        if (!tr->reported && d->t - tr->first_t >= fmin(TR_REPORT_S, TR_REPORT_FRAMES / d->rate)) {
            tr->reported = 1;
            if (d->cfg.emit_hotspot_events)
                km_dsp_emit_(d, out, max, n, KM_EV_HOTSPOT, d->t, tr->x * d->pitch,
                             tr->y * d->pitch, tr->force, 1.0, tr->peak);
        }
        if (d->primary < 0 || tr->force > d->tracks[d->primary].force)
            d->primary = k;
        /* insertion by force into the public list */
        km_hotspot h = {tr->id, tr->x * d->pitch, tr->y * d->pitch, tr->force, tr->area,
                        tr->peak, d->t - tr->first_t};
        size_t i = d->nhot++;
        while (i > 0 && d->hot[i - 1].force_n < h.force_n) {
            d->hot[i] = d->hot[i - 1];
            i--;
        }
        d->hot[i] = h;
    }
}

/* Is the primary hotspot still and steady over the last `secs` of series? */
static int still_and_steady(const km_dsp *d, double secs, double *mx, double *my, double *mf)
{
    const series_t *s = &d->s;
    int64_t nb = (int64_t)ceil(secs * SERIES_HZ);
    if (s->n < nb)
        return 0;
    double sx = 0, sy = 0, sf = 0, sff = 0;
    for (int64_t i = s->n - nb; i < s->n; i++) {
        if (!SER(s->valid, i))
            return 0;
        sx += SER(s->x, i);
        sy += SER(s->y, i);
        sf += SER(s->ball, i);
        sff += (double)SER(s->ball, i) * SER(s->ball, i);
    }
    sx /= nb;
    sy /= nb;
    double mean = sf / nb, var = sff / nb - mean * mean;
    double r = d->cfg.hold_radius_mm / d->pitch;
    for (int64_t i = s->n - nb; i < s->n; i++)
        if (hypot(SER(s->x, i) - sx, SER(s->y, i) - sy) > r)
            return 0;
    if (mean < HOLD_MIN_FORCE_N || sqrt(fmax(var, 0)) > HOLD_MAX_CV * mean)
        return 0;
    *mx = sx;
    *my = sy;
    *mf = mean;
    return 1;
}

/* A spot whose hold reached its limit: no new hold there until the ball has
 * been farther than move_away_mm from it, or the person has been off the ball
 * SPENT_REST_S; while the person stays on it,
 * still, the limit is said again every LIMIT_REPEAT_S. Returns 1 while the
 * spot blocks a new hold. */
static int spent_spot(km_dsp *d, km_event *out, size_t max, size_t *n)
{
    if (!d->spent)
        return 0;
    if (d->primary < 0) { /* off the ball: long enough, and the spot has rested */
        if (isnan(d->spent_off_since))
            d->spent_off_since = d->t;
        if (d->t - d->spent_off_since >= SPENT_REST_S)
            d->spent = 0;
        return d->spent;
    }
    d->spent_off_since = NAN;
    const track_t *tr = &d->tracks[d->primary];
    if (hypot(tr->x - d->spent_x, tr->y - d->spent_y) * d->pitch > d->cfg.move_away_mm) {
        d->spent = 0; /* moved away: a new spot may be held */
        return 0;
    }
    double x, y, f;
    if (d->t - d->limit_last_t >= LIMIT_REPEAT_S &&
        still_and_steady(d, d->cfg.hold_settle_s, &x, &y, &f)) {
        d->limit_last_t = d->t;
        km_dsp_emit_(d, out, max, n, KM_EV_HOLD_LIMIT, d->t, x * d->pitch, y * d->pitch, f, 1.0,
                     d->t - d->spent_start);
    }
    return 1;
}

void km_dsp_hold_(km_dsp *d, km_event *out, size_t max, size_t *n)
{
    const double grace = fmax(HOLD_GRACE_S, HOLD_GRACE_FRAMES / d->rate);
    if (!d->holding) {
        double x, y, f;
        /* no hold starts while pressing too hard, nor on a spot already held to its limit */
        if (spent_spot(d, out, max, n) || d->over_active)
            return;
        if (d->primary >= 0 && still_and_steady(d, d->cfg.hold_settle_s, &x, &y, &f)) {
            d->holding = 1;
            d->hold_track = d->tracks[d->primary].id;
            d->hold_x = x;
            d->hold_y = y;
            d->hold_ref_force = f;
            d->hold_start = d->t;
            d->next_progress = d->t + d->cfg.hold_interval_s;
            d->limit_sent = 0;
            d->lost_since = d->weak_since = NAN;
            d->rel.armed = 1;
            d->rel.cond_since = NAN;
            d->rel.last_still_from = -1;
            for (int k = 0; k < REL_EVAL_KEEP; k++)
                d->rel.evals[k].bin = -1;
            km_dsp_emit_(d, out, max, n, KM_EV_ON_TARGET, d->t, x * d->pitch, y * d->pitch, f,
                         1.0, 0);
        }
        return;
    }
    /* the hotspot of the hold: the same track if it is there, else the
     * nearest one within reach */
    const track_t *h = NULL, *nearest = NULL;
    double reach = d->cfg.move_away_mm / d->pitch, nearest_d = reach;
    for (int k = 0; k < KM_MAX_TRACKS; k++) {
        const track_t *tr = &d->tracks[k];
        if (!tr->alive || tr->last_t != d->t)
            continue;
        double dist = hypot(tr->x - d->hold_x, tr->y - d->hold_y);
        if (dist > reach)
            continue;
        if (tr->id == d->hold_track)
            h = tr;
        if (dist <= nearest_d) {
            nearest_d = dist;
            nearest = tr;
        }
    }
    if (!h)
        h = nearest;
    int end = 0;
    if (!h) {
        if (isnan(d->lost_since))
            d->lost_since = d->t;
        end = d->t - d->lost_since >= grace;
    } else {
        d->lost_since = NAN;
        d->hold_track = h->id;
        if (h->force < HOLD_END_SHARE * d->hold_ref_force) {
            if (isnan(d->weak_since))
                d->weak_since = d->t;
            end = d->t - d->weak_since >= grace;
        } else {
            d->weak_since = NAN;
        }
    }
    if (end) {
        km_dsp_emit_(d, out, max, n, KM_EV_OFF_TARGET, d->t, d->hold_x * d->pitch,
                     d->hold_y * d->pitch, h ? h->force : 0, 1.0, d->t - d->hold_start);
        d->holding = 0;
        if (d->limit_sent) {
            d->spent = 1;
            d->spent_x = d->hold_x;
            d->spent_y = d->hold_y;
            d->spent_start = d->hold_start;
            d->spent_off_since = NAN;
        }
        return;
    }
    double held = d->t - d->hold_start;
    if (held >= d->cfg.max_hold_s &&
        (!d->limit_sent || d->t - d->limit_last_t >= LIMIT_REPEAT_S)) {
        d->limit_sent = 1;
        d->limit_last_t = d->t;
        km_dsp_emit_(d, out, max, n, KM_EV_HOLD_LIMIT, d->t, d->hold_x * d->pitch,
                     d->hold_y * d->pitch, h ? h->force : NAN, 1.0, held);
    }
    /* no progress ticks from the limit on, nor while pressing too hard:
     * nothing may encourage a longer hold or a harder press */
    while (d->t >= d->next_progress && !d->limit_sent) {
        if (!d->over_active)
            km_dsp_emit_(d, out, max, n, KM_EV_HOLD, d->t, d->hold_x * d->pitch,
                         d->hold_y * d->pitch, h ? h->force : NAN, 1.0, held);
        d->next_progress += d->cfg.hold_interval_s;
    }
}

void km_dsp_safety_(km_dsp *d, km_event *out, size_t max, size_t *n)
{
    double force = d->primary >= 0 ? d->tracks[d->primary].force : 0;
    int over = d->frame_peak_kpa >= d->cfg.max_kpa || force >= d->cfg.max_force_n;
    int under = d->frame_peak_kpa < SAFE_CLEAR_SHARE * d->cfg.max_kpa &&
                force < SAFE_CLEAR_SHARE * d->cfg.max_force_n;
    const double hold_on = fmax(SAFE_ON_S, SAFE_ON_FRAMES / d->rate), rearm = SAFE_REARM_S;
    if (over) {
        d->under_since = NAN;
        if (isnan(d->over_since))
            d->over_since = d->t;
        int repeat = d->over_active && d->t - d->over_last_t >= SAFE_REPEAT_S;
        if ((!d->over_active && d->t - d->over_since >= hold_on) || repeat) {
            d->over_active = 1;
            d->over_last_t = d->t;
            double x = d->primary >= 0 ? d->tracks[d->primary].x * d->pitch : NAN;
            double y = d->primary >= 0 ? d->tracks[d->primary].y * d->pitch : NAN;
            km_dsp_emit_(d, out, max, n, KM_EV_OVERPRESSURE, d->t, x, y, force, 1.0,
                         d->frame_peak_kpa);
        }
    } else {
        d->over_since = NAN;
        if (under) {
            if (isnan(d->under_since))
                d->under_since = d->t;
            if (d->over_active && d->t - d->under_since >= rearm)
                d->over_active = 0;
        }
    }
}
