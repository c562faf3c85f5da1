/* tekscan.c: the Tekscan ASCII export (I-Scan, F-Scan, BPMS; "File > Save
 * ASCII") as frames, streamed; file, line and reason for anything not
 * understood.
 *
 * Layout as
 * read by the public parsers tassos/tekscan-analysis readTekscan.m,
 * jiwooba/HSS-TAP onfly_tekscan_2mat.m and the Open Knee(s) PressureAnalysis
 * specification (simtk.org/plugins/moinmoin/openknee):
 *     DATA_TYPE MOVIE                 "KEY value [unit]" lines, possibly
 *     ROWS 44                         followed by CSV padding commas
 *     COLS 44
 *     ROW_SPACING 1.27 mm
 *     COL_SPACING 1.27 mm
 *     SECONDS_PER_FRAME 0.01
 *     SATURATION_PRESSURE 7.35 MPa
 *     START_FRAME 1
 *     END_FRAME 100
 *     UNITS KPa
 *     ASCII_DATA @@
 *     (blank)
 *     Frame 1
 *     0,0,12,B,...                    ROWS lines of COLS comma-separated
 *     ...                             values; B = no sensel there
 * Frame time = (N - START_FRAME) * SECONDS_PER_FRAME.
 *
 * Touches only the file the reader opened. */
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

/* ---- Tekscan ------------------------------------------------------------ */

static int tekscan_sniff(const char *head, size_t n)
{
    /* the header's first keys; "ROWS " and "COLS " confirm it */
    int first = (n >= 9 && !strncmp(head, "DATA_TYPE", 9)) ||
                (n >= 8 && !strncmp(head, "VERSION ", 8)) ||
                (n >= 11 && !strncmp(head, "\"DATA_TYPE ", 11));
    return first && memmem(head, n, "ROWS ", 5) && memmem(head, n, "COLS ", 5);
}

static int is_frame_line(const char *l, long *num)
{
    while (*l == ' ' || *l == '"')
        l++;
    if (strncasecmp(l, "frame", 5) != 0 || (l[5] != ' ' && l[5] != '\t'))
        return 0;
    char *end;
    long v = strtol(l + 5, &end, 10);
    if (end == l + 5)
        return 0;
    *num = v;
    return 1;
}

static int tekscan_open(km_frame_reader *r, char *err, size_t errlen)
{
    long rows = -1, cols = -1;
    double row_mm = -1, col_mm = -1;
    char units[32] = "";
    r->start_frame = 1;
    r->sec_per_frame = 0;
    for (;;) {
        int got = km_line_next_(&r->lr);
        if (got <= 0) {
            km_errf_(err, errlen,
                     "%s:%llu: file ends inside the Tekscan header (no 'Frame N' line)", r->path,
                     (unsigned long long)r->lr.line);
            return KM_EFORMAT;
        }
        km_grid_strip_quotes_(r->lr.buf);
        long fn;
        if (is_frame_line(r->lr.buf, &fn)) {
            r->pending = 1;
            break;
        }
        char *l = km_grid_trim_(r->lr.buf);
        if (!*l)
            continue;
        char *sp = l;
        while (*sp && *sp != ' ' && *sp != '\t' && *sp != ',')
            sp++;
        char *val = *sp ? sp + 1 : sp;
        *sp = 0;
        val = km_grid_trim_(val);
        char *end;
        if (!strcasecmp(l, "ROWS") || !strcasecmp(l, "COLS")) {
            long v = strtol(val, &end, 10);
            if (end == val || v <= 0 || v > KM_FRAME_MAX_DIM)
                goto bad;
            *(!strcasecmp(l, "ROWS") ? &rows : &cols) = v;
        } else if (!strcasecmp(l, "ROW_SPACING") || !strcasecmp(l, "COL_SPACING")) {
            double v = strtod(val, &end), mm;
            if (end == val || !km_grid_length_unit_mm_(end, &mm))
                goto bad;
            *(!strcasecmp(l, "ROW_SPACING") ? &row_mm : &col_mm) = v * mm;
        } else if (!strcasecmp(l, "SECONDS_PER_FRAME")) {
            r->sec_per_frame = strtod(val, &end);
            if (end == val || !(r->sec_per_frame > 0 && r->sec_per_frame < 3600))
                goto bad;
        } else if (!strcasecmp(l, "START_FRAME")) {
            r->start_frame = strtol(val, &end, 10);
            if (end == val)
                goto bad;
        } else if (!strcasecmp(l, "UNITS")) {
            snprintf(units, sizeof units, "%s", val);
        } else if (!strcasecmp(l, "SATURATION_PRESSURE")) {
            double v = strtod(val, &end), k;
            while (*end == ' ')
                end++;
            if (end != val && km_grid_pressure_unit_kpa_(end, &k) && v > 0)
                r->full_scale_kpa = (float)(v * k);
        }
        continue; /* other keys (SENSOR_TYPE, CALIBRATION_..., ...) are not needed */
    bad:
        km_errf_(err, errlen, "%s:%llu: bad value '%s' for %s", r->path,
                 (unsigned long long)r->lr.line, val, l);
        return KM_EFORMAT;
    }
    const char *missing = rows < 0            ? "ROWS"
                          : cols < 0          ? "COLS"
                          : row_mm < 0        ? "ROW_SPACING"
                          : col_mm < 0        ? "COL_SPACING"
                          : !r->sec_per_frame ? "SECONDS_PER_FRAME"
                          : !units[0]         ? "UNITS"
                                              : NULL;
    if (missing) {
        km_errf_(err, errlen, "%s: Tekscan header has no %s line", r->path, missing);
        return KM_EFORMAT;
    }
    r->meta.rows = (uint16_t)rows;
    r->meta.cols = (uint16_t)cols;
    r->meta.rate_hz = 1.0 / r->sec_per_frame;
    int rc = km_grid_set_pitch_(r, row_mm, col_mm, err, errlen);
    if (!rc)
        rc = km_grid_set_pressure_units_(r, units, err, errlen);
    return rc;
}

