/* knotmat/stats.h: whole-mat numbers of one frame: total force, contact area,
 * peak pressure, centre of pressure. Used by the status line, exports and the
 * detectors. Coordinates follow the CSV layout: x = column * pitch,
 * y = row * pitch, cell centres, cell r0c0 at (0, 0). */
#ifndef KNOTMAT_STATS_H
#define KNOTMAT_STATS_H

#include "frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Cells at or above this pressure count as contact (kPa). About 4 mmHg, the
 *  lower end of what body-pressure mats report as loaded. */
#define KM_CONTACT_KPA 0.5f

typedef struct km_frame_summary {
    double total_force_n;  /**< sum of pressure x cell area, N */
    double contact_cm2;    /**< area of cells >= KM_CONTACT_KPA */
    double peak_kpa;       /**< highest cell */
    double cop_x_mm, cop_y_mm; /**< centre of pressure (NaN when unloaded) */
    uint32_t contact_cells;
    uint32_t peak_row, peak_col;
} km_frame_summary;

/** Summarise `f`, skipping dead cells and non-finite values. */
KM_API void km_frame_summarize(const km_frame *f, km_frame_summary *out);

/** Time as measured: the frames' own timestamps, never a stated rate. Feed
 *  every frame's device_ns (in order), then ask. The typical interval is
 *  the median one; a gap is an interval over 1.5 times it (a frame or more
 *  missing), and the time it lost is what exceeds one typical interval. */
typedef struct km_timing km_timing;
/** NULL when out of memory. */
KM_API km_timing *km_timing_new(void);
KM_API void km_timing_free(km_timing *t);
/** Possible errors: KM_ENOMEM (the intervals are kept: 4 bytes a frame;
 *  this frame is then not counted). */
KM_API int km_timing_add(km_timing *t, int64_t device_ns);
typedef struct km_timing_report {
    uint64_t frames;
    double first_s, last_s;     /**< device time of the first and last frame */
    double duration_s;          /**< last - first + one typical interval (0: < 2 frames) */
    double rate_hz;             /**< 1 / median interval (0: unknown) */
    double jitter_ms;           /**< p90 - p10 of the intervals that are not gaps */
    uint64_t gaps;              /**< intervals over 1.5 x the median */
    double lost_s;              /**< time missing in those gaps */
    double lost_share;          /**< lost_s / (duration_s) */
} km_timing_report;
KM_API void km_timing_get(km_timing *t, km_timing_report *out);

#ifdef __cplusplus
}
#endif
#endif
