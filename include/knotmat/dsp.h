/* knotmat/dsp.h: the detection stage. Frames in, events out.
 *
 * Per frame: band-pass the pressure image in the frequency domain with a
 * kernel matched to the ball's contact patch (FFTW, plans made once), find
 * ball-like hotspots, refine their position below the sensor pitch, integrate
 * their force, keep their identities; follow the hold; look for the twitch
 * (spasm) in a sliding short-time spectrum of the ball's force, for the
 * release as a sustained fall of that force with the body's contact around
 * the ball growing, and for the breathing rate in the whole-mat load; watch
 * the safety limits. km_dsp_process() never allocates, locks or does I/O.
 * Algorithms, parameters and measured accuracy: docs/detection.md. */
#ifndef KNOTMAT_DSP_H
#define KNOTMAT_DSP_H

#include "events.h"
#include "frame.h"
#include "ring.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_dsp km_dsp;

typedef struct km_dsp_config {
    double ball_mm;          /**< ball diameter (63) */
    double min_ball_kpa;     /**< a hotspot's peak must reach this (30 kPa) */
    double hold_radius_mm;   /**< a hold stays within this of its position (10 mm) */
    double hold_settle_s;    /**< still and steady this long to start a hold (3 s) */
    double hold_interval_s;  /**< hold progress events (10 s) */
    double move_away_mm;     /**< farther than this from the hold ends it (25 mm) */
    double max_hold_s;       /**< hold_limit after this (90 s) */
    double max_force_n;      /**< overpressure above this ball force (120 N) */
    double max_kpa;          /**< overpressure above this peak pressure (280 kPa) */
    double spasm_threshold;  /**< band energy over the session's baseline (14) */
    double release_drop;     /**< minimum sustained fall of ball force (0.08) */
    int emit_hotspot_events; /**< 1: report each new hotspot (default 1) */
    int fftw_measure;        /**< 1: FFTW_MEASURE plans (default), 0: FFTW_ESTIMATE */
} km_dsp_config;

KM_API void km_dsp_config_default(km_dsp_config *c);
/** Set by name: ball_mm min_ball_kpa hold_radius_mm hold_settle_s
 *  hold_interval_s move_away_mm max_hold_s max_force_n max_kpa
 *  spasm_threshold release_drop emit_hotspot_events fftw_measure.
 *  Possible errors: KM_EINVAL (an unknown key, a value that is not a
 *  number or out of the key's range: `err` gives the range). */
KM_API int km_dsp_config_set(km_dsp_config *c, const char *key, const char *value, char *err,
                             size_t errlen);
/** Every setting as "KEY=VALUE KEY=VALUE ..." (values exact: they parse back
 *  to the same numbers), as a recording stores them. Returns the length the
 *  whole text needs (like snprintf); 640 bytes hold it. */
KM_API size_t km_dsp_config_format(const km_dsp_config *c, char *buf, size_t len);
/** Apply a text of km_dsp_config_format() (any subset of keys, in any order)
 *  to `c`: every valid KEY=VALUE is applied. Possible errors: KM_EINVAL (an
 *  unknown key or a value out of range: `err` names the first, which is
 *  left as it was). */
KM_API int km_dsp_config_parse(km_dsp_config *c, const char *text, char *err, size_t errlen);

/** Make a detector for frames of this geometry; plans the FFTs. `rate_hz`
 *  is the source's stated rate, 0 when not known: every window in seconds
 *  uses the rate measured from the frames' own times from the second frame
 *  on. Possible errors: KM_EINVAL (bad geometry or rate), KM_EUNSUPPORTED
 *  (a ball too large for the cell pitch), KM_ENOMEM. Not real-time: call at
 *  start-up. */
KM_API int km_dsp_new(const km_dsp_config *c, uint16_t rows, uint16_t cols, float pitch_mm,
                      double rate_hz, km_dsp **out, char *err, size_t errlen);
KM_API void km_dsp_free(km_dsp *d);