static int tekscan_next(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
{
    long fn = 0;
    for (;;) {
        int got = km_reader_line_(r, err, errlen);
        if (got < 0)
            return KM_EIO;
        if (got == 0)
            return KM_EEOF;
        km_grid_strip_quotes_(r->lr.buf);
        if (km_grid_only_commas_(r->lr.buf))
            continue;
        if (is_frame_line(r->lr.buf, &fn)) {
            r->resync = 0;
            break;
        }
        if (r->resync)
            continue; /* the rest of a frame already reported */
        km_errf_(err, errlen, "%s:%llu: expected 'Frame N', found '%.40s'", r->path,
                 (unsigned long long)r->lr.line, r->lr.buf);
        return KM_EFORMAT;
    }
    uint64_t frame_line = r->lr.line;
    int rc = km_frame_reset(f, r->meta.rows, r->meta.cols, r->meta.pitch_mm);
    if (rc) {
        km_errf_(err, errlen, "%s: frame of %ux%u does not fit the buffer", r->path, r->meta.rows,
                 r->meta.cols);
        return rc;
    }
    for (uint32_t row = 0; row < r->meta.rows; row++) {
        int got;
        while ((got = km_reader_line_(r, err, errlen)) > 0 && km_grid_only_commas_(r->lr.buf))
            ; /* blank separator lines */
        if (got < 0)
            return KM_EIO;
        long other;
        if (got <= 0 || is_frame_line(r->lr.buf, &other)) {
            if (got > 0)
                r->pending = 1;
            km_errf_(err, errlen, "%s:%llu: Frame %ld has %u of its %u rows%s", r->path,
                     (unsigned long long)frame_line, fn, row, r->meta.rows,
                     got == 0 ? " (the file ends there)" : "");
            return KM_EFORMAT;
        }
        if ((rc = km_grid_parse_row_(r, f, row, err, errlen))) {
            r->resync = 1;
            return rc;
        }
    }
    return km_grid_finish_frame_(r, f, (double)(fn - r->start_frame) * r->sec_per_frame, err, errlen);
}

const km_format_ops_ km_format_tekscan_ = {
    .format = KM_FORMAT_TEKSCAN,
    .name = "tekscan-ascii",
    .sniff = tekscan_sniff,
    .open = tekscan_open,
    .next = tekscan_next,
};
