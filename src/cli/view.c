/* view.c: knotmat run --view: the mat as a heatmap in the terminal. Each
 * character cell shows two mat pixels with the upper half block (foreground
 * = upper pixel, background = lower), in 24-bit colour where the terminal
 * says it has it (COLORTERM=truecolor|24bit) and the xterm 256-colour cube
 * otherwise; the frame is fitted to the window at every redraw (so resizing
 * just works), downsampled by the maximum so a ball never disappears, and
 * drawn on the alternate screen. The peak cell is marked '+', the hold's
 * position 'O'; beneath: a status line, the hold timer against the
 * configured limit, the last events. Drawn by the run command's own thread
 * from its own ring consumer, at most 10 times a second: it never slows the
 * DSP or the recorder. Touches: stdout. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "knotmat/events.h"
#include "knotmat/frame.h"
#include "knotmat/stats.h"

#define NEV 4
#define OUTCAP (1 << 20)

struct cli_view {
    int truecolor;
    double vmax;                 /* colour scale top, kPa (decays slowly) */
    double max_hold_s;
    int holding;
    double hold_t0, hold_x, hold_y;
    char ev[NEV][128];
    int nev;
    char *out;
    size_t len;
};

static void put(cli_view *v, const char *s, size_t n)
{
    if (v->len + n < OUTCAP) {
        memcpy(v->out + v->len, s, n);
        v->len += n;
    }
}

