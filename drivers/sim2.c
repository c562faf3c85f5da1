/* sim2.c: a second simulated mat (sim2://), written apart from sim.c so that a
 * detector tuned on one can be tested on the other (docs/detection.md,
 * "Leave one model out"). Nothing here is shared with sim.c but the public
 * types: its own random numbers, body, sensor and event generator.
 *
 * Body: a Winkler foundation. The trunk is a few rigid paraboloid segments
 * (thorax, two scapulae) pressed into the mat's foam; pressure is
 * k (delta - h(x, y) + drape(x, y)), delta solved by bisection so the segments
 * carry the trunk's share of the weight minus what the ball carries. The ball
 * is a rigid sphere on the same foam: parabolic pressure k_b (d - r^2 / 2R).
 * The tissue drapes over the ball: a Gaussian bump lifts the body around it.
 * Sensor: a force-sensing-resistor matrix. Conductance goes as p^beta
 * (beta 0.85-1.1, read as if linear), per-cell gain mismatch, a first-order
 * RC lag, ghost currents of the passive matrix (row sum x column sum), a
 * common-mode offset per scan, 8-12-bit ADC, logarithmic creep, scan times
 * with gamma-distributed jitter and rare missed scans.
 * Events: a Markov chain of holds. Each hold: the ball is loaded along a
 * ramp, the tissue relaxes (a standard linear solid, two time constants),
 * twitch bursts come as a Poisson process (shapes: gamma pulse t^k e^-t/tau,
 * its derivative (biphasic), a damped mass-spring 3-12 Hz; either sign; a
 * share of the change reaches the whole mat through the trunk's inertia);
 * a release is a drop of the tissue's stiffness from an onset (exponential,
 * logistic or linear-then-flat), so the ball force falls and the body sinks
 * around it; after it the person may stay, lift off or shift. Confounders:
 * coughs, talk, fidgets (a force step with a move), slow sinking.
 * May touch: its own memory only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "knotmat/sim.h"
#include "sim2_private.h"

#define S2_G 9.80665
#define S2_MAXEV 96
#define S2_MAXTW 48
#define S2_MAXHOLD 8

/* ---- random numbers: a PCG32 of its own --------------------------------- */

typedef struct { uint64_t state, inc; } pcg_t;

static uint32_t pcg_next(pcg_t *g)
{
    uint64_t old = g->state;
    g->state = old * 6364136223846793005ull + g->inc;
    uint32_t xs = (uint32_t)(((old >> 18u) ^ old) >> 27u), rot = (uint32_t)(old >> 59u);
    return (xs >> rot) | (xs << ((-rot) & 31));
}

static void pcg_seed(pcg_t *g, uint64_t seed, uint64_t stream)
{
    g->state = 0;
    g->inc = (stream << 1u) | 1u;
    pcg_next(g);
    g->state += seed;
    pcg_next(g);
}

static double u01(pcg_t *g) { return (pcg_next(g) + 0.5) / 4294967296.0; }
static double uni(pcg_t *g, double a, double b) { return a + (b - a) * u01(g); }
static double expo(pcg_t *g, double mean) { return -mean * log(u01(g)); }

static double normal(pcg_t *g)
{
    /* Marsaglia polar */
    double x, y, r;
    do {
        x = 2 * u01(g) - 1;
        y = 2 * u01(g) - 1;
        r = x * x + y * y;
    } while (r >= 1 || r == 0);
    return x * sqrt(-2 * log(r) / r);
}

/* ---- scenarios ---------------------------------------------------------- */

static const char *const s2_names[] = {"session", "quiet", "restless", "still", NULL};
static const char *const s2_help[] = {
    ("holds on several spots: twitch bursts, releases (then staying, lifting off or shifting), "
     "coughs, talk, fidgets"),
    "holds with coughs, talk, fidgets, relaxation, creep and slow sinking; no twitch, no release",
    "fidgets and shifts every few seconds, roll-offs; no twitch, no release",
    "one long still hold: relaxation, creep, breathing only; no twitch, no release",
};

