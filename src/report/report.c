/* report.c: session reports drawn with cairo. One pass over the input
 * (knotmat/pass.h: the live session's recorded events, or the detectors')
 * collects: the mean and peak pressure per cell; per frame
 * the total load and the ball (strongest hotspot) force; the events; the
 * holds (on_target .. off_target, with the time to spasm, release and the
 * hold-limit cue, and the highest frame peak while held). Then:
 *   page 1   title, metadata, mean and peak maps with a kPa / mmHg colour
 *            bar and the holds marked, the whole-session timeline (total
 *            load, ball force, breathing) with every event marked
 *   page 2+  the holds table and the event list
 *   then     timeline detail pages of page_span_s each, when the session is
 *            longer than one span
 * A PNG is page 1 at twice the PDF's resolution. Not real-time; allocates
 * freely. Touches: the input, the output file, the optional map file. */
#include <cairo-pdf.h>
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "internal.h"
#include "knotmat/outfile.h"
#include "knotmat/pass.h"
#include "knotmat/record.h"
#include "knotmat/report.h"
#include "knotmat/source.h"
#include "knotmat/stats.h"
#include "marks.h"

#define PAGE_W 842.0 /* A4 landscape, points */
#define PAGE_H 595.0
#define PNG_SCALE 2.0

typedef struct {
    double t0;                 /* start, s */
    double x, y;               /* mm */
    double dur;                /* s */
    double to_spasm, to_release; /* s from the start, NaN if none */
    double to_limit;           /* the hold-limit cue, s from the start, NaN if none */
    double peak_kpa;
    const char *ended;         /* "off target", "end of recording", "new hold", "mat lost" */
} hold;

typedef struct {
    /* input description */
    char title_file[256];
    km_source_info info;
    km_record_meta meta;
    int have_meta;
    uint64_t skipped;      /* damaged spans / malformed frames of the input */
    /* maps */
    uint16_t rows, cols;
    float pitch;
    double *sum, *peak;
    uint64_t frames;
    /* series */
    double *t, *load, *ball;
    size_t n, cap;
    double t_first, t_last;
    /* events */
    km_event *ev;
    size_t nev, evcap;
    /* breathing points */
    double *bt, *bv;
    size_t nb, bcap;
    /* holds */
    hold *holds;
    size_t nh, hcap;
    int holding;
    /* the person's marks against the detector's events */
    mark_match *marks;
    size_t nmarks;
    mark_agreement agree;
    char events_from[96];   /* recorded live or detected here */
    char settings[640];     /* the detector settings they come from */
    double measured_rate_hz;
} report;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 1024;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = nc;
    return 0;
}

/* ---- colours ----------------------------------------------------------- */

/* viridis, sampled at 0, .25, .5, .75, 1 (matplotlib's published values) */
static void heat_rgb(double v, double *r, double *g, double *b)
{
    static const double stops[5][3] = {{0.267, 0.005, 0.329}, {0.230, 0.322, 0.546},
                                       {0.128, 0.567, 0.551}, {0.369, 0.789, 0.383},
                                       {0.993, 0.906, 0.144}};
    if (!(v > 0)) {
        v = 0;
    }
    if (v > 1)
        v = 1;
    double x = v * 4;
    int i = (int)x;
    if (i >= 4)
        i = 3;
    double f = x - i;
    *r = stops[i][0] + f * (stops[i + 1][0] - stops[i][0]);
    *g = stops[i][1] + f * (stops[i + 1][1] - stops[i][1]);
    *b = stops[i][2] + f * (stops[i + 1][2] - stops[i][2]);
}

static int event_shown(enum km_event_type t)
{
    return t != KM_EV_HOTSPOT && t != KM_EV_BREATHING && t != KM_EV_HOLD;
}

static void event_rgb(enum km_event_type t, double *r, double *g, double *b)
{
    switch (t) {
    case KM_EV_ON_TARGET: *r = 0.17, *g = 0.63, *b = 0.17; break;   /* green */
    case KM_EV_SPASM: *r = 0.84, *g = 0.15, *b = 0.16; break;       /* red */
    case KM_EV_RELEASE: *r = 0.12, *g = 0.47, *b = 0.71; break;     /* blue */
    case KM_EV_OFF_TARGET: *r = 0.50, *g = 0.50, *b = 0.50; break;  /* grey */
    case KM_EV_OVERPRESSURE: *r = 1.00, *g = 0.50, *b = 0.05; break; /* orange */
    case KM_EV_HOLD_LIMIT: *r = 0.58, *g = 0.40, *b = 0.74; break;  /* purple */
    case KM_EV_MARK: *r = 0.80, *g = 0.10, *b = 0.55; break;        /* magenta: the person */
    default: *r = 0.10, *g = 0.10, *b = 0.10; break;                /* device lost/back */
    }
}

/* "spasm", or "you: twitch" for the person's own mark */
static const char *event_label(const km_event *e, char *buf, size_t n)
{
    if (e->type != KM_EV_MARK)
        return km_event_type_name(e->type);
    snprintf(buf, n, "you: %s", km_mark_name(km_event_mark(e)));
    return buf;
}

/* ---- collecting -------------------------------------------------------- */

