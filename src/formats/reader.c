/* reader.c: km_frame_reader (knotmat/files.h) over the table of formats:
 * sniffed from the first 4 KiB in the table's order (the loosest last), one
 * set of bounds on geometry, rate, time and values for every format
 * (validate.c). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats.h"
#include "knotmat/record.h"

/* the order of sniffing: PmatData (digits and tabs) would take too much */
static const km_format_ops_ *const formats[] = {
    &km_format_kmr_, &km_format_csv_, &km_format_tekscan_, &km_format_xsensor_, &km_format_pmat_,
};
#define N_FORMATS (sizeof formats / sizeof formats[0])

void km_reader_options_default(km_reader_options *o)
{
    o->rows = 64;
    o->cols = 32;
    o->pitch_mm = 25.4f;
    o->rate_hz = 1.0;
    o->kpa_per_count = 0.1 * KM_KPA_PER_MMHG;
    o->full_scale_count = 4095;
}

const char *km_file_format_name(enum km_file_format f)
{
    for (size_t i = 0; i < N_FORMATS; i++)
        if (formats[i]->format == f)
            return formats[i]->name;
    return "unknown";
}

static const km_format_ops_ *sniff(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char head[4096] = {0};
    size_t n = fread(head, 1, sizeof head - 1, fp);
    fclose(fp);
    for (size_t i = 0; i < N_FORMATS; i++)
        if (formats[i]->sniff(head, n))
            return formats[i];
    return NULL;
}

enum km_file_format km_file_sniff(const char *path)
{
    const km_format_ops_ *f = sniff(path);
    return f ? f->format : KM_FORMAT_UNKNOWN;
}

int km_frame_reader_open(const char *path, const km_reader_options *opt, km_frame_reader **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int e = errno;
        km_errf_(err, errlen, "%s: %s", path, strerror(e));
        return e == ENOENT ? KM_ENOENT : e == EACCES ? KM_EPERM : KM_EIO;
    }
    km_frame_reader *r = calloc(1, sizeof *r);
    if (!r) {
        fclose(fp);
        return KM_ENOMEM;
    }
    r->lr.fp = fp;
    snprintf(r->path, sizeof r->path, "%s", path);
    struct stat sb;
    if (fstat(fileno(fp), &sb) == 0 && S_ISREG(sb.st_mode))
        r->file_size = sb.st_size;
    if (opt)
        r->opt = *opt;
    else
        km_reader_options_default(&r->opt);
    r->last_t = -INFINITY;
    r->ops = sniff(path);
    int rc;
    if (r->ops) {
        r->meta.format = r->ops->format;
        rc = r->ops->open(r, err, errlen);
    } else {
        km_errf_(err, errlen,
                 "%s: format not recognised: not a knotmat CSV ('# knotmat-csv 1' first line), "
                 "knotmat recording (.kmr), PmatData text (tab-separated counts), Tekscan "
                 "ASCII (DATA_TYPE/ROWS/COLS header) nor XSENSOR CSV (Rows:/Columns: labels)",
                 path);
        rc = KM_EFORMAT;
    }
    /* one set of bounds for every format (validate.c) */
    char why[200];
    if (!rc && (km_check_geometry_(r->meta.rows, r->meta.cols, r->meta.pitch_mm, why,
                                   sizeof why) ||
                km_check_rate_(r->meta.rate_hz, why, sizeof why))) {
        km_errf_(err, errlen, "%s: %s", path, why);
        rc = KM_EFORMAT;
    }
    if (rc) {
        km_frame_reader_close(r);
        return rc;
    }
    *out = r;
    return KM_OK;
}

void km_frame_reader_close(km_frame_reader *r)
{
    if (!r)
        return;
    if (r->ops && r->ops->close)
        r->ops->close(r);
    if (r->lr.fp)
        fclose(r->lr.fp);
    free(r->lr.buf);
    free(r->dead);
    free(r);
}

const km_file_meta *km_frame_reader_meta(const km_frame_reader *r) { return &r->meta; }
uint64_t km_frame_reader_line(const km_frame_reader *r) { return r->lr.line; }

const km_record_meta *km_frame_reader_record_meta(const km_frame_reader *r)
{
    return r->kmr ? km_kmr_meta(r->kmr) : NULL;
}

double km_frame_reader_progress(const km_frame_reader *r)
{
    if (r->kmr)
        return km_kmr_progress(r->kmr);
    if (!r->file_size)
        return -1;
    off_t at = ftello(r->lr.fp);
    return at < 0 ? -1 : (double)at / (double)r->file_size;
}

int km_frame_reader_next(km_frame_reader *r, km_frame *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    int rc = r->ops->next(r, out, err, errlen);
    if (rc)
        return rc;
    /* the same bounds every reader applies (time, values): validate.c */
    char why[200];
    if (km_frame_check_(&r->check, out, why, sizeof why)) {
        km_errf_(err, errlen, "%s:%llu: %s", r->path, (unsigned long long)r->lr.line, why);
        return KM_EFORMAT;
    }
    return KM_OK;
}
