/* knotmat/export.h: recordings into formats other tools read.
 *  - CSV: the knotmat CSV layout (docs/file-format-csv.md), every frame;
 *  - EDF+ (EDFlib): derived channels at 10 Hz (total force, centre of
 *    pressure x/y, contact area, peak pressure, hotspot force, breathing
 *    rate) with the detected events as EDF+ annotations, for any EDF viewer.
 * `deidentify` removes subject, operator, device serial and free text and
 * moves the start date to 1985-01-01, as EDF+ recommends. */
#ifndef KNOTMAT_EXPORT_H
#define KNOTMAT_EXPORT_H

#include <stdbool.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum km_export_format { KM_EXPORT_CSV = 1, KM_EXPORT_EDF, KM_EXPORT_HDF5 };

typedef struct km_export_options {
    enum km_export_format format;
    bool deidentify;
    bool force; /**< overwrite an existing output */
    /** Optional progress while reading (see km_source_set_progress). */
    void (*progress)(void *user, double fraction, uint64_t frames);
    void *progress_user;
} km_export_options;

typedef struct km_export_report {
    uint64_t frames, events, annotations, records;
} km_export_report;

/** Export the recording `in` (.kmr, CSV or PmatData) to `out`. */
KM_API int km_export(const char *in, const char *out, const km_export_options *o,
                     km_export_report *rep, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
