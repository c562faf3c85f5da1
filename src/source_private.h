/* source_private.h: what a driver sees of km_source. Drivers fill impl and
 * max_cells in open(); the generic code in source.c owns the rest. */
#ifndef KNOTMAT_SOURCE_PRIVATE_H
#define KNOTMAT_SOURCE_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "knotmat/source.h"

/* Function table every source implements (see drivers/): private to the
 * library, a driver is added in source.c's registry. */
struct km_source_ops {
    const char *scheme;
    /* Parse the URI, open the device or file. Fill `err` on failure. */
    int (*open)(km_source *src, const km_uri *uri, char *err, size_t errlen);
    /* Pull the next frame into `out`: KM_OK, KM_EEOF, KM_EFORMAT (frame
     *  dropped, reason in err; the next call continues after it). May be
     *  NULL for push-only sources. */
    int (*read)(km_source *src, km_frame *out, char *err, size_t errlen);
    /* Optional: run an own producer loop into the ring (USB event loops).
     *  NULL: km_source_start() runs a pacing thread around read(). */
    int (*start)(km_source *src, km_ring *ring);
    void (*stop)(km_source *src);
    void (*close)(km_source *src);
    void (*describe)(const km_source *src, km_source_info *info);
};

struct km_source {
    const struct km_source_ops *ops;
    void *impl;
    uint32_t max_cells;
    km_uri uri;
    double speed;          /* 1 = real time, 0 = as fast as possible */
    km_note_fn note;
    void *note_user;
    km_progress_fn progress;
    void *progress_user;
    /* producer thread (generic pacing loop or the driver's own) */
    pthread_t thread;
    int started;
    _Atomic int running;
    _Atomic int stop_req;
    km_ring *ring;
    km_frame *scratch;
    /* counters, written by the producer, read by anyone */
    _Atomic uint64_t frames, malformed, corrupt, lost_upstream, ring_full;
    /* time as measured from device_ns (producer only; published as bits) */
    km_rate_meter_ meter;
    int measure_in_publish; /* set before a producer thread starts */
    _Atomic uint64_t rate_bits, jitter_bits;
};

/* Report a note to the owner (no-op without a callback). */
void km_source_note_(km_source *src, enum km_note_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Publish one frame from a driver's own producer loop: counts gaps in seq,
 * corrupt frames and ring refusals, then pushes. */
int km_source_publish_(km_source *src, km_frame *f, uint64_t *last_seq, int *have_last);

/* Optional per-driver progress (fraction of a file read), -1 if unknown. */
double km_file_source_progress_(const km_source *src);

extern const struct km_source_ops km_sim_source_ops;
extern const struct km_source_ops km_sim2_source_ops;
extern const struct km_source_ops km_file_source_ops;
extern const struct km_source_ops km_usb_source_ops;

#endif