static void hold_end(report *R, double t, const char *why)
{
    if (!R->holding || !R->nh)
        return;
    hold *h = &R->holds[R->nh - 1];
    h->dur = t - h->t0;
    h->ended = why;
    R->holding = 0;
}

static int add_event(report *R, const km_event *e)
{
    if (e->type == KM_EV_BREATHING) {
        if (grow((void **)&R->bt, &R->bcap, R->nb + 1, sizeof *R->bt) ||
            (R->bv = realloc(R->bv, R->bcap * sizeof *R->bv)) == NULL)
            return KM_ENOMEM;
        R->bt[R->nb] = e->t_s - R->t_first;
        R->bv[R->nb++] = e->value;
        return KM_OK;
    }
    if (e->type == KM_EV_HOTSPOT || e->type == KM_EV_HOLD)
        return KM_OK;
    if (grow((void **)&R->ev, &R->evcap, R->nev + 1, sizeof *R->ev))
        return KM_ENOMEM;
    R->ev[R->nev++] = *e;
    double t = e->t_s - R->t_first;
    if (e->type == KM_EV_ON_TARGET) {
        hold_end(R, t, "new hold");
        if (grow((void **)&R->holds, &R->hcap, R->nh + 1, sizeof *R->holds))
            return KM_ENOMEM;
        R->holds[R->nh++] = (hold){.t0 = t, .x = e->x_mm, .y = e->y_mm, .to_spasm = NAN,
                                   .to_release = NAN, .to_limit = NAN, .peak_kpa = 0,
                                   .ended = "end of recording"};
        R->holding = 1;
    } else if (R->holding && R->nh) {
        hold *h = &R->holds[R->nh - 1];
        if (e->type == KM_EV_SPASM && isnan(h->to_spasm))
            h->to_spasm = t - h->t0;
        else if (e->type == KM_EV_RELEASE && isnan(h->to_release))
            h->to_release = t - h->t0;
        else if (e->type == KM_EV_OFF_TARGET)
            hold_end(R, t, "off target");
        else if (e->type == KM_EV_HOLD_LIMIT && isnan(h->to_limit))
            h->to_limit = t - h->t0; /* the cue to move on: the hold lasts until off target */
        else if (e->type == KM_EV_DEVICE_LOST)
            hold_end(R, t, "mat lost");
    }
    return KM_OK;
}

static int collect(report *R, const km_report_options *o, char *err, size_t errlen)
{
    km_pass_options po = {.input = o->input, .reanalyze = o->reanalyze, .set = o->set,
                          .progress = o->progress, .progress_user = o->progress_user,
                          .note = o->note, .note_user = o->note_user};
    km_pass *pass;
    int rc = km_pass_open(&po, &pass, err, errlen);
    if (rc)
        return rc;
    const km_pass_info *pi = km_pass_describe(pass);
    R->info = pi->source;
    R->meta = pi->meta; /* a .kmr's header, read by the pass */
    R->have_meta = pi->have_meta;
    if (o->deidentify)
        km_record_meta_deidentify(&R->meta);
    snprintf(R->events_from, sizeof R->events_from, "%s", km_pass_events_from_text(pass));
    snprintf(R->settings, sizeof R->settings, "%s", pi->settings_text);
    R->rows = R->info.rows;
    R->cols = R->info.cols;
    R->pitch = R->info.pitch_mm;
    uint32_t cells = (uint32_t)R->rows * R->cols;
    R->sum = calloc(cells, sizeof *R->sum);
    R->peak = calloc(cells, sizeof *R->peak);
    if (!R->sum || !R->peak) {
        rc = KM_ENOMEM;
        goto out;
    }
    const km_frame *f;
    const km_event *ev;
    size_t ne;
    int first = 1;
    while ((rc = km_pass_next(pass, &f, &ev, &ne)) == KM_OK) {
        if (f && first) {
            R->t_first = f->device_ns * 1e-9;
            first = 0;
        }
        for (size_t i = 0; i < ne; i++)
            if ((rc = add_event(R, &ev[i])))
                goto out;
        if (!f || (f->flags & KM_FRAME_CORRUPT) || f->rows != R->rows || f->cols != R->cols)
            continue;
        double t = f->device_ns * 1e-9;
        km_frame_summary s;
        km_frame_summarize(f, &s);
        for (uint32_t i = 0; i < cells; i++) {
            float p = f->kpa[i];
            if (!isfinite(p) || p < 0 || (f->cell_flags[i] & KM_CELL_DEAD))
                p = 0;
            R->sum[i] += p;
            if (p > R->peak[i])
                R->peak[i] = p;
        }
        const km_hotspot *hot;
        size_t nhot = km_pass_hotspots(pass, &hot);
        if (grow((void **)&R->t, &R->cap, R->n + 1, sizeof *R->t) ||
            !(R->load = realloc(R->load, R->cap * sizeof *R->load)) ||
            !(R->ball = realloc(R->ball, R->cap * sizeof *R->ball))) {
            rc = KM_ENOMEM;
            goto out;
        }
        R->t[R->n] = t - R->t_first;
        R->load[R->n] = s.total_force_n;
        R->ball[R->n] = nhot ? hot[0].force_n : NAN;
        if (R->holding && R->nh && s.peak_kpa > R->holds[R->nh - 1].peak_kpa)
            R->holds[R->nh - 1].peak_kpa = s.peak_kpa;
        R->n++;
        R->frames++;
        R->t_last = t - R->t_first;
    }
    if (rc == KM_EEOF)
        rc = KM_OK;
    else if (!err[0])
        km_errf_(err, errlen, "%s: %s", o->input, km_strerror(rc));
    km_source_stats ss;
    km_pass_source_stats(pass, &ss);
    km_dsp_stats ds;
    km_pass_dsp_stats(pass, &ds);
    R->measured_rate_hz = ds.measured_rate_hz;
    R->skipped = ss.malformed + pi->event_damage.spans;
    hold_end(R, R->t_last, "end of recording");
    if (!rc && R->nev && !(R->marks = malloc(R->nev * sizeof *R->marks)))
        rc = KM_ENOMEM;
    if (R->marks)
        R->nmarks = km_marks_match_(R->ev, R->nev, R->marks, &R->agree);
    if (!rc && !R->frames) {
        km_errf_(err, errlen, "%s: no frames to report on", o->input);
        rc = KM_EFORMAT;
    }
    if (o->progress)
        o->progress(o->progress_user, 1.0, R->frames);
out:
    km_pass_close(pass);
    return rc;
}

