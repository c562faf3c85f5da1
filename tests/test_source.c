/* test_source.c: URIs, opening sources and their errors, and sources running
 * into the ring on their own thread: replay order, pacing, stop, notes. */
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

#include "knotmat/files.h"
#include "knotmat/outfile.h"
#include "knotmat/sim.h"
#include "knotmat/source.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_uri_parse(void **state)
{
    (void)state;
    km_uri u;
    char err[256];
    assert_int_equal(km_uri_parse("sim://?seed=7&scenario=release", &u, err, sizeof err), KM_OK);
    assert_string_equal(u.scheme, "sim");
    assert_string_equal(u.path, "");
    assert_string_equal(km_uri_get(&u, "seed"), "7");
    assert_string_equal(km_uri_get(&u, "scenario"), "release");
    assert_null(km_uri_get(&u, "rate"));
    assert_int_equal(km_uri_parse("file:///data/a%20b.csv?speed=max", &u, err, sizeof err), KM_OK);
    assert_string_equal(u.scheme, "file");
    assert_string_equal(u.path, "/data/a b.csv");
    assert_string_equal(km_uri_get(&u, "speed"), "max");
    assert_int_equal(km_uri_parse("rel/x.txt", &u, err, sizeof err), KM_OK);
    assert_string_equal(u.scheme, "file");
    assert_string_equal(u.path, "rel/x.txt");
    assert_int_equal(km_uri_parse("USB://2c2f:0003/ABC", &u, err, sizeof err), KM_OK);
    assert_string_equal(u.scheme, "usb");
    assert_string_equal(u.path, "2c2f:0003/ABC");
    assert_int_equal(km_uri_parse("", &u, err, sizeof err), KM_EINVAL);
    assert_int_equal(km_uri_parse("://x", &u, err, sizeof err), KM_EINVAL);
    assert_int_equal(km_uri_parse("file://a%zz", &u, err, sizeof err), KM_EINVAL);
    assert_int_equal(km_uri_parse("file://a%4", &u, err, sizeof err), KM_EINVAL);
    assert_int_equal(km_uri_parse("sim://?=3", &u, err, sizeof err), KM_EINVAL);
}

static void expect_open_error(const char *uri, int code, const char *needle)
{
    km_source *s = NULL;
    char err[512] = "";
    int rc = km_source_open(uri, &s, err, sizeof err);
    if (rc != code || !strstr(err, needle))
        fail_msg("%s: rc %d '%s', wanted %d '%s'", uri, rc, err, code, needle);
    assert_null(s);
}

static void test_open_errors(void **state)
{
    (void)state;
    expect_open_error("ftp://x", KM_EUNSUPPORTED, "no source for scheme 'ftp://'");
    expect_open_error("sim://?speed=fast", KM_EINVAL, "speed must be 'max' or a positive number");
    expect_open_error("sim://?seed=-1", KM_EINVAL, "seed=-1 out of range");
    expect_open_error("sim://nap", KM_EUNSUPPORTED, "unknown scenario 'nap'");
    expect_open_error("file:///nonexistent.csv", KM_ENOENT, "/nonexistent.csv");
    expect_open_error("file://" KM_TEST_DATA "/pmatdata/1.txt?colour=red", KM_EINVAL,
                      "unknown parameter 'colour'");
    expect_open_error("file://" KM_TEST_DATA "/pmatdata/README.md", KM_EFORMAT,
                      "not a knotmat CSV");
}

typedef struct {
    int malformed, defects, end;
    char last[512];
} notes;

static void on_note(void *user, enum km_note_kind kind, const char *text)
{
    notes *n = user;
    n->malformed += kind == KM_NOTE_MALFORMED;
    n->defects += kind == KM_NOTE_DEFECT;
    n->end += kind == KM_NOTE_END;
    snprintf(n->last, sizeof n->last, "%s", text);
}

/* Drain a started source's ring; returns frames seen, checks order. */
static int drain(km_ring_consumer *c, km_frame *f, uint64_t *lost)
{
    int n = 0;
    int64_t last = -1;
    for (;;) {
        uint64_t l = 0;
        int rc = km_ring_pop_wait_spmc(c, f, &l, 5000000000LL);
        *lost += l;
        if (rc == KM_ECLOSED)
            return n;
        assert_int_equal(rc, KM_OK);
        assert_true((int64_t)f->seq > last);
        last = (int64_t)f->seq;
        n++;
    }
}

