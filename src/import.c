/* import.c: readers for the ASCII exports of commercial pressure-mapping
 * software, so that clinics can analyse what they already have. Both formats
 * put one frame on several lines; each reader streams, never loads the file,
 * and names file, line and reason for anything it does not understand.
 *
 * Tekscan ASCII export (I-Scan, F-Scan, BPMS; "File > Save ASCII"). Layout as
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
 * knotmat frames have square cells: a file whose row and column spacing
 * differ by more than 2 % is refused with both numbers in the message.
 * Touches only the file the reader opened. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reader_private.h"

/* ---- small text helpers ------------------------------------------------ */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == ','))
        s[--n] = 0;
    return s;
}

static void strip_quotes(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++)
        if (*p != '"')
            *w++ = *p;
    *w = 0;
}

static int only_commas(const char *s)
{
    for (; *s; s++)
        if (*s != ',' && *s != ' ' && *s != '\t')
            return 0;
    return 1;
}

/* kPa per one unit of pressure named `u` (case and spaces ignored). */
static int pressure_unit_kpa(const char *u, double *kpa)
{
    static const struct { const char *name; double kpa; } tab[] = {
        {"kpa", 1.0},       {"mpa", 1000.0},    {"pa", 0.001},
        {"mmhg", KM_KPA_PER_MMHG}, {"psi", 6.894757}, {"n/cm2", 10.0},
        {"n/cm^2", 10.0},   {"n/cm²", 10.0},    {"kg/cm2", 98.0665},
        {"kg/cm^2", 98.0665}, {"kgf/cm2", 98.0665}, {"g/cm2", 0.0980665},
        {"g/cm^2", 0.0980665}, {"bar", 100.0},  {"mbar", 0.1},
        {"n/mm2", 1000.0},  {"inh2o", 0.249089}, {"cmh2o", 0.0980665},
    };
    char low[32];
    size_t n = 0;
    for (const char *p = u; *p && n + 1 < sizeof low; p++)
        if (*p != ' ' && *p != '"')
            low[n++] = (char)tolower((unsigned char)*p);
    low[n] = 0;
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(low, tab[i].name)) {
            *kpa = tab[i].kpa;
            return 1;
        }
    return 0;
}

/* mm per one unit of length named `u`; empty = mm. */
static int length_unit_mm(const char *u, double *mm)
{
    char low[16];
    size_t n = 0;
    for (const char *p = u; *p && n + 1 < sizeof low; p++)
        if (*p != ' ' && *p != '(' && *p != ')' && *p != ',')
            low[n++] = (char)tolower((unsigned char)*p);
    low[n] = 0;
    if (!n || !strcmp(low, "mm") || !strcmp(low, "millimeters") || !strcmp(low, "millimetres"))
        *mm = 1;
    else if (!strcmp(low, "cm") || !strcmp(low, "centimeters") || !strcmp(low, "centimetres"))
        *mm = 10;
    else if (!strcmp(low, "m") || !strcmp(low, "meters") || !strcmp(low, "metres"))
        *mm = 1000;
    else if (!strcmp(low, "in") || !strcmp(low, "inch") || !strcmp(low, "inches"))
        *mm = 25.4;
    else
        return 0;
    return 1;
}

static int set_pitch(km_frame_reader *r, double row_mm, double col_mm, char *err, size_t errlen)
{
    if (!(row_mm >= KM_PITCH_MIN_MM && row_mm <= KM_PITCH_MAX_MM) ||
        !(col_mm >= KM_PITCH_MIN_MM && col_mm <= KM_PITCH_MAX_MM)) {
        km_errf_(err, errlen, "%s: cell spacing %g x %g mm is outside %g-%g mm", r->path, row_mm,
                 col_mm, KM_PITCH_MIN_MM, KM_PITCH_MAX_MM);
        return KM_EFORMAT;
    }
    if (fabs(row_mm - col_mm) > 0.02 * fmax(row_mm, col_mm)) {
        km_errf_(err, errlen,
                 "%s: row spacing %g mm and column spacing %g mm differ; knotmat needs square "
                 "cells", r->path, row_mm, col_mm);
        return KM_EUNSUPPORTED;
    }
    r->meta.pitch_mm = (float)(0.5 * (row_mm + col_mm));
    return KM_OK;
}

