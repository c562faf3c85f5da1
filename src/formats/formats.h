/* formats.h: the file formats behind km_frame_reader (knotmat/files.h), one
 * file each: csv.c (knotmat CSV), pmat.c (PmatData text), tekscan.c
 * (Tekscan ASCII), xsensor.c (XSENSOR CSV), kmr.c (.kmr recordings); the
 * table of them and the reader's front in reader.c; line and number helpers
 * in lines.c; the helpers of the two grid-of-values exports in grid.c.
 * Nothing here is exported. Dependencies point one way: reader.c -> the
 * formats -> lines.c / grid.c. */
#ifndef KNOTMAT_FORMATS_H
#define KNOTMAT_FORMATS_H

#include <sys/types.h>

#include "internal.h"
#include "knotmat/files.h"

struct km_kmr_reader;

/* ---- streaming line reader (lines.c) -------------------------------------- */
typedef struct km_line_reader_ {
    FILE *fp;
    char *buf;
    size_t cap;
    size_t len;          /* length of the current line without CR/LF */
    uint64_t line;       /* 1-based number of the current line */
    int had_newline;     /* the current line ended with '\n' */
} km_line_reader_;

/* Read the next line; returns 1 on a line, 0 at EOF, -1 on I/O error or a
 * line longer than 256 MiB. CR before LF is stripped. */
int km_line_next_(km_line_reader_ *lr);

/* Parse a decimal number at *p (no leading space), advance *p past it.
 * 0 ok, -1 not a number, -2 not finite (nan, inf, overflow). */
int km_parse_double_(const char **p, double *out);

/* PmatData line parsing (pmat.c): fill f->raw/kpa from one line of counts.
 * Returns KM_OK or KM_EFORMAT with reason; sets KM_FRAME_CORRUPT with a
 * note in `note` when the frame looks byte-shifted. */
struct km_reader_options;
int km_pmat_parse_line_(const char *line, size_t len, const struct km_reader_options *opt,
                        km_frame *f, char *reason, size_t reason_len, char *note,
                        size_t note_len);

/* One file format: whether the first bytes are it, reading its header into
 * r->meta (geometry, pitch, rate, units), the next frame (KM_OK, KM_EEOF,
 * KM_EFORMAT for a bad frame the next call reads past, KM_EIO). */
typedef struct km_format_ops_ {
    enum km_file_format format;
    const char *name; /* km_file_format_name() */
    int (*sniff)(const char *head, size_t n);
    int (*open)(km_frame_reader *r, char *err, size_t errlen);
    int (*next)(km_frame_reader *r, km_frame *f, char *err, size_t errlen);
    void (*close)(km_frame_reader *r); /* may be NULL */
} km_format_ops_;

extern const km_format_ops_ km_format_csv_, km_format_pmat_, km_format_tekscan_,
    km_format_xsensor_, km_format_kmr_;

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
    /* multi-line formats (tekscan.c, xsensor.c) */
    int pending;          /* lr.buf holds a line read ahead, not yet used */
    int resync;           /* after a bad row: skip the rest of that frame */
    double sec_per_frame; /* Tekscan SECONDS_PER_FRAME */
    long start_frame;     /* Tekscan START_FRAME */
    double t0_s;          /* XSENSOR: clock time of the first frame, s */
    int have_t0;
    double frame_time_s;  /* XSENSOR: time of the frame being read (<0: none) */
    double day_offset_s;  /* XSENSOR: midnight wraps */
    km_frame_checker_ check; /* bounds on time and values, every format */
    const struct km_format_ops_ *ops; /* the format's open and next */
    struct km_kmr_reader *kmr;        /* .kmr: its own block reader */
};

/* ---- lines.c ---- */
/* The next line into lr.buf (the one read ahead first): 1 a line, 0 the end,
 * -1 a read error or an over-long line, said in err as FILE:LINE. */
int km_reader_line_(km_frame_reader *r, char *err, size_t errlen);
/* The next line that is not blank or a '#' comment: as km_reader_line_. */
int km_reader_data_line_(km_frame_reader *r, char *err, size_t errlen);
/* Reset `f` to the file's geometry; KM_ETOOBIG said when it does not fit. */
int km_reader_frame_reset_(km_frame_reader *r, km_frame *f, char *err, size_t errlen);
/* A format of one frame per line (knotmat CSV, PmatData): the next data
 * line, `f` reset, `parse` fills it from lr.buf; numbered and counted. */
typedef int (*km_line_parse_fn_)(km_frame_reader *r, km_frame *f, char *err, size_t errlen);
int km_reader_line_frame_(km_frame_reader *r, km_frame *f, km_line_parse_fn_ parse, char *err,
                          size_t errlen);

/* ---- grid.c: Tekscan and XSENSOR exports (a frame is rows of values) ---- */
char *km_grid_trim_(char *s);
void km_grid_strip_quotes_(char *s);
int km_grid_only_commas_(const char *s);
int km_grid_pressure_unit_kpa_(const char *u, double *kpa);
int km_grid_length_unit_mm_(const char *u, double *mm);
int km_grid_set_pitch_(km_frame_reader *r, double row_mm, double col_mm, char *err, size_t errlen);
int km_grid_set_pressure_units_(km_frame_reader *r, const char *u, char *err, size_t errlen);
int km_grid_parse_value_(const char **pp, int decimal_comma, double *v);
int km_grid_parse_row_(km_frame_reader *r, km_frame *f, uint32_t row, char *err, size_t errlen);
int km_grid_finish_frame_(km_frame_reader *r, km_frame *f, double t, char *err, size_t errlen);

#endif