/** Analyse one frame; write up to `max` events into `out`, return how many.
 *  Frames flagged corrupt, of another geometry, or going back in time are
 *  skipped (counted). Non-finite, negative and dead cells count as 0. A
 *  frame more than a quarter saturated gets only the safety check.
 *  Real-time safe: no allocation, no lock, no I/O. */
KM_API size_t km_dsp_process(km_dsp *d, const km_frame *f, km_event *out, size_t max);

typedef struct km_hotspot {
    uint32_t id;
    double x_mm, y_mm;   /**< refined centre */
    double force_n;      /**< integrated over the blob */
    double area_cm2;     /**< cells above 10 % of the blob's peak */
    double peak_kpa;
    double age_s;        /**< how long it has been tracked */
} km_hotspot;

/** The hotspots tracked after the last frame, strongest first. */
KM_API size_t km_dsp_hotspots(const km_dsp *d, const km_hotspot **out);

typedef struct km_dsp_stats {
    uint64_t frames;          /**< analysed */
    uint64_t skipped;         /**< corrupt, wrong geometry, time going back */
    uint64_t nonfinite_cells; /**< NaN/inf cells treated as 0 */
    uint64_t saturated_frames;/**< over a quarter of the cells at full scale:
                                   only the safety check runs */
    double breath_bpm;        /**< last breathing estimate (NaN if none) */
    int holding;              /**< a hold is on */
    double hold_s;            /**< its duration */
    int spasm_enabled;        /**< 0 when the measured frame rate is too low to see a
                                   twitch (< 20 frames/s) */
    double measured_rate_hz;  /**< from the frames' timestamps (0 until two frames) */
    uint64_t spasm_rejected;  /**< twitch candidates dropped in confirmation (the force
                                   collapsed or jumped, the ball moved) */
} km_dsp_stats;
KM_API void km_dsp_stats_get(const km_dsp *d, km_dsp_stats *out);

/** Padded FFT size used for frames (rows, cols): for benchmarks. */
KM_API void km_dsp_fft_size(const km_dsp *d, int *prows, int *pcols);

typedef struct km_dsp_stage km_dsp_stage;
/** The DSP as a ring consumer on its own thread, pushing events into `q`.
 *  Stops when the ring is closed and drained, or at km_dsp_stage_stop().
 *  Possible errors: KM_ENOMEM, KM_EBUSY (no consumer slot left). */
KM_API int km_dsp_stage_start(km_dsp *d, km_ring *ring, km_event_queue *q, km_dsp_stage **out);
#define KM_DSP_STAGE_MAX_QUEUES 8
/** The same, pushing every event into each of `nq` queues (the stage's
 *  thread is the single producer of each): one queue per listener, so that
 *  a listener that falls behind loses only its own events (counted in its
 *  queue's overruns). Possible errors: also KM_EINVAL (nq too large). */
KM_API int km_dsp_stage_start_fanout(km_dsp *d, km_ring *ring, km_event_queue *const *qs,
                                     size_t nq, km_dsp_stage **out);
/** True once the stage has seen the end of the ring. */
KM_API bool km_dsp_stage_done(const km_dsp_stage *s);
/** Frames the stage lost by falling behind the ring. */
KM_API uint64_t km_dsp_stage_lost(const km_dsp_stage *s);
KM_API void km_dsp_stage_stop(km_dsp_stage *s);
/** A person's mark (enum km_mark) pressed at `at_ns` (CLOCK_MONOTONIC):
 *  the stage gives it out as a KM_EV_MARK event to every queue, after the
 *  first frame received at or after that moment, timed on the source's
 *  clock. One thread only (the single producer of the marks). false when
 *  the mark is not one, or when 64 marks wait already (counted). Real-time safe. */
KM_API bool km_dsp_stage_mark_spsc(km_dsp_stage *s, int mark, int64_t at_ns);
/** Marks refused by km_dsp_stage_mark_spsc. */
KM_API uint64_t km_dsp_stage_marks_lost(const km_dsp_stage *s);

#ifdef __cplusplus
}
#endif
#endif
