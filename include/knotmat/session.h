/* knotmat/session.h: the live pipeline, built by the library.
 *
 *     source thread --frames--> ring --+--> DSP thread --events--+--> listener queue (cues)
 *                                      |                         +--> listener queue (printer)
 *                                      |                         +--> recorder's queue
 *                                      +--> recorder thread --> .kmr (frames, gaps, events)
 *                                      +--> frame watchers (a display: never waited for)
 *
 * Every listener has its own bounded single-producer single-consumer queue
 * (the DSP thread produces into each; one thread of the listener's pops):
 * a listener that stalls (a printer on a blocked stdout) loses its own
 * events, counted in its overruns, and nobody else's, so cues and the
 * recording go on whatever happens to the output. Loss anywhere is counted
 * (km_session_stats) so the owner can say it. The pattern is liblsl's
 * per-consumer send buffer.
 *
 *     km_session_config c; km_session_config_default(&c); c.source = "sim://";
 *     km_session *s; km_session_open(&c, &s, err, sizeof err);
 *     km_event_queue *cues = km_session_listen(s, "cues", 256);
 *     km_session_start(s, err, sizeof err);
 *     ... pop `cues` with km_event_queue_pop_spsc() from one thread ...
 *     km_session_stop(s);                   // the source stops; the rest drains
 *     while (!km_session_drained(s)) ...;   // last events still arrive
 *     km_session_finish(s, err, sizeof err); km_session_free(s);
 *
 * examples/session.c is a whole program. Not for the frame path: these
 * functions start and join threads. */
#ifndef KNOTMAT_SESSION_H
#define KNOTMAT_SESSION_H

#include <stdbool.h>
#include "dsp.h"
#include "events.h"
#include "record.h"
#include "ring.h"
#include "source.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_session km_session;

typedef struct km_session_config {
    const char *source;          /**< source URI (knotmat/source.h) */
    uint32_t ring_slots;         /**< 0: 256 (fewer for very large mats) */
    km_dsp_config dsp;           /**< detector settings */
    const char *record_path;     /**< NULL: nothing recorded */
    km_recorder_options record;  /**< inputs NULL: the source's own file is refused */
    km_record_meta meta;         /**< subject, session, ...; geometry comes from the source */
    km_note_fn note;             /**< the source's notes (may be NULL) */
    void *note_user;
} km_session_config;

KM_API void km_session_config_default(km_session_config *c);

/** Open the source, make the ring and the detectors, create the recording
 *  (when asked). Nothing runs yet. Possible errors: those of
 *  km_source_open(), km_dsp_new(), km_recorder_open(); KM_ENOMEM. */
KM_API int km_session_open(const km_session_config *c, km_session **out, char *err,
                           size_t errlen);
KM_API const km_source_info *km_session_source_info(const km_session *s);
/** Largest frame (cells) of the source: size a watcher's frame with it. */
KM_API uint32_t km_session_max_cells(const km_session *s);

/** A listener: a queue of `capacity` events that the DSP thread fills with
 *  every event; pop it from exactly one thread. Before km_session_start().
 *  NULL when out of memory or when all KM_DSP_STAGE_MAX_QUEUES - 1 are
 *  taken. The session owns it. */
KM_API km_event_queue *km_session_listen(km_session *s, const char *name, uint32_t capacity);
/** A frame watcher (a status line, a live view): a ring consumer that the
 *  source never waits for. Before km_session_start(). Possible errors:
 *  KM_EBUSY (no consumer slot left). The session owns it. */
KM_API int km_session_watch_frames(km_session *s, const char *name, km_ring_consumer **out);

/** Start the threads. Possible errors: KM_ENOMEM, KM_ETOOBIG, the source's. */
KM_API int km_session_start(km_session *s, char *err, size_t errlen);
/** The person marks what they feel (enum km_mark: a key press): every
 *  listener and the recording get a KM_EV_MARK event timed at this moment
 *  on the source's clock. From the owner's thread only, between
 *  km_session_start() and km_session_finish(). false when not running or
 *  when too many marks wait (counted in km_session_stats.marks_lost). */
KM_API bool km_session_mark(km_session *s, int mark);
/** The source has ended by itself (end of a file). */
KM_API bool km_session_source_ended(const km_session *s);
/** Stop the source (idempotent); the DSP and the recorder drain what the
 *  ring holds, and the last events still reach every listener. */
KM_API void km_session_stop(km_session *s);
/** After km_session_stop() or the source's end: the DSP has processed every
 *  frame and pushed its last event. */
KM_API bool km_session_drained(const km_session *s);
/** Stop, wait for the DSP and the recorder to drain, close the recording.
 *  Possible errors: that of the recording (KM_EIO: the message says what
 *  the file holds). */
KM_API int km_session_finish(km_session *s, char *err, size_t errlen);
KM_API void km_session_free(km_session *s);

typedef struct km_session_stats {
    uint64_t frames;           /**< frames the source published */
    km_source_stats source;    /**< malformed, upstream gaps, ... */
    uint64_t dsp_lost;         /**< frames the detectors missed (fell behind) */
    bool recording;            /**< a recording was asked for */
    uint64_t recorded;         /**< frames in the recording (written and synced) */
    uint64_t recorder_lost;    /**< frames the recorder missed (fell behind the ring) */
    uint64_t recorder_events_lost; /**< events its queue had no room for */
    int record_error;          /**< 0, or what stopped the recording */
    uint64_t marks;            /**< marks taken by km_session_mark() */
    uint64_t marks_lost;       /**< marks it could not take */
    size_t nlisteners;
    struct km_session_listener_stats {
        char name[24];
        uint64_t overruns;     /**< events this listener lost (queue full) */
    } listeners[KM_DSP_STAGE_MAX_QUEUES];
} km_session_stats;
/** Counters; exact once km_session_finish() has returned. */
KM_API void km_session_stats_get(const km_session *s, km_session_stats *out);

#ifdef __cplusplus
}
#endif
#endif
