/* sim2_private.h: the second simulator (sim2.c) as seen by sim.c, which
 * dispatches the public km_sim_* calls to it when params.model is 2. */
#ifndef KNOTMAT_SIM2_PRIVATE_H
#define KNOTMAT_SIM2_PRIVATE_H

#include "knotmat/sim.h"

typedef struct km_sim2 km_sim2;

const char *const *km_sim2_scenarios_(void);
const char *km_sim2_scenario_help_(const char *name);
int km_sim2_new_(const km_sim_params *p, km_sim2 **out);
void km_sim2_free_(km_sim2 *s);
int km_sim2_next_(km_sim2 *s, km_frame *f);
size_t km_sim2_truth_(const km_sim2 *s, const km_sim_event **ev);
/* Events into time order, in place, without allocating (sim.c). */
void km_sim_events_sort_(km_sim_event *ev, size_t n);
void km_sim2_ball_truth_(const km_sim2 *s, double t, double *x, double *y, double *f);

#endif
