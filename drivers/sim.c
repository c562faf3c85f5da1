/* sim.c: the simulated mat (sim://). A person lies supine with an acupressure
 * ball under a back muscle; the mat sees a broad body imprint and the ball's
 * small intense contact patch, with the body lifted off the mat around it.
 *
 * Everything is deterministic from the seed: the event plan (ground truth) is
 * drawn at creation, then each frame is a pure function of time and the state
 * carried by the sensor model (creep, hysteresis). Numbers and sources are in
 * docs/simulator.md; the short version:
 *   - load on the mat: the upper-trunk share of body weight (0.30 m g);
 *   - ball: 10 % of body weight (+-30 % per seed), Hertz contact
 *     a = (3 F R / 4 E*)^(1/3) with E* = 1 MPa (rubber ball on a foam-covered
 *     mat), pressure p0 sqrt(1 - r^2/a^2), p0 = 3F / (2 pi a^2);
 *   - body lifted within ~90 mm of the ball (drape of soft tissue);
 *   - breathing 0.2-0.33 Hz, +-2 % of load (+-4 % on the ball); BCG heartbeat
 *     1.0-1.33 Hz, H-I-J-K complex, 0.4 % of load;
 *   - sensor: per-cell creep to +7..19 % (tau 60 s), peak-hold hysteresis 4 %
 *     (tau 3 s), noise 0.15 kPa + 1 %, 0.2 kPa turn-on threshold, 12-bit ADC
 *     over 300 kPa with saturation, 0.5 % dead cells, 6 % row/column crosstalk.
 * Events (drawn per event from the seed; docs/detection.md "Signal model"):
 * spasm = a burst of 1-3 shrinking twitches, each monophasic (contraction
 * 47-102 ms, half-relaxation 41-150 ms), biphasic, or a damped 3-12 Hz
 * oscillation, either sign first, 4-25 % of the ball's force; release = from
 * an onset the ball force falls 10-30 %, exponential or logistic, time
 * constant 1-5 s, while the lifted zone shrinks; passive stress relaxation
 * after every loading (bi-exponential, levels off within ~20 s); confounders:
 * cough, talk, shift, roll off, settling. Sensor extras: a first-order lag of
 * `lag` frames and frame intervals jittered by `jitter` of a period.
 * May touch: its own memory only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "knotmat/sim.h"
#include "sim2_private.h"
#include "source_private.h"

#define G 9.80665
#define MAX_EVENTS 64
#define SIM_LIVE_CYCLE_S 150.0 /* a live sim:// plays its scenario again every 150 s */
#define SIM_MOVE_ON_MIN_S 8.0  /* live: off the ball 8-15 s after a release */
#define SIM_MOVE_ON_MAX_S 15.0
#define SIM_NEXT_SPOT_MM 50.0  /* live: the next spot, this far down the back */

/* ---- deterministic random numbers (splitmix64 + xoshiro256**) ----------- */

typedef struct { uint64_t s[4]; } rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }
static double rng_range(rng_t *r, double a, double b) { return a + (b - a) * rng_unit(r); }

static double rng_gauss(rng_t *r)
{
    double u = rng_unit(r), v = rng_unit(r);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* ---- scenarios ---------------------------------------------------------- */

static const char *const scenario_names[] = {
    "release", "no_release", "roll_off", "cough", "restless", "talk",
    "settle", "shift_release", "double", "busy", NULL};

static const char *const scenario_help[] = {
    "hold on the ball, one or two twitches, then the muscle lets go",
    "hold the whole session, no twitch, no release (creep and breathing only)",
    "hold, roll off the ball, lie beside it, get back on elsewhere; no release",
    "hold with bouts of coughing; no twitch, no release",
    "hold while fidgeting and shifting every few seconds; no twitch, no release",
    "talking on and off during the hold, then a twitch and a release",
    "the body settles slowly and the sensor creeps strongly; no release",
    "a large shift with the ball mid-hold, then a twitch and a release",
    "two spots: twitch and release on one, move to a second, again",
    "coughs, talking and fidgets around a twitch and a release",
};

const char *const *km_sim_scenarios(void) { return scenario_names; }

const char *const *km_sim_model_scenarios(int model)
{
    return model == 2 ? km_sim2_scenarios_() : scenario_names;
}

const char *km_sim_model_help(int model, const char *name)
{
    return model == 2 ? km_sim2_scenario_help_(name) : km_sim_scenario_help(name);
}

const char *km_sim_scenario_help(const char *name)
{
    for (int i = 0; scenario_names[i]; i++)
        if (!strcmp(scenario_names[i], name))
            return scenario_help[i];
    return NULL;
}

const char *km_sim_event_name(enum km_sim_event_type t)
{
    switch (t) {
    case KM_SIM_ON_BALL: return "on_ball";
    case KM_SIM_SPASM: return "spasm";
    case KM_SIM_RELEASE: return "release";
    case KM_SIM_COUGH: return "cough";
    case KM_SIM_TALK: return "talk";
    case KM_SIM_SHIFT: return "shift";
    case KM_SIM_ROLL_OFF: return "roll_off";
    case KM_SIM_OFF_BALL: return "off_ball";
    }
    return "?";
}

/* ---- parameters --------------------------------------------------------- */

void km_sim_params_default(km_sim_params *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->scenario, sizeof p->scenario, "release");
    p->seed = 1;
    p->rows = 32;
    p->cols = 32;
    p->pitch_mm = 12.7f;
    p->rate_hz = 100;
    p->duration_s = 120;
    p->ball_mm = 63;
    p->weight_kg = 70;
    p->full_scale_kpa = 300;
    p->adc_bits = 12;
    p->noise_kpa = 0.15;
    p->creep = -1;
    p->dead_fraction = 0.005;
    p->flag_dead = 1;
    p->model = 1;
}

static int parse_num(const char *v, double lo, double hi, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x) || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

