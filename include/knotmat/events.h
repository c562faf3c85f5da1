/* knotmat/events.h: what the detectors say, and the lock-free queue that
 * carries it from the DSP thread to whoever listens (printer, audio cues,
 * recorder). */
#ifndef KNOTMAT_EVENTS_H
#define KNOTMAT_EVENTS_H

#include <stdbool.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum km_event_type {
    KM_EV_HOTSPOT = 1,   /**< a new ball-like contact is tracked */
    KM_EV_ON_TARGET,     /**< a hotspot held still with steady force: the hold starts */
    KM_EV_HOLD,          /**< hold progress, every hold_interval_s (value = seconds held) */
    KM_EV_SPASM,         /**< local twitch: brief burst in the ball's force */
    KM_EV_RELEASE,       /**< sustained fall of ball force, body contact around it grows */
    KM_EV_OFF_TARGET,    /**< the hold ended: rolled off, moved away, lifted off */
    KM_EV_OVERPRESSURE,  /**< peak pressure or ball force above the configured limit */
    KM_EV_HOLD_LIMIT,    /**< the hold reached the configured maximum: move on */
    KM_EV_BREATHING,     /**< breathing rate (value = breaths per minute) */
    KM_EV_DEVICE_LOST,
    KM_EV_DEVICE_BACK,
    KM_EV_MARK,          /**< the person's own mark (a key press): value = enum km_mark */
    KM_EV_TYPE_COUNT
};

/** What a person marks during a session (KM_EV_MARK's value). */
enum km_mark {
    KM_MARK_TWITCH = 1, /**< "I felt it twitch" */
    KM_MARK_OUCH,       /**< "that hurts": too much */
    KM_MARK_RELEASE,    /**< "it let go" */
    KM_MARK_COUNT
};

typedef struct km_event {
    enum km_event_type type;
    double t_s;          /**< in the source's time base (CSV t_s, device time) */
    double x_mm, y_mm;   /**< x = column * pitch, y = row * pitch; NaN if not local */
    double force_n;      /**< ball (hotspot) force, N; NaN if not relevant */
    double confidence;   /**< 0..1 */
    double value;        /**< HOLD: seconds held; BREATHING: breaths/min;
                              OVERPRESSURE: peak kPa; RELEASE: fractional fall;
                              MARK: enum km_mark */
    double detected_t_s; /**< time of the frame on which it was decided (live delay) */
    uint32_t track;      /**< hotspot identity */
} km_event;

/** "spasm", "release", ... as used in JSON and labels. */
KM_API const char *km_event_type_name(enum km_event_type t);
/** "twitch", "ouch", "release" (JSON's "mark"); "unknown" for others. */
KM_API const char *km_mark_name(int mark);
/** The mark a KM_EV_MARK event carries (enum km_mark); 0 for any other
 *  event, or a value that is no mark (a damaged or foreign file: 7, NaN). */
KM_API int km_event_mark(const km_event *e);
/** A short text for the event: its type's name, "mark twitch" for a mark
 *  (EDF+ annotations). A static string. */
KM_API const char *km_event_label(const km_event *e);
/** One JSON object, no newline: {"t_s":..,"type":"..","x_mm":..,...}.
 *  Returns the length of the whole object (like snprintf: it was truncated
 *  to len-1 when that is >= len). Never fails. */
KM_API int km_event_to_json(const km_event *e, char *buf, size_t len);

/** Single-producer single-consumer queue of events (the index pair of
 *  src/spsc.h): one thread pushes, one thread pops. The producer never
 *  blocks: when full, the event is dropped and counted. */
typedef struct km_event_queue km_event_queue;
/** A queue of at least `capacity` events (a power of two, 2 to 2^20). NULL
 *  when out of memory. */
KM_API km_event_queue *km_event_queue_new(uint32_t capacity);
KM_API void km_event_queue_free(km_event_queue *q);
/** Producer. false (and the overrun counted) when full. Real-time safe. */
KM_API bool km_event_queue_push_spsc(km_event_queue *q, const km_event *e);
/** Consumer. false when empty. */
KM_API bool km_event_queue_pop_spsc(km_event_queue *q, km_event *out);
KM_API uint64_t km_event_queue_overruns(const km_event_queue *q);

#ifdef __cplusplus
}
#endif
#endif
