/* knotmat/report.h: a session report a clinician can read: metadata, the
 * mean and peak pressure maps with a kPa/mmHg colour scale and the holds
 * marked, a timeline of total load, ball (hotspot) force and breathing with
 * every event marked and labelled, and a table of the holds. Drawn with
 * cairo as a multi-page PDF (timeline detail pages for long sessions) or a
 * PNG of the first page. Works on anything knotmat can read (.kmr, knotmat
 * CSV, PmatData, Tekscan and XSENSOR exports). The events and holds are the
 * live session's own when the file holds them (knotmat/pass.h). */
#ifndef KNOTMAT_REPORT_H
#define KNOTMAT_REPORT_H

#include <stdbool.h>
#include "common.h"
#include "dsp.h"
#include "source.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_report_options {
    const char *input;        /**< a file or source URI */
    const char *output;       /**< ends in .pdf or .png */
    bool deidentify;          /**< no subject, operator, serial, notes, file name, date */
    bool force;               /**< overwrite an existing output */
    /** By default the report shows the events the live session decided and
     *  recorded (a .kmr made by `knotmat run -r`), with the settings it ran
     *  with; `reanalyze` runs the detectors again (with the recorded
     *  settings and `set` over them) and says so on the report. */
    bool reanalyze;
    /** "KEY=VALUE ..." over the recorded (else default) detector settings,
     *  for a re-analysis or a file without recorded events; NULL: none. */
    const char *set;
    double page_span_s;       /**< timeline detail pages of this length (0: 300 s) */
    const char *map_path;     /**< optional: write the plot geometry, the holds table and
                                   where the events come from as JSON here */
    /** Optional progress, called every few thousand frames from this thread:
     *  fraction of the input read (0..1, or <0 when unknown) and frames. */
    void (*progress)(void *user, double fraction, uint64_t frames);
    void *progress_user;
    /** Optional: notes of the input (damaged spans, malformed lines). */
    km_note_fn note;
    void *note_user;
} km_report_options;

typedef struct km_report_summary {
    uint64_t frames;
    double duration_s;
    int pages;
    size_t events;           /**< events marked (breathing and hotspot excluded) */
    size_t holds;
    size_t marks;            /**< the person's own marks (KM_EV_MARK) */
    uint64_t skipped;        /**< damaged spans / malformed frames of the input, skipped */
    char events_from[96];    /**< km_pass_events_from_text(): "as recorded live", ... */
} km_report_summary;

/** Read the input once, run the detectors, draw the report into a file made
 *  with km_outfile (0600 from creation; the target appears only when the
 *  report is whole). Possible errors: KM_EINVAL (a bad output name, or one
 *  km_outfile refuses), KM_EBUSY (it exists and !force), KM_EIO (cairo cannot
 *  write it), or the source's error; `err` says which. Not real-time. */
KM_API int km_report_render(const km_report_options *o, km_report_summary *out, char *err,
                            size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
