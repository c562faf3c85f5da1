/* test_session.c: the live pipeline of the library (knotmat/session.h).
 * Every listener gets every event, in order, through its own queue; a
 * listener that never reads loses only its own events (counted) and stalls
 * nobody; the recording holds every frame and every event, the last ones
 * (decided while the detectors drain) included; a replay at max speed loses
 * nothing; a lossy frame watcher that never reads does not stall the
 * replay; a session is never recorded over its own input. Runs under TSan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "knotmat/dsp.h"
#include "knotmat/files.h"
#include "knotmat/outfile.h"
#include "knotmat/record.h"
#include "knotmat/session.h"
#include "knotmat/sim.h"

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
    km_session_config c;
    km_session_config_default(&c);
    c.source = uri;
    c.record_path = kmr;
    km_session *s;
    assert_int_equal(km_session_open(&c, &s, err, sizeof err), KM_OK);
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
    km_session_config c;
    km_session_config_default(&c);
    c.source = uri;
    c.record_path = kmr;
    c.record.force = true;
    km_session *s;
    assert_int_equal(km_session_open(&c, &s, err, sizeof err), KM_EINVAL);
    assert_non_null(strstr(err, "is the input"));
    km_kmr_report rep;
    assert_int_equal(km_kmr_check(kmr, &rep), KM_OK);
    assert_int_equal(rep.frames, 6000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_listener_gets_everything_a_stalled_one_only_loses_its_own),
        cmocka_unit_test(test_never_recorded_over_its_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
