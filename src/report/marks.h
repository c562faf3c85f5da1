/* marks.h: the person's marks (KM_EV_MARK) set against the detector's
 * events, for the report. Internal to the report. */
#ifndef KNOTMAT_REPORT_MARKS_H
#define KNOTMAT_REPORT_MARKS_H

#include <stddef.h>
#include "knotmat/events.h"

/* A mark agrees with a detector event of its kind (twitch: spasm, release:
 * release, ouch: overpressure) that lies from MARK_BEFORE_S before it to
 * MARK_AFTER_S after it: a person presses the key after feeling it (a
 * reaction lying down, eyes closed, takes 0.5-2 s), while a detector may
 * decide a little after the onset it reports. */
#define MARK_BEFORE_S 5.0
#define MARK_AFTER_S 2.0

typedef struct {
    double t_s;                 /* the mark, source time */
    int mark;                   /* enum km_mark */
    enum km_event_type want;    /* the detector event it is compared with */
    double dt_s;                /* that event's time minus the mark's; NaN: none */
} mark_match;

typedef struct {
    unsigned marked[KM_MARK_COUNT];   /* marks of each kind */
    unsigned agreed[KM_MARK_COUNT];   /* ... with a detector event of its kind */
    unsigned unmarked[KM_MARK_COUNT]; /* detector events of the kind no mark agrees with */
} mark_agreement;

/* The detector event type a mark is compared with. */
enum km_event_type km_mark_event_type_(int mark);
/* Every mark among ev[0..n) into out (room for n), the counts into *a;
 * returns the number of marks. */
size_t km_marks_match_(const km_event *ev, size_t n, mark_match *out, mark_agreement *a);

#endif
