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

#ifdef __cplusplus
}
#endif
#endif
