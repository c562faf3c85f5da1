/* bench_cue_latency.c: cues under load. Plays N cues (every cue type of the
 * default scheme in turn, tones only, 250-400 ms apart: each a real cue
 * length, most ending before the next starts) through the chosen backend
 * while H processes spin on the CPUs, and reports per configuration:
 *  - event to first sample audible at the server: km_cue_play() to the
 *    callback starting it plus what libsoundio says is still buffered ahead
 *    of that sample (soundio_outstream_get_latency), p50 / p99;
 *  - damaged cues: those sounding when the server ran dry (a hole), and
 *    underflows (the server ran dry at all, in silence too).
 * Each configuration (buffer asked, real-time priority asked or not) runs in
 * the same process under the same hogs, so they compare as a ratio.
 * bench/cue_latency.sh starts a private PulseAudio null sink for it.
 * Usage: bench_cue_latency [backend] [cues] [hogs] [latency_ms[:nort] ...]
 * (defaults: pulseaudio 200 2, then 10:nort 10 25:nort 25). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "knotmat/cue.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* H children spinning until killed */
static int start_hogs(int h, pid_t *pids)
{
    for (int i = 0; i < h; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            return -1;
        if (pids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the bench */
            if (getppid() == 1)
                _exit(0);
            volatile unsigned long x = 0;
            for (;;)
                x = x * 1103515245u + 12345u;
        }
    }
    return 0;
}

static void stop_hogs(int h, const pid_t *pids)
{
    for (int i = 0; i < h; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
}

/* one configuration: 0, or 1 when the backend did not play */
static int run_config(const char *backend, int n, double latency_ms, int rt)
{
    km_cue_options o;
    km_cue_options_default(&o);
    o.audio = backend;
    o.voice = "none";
    o.latency_s = latency_ms / 1000;
    o.realtime = rt;
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
    sleep_ms(1000); /* let the stream reach its steady state */
    int types[KM_EV_TYPE_COUNT], nt = 0;
    for (int t = 1; t < KM_EV_TYPE_COUNT; t++) {
        size_t len;
        if (km_cue_samples(e, (enum km_event_type)t, &len) && len)
            types[nt++] = t;
    }
    srand(7);
    for (int i = 0; i < n && nt; i++) {
        km_event ev = {.type = (enum km_event_type)types[i % nt]};
        km_cue_play(e, &ev);
        long ms = 250 + rand() % 150;
        for (long w = 0; w < ms; w += 10) {
            sleep_ms(10);
            km_cue_engine_poll(e, NULL, 0);
        }
    }
    sleep_ms(1500); /* the last cue ends */
    km_cue_stats st;
    km_cue_engine_stats(e, &st);
    char why[256];
    int got_rt = km_cue_engine_realtime(e, why, sizeof why);
    printf("  %-9s %3.0f ms asked, %-30.30s %4llu cues: p50 %6.2f ms  p99 %6.2f ms  "
           "damaged %3llu  underflows %4llu  errors %llu\n",
           km_cue_engine_backend(e), latency_ms, got_rt > 0 ? "real-time" : rt ? why : "ordinary",
           (unsigned long long)st.started, st.latency_p50_ms, st.latency_p99_ms,
           (unsigned long long)st.damaged, (unsigned long long)st.underflows,
           (unsigned long long)st.errors);
    fflush(stdout);
    km_cue_engine_free(e, NULL, 0);
    return 0;
}

int main(int argc, char **argv)
{
    const char *backend = argc > 1 ? argv[1] : "pulseaudio";
    int n = argc > 2 ? atoi(argv[2]) : 200;
    int hogs = argc > 3 ? atoi(argv[3]) : 2;
    if (n < 10 || n > 256)
        n = 200;
    if (hogs < 0 || hogs > 16)
        hogs = 2;
    static const char *defaults[] = {"10:nort", "10", "25:nort", "25"};
    const char **configs = argc > 4 ? (const char **)argv + 4 : defaults;
    int nconf = argc > 4 ? argc - 4 : 4;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("cues under load: %d cues per configuration, %d CPU hogs on %ld CPUs, backend %s\n",
           n, hogs, cpus, backend);
    pid_t pids[16] = {0};
    if (start_hogs(hogs, pids)) {
        stop_hogs(hogs, pids);
        fprintf(stderr, "cannot fork the CPU hogs\n");
        return 1;
    }
    int rc = 0;
    for (int c = 0; c < nconf && !rc; c++) {
        double ms = atof(configs[c]);
        int rt = !strstr(configs[c], ":nort");
        if (!(ms >= KM_CUE_LATENCY_MIN_S * 1e3 && ms <= KM_CUE_LATENCY_MAX_S * 1e3)) {
            fprintf(stderr, "bad configuration '%s' (latency_ms[:nort])\n", configs[c]);
            rc = 2;
            break;
        }
        rc = run_config(backend, n, ms, rt);
    }
    stop_hogs(hogs, pids);
    return rc;
}
