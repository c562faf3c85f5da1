/* knotmat/record.h: crash-safe recordings (.kmr). A header block with the
 * session's metadata, then self-delimiting blocks, each with its own CRC32C:
 * frames (zstd, each frame as a delta to the one before), events, gaps.
 * Blocks are appended and the file synced at a bounded interval (0.25 s by
 * default), so a crash loses at most that much; a reader skips a damaged
 * block and goes on with the next whole one. Byte layout: docs/file-format.md. */
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
    char units[16], calibration[192];
    char subject[64], session[64], operator_name[64], notes[512];
    char start_utc[32];   /**< ISO 8601, filled by the recorder */
    /** How the live session ran, so a report tells the session that
     *  happened: the detector settings (km_dsp_config_format(); empty: the
     *  file's events, if any, were not made by knotmat's detectors), the cue
     *  scheme ("built-in" or its file), the knotmat that recorded it (filled
     *  by the recorder). */
    char settings[640], cue_scheme[128], software[48];
    int64_t mono_base_ns; /**< CLOCK_MONOTONIC at start, filled by the recorder */
    uint16_t rows, cols;
    float pitch_mm;
    double rate_hz;
} km_record_meta;

/** The one de-identification rule of every output (exports, reports):
 *  subject and session ids become "X", operator, notes, device serial and
 *  calibration text are emptied, the start moves to 1985-01-01T00:00:00Z
 *  (the EDF+ convention for anonymised recordings), a cue scheme keeps its
 *  file name only (its directory may name a person). */
KM_API void km_record_meta_deidentify(km_record_meta *m);

typedef struct km_recorder km_recorder;

/** Default sync interval: a crash (kill -9, power cut) loses at most this
 *  much of a recording, plus the frame on its way. */
#define KM_KMR_DEFAULT_SYNC_S 0.25
/** The one limit on a block's payload, kept by the writer (it closes a block
 *  before it would pass it) and enforced by every reader. */
#define KM_KMR_MAX_BLOCK_BYTES (64u << 20)

typedef struct km_recorder_options {
    bool force;                 /**< replace an existing regular file */
    double sync_interval_s;     /**< 0: KM_KMR_DEFAULT_SYNC_S */
    const char *const *inputs;  /**< NULL-terminated files being read: never the output */
} km_recorder_options;
KM_API void km_recorder_options_default(km_recorder_options *o);

/** Create `path` through km_outfile (mode 0600 from creation, never a
 *  device node or symlink, never one of `inputs`); the file appears under
 *  its name once its header is whole and synced. `opt` may be NULL.
 *  Possible errors: KM_EINVAL (geometry outside the bounds of frame.h; the
 *  target is not a regular file or is an input), KM_EBUSY (exists and not
 *  force), KM_EPERM, KM_EIO (header not written: nothing is left behind),
 *  KM_ENOMEM. */
KM_API int km_recorder_open(const char *path, const km_record_meta *meta,
                            const km_recorder_options *opt, km_recorder **out, char *err,
                            size_t errlen);
/** Buffer a frame. Writes and syncs a block once the oldest unsynced frame
 *  is nearly sync_interval_s old (by CLOCK_MONOTONIC, so a stalled or
 *  constant device clock cannot hold data back), when the block spans
 *  sync_interval_s of device time, or before it would outgrow
 *  KM_KMR_MAX_BLOCK_BYTES.
 *  Possible errors: KM_EINVAL (another geometry), KM_EIO (disk full, ...:
 *  the file stays valid up to the last block), KM_ENOMEM. */
KM_API int km_recorder_add_frame(km_recorder *r, const km_frame *f);
/** Record that `count` frames from `first_seq` were lost (ring or device).
 *  Possible errors: KM_EIO, KM_ENOMEM. */
