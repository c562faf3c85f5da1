/* knotmat/sim.h: a simulated pressure mat with a person lying on an
 * acupressure ball. Deterministic from its seed; every event it plays is
 * known in advance as ground truth. The physics, numbers and their sources
 * are in docs/simulator.md. */
#ifndef KNOTMAT_SIM_H
#define KNOTMAT_SIM_H

#include "frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_sim km_sim;

typedef struct km_sim_params {
    char scenario[32];     /**< see km_sim_scenarios() */
    uint64_t seed;
    uint16_t rows, cols;   /**< default 32 x 32 */
    float pitch_mm;        /**< default 12.7 */
    double rate_hz;        /**< default 100 */
    double duration_s;     /**< default 120; 0 = endless (live) */
    double ball_mm;        /**< ball diameter, default 63 (lacrosse ball) */
    double weight_kg;      /**< body mass, default 70 */
    double full_scale_kpa; /**< sensor range, default 300 */
    int adc_bits;          /**< default 12 */
    double noise_kpa;      /**< sensor noise 1 sigma, default 0.15 */
    double creep;          /**< creep fraction at t -> inf; < 0: drawn in 0.07-0.19 */
    double dead_fraction;  /**< share of dead cells, default 0.005 */
    int flag_dead;         /**< mark dead cells in cell_flags (default 1, like a calibrated mat) */
    double lag_frames;     /**< first-order sensor lag, time constant in frames (default 0) */
    double jitter;         /**< frame times jittered by +- this share of a period (default 0) */
    int model;             /**< 1: sim:// (sim.c), 2: sim2:// (sim2.c), another body, sensor
                                and event model written apart (default 1) */
} km_sim_params;

/** Types of ground-truth events. Only SPASM and RELEASE are "targets"; the
 *  rest are confounders the detectors must not mistake for them. */
enum km_sim_event_type {
    KM_SIM_ON_BALL = 1, /**< the person settles onto the ball */
    KM_SIM_SPASM,       /**< local twitch: brief burst in ball force */
    KM_SIM_RELEASE,     /**< ball force falls 10-30 %, body contact grows */
    KM_SIM_COUGH,       /**< whole-trunk transient */
    KM_SIM_TALK,        /**< speech: irregular breathing, small trunk vibration */
    KM_SIM_SHIFT,       /**< the body and ball move a few cm */
    KM_SIM_ROLL_OFF,    /**< the person rolls off the ball */
    KM_SIM_OFF_BALL,    /**< the person lifts off the ball deliberately */
};

typedef struct km_sim_event {
    enum km_sim_event_type type;
    double t_s;          /**< SPASM: onset of the first twitch; RELEASE: onset of the fall */
    double duration_s;   /**< SPASM: the burst; RELEASE: time constant (< 0: logistic) */
    double x_mm, y_mm;   /**< ball position at the event (CSV convention) */
    double magnitude;    /**< SPASM: peak fraction of the first twitch (< 0: force falls
                              first); RELEASE: fall fraction */
} km_sim_event;

/** Defaults as documented above (scenario "release", seed 1). */
KM_API void km_sim_params_default(km_sim_params *p);
/** Set one parameter by name, as in a sim:// URI or on the command line:
 *  model (1, 2: the scenario falls back to the model's default if it has no
 *  such scenario) scenario seed rows cols pitch rate duration ball weight
 *  full_scale bits noise creep dead flag_dead lag jitter.
 *  Possible errors: KM_EINVAL (an unknown key, a value that is not a
 *  number or out of range), KM_EUNSUPPORTED (an unknown scenario or
 *  model); `err` says which. */
KM_API int km_sim_params_set(km_sim_params *p, const char *key, const char *value,
                             char *err, size_t errlen);
/** NULL-terminated list of scenario names and a one-line description each. */
KM_API const char *const *km_sim_scenarios(void);
KM_API const char *km_sim_scenario_help(const char *name);
/** The scenarios of a model (1: sim://, 2: sim2://). */
KM_API const char *const *km_sim_model_scenarios(int model);
KM_API const char *km_sim_model_help(int model, const char *name);

/** A simulator for `p` (model 1 or 2). Possible errors: KM_EUNSUPPORTED (a
 *  scenario the model does not have), KM_ENOMEM. */
KM_API int km_sim_new(const km_sim_params *p, km_sim **out, char *err, size_t errlen);
KM_API void km_sim_free(km_sim *s);
/** Next frame. Possible errors: KM_EEOF (after duration_s; never when
 *  duration_s is 0), KM_ETOOBIG (`out` too small for the geometry). */
KM_API int km_sim_next(km_sim *s, km_frame *out);
/** Every planned event (ground truth), in time order. */
KM_API size_t km_sim_truth(const km_sim *s, const km_sim_event **events);
/** True ball centre (CSV convention) and ball force at time t: ground truth
 *  for position-error benchmarks. */
KM_API void km_sim_ball_truth(const km_sim *s, double t, double *x_mm, double *y_mm,
                              double *force_n);
KM_API const char *km_sim_event_name(enum km_sim_event_type t);
KM_API const km_sim_params *km_sim_get_params(const km_sim *s);

#ifdef __cplusplus
}
#endif
#endif
