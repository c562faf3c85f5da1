/* emit.c: an event into the caller's array, stamped with the frame it was
 * decided on and the primary track: what every detector of src/dsp/ calls,
 * so that none of them calls back into dsp.c. Real-time. */
#include "dsp_internal.h"

void km_dsp_emit_(km_dsp *d, km_event *out, size_t max, size_t *n, enum km_event_type type,
                  double t, double x, double y, double force, double conf, double value)
{
    if (*n >= max)
        return;
    km_event *e = &out[(*n)++];
    e->type = type;
    e->t_s = t;
    e->x_mm = x;
    e->y_mm = y;
    e->force_n = force;
    e->confidence = conf;
    e->value = value;
    e->detected_t_s = d->t;
    e->track = d->primary >= 0 ? d->tracks[d->primary].id : 0;
}
