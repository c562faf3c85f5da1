/* csv.c: streaming frame readers (knotmat CSV, dispatch to PmatData) and the
 * CSV and labels writers. Touches only the files it is asked to open.
 * Nothing here runs in the frame path of a live session. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "internal.h"
#include "knotmat/outfile.h"
#include "knotmat/files.h"
#include "reader_private.h"

#define MAX_LINE (256u << 20)

/* ---- line reader ------------------------------------------------------ */

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
    switch (f) {
    case KM_FORMAT_CSV: return "knotmat-csv";
    case KM_FORMAT_PMATDATA: return "pmatdata";
    case KM_FORMAT_TEKSCAN: return "tekscan-ascii";
    case KM_FORMAT_XSENSOR: return "xsensor-csv";
    default: return "unknown";
    }
}

enum km_file_format km_file_sniff(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return KM_FORMAT_UNKNOWN;
    char head[4096] = {0};
    size_t n = fread(head, 1, sizeof head - 1, fp);
    fclose(fp);
    if (n >= 13 && memcmp(head, "# knotmat-csv", 13) == 0)
        return KM_FORMAT_CSV;
    if (km_tekscan_sniff_(head, n))
        return KM_FORMAT_TEKSCAN;
    if (km_xsensor_sniff_(head, n))
        return KM_FORMAT_XSENSOR;
    size_t i = 0;
    while (i < n && (isdigit((unsigned char)head[i]) || head[i] == '\t' || head[i] == ' '))
        i++;
    if (i > 0 && (i == n || head[i] == '\r' || head[i] == '\n') && memchr(head, '\t', i))
        return KM_FORMAT_PMATDATA;
    return KM_FORMAT_UNKNOWN;
}

static int set_units(km_frame_reader *r, const char *u, double kpa_per_count, char *err,
                     size_t errlen)
{
    snprintf(r->meta.units, sizeof r->meta.units, "%s", u);
    r->meta.calibrated = 1;
    if (!strcmp(u, "kPa"))
        r->meta.kpa_per_unit = 1.0;
    else if (!strcmp(u, "mmHg"))
        r->meta.kpa_per_unit = KM_KPA_PER_MMHG;
    else if (!strcmp(u, "N/cm2"))
        r->meta.kpa_per_unit = KM_KPA_PER_NCM2;
    else if (!strcmp(u, "raw")) {
        r->meta.kpa_per_unit = kpa_per_count > 0 ? kpa_per_count : 1.0;
        r->meta.calibrated = kpa_per_count > 0;
    } else {
        km_errf_(err, errlen, "%s:%llu: units '%s' not understood (kPa, mmHg, N/cm2 or raw)",
                 r->path, (unsigned long long)r->lr.line, u);
        return KM_EFORMAT;
    }
    return KM_OK;
}

/* "r3c4;r10c2" -> mask bits; KM_EFORMAT on anything else. */
static int parse_dead_list(km_frame_reader *r, const char *v, char *err, size_t errlen)
{
    uint32_t cells = (uint32_t)r->meta.rows * r->meta.cols;
    r->dead = calloc(cells, 1);
    if (!r->dead)
        return KM_ENOMEM;
    const char *p = v;
    while (*p) {
        unsigned row, col;
        int used = 0;
        if (sscanf(p, "r%uc%u%n", &row, &col, &used) != 2 || row >= r->meta.rows ||
            col >= r->meta.cols) {
            km_errf_(err, errlen, "%s:%llu: dead cell list '%s' not understood (e.g. r3c4;r10c2)",
                     r->path, (unsigned long long)r->lr.line, v);
            return KM_EFORMAT;
        }
        r->dead[row * r->meta.cols + col] = 1;
        p += used;
        if (*p == ';' || *p == ',')
            p++;
    }
    return KM_OK;
}

