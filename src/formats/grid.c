/* grid.c: what the readers of commercial pressure-mapping exports share
 * (tekscan.c, xsensor.c): text trimming, pressure and length units, one row
 * of values into a frame, a frame's time. Both formats put one frame on
 * several lines; knotmat frames have square cells: a file whose row and
 * column spacing differ by more than 2 % is refused with both numbers in
 * the message. */
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

/* ---- small text helpers ------------------------------------------------ */

char *km_grid_trim_(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == ','))
        s[--n] = 0;
    return s;
}

void km_grid_strip_quotes_(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++)
        if (*p != '"')
            *w++ = *p;
    *w = 0;
}

int km_grid_only_commas_(const char *s)
{
    for (; *s; s++)
        if (*s != ',' && *s != ' ' && *s != '\t')
            return 0;
    return 1;
}

/* kPa per one unit of pressure named `u` (case and spaces ignored). */
int km_grid_pressure_unit_kpa_(const char *u, double *kpa)
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
int km_grid_length_unit_mm_(const char *u, double *mm)
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

int km_grid_set_pitch_(km_frame_reader *r, double row_mm, double col_mm, char *err, size_t errlen)
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

int km_grid_set_pressure_units_(km_frame_reader *r, const char *u, char *err, size_t errlen)
{
    snprintf(r->meta.units, sizeof r->meta.units, "%s", u);
    double k;
    if (!strcasecmp(u, "raw")) {
        /* counts without a calibration: the caller's default factor, flagged */
        r->meta.kpa_per_unit = r->opt.kpa_per_count;
        r->meta.calibrated = 0;
        return KM_OK;
    }
    if (!km_grid_pressure_unit_kpa_(u, &k)) {
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
int km_grid_parse_value_(const char **pp, int decimal_comma, double *v)
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
int km_grid_parse_row_(km_frame_reader *r, km_frame *f, uint32_t row, char *err, size_t errlen)
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
            int e = km_grid_parse_value_(&p, quoted && q, &v);
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

int km_grid_finish_frame_(km_frame_reader *r, km_frame *f, double t, char *err, size_t errlen)
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
