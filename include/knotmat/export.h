/* knotmat/export.h: recordings into formats other tools read.
 *  - CSV: the knotmat CSV layout (docs/file-format-csv.md), every frame;
 *  - EDF+: derived channels at 10 Hz (total force, centre of pressure x/y,
 *    contact area, peak pressure, hotspot force, breathing rate) with the
 *    detected events as EDF+ annotations, for any EDF viewer; EDF+C, or
 *    EDF+D (only the seconds that hold data, at their true times) when the
 *    recording has gaps; read back with EDFlib before it is kept;
 *  - HDF5: every frame, the events, the metadata.
 * Outputs are made with km_outfile (knotmat/outfile.h). `deidentify`
 * applies km_record_meta_deidentify() (knotmat/record.h). */
#ifndef KNOTMAT_EXPORT_H
#define KNOTMAT_EXPORT_H

#include <stdbool.h>
#include "common.h"
#include "source.h"

#ifdef __cplusplus
extern "C" {
#endif

enum km_export_format { KM_EXPORT_CSV = 1, KM_EXPORT_EDF, KM_EXPORT_HDF5 };

typedef struct km_export_options {
    enum km_export_format format;
    bool deidentify;
    bool force; /**< overwrite an existing output */
    /** EDF+ and HDF5 carry the live session's recorded events by default
     *  (knotmat/pass.h); `reanalyze` runs the detectors again, with `set`
     *  ("KEY=VALUE ...") over the recorded settings. */
    bool reanalyze;
    const char *set;
    /** Optional progress while reading (see km_source_set_progress). */
    void (*progress)(void *user, double fraction, uint64_t frames);
    void *progress_user;
    /** Optional: notes of the input (damaged spans, malformed lines). */
    km_note_fn note;
    void *note_user;
} km_export_options;

typedef struct km_export_report {
    uint64_t frames, events, annotations, records;
    uint64_t skipped;     /**< damaged spans and malformed frames of the input, skipped */
    bool discontinuous;   /**< EDF+D: the recording has gaps */
    char events_from[96];  /**< km_pass_events_from_text(): "as recorded live", ... */
} km_export_report;

/** Export the recording `in` (a path or a file:// URI: .kmr, CSV, PmatData,
 *  Tekscan, XSENSOR) to `out`. Possible errors: those of km_outfile_open()
 *  (out exists, is a device, is the input), of km_source_open(), KM_EIO
 *  (write failed, disk full: nothing is left behind), KM_ENOMEM. */
KM_API int km_export(const char *in, const char *out, const km_export_options *o,
                     km_export_report *rep, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