static int csv_read_header(km_frame_reader *r, char *err, size_t errlen)
{
    int got = km_line_next_(&r->lr);
    if (got <= 0 || strncmp(r->lr.buf, "# knotmat-csv", 13) != 0) {
        km_errf_(err, errlen, "%s:1: not a knotmat CSV file (first line must be '# knotmat-csv 1')",
                 r->path);
        return KM_EFORMAT;
    }
    int version = atoi(r->lr.buf + 13);
    if (version != 1) {
        km_errf_(err, errlen, "%s:1: knotmat CSV version %d not supported (this reader knows 1)",
                 r->path, version);
        return KM_EUNSUPPORTED;
    }
    long rows = -1, cols = -1;
    double pitch = -1, kpa_per_count = 0, full_scale = 0;
    char units[32] = "", dead[4096] = "";
    for (;;) {
        got = km_line_next_(&r->lr);
        if (got <= 0) {
            km_errf_(err, errlen, "%s:%llu: file ends inside the header (no 't_s,...' line)",
                     r->path, (unsigned long long)r->lr.line);
            return KM_EFORMAT;
        }
        char *l = r->lr.buf;
        if (l[0] == 0)
            continue;
        if (l[0] != '#')
            break;
        char *kv = l + 1;
        while (*kv == ' ')
            kv++;
        char *eq = strchr(kv, '=');
        if (!eq)
            continue; /* a plain comment */
        *eq = 0;
        const char *key = kv, *val = eq + 1;
        char *end;
        if (!strcmp(key, "rows")) {
            rows = strtol(val, &end, 10);
            if (*end || rows <= 0 || rows > KM_FRAME_MAX_DIM)
                goto bad_value;
        } else if (!strcmp(key, "cols")) {
            cols = strtol(val, &end, 10);
            if (*end || cols <= 0 || cols > KM_FRAME_MAX_DIM)
                goto bad_value;
        } else if (!strcmp(key, "pitch_mm")) {
            pitch = strtod(val, &end);
            if (*end || !(pitch >= KM_PITCH_MIN_MM && pitch <= KM_PITCH_MAX_MM))
                goto bad_value;
        } else if (!strcmp(key, "rate_hz")) {
            r->meta.rate_hz = strtod(val, &end);
            if (*end || !(r->meta.rate_hz >= KM_RATE_MIN_HZ && r->meta.rate_hz <= KM_RATE_MAX_HZ))
                goto bad_value;
        } else if (!strcmp(key, "units")) {
            snprintf(units, sizeof units, "%s", val);
        } else if (!strcmp(key, "kpa_per_count")) {
            kpa_per_count = strtod(val, &end);
            if (*end || !(kpa_per_count > 0))
                goto bad_value;
        } else if (!strcmp(key, "full_scale_kpa")) {
            full_scale = strtod(val, &end);
            if (*end || !(full_scale > 0))
                goto bad_value;
        } else if (!strcmp(key, "dead")) {
            snprintf(dead, sizeof dead, "%s", val);
        }
        continue; /* unknown keys are kept by the file, ignored here */
    bad_value:
        km_errf_(err, errlen, "%s:%llu: bad value '%s' for '%s' (bounds: docs/file-format.md)",
                 r->path, (unsigned long long)r->lr.line, val, key);
        return KM_EFORMAT;
    }
    const char *missing = rows < 0 ? "rows" : cols < 0 ? "cols" : pitch < 0 ? "pitch_mm"
                        : !units[0] ? "units" : NULL;
    if (missing) {
        km_errf_(err, errlen, "%s: required header key '%s' is missing", r->path, missing);
        return KM_EFORMAT;
    }
    r->meta.rows = (uint16_t)rows;
    r->meta.cols = (uint16_t)cols;
    r->meta.pitch_mm = (float)pitch;
    int rc = set_units(r, units, kpa_per_count, err, errlen);
    if (rc)
        return rc;
    r->full_scale_kpa = (float)full_scale;
    if (dead[0] && (rc = parse_dead_list(r, dead, err, errlen)))
        return rc;
    /* the column header line is in lr.buf */
    const char *h = r->lr.buf;
    if (strncmp(h, "t_s,", 4) != 0) {
        km_errf_(err, errlen, "%s:%llu: expected the column line 't_s,r0c0,...', found '%.40s'",
                 r->path, (unsigned long long)r->lr.line, h);
        return KM_EFORMAT;
    }
    uint64_t fields = 1;
    for (const char *p = h; *p; p++)
        fields += *p == ',';
    uint64_t want = 1 + (uint64_t)rows * (uint64_t)cols;
    if (fields != want) {
        km_errf_(err, errlen,
                 "%s:%llu: column line has %llu fields, rows x cols = %ld x %ld needs %llu",
                 r->path, (unsigned long long)r->lr.line, (unsigned long long)fields, rows, cols,
                 (unsigned long long)want);
        return KM_EFORMAT;
    }
    return KM_OK;
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
    enum km_file_format fmt = km_file_sniff(path);
    r->meta.format = fmt;
    int rc;
    if (fmt == KM_FORMAT_CSV) {
        rc = csv_read_header(r, err, errlen);
    } else if (fmt == KM_FORMAT_PMATDATA) {
        r->meta.rows = r->opt.rows;
        r->meta.cols = r->opt.cols;
        r->meta.pitch_mm = r->opt.pitch_mm;
        r->meta.rate_hz = r->opt.rate_hz;
        snprintf(r->meta.units, sizeof r->meta.units, "raw");
        r->meta.kpa_per_unit = r->opt.kpa_per_count;
        r->meta.calibrated = 0; /* a documented default, not a calibration */
        rc = (r->meta.rows && r->meta.cols) ? KM_OK : KM_EINVAL;
        if (rc)
            km_errf_(err, errlen, "%s: PmatData geometry must be given (rows, cols)", path);
    } else if (fmt == KM_FORMAT_TEKSCAN) {
        rc = km_tekscan_open_(r, err, errlen);
    } else if (fmt == KM_FORMAT_XSENSOR) {
        rc = km_xsensor_open_(r, err, errlen);
    } else {
        km_errf_(err, errlen,
                 "%s: format not recognised: not a knotmat CSV ('# knotmat-csv 1' first line), "
                 "PmatData text (tab-separated counts), Tekscan ASCII (DATA_TYPE/ROWS/COLS "
                 "header) nor XSENSOR CSV (Rows:/Columns: labels)", path);
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
    if (r->lr.fp)
        fclose(r->lr.fp);
    free(r->lr.buf);
    free(r->dead);
    free(r);
}

const km_file_meta *km_frame_reader_meta(const km_frame_reader *r) { return &r->meta; }
uint64_t km_frame_reader_line(const km_frame_reader *r) { return r->lr.line; }

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

double km_frame_reader_progress(const km_frame_reader *r)
{
    if (!r->file_size)
        return -1;
    off_t at = ftello(r->lr.fp);
    return at < 0 ? -1 : (double)at / (double)r->file_size;
}

static int csv_parse_line(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
{
    const char *p = r->lr.buf;
    uint32_t cells = (uint32_t)r->meta.rows * r->meta.cols;
    double t;
    int e = km_parse_double_(&p, &t);
    if (e || (*p != ',' && *p != 0)) {
        km_errf_(err, errlen, "%s:%llu: t_s '%.20s' is %s", r->path, (unsigned long long)r->lr.line,
                 r->lr.buf, e == -2 ? "not finite" : "not a number");
        return KM_EFORMAT;
    }
    float scale = (float)r->meta.kpa_per_unit;
    int raw_units = !strcmp(r->meta.units, "raw");
    for (uint32_t i = 0; i < cells; i++) {
        if (*p != ',') {
            km_errf_(err, errlen, "%s:%llu: %s: %u of %u cells", r->path,
                     (unsigned long long)r->lr.line,
                     r->lr.had_newline ? "too few fields" : "truncated last line", i, cells);
            return KM_EFORMAT;
        }
        p++;
        const char *start = p;
        double v;
        e = km_parse_double_(&p, &v);
        if (e || (*p != ',' && *p != 0)) {
            const char *end = start;
            while (*end && *end != ',')
                end++;
            km_errf_(err, errlen, "%s:%llu: cell r%uc%u: '%.*s' is %s", r->path,
                     (unsigned long long)r->lr.line, i / r->meta.cols, i % r->meta.cols,
                     (int)(end - start > 32 ? 32 : end - start), start,
                     e == -2 ? "not finite" : "not a number");
            return KM_EFORMAT;
        }
        f->kpa[i] = (float)v * scale;
        if (raw_units) {
            f->raw[i] = v <= 0 ? 0 : v >= 65535 ? 65535 : (uint16_t)lrint(v);
        }
        uint8_t fl = 0;
        if (r->full_scale_kpa > 0 && f->kpa[i] >= r->full_scale_kpa)
            fl |= KM_CELL_SATURATED;
        if (r->dead && r->dead[i])
            fl |= KM_CELL_DEAD;
        f->cell_flags[i] = fl;
    }
    if (*p != 0) {
        uint64_t extra = 0;
        for (; *p; p++)
            extra += *p == ',';
        km_errf_(err, errlen, "%s:%llu: too many fields: %llu more than the %u cells", r->path,
                 (unsigned long long)r->lr.line, (unsigned long long)extra, cells);
        return KM_EFORMAT;
    }
    if (!r->lr.had_newline) {
        /* complete but unterminated: accept, the writer may have been cut
         * right after the last digit of a whole frame */
    }
    if (t < r->last_t) {
        km_errf_(err, errlen, "%s:%llu: t_s %.6f goes back in time (previous %.6f)", r->path,
                 (unsigned long long)r->lr.line, t, r->last_t);
        return KM_EFORMAT;
    }
    char why[160];
    if (km_check_time_s_(t, why, sizeof why)) {
        km_errf_(err, errlen, "%s:%llu: t_s: %s", r->path, (unsigned long long)r->lr.line, why);
        return KM_EFORMAT;
    }
    r->last_t = t;
    f->device_ns = (int64_t)llround(t * 1e9);
    if (raw_units)
        f->flags |= KM_FRAME_HAS_RAW;
    if (!r->meta.calibrated)
        f->flags |= KM_FRAME_UNCALIBRATED;
    return KM_OK;
}

static int reader_next_format(km_frame_reader *r, km_frame *out, char *err, size_t errlen);

int km_frame_reader_next(km_frame_reader *r, km_frame *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    int rc = reader_next_format(r, out, err, errlen);
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

static int reader_next_format(km_frame_reader *r, km_frame *out, char *err, size_t errlen)
{
    if (r->meta.format == KM_FORMAT_TEKSCAN)
        return km_tekscan_next_(r, out, err, errlen); /* import.c: frames span lines */
    if (r->meta.format == KM_FORMAT_XSENSOR)
        return km_xsensor_next_(r, out, err, errlen);
    for (;;) {
        int got = km_reader_line_(r, err, errlen);
        if (got < 0)
            return KM_EIO;
        if (got == 0)
            return KM_EEOF;
        const char *l = r->lr.buf;
        if (l[0] == 0 || l[0] == '#')
            continue; /* blank or comment */
        break;
    }
    int rc = km_frame_reset(out, r->meta.rows, r->meta.cols, r->meta.pitch_mm);
    if (rc) {
        km_errf_(err, errlen, "%s: frame of %ux%u does not fit the %u-cell buffer", r->path,
                 r->meta.rows, r->meta.cols, out->capacity_cells_);
        return rc;
    }
    if (r->meta.format == KM_FORMAT_CSV) {
        rc = csv_parse_line(r, out, err, errlen);
    } else {
        char reason[256] = "", note[256] = "";
        rc = km_pmat_parse_line_(r->lr.buf, r->lr.len, &r->opt, out, reason, sizeof reason, note,
                                 sizeof note);
        if (rc)
            km_errf_(err, errlen, "%s:%llu: %s%s", r->path, (unsigned long long)r->lr.line,
                     !r->lr.had_newline ? "truncated last line: " : "", reason);
        else if (note[0])
            km_errf_(err, errlen, "%s:%llu: %s", r->path, (unsigned long long)r->lr.line, note);
        if (!rc)
            out->device_ns = (int64_t)llround((double)r->frames / r->meta.rate_hz * 1e9);
    }
    if (rc)
        return rc;
    out->seq = r->frames++;
    km_frame_count_flags(out);
    return KM_OK;
}

/* ---- CSV writer --------------------------------------------------------- */

struct km_csv_writer {
    FILE *fp;
    km_outfile *of;      /* NULL when the caller owns the file */
    char path[1024];
    uint16_t rows, cols;
    char *line;
    size_t cap;
    int failed;
};

/* Fixed two decimals, trailing zeros trimmed: 12.50 -> 12.5, 3.00 -> 3. */
static char *put_kpa(char *p, float v)
{
    if (!isfinite(v))
        v = 0;
    long long c = llroundf(v * 100.0f);
    if (c < 0) {
        *p++ = '-';
        c = -c;
    }
    long long ip = c / 100;
    int fp = (int)(c % 100);
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip);
    while (n)
        *p++ = tmp[--n];
    if (fp) {
        *p++ = '.';
        *p++ = (char)('0' + fp / 10);
        if (fp % 10)
            *p++ = (char)('0' + fp % 10);
    }
    return p;
}

km_csv_writer *km_csv_writer_open_fp_(FILE *fp, const char *name, uint16_t rows, uint16_t cols,
                                     float pitch_mm, double rate_hz,
                                     const char *const *extra_meta)
{
    km_csv_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->fp = fp;
    w->rows = rows;
    w->cols = cols;
    snprintf(w->path, sizeof w->path, "%s", name);
    w->cap = 32 + (size_t)rows * cols * 12;
    w->line = malloc(w->cap);
    if (!w->line) {
        free(w);
        return NULL;
    }
    fprintf(fp, "# knotmat-csv 1\n# rows=%u\n# cols=%u\n# pitch_mm=%g\n", rows, cols,
            (double)pitch_mm);
    if (rate_hz > 0)
        fprintf(fp, "# rate_hz=%g\n", rate_hz);
    fprintf(fp, "# units=kPa\n");
    for (const char *const *m = extra_meta; m && *m; m++) {
        /* one line per key: a newline in a value must not start a row */
        fputs("# ", fp);
        for (const char *c = *m; *c; c++)
            fputc(*c == '\n' || *c == '\r' ? ' ' : *c, fp);
        fputc('\n', fp);
    }
    fputs("t_s", fp);
    for (unsigned r = 0; r < rows; r++)
        for (unsigned c = 0; c < cols; c++)
            fprintf(fp, ",r%uc%u", r, c);
    fputc('\n', fp);
    return w;
}

/* A FILE on a duplicate of the output file's descriptor (the km_outfile
 * keeps its own for the final sync and rename). */
FILE *km_outfile_stream_(km_outfile *of)
{
    int fd = dup(km_outfile_fd(of));
    FILE *fp = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!fp && fd >= 0)
        close(fd);
    return fp;
}

int km_csv_writer_open(const char *path, unsigned out_flags, uint16_t rows, uint16_t cols,
                       float pitch_mm, double rate_hz, const char *const *extra_meta,
                       km_csv_writer **out, char *err, size_t errlen)
{
    *out = NULL;
    km_outfile *of;
    int rc = km_outfile_open(path, out_flags, NULL, &of, err, errlen);
    if (rc)
        return rc;
    FILE *fp = km_outfile_stream_(of);
    km_csv_writer *w = fp ? km_csv_writer_open_fp_(fp, path, rows, cols, pitch_mm, rate_hz,
                                                   extra_meta)
                          : NULL;
    if (!w) {
        if (fp)
            fclose(fp);
        km_outfile_abort(of);
        return KM_ENOMEM;
    }
    w->of = of;
    *out = w;
    return KM_OK;
}

int km_csv_writer_write(km_csv_writer *w, double t_s, const km_frame *f)
{
    if (f->rows != w->rows || f->cols != w->cols)
        return KM_EINVAL;
    int n = snprintf(w->line, w->cap, "%.6f", t_s);
    char *p = w->line + n;
    uint32_t cells = km_frame_cells(f);
    for (uint32_t i = 0; i < cells; i++) {
        *p++ = ',';
        p = put_kpa(p, f->kpa[i]);
    }
    *p++ = '\n';
    if (fwrite(w->line, 1, (size_t)(p - w->line), w->fp) != (size_t)(p - w->line)) {
        w->failed = errno ? errno : EIO;
        return KM_EIO;
    }
    return KM_OK;
}

int km_csv_writer_close(km_csv_writer *w, char *err, size_t errlen)
{
    if (!w)
        return KM_OK;
    int failed = w->failed;
    if (fflush(w->fp) != 0 && !failed)
        failed = errno ? errno : EIO;
    if (fclose(w->fp) != 0 && !failed)
        failed = errno ? errno : EIO;
    int rc = failed ? KM_EIO : KM_OK;
    if (failed)
        km_errf_(err, errlen, "%s: write failed: %s", w->path, strerror(failed));
    if (w->of) {
        if (rc)
            km_outfile_abort(w->of); /* the target is left as it was */
        else
            rc = km_outfile_commit(w->of, err, errlen);
    }
    free(w->line);
    free(w);
    return rc;
}

/* ---- labels ------------------------------------------------------------- */

void km_labels_path_for(const char *csv_path, char *buf, size_t len)
{
    size_t n = strlen(csv_path);
    if (n > 4 && !strcmp(csv_path + n - 4, ".csv"))
        snprintf(buf, len, "%.*s.labels.csv", (int)(n - 4), csv_path);
    else
        snprintf(buf, len, "%s.labels.csv", csv_path);
}

int km_labels_write(const char *path, unsigned out_flags, const km_label *labels, size_t n,
                    char *err, size_t errlen)
{
    km_outfile *of;
    int rc = km_outfile_open(path, out_flags, NULL, &of, err, errlen);
    if (rc)
        return rc;
    FILE *fp = km_outfile_stream_(of);
    if (!fp) {
        km_outfile_abort(of);
        return KM_ENOMEM;
    }
    fprintf(fp, "t_s,type,x_mm,y_mm\n");
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%.3f,%s,%.1f,%.1f\n", labels[i].t_s, labels[i].type, labels[i].x_mm,
                labels[i].y_mm);
    int bad = ferror(fp);
    if (fclose(fp) != 0 || bad) {
        km_errf_(err, errlen, "%s: write failed: %s", path, strerror(errno));
        km_outfile_abort(of);
        return KM_EIO;
    }
    return km_outfile_commit(of, err, errlen);
}

