/* knotmat/files.h: streaming readers and writers of frame files.
 *
 * knotmat CSV (docs/file-format-csv.md):
 *     # knotmat-csv 1
 *     # rows=32
 *     # cols=32
 *     # pitch_mm=12.7
 *     # rate_hz=100
 *     # units=kPa
 *     t_s,r0c0,r0c1,...,r31c31
 *     0.000000,0,0.13,...
 * Required keys: rows, cols, pitch_mm, units (kPa, mmHg, N/cm2, raw); others
 * are kept and ignored. Labels beside it: NAME.labels.csv, "t_s,type,x_mm,y_mm".
 *
 * PmatData text (PhysioNet "A Pressure Map Dataset for In-bed Posture
 * Classification", experiment I): one frame per line, tab-separated raw
 * counts with a trailing tab, 64 rows x 32 columns, about 1 Hz, CRLF or LF.
 *
 * Tekscan ASCII and XSENSOR CSV exports (imports; layouts in
 * src/formats/tekscan.c, xsensor.c and docs/file-format-csv.md): geometry,
 * pitch and units from their headers.
 *
 * .kmr recordings (knotmat/record.h) read through the same reader too.
 *
 * Readers never load the whole file; every error names the file, the line
 * and the reason. */
#ifndef KNOTMAT_FILES_H
#define KNOTMAT_FILES_H

#include <stdio.h>
#include "frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reading ---------------------------------------------------------- */

enum km_file_format {
    KM_FORMAT_UNKNOWN = 0,
    KM_FORMAT_CSV,      /**< knotmat CSV */
    KM_FORMAT_PMATDATA, /**< PhysioNet PmatData text */
    KM_FORMAT_TEKSCAN,  /**< Tekscan ASCII export (I-Scan, F-Scan, BPMS) */
    KM_FORMAT_XSENSOR,  /**< XSENSOR X3/PRO CSV export */
    KM_FORMAT_KMR,      /**< knotmat recording (knotmat/record.h) */
};

/** Guess a file's format from its first bytes (up to 4 KiB).
 *  KM_FORMAT_UNKNOWN when it cannot be read or is no format knotmat reads. */
KM_API enum km_file_format km_file_sniff(const char *path);
/** "knotmat-csv", "pmatdata", "tekscan-ascii", "xsensor-csv", "kmr", "unknown". */
KM_API const char *km_file_format_name(enum km_file_format f);

typedef struct km_frame_reader km_frame_reader;

typedef struct km_reader_options {
    /* PmatData only (it has no header): geometry, pitch, rate, calibration */
    uint16_t rows, cols;     /**< default 64 x 32 */
    float pitch_mm;          /**< default 25.4 */
    double rate_hz;          /**< default 1 */
    double kpa_per_count;    /**< default 0.1 mmHg per count = 0.01333 kPa */
    int full_scale_count;    /**< counts at or above are saturated; default 4095 */
} km_reader_options;

KM_API void km_reader_options_default(km_reader_options *o);

typedef struct km_file_meta {
    enum km_file_format format;
    uint16_t rows, cols;
    float pitch_mm;
    double rate_hz;          /**< 0 if not given */
    char units[16];
    double kpa_per_unit;     /**< conversion applied to the file's numbers */
    int calibrated;          /**< 0 when kPa come from a default assumption */
} km_file_meta;

/** Open `path` (format sniffed). `opt` may be NULL. Possible errors:
 *  KM_ENOENT, KM_EPERM, KM_EIO (cannot open), KM_EFORMAT (not a format
 *  knotmat reads, a bad header, geometry or rate out of bounds),
 *  KM_EINVAL (PmatData without a geometry), KM_ENOMEM; `err` says which. */
KM_API int km_frame_reader_open(const char *path, const km_reader_options *opt,
                                km_frame_reader **out, char *err, size_t errlen);
KM_API void km_frame_reader_close(km_frame_reader *r);
KM_API const km_file_meta *km_frame_reader_meta(const km_frame_reader *r);
/** Next frame. KM_OK; KM_EEOF at the end. Frames judged corrupt but
 *  readable come back with KM_FRAME_CORRUPT set and a note in err (err[0]
 *  != 0 on KM_OK means "read, but see this").
 *  Possible errors: KM_EFORMAT (a bad line or a damaged .kmr span: reason
 *  "FILE:LINE: ..." in err; the next call continues after it), KM_ETOOBIG
 *  (`out` too small for the file's frames), KM_EIO (a read failed). */
KM_API int km_frame_reader_next(km_frame_reader *r, km_frame *out, char *err, size_t errlen);
/** Fraction of the file read so far (0..1; -1 if unknown), for progress bars. */
KM_API double km_frame_reader_progress(const km_frame_reader *r);
/** Line number of the last line read (1-based; 0 for a .kmr). */
KM_API uint64_t km_frame_reader_line(const km_frame_reader *r);
struct km_record_meta;
/** A .kmr's header (knotmat/record.h), NULL for the other formats. */
KM_API const struct km_record_meta *km_frame_reader_record_meta(const km_frame_reader *r);

/* ---- writing CSV -------------------------------------------------------- */

typedef struct km_csv_writer km_csv_writer;

/** Create `path` (through km_outfile: 0600, never a device node or a
 *  symlink; an existing file only with KM_OUT_FORCE in `out_flags`, and only
 *  once the new one is whole) with the knotmat CSV header for this geometry,
 *  units kPa. Extra "# key=value" lines may be given as a NULL-terminated
 *  list. Possible errors: those of km_outfile_open(), KM_ENOMEM. */
KM_API int km_csv_writer_open(const char *path, unsigned out_flags, uint16_t rows,
                              uint16_t cols, float pitch_mm, double rate_hz,
                              const char *const *extra_meta, km_csv_writer **out, char *err,
                              size_t errlen);
/** Append one frame at time t_s (seconds from the start). Possible errors:
 *  KM_EINVAL (the frame's geometry is not the file's), KM_EIO (a write
 *  failed: the file will not be published; km_csv_writer_close() says so
 *  again). */
KM_API int km_csv_writer_write(km_csv_writer *w, double t_s, const km_frame *f);
/** Flush and close; the file appears under its name only now.
 *  Possible errors: KM_EIO (any write failed, disk full...: then nothing
 *  is left behind and an existing file is untouched), those of
 *  km_outfile_commit(). */
KM_API int km_csv_writer_close(km_csv_writer *w, char *err, size_t errlen);

/* ---- labels ------------------------------------------------------------- */

typedef struct km_label {
    double t_s;
    char type[16];       /**< "spasm" or "release" */
    double x_mm, y_mm;
} km_label;

/** Write labels as "t_s,type,x_mm,y_mm" (created as km_csv_writer_open()
 *  creates files). Possible errors: those of km_outfile_open() and
 *  km_outfile_commit(), KM_EIO, KM_ENOMEM. */
KM_API int km_labels_write(const char *path, unsigned out_flags, const km_label *labels,
                           size_t n, char *err, size_t errlen);
/** Read a labels file into a malloc'd array (*out, free() it).
 *  Possible errors: KM_ENOENT, KM_EIO (cannot open or read), KM_EFORMAT (a
 *  line that is not "t_s,type,x_mm,y_mm": `err` names it), KM_ENOMEM. */
KM_API int km_labels_read(const char *path, km_label **out, size_t *n, char *err, size_t errlen);
/** "dir/name.csv" -> "dir/name.labels.csv" into buf. */
KM_API void km_labels_path_for(const char *csv_path, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
