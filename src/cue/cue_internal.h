/* cue_internal.h: the cue scheme and its rendering, shared by src/cue/. */
#ifndef KNOTMAT_CUE_INTERNAL_H
#define KNOTMAT_CUE_INTERNAL_H

#include <stddef.h>

#include "knotmat/cue.h"

#define CUE_MAX_SEGS 8

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
} cue_scheme;

void km_cue_scheme_default_(cue_scheme *s);
/* Read a scheme file over `s`; "FILE:LINE: reason" in err on failure. */
int km_cue_scheme_load_(cue_scheme *s, const char *path, char *err, size_t errlen);
/* Render a cue's tones (malloc'd, mono floats in -1..1 times gain). */
float *km_cue_render_tones_(const cue_def *c, int rate, size_t *n);
/* Speak `text` with espeak-ng into malloc'd mono floats at `rate`. */
int km_cue_speak_(const char *voice, const char *text, int rate, float **out, size_t *n,
                  char *err, size_t errlen);

#endif