/* ---- drawing helpers ---------------------------------------------------------- */

static void text(cairo_t *cr, double x, double y, double size, int bold, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void text(cairo_t *cr, double x, double y, double size, int bold, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_move_to(cr, x, y);
    cairo_show_text(cr, buf);
}

static double text_width(cairo_t *cr, double size, const char *s)
{
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

typedef struct { double x, y, w, h; } box;

/* A pressure map fitted into b (aspect kept), colour scale 0..vmax kPa; the
 * holds marked with numbered circles. Returns the box actually used. */
static box draw_map(cairo_t *cr, const report *R, const double *v, double scale_div, double vmax,
                    box b, const char *title)
{
    text(cr, b.x, b.y - 6, 10, 1, "%s", title);
    double cw = b.w / R->cols, ch = b.h / R->rows, c = fmin(cw, ch);
    box m = {b.x, b.y, c * R->cols, c * R->rows};
    /* one pixel per cell, scaled up without smoothing: cells stay cells */
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, R->cols, R->rows);
    unsigned char *px = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    cairo_surface_flush(img);
    for (int r = 0; r < R->rows; r++)
        for (int k = 0; k < R->cols; k++) {
            double p = v[r * R->cols + k] / scale_div, red = 0.94, g = 0.94, bl = 0.94;
            if (p >= KM_CONTACT_KPA)
                heat_rgb(sqrt(p / vmax), &red, &g, &bl);
            uint32_t *o = (uint32_t *)(void *)(px + r * stride) + k;
            *o = (uint32_t)(red * 255 + 0.5) << 16 | (uint32_t)(g * 255 + 0.5) << 8 |
                 (uint32_t)(bl * 255 + 0.5);
        }
    cairo_surface_mark_dirty(img);
    cairo_save(cr);
    cairo_translate(cr, m.x, m.y);
    cairo_scale(cr, c, c);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, R->cols, R->rows);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 0.5);
    cairo_rectangle(cr, m.x, m.y, m.w, m.h);
    cairo_stroke(cr);
    /* holds: white ring, black outline, number */
    for (size_t i = 0; i < R->nh; i++) {
        double x = m.x + (R->holds[i].x / R->pitch + 0.5) * c;
        double y = m.y + (R->holds[i].y / R->pitch + 0.5) * c;
        cairo_set_line_width(cr, 2.2);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_arc(cr, x, y, 6, 0, 2 * M_PI);
        cairo_stroke(cr);
        cairo_set_line_width(cr, 0.8);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_arc(cr, x, y, 7.3, 0, 2 * M_PI);
        cairo_stroke(cr);
        text(cr, x + 8, y - 6, 8, 1, "%zu", i + 1);
    }
    return m;
}