KM_API int km_recorder_add_gap(km_recorder *r, uint64_t first_seq, uint64_t count, int reason);
/** Possible errors: KM_EIO (an earlier write failed), KM_ENOMEM. */
KM_API int km_recorder_add_event(km_recorder *r, const km_event *e);
/** Write what is buffered and sync now. Possible errors: KM_EIO, KM_ENOMEM. */
KM_API int km_recorder_flush(km_recorder *r);
/** Flush if the sync deadline has passed (call it when no frame came for a
 *  while). Possible errors: as km_recorder_flush(). */
KM_API int km_recorder_poll(km_recorder *r);
/** CLOCK_MONOTONIC ns by which km_recorder_poll() should be called next
 *  (INT64_MAX when nothing is buffered). */
KM_API int64_t km_recorder_deadline_ns(const km_recorder *r);
/** Flush, write the end block, close. Returns the first error seen.
 *  Possible errors: KM_EIO (the message says what the file still holds). */
KM_API int km_recorder_close(km_recorder *r, char *err, size_t errlen);
KM_API uint64_t km_recorder_frames_written(const km_recorder *r);
typedef struct km_recorder_stats {
    uint64_t frames_written, flushes, bytes;
    double flush_total_s, flush_max_s; /**< time in compress + write + fdatasync */
} km_recorder_stats;
/** What the sync interval costs (bench_record). */
KM_API void km_recorder_stats_get(const km_recorder *r, km_recorder_stats *out);

/** Why frames are missing: lost in the ring, lost on the device, or (in a
 *  file made by `recover`) in damaged bytes of the original. */
enum km_gap_reason { KM_GAP_RING = 1, KM_GAP_DEVICE = 2, KM_GAP_DAMAGED = 3 };

/** The recorder as a ring consumer on its own thread (knotmat run --record).
 *  Frames lost in the ring or upstream become gap blocks. A write error
 *  (disk full) stops writing, keeps the file valid, and is reported by
 *  km_record_stage_error(); the session goes on. Events are handed over
 *  through a lock-free queue, so any one other thread may add them. */
typedef struct km_record_stage km_record_stage;
#include "ring.h"
/** Possible errors: KM_ENOMEM, KM_EBUSY (no consumer slot left in `ring`). */
KM_API int km_record_stage_start(km_recorder *rec, km_ring *ring, km_record_stage **out);
/** The stage's event queue, for the one thread that produces its events
 *  (a DSP stage's fan-out); km_record_stage_add_event() pushes to it too.
 *  Never NULL for a started stage. */
KM_API km_event_queue *km_record_stage_queue(km_record_stage *s);
/** Queue an event for the recording (never blocks; false if the queue was full). */
KM_API bool km_record_stage_add_event(km_record_stage *s, const km_event *e);
/** KM_OK, or the error that stopped the writing: those of
 *  km_recorder_add_frame() (KM_EIO: disk full, the file valid up to it). */
KM_API int km_record_stage_error(const km_record_stage *s);
/** Frames the recorder missed by falling behind the ring (each is also a
 *  gap block in the file). */
KM_API uint64_t km_record_stage_lost(const km_record_stage *s);
/** True once the ring is closed and every frame in it is written; events
 *  are still taken until km_record_stage_stop(). */
KM_API bool km_record_stage_done(const km_record_stage *s);
/** Stop: the events queued so far are written, the thread joined; the
 *  recorder stays open for km_recorder_close(). */
KM_API void km_record_stage_stop(km_record_stage *s);

/* ---- reading ----------------------------------------------------------- */

typedef struct km_kmr_reader km_kmr_reader;
/** Open and read the header. Possible errors: KM_ENOENT, KM_EIO (cannot
 *  open or read), KM_EFORMAT (not a .kmr, or the header is damaged: `err`
 *  says why), KM_ENOMEM. */