static void test_sim_source_max_speed_is_complete(void **state)
{
    (void)state;
    km_source *s;
    char err[256];
    assert_int_equal(km_source_open("sim://cough?seed=3&duration=5&rows=16&speed=max", &s, err,
                                    sizeof err), KM_OK);
    km_source_info info;
    km_source_describe(s, &info);
    assert_string_equal(info.kind, "sim");
    assert_true(info.live);
    assert_int_equal(info.rows, 16);
    assert_true(info.speed == 0);
    km_ring *r = km_ring_new(64, km_source_max_cells(s), KM_RING_BACKPRESSURE);
    km_ring_consumer *c;
    km_ring_consumer_add(r, "t", &c);
    km_frame *f = km_frame_new(km_source_max_cells(s));
    assert_int_equal(km_source_start(s, r), KM_OK);
    uint64_t lost = 0;
    assert_int_equal(drain(c, f, &lost), 500);
    assert_int_equal(lost, 0);
    km_source_stats st;
    km_source_stats_get(s, &st);
    assert_int_equal(st.frames, 500);
    assert_int_equal(st.lost_upstream, 0);
    km_source_close(s);
    km_frame_free(f);
    km_ring_free(r);
}

static void test_live_sim_is_paced_and_stops(void **state)
{
    (void)state;
    km_source *s;
    char err[256];
    assert_int_equal(km_source_open("sim://", &s, err, sizeof err), KM_OK);
    km_ring *r = km_ring_new(256, km_source_max_cells(s), KM_RING_LOSSY);
    km_ring_consumer *c;
    km_ring_consumer_add(r, "t", &c);
    km_frame *f = km_frame_new(km_source_max_cells(s));
    double t0 = now_s();
    assert_int_equal(km_source_start(s, r), KM_OK);
    assert_true(km_source_running(s));
    usleep(500000);
    double t1 = now_s();
    km_source_stop(s); /* must return promptly and close the ring */
    assert_true(now_s() - t1 < 0.5);
    assert_false(km_source_running(s));
    uint64_t lost = 0;
    int n = drain(c, f, &lost);
    /* 100 Hz for ~0.5 s: paced, not as fast as possible */
    assert_true(n >= 35 && n <= (int)((t1 - t0) * 100) + 5);
    assert_int_equal(lost, 0);
    km_source_close(s);
    km_frame_free(f);
    km_ring_free(r);
}

static void test_file_replay_matches_direct_read(void **state)
{
    (void)state;
    /* a CSV made by the simulator, replayed through the ring at max speed */
    char path[] = "/tmp/km_src_XXXXXX.csv";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    close(fd);
    km_sim_params p;
    km_sim_params_default(&p);
    p.duration_s = 3;
    p.rows = 8;
    p.cols = 12;
    km_sim *sim;
    char err[256];
    assert_int_equal(km_sim_new(&p, &sim, err, sizeof err), KM_OK);
    km_csv_writer *w;
    assert_int_equal(km_csv_writer_open(path, KM_OUT_FORCE, 8, 12, p.pitch_mm, 100, NULL, &w, err, sizeof err), 0);
    km_frame *f = km_frame_new(96), *g = km_frame_new(96);
    while (km_sim_next(sim, f) == KM_OK)
        km_csv_writer_write(w, f->device_ns * 1e-9, f);
    assert_int_equal(km_csv_writer_close(w, err, sizeof err), KM_OK);
    km_sim_free(sim);

    char uri[600];
    snprintf(uri, sizeof uri, "file://%s?speed=max", path);
    km_source *s;
    assert_int_equal(km_source_open(uri, &s, err, sizeof err), KM_OK);
    km_source_info info;
    km_source_describe(s, &info);
    assert_string_equal(info.kind, "knotmat-csv");
    assert_false(info.live);
    km_ring *r = km_ring_new(8, 96, KM_RING_BACKPRESSURE);
    km_ring_consumer *c;
    km_ring_consumer_add(r, "t", &c);
    km_frame_reader *direct;
    assert_int_equal(km_frame_reader_open(path, NULL, &direct, err, sizeof err), KM_OK);
    assert_int_equal(km_source_start(s, r), KM_OK);
    int n = 0;
    for (;;) {
        int rc = km_ring_pop_wait_spmc(c, f, NULL, 5000000000LL);
        if (rc == KM_ECLOSED)
            break;
        assert_int_equal(rc, KM_OK);
        assert_int_equal(km_frame_reader_next(direct, g, err, sizeof err), KM_OK);
        assert_int_equal(f->seq, g->seq);
        assert_int_equal(f->device_ns, g->device_ns);
        assert_memory_equal(f->kpa, g->kpa, 96 * sizeof(float));
        assert_true(f->host_ns > 0);
        n++;
    }
    assert_int_equal(n, 300);
    km_frame_reader_close(direct);
    km_source_close(s);
    km_ring_free(r);
    km_frame_free(f);
    km_frame_free(g);
    unlink(path);
}

