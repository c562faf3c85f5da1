/* hotspot.c: ball-like hotspots in one pressure image.
 *
 * The ball's contact is a small intense blob inside a broad body imprint. A
 * difference of Gaussians applied in the frequency domain (FFTW r2c, multiply,
 * c2r) keeps blobs of the ball's size and removes the imprint (zero response
 * at DC). sigma1 is matched to the Hertz contact radius of the ball
 * (a ~ 0.19 x diameter for 40-100 N on a foam-covered mat, docs/simulator.md),
 * sigma2 = 3 sigma1. The frame is zero-padded by 2 sigma2 so the circular
 * convolution barely wraps (what leaks across is below 0.2 % of the body's
 * pressure), and the padded size is rounded up to an even 2^a 3^b 5^c where
 * FFTW is fast. Local maxima of the filtered image above an adaptive
 * threshold (8 x the robust noise of the filtered image, and a raw peak of at
 * least min_ball_kpa) are refined to sub-cell position by an iterated centroid
 * of the raw pressure, and their force is integrated over the blob.
 * Touches: the detector's own buffers. No allocation after init. */
#include <math.h>
#include <string.h>

#include "dsp_internal.h"
#include "internal.h"

/* Smallest even n' >= n with no prime factor above 5: FFTW is fast there
 * (an odd last dimension makes its r2c transform 2-3x slower, measured:
 * 72x72 12 us, 75x75 31 us). */
static int good_size(int n)
{
    for (n += n & 1;; n += 2) {
        int m = n;
        while (m % 2 == 0) m /= 2;
        while (m % 3 == 0) m /= 3;
        while (m % 5 == 0) m /= 5;
        if (m == 1)
            return n;
    }
}

/* The largest ball image the band-pass handles, in cells across its contact
 * radius: a Sensel Morph (1.24 mm) and a 150 mm ball give 23; beyond 64 the
 * padding alone would make the FFT of a small mat tens of thousands of cells
 * a side (a file claiming 0.001 mm cells asked for 43200 x 43200). */
#define MAX_CONTACT_RADIUS_CELLS 64.0

#define HS_CONTACT_PER_DIAMETER 0.19 /* Hertz contact radius / ball diameter, 40-100 N on foam */
#define HS_SIGMA1_PER_RADIUS 0.6  /* centre Gaussian inside the contact disc (docs/detection.md) */
#define HS_SIGMA1_MIN_CELLS 0.7   /* cells: a narrower Gaussian is not sampled as one */
#define HS_SIGMA_RATIO 3.0        /* surround / centre: the imprint (broader than 3 a) goes */
#define HS_PAD_SIGMAS 2.0         /* zero padding in sigma2: wrap-around < 0.2 % of the body */
#define HS_BLOB_PER_RADIUS 1.6    /* force integrated over the contact and its foam skirt ... */
#define HS_BLOB_EXTRA_CELLS 1.0   /* ... plus a cell for the sub-cell centre ... */
#define HS_BLOB_MIN_CELLS 2.0     /* ... and never less than a 5-cell-wide disc */
#define HS_CENTROID_EXTRA_CELLS 0.8 /* centroid disc: the contact plus the soft edge */
#define HS_CENTROID_MIN_CELLS 1.5 /* ... at least the 3x3 neighbourhood */
#define HS_CENTROID_ITERS 3       /* the centroid moves < 0.05 cell after 3 (simulated balls) */
#define HS_NOISE_EVERY 8          /* frames: the noise level moves slowly; the median costs */
#define MAD_TO_SIGMA 1.4826f      /* median |x| of Gaussian noise x sigma */
#define HS_NOISE_K 8.0f           /* in noise sigmas: a noise peak over 10^4 cells is ~never */
#define HS_FLOOR_SHARE 0.25f      /* of min_ball_kpa: the filtered image's floor on quiet mats */
#define HS_AREA_SHARE 0.1         /* of the peak: the cells that count as contact area */
#define MM2_TO_CM2 1e-2

