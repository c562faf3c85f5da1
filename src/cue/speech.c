/* speech.c: a few words rendered once by espeak-ng (offline, synchronous
 * mode: no audio device), resampled to the engine's rate. Never called from
 * the audio callback. espeak-ng keeps global state, so calls are serialised. */
#include <espeak-ng/speak_lib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cue_internal.h"
#include "internal.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int espeak_rate = 0; /* 0: not initialised, < 0: failed */

typedef struct {
    short *pcm;
    size_t n, cap;
} pcm_buf;

static int on_synth(short *wav, int numsamples, espeak_EVENT *events)
{
    pcm_buf *b = events && events->user_data ? events->user_data : NULL;
    if (!b || !wav || numsamples <= 0)
        return 0;
    if (b->n + (size_t)numsamples > b->cap) {
        size_t cap = (b->cap + (size_t)numsamples) * 2;
        short *p = realloc(b->pcm, cap * sizeof(short));
        if (!p)
            return 1; /* abort synthesis */
        b->pcm = p;
        b->cap = cap;
    }
    memcpy(b->pcm + b->n, wav, (size_t)numsamples * sizeof(short));
    b->n += (size_t)numsamples;
    return 0;
}

int km_cue_speak_(const char *voice, const char *text, int rate, float **out, size_t *n, char *err,
                  size_t errlen)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&lock);
    if (espeak_rate == 0) {
        /* SYNCHRONOUS: espeak_Synth returns with every sample delivered to
         * on_synth on this thread (RETRIEVAL synthesises on a thread of its
         * own). espeak-ng 1.51 opens an audio device here in either mode
         * (pcaudio connects to PulseAudio), so the cue engine does not render
         * at all when nothing can be heard (km_cue_options.render_silent) */
        espeak_rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, 0);
        if (espeak_rate > 0)
            espeak_SetSynthCallback(on_synth);
        else
            espeak_rate = -1;
    }
    if (espeak_rate < 0) {
        pthread_mutex_unlock(&lock);
        km_errf_(err, errlen, "espeak-ng could not start (is espeak-ng-data installed?)");
        return KM_EUNSUPPORTED;
    }
    if (espeak_SetVoiceByName(voice) != EE_OK) {
        pthread_mutex_unlock(&lock);
        km_errf_(err, errlen, "espeak-ng has no voice '%s' (try 'en', or --voice none)", voice);
        return KM_EINVAL;
    }
    espeak_SetParameter(espeakRATE, 150, 0); /* a little slower than normal: lying down */
    pcm_buf b = {0};
    espeak_ERROR e = espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_AUTO,
                                  NULL, &b);
    espeak_Synchronize();
    int src_rate = espeak_rate;
    pthread_mutex_unlock(&lock);
    if (e != EE_OK || b.n == 0) {
        free(b.pcm);
        km_errf_(err, errlen, "espeak-ng could not speak '%s'", text);
        return KM_EIO;
    }
    /* linear resampling to the engine's rate: enough for speech */
    size_t m = (size_t)((double)b.n * rate / src_rate);
    float *r = malloc((m ? m : 1) * sizeof(float));
    if (!r) {
        free(b.pcm);
        return KM_ENOMEM;
    }
    for (size_t i = 0; i < m; i++) {
        double x = (double)i * src_rate / rate;
        size_t k = (size_t)x;
        double fr = x - (double)k;
        double a = b.pcm[k], c = k + 1 < b.n ? b.pcm[k + 1] : a;
        r[i] = (float)((a + (c - a) * fr) / 32768.0);
    }
    free(b.pcm);
    *out = r;
    *n = m;
    return KM_OK;
}
