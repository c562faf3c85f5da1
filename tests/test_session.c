/* test_session.c: the live pipeline of the library (knotmat/session.h).
 * Every listener gets every event, in order, through its own queue; a
 * listener that never reads loses only its own events (counted) and stalls
 * nobody; the recording holds every frame and every event, the last ones
 * (decided while the detectors drain) included; a replay at max speed loses
 * nothing; a lossy frame watcher that never reads does not stall the
 * replay; a session is never recorded over its own input; the person's
 * marks reach every listener and the recording, timed between the frames
 * around the key press, and survive a re-analysis. Runs under TSan. */
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

#include "knotmat/dsp.h"
#include "knotmat/files.h"
#include "knotmat/outfile.h"
#include "knotmat/pass.h"
#include "knotmat/record.h"
#include "knotmat/session.h"
#include "knotmat/sim.h"
#include "report/marks.h"

static char dir[] = "/tmp/km_session_XXXXXX";
static char csv[600];

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(csv, sizeof csv, "%s/s.csv", dir);
    km_sim_params p;
    km_sim_params_default(&p);
    snprintf(p.scenario, sizeof p.scenario, "release");
    p.duration_s = 60;
    p.seed = 5;
    km_sim *s;
    char err[256];
    if (km_sim_new(&p, &s, err, sizeof err))
        return -1;
    km_csv_writer *w;
    if (km_csv_writer_open(csv, KM_OUT_FORCE, p.rows, p.cols, p.pitch_mm, p.rate_hz, NULL, &w,
                           err, sizeof err))
        return -1;
    km_frame *f = km_frame_new((uint32_t)p.rows * p.cols);
    while (km_sim_next(s, f) == KM_OK)
        km_csv_writer_write(w, f->device_ns * 1e-9, f);
    km_frame_free(f);
    km_sim_free(s);
    return km_csv_writer_close(w, err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* A session of `uri` recorded to `kmr` */
static int open_recording(const char *uri, const char *kmr, bool force, km_session **s,
                          char *err, size_t errlen)
{
    km_session_config c;
    km_session_config_default(&c);
    c.source = uri;
    c.record_path = kmr;
    c.record.force = force;
    return km_session_open(&c, s, err, errlen);
}

/* The events the detectors give offline, frame by frame: the reference. */
static size_t offline_events(km_event *out, size_t cap)
{
    km_source *src;
    char err[256];
    assert_int_equal(km_source_open(csv, &src, err, sizeof err), KM_OK);
    km_source_info info;
    km_source_describe(src, &info);
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    km_dsp *d;
    assert_int_equal(km_dsp_new(&cfg, info.rows, info.cols, info.pitch_mm, info.rate_hz, &d, err,
                                sizeof err), KM_OK);
    km_frame *f = km_frame_new(km_source_max_cells(src));
    km_event ev[64];
    size_t n = 0;
    while (km_source_read(src, f) == KM_OK) {
        size_t k = km_dsp_process(d, f, ev, 64);
        for (size_t i = 0; i < k && n < cap; i++)
            out[n++] = ev[i];
    }
    km_frame_free(f);
    km_dsp_free(d);
    km_source_close(src);
    return n;
}

static void test_every_listener_gets_everything_a_stalled_one_only_loses_its_own(void **state)
{
    (void)state;
    static km_event ref[4096], got[4096];
    size_t nref = offline_events(ref, 4096);
    assert_true(nref > 10); /* hotspot, on target, holds, spasm, release, breathing */
    char uri[700], kmr[700], err[512];
    snprintf(uri, sizeof uri, "file://%s?speed=max", csv);
    snprintf(kmr, sizeof kmr, "%s/s.kmr", dir);
    km_session *s;
    assert_int_equal(open_recording(uri, kmr, false, &s, err, sizeof err), KM_OK);
    km_event_queue *reader = km_session_listen(s, "reader", 64);
    km_event_queue *stalled = km_session_listen(s, "stalled", 4); /* never popped */
    km_ring_consumer *watch;
    assert_int_equal(km_session_watch_frames(s, "watcher", &watch), KM_OK); /* never read */
    assert_non_null(reader);
    assert_non_null(stalled);
    assert_int_equal(km_session_start(s, err, sizeof err), KM_OK);
    size_t n = 0;
    km_event e;
    while (!(km_session_source_ended(s) && km_session_drained(s))) {
        while (km_event_queue_pop_spsc(reader, &e))
            got[n < 4096 ? n++ : n] = e;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(km_session_finish(s, err, sizeof err), KM_OK);
    while (km_event_queue_pop_spsc(reader, &e))
        got[n < 4096 ? n++ : n] = e;
    km_session_stats st;
    km_session_stats_get(s, &st);
    km_session_free(s);
    /* the reader: every event, in order, as offline */
    assert_int_equal(n, nref);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].type, ref[i].type);
        assert_true(got[i].t_s == ref[i].t_s);
    }
    /* the stalled listener lost what did not fit its 4 slots, and only it */
    assert_int_equal(st.nlisteners, 2);
    assert_string_equal(st.listeners[0].name, "reader");
    assert_int_equal(st.listeners[0].overruns, 0);
    assert_int_equal(st.listeners[1].overruns, nref - 4);
    /* a replay at max speed waits for the detectors and the recorder, not
     * for the watcher: nothing lost, all 6000 frames through */
    assert_int_equal(st.frames, 6000);
    assert_int_equal(st.dsp_lost, 0);
    assert_int_equal(st.recorder_lost, 0);
    assert_int_equal(st.recorded, 6000);
    km_kmr_report rep;
    assert_int_equal(km_kmr_check(kmr, &rep), KM_OK);
    assert_true(rep.ended);
    assert_int_equal(rep.frames, 6000);
    assert_int_equal(rep.events, nref); /* the last events too */
}

static void test_never_recorded_over_its_input(void **state)
{
    (void)state;
    char kmr[700], uri[800], err[512];
    snprintf(kmr, sizeof kmr, "%s/s.kmr", dir); /* made by the test before */
    snprintf(uri, sizeof uri, "file://%s?speed=max", kmr);
    km_session *s;
    assert_int_equal(open_recording(uri, kmr, true, &s, err, sizeof err), KM_EINVAL);
    assert_non_null(strstr(err, "is the input"));
    km_kmr_report rep;
    assert_int_equal(km_kmr_check(kmr, &rep), KM_OK);
    assert_int_equal(rep.frames, 6000);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct { int64_t host, dev; } seen_frame;

/* the device time of the last frame received at or before `at` (lo) and of
 * the first received at or after it (hi), among the frames watched */
static void around(const seen_frame *f, size_t n, int64_t at, double *lo, double *hi)
{
    *lo = -1e9;
    *hi = 1e9;
    for (size_t i = 0; i < n; i++) {
        if (f[i].host <= at && f[i].dev * 1e-9 > *lo)
            *lo = f[i].dev * 1e-9;
        if (f[i].host >= at && f[i].dev * 1e-9 < *hi)
            *hi = f[i].dev * 1e-9;
    }
}

static void watch_frames(km_ring_consumer *watch, km_frame *f, seen_frame *seen, size_t *n)
{
    while (km_ring_pop_spmc(watch, f, NULL) == KM_OK && *n < 8000)
        seen[(*n)++] = (seen_frame){f->host_ns, f->device_ns};
}

/* The recording holds the 4 marks; a re-analysis keeps them among its events */
static void check_recorded_marks(const char *kmr, const km_event *marks, const int *want)
{
    char err[512];
    km_event *rec;
    size_t nrec;
    assert_int_equal(km_kmr_read_events(kmr, &rec, &nrec, NULL, err, sizeof err), KM_OK);
    size_t k = 0;
    for (size_t i = 0; i < nrec; i++)
        if (rec[i].type == KM_EV_MARK) {
            assert_true(k < 4 && rec[i].t_s == marks[k].t_s);
            assert_int_equal((int)rec[i].value, want[k]);
            k++;
        }
    free(rec);
    assert_int_equal(k, 4);
    km_pass_options po = {.input = kmr, .reanalyze = true, .fast_plan = true};
    km_pass *p;
    assert_int_equal(km_pass_open(&po, &p, err, sizeof err), KM_OK);
    const km_frame *pf;
    const km_event *pe;
    size_t n, kept = 0, detected = 0;
    while (km_pass_next(p, &pf, &pe, &n) == KM_OK)
        for (size_t i = 0; i < n; i++) {
            if (pe[i].type == KM_EV_MARK) {
                assert_true(kept < 4 && pe[i].t_s == marks[kept].t_s);
                kept++;
            }
            detected += pe[i].type == KM_EV_ON_TARGET;
        }
    km_pass_close(p);
    assert_int_equal(kept, 4);
    assert_true(detected >= 1);
}

static void test_marks_reach_every_listener_and_the_recording(void **state)
{
    (void)state;
    char uri[700], kmr[700], err[512];
    snprintf(uri, sizeof uri, "file://%s?speed=20", csv); /* 60 s in 3 */
    snprintf(kmr, sizeof kmr, "%s/marks.kmr", dir);
    km_session *s;
    assert_int_equal(open_recording(uri, kmr, true, &s, err, sizeof err), KM_OK);
    km_event_queue *q[2] = {km_session_listen(s, "a", 4096), km_session_listen(s, "b", 4096)};
    km_ring_consumer *watch;
    assert_int_equal(km_session_watch_frames(s, "watcher", &watch), KM_OK);
    assert_false(km_session_mark(s, KM_MARK_TWITCH)); /* not running: counted */
    assert_int_equal(km_session_start(s, err, sizeof err), KM_OK);
    assert_false(km_session_mark(s, 0));               /* not a mark: refused, not counted */
    assert_false(km_session_mark(s, KM_MARK_COUNT));
    static seen_frame seen[8000];
    size_t nseen = 0;
    km_frame *f = km_frame_new(km_session_max_cells(s));
    const int want[] = {KM_MARK_TWITCH, KM_MARK_OUCH, KM_MARK_RELEASE, KM_MARK_TWITCH};
    int64_t pressed[4], t0 = mono_ns();
    size_t nm = 0;
    while (!km_session_source_ended(s)) {
        watch_frames(watch, f, seen, &nseen);
        if (nm < 3 && mono_ns() - t0 > (int64_t)(nm + 1) * 600000000) {
            pressed[nm] = mono_ns();
            assert_true(km_session_mark(s, want[nm]));
            nm++;
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    watch_frames(watch, f, seen, &nseen);
    assert_int_equal(nm, 3);
    /* pressed while the detectors drain or end: still given out */
    pressed[3] = mono_ns();
    assert_true(km_session_mark(s, want[3]));
    assert_int_equal(km_session_finish(s, err, sizeof err), KM_OK);
    assert_false(km_session_mark(s, KM_MARK_OUCH)); /* finished: counted */
    km_session_stats st;
    km_session_stats_get(s, &st);
    assert_int_equal(st.marks, 4);
    assert_int_equal(st.marks_lost, 2);
    km_event marks[2][8];
    size_t got[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        km_event e;
        while (km_event_queue_pop_spsc(q[k], &e))
            if (e.type == KM_EV_MARK && got[k] < 8)
                marks[k][got[k]++] = e;
    }
    km_session_free(s);
    km_frame_free(f);
    assert_int_equal(got[0], 4);
    assert_int_equal(got[1], 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal((int)marks[0][i].value, want[i]);
        assert_true(marks[1][i].t_s == marks[0][i].t_s && marks[1][i].value == marks[0][i].value);
        assert_true(marks[0][i].detected_t_s >= marks[0][i].t_s);
        double lo, hi;
        around(seen, nseen, pressed[i], &lo, &hi);
        /* between the frames around the press (the source runs 20 times
         * the host's clock: a host millisecond is 20 ms of its time) */
        if (i < 3 && !(marks[0][i].t_s >= lo - 0.05 && marks[0][i].t_s <= hi + 1e-9))
            fail_msg("mark %zu at %.3f s, the frames around the press at %.3f and %.3f s", i,
                     marks[0][i].t_s, lo, hi);
        if (i == 3 && !(marks[0][i].t_s >= lo - 0.05))
            fail_msg("the last mark at %.3f s, before the last frame (%.3f s)", marks[0][i].t_s,
                     lo);
    }
    check_recorded_marks(kmr, marks[0], want);
}

/* The report's comparison: a mark agrees with the nearest detected event of
 * its kind from 5 s before to 2 s after it; detected events no mark of the
 * kind agrees with are counted. */
static void test_marks_against_the_detector(void **state)
{
    (void)state;
#define EV(ty, t) {.type = ty, .t_s = t}
#define MK(m, t) {.type = KM_EV_MARK, .t_s = t, .value = m}
    const km_event ev[] = {
        EV(KM_EV_SPASM, 10), MK(KM_MARK_TWITCH, 11), EV(KM_EV_SPASM, 12.5), /* nearest: -1 */
        MK(KM_MARK_TWITCH, 30), EV(KM_EV_SPASM, 33),  /* 3 s after: too late to be this one */
        EV(KM_EV_SPASM, 50),                          /* nobody marked it */
        MK(KM_MARK_RELEASE, 58), EV(KM_EV_RELEASE, 60), /* 2 s after: agrees */
        MK(KM_MARK_OUCH, 70), EV(KM_EV_OVERPRESSURE, 64.9), /* 5.1 s before: not it */
        EV(KM_EV_RELEASE, 71),                        /* a twitch mark is not a release's */
        MK(NAN, 72), MK(7, 73), MK(1.5, 74),          /* a damaged file's: no mark at all */
    };
#undef EV
#undef MK
    mark_match mm[16];
    mark_agreement a;
    size_t n = km_marks_match_(ev, sizeof ev / sizeof ev[0], mm, &a);
    assert_int_equal(n, 4);
    assert_int_equal(mm[0].want, KM_EV_SPASM);
    assert_true(fabs(mm[0].dt_s + 1) < 1e-9);
    assert_true(isnan(mm[1].dt_s));
    assert_int_equal(mm[2].want, KM_EV_RELEASE);
    assert_true(fabs(mm[2].dt_s - 2) < 1e-9);
    assert_int_equal(mm[3].want, KM_EV_OVERPRESSURE);
    assert_true(isnan(mm[3].dt_s));
    assert_int_equal(a.marked[KM_MARK_TWITCH], 2);
    assert_int_equal(a.agreed[KM_MARK_TWITCH], 1);
    assert_int_equal(a.unmarked[KM_MARK_TWITCH], 2); /* 33 and 50 (12.5 is near the mark) */
    assert_int_equal(a.marked[KM_MARK_RELEASE], 1);
    assert_int_equal(a.agreed[KM_MARK_RELEASE], 1);
    assert_int_equal(a.unmarked[KM_MARK_RELEASE], 1); /* the one at 71 */
    assert_int_equal(a.marked[KM_MARK_OUCH], 1);
    assert_int_equal(a.agreed[KM_MARK_OUCH], 0);
    assert_int_equal(a.unmarked[KM_MARK_OUCH], 1);
    assert_int_equal(km_event_mark(&ev[11]), 0);
    assert_string_equal(km_event_label(&ev[11]), "mark"); /* its type, no kind */
    assert_string_equal(km_event_label(&ev[1]), "mark twitch");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_listener_gets_everything_a_stalled_one_only_loses_its_own),
        cmocka_unit_test(test_never_recorded_over_its_input),
        cmocka_unit_test(test_marks_reach_every_listener_and_the_recording),
        cmocka_unit_test(test_marks_against_the_detector),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