static void draw_colour_bar(cairo_t *cr, double x, double y, double h, double vmax)
{
    for (int i = 0; i < 100; i++) {
        double r, g, b;
        heat_rgb(1 - i / 99.0, &r, &g, &b);
        cairo_set_source_rgb(cr, r, g, b);
        cairo_rectangle(cr, x, y + h * i / 100.0, 10, h / 100.0 + 0.3);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    /* square-root scale: the body's few kPa and the ball's hundreds both show */
    for (int k = 0; k <= 4; k++) {
        double v = vmax * (k / 4.0) * (k / 4.0), yy = y + h - h * k / 4.0;
        cairo_set_line_width(cr, 0.5);
        cairo_move_to(cr, x + 10, yy);
        cairo_line_to(cr, x + 13, yy);
        cairo_stroke(cr);
        text(cr, x + 15, yy + 3, 7, 0, "%.*f kPa (%.0f mmHg)", v < 10 ? 1 : 0, v,
             v / KM_KPA_PER_MMHG);
    }
    text(cr, x, y + h + 10, 6.5, 0, "square-root scale");
}

static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* One strip of the timeline: series y(t) over [t0, t1] in box b. */
static void draw_strip(cairo_t *cr, box b, const double *t, const double *y, size_t n, double t0,
                       double t1, const char *label, double r, double g, double bl)
{
    double ymax = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] >= t0 && t[i] <= t1 && isfinite(y[i]) && y[i] > ymax)
            ymax = y[i];
    ymax = ymax > 0 ? ymax * 1.1 : 1;
    cairo_set_source_rgb(cr, 0.97, 0.97, 0.97);
    cairo_rectangle(cr, b.x, b.y, b.w, b.h);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 0.4);
    cairo_rectangle(cr, b.x, b.y, b.w, b.h);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, b.x - 44, b.y + 9, 7, 1, "%s", label);
    text(cr, b.x - 44, b.y + 18, 6.5, 0, "max %.0f", ymax / 1.1);
    int cols = (int)b.w;
    size_t in_range = 0;
    for (size_t k = 0; k < n; k++)
        in_range += t[k] >= t0 && t[k] <= t1;
    if (in_range < (size_t)cols / 4) { /* sparse (breathing): points joined by lines */
        cairo_set_source_rgb(cr, r, g, bl);
        cairo_set_line_width(cr, 1.0);
        int started = 0;
        for (size_t k = 0; k < n; k++) {
            if (t[k] < t0 || t[k] > t1 || !isfinite(y[k]))
                continue;
            double x = b.x + (t[k] - t0) / (t1 - t0) * b.w, yy = b.y + b.h - y[k] / ymax * b.h;
            if (started)
                cairo_line_to(cr, x, yy);
            else
                cairo_move_to(cr, x, yy);
            started = 1;
        }
        cairo_stroke(cr);
        for (size_t k = 0; k < n; k++) {
            if (t[k] < t0 || t[k] > t1 || !isfinite(y[k]))
                continue;
            double x = b.x + (t[k] - t0) / (t1 - t0) * b.w, yy = b.y + b.h - y[k] / ymax * b.h;
            cairo_arc(cr, x, yy, 1.6, 0, 2 * M_PI);
            cairo_fill(cr);
        }
        return;
    }
    /* min/max per pixel column, so no burst is lost to decimation */
    cairo_set_source_rgb(cr, r, g, bl);
    cairo_set_line_width(cr, 0.7);
    size_t i = 0;
    while (i < n && t[i] < t0)
        i++;
    int have_prev = 0;
    double prev_y = 0;
    for (int c = 0; c < cols; c++) {
        double ta = t0 + (t1 - t0) * c / cols, tb = t0 + (t1 - t0) * (c + 1) / cols;
        double lo = INFINITY, hi = -INFINITY;
        for (; i < n && t[i] < tb; i++)
            if (t[i] >= ta && isfinite(y[i])) {
                lo = fmin(lo, y[i]);
                hi = fmax(hi, y[i]);
            }
        if (!isfinite(lo)) {
            have_prev = 0;
            continue;
        }
        double x = b.x + c + 0.5;
        double ylo = b.y + b.h - lo / ymax * b.h, yhi = b.y + b.h - hi / ymax * b.h;
        if (have_prev) {
            cairo_move_to(cr, x - 1, prev_y);
            cairo_line_to(cr, x, (ylo + yhi) / 2);
        }
        cairo_move_to(cr, x, ylo);
        cairo_line_to(cr, x, yhi - 0.01);
        cairo_stroke(cr);
        prev_y = (ylo + yhi) / 2;
        have_prev = 1;
    }
}

/* The timeline of [t0, t1]: load, ball force, breathing, events. */
static box draw_timeline(cairo_t *cr, const report *R, box b, double t0, double t1)
{
    double gap = 5, sh = (b.h - 2 * gap - 14) / 3;
    box s1 = {b.x, b.y, b.w, sh}, s2 = {b.x, b.y + sh + gap, b.w, sh},
        s3 = {b.x, b.y + 2 * (sh + gap), b.w, sh};
    draw_strip(cr, s1, R->t, R->load, R->n, t0, t1, "load N", 0.2, 0.2, 0.2);
    draw_strip(cr, s2, R->t, R->ball, R->n, t0, t1, "ball N", 0.84, 0.15, 0.16);
    draw_strip(cr, s3, R->bt, R->bv, R->nb, t0, t1, "breaths/min", 0.12, 0.47, 0.71);
    /* time axis */
    double step = nice_step(t1 - t0, 8);
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (double tt = ceil(t0 / step) * step; tt <= t1 + 1e-9; tt += step) {
        double x = b.x + (tt - t0) / (t1 - t0) * b.w;
        cairo_set_line_width(cr, 0.4);
        cairo_move_to(cr, x, s3.y + s3.h);
        cairo_line_to(cr, x, s3.y + s3.h + 3);
        cairo_stroke(cr);
        if (t1 - t0 >= 600)
            text(cr, x - 8, s3.y + s3.h + 11, 7, 0, "%.0f:%02.0f", floor(tt / 60), fmod(tt, 60));
        else
            text(cr, x - 6, s3.y + s3.h + 11, 7, 0, "%.0f s", tt);
    }
    /* events: a line through all strips in the event's colour, labels
     * staggered over four rows so they do not collide */
    double last_x[4] = {-1e9, -1e9, -1e9, -1e9};
    for (size_t i = 0; i < R->nev; i++) {
        const km_event *e = &R->ev[i];
        double t = e->t_s - R->t_first;
        if (t < t0 || t > t1 || !event_shown(e->type))
            continue;
        double x = b.x + (t - t0) / (t1 - t0) * b.w, r, g, bl;
        event_rgb(e->type, &r, &g, &bl);
        cairo_set_source_rgb(cr, r, g, bl);
        cairo_set_line_width(cr, 1.2);
        static const double dash[] = {3, 2};
        cairo_set_dash(cr, dash, e->type == KM_EV_MARK ? 2 : 0, 0); /* the person's: dashed */
        cairo_move_to(cr, x, b.y);
        cairo_line_to(cr, x, s3.y + s3.h);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        char label[40];
        const char *name = event_label(e, label, sizeof label);
        int row = 0;
        while (row < 3 && x < last_x[row] + 4)
            row++;
        last_x[row] = x + text_width(cr, 6.5, name);
        text(cr, x + 1.5, b.y + 7 + 7 * row, 6.5, 1, "%s", name);
    }
    return b;
}