static int set_pressure_units(km_frame_reader *r, const char *u, char *err, size_t errlen)
{
    snprintf(r->meta.units, sizeof r->meta.units, "%s", u);
    double k;
    if (!strcasecmp(u, "raw")) {
        /* counts without a calibration: the caller's default factor, flagged */
        r->meta.kpa_per_unit = r->opt.kpa_per_count;
        r->meta.calibrated = 0;
        return KM_OK;
    }
    if (!pressure_unit_kpa(u, &k)) {
        km_errf_(err, errlen,
                 "%s:%llu: pressure unit '%s' not understood (kPa, MPa, Pa, mmHg, PSI, N/cm2, "
                 "kg/cm2, g/cm2, bar, mbar, inH2O, cmH2O or Raw)",
                 r->path, (unsigned long long)r->lr.line, u);
        return KM_EFORMAT;
    }
    r->meta.kpa_per_unit = k;
    r->meta.calibrated = 1;
    return KM_OK;
}

/* Parse "12", "12.5", "-3" (and "12,5" when decimal_comma) at *pp. */
static int parse_value(const char **pp, int decimal_comma, double *v)
{
    if (!decimal_comma)
        return km_parse_double_(pp, v);
    char tmp[64];
    size_t n = 0;
    const char *p = *pp;
    while (n + 1 < sizeof tmp && (isdigit((unsigned char)*p) || *p == '-' || *p == '+' ||
                                  *p == ',' || *p == '.' || *p == 'e' || *p == 'E'))
        tmp[n++] = *p == ',' ? '.' : *p, p++;
    tmp[n] = 0;
    const char *q = tmp;
    int rc = km_parse_double_(&q, v);
    if (rc || *q)
        return rc ? rc : -1;
    *pp = p;
    return 0;
}

/* One line of `cols` values into row `row` of f. Tekscan: 'B' is a blank
 * (no sensel: dead). XSENSOR: fields may be quoted with a decimal comma. */