const char *const *km_sim2_scenarios_(void) { return s2_names; }

const char *km_sim2_scenario_help_(const char *name)
{
    for (int i = 0; s2_names[i]; i++)
        if (!strcmp(s2_names[i], name))
            return s2_help[i];
    return NULL;
}

/* ---- the model ---------------------------------------------------------- */

typedef struct {
    double t;      /* start */
    int shape;     /* 0 gamma pulse, 1 its derivative, 2 damped spring */
    double amp;    /* fraction of the ball force, signed */
    double k, tau; /* gamma order and time constant */
    double f, zeta;
} s2_twitch;

typedef struct {
    double t_load, t_unload; /* ramp up at t_load (over ramp s), down at t_unload */
    double ramp, unload_ramp;
    double x, y;             /* ball position on the mat, mm */
    double share;            /* ball force as a share of the trunk load */
    double relax1, relax_t1, relax2, relax_t2;
    double rel_on, rel_depth, rel_tau; /* release: stiffness drop from rel_on */
    int rel_shape;           /* 0 exp, 1 logistic, 2 linear then flat */
    double sink;             /* slow sinking: fraction per minute */
} s2_hold;

typedef struct {
    double t, dur, dx, dy, step; /* fidget: ball and body move, force steps */
} s2_move;

typedef struct {
    double t, dur, amp; int kind; /* 0 cough, 1 talk */
} s2_trunk;

struct km_sim2 {
    km_sim_params p;
    pcg_t noise;
    uint64_t n;
    double t_last;
    /* body */
    double trunk_n;           /* trunk load on the mat, N */
    double seg_x[3], seg_y[3], seg_rx[3], seg_ry[3];
    double k_body;            /* Pa per m of indentation: soft tissue on foam */
    double k_ball;            /* Pa per m: the ball on the mat's thin foam */
    double seg_up[3];         /* mm a segment stands proud of the thorax */
    double ball_r;            /* m */
    double drape_h, drape_s;  /* mm, mm */
    double breath_hz, breath_amp, breath_ph, heart_hz;
    /* sensor */
    double beta, ghost, lag_s, creep10, cm_noise;
    float *gain, *state;
    double *row, *col;
    float *press;
    /* plan */
    s2_hold hold[S2_MAXHOLD];
    int nhold;
    s2_twitch tw[S2_MAXTW];
    int ntw;
    s2_move mv[S2_MAXEV];
    int nmv;
    s2_trunk tr[S2_MAXEV];
    int ntr;
    km_sim_event ev[S2_MAXEV];
    size_t nev;
    double next_t; /* scan times: the next one */
};

static void s2_event(km_sim2 *s, enum km_sim_event_type type, double t, double dur, double mag,
                     double x, double y)
{
    if (s->nev >= S2_MAXEV || (s->p.duration_s > 0 && t >= s->p.duration_s - 1.0))
        return;
    km_sim_event *e = &s->ev[s->nev++];
    e->type = type;
    e->t_s = t;
    e->duration_s = dur;
    e->magnitude = mag;
    e->x_mm = x;
    e->y_mm = y;
}

/* Twitch waveform, unit peak magnitude (the gamma pulse peaks at k tau). */
static double s2_twitch_at(const s2_twitch *w, double u)
{
    if (u <= 0 || u > 1.5)
        return 0;
    switch (w->shape) {
    case 0: {
        double x = u / (w->k * w->tau);
        return pow(x, w->k) * exp(w->k * (1 - x));
    }
    case 1: {
        /* derivative of the gamma pulse: up then down (or the reverse) */
        double x = u / w->tau, pk = w->k - sqrt(w->k);
        double d = pow(x, w->k - 1) * (w->k - x) * exp(-x);
        double dm = pow(pk, w->k - 1) * (w->k - pk) * exp(-pk);
        return d / dm;
    }
    default: {
        double wn = 2 * M_PI * w->f, wd = wn * sqrt(1 - w->zeta * w->zeta);
        return exp(-w->zeta * wn * u) * sin(wd * u);
    }
    }
}