KM_API int km_kmr_open(const char *path, km_kmr_reader **out, char *err, size_t errlen);
KM_API void km_kmr_close(km_kmr_reader *r);
KM_API const km_record_meta *km_kmr_meta(const km_kmr_reader *r);
/** Fraction of the file read so far (0..1), for progress bars. */
KM_API double km_kmr_progress(const km_kmr_reader *r);
/** Next frame. KM_EEOF at the end. KM_EFORMAT for a damaged span (err says
 *  which bytes and why) or a frame outside the bounds of frame.h: the next
 *  call goes on with the next whole block, so one bad block never loses the
 *  rest of the file. A second header (two recordings joined) ends the
 *  reading with one KM_EFORMAT. Possible errors: also KM_ETOOBIG (`out`
 *  too small). */
KM_API int km_kmr_next_frame(km_kmr_reader *r, km_frame *out, char *err, size_t errlen);

/** What a reader skipped so far. */
typedef struct km_kmr_damage {
    uint64_t spans, bytes;   /**< damaged spans and their bytes */
    int64_t first_offset;    /**< -1 if none */
} km_kmr_damage;
KM_API void km_kmr_damage_get(const km_kmr_reader *r, km_kmr_damage *out);

/** Every event recorded in `path` (the live session's, in the order the
 *  detectors decided them), into a new array the caller frees. Frame blocks
 *  are stepped over unread; damaged event blocks are skipped and counted in
 *  `dmg` (may be NULL), the rest is read. Possible errors: those of
 *  km_kmr_open(), KM_ENOMEM. Not real-time. */
KM_API int km_kmr_read_events(const char *path, km_event **out, size_t *n, km_kmr_damage *dmg,
                              char *err, size_t errlen);

typedef struct km_kmr_report {
    uint64_t blocks, frame_blocks, frames, events, gaps, gap_frames;
    uint64_t bytes, valid_bytes;  /**< file size; bytes in whole valid blocks */
    uint64_t damaged_spans, damaged_bytes;
    uint64_t frames_lost;         /**< frames known to be in damaged spans (by their seq) */
    int64_t first_bad_offset;     /**< -1 if the file is whole */
    bool ended;                   /**< the end block is there (clean close) */
    bool torn_tail;               /**< the last damaged span is a block cut short at the end
                                       (how a crash leaves a file): counted in damaged_spans */
    char problem[256];            /**< the first damage, or why it is not closed */
} km_kmr_report;

typedef struct km_kmr_scan_options {
    const char *recover_to; /**< recover: write every whole block here (NULL: check only) */
    bool force;             /**< recover over an existing regular file (never the input) */
    /** Called every few blocks with the fraction of the file scanned. */
    void (*progress)(void *user, double fraction, uint64_t frames);
    /** Called for each damaged span [from, to) with the reason. */
    void (*on_damage)(void *user, int64_t from, int64_t to, const char *why);
    void *user;
} km_kmr_scan_options;

/** Walk every block; on damage, find the next whole block by its magic and
 *  go on. With `recover_to`, copy every whole block into a new file (made
 *  with km_outfile: 0600, never the input, the old file replaced only
 *  once the new one is whole), with a gap block where damaged bytes held
 *  frames, and close it with an end block. `o` may be NULL.
 *  Returns KM_OK for a whole file (closed or not: see rep->ended) and for a
 *  successful recovery (damage is then in rep); KM_EFORMAT when damaged or
 *  not a recording (empty, no header). Possible errors: also KM_ENOENT,
 *  KM_EIO, and those of km_outfile_open(). Never crashes on any input. */
KM_API int km_kmr_scan(const char *path, const km_kmr_scan_options *o, km_kmr_report *rep,
                       char *err, size_t errlen);
/** km_kmr_scan() without recovery. Possible errors: those of km_kmr_scan()
 *  (the reason in rep->problem). */
KM_API int km_kmr_check(const char *path, km_kmr_report *rep);
/** km_kmr_scan() recovering into `out`. Possible errors: those of
 *  km_kmr_scan(). */
KM_API int km_kmr_recover(const char *in, const char *out, bool force, km_kmr_report *rep,
                          char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