static void page_footer(cairo_t *cr, int page, const char *version)
{
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    text(cr, 30, PAGE_H - 12, 7, 0,
         "knotmat %s - not a medical device: it does not diagnose or treat anything.   page %d",
         version, page);
}

static void metadata(cairo_t *cr, const report *R, const km_report_options *o, double y)
{
    char when[64] = "unknown", device[160], who[256] = "";
    const km_record_meta *m = R->have_meta ? &R->meta : NULL;
    if (o->deidentify)
        snprintf(when, sizeof when, "1985-01-01 (de-identified)");
    else if (m && m->start_utc[0])
        snprintf(when, sizeof when, "%s", m->start_utc);
    snprintf(device, sizeof device, "%s%s%s%s%s", m ? m->device_kind : R->info.kind,
             m && m->vid_pid[0] ? " " : "", m ? m->vid_pid : "",
             !o->deidentify && m && m->serial[0] ? " serial " : "",
             !o->deidentify && m ? m->serial : "");
    if (m && !o->deidentify)
        snprintf(who, sizeof who, "subject '%s'   session '%s'   operator '%s'", m->subject,
                 m->session, m->operator_name);
    else if (m) /* R->meta went through km_record_meta_deidentify */
        snprintf(who, sizeof who, "subject '%s'   session '%s'   (de-identified: ids replaced, "
                 "operator, serial and notes removed)", m->subject, m->session);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, 30, y, 8.5, 0, "recording  %s",
         o->deidentify ? "(file name withheld)" : R->title_file);
    text(cr, 30, y + 12, 8.5, 0, "started  %s    device  %s", when, device);
    char rate[96];
    if (R->info.rate_hz > 0)
        snprintf(rate, sizeof rate, "%.1f frames/s (measured %.1f)", R->info.rate_hz,
                 R->measured_rate_hz);
    else
        snprintf(rate, sizeof rate, "rate not stated, measured %.1f frames/s",
                 R->measured_rate_hz);
    text(cr, 30, y + 24, 8.5, 0,
         "mat  %u x %u cells at %.2f mm    %s    %llu frames    %.1f s    %zu holds, %zu events",
         R->cols, R->rows, (double)R->pitch, rate, (unsigned long long)R->frames, R->t_last,
         R->nh, R->nev);
    char by[200] = "";
    if (m && (m->software[0] || m->cue_scheme[0]))
        snprintf(by, sizeof by, "    recorded by %s, cues %s", m->software[0] ? m->software : "?",
                 m->cue_scheme[0] ? m->cue_scheme : "?");
    text(cr, 30, y + 36, 8.5, 0, "events  %s (settings: page 2)%s", R->events_from, by);
    if (who[0])
        text(cr, 30, y + 48, 8.5, 0, "%s", who);
}

/* ---- pages -------------------------------------------------------------------- */

typedef struct { box mean, peak, timeline; double t0, t1; } layout;

static layout page_one(cairo_t *cr, const report *R, const km_report_options *o)
{
    layout L;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, 30, 34, 16, 1, "knotmat session report");
    metadata(cr, R, o, 52);
    double vmax_mean = 0, vmax_peak = 0;
    uint32_t cells = (uint32_t)R->rows * R->cols;
    for (uint32_t i = 0; i < cells; i++) {
        vmax_mean = fmax(vmax_mean, R->sum[i] / (double)R->frames);
        vmax_peak = fmax(vmax_peak, R->peak[i]);
    }
    vmax_mean = vmax_mean > 0 ? vmax_mean : 1;
    vmax_peak = vmax_peak > 0 ? vmax_peak : 1;
    box mb = {30, 120, 270, 200}, pb = {430, 120, 270, 200};
    L.mean = draw_map(cr, R, R->sum, (double)R->frames, vmax_mean, mb, "mean pressure");
    draw_colour_bar(cr, L.mean.x + L.mean.w + 6, 120, L.mean.h, vmax_mean);
    L.peak = draw_map(cr, R, R->peak, 1.0, vmax_peak, pb, "peak pressure");
    draw_colour_bar(cr, L.peak.x + L.peak.w + 6, 120, L.peak.h, vmax_peak);
    double tl_y = 120 + fmax(L.mean.h, L.peak.h) + 26;
    text(cr, 30, tl_y - 6, 10, 1, "session timeline");
    L.t0 = 0;
    L.t1 = R->t_last > 0 ? R->t_last : 1;
    L.timeline = draw_timeline(cr, R, (box){76, tl_y, 736, PAGE_H - 30 - tl_y}, L.t0, L.t1);
    page_footer(cr, 1, km_version());
    return L;
}