static double s2_twitch_len(const s2_twitch *w)
{
    double len;
    if (w->shape == 2)
        len = 3.0 / (w->zeta * 2 * M_PI * w->f);
    else
        len = (w->k + 3 * sqrt(w->k) + (w->shape == 1 ? 2 : 0)) * w->tau;
    return fmin(fmax(len, 0.06), 0.6);
}

static void s2_burst(km_sim2 *s, pcg_t *g, double t, const s2_hold *h)
{
    int n = 1 + (u01(g) < 0.45) + (u01(g) < 0.25);
    int shape = (int)(u01(g) * 3);
    double amp = uni(g, 0.04, 0.25) * (u01(g) < 0.5 ? -1 : 1), tt = t, end = t, amp0 = amp;
    for (int i = 0; i < n && s->ntw < S2_MAXTW; i++) {
        s2_twitch *w = &s->tw[s->ntw++];
        w->t = tt;
        w->shape = shape;
        w->amp = amp;
        /* contraction time k tau within 47-102 ms (motor-unit twitches) */
        w->k = uni(g, 1.5, 4.0);
        w->tau = uni(g, 0.047, 0.102) / w->k;
        w->f = uni(g, 3, 12);
        w->zeta = uni(g, 0.12, 0.45);
        double len = s2_twitch_len(w);
        end = tt + len;
        tt += len * uni(g, 0.6, 1.2) + uni(g, 0.03, 0.15);
        amp *= uni(g, 0.45, 0.9);
    }
    s2_event(s, KM_SIM_SPASM, t, end - t, amp0, h->x, h->y);
}

static double s2_release_k(const s2_hold *h, double t)
{
    double u = t - h->rel_on;
    if (!(h->rel_depth > 0) || u <= 0)
        return 0;
    switch (h->rel_shape) {
    case 0: return 1 - exp(-u / h->rel_tau);
    case 1: {
        double l0 = 1 / (1 + exp(2.5));
        return (1 / (1 + exp(-(u / h->rel_tau * 2 - 2.5))) - l0) / (1 - l0);
    }
    default: return fmin(1.0, u / (2.5 * h->rel_tau));
    }
}

/* A move of the ball (and the body with it) at t: d_lo-d_hi mm in a random
 * direction over dur_lo-dur_hi s, the ball's force stepping by up to
 * +-step; its truth is a shift. */
static void s2_move_at(km_sim2 *s, pcg_t *g, double t, double dur_lo, double dur_hi, double d_lo,
                       double d_hi, double step, const s2_hold *h)
{
    if (s->nmv >= S2_MAXEV)
        return;
    s2_move *m = &s->mv[s->nmv++];
    m->t = t;
    m->dur = uni(g, dur_lo, dur_hi);
    double a = uni(g, 0, 2 * M_PI), d = uni(g, d_lo, d_hi);
    m->dx = d * cos(a);
    m->dy = d * sin(a);
    m->step = uni(g, -step, step);
    s2_event(s, KM_SIM_SHIFT, m->t, m->dur, d, h->x, h->y);
}

static void s2_pick_spot(km_sim2 *s, pcg_t *g, double *x, double *y)
{
    double w = (s->p.cols - 1) * (double)s->p.pitch_mm, hgt = (s->p.rows - 1) * (double)s->p.pitch_mm;
    double m = 3.5 * s->p.pitch_mm;
    /* beside the spine, between the shoulder blades and below them */
    *x = fmin(fmax(s->seg_x[0] + (u01(g) < 0.5 ? -1 : 1) * uni(g, 35, 90), m), w - m);
    *y = fmin(fmax(s->seg_y[0] + uni(g, -110, 60), m), hgt - m);
}

