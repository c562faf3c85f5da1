/* series.c: the 10 Hz history of the slow signals (series_t in
 * dsp_internal.h) that the hold, release and breathing detectors read: every
 * frame adds the hotspot's force, the body force in an annulus around it, the
 * whole-mat force and the hotspot's position into the current 1/SERIES_HZ s
 * bin of its own timestamp; missing bins (slow mats) repeat the last value,
 * after a lost device they are invalid. Real-time: no allocation. */
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
