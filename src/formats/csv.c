/* csv.c: the knotmat CSV format (docs/file-format-csv.md): its reader
 * (header keys, one frame per line) and its writer. Touches only the files it
 * is asked to open. Nothing here runs in the frame path of a live session. */
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
#include "knotmat/outfile.h"

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

/* The column line 't_s,r0c0,...' (in lr.buf) has a field per cell. */
static int check_columns(km_frame_reader *r, long rows, long cols, char *err, size_t errlen)
{
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
    return check_columns(r, rows, cols, err, errlen);
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

static int csv_sniff(const char *head, size_t n)
{
    return n >= 13 && memcmp(head, "# knotmat-csv", 13) == 0;
}

static int csv_next(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
{
    return km_reader_line_frame_(r, f, csv_parse_line, err, errlen);
}

const km_format_ops_ km_format_csv_ = {
    .format = KM_FORMAT_CSV,
    .name = "knotmat-csv",
    .sniff = csv_sniff,
    .open = csv_read_header,
    .next = csv_next,
};

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