static void s2_plan(km_sim2 *s)
{
    pcg_t g;
    pcg_seed(&g, s->p.seed * 2654435761u + 99991u, 7);
    const char *sc = s->p.scenario;
    int targets = !strcmp(sc, "session"), still = !strcmp(sc, "still");
    int restless = !strcmp(sc, "restless");
    double T = s->p.duration_s > 0 ? s->p.duration_s : 3600;
    double t = uni(&g, 0.5, 3.0);
    while (t < T - 10 && s->nhold < S2_MAXHOLD) {
        s2_hold *h = &s->hold[s->nhold++];
        memset(h, 0, sizeof *h);
        h->t_load = t;
        h->ramp = uni(&g, 0.6, 3.0);
        s2_pick_spot(s, &g, &h->x, &h->y);
        h->share = uni(&g, 0.2, 0.5);
        /* standard linear solid: 3-10 % in all, levelled off within ~20 s */
        h->relax1 = uni(&g, 0.01, 0.04);
        h->relax_t1 = uni(&g, 0.5, 2.0);
        h->relax2 = uni(&g, 0.02, 0.06);
        h->relax_t2 = uni(&g, 3.0, 6.0);
        h->sink = u01(&g) < 0.5 ? uni(&g, 0.002, 0.01) : 0;
        double len = still ? T : uni(&g, 50, 110);
        h->t_unload = fmin(t + len, T + 100);
        h->unload_ramp = uni(&g, 0.4, 1.5);
        double settled = t + h->ramp;
        s2_event(s, KM_SIM_ON_BALL, t, h->ramp, 0, h->x, h->y);
        if (targets) {
            /* twitches: Poisson in the hold, then maybe a release */
            double rel_at = settled + uni(&g, 18, 55);
            for (double tt = settled + expo(&g, 14) + 4; tt < rel_at - 1.5;
                 tt += expo(&g, 14) + 2.5)
                s2_burst(s, &g, tt, h);
            if (u01(&g) < 0.85 && rel_at < h->t_unload - 6) {
                h->rel_on = rel_at;
                h->rel_depth = uni(&g, 0.18, 0.46); /* of the tissue's stiffness: 10-30 % */
                h->rel_tau = uni(&g, 1.0, 5.0);
                h->rel_shape = (int)(u01(&g) * 3);
                double after = u01(&g);
                if (after < 0.3) { /* lift off soon after the onset */
                    h->t_unload = rel_at + uni(&g, 2.0, 6.0);
                } else if (after < 0.5) { /* shift after it */
                    s2_move_at(s, &g, rel_at + uni(&g, 2.5, 6.0), 0.5, 1.5, 15, 35, 0.15, h);
                }
            }
        }
        /* confounders in this hold */
        double hold_end = h->t_unload;
        int ncough = still ? 0 : (int)uni(&g, 0, restless ? 2 : 4);
        for (int i = 0; i < ncough && s->ntr < S2_MAXEV; i++) {
            double tc = uni(&g, settled + 2, hold_end - 2);
            int k = 1 + (int)(u01(&g) * 3);
            for (int j = 0; j < k && s->ntr < S2_MAXEV; j++) {
                s2_trunk *c = &s->tr[s->ntr++];
                c->t = tc + j * uni(&g, 0.35, 0.8);
                c->dur = uni(&g, 0.15, 0.35);
                c->amp = uni(&g, 0.04, 0.15);
                c->kind = 0;
                s2_event(s, KM_SIM_COUGH, c->t, c->dur, c->amp, h->x, h->y);
            }
        }
        if (!still && !restless && u01(&g) < 0.6 && s->ntr < S2_MAXEV) {
            s2_trunk *c = &s->tr[s->ntr++];
            c->t = uni(&g, settled, hold_end - 5);
            c->dur = uni(&g, 3, 12);
            c->amp = uni(&g, 0.004, 0.015);
            c->kind = 1;
            s2_event(s, KM_SIM_TALK, c->t, c->dur, c->amp, h->x, h->y);
        }
        double every = restless ? 6 : (still ? 1e9 : 30);
        for (double tf = settled + uni(&g, 3, every); tf < hold_end - 2 && s->nmv < S2_MAXEV;
             tf += every * uni(&g, 0.6, 1.5)) {
            if (h->rel_depth > 0 && tf > h->rel_on - 12 && tf < h->rel_on + 8)
                continue; /* a fidget inside the release would make its truth ambiguous */
            s2_move_at(s, &g, tf, 0.3, 1.2, 3, 14, 0.1, h);
        }
        if (h->t_unload < T) {
            s2_event(s, restless && u01(&g) < 0.5 ? KM_SIM_ROLL_OFF : KM_SIM_OFF_BALL,
                     h->t_unload, h->unload_ramp, 0, h->x, h->y);
        }
        if (h->rel_depth > 0) /* the fall the stiffness drop makes, see s2_hold_load */
            s2_event(s, KM_SIM_RELEASE, h->rel_on, h->rel_tau,
                     1 - 2 * (1 - h->rel_depth) / (2 - h->rel_depth), h->x, h->y);
        t = h->t_unload + h->unload_ramp + uni(&g, 2, 8);
    }
    km_sim_events_sort_(s->ev, s->nev);
}

