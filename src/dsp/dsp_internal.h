/* dsp_internal.h: the detector's state, shared by the files of src/dsp/.
 * Everything is allocated in km_dsp_new(); the per-frame code only reads and
 * writes these buffers. */
#ifndef KNOTMAT_DSP_INTERNAL_H
#define KNOTMAT_DSP_INTERNAL_H

#include <fftw3.h>

#include "internal.h"
#include "knotmat/dsp.h"

#define KM_MAX_TRACKS 8
#define KM_MAX_PEAKS 16
#define SERIES_HZ 10      /* slow signals are kept at 10 samples/s */
#define SERIES_LEN 1024   /* 102.4 s of history */
#define BREATH_N 320      /* 32 s at 10 Hz for the breathing spectrum */

typedef struct {
    double x, y, force, area, peak, score;
} peak_t;

typedef struct {
    uint32_t id;
    double x, y, force, area, peak;
    double first_t, last_t;
    int alive, reported;
} track_t;

/* 10 Hz history of the slow signals, indexed by absolute bin number. */
typedef struct {
    float ball[SERIES_LEN];    /* primary hotspot force, N (0 if none) */
    float annulus[SERIES_LEN]; /* body force in a ring around the hotspot, N */
    float total[SERIES_LEN];   /* whole-mat force, N */
    float x[SERIES_LEN], y[SERIES_LEN];
    uint8_t valid[SERIES_LEN]; /* a hotspot was there */
    int64_t n;                 /* bins completed */
    int64_t cur;               /* bin being accumulated (absolute) */
    double acc_ball, acc_ann, acc_total, acc_x, acc_y;
    int acc_n, acc_valid;
    int gap_unknown;   /* the next gap was a lost device: fill it invalid, not repeated */
} series_t;

#define SP_GRID_HZ 100.0 /* the spasm detector's time grid (resampled from timestamps) */
#define SP_GRID_N 32      /* its window: 0.32 s, a 60-300 ms twitch with its baseline */
#define SP_HIST_N 128     /* hotspot positions kept, grid samples */

typedef struct {
    int n;                 /* window length in grid samples (SP_GRID_N) */
    float ball[SP_GRID_N], body[SP_GRID_N]; /* circular: the ball, the rest of the mat */
    int pos, filled;
    uint32_t track;        /* track the window belongs to */
    float win[SP_GRID_N], *buf; /* Hann window, FFT input */
    fftwf_complex *spec;
    fftwf_complex spec_b[SP_GRID_N / 2 + 1];
    fftwf_plan plan;
    double log_base;       /* running median of the ball's log band energy */
    int pending;           /* a decision waiting for SP_CONFIRM_S */
    double pend_onset, pend_until, pend_until_max, pend_level, pend_conf, pend_value, pend_x, pend_y;
#define SP_PEND_HIST 16
    double pend_hist[SP_PEND_HIST]; /* departures from the level while pending */
    int pend_n;
    int base_n;
    double refractory_until, burst_max;
    int in_burst;
    double hist_x[SP_HIST_N], hist_y[SP_HIST_N]; /* hotspot positions, grid samples */
    int mpos, mfilled;
    double last_t, lb, lt, lx, ly; /* the previous frame: time and values */
    double next_g;         /* the next grid time */
} spasm_t;

#define REL_EVAL_KEEP 40  /* bins of release evaluations kept (4 s) */
#define REL_LOOK_N 256    /* at most this many bins of look-back */

typedef struct {
    int64_t bin;           /* evaluated with the data up to this bin (-1: none) */
    int ok_strict, ok_weak;
    double drop, grow, onset, cur;
    double x, y, fast;     /* where the ball was, its force over the last 0.5 s */
} rel_eval_t;

typedef struct {
    int armed;             /* one release per hold */
    double cond_since;     /* conditions continuously true since (NaN: not) */
    rel_eval_t evals[REL_EVAL_KEEP];
    int eval_pos;
    int64_t last_still_from;
} release_t;

typedef struct {
    float *in;
    fftwf_complex *spec;
    fftwf_plan plan;
    double next_t;
    double bpm;
    int64_t last_sec;
} breath_t;

struct km_dsp {
    km_dsp_config cfg;
    int rows, cols;
    double pitch, rate, cell_n; /* rate: measured from timestamps (nominal until then);
                                   cell_n: N per kPa of one cell */
    km_rate_meter_ meter;       /* the frame rate from timestamps */
    /* frequency-domain band-pass */
    int pr, pc;
    float *in, *out, *kernel;
    fftwf_complex *spec;
    fftwf_plan fwd, inv;
    double sigma1, sigma2, r_blob, r_centroid; /* cells */
    float *clean, *scratch;
    float noise;        /* robust noise of the filtered image */
    uint32_t noise_age; /* frames since it was estimated */
    /* hotspots */
    peak_t peaks[KM_MAX_PEAKS];
    int npeaks;
    track_t tracks[KM_MAX_TRACKS];
    uint32_t next_id;
    km_hotspot hot[KM_MAX_TRACKS];
    size_t nhot;
    int primary; /* index into tracks, -1 none */
    double frame_total_n, frame_peak_kpa, annulus_n;
    /* time */
    double t, t0;
    int have_t;
    /* hold */
    int holding;
    uint32_t hold_track;
    double hold_x, hold_y, hold_start, hold_ref_force, next_progress, lost_since, weak_since;
    int limit_sent;
    double limit_last_t;     /* the last hold_limit said (it repeats while the person stays) */
    int spent;               /* a hold reached its limit here; no new one until moved away */
    double spent_x, spent_y, spent_start, spent_off_since;
    /* safety */
    double over_since, under_since, over_last_t;
    int over_active;
    series_t s;
    spasm_t sp;
    release_t rel;
    breath_t br;
    km_dsp_stats stats;
};

/* hotspot.c */
int km_dsp_hotspot_init_(km_dsp *d, char *err, size_t errlen);
void km_dsp_hotspot_free_(km_dsp *d);
void km_dsp_find_peaks_(km_dsp *d);
/* track.c */
void km_dsp_track_(km_dsp *d, km_event *out, size_t max, size_t *n);
void km_dsp_hold_(km_dsp *d, km_event *out, size_t max, size_t *n);
void km_dsp_safety_(km_dsp *d, km_event *out, size_t max, size_t *n);
/* spasm.c */
int km_dsp_spasm_init_(km_dsp *d);
void km_dsp_spasm_free_(km_dsp *d);
void km_dsp_spasm_(km_dsp *d, km_event *out, size_t max, size_t *n);
/* series.c */
void km_dsp_series_push_(km_dsp *d);
/* release.c */
void km_dsp_release_(km_dsp *d, km_event *out, size_t max, size_t *n);
/* breath.c */
int km_dsp_breath_init_(km_dsp *d);
void km_dsp_breath_free_(km_dsp *d);
void km_dsp_breath_(km_dsp *d, km_event *out, size_t max, size_t *n);

/* emit.c: append an event if there is room. */
void km_dsp_emit_(km_dsp *d, km_event *out, size_t max, size_t *n, enum km_event_type type,
                  double t, double x, double y, double force, double conf, double value);

/* Series access: value of bin `abs`, which must be >= 0 and within the last
 * SERIES_LEN bins (callers check; UBSan catches a negative index). */
#define SER(arr, abs) ((arr)[(size_t)((abs) % SERIES_LEN)])

#endif