static void fmt_opt(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.1f", v);
}

/* The person's marks against the detector: how many of each kind agree with
 * a detected event of that kind, then the marks (as many as there is room
 * for: all are in the event list). Returns the next line's y. */
static double draw_marks(cairo_t *cr, const report *R, double y)
{
    if (!R->nmarks)
        return y;
    text(cr, 30, y, 13, 1, "your marks against the detector");
    y += 16;
    const mark_agreement *a = &R->agree;
    for (int m = 1; m < KM_MARK_COUNT; m++) {
        if (!a->marked[m])
            continue;
        const char *det = km_event_type_name(km_mark_event_type_(m));
        text(cr, 30, y, 8, 0, "%s: %u marked, %u with a detected %s (from %.0f s before the mark "
             "to %.0f s after); %u detected %s not marked", km_mark_name(m), a->marked[m],
             a->agreed[m], det, MARK_BEFORE_S, MARK_AFTER_S, a->unmarked[m], det);
        y += 11;
    }
    y += 4;
    static const char *const hdr[] = {"t s", "your mark", "detector", "its time - yours s"};
    static const double cx[] = {30, 80, 150, 230};
    for (int k = 0; k < 4; k++)
        text(cr, cx[k], y, 8, 1, "%s", hdr[k]);
    y += 12;
    size_t i = 0;
    for (; i < R->nmarks && y < PAGE_H - 150; i++, y += 11) {
        const mark_match *mm = &R->marks[i];
        text(cr, cx[0], y, 8, 0, "%.1f", mm->t_s - R->t_first);
        text(cr, cx[1], y, 8, 0, "%s", km_mark_name(mm->mark));
        if (isfinite(mm->dt_s)) {
            text(cr, cx[2], y, 8, 0, "%s", km_event_type_name(mm->want));
            text(cr, cx[3], y, 8, 0, "%+.1f", mm->dt_s);
        } else {
            text(cr, cx[2], y, 8, 0, "no %s", km_event_type_name(mm->want));
        }
    }
    if (i < R->nmarks)
        text(cr, 30, y, 8, 0, "... %zu more in the event list", R->nmarks - i), y += 11;
    return y + 16;
}

/* The holds table and the event list; returns the next page number. */
static int pages_tables(cairo_t *cr, const report *R, int page)
{
    double y = 0;
    size_t ei = 0;
    int first = 1;
    while (first || ei < R->nev) {
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        y = 40;
        if (first) {
            text(cr, 30, y, 13, 1, "holds");
            y += 18;
            static const char *const hdr[] = {"#", "start s", "x mm", "y mm", "held s",
                                              "to spasm s", "to release s", "limit cue s",
                                              "peak kPa", "peak mmHg", "ended"};
            static const double cx[] = {30, 55, 110, 160, 210, 265, 330, 405, 475, 530, 595};
            for (int k = 0; k < 11; k++)
                text(cr, cx[k], y, 8, 1, "%s", hdr[k]);
            y += 12;
            for (size_t i = 0; i < R->nh && y < PAGE_H - 240; i++, y += 11) {
                const hold *h = &R->holds[i];
                char s1[32], s2[32], s3[32];
                fmt_opt(s1, sizeof s1, h->to_spasm);
                fmt_opt(s2, sizeof s2, h->to_release);
                fmt_opt(s3, sizeof s3, h->to_limit);
                text(cr, cx[0], y, 8, 0, "%zu", i + 1);
                text(cr, cx[1], y, 8, 0, "%.1f", h->t0);
                text(cr, cx[2], y, 8, 0, "%.1f", h->x);
                text(cr, cx[3], y, 8, 0, "%.1f", h->y);
                text(cr, cx[4], y, 8, 0, "%.1f", h->dur);
                text(cr, cx[5], y, 8, 0, "%s", s1);
                text(cr, cx[6], y, 8, 0, "%s", s2);
                text(cr, cx[7], y, 8, 0, "%s", s3);
                text(cr, cx[8], y, 8, 0, "%.0f", h->peak_kpa);
                text(cr, cx[9], y, 8, 0, "%.0f", h->peak_kpa / KM_KPA_PER_MMHG);
                text(cr, cx[10], y, 8, 0, "%s", h->ended);
            }
            if (!R->nh)
                text(cr, 30, y, 8, 0, "no hold in this recording"), y += 11;
            y = draw_marks(cr, R, y + 16);
            first = 0;
        }
        if (ei == 0) {
            /* the settings the events come from, wrapped at a space */
            text(cr, 30, y, 8, 1, "detector settings (events %s)", R->events_from);
            y += 11;
            const char *p = R->settings;
            while (*p) {
                size_t n = strlen(p), cut = n;
                if (n > 160) {
                    cut = 160;
                    while (cut > 0 && p[cut] != ' ')
                        cut--;
                    if (!cut)
                        cut = 160;
                }
                text(cr, 30, y, 7.5, 0, "%.*s", (int)cut, p);
                y += 10;
                p += cut + (p[cut] == ' ');
            }
            y += 12;
        }
        text(cr, 30, y, 13, 1, "events");
        y += 16;
        for (; ei < R->nev && y < PAGE_H - 30; ei++, y += 10) {
            const km_event *e = &R->ev[ei];
            double r, g, b;
            event_rgb(e->type, &r, &g, &b);
            cairo_set_source_rgb(cr, r, g, b);
            cairo_rectangle(cr, 30, y - 6, 6, 6);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0, 0, 0);
            char where[64] = "";
            if (isfinite(e->x_mm))
                snprintf(where, sizeof where, "at (%.1f, %.1f) mm", e->x_mm, e->y_mm);
            char force[32] = "";
            if (isfinite(e->force_n))
                snprintf(force, sizeof force, "%.1f N", e->force_n);
            text(cr, 42, y, 7.5, 0, "%.2f s", e->t_s - R->t_first);
            char label[40];
            text(cr, 100, y, 7.5, 0, "%s", event_label(e, label, sizeof label));
            text(cr, 170, y, 7.5, 0, "%s", where);
            text(cr, 290, y, 7.5, 0, "%s", force);
            text(cr, 340, y, 7.5, 0, "confidence %.2f", e->confidence);
        }
        if (!R->nev)
            text(cr, 30, y, 8, 0, "no events");
        page_footer(cr, page++, km_version());
        cairo_show_page(cr);
    }
    return page;
}

