/* knotmat/pass.h: the one offline pass over a recording, shared by analyze,
 * export and report: every frame in order, the hotspots after it, and the
 * events. The events are the ones the live session decided and recorded
 * (a .kmr made by a session: its settings are in the header) unless asked to
 * re-analyse; a file without them (a CSV, an import, `knotmat record`) is
 * analysed on the pass with the given settings, and the pass says which it
 * did (km_pass_info.events_from). A rate the input does not state is
 * measured from the frames' times, never assumed.
 *
 *     km_pass_options o = {.input = "s.kmr"};
 *     km_pass *p; km_pass_open(&o, &p, err, sizeof err);
 *     const km_frame *f; const km_event *ev; size_t n;
 *     while (km_pass_next(p, &f, &ev, &n) == KM_OK) { ... f may be NULL at the end ... }
 *     km_pass_close(p);
 *
 * examples/replay.c is a whole program. Not real-time; one thread. */
#ifndef KNOTMAT_PASS_H
#define KNOTMAT_PASS_H

#include <stdbool.h>
#include "dsp.h"
#include "record.h"
#include "source.h"

#ifdef __cplusplus
extern "C" {
#endif

enum km_pass_events_from {
    KM_PASS_EVENTS_RECORDED = 1, /**< the live session's, read from the file */
    KM_PASS_EVENTS_DETECTED      /**< decided on this pass by the detectors */
};

typedef struct km_pass_options {
    const char *input;        /**< a file or source URI */
    bool reanalyze;           /**< run the detectors even when events are recorded */
    /** Settings of a re-analysis (or of a file without recorded events):
     *  "KEY=VALUE ..." (km_dsp_config_parse()) over the recorded settings
     *  when there are, else over the defaults; NULL: none. */
    const char *set;
    bool fast_plan;           /**< FFTW_ESTIMATE: a single pass does not repay MEASURE */
    km_progress_fn progress;  /**< optional, see km_source_set_progress */
    void *progress_user;
    km_note_fn note;          /**< optional: the input's notes (damage, malformed lines) */
    void *note_user;
} km_pass_options;

typedef struct km_pass_info {
    km_source_info source;
    km_record_meta meta;      /**< a .kmr's header (zeros otherwise) */
    bool have_meta;
    enum km_pass_events_from events_from;
    /** The settings the events were decided with: the recorded ones, or
     *  those of this pass. The hotspots of the pass always use these. */
    km_dsp_config settings;
    bool settings_recorded;   /**< `settings` come from the file */
    char settings_text[640];  /**< km_dsp_config_format() of `settings` */
    size_t recorded_events;   /**< recorded events read; a re-analysis keeps only the
                                   person's marks (KM_EV_MARK) of them */
    km_kmr_damage event_damage; /**< damaged event blocks skipped */
} km_pass_info;

typedef struct km_pass km_pass;

/** Open the input, read a recording's header and events, make the
 *  detectors. Possible errors: KM_EINVAL (a bad `set`; `set` for a file
 *  whose recorded events are used: settings need `reanalyze`), those of
 *  km_source_open(), km_dsp_new(), km_kmr_read_events(); KM_ENOMEM. */
KM_API int km_pass_open(const km_pass_options *o, km_pass **out, char *err, size_t errlen);
KM_API const km_pass_info *km_pass_describe(const km_pass *p);
/** The next frame (*f) and the events decided by it (recorded events: those
 *  decided at or before the frame's time; a re-analysis gives the
 *  detectors' events and the recorded marks). After the last frame, one call
 *  gives *f = NULL and any recorded events decided later; then KM_EEOF.
 *  Pointers stay valid until the next call. Possible errors: those of
 *  km_source_read() for a frame it could not read (the next call goes on;
 *  a malformed frame is skipped and noted, not returned). */
KM_API int km_pass_next(km_pass *p, const km_frame **f, const km_event **ev, size_t *n);
/** The hotspots after the last frame (knotmat/dsp.h). */
KM_API size_t km_pass_hotspots(const km_pass *p, const km_hotspot **out);
KM_API void km_pass_dsp_stats(const km_pass *p, km_dsp_stats *out);
KM_API void km_pass_source_stats(const km_pass *p, km_source_stats *out);
/** "as recorded live", "re-analysed, not the live ones" or "detected on
 *  reading (the input holds none)": what a report or an export says of its
 *  events (their settings: km_pass_info.settings_text). */
KM_API const char *km_pass_events_from_text(const km_pass *p);
KM_API void km_pass_close(km_pass *p);

#ifdef __cplusplus
}
#endif
#endif
