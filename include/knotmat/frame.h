/* knotmat/frame.h: one pressure image from a mat, the unit that flows through
 * the ring. A frame owns one contiguous block: kPa per cell, raw counts, and
 * per-cell flags, all row-major (row 0 first, column 0 first). */
#ifndef KNOTMAT_FRAME_H
#define KNOTMAT_FRAME_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Per-cell flags (km_frame.cell_flags). */
enum km_cell_flag {
    KM_CELL_SATURATED = 1u << 0, /**< raw count at the ADC's full scale */
    KM_CELL_DEAD = 1u << 1,      /**< known-bad sensor: ignore its value */
};

/** Whole-frame flags (km_frame.flags). */
enum km_frame_flag {
    KM_FRAME_CORRUPT = 1u << 0,      /**< the source judged this frame damaged: do not analyse */
    KM_FRAME_UNCALIBRATED = 1u << 1, /**< kPa values come from a default, not a calibration */
    KM_FRAME_HAS_RAW = 1u << 2,      /**< raw[] holds the device's counts */
    KM_FRAME_DEVICE_LOST = 1u << 3,  /**< marker, no data: the device went away at this time
                                          (also flagged CORRUPT so nothing analyses it) */
    KM_FRAME_DEVICE_BACK = 1u << 4,  /**< the first frame after the device came back */
};

/** A contact as the device's own firmware reported it (Sensel Morph), kept
 *  with the frame so knotmat's hotspots can be compared with it. */
typedef struct km_contact {
    uint8_t id;          /**< the firmware's contact id */
    uint8_t state;       /**< 1 start, 2 move, 3 end (Sensel) */
    float x_mm, y_mm;    /**< centre, x = along columns, y = along rows, from cell 0's centre */
    float force_n;       /**< total force of the contact, N */
    float area_mm2;      /**< contact area, mm2 */
} km_contact;

#define KM_FRAME_MAX_CONTACTS 16

/** Largest grid knotmat handles (a Sensel Morph is 185 x 105). */
#define KM_FRAME_MAX_DIM 1024

/** What every reader accepts from a file or device (docs/file-format.md,
 *  "Bounds"); values outside are refused with the reason, so that no input
 *  can ask for unbounded memory or time. Cell pitch: the finest mat known
 *  to knotmat is the Sensel Morph (1.24 mm), bed mats are 25-30 mm; the
 *  bounds leave a factor of ten beyond both. */
#define KM_PITCH_MIN_MM 0.1
#define KM_PITCH_MAX_MM 300.0
/** Frame rate, when a file states one: one frame per 1000 s up to 20 kHz
 *  (far above any mat's scan rate; the detectors need 25-200 Hz). */
#define KM_RATE_MIN_HZ 0.001
#define KM_RATE_MAX_HZ 20000.0
/** Pressure of a cell: 0 to 100 MPa (a Morph's full scale is about 3 MPa;
 *  bone breaks near 150 MPa, no mat measures that). */
#define KM_KPA_MAX 100000.0
/** Longest recording: 31 days of device time; a jump forward between two
 *  frames longer than KM_TIME_JUMP_MAX_S is damage, not a pause. */
#define KM_TIME_MAX_S (31.0 * 86400.0)
#define KM_TIME_JUMP_MAX_S (24.0 * 3600.0)

typedef struct km_frame {
    uint64_t seq;        /**< source sequence number; gaps mean frames lost upstream */
    int64_t device_ns;   /**< device time (monotonic, ns from the source's start) */
    int64_t host_ns;     /**< CLOCK_MONOTONIC when the host received it */
    uint16_t rows, cols; /**< geometry of this frame */
    float pitch_mm;      /**< centre-to-centre distance of cells, mm */
    uint32_t flags;      /**< enum km_frame_flag */
    uint32_t n_saturated;/**< cells flagged KM_CELL_SATURATED */
    uint32_t n_dead;     /**< cells flagged KM_CELL_DEAD */
    float *kpa;          /**< rows*cols pressures, kPa */
    uint16_t *raw;       /**< rows*cols raw counts (valid if KM_FRAME_HAS_RAW) */
    uint8_t *cell_flags; /**< rows*cols enum km_cell_flag */
    uint32_t n_contacts; /**< device contacts in contacts[] (0 for most sources) */
    km_contact contacts[KM_FRAME_MAX_CONTACTS];
    /* storage; owned by the frame */
    void *block_;
    uint32_t capacity_cells_;
} km_frame;

/** Allocate a frame able to hold up to `capacity_cells` cells (rows*cols).
 *  Returns NULL when out of memory or capacity is 0. Free with km_frame_free(). */
KM_API km_frame *km_frame_new(uint32_t capacity_cells);
KM_API void km_frame_free(km_frame *f);

/** Set the geometry, zero every cell and reset flags. Possible errors:
 *  KM_ETOOBIG (rows*cols exceeds the capacity), KM_EINVAL (a zero
 *  dimension). Real-time safe. */
KM_API int km_frame_reset(km_frame *f, uint16_t rows, uint16_t cols, float pitch_mm);

/** Copy header and cells of `src` into `dst` (no allocation).
 *  Possible errors: KM_ETOOBIG (`dst` is too small; it is left as it was). */
KM_API int km_frame_copy(km_frame *dst, const km_frame *src);

/** Count saturated and dead cells from cell_flags into n_saturated/n_dead. */
KM_API void km_frame_count_flags(km_frame *f);

/** Number of cells. */
static inline uint32_t km_frame_cells(const km_frame *f) { return (uint32_t)f->rows * f->cols; }

/** Bytes of the contiguous cell block for `cells` cells (8-byte multiple). */
KM_API size_t km_frame_block_bytes(uint32_t cells);

/** Unit conversions to kPa. */
#define KM_KPA_PER_MMHG 0.133322387415f
#define KM_KPA_PER_NCM2 10.0f

#ifdef __cplusplus
}
#endif
#endif