/* One page per `span` seconds that hold frames: a gap of days in a file
 * costs no pages (the pages are bounded by the frames, not the clock). */
static int pages_timeline(cairo_t *cr, const report *R, double span, int page)
{
    for (size_t i = 0; i < R->n;) {
        double t0 = floor(R->t[i] / span) * span;
        while (i < R->n && R->t[i] < t0 + span)
            i++;
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        double t1 = fmin(t0 + span, R->t_last);
        text(cr, 30, 34, 13, 1, "timeline %.0f - %.0f s", t0, t1);
        draw_timeline(cr, R, (box){76, 50, 736, PAGE_H - 90}, t0, t0 + span);
        page_footer(cr, page++, km_version());
        cairo_show_page(cr);
    }
    return page;
}

static int write_map(const char *path, bool force, const layout *L, const report *R,
                     double scale, char *err, size_t errlen)
{
    km_outfile *of;
    int rc = km_outfile_open(path, force ? KM_OUT_FORCE : 0, NULL, &of, err, errlen);
    if (rc)
        return rc;
    FILE *fp = km_outfile_stream_(of);
    if (!fp) {
        km_outfile_abort(of);
        return KM_ENOMEM;
    }
    fprintf(fp,
            "{\"scale\":%g,\"page_w\":%g,\"page_h\":%g,"
            "\"mean_map\":{\"x\":%g,\"y\":%g,\"w\":%g,\"h\":%g},"
            "\"peak_map\":{\"x\":%g,\"y\":%g,\"w\":%g,\"h\":%g},"
            "\"timeline\":{\"x\":%g,\"y\":%g,\"w\":%g,\"h\":%g,\"t0\":%g,\"t1\":%g},"
            "\"colors\":{\"on_target\":[44,161,44],\"spasm\":[214,39,41],\"release\":[31,120,181],"
            "\"off_target\":[128,128,128],\"overpressure\":[255,128,13],\"hold_limit\":[148,102,"
            "189]},",
            scale, PAGE_W, PAGE_H, L->mean.x, L->mean.y, L->mean.w, L->mean.h, L->peak.x,
            L->peak.y, L->peak.w, L->peak.h, L->timeline.x, L->timeline.y, L->timeline.w,
            L->timeline.h, L->t0, L->t1);
    /* the holds table as drawn (times from the first frame), and whose events */
    fprintf(fp, "\"events_from\":\"%s\",\"t_first\":%.9g,\"holds\":[", R->events_from,
            R->t_first);
    for (size_t i = 0; i < R->nh; i++) {
        const hold *h = &R->holds[i];
        char lim[32] = "null";
        if (isfinite(h->to_limit))
            snprintf(lim, sizeof lim, "%.6f", h->to_limit);
        fprintf(fp, "%s{\"start_s\":%.6f,\"held_s\":%.6f,\"limit_cue_s\":%s,\"ended\":\"%s\"}",
                i ? "," : "", h->t0, h->dur, lim, h->ended);
    }
    /* the person's marks as the table gives them */
    fprintf(fp, "],\"marks\":[");
    for (size_t i = 0; i < R->nmarks; i++) {
        const mark_match *mm = &R->marks[i];
        char dt[32] = "null";
        if (isfinite(mm->dt_s))
            snprintf(dt, sizeof dt, "%.6f", mm->dt_s);
        fprintf(fp, "%s{\"t_s\":%.6f,\"mark\":\"%s\",\"detector\":\"%s\",\"dt_s\":%s}",
                i ? "," : "", mm->t_s - R->t_first, km_mark_name(mm->mark),
                km_event_type_name(mm->want), dt);
    }
    fprintf(fp, "],\"agreement\":{");
    for (int m = 1; m < KM_MARK_COUNT; m++)
        fprintf(fp, "%s\"%s\":{\"marked\":%u,\"agreed\":%u,\"unmarked\":%u}", m > 1 ? "," : "",
                km_mark_name(m), R->agree.marked[m], R->agree.agreed[m], R->agree.unmarked[m]);
    fprintf(fp, "}}\n");
    if (fclose(fp) != 0) {
        km_errf_(err, errlen, "%s: %s", path, strerror(errno));
        km_outfile_abort(of);
        return KM_EIO;
    }
    return km_outfile_commit(of, err, errlen);
}