int km_dsp_hotspot_init_(km_dsp *d, char *err, size_t errlen)
{
    double a_cells = HS_CONTACT_PER_DIAMETER * d->cfg.ball_mm / d->pitch;
    if (!(a_cells <= MAX_CONTACT_RADIUS_CELLS)) {
        km_errf_(err, errlen, "dsp: a %g mm ball spans %.0f cells of %g mm: more than the %g "
                 "the detectors handle (cell pitch too fine for this ball)", d->cfg.ball_mm,
                 2 * a_cells, (double)d->pitch, 2 * MAX_CONTACT_RADIUS_CELLS);
        return KM_EUNSUPPORTED;
    }
    d->sigma1 = fmax(HS_SIGMA1_MIN_CELLS, HS_SIGMA1_PER_RADIUS * a_cells);
    d->sigma2 = HS_SIGMA_RATIO * d->sigma1;
    d->r_blob = fmax(HS_BLOB_MIN_CELLS, HS_BLOB_PER_RADIUS * a_cells + HS_BLOB_EXTRA_CELLS);
    d->r_centroid = fmax(HS_CENTROID_MIN_CELLS, a_cells + HS_CENTROID_EXTRA_CELLS);
    int margin = (int)ceil(HS_PAD_SIGMAS * d->sigma2);
    d->pr = good_size(d->rows + margin);
    d->pc = good_size(d->cols + margin);
    size_t nr = (size_t)d->pr * d->pc, nc = (size_t)d->pr * (d->pc / 2 + 1);
    d->in = fftwf_alloc_real(nr);
    d->out = fftwf_alloc_real(nr);
    d->spec = fftwf_alloc_complex(nc);
    d->kernel = fftwf_alloc_real(nc);
    if (!d->in || !d->out || !d->spec || !d->kernel) {
        km_errf_(err, errlen, "dsp: out of memory for %dx%d FFT buffers", d->pr, d->pc);
        return KM_ENOMEM;
    }
    memset(d->in, 0, nr * sizeof(float));
    unsigned flags = d->cfg.fftw_measure ? FFTW_MEASURE : FFTW_ESTIMATE;
    d->fwd = fftwf_plan_dft_r2c_2d(d->pr, d->pc, d->in, d->spec, flags);
    d->inv = fftwf_plan_dft_c2r_2d(d->pr, d->pc, d->spec, d->out, flags);
    if (!d->fwd || !d->inv) {
        km_errf_(err, errlen, "dsp: FFTW could not plan %dx%d", d->pr, d->pc);
        return KM_ENOMEM;
    }
    memset(d->in, 0, nr * sizeof(float)); /* MEASURE may have scribbled on it */
    /* DoG transfer function, with FFTW's 1/N normalisation folded in */
    double s1 = 2 * M_PI * M_PI * d->sigma1 * d->sigma1;
    double s2 = 2 * M_PI * M_PI * d->sigma2 * d->sigma2;
    double norm = 1.0 / (double)nr;
    for (int ky = 0; ky < d->pr; ky++) {
        double fy = (ky <= d->pr / 2 ? ky : ky - d->pr) / (double)d->pr;
        for (int kx = 0; kx <= d->pc / 2; kx++) {
            double fx = kx / (double)d->pc;
            double f2 = fx * fx + fy * fy;
            d->kernel[(size_t)ky * (d->pc / 2 + 1) + kx] =
                (float)((exp(-s1 * f2) - exp(-s2 * f2)) * norm);
        }
    }
    return KM_OK;
}

void km_dsp_hotspot_free_(km_dsp *d)
{
    if (d->fwd)
        fftwf_destroy_plan(d->fwd);
    if (d->inv)
        fftwf_destroy_plan(d->inv);
    fftwf_free(d->in);
    fftwf_free(d->out);
    fftwf_free(d->spec);
    fftwf_free(d->kernel);
}