/* Ball load factor of hold h at time t (0..1 ramp, relaxation, release,
 * sinking) and the drape multiplier (the body sinks as the tissue gives). */
static double s2_hold_load(const s2_hold *h, double t, double *drape_mul)
{
    *drape_mul = 1;
    if (t < h->t_load || t > h->t_unload + h->unload_ramp)
        return 0;
    double up = fmin(1.0, (t - h->t_load) / h->ramp);
    double down = t > h->t_unload ? 1 - (t - h->t_unload) / h->unload_ramp : 1;
    double on = fmin(up, down);
    on = on * on * (3 - 2 * on);
    double u = t - h->t_load - h->ramp;
    double relax = 0;
    if (u > 0)
        relax = h->relax1 * (1 - exp(-u / h->relax_t1)) + h->relax2 * (1 - exp(-u / h->relax_t2));
    /* the tissue in series with the foam: force goes as k_t / (k_t + k_f);
     * a stiffness drop of depth d gives a force fall of about d / 2 */
    double kt = 1 - h->rel_depth * s2_release_k(h, t);
    double rel = kt / (kt + 1.0) * 2.0;
    double sink = u > 0 ? h->sink * u / 60.0 : 0;
    *drape_mul = (1 - 2 * relax) * (0.4 + 0.6 * rel) - sink;
    return on * (1 - relax) * rel * (1 - sink);
}

typedef struct {
    double ball_n, x, y, trunk_mul, drape_mul;
} s2_state;

