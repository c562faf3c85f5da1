/* marks.c: the person's marks against the detector's events (marks.h). */
#include <math.h>
#include <string.h>

#include "marks.h"

enum km_event_type km_mark_event_type_(int mark)
{
    switch (mark) {
    case KM_MARK_TWITCH: return KM_EV_SPASM;
    case KM_MARK_RELEASE: return KM_EV_RELEASE;
    case KM_MARK_OUCH: return KM_EV_OVERPRESSURE;
    default: return 0;
    }
}

static int in_window(double dt) { return dt >= -MARK_BEFORE_S && dt <= MARK_AFTER_S; }

size_t km_marks_match_(const km_event *ev, size_t n, mark_match *out, mark_agreement *a)
{
    memset(a, 0, sizeof *a);
    size_t nm = 0;
    for (size_t i = 0; i < n; i++) {
        int m = km_event_mark(&ev[i]);
        if (!m)
            continue;
        mark_match *o = &out[nm++];
        *o = (mark_match){.t_s = ev[i].t_s, .mark = m, .want = km_mark_event_type_(m),
                          .dt_s = NAN};
        for (size_t j = 0; j < n; j++) {
            double dt = ev[j].t_s - ev[i].t_s;
            if (ev[j].type == o->want && in_window(dt) && !(fabs(dt) >= fabs(o->dt_s)))
                o->dt_s = dt;
        }
        a->marked[m]++;
        a->agreed[m] += isfinite(o->dt_s);
    }
    /* the detector's events of a kind that no mark of that kind agrees with */
    for (size_t j = 0; j < n; j++)
        for (int m = 1; m < KM_MARK_COUNT; m++) {
            if (ev[j].type != km_mark_event_type_(m))
                continue;
            int seen = 0;
            for (size_t k = 0; k < nm && !seen; k++)
                seen = out[k].mark == m && in_window(ev[j].t_s - out[k].t_s);
            a->unmarked[m] += !seen;
        }
    return nm;
}