static void test_pmatdata_source_reports_defects(void **state)
{
    (void)state;
    km_source *s;
    char err[256];
    assert_int_equal(km_source_open("file://" KM_TEST_DATA "/pmatdata/8.txt?speed=max", &s,
                                    err, sizeof err), KM_OK);
    notes n = {0};
    km_source_set_notify(s, on_note, &n);
    km_frame *f = km_frame_new(km_source_max_cells(s));
    int frames = 0, corrupt = 0;
    while (km_source_read(s, f) == KM_OK) {
        frames++;
        corrupt += (f->flags & KM_FRAME_CORRUPT) != 0;
    }
    assert_int_equal(frames, 72);
    assert_int_equal(corrupt, 2);
    assert_int_equal(n.defects, 2);
    assert_int_equal(n.end, 1);
    km_source_stats st;
    km_source_stats_get(s, &st);
    assert_int_equal(st.corrupt, 2);
    km_source_close(s);
    km_frame_free(f);
}

static void test_malformed_lines_are_skipped_and_reported(void **state)
{
    (void)state;
    char path[] = "/tmp/km_bad_XXXXXX.csv";
    int fd = mkstemps(path, 4);
    FILE *fp = fdopen(fd, "w");
    fputs("# knotmat-csv 1\n# rows=1\n# cols=2\n# pitch_mm=10\n# units=kPa\nt_s,r0c0,r0c1\n"
          "0,1,2\n0.01,1\n0.02,1,2\n0.03,x,2\n0.04,3,4\n", fp);
    fclose(fp);
    char uri[300], err[256];
    snprintf(uri, sizeof uri, "file://%s", path);
    km_source *s;
    assert_int_equal(km_source_open(uri, &s, err, sizeof err), KM_OK);
    notes n = {0};
    km_source_set_notify(s, on_note, &n);
    km_frame *f = km_frame_new(2);
    int frames = 0;
    while (km_source_read(s, f) == KM_OK)
        frames++;
    assert_int_equal(frames, 3);
    assert_int_equal(n.malformed, 2);
    km_source_stats st;
    km_source_stats_get(s, &st);
    assert_int_equal(st.malformed, 2);
    km_source_close(s);
    km_frame_free(f);
    unlink(path);
}

static void test_paced_file_replay_takes_real_time(void **state)
{
    (void)state;
    km_source *s;
    char err[256];
    /* 8.txt at 1 Hz would take 72 s; rate=40 makes it 1.8 s of real time */
    assert_int_equal(km_source_open("file://" KM_TEST_DATA "/pmatdata/8.txt?rate=40", &s, err,
                                    sizeof err), KM_OK);
    km_ring *r = km_ring_new(128, km_source_max_cells(s), KM_RING_LOSSY);
    km_ring_consumer *c;
    km_ring_consumer_add(r, "t", &c);
    km_frame *f = km_frame_new(km_source_max_cells(s));
    double t0 = now_s();
    assert_int_equal(km_source_start(s, r), KM_OK);
    uint64_t lost = 0;
    int n = drain(c, f, &lost);
    double el = now_s() - t0;
    assert_int_equal(n, 72);
    assert_true(el > 71.0 / 40 - 0.05 && el < 71.0 / 40 + 1.0);
    km_source_close(s);
    km_ring_free(r);
    km_frame_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_parse),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_sim_source_max_speed_is_complete),
        cmocka_unit_test(test_live_sim_is_paced_and_stops),
        cmocka_unit_test(test_file_replay_matches_direct_read),
        cmocka_unit_test(test_pmatdata_source_reports_defects),
        cmocka_unit_test(test_malformed_lines_are_skipped_and_reported),
        cmocka_unit_test(test_paced_file_replay_takes_real_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
