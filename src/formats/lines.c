/* lines.c: the streaming line reader (one line in memory, any length up to
 * MAX_LINE), strict decimal numbers, and the line-level helpers every text
 * format shares. */
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

#define MAX_LINE (256u << 20)

int km_line_next_(km_line_reader_ *lr)
{
    size_t n = 0;
    int c = 0;
    lr->had_newline = 0;
    for (;;) {
        c = getc_unlocked(lr->fp);
        if (c == EOF)
            break;
        if (n + 1 >= lr->cap) {
            if (lr->cap >= MAX_LINE)
                return -1;
            size_t ncap = lr->cap ? lr->cap * 2 : 65536;
            char *nb = realloc(lr->buf, ncap);
            if (!nb)
                return -1;
            lr->buf = nb;
            lr->cap = ncap;
        }
        if (c == '\n') {
            lr->had_newline = 1;
            break;
        }
        lr->buf[n++] = (char)c;
    }
    if (ferror(lr->fp))
        return -1;
    if (c == EOF && n == 0)
        return 0;
    if (n && lr->buf[n - 1] == '\r')
        n--;
    lr->buf[n] = 0;
    lr->len = n;
    lr->line++;
    return 1;
}

/* ---- numbers ---------------------------------------------------------- */

static const double pow10_tab[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8,
                                   1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};

int km_parse_double_(const char **pp, double *out)
{
    const char *p = *pp;
    int neg = 0;
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    uint64_t mant = 0;
    int digits = 0, frac = 0;
    while (*p >= '0' && *p <= '9') {
        if (digits < 18) {
            mant = mant * 10 + (uint64_t)(*p - '0');
            digits += mant != 0;
        } else {
            frac--; /* too many digits: drop them, scale later */
        }
        p++;
    }
    int any = p != *pp + (neg || **pp == '+');
    if (*p == '.') {
        p++;
        const char *fs = p;
        while (*p >= '0' && *p <= '9') {
            if (digits < 18) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                digits += mant != 0;
                frac++;
            }
            p++;
        }
        any |= p != fs;
    }
    if (!any) {
        /* nan, inf, or garbage: let strtod tell which */
        char *end;
        double v = strtod(*pp, &end);
        if (end != *pp && !isfinite(v)) {
            *pp = end;
            return -2;
        }
        return -1;
    }
    int exp10 = -frac;
    if (*p == 'e' || *p == 'E') {
        const char *e = p + 1;
        int eneg = 0, ev = 0, edig = 0;
        if (*e == '-' || *e == '+') {
            eneg = *e == '-';
            e++;
        }
        while (*e >= '0' && *e <= '9') {
            if (ev < 10000)
                ev = ev * 10 + (*e - '0');
            e++;
            edig++;
        }
        if (!edig)
            return -1;
        exp10 += eneg ? -ev : ev;
        p = e;
    }
    double v = (double)mant;
    if (exp10 < 0 && exp10 >= -18)
        v /= pow10_tab[-exp10];
    else if (exp10 > 0 && exp10 <= 18)
        v *= pow10_tab[exp10];
    else if (exp10 != 0)
        v *= pow(10.0, exp10);
    if (!isfinite(v))
        return -2;
    *out = neg ? -v : v;
    *pp = p;
    return 0;
}

/* ---- the reader ------------------------------------------------------- */

int km_reader_line_(km_frame_reader *r, char *err, size_t errlen)
{
    if (r->pending) {
        r->pending = 0;
        return 1;
    }
    int got = km_line_next_(&r->lr);
    if (got < 0)
        km_errf_(err, errlen, "%s:%llu: read error or line too long", r->path,
                 (unsigned long long)r->lr.line + 1);
    return got;
}

int km_reader_data_line_(km_frame_reader *r, char *err, size_t errlen)
{
    for (;;) {
        int got = km_reader_line_(r, err, errlen);
        if (got <= 0)
            return got;
        if (r->lr.buf[0] != 0 && r->lr.buf[0] != '#')
            return 1; /* not blank, not a comment */
    }
}

int km_reader_frame_reset_(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
{
    int rc = km_frame_reset(f, r->meta.rows, r->meta.cols, r->meta.pitch_mm);
    if (rc)
        km_errf_(err, errlen, "%s: frame of %ux%u does not fit the %u-cell buffer", r->path,
                 r->meta.rows, r->meta.cols, f->capacity_cells_);
    return rc;
}

int km_reader_line_frame_(km_frame_reader *r, km_frame *f, km_line_parse_fn_ parse, char *err,
                          size_t errlen)
{
    int got = km_reader_data_line_(r, err, errlen);
    if (got <= 0)
        return got < 0 ? KM_EIO : KM_EEOF;
    int rc = km_reader_frame_reset_(r, f, err, errlen);
    if (!rc)
        rc = parse(r, f, err, errlen);
    if (rc)
        return rc;
    f->seq = r->frames++;
    km_frame_count_flags(f);
    return KM_OK;
}
