/* xsensor.c: the XSENSOR X3 / PRO CSV export as frames, streamed.
 *
 * XSENSOR X3 / PRO CSV export ("CSV/Text Format - PRO 7 REV 1"), as read by
 * the public parser nickkluft/XSensorPressureMat load_pressuremat.m: "Label:,
 * value" lines (values may be quoted, numbers may use a decimal comma inside
 * quotes) then ROWS lines of COLUMNS values per frame; each frame is preceded
 * by its own labels ("Frame:", "Date:", "Time:" HH:MM:SS.fff, "COP Row:"...);
 * some exports put a "SENSELS" line right before the rows. Sensel size comes
 * from "Sensel Width (cm)" / "Sensel Height (cm)" (mm and in are also read),
 * the unit from "Units" or "Pressure Units". Frame time = Time - first Time
 * (midnight wraps handled); without Time labels frames are 1/rate apart
 * (rate from the caller's options).
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

/* ---- XSENSOR ------------------------------------------------------------ */

static int xsensor_sniff(const char *head, size_t n)
{
    if (memmem(head, n, "XSENSOR", 7) || memmem(head, n, "Xsensor", 7))
        return 1;
    return memmem(head, n, "Rows:", 5) && memmem(head, n, "Columns:", 8);
}

static int is_data_line(const char *l)
{
    while (*l == ' ' || *l == '\t' || *l == '"')
        l++;
    return isdigit((unsigned char)*l) || ((*l == '-' || *l == '.') && isdigit((unsigned char)l[1]));
}

/* Split "Label:,value,..." into a lower-case label without the colon and the
 * first value without quotes. */
static void split_label(char *l, char **label, char **value)
{
    char *p = l;
    int inq = 0;
    while (*p && (inq || *p != ',')) {
        if (*p == '"')
            inq = !inq;
        p++;
    }
    char *v = *p ? p + 1 : p;
    *p = 0;
    km_grid_strip_quotes_(l);
    char *lab = km_grid_trim_(l);
    size_t n = strlen(lab);
    while (n && (lab[n - 1] == ':' || lab[n - 1] == ' '))
        lab[--n] = 0;
    for (char *c = lab; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    /* the value: up to the next unquoted comma */
    char *q = v;
    inq = 0;
    while (*q && (inq || *q != ',')) {
        if (*q == '"')
            inq = !inq;
        q++;
    }
    *q = 0;
    km_grid_strip_quotes_(v);
    *label = lab;
    *value = km_grid_trim_(v);
}

/* "14:03:22.123" -> seconds of the day; <0 when not a time. */
static double parse_clock(const char *s)
{
    int h, m;
    double sec;
    char tail;
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%s", s);
    for (char *c = tmp; *c; c++)
        if (*c == ',')
            *c = '.';
    if (sscanf(tmp, "%d:%d:%lf%c", &h, &m, &sec, &tail) != 3 || h < 0 || h > 23 || m < 0 ||
        m > 59 || !(sec >= 0 && sec < 61))
        return -1;
    return h * 3600.0 + m * 60.0 + sec;
}

static double parse_num_comma(const char *s, const char **end)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s", s);
    for (char *c = tmp; *c; c++)
        if (*c == ',')
            *c = '.';
    char *e;
    double v = strtod(tmp, &e);
    *end = s + (e - tmp);
    return v;
}

typedef struct {
    long rows, cols;
    double w_mm, h_mm;
    char units[32];
} xs_header;

/* Apply one label line; KM_EFORMAT for a known label with a bad value. */
static int xs_label(km_frame_reader *r, xs_header *h, char *err, size_t errlen)
{
    char *label, *val, *end;
    const char *vend;
    split_label(r->lr.buf, &label, &val);
    if (!strcmp(label, "rows") || !strcmp(label, "columns") || !strcmp(label, "cols")) {
        long v = strtol(val, &end, 10);
        if (end == val || *end || v <= 0 || v > KM_FRAME_MAX_DIM)
            goto bad;
        *(label[0] == 'r' ? &h->rows : &h->cols) = v;
    } else if (!strncmp(label, "sensel width", 12) || !strncmp(label, "sensel height", 13)) {
        const char *paren = strchr(label, '(');
        double mm, v = parse_num_comma(val, &vend);
        if (vend == val || !km_grid_length_unit_mm_(paren ? paren : "cm", &mm) || !(v > 0))
            goto bad;
        *(label[7] == 'w' ? &h->w_mm : &h->h_mm) = v * mm;
    } else if (!strcmp(label, "units") || !strcmp(label, "pressure units")) {
        snprintf(h->units, sizeof h->units, "%s", val);
    } else if (!strcmp(label, "time")) {
        double t = parse_clock(val);
        if (t < 0)
            goto bad;
        r->frame_time_s = t;
    }
    return KM_OK; /* Sensor, Date, Frame, COP, statistics: not needed here */
bad:
    km_errf_(err, errlen, "%s:%llu: bad value '%s' for '%s'", r->path,
             (unsigned long long)r->lr.line, val, label);
    return KM_EFORMAT;
}

/* The frame rate from the first "Time:" labels (a separate pass over at most
 * the first 100000 lines); 0 when the file has none. */
