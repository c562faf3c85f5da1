/* pmat.c: the PmatData text format: sniff, open (no header: geometry, pitch,
 * rate and count-to-kPa factor come from the reader's options), one line
 * into a frame.
 *
 * Format (PhysioNet "A Pressure Map Dataset for In-bed Posture
 * Classification", Pouyan et al. 2017, experiment I): rows x cols raw counts,
 * row-major, separated by tabs, with a trailing tab; CRLF or LF.
 *
 * Known defect of the real files: an early frame whose values are shifted by
 * a byte (multiples of 256, reaching the 12-bit ceiling), sometimes in only
 * part of the frame. Genuine frames have almost no cells >= 256 that are
 * exact multiples of 256 (about 1 in 256 of the cells >= 256); the shifted
 * frames have hundreds. Such frames are delivered flagged KM_FRAME_CORRUPT
 * so that nothing downstream analyses them, and a note says why. */
#include <stdio.h>
#include <string.h>

#include <ctype.h>
#include <math.h>

#include "formats.h"

int km_pmat_parse_line_(const char *line, size_t len, const km_reader_options *opt, km_frame *f,
                        char *reason, size_t reason_len, char *note, size_t note_len)
{
    uint32_t cells = (uint32_t)opt->rows * opt->cols;
    const char *p = line, *end = line + len;
    uint32_t n = 0, n_big = 0, n_shifted = 0;
    float scale = (float)opt->kpa_per_count;
    while (p < end) {
        while (p < end && (*p == '\t' || *p == ' '))
            p++;
        if (p >= end)
            break;
        if (*p < '0' || *p > '9') {
            const char *e = p;
            while (e < end && *e != '\t' && *e != ' ')
                e++;
            km_errf_(reason, reason_len, "value %u: '%.*s' is not a count (digits only)", n + 1,
                     (int)(e - p > 24 ? 24 : e - p), p);
            return KM_EFORMAT;
        }
        uint32_t v = 0;
        int digits = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (++digits > 9) {
                km_errf_(reason, reason_len, "value %u is too large", n + 1);
                return KM_EFORMAT;
            }
            v = v * 10 + (uint32_t)(*p++ - '0');
        }
        if (p < end && *p != '\t' && *p != ' ') {
            km_errf_(reason, reason_len, "value %u: unexpected character '%c' after digits", n + 1,
                     *p);
            return KM_EFORMAT;
        }
        if (n >= cells) {
            uint32_t more = 1;
            for (const char *q = p; q < end; q++)
                more += (*q == '\t' && q + 1 < end && q[1] >= '0' && q[1] <= '9');
            km_errf_(reason, reason_len, "too many values: %u, expected %u (%u x %u)", n + more,
                     cells, opt->rows, opt->cols);
            return KM_EFORMAT;
        }
        uint16_t c = v > 65535 ? 65535 : (uint16_t)v;
        f->raw[n] = c;
        f->kpa[n] = (float)c * scale;
        f->cell_flags[n] = (opt->full_scale_count > 0 && v >= (uint32_t)opt->full_scale_count)
                               ? KM_CELL_SATURATED
                               : 0;
        if (v >= 256) {
            n_big++;
            n_shifted += (v % 256) == 0;
        }
        n++;
    }
    if (n != cells) {
        km_errf_(reason, reason_len, "%u values, expected %u (%u x %u)", n, cells, opt->rows,
                 opt->cols);
        return KM_EFORMAT;
    }
    f->flags |= KM_FRAME_HAS_RAW | KM_FRAME_UNCALIBRATED;
    if (n_shifted >= 16 && n_shifted * 4 > n_big) {
        f->flags |= KM_FRAME_CORRUPT;
        km_errf_(note, note_len,
                 "corrupt frame: %u of %u cells >= 256 are exact multiples of 256 "
                 "(byte-shifted values); flagged, not analysed",
                 n_shifted, n_big);
    }
    return KM_OK;
}

/* Digits, tabs and spaces up to the first line end, with a tab among them. */
static int pmat_sniff(const char *head, size_t n)
{
    size_t i = 0;
    while (i < n && (isdigit((unsigned char)head[i]) || head[i] == '\t' || head[i] == ' '))
        i++;
    return i > 0 && (i == n || head[i] == '\r' || head[i] == '\n') && memchr(head, '\t', i);
}

static int pmat_open(km_frame_reader *r, char *err, size_t errlen)
{
    r->meta.rows = r->opt.rows;
    r->meta.cols = r->opt.cols;
    r->meta.pitch_mm = r->opt.pitch_mm;
    r->meta.rate_hz = r->opt.rate_hz;
    snprintf(r->meta.units, sizeof r->meta.units, "raw");
    r->meta.kpa_per_unit = r->opt.kpa_per_count;
    r->meta.calibrated = 0; /* a documented default, not a calibration */
    if (r->meta.rows && r->meta.cols)
        return KM_OK;
    km_errf_(err, errlen, "%s: PmatData geometry must be given (rows, cols)", r->path);
    return KM_EINVAL;
}

static int pmat_parse(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
{
    char reason[256] = "", note[256] = "";
    int rc = km_pmat_parse_line_(r->lr.buf, r->lr.len, &r->opt, f, reason, sizeof reason, note,
                                 sizeof note);
    if (rc) {
        km_errf_(err, errlen, "%s:%llu: %s%s", r->path, (unsigned long long)r->lr.line,
                 !r->lr.had_newline ? "truncated last line: " : "", reason);
        return rc;
    }
    if (note[0])
        km_errf_(err, errlen, "%s:%llu: %s", r->path, (unsigned long long)r->lr.line, note);
    /* no times in the file: frames 1/rate apart, the rate the caller gave */
    f->device_ns = (int64_t)llround((double)r->frames / r->meta.rate_hz * 1e9);
    return KM_OK;
}

static int pmat_next(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
{
    return km_reader_line_frame_(r, f, pmat_parse, err, errlen);
}

const km_format_ops_ km_format_pmat_ = {
    .format = KM_FORMAT_PMATDATA,
    .name = "pmatdata",
    .sniff = pmat_sniff,
    .open = pmat_open,
    .next = pmat_next,
};