static int parse_row(km_frame_reader *r, km_frame *f, uint32_t row, char *err, size_t errlen)
{
    const char *p = r->lr.buf;
    uint32_t cols = r->meta.cols;
    int quoted = strchr(p, '"') != NULL;
    float scale = (float)r->meta.kpa_per_unit;
    for (uint32_t c = 0; c < cols; c++) {
        while (*p == ' ' || *p == '\t')
            p++;
        int q = *p == '"';
        if (q)
            p++;
        const char *start = p;
        uint32_t i = row * cols + c;
        uint8_t fl = 0;
        double v = 0;
        if ((*p == 'B' || *p == 'b') && (p[1] == ',' || p[1] == 0 || p[1] == '"' || p[1] == ' ')) {
            fl = KM_CELL_DEAD;
            p++;
        } else if (*p == ',' || *p == 0 || (q && *p == '"')) {
            v = 0; /* an empty field: no reading */
        } else {
            int e = parse_value(&p, quoted && q, &v);
            if (e) {
                const char *end = start;
                while (*end && *end != ',' && *end != '"')
                    end++;
                km_errf_(err, errlen, "%s:%llu: row %u, column %u: '%.*s' is %s", r->path,
                         (unsigned long long)r->lr.line, row, c,
                         (int)(end - start > 32 ? 32 : end - start), start,
                         e == -2 ? "not finite" : "not a number");
                return KM_EFORMAT;
            }
        }
        if (q) {
            if (*p != '"') {
                km_errf_(err, errlen, "%s:%llu: row %u, column %u: unterminated quote", r->path,
                         (unsigned long long)r->lr.line, row, c);
                return KM_EFORMAT;
            }
            p++;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (c + 1 < cols) {
            if (*p != ',') {
                km_errf_(err, errlen, "%s:%llu: row %u has %u values, the header says %u columns",
                         r->path, (unsigned long long)r->lr.line, row, c + 1, cols);
                return KM_EFORMAT;
            }
            p++;
        }
        float kpa = (float)v * scale;
        if (r->full_scale_kpa > 0 && kpa >= r->full_scale_kpa)
            fl |= KM_CELL_SATURATED;
        f->kpa[i] = kpa;
        if (!r->meta.calibrated)
            f->raw[i] = v <= 0 ? 0 : v >= 65535 ? 65535 : (uint16_t)lrint(v);
        f->cell_flags[i] = fl;
    }
    /* trailing padding commas are fine; more numbers are not */
    for (; *p; p++)
        if (*p != ',' && *p != ' ' && *p != '\t' && *p != '"') {
            km_errf_(err, errlen, "%s:%llu: row %u has more than the %u columns of the header",
                     r->path, (unsigned long long)r->lr.line, row, cols);
            return KM_EFORMAT;
        }
    return KM_OK;
}

static int finish_frame(km_frame_reader *r, km_frame *f, double t, char *err, size_t errlen)
{
    if (t < r->last_t) {
        km_errf_(err, errlen, "%s:%llu: frame time %.6f s goes back in time (previous %.6f s)",
                 r->path, (unsigned long long)r->lr.line, t, r->last_t);
        return KM_EFORMAT;
    }
    r->last_t = t;
    f->device_ns = (int64_t)llround(t * 1e9);
    if (!r->meta.calibrated)
        f->flags |= KM_FRAME_UNCALIBRATED | KM_FRAME_HAS_RAW;
    f->seq = r->frames++;
    km_frame_count_flags(f);
    return KM_OK;
}

/* ---- Tekscan ------------------------------------------------------------ */

int km_tekscan_sniff_(const char *head, size_t n)
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

int km_tekscan_open_(km_frame_reader *r, char *err, size_t errlen)
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
        strip_quotes(r->lr.buf);
        long fn;
        if (is_frame_line(r->lr.buf, &fn)) {
            r->pending = 1;
            break;
        }
        char *l = trim(r->lr.buf);
        if (!*l)
            continue;
        char *sp = l;
        while (*sp && *sp != ' ' && *sp != '\t' && *sp != ',')
            sp++;
        char *val = *sp ? sp + 1 : sp;
        *sp = 0;
        val = trim(val);
        char *end;
        if (!strcasecmp(l, "ROWS") || !strcasecmp(l, "COLS")) {
            long v = strtol(val, &end, 10);
            if (end == val || v <= 0 || v > KM_FRAME_MAX_DIM)
                goto bad;
            *(!strcasecmp(l, "ROWS") ? &rows : &cols) = v;
        } else if (!strcasecmp(l, "ROW_SPACING") || !strcasecmp(l, "COL_SPACING")) {
            double v = strtod(val, &end), mm;
            if (end == val || !length_unit_mm(end, &mm))
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
            if (end != val && pressure_unit_kpa(end, &k) && v > 0)
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
    int rc = set_pitch(r, row_mm, col_mm, err, errlen);
    if (!rc)
        rc = set_pressure_units(r, units, err, errlen);
    return rc;
}

int km_tekscan_next_(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
{
    long fn = 0;
    for (;;) {
        int got = km_reader_line_(r, err, errlen);
        if (got < 0)
            return KM_EIO;
        if (got == 0)
            return KM_EEOF;
        strip_quotes(r->lr.buf);
        if (only_commas(r->lr.buf))
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
        while ((got = km_reader_line_(r, err, errlen)) > 0 && only_commas(r->lr.buf))
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
        if ((rc = parse_row(r, f, row, err, errlen))) {
            r->resync = 1;
            return rc;
        }
    }
    return finish_frame(r, f, (double)(fn - r->start_frame) * r->sec_per_frame, err, errlen);
}

/* ---- XSENSOR ------------------------------------------------------------ */

int km_xsensor_sniff_(const char *head, size_t n)
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
    strip_quotes(l);
    char *lab = trim(l);
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
    strip_quotes(v);
    *label = lab;
    *value = trim(v);
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
        if (vend == val || !length_unit_mm(paren ? paren : "cm", &mm) || !(v > 0))
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

int km_xsensor_open_(km_frame_reader *r, char *err, size_t errlen)
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
        if (only_commas(r->lr.buf))
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
    int rc = set_pitch(r, h.h_mm, h.w_mm, err, errlen);
    if (!rc)
        rc = set_pressure_units(r, h.units, err, errlen);
    return rc;
}

int km_xsensor_next_(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
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
        if (only_commas(r->lr.buf))
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
        if ((rc = parse_row(r, f, row, err, errlen))) {
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
    return finish_frame(r, f, t, err, errlen);
}