static void report_free(report *R)
{
    free(R->sum);
    free(R->peak);
    free(R->t);
    free(R->load);
    free(R->ball);
    free(R->ev);
    free(R->bt);
    free(R->bv);
    free(R->holds);
    free(R->marks);
}

/* Every page into `io`: a PDF, or page 1 as a PNG at PNG_SCALE. */
static cairo_status_t draw(const report *R, const km_report_options *o, const char *io, int pdf,
                           layout *L, int *pages)
{
    int png = !pdf;
    cairo_surface_t *surf = pdf ? cairo_pdf_surface_create(io, PAGE_W, PAGE_H)
                                : cairo_image_surface_create(CAIRO_FORMAT_ARGB32,
                                                             (int)(PAGE_W * PNG_SCALE),
                                                             (int)(PAGE_H * PNG_SCALE));
    cairo_t *cr = cairo_create(surf);
    if (png)
        cairo_scale(cr, PNG_SCALE, PNG_SCALE);
    if (pdf) {
        cairo_pdf_surface_set_metadata(surf, CAIRO_PDF_METADATA_TITLE, "knotmat session report");
        cairo_pdf_surface_set_metadata(surf, CAIRO_PDF_METADATA_CREATOR, "knotmat");
        if (o->deidentify) { /* the day a report is made is usually the session's */
            cairo_pdf_surface_set_metadata(surf, CAIRO_PDF_METADATA_CREATE_DATE,
                                           "1985-01-01T00:00:00Z");
            cairo_pdf_surface_set_metadata(surf, CAIRO_PDF_METADATA_MOD_DATE,
                                           "1985-01-01T00:00:00Z");
        }
    }
    *L = page_one(cr, R, o);
    *pages = 1;
    if (pdf) {
        cairo_show_page(cr);
        double span = o->page_span_s > 0 ? o->page_span_s : 300;
        int next = pages_tables(cr, R, 2);
        if (R->t_last > span)
            next = pages_timeline(cr, R, span, next);
        *pages = next - 1;
    }
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (png && st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png(surf, io);
    cairo_surface_finish(surf);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(surf);
    cairo_surface_destroy(surf);
    return st;
}

int km_report_render(const km_report_options *o, km_report_summary *out, char *err, size_t errlen)
{
    int rc_check;
    if (out)
        memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = 0;
    size_t ol = o->output ? strlen(o->output) : 0;
    int pdf = ol > 4 && !strcasecmp(o->output + ol - 4, ".pdf");
    int png = ol > 4 && !strcasecmp(o->output + ol - 4, ".png");
    if (!pdf && !png) {
        km_errf_(err, errlen, "%s: the report is written as .pdf or .png",
                 o->output ? o->output : "");
        return KM_EINVAL;
    }
    const char *path = !strncmp(o->input, "file://", 7) ? o->input + 7 : o->input;
    char inpath[1100];
    snprintf(inpath, sizeof inpath, "%s", path);
    char *q = strchr(inpath, '?');
    if (q && !strncmp(o->input, "file://", 7))
        *q = 0; /* a URI's query is not part of the file's name */
    const char *inputs[] = {inpath, NULL};
    if (o->map_path &&
        (rc_check = km_outfile_check(o->map_path, o->force ? KM_OUT_FORCE : 0, inputs, err,
                                     errlen)))
        return rc_check;
    km_outfile *of;
    int rc = km_outfile_open(o->output, o->force ? KM_OUT_FORCE : 0, inputs, &of, err, errlen);
    if (rc)
        return rc;
    report R;
    memset(&R, 0, sizeof R);
    const char *base = strrchr(o->input, '/');
    snprintf(R.title_file, sizeof R.title_file, "%s", base ? base + 1 : o->input);
    rc = collect(&R, o, err, errlen);
    if (rc) {
        report_free(&R);
        km_outfile_abort(of);
        return rc;
    }
    layout L;
    int pages;
    cairo_status_t st = draw(&R, o, km_outfile_io_path(of), pdf, &L, &pages);
    if (st != CAIRO_STATUS_SUCCESS) {
        km_errf_(err, errlen, "%s: cannot write the report: %s", o->output,
                 cairo_status_to_string(st));
        report_free(&R);
        km_outfile_abort(of);
        return KM_EIO;
    }
    /* 0600 from creation (km_outfile): a report can identify a patient */
    if ((rc = km_outfile_commit(of, err, errlen))) {
        report_free(&R);
        return rc;
    }
    if (o->map_path && (rc = write_map(o->map_path, o->force, &L, &R, png ? PNG_SCALE : 1, err,
                                       errlen))) {
        report_free(&R);
        return rc;
    }
    if (out) {
        out->skipped = R.skipped;
        out->frames = R.frames;
        out->duration_s = R.t_last;
        out->pages = pages;
        size_t shown = 0;
        for (size_t i = 0; i < R.nev; i++)
            shown += event_shown(R.ev[i].type);
        out->events = shown;
        out->holds = R.nh;
        out->marks = R.nmarks;
        snprintf(out->events_from, sizeof out->events_from, "%s", R.events_from);
    }
    report_free(&R);
    return KM_OK;
}
