/* internal.h: helpers shared inside libknotmat, never exported. */
#ifndef KNOTMAT_INTERNAL_H
#define KNOTMAT_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>
#include "knotmat/frame.h"

/* Point kpa/raw/cell_flags at the frame's block laid out for `cells` cells,
 * leaving the bytes as they are. */
void km_frame_point_(km_frame *f, uint32_t cells);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t km_mono_ns_(void);

/* snprintf into a caller's error buffer (NULL or 0 length: ignored). */
void km_errf_(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));


/* ---- the rate as measured (stats.c) -------------------------------------- */
/* Frame intervals from the frames' own device times: their mean since the
 * start, gaps (more than 3 typical intervals, by a running mean) left out, and
 * the mean deviation of the intervals from it. No allocation: fit for the
 * frame path. */
typedef struct km_rate_meter_ {
    int64_t last_ns;
    int have;
    double ew_dt_ns, ew_dev_ns, sum_dt_ns;
    uint64_t n_dt;
} km_rate_meter_;
/* Feed one frame's device time; 1 when its interval counted (rate updated). */
int km_rate_meter_add_(km_rate_meter_ *m, int64_t device_ns);
/* Frames per second (0: fewer than two frames), jitter in ms. */
double km_rate_meter_hz_(const km_rate_meter_ *m);
double km_rate_meter_jitter_ms_(const km_rate_meter_ *m);

/* ---- bounds on input (validate.c; numbers in knotmat/frame.h) ---------- */
/* KM_OK, or KM_EFORMAT with the reason in `why`. */
int km_check_geometry_(double rows, double cols, double pitch_mm, char *why, size_t n);
int km_check_rate_(double rate_hz, char *why, size_t n); /* 0 = not stated: fine */
int km_check_time_s_(double t_s, char *why, size_t n);
/* Per-stream state of the frame check: time never goes back nor runs more
 * than KM_TIME_MAX_S past the first frame; every cell within +-KM_KPA_MAX. */
typedef struct km_frame_checker_ {
    int64_t first_ns, last_ns;
    int have;
} km_frame_checker_;
int km_frame_check_(km_frame_checker_ *c, const km_frame *f, char *why, size_t n);

/* ---- writing (formats/csv.c) ----------------------------------------------------- */
struct km_outfile;
struct km_csv_writer;
/* A stdio stream on a duplicate of an output file's descriptor (NULL on
 * error); fclose() it before km_outfile_commit(). */
FILE *km_outfile_stream_(struct km_outfile *of);
/* A CSV writer on a stream the caller created (exports): header written. */
struct km_csv_writer *km_csv_writer_open_fp_(FILE *fp, const char *name, uint16_t rows,
                                             uint16_t cols, float pitch_mm, double rate_hz,
                                             const char *const *extra_meta);

#endif
