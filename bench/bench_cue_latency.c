/* bench_cue_latency.c: event to first sample of its cue at the sound server.
 * Plays N short cues at irregular 40-90 ms intervals through the chosen
 * backend (default pulseaudio) and reports, per cue, the time from
 * km_cue_play() to the callback starting it plus what libsoundio says is
 * still buffered ahead of that sample (soundio_outstream_get_latency: until
 * it becomes audible at the server). p50 / p99 / max over the run, and the
 * underflows. bench/cue_latency.sh starts a private PulseAudio null sink
 * for it. Usage: bench_cue_latency [backend] [cues] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "knotmat/cue.h"

int main(int argc, char **argv)
{
    km_cue_options o;
    km_cue_options_default(&o);
    o.audio = argc > 1 ? argv[1] : "pulseaudio";
    o.voice = "none";
    int n = argc > 2 ? atoi(argv[2]) : 250;
    if (n < 10 || n > 256)
        n = 250;
    km_cue_engine *e;
    char err[512], warn[512];
    if (km_cue_engine_new(&o, &e, err, sizeof err, warn, sizeof warn)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (warn[0] || !strcmp(km_cue_engine_backend(e), "none")) {
        fprintf(stderr, "no audio backend: %s\n", warn);
        km_cue_engine_free(e, NULL, 0);
        return 1;
    }
    struct timespec settle = {1, 0};
    nanosleep(&settle, NULL); /* let the stream reach its steady state */
    km_event ev = {.type = KM_EV_HOLD};
    srand(7);
    for (int i = 0; i < n; i++) {
        km_cue_play(e, &ev);
        long ms = 40 + rand() % 50;
        struct timespec ts = {0, ms * 1000000L};
        nanosleep(&ts, NULL);
        km_cue_engine_poll(e, NULL, 0);
    }
    nanosleep(&settle, NULL);
    km_cue_stats st;
    km_cue_engine_stats(e, &st);
    printf("cue latency (event -> first sample audible at the server), backend %s, software "
           "latency asked %.0f ms: %u cues, p50 %.2f ms, p99 %.2f ms; %llu underflows, %llu "
           "errors\n",
           km_cue_engine_backend(e), o.latency_s * 1e3, st.latency_n, st.latency_p50_ms,
           st.latency_p99_ms, (unsigned long long)st.underflows, (unsigned long long)st.errors);
    km_cue_engine_free(e, NULL, 0);
    return 0;
}