static double xs_rate_from_times(const char *path)
{
    km_line_reader_ lr = {.fp = fopen(path, "rb")};
    if (!lr.fp)
        return 0;
    double times[8];
    int n = 0;
    while (n < 8 && lr.line < 100000 && km_line_next_(&lr) > 0) {
        if (is_data_line(lr.buf))
            continue;
        char *label, *val;
        split_label(lr.buf, &label, &val);
        if (!strcmp(label, "time") && parse_clock(val) >= 0)
            times[n++] = parse_clock(val);
    }
    fclose(lr.fp);
    free(lr.buf);
    double dmin = INFINITY;
    for (int i = 1; i < n; i++) {
        double d = times[i] - times[i - 1];
        if (d > 0 && d < dmin)
            dmin = d;
    }
    return isfinite(dmin) ? 1.0 / dmin : 0;
}

static int xsensor_open(km_frame_reader *r, char *err, size_t errlen)
{
    xs_header h = {.rows = -1, .cols = -1, .w_mm = -1, .h_mm = -1};
    r->frame_time_s = -1;
    for (;;) {
        int got = km_line_next_(&r->lr);
        if (got <= 0) {
            km_errf_(err, errlen, "%s:%llu: no frame data after the XSENSOR header", r->path,
                     (unsigned long long)r->lr.line);
            return KM_EFORMAT;
        }
        if (is_data_line(r->lr.buf)) {
            r->pending = 1;
            break;
        }
        if (km_grid_only_commas_(r->lr.buf))
            continue;
        int rc = xs_label(r, &h, err, errlen);
        if (rc)
            return rc;
    }
    if (h.w_mm < 0 && h.h_mm > 0)
        h.w_mm = h.h_mm;
    if (h.h_mm < 0 && h.w_mm > 0)
        h.h_mm = h.w_mm;
    const char *missing = h.rows < 0    ? "Rows"
                          : h.cols < 0  ? "Columns"
                          : h.w_mm < 0  ? "Sensel Width"
                          : !h.units[0] ? "Units"
                                        : NULL;
    if (missing) {
        km_errf_(err, errlen, "%s: XSENSOR header has no '%s:' line before the first frame",
                 r->path, missing);
        return KM_EFORMAT;
    }
    r->meta.rows = (uint16_t)h.rows;
    r->meta.cols = (uint16_t)h.cols;
    r->meta.rate_hz = xs_rate_from_times(r->path);
    int rc = km_grid_set_pitch_(r, h.h_mm, h.w_mm, err, errlen);
    if (!rc)
        rc = km_grid_set_pressure_units_(r, h.units, err, errlen);
    return rc;
}

static int xsensor_next(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
{
    xs_header h = {.rows = r->meta.rows, .cols = r->meta.cols};
    int rc = km_frame_reset(f, r->meta.rows, r->meta.cols, r->meta.pitch_mm);
    if (rc) {
        km_errf_(err, errlen, "%s: frame of %ux%u does not fit the buffer", r->path, r->meta.rows,
                 r->meta.cols);
        return rc;
    }
    uint32_t row = 0;
    uint64_t first_row_line = 0;
    while (row < r->meta.rows) {
        int got = km_reader_line_(r, err, errlen);
        if (got < 0)
            return KM_EIO;
        if (got == 0) {
            if (!row)
                return KM_EEOF;
            km_errf_(err, errlen, "%s:%llu: the last frame has %u of its %u rows (the file ends "
                     "there)", r->path, (unsigned long long)first_row_line, row, r->meta.rows);
            return KM_EFORMAT;
        }
        if (km_grid_only_commas_(r->lr.buf))
            continue;
        if (r->resync && is_data_line(r->lr.buf))
            continue; /* the rest of a frame already reported */
        r->resync = 0;
        if (!is_data_line(r->lr.buf)) {
            if (row) {
                r->pending = 1;
                km_errf_(err, errlen, "%s:%llu: frame has %u of its %u rows", r->path,
                         (unsigned long long)first_row_line, row, r->meta.rows);
                return KM_EFORMAT;
            }
            if ((rc = xs_label(r, &h, err, errlen)))
                return rc;
            if (h.rows != r->meta.rows || h.cols != r->meta.cols) {
                km_errf_(err, errlen, "%s:%llu: the sensor size changes to %ldx%ld mid-file "
                         "(was %ux%u); export each sensor to its own file", r->path,
                         (unsigned long long)r->lr.line, h.rows, h.cols, r->meta.rows,
                         r->meta.cols);
                return KM_EUNSUPPORTED;
            }
            continue;
        }
        if (!row)
            first_row_line = r->lr.line;
        if ((rc = km_grid_parse_row_(r, f, row, err, errlen))) {
            r->resync = 1;
            return rc;
        }
        row++;
    }
    double t;
    if (r->frame_time_s >= 0) {
        if (!r->have_t0) {
            r->t0_s = r->frame_time_s;
            r->have_t0 = 1;
        }
        t = r->frame_time_s + r->day_offset_s - r->t0_s;
        if (t < r->last_t - 43200) { /* past midnight */
            r->day_offset_s += 86400;
            t += 86400;
        }
        r->frame_time_s = -1;
    } else {
        double rate = r->opt.rate_hz > 0 ? r->opt.rate_hz : 1;
        t = (double)r->frames / rate;
    }
    return km_grid_finish_frame_(r, f, t, err, errlen);
}

const km_format_ops_ km_format_xsensor_ = {
    .format = KM_FORMAT_XSENSOR,
    .name = "xsensor-csv",
    .sniff = xsensor_sniff,
    .open = xsensor_open,
    .next = xsensor_next,
};