static void s2_state_at(const km_sim2 *s, double t, s2_state *st)
{
    memset(st, 0, sizeof *st);
    st->drape_mul = 1;
    const s2_hold *h = NULL;
    double load = 0;
    for (int i = 0; i < s->nhold; i++) {
        double dm, l = s2_hold_load(&s->hold[i], t, &dm);
        if (l > load) {
            load = l;
            h = &s->hold[i];
            st->drape_mul = dm;
        }
    }
    /* breathing: inhale, exhale, a pause (not a sine) */
    double ph = fmod(s->breath_hz * t + s->breath_ph, 1.0);
    double b = ph < 0.4 ? sin(M_PI * ph / 0.4 / 2) : (ph < 0.8 ? cos(M_PI * (ph - 0.4) / 0.4 / 2) : 0);
    b = b * b - 0.45;
    double heart = exp(-pow(fmod(s->heart_hz * t, 1.0) - 0.3, 2) / (2 * 0.03 * 0.03)) - 0.075;
    double trunk = 1 + s->breath_amp * b + 0.003 * heart;
    double ballm = 1 + 1.6 * s->breath_amp * b + 0.005 * heart;
    for (int i = 0; i < s->ntr; i++) {
        const s2_trunk *c = &s->tr[i];
        double u = t - c->t;
        if (u <= 0 || u > c->dur + 1.0)
            continue;
        double v;
        if (c->kind == 0) {
            /* a cough: the diaphragm's jolt, then the trunk's recoil */
            v = u < c->dur ? sin(M_PI * u / c->dur) : 0;
            v += 0.4 * exp(-(u - c->dur) / 0.2) * sin(2 * M_PI * 5.5 * u) * (u > c->dur);
            trunk *= 1 + c->amp * v;
            ballm *= 1 + c->amp * 1.3 * v;
        } else if (u < c->dur) {
            v = sin(2 * M_PI * 3.3 * u) * (0.6 + 0.4 * sin(2 * M_PI * 0.7 * u)) +
                0.6 * sin(2 * M_PI * 7.9 * u + 1.3);
            trunk *= 1 + c->amp * v;
            ballm *= 1 + c->amp * 1.1 * v;
        }
    }
    if (!h) {
        st->trunk_mul = trunk;
        return;
    }
    double x = h->x, y = h->y, step = 1;
    for (int i = 0; i < s->nmv; i++) {
        const s2_move *m = &s->mv[i];
        if (t <= m->t || m->t < h->t_load || m->t > h->t_unload)
            continue;
        double k = fmin(1.0, (t - m->t) / m->dur);
        x += k * m->dx;
        y += k * m->dy;
        step *= 1 + k * m->step;
    }
    double tw = 0;
    for (int i = 0; i < s->ntw; i++)
        tw += s->tw[i].amp * s2_twitch_at(&s->tw[i], t - s->tw[i].t);
    st->x = x;
    st->y = y;
    st->ball_n = s->trunk_n * h->share * load * step * ballm * (1 + tw);
    st->trunk_mul = trunk;
}

int km_sim2_new_(const km_sim_params *p, km_sim2 **out)
{
    *out = NULL;
    km_sim2 *s = calloc(1, sizeof *s);
    if (!s)
        return KM_ENOMEM;
    s->p = *p;
    size_t cells = (size_t)p->rows * p->cols;
    s->gain = calloc(cells, sizeof(float));
    s->state = calloc(cells, sizeof(float));
    s->press = calloc(cells, sizeof(float));
    s->row = calloc(p->rows, sizeof(double));
    s->col = calloc(p->cols, sizeof(double));
    if (!s->gain || !s->state || !s->press || !s->row || !s->col) {
        km_sim2_free_(s);
        return KM_ENOMEM;
    }
    pcg_t g;
    pcg_seed(&g, p->seed ^ 0x5151515151ull, 3);
    double w = (p->cols - 1) * (double)p->pitch_mm, hgt = (p->rows - 1) * (double)p->pitch_mm;
    /* trunk share over the mat: 24-34 % of body weight */
    s->trunk_n = uni(&g, 0.24, 0.34) * p->weight_kg * S2_G;
    double cx = w / 2 + uni(&g, -20, 20), cy = hgt / 2 + uni(&g, -20, 40);
    /* thorax and the two scapulae: radii of curvature (mm) and weight shares */
    s->seg_x[0] = cx;
    s->seg_y[0] = cy;
    s->seg_rx[0] = uni(&g, 600, 1000);
    s->seg_ry[0] = uni(&g, 1500, 3000);
    for (int i = 1; i < 3; i++) {
        s->seg_x[i] = cx + (i == 1 ? -1 : 1) * uni(&g, 70, 100);
        s->seg_y[i] = cy - uni(&g, 50, 110);
        s->seg_rx[i] = uni(&g, 100, 160);
        s->seg_ry[i] = uni(&g, 150, 250);
        s->seg_up[i] = uni(&g, 2, 5);
    }
    s->k_body = uni(&g, 2e5, 6e5);
    s->k_ball = uni(&g, 0.5e8, 1.5e8);
    s->ball_r = p->ball_mm * 0.5e-3;
    s->drape_h = uni(&g, 8, 18);
    s->drape_s = uni(&g, 30, 50) * (p->ball_mm / 63.0);
    s->breath_hz = uni(&g, 0.18, 0.35);
    s->breath_amp = uni(&g, 0.015, 0.03);
    s->breath_ph = u01(&g);
    s->heart_hz = uni(&g, 0.95, 1.4);
    s->beta = uni(&g, 0.85, 1.1);
    s->ghost = uni(&g, 0.0, 0.03);
    s->lag_s = p->lag_frames / p->rate_hz;
    s->creep10 = p->creep >= 0 ? p->creep : uni(&g, 0.04, 0.19); /* at 10 min */
    s->cm_noise = uni(&g, 0.02, 0.1);
    for (size_t i = 0; i < cells; i++)
        s->gain[i] = (float)(1 + uni(&g, 0.03, 0.08) * normal(&g));
    s2_plan(s);
    pcg_seed(&s->noise, p->seed * 31 + 5, 11);
    s->next_t = 0;
    *out = s;
    return KM_OK;
}