int km_sim_params_set(km_sim_params *p, const char *key, const char *value, char *err,
                      size_t errlen)
{
    double x;
#define NUM(name, lo, hi, field, cast)                                                          \
    if (!strcmp(key, name)) {                                                                   \
        if (parse_num(value, lo, hi, &x)) {                                                     \
            km_errf_(err, errlen, "sim: %s=%s out of range [%g, %g]", name, value, (double)lo,  \
                     (double)hi);                                                               \
            return KM_EINVAL;                                                                   \
        }                                                                                       \
        p->field = (cast)x;                                                                     \
        return KM_OK;                                                                           \
    }
    if (!strcmp(key, "model")) {
        if (strcmp(value, "1") && strcmp(value, "2")) {
            km_errf_(err, errlen, "sim: model=%s: 1 (sim://) or 2 (sim2://)", value);
            return KM_EINVAL;
        }
        p->model = value[0] - '0';
        if (p->model == 2 && !km_sim2_scenario_help_(p->scenario))
            snprintf(p->scenario, sizeof p->scenario, "session");
        if (p->model == 1 && !km_sim_scenario_help(p->scenario))
            snprintf(p->scenario, sizeof p->scenario, "release");
        return KM_OK;
    }
    if (!strcmp(key, "scenario")) {
        if (p->model == 2 ? !km_sim2_scenario_help_(value) : !km_sim_scenario_help(value)) {
            km_errf_(err, errlen, "sim: unknown scenario '%s' (try: knotmat simulate --list)",
                     value);
            return KM_EUNSUPPORTED;
        }
        snprintf(p->scenario, sizeof p->scenario, "%s", value);
        return KM_OK;
    }
    NUM("seed", 0, 1e18, seed, uint64_t)
    NUM("rows", 8, 512, rows, uint16_t)
    NUM("cols", 8, 512, cols, uint16_t)
    NUM("pitch", 0.5, 100, pitch_mm, float)
    NUM("pitch_mm", 0.5, 100, pitch_mm, float)
    NUM("rate", 1, 10000, rate_hz, double)
    NUM("rate_hz", 1, 10000, rate_hz, double)
    NUM("duration", 0, 86400, duration_s, double)
    NUM("ball", 20, 200, ball_mm, double)
    NUM("ball_mm", 20, 200, ball_mm, double)
    NUM("weight", 20, 250, weight_kg, double)
    NUM("weight_kg", 20, 250, weight_kg, double)
    NUM("full_scale", 10, 10000, full_scale_kpa, double)
    NUM("bits", 8, 16, adc_bits, int)
    NUM("noise", 0, 50, noise_kpa, double)
    NUM("creep", -1, 1, creep, double)
    NUM("dead", 0, 0.5, dead_fraction, double)
    NUM("flag_dead", 0, 1, flag_dead, int)
    NUM("lag", 0, 10, lag_frames, double)
    NUM("jitter", 0, 0.45, jitter, double)
#undef NUM
    km_errf_(err, errlen, "sim: unknown parameter '%s'", key);
    return KM_EINVAL;
}

/* ---- the model ---------------------------------------------------------- */

/* One twitch of a burst (twitch_shape() below): start, signed amplitude,
 * contraction and half-relaxation times, oscillation frequency or the
 * opposite lobe's share, envelope time constant, shape. */
typedef struct {
    double t, amp, tc, thr, f, tau;
    int shape;
} twitch_t;

/* A shift of body (and ball) position: linear over [t, t+dur]. */
typedef struct {
    double t, dur, dx, dy, bdx, bdy; /* body moves dx,dy; ball moves bdx,bdy */
    double dforce;                   /* relative change of ball force after the shift */
} move_t;

struct km_sim {
    km_sim_params p;
    double horizon;  /* the plan's length: duration_s, or one live cycle */
    int64_t cycle;   /* live: which cycle is planned */
    double cycle_t0; /* live: when it began */
    km_sim2 *m2;     /* model 2: everything below is unused */
    rng_t rng;       /* per-frame noise */
    uint64_t n;      /* frames made */
    /* geometry */
    double mat_w, mat_h;       /* mm */
    double body_cx0, body_cy0; /* body centre at t = 0, mm */
    double ball_x0, ball_y0;   /* ball centre at t = 0, mm */
    /* loads */
    double w_mat;      /* N on the mat (trunk share) */
    double f_ball;     /* N on the ball while engaged */
    double lift_r;     /* mm, radius of the lifted zone */
    double e_star;     /* Pa */
    /* physiology */
    double breath_hz, breath_amp, heart_hz;
    double creep_c;
    /* plan */
    km_sim_event ev[MAX_EVENTS];
    size_t nev;
    move_t moves[MAX_EVENTS];
    size_t nmoves;
    /* ball on/off intervals: engaged between on_t[i] and off_t[i] */
    double on_t[8], off_t[8];
    int off_is_roll[8];
    int non;
    /* twitch bursts: individual twitches, each of its own shape */
    twitch_t tw[32];
    int ntw;
    /* passive stress relaxation after each loading */
    double relax_a1, relax_t1, relax_a2, relax_t2;
    /* sensor state */
    float *body_shape;  /* cached body imprint shape for the current pose */
    double shape_cx, shape_cy, shape_sum;
    float *truth;       /* true pressure this frame */
    float *creep;       /* per-cell creep state */
    float *peak;        /* per-cell peak-hold for hysteresis */
    float *lagged;      /* per-cell first-order sensor lag state */
    uint8_t *dead;
    double t_prev;
};

static double smoothstep(double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    return x * x * (3 - 2 * x);
}

/* Body imprint shape (unnormalised) at (x, y) for a body centred at (cx, cy):
 * a trunk plateau with soft edges (shoulder width ~ 360 mm), the scapulae as
 * two broad bumps, and slightly less load over the spine. */
static double body_shape_at(double x, double y, double cx, double cy)
{
    double dx = (x - cx) / 180.0, dy = (y - cy) / 420.0;
    double d = pow(pow(fabs(dx), 4) + pow(fabs(dy), 4), 0.25);
    double plateau = 1.0 / (1.0 + exp((d - 1.0) / 0.06));
    double s1 = exp(-(pow(x - (cx - 85), 2) + pow(y - (cy - 70), 2)) / (2 * 50.0 * 50.0));
    double s2 = exp(-(pow(x - (cx + 85), 2) + pow(y - (cy - 70), 2)) / (2 * 50.0 * 50.0));
    double spine = 1.0 - 0.25 * exp(-pow(x - cx, 2) / (2 * 14.0 * 14.0));
    return plateau * (0.55 + 0.8 * (s1 + s2)) * spine;
}

static void cache_body_shape(km_sim *s, double cx, double cy)
{
    if (fabs(cx - s->shape_cx) < 0.05 && fabs(cy - s->shape_cy) < 0.05)
        return;
    double pitch = s->p.pitch_mm, sum = 0;
    for (int r = 0; r < s->p.rows; r++)
        for (int c = 0; c < s->p.cols; c++) {
            double v = body_shape_at(c * pitch, r * pitch, cx, cy);
            s->body_shape[r * s->p.cols + c] = (float)v;
            sum += v;
        }
    s->shape_cx = cx;
    s->shape_cy = cy;
    s->shape_sum = sum;
}

static void add_event(km_sim *s, enum km_sim_event_type type, double t, double dur, double mag)
{
    if (s->nev >= MAX_EVENTS || t >= s->horizon - 0.5)
        return;
    km_sim_event *e = &s->ev[s->nev++];
    e->type = type;
    e->t_s = t;
    e->duration_s = dur;
    e->magnitude = mag;
}

static void add_move(km_sim *s, double t, double dur, double dx, double dy, double ball_follow,
                     double dforce)
{
    if (s->nmoves >= MAX_EVENTS)
        return;
    move_t *m = &s->moves[s->nmoves++];
    m->t = t;
    m->dur = dur;
    m->dx = dx;
    m->dy = dy;
    m->bdx = dx * ball_follow;
    m->bdy = dy * ball_follow;
    m->dforce = dforce;
}

/* A move of the body by (dx, dy) that takes the ball by (bdx, bdy), mm. */
static void add_move_ball(km_sim *s, double t, double dur, double dx, double dy, double bdx,
                          double bdy)
{
    if (s->nmoves >= MAX_EVENTS)
        return;
    add_move(s, t, dur, dx, dy, 0, 0);
    s->moves[s->nmoves - 1].bdx = bdx;
    s->moves[s->nmoves - 1].bdy = bdy;
}

/* Shapes of one twitch (docs/detection.md): 0 monophasic (raised-cosine
 * contraction over tc, exponential relaxation with half-time thr), 1 biphasic
 * (the same followed by an opposite lobe of 40-80 %), 2 damped oscillation
 * (f Hz, envelope time constant tau). Unit peak; the sign is in amp. */
static double twitch_shape(int shape, double u, double tc, double thr, double f, double tau)
{
    if (u <= 0)
        return 0;
    if (shape == 2)
        return u < 8 * tau ? sin(2 * M_PI * f * u) * exp(-u / tau) / 0.8 : 0;
    double one = u < tc ? 0.5 - 0.5 * cos(M_PI * u / tc) : exp2(-(u - tc) / thr);
    if (shape == 1) {
        double u2 = u - (tc + thr);
        if (u2 > 0)
            one -= f * (u2 < tc ? 0.5 - 0.5 * cos(M_PI * u2 / tc) : exp2(-(u2 - tc) / thr));
    }
    return u < tc + 10 * thr + (shape == 1 ? tc + thr : 0) ? one : 0;
}

static void add_spasm(km_sim *s, rng_t *r, double t)
{
    /* bursts of 1-3 that shrink (Cruz-Montecinos 2021: the 3rd < the 1st) */
    int n = 1 + (rng_unit(r) < 0.5) + (rng_unit(r) < 0.2);
    double amp = rng_range(r, 0.04, 0.25), sign = rng_unit(r) < 0.5 ? -1 : 1;
    int shape = (int)(rng_unit(r) * 3);
    double tt = t, end = t, amp0 = amp;
    for (int i = 0; i < n && s->ntw < 32; i++) {
        twitch_t *w = &s->tw[s->ntw++];
        w->t = tt;
        w->shape = shape;
        w->tc = rng_range(r, 0.047, 0.102);
        w->thr = rng_range(r, 0.041, 0.150);
        if (shape == 1)
            w->f = rng_range(r, 0.4, 0.8); /* the opposite lobe's share */
        else
            w->f = rng_range(r, 3.0, 12.0);
        w->tau = rng_range(r, 0.02, 0.2);
        w->amp = sign * amp;
        double len = shape == 2 ? 3 * w->tau + 0.5 / w->f
                                : w->tc + 3 * w->thr + (shape == 1 ? w->tc + 3 * w->thr : 0);
        if (len < 0.06)
            len = 0.06;
        if (len > 0.6)
            len = 0.6;
        end = tt + len;
        amp *= rng_range(r, 0.5, 0.9);
        tt += rng_range(r, 0.1, 0.3);
    }
    add_event(s, KM_SIM_SPASM, t, end - t, sign * amp0);
}

/* A release from its onset t_on: exponential (1 - e^-u/tau) or logistic
 * (midpoint 1.5 tau after the onset), tau 1-5 s, 10-30 % of the ball force.
 * duration_s: the shape's time constant, negative for the logistic. */
static void add_release(km_sim *s, rng_t *r, double t_on)
{
    double tau = rng_range(r, 1.0, 5.0);
    add_event(s, KM_SIM_RELEASE, t_on, rng_unit(r) < 0.5 ? tau : -tau,
              rng_range(r, 0.10, 0.30));
}

/* 0..1: how far a release of time constant `tau` (< 0: logistic) has gone
 * u seconds after its onset. */
static double release_k(double u, double tau)
{
    if (u <= 0)
        return 0;
    if (tau > 0)
        return 1 - exp(-u / tau);
    double tl = -tau / 2, l0 = 1 / (1 + exp(3.0));
    return (1 / (1 + exp(-(u - 3 * tl) / tl)) - l0) / (1 - l0);
}

static void add_coughs(km_sim *s, rng_t *r, double t0, double t1, int bouts)
{
    for (int b = 0; b < bouts; b++) {
        double t = rng_range(r, t0, t1);
        int n = 1 + (int)(rng_unit(r) * 3);
        for (int i = 0; i < n; i++)
            add_event(s, KM_SIM_COUGH, t + i * rng_range(r, 0.4, 0.7), rng_range(r, 0.2, 0.4),
                      rng_range(r, 0.05, 0.12));
    }
}

static void add_talk(km_sim *s, rng_t *r, double t0, double t1, int spells)
{
    for (int i = 0; i < spells; i++)
        add_event(s, KM_SIM_TALK, rng_range(r, t0, t1), rng_range(r, 4, 12),
                  rng_range(r, 0.004, 0.012));
}

static void add_fidgets(km_sim *s, rng_t *r, double t0, double t1, double every)
{
    for (double t = t0 + rng_range(r, 0, every); t < t1; t += rng_range(r, 0.6, 1.4) * every) {
        double a = rng_range(r, 0, 2 * M_PI), d = rng_range(r, 4, 12);
        double dur = rng_range(r, 0.4, 1.0);
        add_move(s, t, dur, d * cos(a), d * sin(a), 0.5, rng_range(r, -0.06, 0.06));
        add_event(s, KM_SIM_SHIFT, t, dur, d);
    }
}

void km_sim_events_sort_(km_sim_event *ev, size_t n)
{
    /* insertion sort: a few dozen events, stable, and no allocation (a live
     * sim plans again inside km_sim_next) */
    for (size_t i = 1; i < n; i++) {
        km_sim_event e = ev[i];
        size_t j = i;
        while (j > 0 && ev[j - 1].t_s > e.t_s) {
            ev[j] = ev[j - 1];
            j--;
        }
        ev[j] = e;
    }
}

/* Body (bx,by) and ball (x,y) position and the ball-force factor from moves. */
static void pose_at(const km_sim *s, double t, double *bx, double *by, double *x, double *y,
                    double *fmul)
{
    double cx = s->body_cx0, cy = s->body_cy0, px = s->ball_x0, py = s->ball_y0, f = 1;
    for (size_t i = 0; i < s->nmoves; i++) {
        const move_t *m = &s->moves[i];
        if (t <= m->t)
            continue;
        double k = smoothstep((t - m->t) / m->dur);
        cx += k * m->dx;
        cy += k * m->dy;
        px += k * m->bdx;
        py += k * m->bdy;
        f *= 1 + k * m->dforce;
    }
    *bx = cx;
    *by = cy;
    *x = px;
    *y = py;
    *fmul = f;
}

/* Live: the person moves on once the knot has let go (8-15 s after the
 * last release; without a release they stay to the cycle's end), and
 * every cycle begins on another spot: the other side of the spine on odd
 * cycles, SIM_NEXT_SPOT_MM lower on every second pair, so a cycle's hold is a
 * new hold and not the spot just held (issue 14: no new hold on a spent spot). */
static void live_cycle_ends(km_sim *s, rng_t *r, double T)
{
    int last = s->non - 1;
    double t_off = T - 4;
    for (size_t i = 0; i < s->nev; i++)
        if (s->ev[i].type == KM_SIM_RELEASE && s->ev[i].t_s > s->on_t[last])
            t_off = fmin(t_off,
                         s->ev[i].t_s + rng_range(r, SIM_MOVE_ON_MIN_S, SIM_MOVE_ON_MAX_S));
    if (s->off_t[last] > t_off) {
        s->off_t[last] = t_off;
        add_event(s, KM_SIM_OFF_BALL, t_off, 1.0, 0);
    }
    double margin = 3 * s->p.pitch_mm;
    double x = s->cycle % 2 ? 2 * s->body_cx0 - s->ball_x0 : s->ball_x0;
    double y = s->ball_y0 + ((s->cycle / 2) % 2 ? SIM_NEXT_SPOT_MM : 0);
    x = fmin(fmax(x, margin), s->mat_w - margin);
    y = fmin(fmax(y, margin), s->mat_h - margin);
    add_move_ball(s, 0, 0.5, 0, 0, x - s->ball_x0, y - s->ball_y0); /* placed before settling on */
}

static void plan(km_sim *s)
{
    rng_t r;
    rng_seed(&r, (s->p.seed + (uint64_t)s->cycle * 7919u) * 0x9e3779b97f4a7c15ull + 17);
    const char *sc = s->p.scenario;
    double T = s->horizon;
    double t_on = rng_range(&r, 1.0, 4.0);
    s->on_t[0] = t_on;
    s->off_t[0] = 1e30;
    s->non = 1;
    add_event(s, KM_SIM_ON_BALL, t_on, 1.5, 0);
    double hold0 = t_on + 1.5;

    if (!strcmp(sc, "release") || !strcmp(sc, "talk") || !strcmp(sc, "busy")) {
        double ts = hold0 + rng_range(&r, 28, 50);
        add_spasm(s, &r, ts);
        if (rng_unit(&r) < 0.3) {
            ts += rng_range(&r, 2.5, 8);
            add_spasm(s, &r, ts);
        }
        add_release(s, &r, ts + rng_range(&r, 5, 12));
        if (!strcmp(sc, "talk"))
            add_talk(s, &r, hold0, T - 10, 4);
        if (!strcmp(sc, "busy")) {
            add_talk(s, &r, hold0, T - 10, 2);
            add_coughs(s, &r, hold0, T - 5, 3);
            add_fidgets(s, &r, hold0 + 5, T - 5, 20);
        }
    } else if (!strcmp(sc, "no_release")) {
        /* nothing but the hold */
    } else if (!strcmp(sc, "roll_off")) {
        double t = hold0 + rng_range(&r, 20, 45);
        double side = rng_unit(&r) < 0.5 ? -1 : 1;
        s->off_t[0] = t;
        s->off_is_roll[0] = 1;
        add_event(s, KM_SIM_ROLL_OFF, t, 1.0, 0);
        /* the body rolls a little, the ball rolls out from under it */
        add_move_ball(s, t, 1.0, side * 25, 0, side * 110, rng_range(&r, -20, 20));
        double back = t + rng_range(&r, 6, 12);
        /* the person puts the ball back under another spot */
        double body_dy = rng_range(&r, -30, 30), ball_dx = -side * 110 + rng_range(&r, -25, 25);
        add_move_ball(s, back - 1.5, 1.0, -side * 15, body_dy, ball_dx, rng_range(&r, -40, 40));
        s->on_t[1] = back;
        s->off_t[1] = 1e30;
        s->non = 2;
        add_event(s, KM_SIM_ON_BALL, back, 1.5, 0);
    } else if (!strcmp(sc, "cough")) {
        add_coughs(s, &r, hold0, T - 3, 5);
    } else if (!strcmp(sc, "restless")) {
        add_fidgets(s, &r, hold0 + 2, T - 3, 7);
    } else if (!strcmp(sc, "settle")) {
        s->creep_c = 0.19;
        /* slow settling: modelled in the force law, see frame_force() */
    } else if (!strcmp(sc, "shift_release")) {
        double t = hold0 + rng_range(&r, 10, 25);
        double a = rng_range(&r, 0, 2 * M_PI), d = rng_range(&r, 20, 40);
        add_move(s, t, rng_range(&r, 0.8, 1.6), d * cos(a), d * sin(a), 0.5,
                 rng_range(&r, -0.2, 0.2));
        add_event(s, KM_SIM_SHIFT, t, 1.2, d);
        double ts = t + rng_range(&r, 25, 40);
        add_spasm(s, &r, ts);
        add_release(s, &r, ts + rng_range(&r, 5, 12));
    } else if (!strcmp(sc, "double")) {
        double ts = hold0 + rng_range(&r, 20, 30);
        add_spasm(s, &r, ts);
        double tr = ts + rng_range(&r, 5, 10);
        add_release(s, &r, tr);
        double toff = tr + rng_range(&r, 8, 12);
        s->off_t[0] = toff;
        add_event(s, KM_SIM_OFF_BALL, toff, 1.0, 0);
        double dx = rng_range(&r, 40, 80) * (rng_unit(&r) < 0.5 ? -1 : 1);
        double dy = rng_range(&r, -60, 60);
        add_move_ball(s, toff + 0.5, 1.5, 0, 0, dx, dy);
        double ton = toff + rng_range(&r, 3, 6);
        s->on_t[1] = ton;
        s->off_t[1] = 1e30;
        s->non = 2;
        add_event(s, KM_SIM_ON_BALL, ton, 1.5, 0);
        double ts2 = ton + 1.5 + rng_range(&r, 15, 25);
        add_spasm(s, &r, ts2);
        add_release(s, &r, ts2 + rng_range(&r, 5, 10));
    }
    if (s->p.duration_s <= 0)
        live_cycle_ends(s, &r, T);
    km_sim_events_sort_(s->ev, s->nev);
    for (size_t i = 0; i < s->nev; i++) {
        double bx, by, fm;
        pose_at(s, s->ev[i].t_s, &bx, &by, &s->ev[i].x_mm, &s->ev[i].y_mm, &fm);
    }
}

int km_sim_new(const km_sim_params *p, km_sim **out, char *err, size_t errlen)
{
    *out = NULL;
    if (p->model == 2 && !km_sim2_scenario_help_(p->scenario)) {
        km_errf_(err, errlen, "sim2: unknown scenario '%s' (try: knotmat simulate --list)",
                 p->scenario);
        return KM_EUNSUPPORTED;
    }
    km_sim *s = calloc(1, sizeof *s);
    if (!s)
        return KM_ENOMEM;
    s->p = *p;
    if (p->model == 2) {
        int rc = km_sim2_new_(p, &s->m2);
        if (rc) {
            free(s);
            return rc;
        }
        *out = s;
        return KM_OK;
    }
    uint32_t cells = (uint32_t)p->rows * p->cols;
    s->body_shape = calloc(cells, sizeof(float));
    s->truth = calloc(cells, sizeof(float));
    s->creep = calloc(cells, sizeof(float));
    s->peak = calloc(cells, sizeof(float));
    s->lagged = calloc(cells, sizeof(float));
    s->dead = calloc(cells, 1);
    if (!s->body_shape || !s->truth || !s->creep || !s->peak || !s->dead || !s->lagged) {
        km_sim_free(s);
        return KM_ENOMEM;
    }
    rng_t r;
    rng_seed(&r, p->seed);
    s->mat_w = (p->cols - 1) * (double)p->pitch_mm;
    s->mat_h = (p->rows - 1) * (double)p->pitch_mm;
    /* body centred across, the scapular region over the mat */
    s->body_cx0 = s->mat_w / 2 + rng_range(&r, -15, 15);
    s->body_cy0 = s->mat_h / 2 + 60 + rng_range(&r, -15, 15);
    /* ball under a muscle beside the spine (rhomboid / trapezius region),
     * never within 3 cells of the mat's edge */
    double side = rng_unit(&r) < 0.5 ? -1 : 1;
    double margin = 3 * p->pitch_mm;
    s->ball_x0 = fmin(fmax(s->body_cx0 + side * rng_range(&r, 45, 75), margin), s->mat_w - margin);
    s->ball_y0 = fmin(fmax(s->body_cy0 - rng_range(&r, 40, 90), margin), s->mat_h - margin);
    s->w_mat = 0.30 * p->weight_kg * G;
    s->f_ball = 0.10 * p->weight_kg * G * rng_range(&r, 0.7, 1.3);
    s->lift_r = rng_range(&r, 75, 100) * (p->ball_mm / 63.0);
    s->e_star = 1.0e6;
    s->breath_hz = rng_range(&r, 0.2, 0.33);
    s->breath_amp = rng_range(&r, 0.015, 0.025);
    s->heart_hz = rng_range(&r, 1.0, 1.33);
    s->creep_c = p->creep >= 0 ? p->creep : rng_range(&r, 0.04, 0.19);
    /* passive stress relaxation of muscle under indentation: bi-exponential,
     * levels off ~20 s after loading (docs/detection.md) */
    s->relax_a1 = rng_range(&r, 0.02, 0.05);
    s->relax_t1 = rng_range(&r, 1.0, 3.0);
    s->relax_a2 = rng_range(&r, 0.02, 0.05);
    s->relax_t2 = rng_range(&r, 4.0, 7.0);
    for (uint32_t i = 0; i < cells; i++)
        s->dead[i] = rng_unit(&r) < p->dead_fraction;
    s->shape_cx = s->shape_cy = -1e9;
    s->horizon = p->duration_s > 0 ? p->duration_s : SIM_LIVE_CYCLE_S;
    plan(s);
    rng_seed(&s->rng, p->seed ^ 0xa5a5a5a5deadbeefull);
    *out = s;
    (void)err;
    (void)errlen;
    return KM_OK;
}

void km_sim_free(km_sim *s)
{
    if (!s)
        return;
    km_sim2_free_(s->m2);
    free(s->body_shape);
    free(s->truth);
    free(s->creep);
    free(s->peak);
    free(s->lagged);
    free(s->dead);
    free(s);
}

size_t km_sim_truth(const km_sim *s, const km_sim_event **events)
{
    if (s->m2)
        return km_sim2_truth_(s->m2, events);
    *events = s->ev;
    return s->nev;
}

const km_sim_params *km_sim_get_params(const km_sim *s) { return &s->p; }

/* Ball engagement 0..1 (ramps over 1.5 s on, 1 s off). */
static double engaged_at(const km_sim *s, double t)
{
    double e = 0;
    for (int i = 0; i < s->non; i++) {
        double on = smoothstep((t - s->on_t[i]) / 1.5);
        double off = 1 - smoothstep((t - s->off_t[i]) / 1.0);
        double v = on * off;
        if (v > e)
            e = v;
    }
    return e;
}

/* Heartbeat BCG complex (H, I, J, K waves) for phase in beats. */
static double bcg(double beats)
{
    double ph = beats - floor(beats), t = ph; /* in beats ~ seconds at 60 bpm */
    static const double off[4] = {0.10, 0.17, 0.25, 0.33}, amp[4] = {-0.3, -0.6, 1.0, -0.5};
    double v = 0;
    for (int i = 0; i < 4; i++)
        v += amp[i] * exp(-pow(t - off[i], 2) / (2 * 0.02 * 0.02));
    return v;
}

typedef struct {
    double load_mul;  /* whole-trunk multiplier */
    double ball_f;    /* N */
    double lift_mul;  /* lifted-zone radius multiplier */
    double bx, by, x, y;
} state_t;

static void frame_state(const km_sim *s, double t_abs, state_t *st)
{
    /* breathing and the heartbeat run on; the plan runs on its cycle's time */
    double t = t_abs - s->cycle_t0;
    double fm;
    pose_at(s, t, &st->bx, &st->by, &st->x, &st->y, &fm);
    /* breathing: frequency drifts slowly, asymmetric waveform */
    double bph = 2 * M_PI * (s->breath_hz * t_abs + 0.3 * sin(2 * M_PI * t_abs / 47.0));
    double breath = sin(bph) + 0.3 * sin(2 * bph + 0.7);
    double beats = s->heart_hz * t_abs + 0.03 * sin(2 * M_PI * t_abs / 11.0);
    double load = 1 + s->breath_amp * breath + 0.004 * bcg(beats);
    double ball = 1 + 2 * s->breath_amp * breath + 0.006 * bcg(beats);
    double lift = 1;
    for (size_t i = 0; i < s->nev; i++) {
        const km_sim_event *e = &s->ev[i];
        double dt = t - e->t_s;
        switch (e->type) {
        case KM_SIM_RELEASE: {
            double k = release_k(dt, e->duration_s);
            ball *= 1 - e->magnitude * k;
            lift *= 1 - 0.25 * k;
            break;
        }
        case KM_SIM_COUGH:
            if (dt > -0.05 && dt < e->duration_s + 0.3) {
                /* sharp expiratory jolt then a rebound, whole trunk */
                double u = dt / e->duration_s;
                double w = u > 0 ? sin(M_PI * fmin(u, 1.0)) * exp(-2 * u) : 0;
                double ring = u > 0 ? 0.3 * sin(2 * M_PI * 6 * dt) * exp(-dt / 0.15) : 0;
                load *= 1 + e->magnitude * (w + ring);
                ball *= 1 + 1.2 * e->magnitude * (w + ring);
            }
            break;
        case KM_SIM_TALK:
            if (dt > 0 && dt < e->duration_s) {
                /* chest-wall vibration and syllable rhythm (3-6 Hz) */
                double v = sin(2 * M_PI * 4.1 * dt) * sin(2 * M_PI * 0.9 * dt + 1) +
                           0.5 * sin(2 * M_PI * 5.7 * dt + 2) + 0.3 * sin(2 * M_PI * 11.3 * dt);
                load *= 1 + e->magnitude * v;
                ball *= 1 + e->magnitude * v;
            }
            break;
        case KM_SIM_SHIFT:
            if (dt > 0 && dt < e->duration_s) {
                double b = sin(M_PI * dt / e->duration_s);
                load *= 1 + 0.04 * b;
                ball *= 1 + 0.08 * b * sin(2 * M_PI * dt / e->duration_s);
            }
            break;
        default:
            break;
        }
    }
    for (int i = 0; i < s->ntw; i++) {
        double dt = t - s->tw[i].t;
        if (dt > 0 && dt < 2.0)
            ball *= 1 + s->tw[i].amp * twitch_shape(s->tw[i].shape, dt, s->tw[i].tc,
                                                    s->tw[i].thr, s->tw[i].f, s->tw[i].tau);
    }
    /* passive relaxation from each loading; the tissue around the ball
     * follows a little. It lasts through the unloading (1 s): relaxed
     * tissue does not spring back the moment the person starts to lift off
     * (it recovers over seconds); ending it at off_t put an 8-10 % step up
     * into the ball force there, which the spasm detector took for a twitch */
    for (int i = 0; i < s->non; i++) {
        double u = fmin(t, s->off_t[i]) - s->on_t[i] - 1.5;
        if (u > 0 && t < s->off_t[i] + 1.0) {
            double k = s->relax_a1 * (1 - exp(-u / s->relax_t1)) +
                       s->relax_a2 * (1 - exp(-u / s->relax_t2));
            ball *= 1 - k;
            lift *= 1 - 0.5 * k;
        }
    }
    if (!strcmp(s->p.scenario, "settle")) /* tissue settles: ball force eases 6 % over minutes */
        ball *= 1 - 0.06 * (1 - exp(-t_abs / 90.0));
    st->load_mul = load;
    st->ball_f = s->f_ball * fm * ball * engaged_at(s, t);
    st->lift_mul = lift;
}

void km_sim_ball_truth(const km_sim *s, double t, double *x_mm, double *y_mm, double *force_n)
{
    if (s->m2) {
        km_sim2_ball_truth_(s->m2, t, x_mm, y_mm, force_n);
        return;
    }
    state_t st;
    frame_state(s, t, &st);
    *x_mm = st.x;
    *y_mm = st.y;
    *force_n = st.ball_f;
}

/* The body's load into s->truth: its shape with the zone the ball lifts cut
 * out, scaled so that body + ball carry the load. */
static void body_image(km_sim *s, const state_t *st)
{
    const km_sim_params *p = &s->p;
    const int rows = p->rows, cols = p->cols;
    const double pitch = p->pitch_mm;
    const uint32_t cells = (uint32_t)rows * cols;
    const double cell_m2 = pitch * pitch * 1e-6;
    double eng = st->ball_f > 0.5 ? 1 : st->ball_f / 0.5;
    double lift_r = s->lift_r * st->lift_mul;
    double r_in = p->ball_mm * 0.35;

    /* body: shape x lifted-zone mask, normalised so that body + ball = load */
    double shape_sum = 0;
    for (uint32_t i = 0; i < cells; i++) {
        double v = s->body_shape[i];
        if (eng > 0 && v > 0) {
            double dx = (i % cols) * pitch - st->x, dy = (i / cols) * pitch - st->y;
            double d = sqrt(dx * dx + dy * dy);
            if (d < lift_r)
                v *= 1 - eng * (1 - smoothstep((d - r_in) / (lift_r - r_in)));
        }
        s->truth[i] = (float)v;
        shape_sum += v;
    }
    double body_n = s->w_mat * st->load_mul - st->ball_f;
    if (body_n < 0)
        body_n = 0;
    double k = shape_sum > 0 ? body_n / (shape_sum * cell_m2 * 1e3) : 0; /* kPa per unit */
    for (uint32_t i = 0; i < cells; i++)
        s->truth[i] = (float)(s->truth[i] * k);
}

/* The ball's contact added to s->truth. */
static void ball_image(km_sim *s, const state_t *st)
{
    const km_sim_params *p = &s->p;
    const int rows = p->rows, cols = p->cols;
    const double pitch = p->pitch_mm;
    /* ball: Hertz patch integrated over each cell (4 x 4 sub-samples) */
    if (st->ball_f > 0.05) {
        double R = p->ball_mm / 2 * 1e-3;
        double a = cbrt(3 * st->ball_f * R / (4 * s->e_star)) * 1e3; /* mm */
        double p0 = 3 * st->ball_f / (2 * M_PI * a * a * 1e-6) * 1e-3; /* kPa */
        int c0 = (int)floor((st->x - a) / pitch - 1), c1 = (int)ceil((st->x + a) / pitch + 1);
        int r0 = (int)floor((st->y - a) / pitch - 1), r1 = (int)ceil((st->y + a) / pitch + 1);
        for (int r = r0 < 0 ? 0 : r0; r <= r1 && r < rows; r++)
            for (int c = c0 < 0 ? 0 : c0; c <= c1 && c < cols; c++) {
                double acc = 0;
                for (int sy = 0; sy < 4; sy++)
                    for (int sx = 0; sx < 4; sx++) {
                        double x = (c - 0.5 + (sx + 0.5) / 4) * pitch - st->x;
                        double y = (r - 0.5 + (sy + 0.5) / 4) * pitch - st->y;
                        double q = 1 - (x * x + y * y) / (a * a);
                        if (q > 0)
                            acc += p0 * sqrt(q);
                    }
                s->truth[r * cols + c] += (float)(acc / 16);
            }
    }
}

/* s->truth through the sensor (lag, hysteresis, creep, crosstalk, noise,
 * threshold, ADC) into the frame's counts and kPa. */
