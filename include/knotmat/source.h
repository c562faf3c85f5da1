/* knotmat/source.h: where frames come from. Every source (simulated mat, file
 * replay, USB mat) is one table of functions behind a URI:
 *   sim://?scenario=release&seed=7      simulated person on a ball (drivers/sim.c)
 *   file://session.csv?speed=1|max      replay of knotmat CSV or PmatData text
 *   usb://auto, usb://VID:PID[/SERIAL]  a pressure mat on USB (knotmat/usbmat.h)
 *   /path/to/file                       the same as file://
 * A source can be pulled frame by frame (km_source_read, for offline work) or
 * started (km_source_start), which runs its producer thread into a ring, paced
 * in real time for live sources and for files at speed=1. */
#ifndef KNOTMAT_SOURCE_H
#define KNOTMAT_SOURCE_H

#include <stdbool.h>
#include "frame.h"
#include "ring.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_source km_source;

/** A parsed source URI: scheme://path?key=value&... (values percent-decoded). */
#define KM_URI_MAX_PARAMS 32
typedef struct km_uri {
    char scheme[16];
    char path[1024];
    int nparams;
    struct km_uri_param { char key[32]; char value[256]; } params[KM_URI_MAX_PARAMS];
} km_uri;

/** Parse `text` into `out`. A bare path (no "scheme://") becomes file://.
 *  Possible errors: KM_EINVAL (malformed: too long, too many parameters, a
 *  parameter without "=": the reason in `err`). */
KM_API int km_uri_parse(const char *text, km_uri *out, char *err, size_t errlen);
/** The value of `key`, or NULL. */
KM_API const char *km_uri_get(const km_uri *u, const char *key);

typedef struct km_source_info {
    char kind[32];        /**< "sim", "knotmat-csv", "pmatdata", ... */
    char uri[1100];       /**< the URI it was opened with */
    uint16_t rows, cols;
    float pitch_mm;
    double rate_hz;       /**< frame rate the source states (0: none; a Sensel Morph states
                               none: see km_source_stats.measured_rate_hz) */
    double speed;         /**< replay speed: 1 = real time, 0 = as fast as possible */
    bool live;            /**< a device or simulator (true) or a file (false) */
    char units[16];       /**< units of the origin data: kPa, mmHg, N/cm2, raw */
    double duration_s;    /**< known length, or 0 if unknown / endless */
    char device[96];      /**< USB mats: product or quirks name ("" otherwise) */
    char vid_pid[16];     /**< USB mats: "2c2f:0003" */
    char serial[64];      /**< USB mats: the device's serial number */
    char calibration[160];/**< USB mats: the calibration applied ("" none; knotmat calibrate) */
    double calibration_gain; /**< its gain (0: none) */
} km_source_info;

typedef struct km_source_stats {
    uint64_t frames;      /**< frames delivered */
    uint64_t malformed;   /**< frames dropped as malformed (each reported) */
    uint64_t corrupt;     /**< frames delivered flagged KM_FRAME_CORRUPT */
    uint64_t lost_upstream; /**< gaps in the source's sequence numbers */
    uint64_t ring_full;   /**< pushes refused by the ring (too big / closed) */
    double measured_rate_hz; /**< from the frames' device times (0: not yet known) */
    double jitter_ms;     /**< mean deviation of the intervals from their mean */
} km_source_stats;

/** What a source reports to its owner outside the frame stream. */
enum km_note_kind {
    KM_NOTE_MALFORMED = 1, /**< a frame was dropped; the text says where and why */
    KM_NOTE_DEFECT,        /**< a frame was delivered but flagged (e.g. corrupt) */
    KM_NOTE_DEVICE_LOST,
    KM_NOTE_DEVICE_BACK,
    KM_NOTE_END,           /**< the source ran out of frames */
};
typedef void (*km_note_fn)(void *user, enum km_note_kind kind, const char *text);


/** Open the source named by `uri`. On failure returns the error and writes a
 *  human-readable reason (file, line, what) into `err`. Possible errors:
 *  those of km_uri_parse(); KM_EUNSUPPORTED (an unknown scheme or
 *  parameter); KM_ENOMEM; file://: those of km_frame_reader_open();
 *  sim://, sim2://: those of km_sim_params_set() and km_sim_new();
 *  usb://: KM_ENOENT (no such mat connected), KM_EPERM (the device node is
 *  not accessible: the udev rule), KM_EBUSY (claimed by another program),
 *  KM_ENODEV (unplugged while opening), KM_EUNSUPPORTED (a device knotmat
 *  does not speak), KM_EIO (the mat did not answer). */
KM_API int km_source_open(const char *uri, km_source **out, char *err, size_t errlen);
/** Stop (if started) and close. */
KM_API void km_source_close(km_source *src);
KM_API void km_source_describe(const km_source *src, km_source_info *info);
/** Largest frame (cells) this source produces; size rings and frames with it. */
KM_API uint32_t km_source_max_cells(const km_source *src);
/** Install a callback for notes; called from the producer thread. */
KM_API void km_source_set_notify(km_source *src, km_note_fn fn, void *user);

/** Pull the next frame (offline use; not while started). KM_EFORMAT frames
 *  are reported through the note callback and skipped: the call goes on to
 *  the next good frame. Possible errors: KM_EEOF (the end),
 *  KM_EUNSUPPORTED (a source that only streams: use km_source_start()),
 *  KM_ETOOBIG (`out` smaller than km_source_max_cells()), KM_EIO. */
KM_API int km_source_read(km_source *src, km_frame *out);

/** Start producing into `ring`: paced at the source's rate times `speed`
 *  (speed 0: as fast as possible; then the ring should be in backpressure
 *  mode or consumers will lose frames). At the end the ring is closed.
 *  Possible errors: KM_EBUSY (already started), KM_ETOOBIG (the ring's
 *  slots are smaller than km_source_max_cells()), KM_ENOMEM (the thread or
 *  its frame). */
KM_API int km_source_start(km_source *src, km_ring *ring);
/** Stop the producer and wait for it; the ring is closed. Idempotent. */
KM_API void km_source_stop(km_source *src);
/** True while the producer runs (false after the end of a file). */
KM_API bool km_source_running(const km_source *src);
KM_API void km_source_stats_get(const km_source *src, km_source_stats *out);
/** How far a file source has been read (0..1), -1 for live sources or when
 *  unknown: for progress bars. */
KM_API double km_source_progress(const km_source *src);
/** Progress callback for offline reading: km_source_read() calls it every
 *  4096 frames with km_source_progress() and the frames read so far. */
typedef void (*km_progress_fn)(void *user, double fraction, uint64_t frames);
KM_API void km_source_set_progress(km_source *src, km_progress_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif
