/* test_cue.c: the cue scheme and rendering without a sound server: defaults,
 * scheme files and their errors, click-free envelopes, each cue at its pitch,
 * the wav: backend placing cues at their times, the Dummy backend playing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "knotmat/cue.h"

static km_cue_engine *make(const char *audio, const char *scheme, const char *voice)
{
    km_cue_options o;
    km_cue_options_default(&o);
    o.audio = audio;
    o.scheme_file = scheme;
    o.voice = voice;
    o.overwrite = true; /* wav: the tests' own temporary files */
    km_cue_engine *e;
    char err[512], warn[512];
    int rc = km_cue_engine_new(&o, &e, err, sizeof err, warn, sizeof warn);
    if (rc)
        fail_msg("%s", err);
    return e;
}

/* Goertzel power of frequency f over x[0..n) relative to the total power. */
static double tone_share(const float *x, size_t n, double f, int rate)
{
    double w = 2 * M_PI * f / rate, c = 2 * cos(w), s1 = 0, s2 = 0, tot = 0;
    for (size_t i = 0; i < n; i++) {
        double s0 = x[i] + c * s1 - s2;
        s2 = s1;
        s1 = s0;
        tot += (double)x[i] * x[i];
    }
    double p = s1 * s1 + s2 * s2 - c * s1 * s2;
    return tot > 0 ? p / (tot * n / 2) : 0;
}

/* An engine rendering to a new temporary wav:PATH (path: "/tmp/NAME_XXXXXX.wav") */
static km_cue_engine *make_wav(char *path, const char *voice)
{
    close(mkstemps(path, 4));
    char audio[600];
    snprintf(audio, sizeof audio, "wav:%s", path);
    return make(audio, NULL, voice);
}

/* The samples of the 16-bit mono track km_cue_engine_free wrote; the file goes */
static size_t read_track(const char *path, int16_t *x, size_t max)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 44, SEEK_SET);
    size_t n = fread(x, 2, max, fp);
    fclose(fp);
    unlink(path);
    return n;
}

static void test_default_cues_are_distinct_and_click_free(void **state)
{
    (void)state;
    km_cue_engine *e = make("none", NULL, "none");
    assert_string_equal(km_cue_engine_backend(e), "none");
    enum km_event_type with[] = {KM_EV_ON_TARGET, KM_EV_HOLD, KM_EV_SPASM, KM_EV_RELEASE,
                                 KM_EV_OFF_TARGET, KM_EV_OVERPRESSURE, KM_EV_HOLD_LIMIT,
                                 KM_EV_DEVICE_LOST, KM_EV_DEVICE_BACK, KM_EV_MARK};
    double seen[16];
    for (size_t i = 0; i < sizeof with / sizeof with[0]; i++) {
        size_t n;
        const float *x = km_cue_samples(e, with[i], &n);
        assert_non_null(x);
        assert_true(n > 48000 * 0.03);
        const double *f = km_cue_frequencies(e, with[i]);
        assert_true(f[0] > 200 && f[0] < 2000);
        for (size_t j = 0; j < i; j++) /* each cue has its own pitch */
            assert_true(fabs(seen[j] - f[0]) > 20);
        seen[i] = f[0];
        /* no clicks: starts and ends at silence, no sample-to-sample jump
         * larger than a 1.5 kHz sine at full level would make */
        assert_true(fabsf(x[0]) < 0.01f && fabsf(x[n - 1]) < 0.01f);
        double peak = 0, jump = 0;
        for (size_t k = 1; k < n; k++) {
            peak = fmax(peak, fabs(x[k]));
            jump = fmax(jump, fabs(x[k] - x[k - 1]));
        }
        assert_true(peak > 0.1 && peak < 1.0);
        assert_true(jump < 2 * M_PI * 1500 / 48000);
        /* the first 40 ms sound at the cue's frequency */
        if (with[i] != KM_EV_RELEASE && with[i] != KM_EV_DEVICE_LOST && with[i] != KM_EV_DEVICE_BACK)
            assert_true(tone_share(x, 1920, f[0], 48000) > 0.5);
    }
    size_t n;
    assert_null(km_cue_samples(e, KM_EV_HOTSPOT, &n)); /* silent by design */
    assert_null(km_cue_samples(e, KM_EV_BREATHING, &n));
    km_cue_engine_free(e, NULL, 0);
}

static void test_scheme_file_and_errors(void **state)
{
    (void)state;
    char path[] = "/tmp/km_scheme_XXXXXX";
    int fd = mkstemp(path);
    FILE *fp = fdopen(fd, "w");
    fputs("# quieter, a different spasm, no hold tick\nvolume = 0.5\n[spasm]\n"
          "tones = 500:100, 0:50, 750>900:100\ngain = 0.9\n[hold]\ntones =\n[on_target]\n"
          "style = tone\n", fp);
    fclose(fp);
    km_cue_engine *e = make("none", path, "none");
    const double *f = km_cue_frequencies(e, KM_EV_SPASM);
    assert_true(f[0] == 500 && f[1] == 750);
    size_t n;
    const float *x = km_cue_samples(e, KM_EV_SPASM, &n);
    assert_int_equal(n, 48000 * 250 / 1000);
    assert_true(tone_share(x, 1920, 500, 48000) > 0.5);
    assert_null(km_cue_samples(e, KM_EV_HOLD, &n));
    km_cue_engine_free(e, NULL, 0);
    static const struct { const char *text, *needle; } bad[] = {
        {"[twitch]\ntones = 440:100\n", ":1: no event called 'twitch'"},
        {"[spasm]\ntones = 440\n", ":2: tones '440' not understood"},
        {"[spasm]\ntones = 440:1\n", ":2: tones"},
        {"[spasm]\ncolour = red\n", ":2: unknown key 'colour'"},
        {"volume = 3\n", ":1: before any [event] only 'volume = 0..1'"},
        {"[spasm]\ngain = -1\n", ":2: gain must be 0..1"},
        {"[spasm\n", ":1: section header without ']'"},
        {"[spasm]\njust words\n", ":2: expected 'key = value'"},
        {"[hold]\ntimes = 60, 30\n", ":2: times are up to 8 rising seconds"},
        {"[hold]\ntimes = 1\n", ":2: times are up to 8 rising seconds"},
        {"[hold]\ntimes = 30 s\n", ":2: times are up to 8 rising seconds"},
        {"[spasm]\ntimes = 30\n", ":2: unknown key 'times'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fp = fopen(path, "w");
        fputs(bad[i].text, fp);
        fclose(fp);
        km_cue_options o;
        km_cue_options_default(&o);
        o.audio = "none";
        o.scheme_file = path;
        char err[512], warn[512];
        km_cue_engine *e2;
        assert_int_equal(km_cue_engine_new(&o, &e2, err, sizeof err, warn, sizeof warn), KM_EFORMAT);
        if (!strstr(err, bad[i].needle))
            fail_msg("'%s' -> '%s', wanted '%s'", bad[i].text, err, bad[i].needle);
    }
    unlink(path);
    km_cue_options o;
    km_cue_options_default(&o);
    o.audio = "speaker";
    char err[256], warn[256];
    km_cue_engine *e3;
    assert_int_equal(km_cue_engine_new(&o, &e3, err, sizeof err, warn, sizeof warn), KM_EINVAL);
    o.audio = "none";
    o.volume = 2;
    assert_int_equal(km_cue_engine_new(&o, &e3, err, sizeof err, warn, sizeof warn), KM_EINVAL);
    o.volume = 0.7;
    for (int i = 0; i < 3; i++) { /* the buffer asked of the server: 5..500 ms */
        o.latency_s = (double[]){0.004, 0.6, NAN}[i];
        assert_int_equal(km_cue_engine_new(&o, &e3, err, sizeof err, warn, sizeof warn),
                         KM_EINVAL);
        assert_non_null(strstr(err, "audio latency"));
    }
    o.latency_s = KM_CUE_LATENCY_MIN_S;
    assert_int_equal(km_cue_engine_new(&o, &e3, err, sizeof err, warn, sizeof warn), KM_OK);
    /* nothing plays in real time: nothing to say of priority */
    assert_int_equal(km_cue_engine_realtime(e3, warn, sizeof warn), -2);
    assert_string_equal(warn, "");
    km_cue_engine_free(e3, NULL, 0);
}

static void test_words_are_spoken(void **state)
{
    (void)state;
    km_cue_engine *tones = make("none", NULL, "none"), *words = make("none", NULL, "en");
    size_t nt, nw;
    km_cue_samples(tones, KM_EV_RELEASE, &nt);
    const float *x = km_cue_samples(words, KM_EV_RELEASE, &nw);
    /* "release - move on" adds most of a second of speech after the tone */
    assert_true(nw > nt + 48000 / 2);
    double e = 0;
    for (size_t i = nt + 2880; i < nw; i++)
        e += (double)x[i] * x[i];
    assert_true(e / (double)(nw - nt) > 1e-4);
    km_cue_engine_free(tones, NULL, 0);
    km_cue_engine_free(words, NULL, 0);
}

static void test_wav_backend_places_cues_at_event_times(void **state)
{
    (void)state;
    char path[] = "/tmp/km_track_XXXXXX.wav";
    km_cue_engine *e = make_wav(path, "none");
    assert_string_equal(km_cue_engine_backend(e), "wav");
    km_event a = {.type = KM_EV_SPASM, .t_s = 2.0, .detected_t_s = 2.03};
    km_event b = {.type = KM_EV_OFF_TARGET, .t_s = 3.5, .detected_t_s = 3.5};
    km_event c = {.type = KM_EV_BREATHING, .detected_t_s = 1.0}; /* no cue */
    assert_true(km_cue_play(e, &a));
    assert_true(km_cue_play(e, &b));
    assert_false(km_cue_play(e, &c));
    km_cue_stats st;
    km_cue_engine_stats(e, &st);
    assert_int_equal(st.queued, 2);
    char err[256];
    assert_int_equal(km_cue_engine_free(e, err, sizeof err), KM_OK);
    static int16_t s[48000 * 4];
    size_t n = read_track(path, s, 48000 * 4);
    assert_true(n >= (size_t)(48000 * 3.8));
    size_t first = 0;
    while (first < n && abs(s[first]) < 30)
        first++;
    assert_true(fabs(first / 48000.0 - 2.03) < 0.002); /* at the moment it was decided */
    float win[1920];
    for (int i = 0; i < 1920; i++)
        win[i] = s[(size_t)(3.5 * 48000) + 100 + i] / 32768.0f;
    assert_true(tone_share(win, 1920, 330, 48000) > 0.5);
}

/* Seconds of sound on a 16-bit mono track in [from, to) s (|x| >= 30). */
static double sounding_s(const int16_t *x, size_t n, double from, double to)
{
    size_t k = 0;
    for (size_t i = (size_t)(from * 48000); i < n && i < (size_t)(to * 48000); i++)
        k += abs(x[i]) >= 30;
    return k / 48000.0;
}

/* A hold's time in words at the dose schedule (30 s, 1 minute), ticks between;
 * a new hold starts the count again; the start-up and summary words sound. */
static void test_time_in_words(void **state)
{
    (void)state;
    char path[] = "/tmp/km_time_XXXXXX.wav";
    km_cue_engine *e = make_wav(path, "en");
    assert_true(km_cue_ready(e));
    /* hold 1: 10..70 s at t 10..70; hold 2 from t 80: 10, 20, 30 s */
    double held[] = {10, 20, 30, 40, 50, 60, 70, 10, 20, 30};
    for (int i = 0; i < 10; i++) {
        km_event h = {.type = KM_EV_HOLD, .value = held[i], .detected_t_s = 10.0 * (i + 1)};
        assert_true(km_cue_play(e, &h));
    }
    double said = km_cue_say(e, "two knots released in six minutes", -1);
    assert_true(said > 1.0);
    assert_int_equal(km_cue_engine_free(e, NULL, 0), KM_OK);
    static int16_t x[48000 * 110];
    size_t n = read_track(path, x, 48000 * 110);
    assert_true(sounding_s(x, n, 0, 5) > 0.8); /* knotmat ready ... */
    for (int i = 0; i < 10; i++) {
        double t = 10.0 * (i + 1), len = sounding_s(x, n, t, t + 5);
        int words = held[i] == 30 || held[i] == 60;
        if (words ? len < 0.4 : len > 0.1)
            fail_msg("hold at %.0f s (t %.0f): %.2f s of sound, wanted %s", held[i], t, len,
                     words ? "words" : "a tick");
    }
    assert_true(sounding_s(x, n, 102.5, 110) > 0.5); /* the summary, after everything */
}

/* A person's mark is answered: the mark's pip, then what was marked in
 * words; "ouch" also asks to ease off (longer); a mark of no kind, the pip. */
static void test_marks_are_answered(void **state)
{
    (void)state;
    char path[] = "/tmp/km_mark_XXXXXX.wav";
    km_cue_engine *e = make_wav(path, "en");
    const int kinds[] = {KM_MARK_TWITCH, KM_MARK_OUCH, KM_MARK_RELEASE, 0};
    for (int i = 0; i < 4; i++) {
        km_event m = {.type = KM_EV_MARK, .value = kinds[i], .detected_t_s = 1 + 5.0 * i};
        assert_true(km_cue_play(e, &m));
    }
    assert_int_equal(km_cue_engine_free(e, NULL, 0), KM_OK);
    static int16_t x[48000 * 25];
    size_t n = read_track(path, x, 48000 * 25);
    double len[4];
    for (int i = 0; i < 4; i++) {
        double t = 1 + 5.0 * i;
        len[i] = sounding_s(x, n, t, t + 4.9);
        static float pip[2400];
        for (size_t k = 0; k < 2400; k++)
            pip[k] = x[(size_t)(t * 48000) + k] / 32768.0f;
        if (tone_share(pip, 2400, 1175, 48000) < 0.5)
            fail_msg("mark %d: no 1175 Hz pip first", kinds[i]);
    }
    printf("  sounding: twitch %.2f s, ouch %.2f s, release %.2f s, none %.2f s\n", len[0],
           len[1], len[2], len[3]);
    assert_true(len[0] > 0.5 && len[2] > 0.5); /* pip and words */
    assert_true(len[1] > len[0] + 0.3);          /* ", ease off" */
    assert_true(len[3] > 0.03 && len[3] < len[0]);  /* the scheme's cue: pip and "noted" */
}

/* Gated RMS in dB: the 10 ms blocks within 40 dB of the loudest (pauses out). */
static double gated_db(const float *x, size_t n)
{
    const size_t blk = 480;
    double top = 0, sum = 0;
    size_t cnt = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t b = 0; b + blk <= n; b += blk) {
            double p = 0;
            for (size_t i = b; i < b + blk; i++)
                p += (double)x[i] * x[i] / blk;
            if (pass == 0 && p > top)
                top = p;
            if (pass == 1 && p >= top * 1e-4) {
                sum += p;
                cnt++;
            }
        }
    return cnt ? 10 * log10(sum / cnt) : -999;
}

/* Every cue but the tick says its meaning in words, and the words are as
 * loud as their tones (within 3 dB), never clipped. */
static void test_words_match_their_tones(void **state)
{
    (void)state;
    km_cue_engine *tones = make("none", NULL, "none"), *words = make("none", NULL, "en");
    int spoken = 0;
    for (int t = 1; t < KM_EV_TYPE_COUNT; t++) {
        size_t nt, nw;
        const float *xt = km_cue_samples(tones, (enum km_event_type)t, &nt);
        const float *xw = km_cue_samples(words, (enum km_event_type)t, &nw);
        if (!xt || t == KM_EV_HOLD)
            continue;
        const char *name = km_event_type_name((enum km_event_type)t);
        if (nw < nt + 48000 / 5)
            fail_msg("%s: no words after its tones", name);
        double lt = gated_db(xt, nt), lw = gated_db(xw + nt, nw - nt);
        float peak = 0;
        for (size_t i = 0; i < nw; i++)
            peak = fmaxf(peak, fabsf(xw[i]));
        printf("  %-13s tones %6.1f dB, words %6.1f dB (%+.1f), peak %.2f\n", name, lt, lw,
               lw - lt, peak);
        if (fabs(lw - lt) > 3 || peak > 0.98f)
            fail_msg("%s: words %.1f dB against tones %.1f dB, peak %.2f", name, lw, lt, peak);
        spoken++;
    }
    assert_true(spoken >= 8);
    km_cue_engine_free(tones, NULL, 0);
    km_cue_engine_free(words, NULL, 0);
}

/* A plan: its spots in order, "" at its end, then NULL; bad plans refused. */
static void test_plan(void **state)
{
    (void)state;
    km_cue_options o;
    km_cue_options_default(&o);
    o.audio = "none";
    o.voice = "none";
    char err[256], warn[256], many[400] = "";
    km_cue_engine *e;
    for (int i = 0; i < KM_CUE_MAX_PLAN + 1; i++)
        strcat(many, "neck,");
    const char *bad[] = {" , ,", many};
    for (int i = 0; i < 2; i++) {
        o.plan = bad[i];
        assert_int_equal(km_cue_engine_new(&o, &e, err, sizeof err, warn, sizeof warn),
                         KM_EINVAL);
    }
    o.plan = " left glute ,\nright glute\r\n";
    assert_int_equal(km_cue_engine_new(&o, &e, err, sizeof err, warn, sizeof warn), KM_OK);
    km_event rel = {.type = KM_EV_RELEASE, .detected_t_s = 50};
    assert_string_equal(km_cue_next(e, &rel), "right glute");
    assert_string_equal(km_cue_next(e, &rel), "");
    assert_null(km_cue_next(e, &rel));
    km_cue_engine_free(e, NULL, 0);
}

static void test_dummy_backend_plays(void **state)
{
    (void)state;
    km_cue_engine *e = make("dummy", NULL, "none");
    assert_string_equal(km_cue_engine_backend(e), "Dummy");
    km_event ev = {.type = KM_EV_HOLD};
    for (int i = 0; i < 12; i++) /* more than the voices: queued, then played */
        assert_true(km_cue_play(e, &ev));
    for (int i = 0; i < 100; i++) {
        km_cue_stats st;
        km_cue_engine_stats(e, &st);
        if (st.started == 12)
            break;
        assert_true(km_cue_engine_poll(e, NULL, 0));
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    km_cue_stats st;
    km_cue_engine_stats(e, &st);
    assert_int_equal(st.started, 12);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.latency_n, 12);
    assert_int_equal(st.damaged, 0);
    /* the callback ran: its priority is known and said (granted, or refused
     * with the reason) */
    char why[256];
    int rt = km_cue_engine_realtime(e, why, sizeof why);
    if (!(rt == 1 && strstr(why, "real-time priority (round-robin")) &&
        !(rt == -1 && strstr(why, "refused")))
        fail_msg("realtime %d: '%s'", rt, why);
    km_cue_engine_free(e, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_cues_are_distinct_and_click_free),
        cmocka_unit_test(test_scheme_file_and_errors),
        cmocka_unit_test(test_words_are_spoken),
        cmocka_unit_test(test_words_match_their_tones),
        cmocka_unit_test(test_wav_backend_places_cues_at_event_times),
        cmocka_unit_test(test_dummy_backend_plays),
        cmocka_unit_test(test_time_in_words),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_marks_are_answered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