static void sensor_model(km_sim *s, double t, km_frame *f)
{
    const km_sim_params *p = &s->p;
    const int rows = p->rows, cols = p->cols;
    const uint32_t cells = (uint32_t)rows * cols;
    double dt = s->n ? t - s->t_prev : 0;
    s->t_prev = t;
    const double a_creep = dt / 60.0, a_peak = exp(-dt / 3.0);
    const double a_lag = p->lag_frames > 0 && s->n ? 1 - exp(-dt * p->rate_hz / p->lag_frames) : 1;
    const int maxc = (1 << p->adc_bits) - 1;
    const double lsb = p->full_scale_kpa / maxc;
    for (uint32_t i = 0; i < cells; i++) {
        /* first-order lag of the sensing element (a slow mat) */
        s->lagged[i] += (float)((s->truth[i] - s->lagged[i]) * a_lag);
        double v = s->lagged[i];
        /* hysteresis: a decaying peak-hold pulls unloading readings up */
        double pk = s->peak[i] * a_peak;
        if (v > pk)
            pk = v;
        s->peak[i] = (float)pk;
        v += 0.04 * (pk - v);
        /* creep: cells under load drift up towards creep_c, with tau 60 s */
        double target = v > 0.5 ? s->creep_c : 0;
        s->creep[i] += (float)((target - s->creep[i]) * a_creep);
        v *= 1 + s->creep[i];
        s->truth[i] = (float)v;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            uint32_t i = (uint32_t)r * cols + c;
            double v = s->truth[i];
            /* row/column crosstalk of a resistive matrix: 1.5 % from each
             * of the four neighbours */
            double nb = 0;
            if (c > 0) nb += s->truth[i - 1];
            if (c < cols - 1) nb += s->truth[i + 1];
            if (r > 0) nb += s->truth[i - cols];
            if (r < rows - 1) nb += s->truth[i + cols];
            v += 0.015 * nb;
            v += (p->noise_kpa + 0.01 * v) * rng_gauss(&s->rng);
            if (v < 0.2)
                v = 0; /* below the sensor's turn-on threshold */
            long cnt = lround(v / lsb);
            if (cnt > maxc)
                cnt = maxc;
            uint8_t fl = 0;
            if (cnt >= maxc)
                fl |= KM_CELL_SATURATED;
            if (s->dead[i]) {
                cnt = 0;
                if (p->flag_dead)
                    fl |= KM_CELL_DEAD;
            }
            f->raw[i] = (uint16_t)cnt;
            f->kpa[i] = (float)(cnt * lsb);
            f->cell_flags[i] = fl;
        }
}

int km_sim_next(km_sim *s, km_frame *f)
{
    if (s->m2)
        return km_sim2_next_(s->m2, f);
    const km_sim_params *p = &s->p;
    double t = (double)s->n / p->rate_hz;
    if (p->duration_s > 0 && t >= p->duration_s - 1e-9)
        return KM_EEOF;
    if (p->jitter > 0 && s->n) /* irregular scans, still in order */
        t += p->jitter * (rng_unit(&s->rng) * 2 - 1) / p->rate_hz;
    if (p->duration_s <= 0 && t >= s->cycle_t0 + s->horizon) {
        /* live: the story again, drawn anew (another twitch, another release) */
        s->cycle = (int64_t)floor(t / s->horizon);
        s->cycle_t0 = (double)s->cycle * s->horizon;
        s->nev = s->nmoves = 0;
        s->ntw = 0;
        s->non = 0;
        memset(s->off_is_roll, 0, sizeof s->off_is_roll);
        plan(s);
    }
    int rc = km_frame_reset(f, p->rows, p->cols, p->pitch_mm);
    if (rc)
        return rc;
    state_t st;
    frame_state(s, t, &st);
    cache_body_shape(s, st.bx, st.by);

    body_image(s, &st);
    ball_image(s, &st);
    sensor_model(s, t, f);
    f->seq = s->n;
    f->device_ns = (int64_t)llround(t * 1e9);
    f->flags = KM_FRAME_HAS_RAW;
    km_frame_count_flags(f);
    s->n++;
    return KM_OK;
}

/* ---- the sim:// source -------------------------------------------------- */

static int sim_open_model(km_source *src, const km_uri *uri, int model, char *err,
                          size_t errlen)
{
    km_sim_params p;
    km_sim_params_default(&p);
    p.model = model;
    if (model == 2)
        snprintf(p.scenario, sizeof p.scenario, "session");
    p.duration_s = 0; /* live: endless unless asked */
    if (uri->path[0]) {
        int rc = km_sim_params_set(&p, "scenario", uri->path, err, errlen);
        if (rc)
            return rc;
    }
    for (int i = 0; i < uri->nparams; i++) {
        const char *k = uri->params[i].key;
        if (!strcmp(k, "speed"))
            continue; /* handled by the generic source */
        int rc = km_sim_params_set(&p, k, uri->params[i].value, err, errlen);
        if (rc)
            return rc;
    }
    km_sim *s;
    int rc = km_sim_new(&p, &s, err, errlen);
    if (rc)
        return rc;
    src->impl = s;
    src->max_cells = (uint32_t)p.rows * p.cols;
    return KM_OK;
}

static int sim_open(km_source *src, const km_uri *uri, char *err, size_t errlen)
{
    return sim_open_model(src, uri, 1, err, errlen);
}

static int sim2_open(km_source *src, const km_uri *uri, char *err, size_t errlen)
{
    return sim_open_model(src, uri, 2, err, errlen);
}

static int sim_read(km_source *src, km_frame *out, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return km_sim_next(src->impl, out);
}

static void sim_close(km_source *src)
{
    km_sim_free(src->impl);
    src->impl = NULL;
}

static void sim_describe(const km_source *src, km_source_info *info)
{
    const km_sim *s = src->impl;
    snprintf(info->kind, sizeof info->kind, s->m2 ? "sim2" : "sim");
    info->rows = s->p.rows;
    info->cols = s->p.cols;
    info->pitch_mm = s->p.pitch_mm;
    info->rate_hz = s->p.rate_hz;
    info->live = true;
    snprintf(info->units, sizeof info->units, "kPa");
    info->duration_s = s->p.duration_s;
}

const struct km_source_ops km_sim_source_ops = {
    .scheme = "sim",
    .open = sim_open,
    .read = sim_read,
    .close = sim_close,
    .describe = sim_describe,
};

const struct km_source_ops km_sim2_source_ops = {
    .scheme = "sim2",
    .open = sim2_open,
    .read = sim_read,
    .close = sim_close,
    .describe = sim_describe,
};
