/* reader_private.h: the state of a km_frame_reader, shared by the readers of
 * each file format (csv.c: knotmat CSV and PmatData; import.c: Tekscan and
 * XSENSOR exports). Never exported. */
#ifndef KNOTMAT_READER_PRIVATE_H
#define KNOTMAT_READER_PRIVATE_H

#include <sys/types.h>

#include "internal.h"
#include "knotmat/files.h"

struct km_frame_reader {
    km_line_reader_ lr;
    km_file_meta meta;
    km_reader_options opt;
    char path[1024];
    uint64_t frames;
    off_t file_size;      /* for progress (0: unknown) */
    double last_t;
    float full_scale_kpa; /* cells >= are saturated (0: unknown) */
    uint8_t *dead;        /* dead-cell mask (or NULL) */
    /* multi-line formats (import.c) */
    int pending;          /* lr.buf holds a line read ahead, not yet used */
    int resync;           /* after a bad row: skip the rest of that frame */
    double sec_per_frame; /* Tekscan SECONDS_PER_FRAME */
    long start_frame;     /* Tekscan START_FRAME */
    double t0_s;          /* XSENSOR: clock time of the first frame, s */
    int have_t0;
    double frame_time_s;  /* XSENSOR: time of the frame being read (<0: none) */
    double day_offset_s;  /* XSENSOR: midnight wraps */
    km_frame_checker_ check; /* bounds on time and values, every format */
};

/* The next line into lr.buf (the one read ahead first): 1 a line, 0 the end,
 * -1 a read error or an over-long line, said in err as FILE:LINE (csv.c). */
int km_reader_line_(km_frame_reader *r, char *err, size_t errlen);

/* import.c: open (header) and next frame for the Tekscan ASCII and XSENSOR
 * CSV exports. Same contract as km_frame_reader_open/_next. */
int km_tekscan_open_(km_frame_reader *r, char *err, size_t errlen);
int km_tekscan_next_(km_frame_reader *r, km_frame *f, char *err, size_t errlen);
int km_xsensor_open_(km_frame_reader *r, char *err, size_t errlen);
int km_xsensor_next_(km_frame_reader *r, km_frame *f, char *err, size_t errlen);
/* Sniff helpers: 1 when the first bytes look like that export. */
int km_tekscan_sniff_(const char *head, size_t n);
int km_xsensor_sniff_(const char *head, size_t n);

#endif