static void putf(cli_view *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(cli_view *v, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(v, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
}

/* A line of plain text, cut to the window's width (no wrapping). */
static void line(cli_view *v, int width, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void line(cli_view *v, int width, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > width)
        n = width;
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    put(v, buf, (size_t)n);
    put(v, "\x1b[K\r\n", 5);
}

cli_view *cli_view_new(double max_hold_s)
{
    cli_view *v = calloc(1, sizeof *v);
    if (!v || !(v->out = malloc(OUTCAP))) {
        free(v);
        return NULL;
    }
    const char *ct = getenv("COLORTERM");
    v->truecolor = ct && (strstr(ct, "truecolor") || strstr(ct, "24bit"));
    v->vmax = 50;
    v->max_hold_s = max_hold_s;
    fputs("\x1b[?1049h\x1b[?25l\x1b[2J", stdout); /* alternate screen, no cursor */
    fflush(stdout);
    return v;
}

void cli_view_free(cli_view *v)
{
    if (!v)
        return;
    fputs("\x1b[0m\x1b[?25h\x1b[?1049l", stdout);
    fflush(stdout);
    free(v->out);
    free(v);
}

void cli_view_event(cli_view *v, const km_event *e)
{
    if (e->type == KM_EV_ON_TARGET) {
        v->holding = 1;
        v->hold_t0 = e->t_s;
        v->hold_x = e->x_mm;
        v->hold_y = e->y_mm;
    } else if (e->type == KM_EV_OFF_TARGET || e->type == KM_EV_HOLD_LIMIT ||
               e->type == KM_EV_DEVICE_LOST) {
        v->holding = 0;
    }
    if (e->type == KM_EV_HOLD || e->type == KM_EV_HOTSPOT)
        return; /* the timer shows the one, the map the other */
    char *slot = v->ev[v->nev++ % NEV];
    int n = snprintf(slot, 128, "%8.1f s  %-12s", e->t_s, km_event_type_name(e->type));
    if (isfinite(e->x_mm) && n < 100)
        n += snprintf(slot + n, (size_t)(128 - n), " at (%.0f, %.0f) mm", e->x_mm, e->y_mm);
    if (e->type == KM_EV_BREATHING && n < 100)
        snprintf(slot + n, (size_t)(128 - n), " %.1f breaths/min", e->value);
    else if (e->type == KM_EV_MARK && n < 100)
        snprintf(slot + n, (size_t)(128 - n), " %s (your mark)", km_mark_name(km_event_mark(e)));
    else if (isfinite(e->force_n) && n < 100)
        snprintf(slot + n, (size_t)(128 - n), "  %.0f N", e->force_n);
}

/* sqrt-viridis, as in the reports */
static void colour(double x, int *r, int *g, int *b)
{
    static const double s[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140},
                                   {94, 201, 98}, {253, 231, 37}};
    x = x <= 0 ? 0 : x >= 1 ? 1 : sqrt(x);
    double f = x * 4;
    int i = (int)f;
    if (i > 3)
        i = 3;
    f -= i;
    *r = (int)(s[i][0] + f * (s[i + 1][0] - s[i][0]));
    *g = (int)(s[i][1] + f * (s[i + 1][1] - s[i][1]));
    *b = (int)(s[i][2] + f * (s[i + 1][2] - s[i][2]));
}

static int cube(int r, int g, int b)
{
    return 16 + 36 * ((r * 5 + 127) / 255) + 6 * ((g * 5 + 127) / 255) + (b * 5 + 127) / 255;
}

static void set_colours(cli_view *v, int fr, int fg, int fb, int br, int bg, int bb)
{
    if (v->truecolor)
        putf(v, "\x1b[38;2;%d;%d;%dm\x1b[48;2;%d;%d;%dm", fr, fg, fb, br, bg, bb);
    else
        putf(v, "\x1b[38;5;%dm\x1b[48;5;%dm", cube(fr, fg, fb), cube(br, bg, bb));
}

/* The pressure of output pixel (px, py): the maximum over the mat cells it covers. */
static double sample(const km_frame *f, double scale, int px, int py)
{
    int r0 = (int)(py / scale), r1 = (int)((py + 1) / scale - 1e-9);
    int c0 = (int)(px / scale), c1 = (int)((px + 1) / scale - 1e-9);
    if (r1 < r0)
        r1 = r0;
    if (c1 < c0)
        c1 = c0;
    double m = 0;
    for (int r = r0; r <= r1 && r < f->rows; r++)
        for (int c = c0; c <= c1 && c < f->cols; c++) {
            double p = f->kpa[r * f->cols + c];
            if (isfinite(p) && p > m && !(f->cell_flags[r * f->cols + c] & KM_CELL_DEAD))
                m = p;
        }
    return m;
}

void cli_view_draw(cli_view *v, const km_frame *f, const km_frame_summary *s, double t,
                   double fps, unsigned long long dropped)
{
    struct winsize ws;
    int tcols = 80, trows = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        tcols = ws.ws_col;
        trows = ws.ws_row;
    }
    int text_rows = 3 + NEV;
    int map_rows = trows - text_rows - 1;
    if (map_rows < 2)
        map_rows = 2;
    v->len = 0;
    put(v, "\x1b[H", 3);
    if (f && f->rows && f->cols) {
        double peak = s ? s->peak_kpa : 0;
        v->vmax = fmax(50, fmax(peak, v->vmax * 0.995));
        double scale = fmin((double)tcols / f->cols, (double)(2 * map_rows) / f->rows);
        int pw = (int)(f->cols * scale), ph = (int)(f->rows * scale);
        int mark_r = -1, mark_c = -1, hold_r = -1, hold_c = -1;
        if (s && s->peak_kpa >= 30) {
            mark_c = (int)((s->peak_col + 0.5) * scale);
            mark_r = (int)((s->peak_row + 0.5) * scale) / 2;
        }
        if (v->holding && f->pitch_mm > 0) {
            hold_c = (int)((v->hold_x / f->pitch_mm + 0.5) * scale);
            hold_r = (int)((v->hold_y / f->pitch_mm + 0.5) * scale) / 2;
        }
        for (int row = 0; row < map_rows; row++) {
            for (int x = 0; x < pw && x < tcols; x++) {
                int tr, tg, tb, br = 0, bg = 0, bb = 0;
                double top = 2 * row < ph ? sample(f, scale, x, 2 * row) : -1;
                double bot = 2 * row + 1 < ph ? sample(f, scale, x, 2 * row + 1) : -1;
                if (top < 0)
                    break;
                colour(top / v->vmax, &tr, &tg, &tb);
                if (bot >= 0)
                    colour(bot / v->vmax, &br, &bg, &bb);
                if (row == hold_r && x == hold_c) {
                    set_colours(v, 255, 255, 255, tr, tg, tb);
                    put(v, "O", 1);
                } else if (row == mark_r && x == mark_c) {
                    set_colours(v, 255, 255, 255, tr, tg, tb);
                    put(v, "+", 1);
                } else {
                    set_colours(v, tr, tg, tb, br, bg, bb);
                    put(v, "\xe2\x96\x80", 3); /* U+2580 upper half block */
                }
            }
            put(v, "\x1b[0m\x1b[K\r\n", 9);
        }
    }
    /* text beneath */
    if (s && isfinite(s->cop_x_mm))
        line(v, tcols,
             "t=%7.1fs %6.1f fps  dropped %llu  force %6.1f N  peak %6.1f kPa (%.0f mmHg)", t, fps,
             dropped, s->total_force_n, s->peak_kpa, s->peak_kpa / KM_KPA_PER_MMHG);
    else
        line(v, tcols, "t=%7.1fs %6.1f fps  dropped %llu  (no load on the mat)", t, fps, dropped);
    if (v->holding) {
        double held = f ? f->device_ns * 1e-9 - v->hold_t0 : 0;
        if (held < 0)
            held = 0;
        int w = 30, fill = v->max_hold_s > 0 ? (int)(w * fmin(1, held / v->max_hold_s)) : 0;
        char bar[31];
        for (int i = 0; i < w; i++)
            bar[i] = i < fill ? '=' : ' ';
        bar[w] = 0;
        line(v, tcols, "hold %2d:%02d at (%.0f, %.0f) mm  [%s] limit %.0f s", (int)held / 60,
             (int)held % 60, v->hold_x, v->hold_y, bar, v->max_hold_s);
    } else {
        line(v, tcols, "no hold: find the tender spot and settle on the ball");
    }
    line(v, tcols, "last events:");
    for (int i = 0; i < NEV; i++) {
        int k = v->nev - NEV + i;
        line(v, tcols, "%s", k >= 0 ? v->ev[k % NEV] : "");
    }
    put(v, "\x1b[J", 3);
    fwrite(v->out, 1, v->len, stdout);
    fflush(stdout);
}