void km_sim2_free_(km_sim2 *s)
{
    if (!s)
        return;
    free(s->gain);
    free(s->state);
    free(s->press);
    free(s->row);
    free(s->col);
    free(s);
}

size_t km_sim2_truth_(const km_sim2 *s, const km_sim_event **ev)
{
    *ev = s->ev;
    return s->nev;
}

void km_sim2_ball_truth_(const km_sim2 *s, double t, double *x, double *y, double *f)
{
    s2_state st;
    s2_state_at(s, t, &st);
    *x = st.x;
    *y = st.y;
    *f = st.ball_n;
}

/* Body pressure (kPa) at (x, y) for indentation delta (mm). */
static double s2_body_p(const km_sim2 *s, double x, double y, double delta, const s2_state *st)
{
    double best = 0;
    double drape = 0;
    if (st->ball_n > 0.5) {
        double r2 = (x - st->x) * (x - st->x) + (y - st->y) * (y - st->y);
        drape = s->drape_h * st->drape_mul * fmin(1.0, st->ball_n / 40.0) *
                exp(-r2 / (2 * s->drape_s * s->drape_s));
    }
    for (int i = 0; i < 3; i++) {
        double dx = x - s->seg_x[i], dy = y - s->seg_y[i];
        double h = dx * dx / (2 * s->seg_rx[i]) + dy * dy / (2 * s->seg_ry[i]);
        double d = delta + s->seg_up[i] - h - drape;
        if (d > best)
            best = d;
    }
    return s->k_body * best * 1e-3 * 1e-3; /* Pa/m * mm -> kPa */
}

/* s->press through the FSR matrix: response, RC lag, ghosting, creep,
 * common-mode noise, ADC. */
static void s2_sensor(km_sim2 *s, double t, km_frame *f)
{
    const km_sim_params *p = &s->p;
    const int rows = p->rows, cols = p->cols;
    double dt = s->n ? t - s->t_last : 0;
    s->t_last = t;
    double a_lag = s->lag_s > 0 && s->n ? 1 - exp(-dt / s->lag_s) : 1;
    double creep = 1 + s->creep10 * log10(1 + t / 6.0) / log10(101.0);
    memset(s->row, 0, sizeof(double) * rows);
    memset(s->col, 0, sizeof(double) * cols);
    double total = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int i = r * cols + c;
            double v = s->press[i] > 0 ? pow(s->press[i] / 10.0, s->beta) * 10.0 : 0;
            s->state[i] += (float)((v - s->state[i]) * a_lag);
            s->row[r] += s->state[i];
            s->col[c] += s->state[i];
            total += s->state[i];
        }
    const int maxc = (1 << p->adc_bits) - 1;
    const double lsb = p->full_scale_kpa / maxc;
    double cm = s->cm_noise * normal(&s->noise);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int i = r * cols + c;
            double v = s->state[i] * s->gain[i] * creep;
            if (total > 0)
                v += s->ghost * s->row[r] * s->col[c] / total;
            v += cm + (0.6 * p->noise_kpa + 0.008 * v) * normal(&s->noise);
            if (v < 0.3)
                v = 0;
            long cnt = lround(v / lsb);
            uint8_t fl = 0;
            if (cnt >= maxc) {
                cnt = maxc;
                fl |= KM_CELL_SATURATED;
            }
            f->raw[i] = (uint16_t)cnt;
            f->kpa[i] = (float)(cnt * lsb);
            f->cell_flags[i] = fl;
        }
}

