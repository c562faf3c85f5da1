/* level.c: loudness of a cue's parts. The words carry the meaning, so they
 * are brought to the level of the tones they follow (within 3 dB, by the
 * RMS of their active part), with a soft limiter keeping speech peaks, which
 * stand 10-15 dB over its RMS where a tone's stand 3 dB, under a ceiling.
 * Active level: the RMS over the 20 ms blocks no more than 30 dB under the
 * loudest, so pauses between words do not count (the idea of ITU-T P.56's
 * active speech level, much simplified). */
#include <math.h>
#include <stddef.h>

#include "cue_internal.h"

/* mean square of block b (blk samples, the last one shorter); 0 past the end */
static double block_power(const float *x, size_t n, size_t b, size_t blk, size_t *m)
{
    double s = 0;
    *m = 0;
    for (size_t i = b * blk; i < n && i < (b + 1) * blk; i++, (*m)++)
        s += (double)x[i] * x[i];
    return *m ? s / (double)*m : 0;
}

double km_cue_active_rms_(const float *x, size_t n, int rate)
{
    size_t blk = (size_t)rate / 50, m;
    if (!x || !n || !blk)
        return 0;
    double loudest = 0, sum = 0;
    for (size_t b = 0; b * blk < n; b++)
        loudest = fmax(loudest, block_power(x, n, b, blk, &m));
    size_t count = 0;
    for (size_t b = 0; b * blk < n; b++) {
        double p = block_power(x, n, b, blk, &m);
        if (m && p >= loudest * 1e-3) {
            sum += p * (double)m;
            count += m;
        }
    }
    return count ? sqrt(sum / (double)count) : 0;
}

/* |y| <= ceiling; linear up to 60 % of it, then a tanh knee */
static float soft_limit(float x, float ceiling)
{
    float knee = 0.6f * ceiling, a = fabsf(x);
    if (a <= knee)
        return x;
    float y = knee + (ceiling - knee) * tanhf((a - knee) / (ceiling - knee));
    return x < 0 ? -y : y;
}

void km_cue_level_words_(float *w, size_t n, int rate, double target_rms, double ceiling)
{
    /* limiting takes some level away: measure again, scale again */
    for (int pass = 0; pass < 4; pass++) {
        double r = km_cue_active_rms_(w, n, rate);
        if (!(r > 0) || fabs(20 * log10(target_rms / r)) < 0.25)
            return;
        float g = (float)(target_rms / r);
        for (size_t i = 0; i < n; i++)
            w[i] = soft_limit(w[i] * g, (float)ceiling);
    }
}
