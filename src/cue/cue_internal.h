/* cue_internal.h: the cue scheme and its rendering, shared by src/cue/. */
#ifndef KNOTMAT_CUE_INTERNAL_H
#define KNOTMAT_CUE_INTERNAL_H

#include <stddef.h>

#include "knotmat/cue.h"

#define CUE_MAX_SEGS 8
/* Tones peak at CUE_TONE_PEAK x gain (their RMS is 0.72 of that for a plain
 * tone); words, levelled to the tones' RMS, peak under CUE_WORDS_CEILING:
 * speech stands 10-15 dB over its RMS, so the tones leave it that room. */
#define CUE_TONE_PEAK 0.6
#define CUE_WORDS_CEILING 0.95
/* Words said alone (start-up, summary): as loud as a plain tone at this gain */
#define CUE_SAY_GAIN 0.6
/* The hold's time said in words at these marks at most (s) */
#define CUE_MAX_TIMES 8
/* Words that follow a cue ("next: right glute") wait this long after it (s) */
#define CUE_AFTER_S 0.3

typedef struct {
    double f0, f1;  /* Hz; a glide when they differ; 0 = silence */
    double ms;
} cue_seg;

typedef struct {
    cue_seg seg[CUE_MAX_SEGS];
    int nseg;
    char words[128];
    double gain;    /* 0..1 relative to the scheme volume */
    int chime;      /* bell-like decay instead of a flat tone */
} cue_def;

typedef struct {
    cue_def cue[KM_EV_TYPE_COUNT];
    double volume;
    double times[CUE_MAX_TIMES]; /* the hold's time in words at these s, rising */
    int ntimes;
    char ready[128];             /* said at start-up */
} cue_scheme;

void km_cue_scheme_default_(cue_scheme *s);
/* Read a scheme file over `s`; "FILE:LINE: reason" in err on failure. */
int km_cue_scheme_load_(cue_scheme *s, const char *path, char *err, size_t errlen);
/* Render a cue's tones (malloc'd, mono floats in -1..1 times gain). */
float *km_cue_render_tones_(const cue_def *c, int rate, size_t *n);
/* Speak `text` with espeak-ng into malloc'd mono floats at `rate`. */
int km_cue_speak_(const char *voice, const char *text, int rate, float **out, size_t *n,
                  char *err, size_t errlen);

/* RMS of the active part (20 ms blocks within 30 dB of the loudest). */
double km_cue_active_rms_(const float *x, size_t n, int rate);
/* Scale words to an active RMS, soft-limited under `ceiling` (level.c). */
void km_cue_level_words_(float *w, size_t n, int rate, double target_rms, double ceiling);

#endif