int km_sim2_next_(km_sim2 *s, km_frame *f)
{
    const km_sim_params *p = &s->p;
    double t = s->next_t;
    if (p->duration_s > 0 && t >= p->duration_s - 1e-9)
        return KM_EEOF;
    int rc = km_frame_reset(f, p->rows, p->cols, p->pitch_mm);
    if (rc)
        return rc;
    /* the next scan: the nominal period, gamma-jittered, rarely a missed one */
    double period = 1.0 / p->rate_hz;
    double j = p->jitter > 0 ? p->jitter * (expo(&s->noise, 1.0) + expo(&s->noise, 1.0) - 2) : 0;
    s->next_t = t + period * fmax(0.2, 1 + j) * (u01(&s->noise) < 0.002 ? 2 : 1);

    s2_state st;
    s2_state_at(s, t, &st);
    const int rows = p->rows, cols = p->cols;
    const double pitch = p->pitch_mm, cell_m2 = pitch * pitch * 1e-6;
    double body_n = fmax(0.0, s->trunk_n * st.trunk_mul - st.ball_n);
    /* solve the indentation by bisection: the body's pressures carry body_n */
    double lo = 0, hi = 60;
    for (int it = 0; it < 18; it++) {
        double mid = 0.5 * (lo + hi), sum = 0;
        for (int r = 1; r < rows; r += 3)
            for (int c = 1; c < cols; c += 3)
                sum += s2_body_p(s, c * pitch, r * pitch, mid, &st);
        sum *= 9 * cell_m2 * 1e3; /* every 9th cell, kPa -> N; the exact sum rescales below */
        if (sum > body_n)
            hi = mid;
        else
            lo = mid;
    }
    double delta = 0.5 * (lo + hi), sum = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double v = s2_body_p(s, c * pitch, r * pitch, delta, &st);
            s->press[r * cols + c] = (float)v;
            sum += v * cell_m2 * 1e3;
        }
    double scale = sum > 0 ? body_n / sum : 0;
    for (int i = 0; i < rows * cols; i++)
        s->press[i] = (float)(s->press[i] * scale);
    /* the ball: parabolic pressure on the foam, radius from F = k pi R d^2 */
    if (st.ball_n > 0.05) {
        double d = sqrt(st.ball_n / (s->k_ball * M_PI * s->ball_r)); /* m */
        double a = sqrt(2 * s->ball_r * d) * 1e3;                      /* mm */
        double pk = s->k_ball * d * 1e-3;                              /* kPa */
        int c0 = (int)floor((st.x - a) / pitch), c1 = (int)ceil((st.x + a) / pitch);
        int r0 = (int)floor((st.y - a) / pitch), r1 = (int)ceil((st.y + a) / pitch);
        for (int r = r0 < 0 ? 0 : r0; r <= r1 && r < rows; r++)
            for (int c = c0 < 0 ? 0 : c0; c <= c1 && c < cols; c++) {
                double acc = 0;
                for (int k = 0; k < 9; k++) {
                    double x = (c - 1.0 / 3 + (k % 3) / 3.0) * pitch - st.x;
                    double y = (r - 1.0 / 3 + (k / 3) / 3.0) * pitch - st.y;
                    double q = 1 - (x * x + y * y) / (a * a);
                    if (q > 0)
                        acc += pk * q;
                }
                s->press[r * cols + c] += (float)(acc / 9);
            }
    }
    s2_sensor(s, t, f);
    f->seq = s->n;
    f->device_ns = (int64_t)llround(t * 1e9);
    f->flags = KM_FRAME_HAS_RAW;
    km_frame_count_flags(f);
    s->n++;
    return KM_OK;
}
