/* file.c: replay of recorded frames (file://PATH?speed=1|max). Every format
 * km_frame_reader reads (.kmr, knotmat CSV, PmatData, Tekscan, XSENSOR;
 * sniffed from the first bytes: include/knotmat/files.h, src/formats/). PmatData has no header, so its geometry, pitch,
 * rate and count-to-kPa factor can be given in the URI:
 *   file://S1/1.txt?rows=64&cols=32&pitch=25.4&rate=1&kpa_per_count=0.01333
 * Touches: the one file it opened. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "knotmat/files.h"
#include "source_private.h"

typedef struct {
    km_frame_reader *reader; /* every format, .kmr too (src/formats/) */
    char path[1024];
} file_src;

static int opt_num(const km_uri *u, const char *key, double lo, double hi, double *v, char *err,
                   size_t errlen)
{
    const char *s = km_uri_get(u, key);
    if (!s)
        return KM_OK;
    char *end;
    double x = strtod(s, &end);
    if (end == s || *end || !(x >= lo && x <= hi)) {
        km_errf_(err, errlen, "file: %s=%s out of range [%g, %g]", key, s, lo, hi);
        return KM_EINVAL;
    }
    *v = x;
    return KM_OK;
}

static int file_open(km_source *src, const km_uri *uri, char *err, size_t errlen)
{
    static const char *const known[] = {"speed", "rows", "cols", "pitch", "rate",
                                        "kpa_per_count", "full_scale", NULL};
    for (int i = 0; i < uri->nparams; i++) {
        int ok = 0;
        for (int k = 0; known[k]; k++)
            ok |= !strcmp(uri->params[i].key, known[k]);
        if (!ok) {
            km_errf_(err, errlen, "file: unknown parameter '%s' (known: speed rows cols pitch "
                     "rate kpa_per_count full_scale)", uri->params[i].key);
            return KM_EINVAL;
        }
    }
    km_reader_options o;
    km_reader_options_default(&o);
    double rows = o.rows, cols = o.cols, pitch = o.pitch_mm, rate = o.rate_hz,
           kpc = o.kpa_per_count, fs = o.full_scale_count;
    int rc;
    if ((rc = opt_num(uri, "rows", 1, KM_FRAME_MAX_DIM, &rows, err, errlen)) ||
        (rc = opt_num(uri, "cols", 1, KM_FRAME_MAX_DIM, &cols, err, errlen)) ||
        (rc = opt_num(uri, "pitch", KM_PITCH_MIN_MM, KM_PITCH_MAX_MM, &pitch, err, errlen)) ||
        (rc = opt_num(uri, "rate", KM_RATE_MIN_HZ, KM_RATE_MAX_HZ, &rate, err, errlen)) ||
        (rc = opt_num(uri, "kpa_per_count", 1e-9, 1e6, &kpc, err, errlen)) ||
        (rc = opt_num(uri, "full_scale", 1, 65535, &fs, err, errlen)))
        return rc;
    o.rows = (uint16_t)rows;
    o.cols = (uint16_t)cols;
    o.pitch_mm = (float)pitch;
    o.rate_hz = rate;
    o.kpa_per_count = kpc;
    o.full_scale_count = (int)fs;
    /* a FIFO or a terminal would block or be read three times (sniff, type,
     * reader): say so instead */
    struct stat st;
    if (stat(uri->path, &st) != 0) {
        km_errf_(err, errlen, "%s: %s", uri->path, strerror(errno));
        return errno == ENOENT ? KM_ENOENT : KM_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        km_errf_(err, errlen, "%s is not a regular file (a pipe, FIFO or device): knotmat reads "
                 "recordings from files; save the stream to a file first", uri->path);
        return KM_EUNSUPPORTED;
    }
    file_src *fsrc = calloc(1, sizeof *fsrc);
    if (!fsrc)
        return KM_ENOMEM;
    snprintf(fsrc->path, sizeof fsrc->path, "%s", uri->path);
    rc = km_frame_reader_open(uri->path, &o, &fsrc->reader, err, errlen);
    if (rc) {
        free(fsrc);
        return rc;
    }
    const km_file_meta *m = km_frame_reader_meta(fsrc->reader);
    src->impl = fsrc;
    src->max_cells = (uint32_t)m->rows * m->cols;
    return KM_OK;
}

static int file_read(km_source *src, km_frame *out, char *err, size_t errlen)
{
    file_src *f = src->impl;
    /* a bad line or a .kmr's damaged span comes back as KM_EFORMAT (reported
     * and counted by km_source_read); the replay goes on after it */
    return km_frame_reader_next(f->reader, out, err, errlen);
}

static void file_close(km_source *src)
{
    file_src *f = src->impl;
    if (!f)
        return;
    km_frame_reader_close(f->reader);
    free(f);
    src->impl = NULL;
}

static void file_describe(const km_source *src, km_source_info *info)
{
    const file_src *f = src->impl;
    const km_file_meta *m = km_frame_reader_meta(f->reader);
    snprintf(info->kind, sizeof info->kind, "%s",
             km_file_format_name(m->format));
    info->rows = m->rows;
    info->cols = m->cols;
    info->pitch_mm = m->pitch_mm;
    info->rate_hz = m->rate_hz;
    info->live = false;
    snprintf(info->units, sizeof info->units, "%s", m->units);
}

double km_file_source_progress_(const km_source *src)
{
    const file_src *f = src->impl;
    if (!f)
        return -1;
    return km_frame_reader_progress(f->reader);
}

const struct km_source_ops km_file_source_ops = {
    .scheme = "file",
    .open = file_open,
    .read = file_read,
    .close = file_close,
    .describe = file_describe,
};