/* k-th smallest of v[0..n) (quickselect, reorders v). */
static float select_kth(float *v, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = v[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

/* Centroid of the raw pressure in a disc of radius r around (cx, cy), cells. */
static void centroid(const km_dsp *d, double *cx, double *cy)
{
    double r = d->r_centroid;
    for (int it = 0; it < HS_CENTROID_ITERS; it++) {
        double sw = 0, sx = 0, sy = 0;
        int r0 = (int)floor(*cy - r), r1 = (int)ceil(*cy + r);
        int c0 = (int)floor(*cx - r), c1 = (int)ceil(*cx + r);
        for (int y = r0 < 0 ? 0 : r0; y <= r1 && y < d->rows; y++)
            for (int x = c0 < 0 ? 0 : c0; x <= c1 && x < d->cols; x++) {
                double dx = x - *cx, dy = y - *cy;
                double dist = sqrt(dx * dx + dy * dy);
                /* soft edge: full weight inside r - 0.5, none beyond r + 0.5 */
                double edge = r + 0.5 - dist;
                if (edge <= 0)
                    continue;
                if (edge > 1)
                    edge = 1;
                double w = d->clean[y * d->cols + x] * edge;
                sw += w;
                sx += w * x;
                sy += w * y;
            }
        if (sw <= 0)
            return;
        *cx = sx / sw;
        *cy = sy / sw;
    }
}

void km_dsp_find_peaks_(km_dsp *d)
{
    const int rows = d->rows, cols = d->cols, pc = d->pc;
    for (int y = 0; y < rows; y++)
        memcpy(d->in + (size_t)y * pc, d->clean + (size_t)y * cols, cols * sizeof(float));
    fftwf_execute_dft_r2c(d->fwd, d->in, d->spec);
    size_t nc = (size_t)d->pr * (pc / 2 + 1);
    for (size_t i = 0; i < nc; i++) {
        d->spec[i][0] *= d->kernel[i];
        d->spec[i][1] *= d->kernel[i];
    }
    fftwf_execute_dft_c2r(d->inv, d->spec, d->out);

    /* robust noise of the filtered image from its median |value| */
    if (d->noise_age++ % HS_NOISE_EVERY == 0) {
        int n = rows * cols;
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols; x++)
                d->scratch[y * cols + x] = fabsf(d->out[(size_t)y * pc + x]);
        d->noise = select_kth(d->scratch, n, n / 2) * MAD_TO_SIGMA;
    }
    float thr = fmaxf(HS_NOISE_K * d->noise, HS_FLOOR_SHARE * (float)d->cfg.min_ball_kpa);

    d->npeaks = 0;
    for (int y = 0; y < rows; y++) {
        for (int x = 0; x < cols; x++) {
            float v = d->out[(size_t)y * pc + x];
            if (v < thr || d->clean[y * cols + x] < d->cfg.min_ball_kpa)
                continue;
            int is_max = 1;
            for (int dy = -1; dy <= 1 && is_max; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if ((dx || dy) && yy >= 0 && yy < rows && xx >= 0 && xx < cols) {
                        float w = d->out[(size_t)yy * pc + xx];
                        /* ties: the first in scan order wins */
                        if (w > v || (w == v && (dy < 0 || (dy == 0 && dx < 0)))) {
                            is_max = 0;
                            break;
                        }
                    }
                }
            if (!is_max)
                continue;
            double cx = x, cy = y;
            centroid(d, &cx, &cy);
            /* integrate the blob around the refined centre */
            double force = 0, peak = 0;
            int area = 0;
            double r = d->r_blob;
            int r0 = (int)floor(cy - r), r1 = (int)ceil(cy + r);
            int c0 = (int)floor(cx - r), c1 = (int)ceil(cx + r);
            for (int yy = r0 < 0 ? 0 : r0; yy <= r1 && yy < rows; yy++)
                for (int xx = c0 < 0 ? 0 : c0; xx <= c1 && xx < cols; xx++)
                    if ((xx - cx) * (xx - cx) + (yy - cy) * (yy - cy) <= r * r) {
                        double p = d->clean[yy * cols + xx];
                        force += p;
                        if (p > peak)
                            peak = p;
                    }
            for (int yy = r0 < 0 ? 0 : r0; yy <= r1 && yy < rows; yy++)
                for (int xx = c0 < 0 ? 0 : c0; xx <= c1 && xx < cols; xx++)
                    if ((xx - cx) * (xx - cx) + (yy - cy) * (yy - cy) <= r * r)
                        area += d->clean[yy * cols + xx] >= HS_AREA_SHARE * peak;
            peak_t pk = {cx, cy, force * d->cell_n, area * d->pitch * d->pitch * MM2_TO_CM2, peak,
                         v};
            /* keep the strongest KM_MAX_PEAKS */
            int slot = d->npeaks;
            if (slot == KM_MAX_PEAKS) {
                int weakest = 0;
                for (int i = 1; i < KM_MAX_PEAKS; i++)
                    if (d->peaks[i].score < d->peaks[weakest].score)
                        weakest = i;
                if (d->peaks[weakest].score >= v)
                    continue;
                slot = weakest;
            } else {
                d->npeaks++;
            }
            d->peaks[slot] = pk;
        }
    }
}
