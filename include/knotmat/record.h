/* knotmat/record.h: crash-safe recordings (.kmr). A header block with the
 * session's metadata, then self-delimiting blocks, each with its own CRC32C:
 * frames (zstd, each frame as a delta to the one before), events, gaps.
 * Blocks are appended and the file synced at a bounded interval (1 s by
 * default), so a crash loses at most that much; a reader recovers every
 * complete block of a torn file. Byte layout: docs/file-format.md. */
#ifndef KNOTMAT_RECORD_H
#define KNOTMAT_RECORD_H

#include <stdbool.h>
#include "events.h"
#include "frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Session metadata kept in the header (strings may be empty). */
typedef struct km_record_meta {
    char device_kind[32], vid_pid[16], serial[64];
    char units[16], calibration[128];
    char subject[64], session[64], operator_name[64], notes[512];
    char start_utc[32];   /**< ISO 8601, filled by the recorder */
    int64_t mono_base_ns; /**< CLOCK_MONOTONIC at start, filled by the recorder */
    uint16_t rows, cols;
    float pitch_mm;
    double rate_hz;
} km_record_meta;

typedef struct km_recorder km_recorder;

/** Create `path` (mode 0600). KM_EBUSY if it exists and !force. */
KM_API int km_recorder_open(const char *path, const km_record_meta *meta, bool force,
                            double sync_interval_s, km_recorder **out, char *err, size_t errlen);
/** Buffer a frame; writes and syncs a block when the interval has passed.
 *  KM_EIO (disk full, ...) leaves the file valid up to the last block. */
KM_API int km_recorder_add_frame(km_recorder *r, const km_frame *f);
/** Record that `count` frames from `first_seq` were lost (ring or device). */
KM_API int km_recorder_add_gap(km_recorder *r, uint64_t first_seq, uint64_t count, int reason);
KM_API int km_recorder_add_event(km_recorder *r, const km_event *e);
/** Write what is buffered and sync now. */
KM_API int km_recorder_flush(km_recorder *r);
/** Flush, write the end block, close. Returns the first error seen. */
KM_API int km_recorder_close(km_recorder *r, char *err, size_t errlen);
KM_API uint64_t km_recorder_frames_written(const km_recorder *r);

enum km_gap_reason { KM_GAP_RING = 1, KM_GAP_DEVICE = 2 };

/** The recorder as a ring consumer on its own thread (knotmat run --record).
 *  Frames lost in the ring or upstream become gap blocks. A write error
 *  (disk full) stops writing, keeps the file valid, and is reported by
 *  km_record_stage_error(); the session goes on. Events are handed over
 *  through a lock-free queue, so any one other thread may add them. */
typedef struct km_record_stage km_record_stage;
#include "ring.h"
KM_API int km_record_stage_start(km_recorder *rec, km_ring *ring, km_record_stage **out);
/** Queue an event for the recording (never blocks; false if the queue was full). */
KM_API bool km_record_stage_add_event(km_record_stage *s, const km_event *e);
/** 0, or the error that stopped the writing. */
KM_API int km_record_stage_error(const km_record_stage *s);
KM_API bool km_record_stage_done(const km_record_stage *s);
/** Stop (after draining the ring if it is closed), join; the recorder stays
 *  open for km_recorder_close(). */
KM_API void km_record_stage_stop(km_record_stage *s);

/* ---- reading ----------------------------------------------------------- */

typedef struct km_kmr_reader km_kmr_reader;
/** Open and read the header. KM_EFORMAT with the reason if it is not a .kmr
 *  or the header is damaged. */
KM_API int km_kmr_open(const char *path, km_kmr_reader **out, char *err, size_t errlen);
KM_API void km_kmr_close(km_kmr_reader *r);
KM_API const km_record_meta *km_kmr_meta(const km_kmr_reader *r);
/** Fraction of the file read so far (0..1), for progress bars. */
KM_API double km_kmr_progress(const km_kmr_reader *r);
/** Next frame. KM_EEOF at a clean end; KM_EFORMAT at a damaged or torn
 *  block (err gives the byte offset): the frames before it are all valid. */
KM_API int km_kmr_next_frame(km_kmr_reader *r, km_frame *out, char *err, size_t errlen);

typedef struct km_kmr_report {
    uint64_t blocks, frame_blocks, frames, events, gaps, gap_frames;
    uint64_t bytes, valid_bytes;  /**< file size; bytes in complete valid blocks */
    int64_t first_bad_offset;     /**< -1 if the file is whole */
    bool ended;                   /**< the end block is there (clean close) */
    char problem[256];
} km_kmr_report;

/** Verify every block. KM_OK if whole and closed; KM_EFORMAT otherwise
 *  (report says where). Never crashes on any input. */
KM_API int km_kmr_check(const char *path, km_kmr_report *rep);
/** Copy every complete valid block of `in` to a new `out` (0600, not over an
 *  existing file unless force) and close it properly. */
KM_API int km_kmr_recover(const char *in, const char *out, bool force, km_kmr_report *rep,
                          char *err, size_t errlen);
/** The same, calling `progress` (may be NULL) with the fraction of `in`
 *  scanned and the frames kept so far, every few blocks. */
KM_API int km_kmr_recover_progress(const char *in, const char *out, bool force,
                                   void (*progress)(void *user, double fraction, uint64_t frames),
                                   void *user, km_kmr_report *rep, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