int km_labels_read(const char *path, km_label **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        km_errf_(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? KM_ENOENT : KM_EIO;
    }
    km_line_reader_ lr = {.fp = fp};
    km_label *v = NULL;
    size_t cap = 0, cnt = 0;
    int rc = KM_OK;
    if (km_line_next_(&lr) <= 0 || strcmp(lr.buf, "t_s,type,x_mm,y_mm") != 0) {
        km_errf_(err, errlen, "%s:1: expected header 't_s,type,x_mm,y_mm'", path);
        rc = KM_EFORMAT;
    }
    while (!rc && km_line_next_(&lr) > 0) {
        if (!lr.buf[0])
            continue;
        km_label l;
        char type[16];
        int used = 0;
        if (sscanf(lr.buf, "%lf,%15[^,],%lf,%lf%n", &l.t_s, type, &l.x_mm, &l.y_mm, &used) != 4 ||
            lr.buf[used] || !isfinite(l.t_s) || !isfinite(l.x_mm) || !isfinite(l.y_mm) ||
            (strcmp(type, "spasm") && strcmp(type, "release"))) {
            km_errf_(err, errlen, "%s:%llu: expected 't_s,spasm|release,x_mm,y_mm', found '%.60s'",
                     path, (unsigned long long)lr.line, lr.buf);
            rc = KM_EFORMAT;
            break;
        }
        snprintf(l.type, sizeof l.type, "%s", type);
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            km_label *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = KM_ENOMEM;
                break;
            }
            v = nv;
        }
        v[cnt++] = l;
    }
    free(lr.buf);
    fclose(fp);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return KM_OK;
}
