/* wavcheck.c WAV: the sounds in a recording, one line each:
 *     onset_s duration_s frequency_hz
 * A sound is a run of 5 ms blocks louder than 8x the quiet floor (at least
 * 0.004 full scale); runs closer than 150 ms are one sound (a two-tone cue,
 * a tone and its words). The frequency is the spectral peak of the first
 * 40 ms (Hann window, 8192-point FFT, parabolic refinement). A fourth
 * column counts the holes inside the sound: runs of 2 ms or more of digital
 * silence (under one 16-bit step). A cue's own pauses are holes too, so the
 * count is compared with the rendered cue's, never with zero: a server that
 * ran dry mid-cue adds one. Reads 16-bit PCM or 32-bit float WAV, any
 * channel count (uses channel 0). */
#include <fftw3.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* runs of at least minrun silent samples with sound on both sides (the
 * block edges of the sound are not holes) */
static int count_holes(const float *x, size_t from, size_t to, size_t minrun)
{
    int holes = 0, heard = 0;
    size_t run = 0;
    for (size_t i = from; i < to; i++) {
        if (fabsf(x[i]) < 1.0f / 32768) {
            run++;
            continue;
        }
        holes += heard && run >= minrun;
        heard = 1;
        run = 0;
    }
    return holes;
}

static float *read_wav(const char *path, int *rate, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    unsigned char h[12];
    if (fread(h, 1, 12, fp) != 12 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) {
        fclose(fp);
        return NULL;
    }
    uint16_t fmt = 0, ch = 1, bits = 16;
    uint32_t sr = 0;
    for (;;) {
        unsigned char c[8];
        if (fread(c, 1, 8, fp) != 8)
            break;
        uint32_t len;
        memcpy(&len, c + 4, 4);
        if (!memcmp(c, "fmt ", 4)) {
            unsigned char f[40] = {0};
            size_t want = len < sizeof f ? len : sizeof f;
            if (fread(f, 1, want, fp) != want)
                break;
            if (len > want)
                fseek(fp, (long)(len - want), SEEK_CUR);
            memcpy(&fmt, f, 2);
            memcpy(&ch, f + 2, 2);
            memcpy(&sr, f + 4, 4);
            memcpy(&bits, f + 14, 2);
        } else if (!memcmp(c, "data", 4)) {
            size_t bps = bits / 8, frames;
            /* parec may leave the size unset while recording: read to EOF */
            long here = ftell(fp);
            fseek(fp, 0, SEEK_END);
            long end = ftell(fp);
            fseek(fp, here, SEEK_SET);
            size_t avail = (size_t)(end - here);
            if (len && len < avail)
                avail = len;
            frames = avail / (bps * ch);
            float *x = malloc((frames ? frames : 1) * sizeof(float));
            unsigned char *buf = malloc(bps * ch);
            for (size_t i = 0; i < frames; i++) {
                if (fread(buf, bps, ch, fp) != ch) {
                    frames = i;
                    break;
                }
                if (fmt == 3 && bits == 32)
                    memcpy(&x[i], buf, 4);
                else {
                    int16_t s;
                    memcpy(&s, buf, 2);
                    x[i] = s / 32768.0f;
                }
            }
            free(buf);
            fclose(fp);
            *rate = (int)sr;
            *n = frames;
            return x;
        } else {
            fseek(fp, (long)(len + (len & 1)), SEEK_CUR);
        }
    }
    fclose(fp);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: wavcheck FILE.wav\n");
        return 2;
    }
    int rate;
    size_t n;
    float *x = read_wav(argv[1], &rate, &n);
    if (!x || rate <= 0) {
        fprintf(stderr, "wavcheck: %s: not a readable WAV\n", argv[1]);
        return 1;
    }
    size_t blk = (size_t)rate / 200, nb = n / blk;
    double *rms = calloc(nb + 1, sizeof(double)), *sorted = calloc(nb + 1, sizeof(double));
    for (size_t b = 0; b < nb; b++) {
        double s = 0;
        for (size_t i = 0; i < blk; i++)
            s += (double)x[b * blk + i] * x[b * blk + i];
        rms[b] = sorted[b] = sqrt(s / blk);
    }
    /* quiet floor: the 20th percentile block */
    for (size_t i = 1; i < nb; i++)
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    double floor = nb ? sorted[nb / 5] : 0, thr = fmax(0.004, 8 * floor);
    const int N = 8192;
    double *in = fftw_alloc_real(N);
    fftw_complex *out = fftw_alloc_complex(N / 2 + 1);
    fftw_plan p = fftw_plan_dft_r2c_1d(N, in, out, FFTW_ESTIMATE);
    size_t b = 0;
    while (b < nb) {
        if (rms[b] < thr) {
            b++;
            continue;
        }
        size_t start = b, last = b, gap_blocks = 30; /* 150 ms */
        for (size_t k = b; k < nb && k - last <= gap_blocks; k++)
            if (rms[k] >= thr)
                last = k;
        size_t s0 = start * blk, len = (size_t)(0.04 * rate);
        memset(in, 0, sizeof(double) * N);
        for (size_t i = 0; i < len && s0 + i < n && i < (size_t)N; i++)
            in[i] = x[s0 + i] * (0.5 - 0.5 * cos(2 * M_PI * (i + 0.5) / len));
        fftw_execute(p);
        int kb = 1;
        double best = 0, pw[N / 2 + 1];
        for (int k = 0; k <= N / 2; k++) {
            pw[k] = out[k][0] * out[k][0] + out[k][1] * out[k][1];
            if (k > 0 && pw[k] > best) {
                best = pw[k];
                kb = k;
            }
        }
        double delta = 0;
        if (kb > 0 && kb < N / 2) {
            double a = log(pw[kb - 1] + 1e-30), c = log(pw[kb + 1] + 1e-30), m = log(pw[kb] + 1e-30);
            double den = a - 2 * m + c;
            if (den != 0)
                delta = 0.5 * (a - c) / den;
        }
        printf("%.4f %.4f %.1f %d\n", (double)s0 / rate, (double)(last + 1 - start) * blk / rate,
               (kb + delta) * rate / N, count_holes(x, s0, (last + 1) * blk, (size_t)rate / 500));
        b = last + 1;
    }
    fftw_destroy_plan(p);
    fftw_free(in);
    fftw_free(out);
    free(rms);
    free(sorted);
    free(x);
    return 0;
}
