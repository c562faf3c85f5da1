/* test_files.c: the CSV and PmatData readers and the CSV/labels writers:
 * round trips, unit conversion, CRLF, and every kind of malformed input
 * answered with file, line and reason (never a crash); the Tekscan and
 * XSENSOR imports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "knotmat/files.h"
#include "knotmat/outfile.h"
#include "knotmat/record.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/km_test_files_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_tmp(const char *name, const char *content)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
    return path;
}

#define HDR2x2 "# knotmat-csv 1\n# rows=2\n# cols=2\n# pitch_mm=10\n# rate_hz=100\n# units=kPa\n" \
               "t_s,r0c0,r0c1,r1c0,r1c1\n"

/* Read every frame; return the count of good frames, store the first error. */
static int read_all(const char *path, int *n_bad, char *first_err, size_t len, km_frame **last)
{
    char err[512];
    km_frame_reader *r;
    int rc = km_frame_reader_open(path, NULL, &r, err, sizeof err);
    if (rc) {
        snprintf(first_err, len, "%s", err);
        return -rc;
    }
    const km_file_meta *m = km_frame_reader_meta(r);
    km_frame *f = km_frame_new((uint32_t)m->rows * m->cols);
    int good = 0;
    *n_bad = 0;
    first_err[0] = 0;
    for (;;) {
        rc = km_frame_reader_next(r, f, err, sizeof err);
        if (rc == KM_EEOF)
            break;
        if (rc == KM_EFORMAT) {
            if (!(*n_bad)++)
                snprintf(first_err, len, "%s", err);
            continue;
        }
        assert_int_equal(rc, KM_OK);
        good++;
    }
    km_frame_reader_close(r);
    if (last)
        *last = f;
    else
        km_frame_free(f);
    return good;
}

static void test_csv_reads_layout_and_units(void **state)
{
    (void)state;
    const char *p = write_tmp("a.csv", "# knotmat-csv 1\r\n# cols=2\r\n# note=kept\r\n# rows=2\r\n"
                                       "# units=mmHg\r\n# pitch_mm=12.7\r\n"
                                       "t_s,r0c0,r0c1,r1c0,r1c1\r\n"
                                       "0.000000,0,7.5,1e1,-0\r\n0.01,1,2,3,4\r\n");
    int bad;
    char err[512];
    km_frame *f;
    assert_int_equal(read_all(p, &bad, err, sizeof err, &f), 2);
    assert_int_equal(bad, 0);
    assert_int_equal(f->rows, 2);
    assert_int_equal(f->cols, 2);
    assert_true(fabsf(f->pitch_mm - 12.7f) < 1e-6f);
    assert_true(fabsf(f->kpa[3] - 4 * KM_KPA_PER_MMHG) < 1e-6f);
    assert_int_equal(f->device_ns, 10000000);
    assert_int_equal(f->seq, 1);
    km_frame_free(f);
}

static void expect_error(const char *name, const char *content, const char *needle, int good_frames)
{
    const char *p = write_tmp(name, content);
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    int bad;
    char err[512];
    int got = read_all(path, &bad, err, sizeof err, NULL);
    if (!strstr(err, needle) || got != good_frames)
        fail_msg("%s: got %d frames, error '%s', wanted %d frames and '%s'", name, got, err,
                 good_frames, needle);
    assert_non_null(strstr(err, path)); /* every message names the file */
}

static void test_csv_malformed_inputs(void **state)
{
    (void)state;
    expect_error("few.csv", HDR2x2 "0,1,2,3,4\n0.01,1,2,3\n0.02,1,2,3,4\n", ":9: too few fields",
                 2);
    expect_error("many.csv", HDR2x2 "0,1,2,3,4,5\n", ":8: too many fields", 0);
    expect_error("word.csv", HDR2x2 "0,1,abc,3,4\n", ":8: cell r0c1: 'abc' is not a number", 0);
    expect_error("nan.csv", HDR2x2 "0,1,2,nan,4\n", "cell r1c0: 'nan' is not finite", 0);
    expect_error("inf.csv", HDR2x2 "0,1,2,3,-inf\n", "cell r1c1: '-inf' is not finite", 0);
    expect_error("trunc.csv", HDR2x2 "0,1,2,3,4\n0.01,1,2", ":9: truncated last line", 1);
    expect_error("back.csv", HDR2x2 "1,1,2,3,4\n0.5,1,2,3,4\n", ":9: t_s 0.500000 goes back", 1);
    expect_error("tnan.csv", HDR2x2 "x,1,2,3,4\n", ":8: t_s", 0);
    expect_error("norows.csv", "# knotmat-csv 1\n# cols=2\n# pitch_mm=1\n# units=kPa\nt_s,a,b\n",
                 "required header key 'rows' is missing", -KM_EFORMAT);
    expect_error("units.csv",
                 "# knotmat-csv 1\n# rows=1\n# cols=1\n# pitch_mm=1\n# units=psi\nt_s,r0c0\n",
                 "units 'psi' not understood", -KM_EFORMAT);
    expect_error("cols.csv",
                 "# knotmat-csv 1\n# rows=2\n# cols=2\n# pitch_mm=1\n# units=kPa\nt_s,r0c0\n",
                 "column line has 2 fields", -KM_EFORMAT);
    expect_error("ver.csv", "# knotmat-csv 2\n", "version 2 not supported", -KM_EUNSUPPORTED);
    expect_error("neg.csv", "# knotmat-csv 1\n# rows=-2\n", "bad value '-2' for 'rows'",
                 -KM_EFORMAT);
    expect_error("hdr.csv", "# knotmat-csv 1\n# rows=2\n", "ends inside the header", -KM_EFORMAT);
    expect_error("junk.bin", "\x01\x02garbage", "not a knotmat CSV", -KM_EFORMAT);
    expect_error("empty.csv", "", "not a knotmat CSV", -KM_EFORMAT);
}

static void test_csv_missing_file(void **state)
{
    (void)state;
    char err[256];
    km_frame_reader *r;
    assert_int_equal(km_frame_reader_open("/nonexistent/x.csv", NULL, &r, err, sizeof err),
                     KM_ENOENT);
    assert_non_null(strstr(err, "/nonexistent/x.csv"));
}

static void test_csv_raw_units_dead_and_saturation(void **state)
{
    (void)state;
    const char *p = write_tmp("raw.csv", "# knotmat-csv 1\n# rows=1\n# cols=3\n# pitch_mm=5\n"
                                         "# units=raw\n# kpa_per_count=0.5\n# full_scale_kpa=100\n"
                                         "# dead=r0c1\nt_s,r0c0,r0c1,r0c2\n0,10,20,400\n");
    int bad;
    char err[256];
    km_frame *f;
    assert_int_equal(read_all(p, &bad, err, sizeof err, &f), 1);
    assert_true(f->kpa[0] == 5.0f);
    assert_int_equal(f->raw[2], 400);
    assert_true(f->flags & KM_FRAME_HAS_RAW);
    assert_false(f->flags & KM_FRAME_UNCALIBRATED);
    assert_int_equal(f->cell_flags[1], KM_CELL_DEAD);
    assert_int_equal(f->cell_flags[2], KM_CELL_SATURATED);
    assert_int_equal(f->n_dead, 1);
    assert_int_equal(f->n_saturated, 1);
    km_frame_free(f);
}

static void test_csv_writer_round_trip(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/rt.csv", tmpdir);
    km_csv_writer *w;
    char err[256];
    const char *extra[] = {"subject=none", NULL};
    assert_int_equal(km_csv_writer_open(path, KM_OUT_FORCE, 3, 4, 12.7f, 100, extra, &w, err, sizeof err), KM_OK);
    km_frame *f = km_frame_new(12);
    for (int n = 0; n < 50; n++) {
        km_frame_reset(f, 3, 4, 12.7f);
        for (int i = 0; i < 12; i++)
            f->kpa[i] = (float)(n * 13 + i) * 0.37f - 1.0f;
        assert_int_equal(km_csv_writer_write(w, n * 0.01, f), KM_OK);
    }
    assert_int_equal(km_csv_writer_close(w, err, sizeof err), KM_OK);
    km_frame_reader *r;
    assert_int_equal(km_frame_reader_open(path, NULL, &r, err, sizeof err), KM_OK);
    assert_int_equal(km_frame_reader_meta(r)->rate_hz, 100);
    for (int n = 0; n < 50; n++) {
        assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_OK);
        assert_int_equal(f->device_ns, (int64_t)n * 10000000);
        for (int i = 0; i < 12; i++)
            assert_true(fabsf(f->kpa[i] - ((float)(n * 13 + i) * 0.37f - 1.0f)) <= 0.0051f);
    }
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EEOF);
    km_frame_reader_close(r);
    km_frame_free(f);
}

/* A write that fails (here a file-size limit, as on a full disk) is an
 * error naming the file, and leaves nothing behind: no partial file under
 * the target name, no temporary file, an existing target untouched. */
static void test_writer_reports_full_disk(void **state)
{
    (void)state;
    char path[512], cmd[700];
    snprintf(path, sizeof path, "%s/full.csv", tmpdir);
    FILE *old = fopen(path, "w");
    fputs("precious\n", old);
    fclose(old);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {20000, 20000};
        setrlimit(RLIMIT_FSIZE, &rl);
        km_csv_writer *w;
        char err[256];
        if (km_csv_writer_open(path, KM_OUT_FORCE, 2, 2, 1, 1, NULL, &w, err, sizeof err))
            _exit(2);
        km_frame *f = km_frame_new(4);
        km_frame_reset(f, 2, 2, 1);
        int rc = KM_OK;
        for (int i = 0; i < 20000 && rc == KM_OK; i++)
            rc = km_csv_writer_write(w, i, f);
        int crc = km_csv_writer_close(w, err, sizeof err);
        _exit((rc == KM_EIO || crc == KM_EIO) && strstr(err, "full.csv") ? 0 : 3);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char line[32] = "";
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    assert_string_equal(line, "precious\n");
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c '^\\.full.csv' | grep -qx 0", tmpdir);
    assert_int_equal(system(cmd), 0); /* no temporary file left */
    unlink(path);
}

/* Outputs never go through a device node or a symlink, and are 0600. */
static void test_writer_refuses_devices_and_links(void **state)
{
    (void)state;
    km_csv_writer *w;
    char err[256], link[512], target[512];
    assert_int_equal(km_csv_writer_open("/dev/null", KM_OUT_FORCE, 2, 2, 1, 1, NULL, &w, err,
                                        sizeof err), KM_EINVAL);
    assert_non_null(strstr(err, "character device"));
    struct stat st;
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode) && (st.st_mode & 0666) == 0666);
    snprintf(link, sizeof link, "%s/l.csv", tmpdir);
    snprintf(target, sizeof target, "%s/planted.csv", tmpdir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(km_csv_writer_open(link, 0, 2, 2, 1, 1, NULL, &w, err, sizeof err),
                     KM_EBUSY);
    assert_int_equal(access(target, F_OK), -1); /* nothing created through the link */
    unlink(link);
    char out[512];
    snprintf(out, sizeof out, "%s/mode.csv", tmpdir);
    mode_t old = umask(0);
    assert_int_equal(km_csv_writer_open(out, 0, 2, 2, 1, 1, NULL, &w, err, sizeof err), KM_OK);
    umask(old);
    assert_int_equal(km_csv_writer_close(w, err, sizeof err), KM_OK);
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    unlink(out);
}

static void test_labels_round_trip_and_errors(void **state)
{
    (void)state;
    char path[512], lp[600], err[256];
    snprintf(path, sizeof path, "%s/s.csv", tmpdir);
    km_labels_path_for(path, lp, sizeof lp);
    assert_non_null(strstr(lp, "/s.labels.csv"));
    km_label in[2] = {{12.345, "spasm", 101.6, 203.2}, {20.5, "release", 101.6, 203.2}};
    assert_int_equal(km_labels_write(lp, KM_OUT_FORCE, in, 2, err, sizeof err), KM_OK);
    km_label *out;
    size_t n;
    assert_int_equal(km_labels_read(lp, &out, &n, err, sizeof err), KM_OK);
    assert_int_equal(n, 2);
    assert_string_equal(out[1].type, "release");
    assert_true(fabs(out[0].t_s - 12.345) < 1e-9 && fabs(out[0].y_mm - 203.2) < 1e-9);
    free(out);
    const char *bad = write_tmp("b.labels.csv", "t_s,type,x_mm,y_mm\n1,twitch,0,0\n");
    assert_int_equal(km_labels_read(bad, &out, &n, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, ":2:"));
}

static void test_pmatdata_real_file(void **state)
{
    (void)state;
    char err[512];
    km_frame_reader *r;
    assert_int_equal(km_file_sniff(KM_TEST_DATA "/pmatdata/1.txt"), KM_FORMAT_PMATDATA);
    assert_int_equal(km_frame_reader_open(KM_TEST_DATA "/pmatdata/1.txt", NULL, &r, err,
                                          sizeof err), KM_OK);
    const km_file_meta *m = km_frame_reader_meta(r);
    assert_int_equal(m->rows, 64);
    assert_int_equal(m->cols, 32);
    assert_false(m->calibrated);
    km_frame *f = km_frame_new(2048);
    int frames = 0, corrupt = 0, corrupt_line = 0;
    double load_first = 0, load_last = 0;
    while (km_frame_reader_next(r, f, err, sizeof err) == KM_OK) {
        frames++;
        assert_int_equal(f->rows, 64);
        assert_true(f->flags & KM_FRAME_HAS_RAW);
        if (f->flags & KM_FRAME_CORRUPT) {
            corrupt++;
            corrupt_line = (int)km_frame_reader_line(r);
            assert_non_null(strstr(err, "byte-shifted"));
            continue;
        }
        double s = 0;
        for (int i = 0; i < 2048; i++)
            s += f->raw[i];
        if (!load_first && s > 10000)
            load_first = s;
        load_last = s;
    }
    assert_int_equal(frames, 82);
    assert_int_equal(corrupt, 1);
    assert_int_equal(corrupt_line, 2);
    /* the real file creeps upward while the posture is held */
    assert_true(load_last > load_first * 1.05);
    km_frame_reader_close(r);

    /* 8.txt: two corrupt frames, the second shifted only in its lower half */
    assert_int_equal(km_frame_reader_open(KM_TEST_DATA "/pmatdata/8.txt", NULL, &r, err,
                                          sizeof err), KM_OK);
    frames = corrupt = 0;
    while (km_frame_reader_next(r, f, err, sizeof err) == KM_OK) {
        frames++;
        corrupt += (f->flags & KM_FRAME_CORRUPT) != 0;
    }
    assert_int_equal(frames, 72);
    assert_int_equal(corrupt, 2);
    km_frame_reader_close(r);
    km_frame_free(f);
}

static void test_pmatdata_malformed(void **state)
{
    (void)state;
    km_reader_options o;
    km_reader_options_default(&o);
    o.rows = 2;
    o.cols = 3;
    const char *p =
        write_tmp("p.txt", "1\t2\t3\t4\t5\t6\t\r\n1\t2\t3\t4\t5\t\r\n1\t2\tx\t4\t5\t6\t\n"
                           "1\t2\t3\t4\t5\t6\t7\t\n9\t9\t9\t9\t9\t9\t\n1\t2\t3");
    char err[512];
    km_frame_reader *r;
    assert_int_equal(km_frame_reader_open(p, &o, &r, err, sizeof err), KM_OK);
    km_frame *f = km_frame_new(6);
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_OK);
    assert_int_equal(f->raw[5], 6);
    assert_true(fabsf(f->kpa[0] - 0.1f * KM_KPA_PER_MMHG) < 1e-7f);
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, ":2: 5 values, expected 6"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, ":3: value 3: 'x' is not a count"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, ":4: too many values"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_OK);
    assert_int_equal(f->seq, 1);
    assert_int_equal(f->device_ns, 1000000000); /* 1 Hz default */
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, ":6: truncated last line"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EEOF);
    km_frame_reader_close(r);
    km_frame_free(f);
}

/* ---- imports: Tekscan ASCII and XSENSOR CSV ----------------------------- */

static void test_tekscan_fixture(void **state)
{
    (void)state;
    const char *p = KM_TEST_DATA "/tekscan/tekscan_ball.asf";
    assert_int_equal(km_file_sniff(p), KM_FORMAT_TEKSCAN);
    char err[512];
    km_frame_reader *r;
    assert_int_equal(km_frame_reader_open(p, NULL, &r, err, sizeof err), KM_OK);
    const km_file_meta *m = km_frame_reader_meta(r);
    assert_int_equal(m->rows, 12);
    assert_int_equal(m->cols, 16);
    assert_true(fabsf(m->pitch_mm - 5.08f) < 1e-4f); /* 0.508 cm */
    assert_true(fabs(m->rate_hz - 100.0) < 1e-9);
    assert_true(m->calibrated);
    km_frame *f = km_frame_new(12 * 16);
    for (int n = 0; n < 5; n++) {
        assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_OK);
        assert_int_equal(f->seq, (uint64_t)n);
        assert_int_equal(f->device_ns, n * 10000000LL);
        /* the blob's centre moves one cell down and right per frame */
        assert_true(fabsf(f->kpa[(5 + n) * 16 + 7 + n] - 120.0f) < 1e-4f);
        assert_int_equal(f->n_dead, 2);
        assert_true(f->cell_flags[11 * 16] & KM_CELL_DEAD);
        assert_int_equal(f->n_saturated, n == 4 ? 1 : 0);
    }
    assert_true(fabsf(f->kpa[5 * 16] - 200.0f) < 1e-4f);
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EEOF);
    km_frame_reader_close(r);
    km_frame_free(f);
}

static const char tek_head[] = "DATA_TYPE MOVIE\nROWS 2\nCOLS 3\nROW_SPACING 1.27 mm\n"
                               "COL_SPACING 1.27 mm\nSECONDS_PER_FRAME 0.5\nSTART_FRAME 3\n";

static void test_tekscan_units_and_malformed(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof text, "%sUNITS MPa\nASCII_DATA @@\n\nFrame 3\n0.1,0.2,0.3,\n1,2,3\n\n"
             "Frame 4\n1,x1,3\n1,2,3\n\nFrame 5\n1,2\n1,2,3\n\nFrame 6\n1,2,3,4\n1,2,3\n\n"
             "Frame 7\n4,5,6\n\nFrame 8\n7,8,9\n7,8,9\n\nFrame 9\n1,1,1\n", tek_head);
    const char *p = write_tmp("t.asf", text);
    char err[512];
    km_frame_reader *r;
    assert_int_equal(km_frame_reader_open(p, NULL, &r, err, sizeof err), KM_OK);
    km_frame *f = km_frame_new(6);
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_OK);
    assert_true(fabsf(f->kpa[2] - 300.0f) < 1e-3f); /* MPa -> kPa */
    assert_int_equal(f->device_ns, 0);               /* frame 3 = START_FRAME */
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, "t.asf:16: row 0, column 1: 'x1' is not a number"));
    /* one error per bad frame: the rest of it is skipped */
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, ":20: row 0 has 2 values, the header says 3 columns"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, ":24: row 0 has more than the 3 columns"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, "Frame 7 has 1 of its 2 rows"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_OK);
    assert_int_equal(f->device_ns, 2500000000LL); /* (8 - 3) * 0.5 s */
    assert_true(fabsf(f->kpa[0] - 7000.0f) < 1e-2f);
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, "Frame 9 has 1 of its 2 rows (the file ends there)"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EEOF);
    km_frame_reader_close(r);
    km_frame_free(f);
}

static void test_tekscan_header_errors(void **state)
{
    (void)state;
    struct { const char *text, *want;
    } cases[] = {
        {"DATA_TYPE MOVIE\nROWS 2\nCOLS 3\nROW_SPACING 1.27 mm\nCOL_SPACING 2.54 mm\n"
         "SECONDS_PER_FRAME 0.5\nUNITS kPa\nFrame 1\n",
         "differ; knotmat needs square cells"},
        {"DATA_TYPE MOVIE\nROWS 2\nCOLS 3\nROW_SPACING 1 mm\nCOL_SPACING 1 mm\n"
         "SECONDS_PER_FRAME 0.5\nUNITS furlongs\nFrame 1\n",
         "pressure unit 'furlongs' not understood"},
        {"DATA_TYPE MOVIE\nROWS 2\nCOLS 3\nROW_SPACING 1 mm\nCOL_SPACING 1 mm\nUNITS kPa\n"
         "Frame 1\n",
         "Tekscan header has no SECONDS_PER_FRAME line"},
        {"DATA_TYPE MOVIE\nROWS -2\nCOLS 3\n", ":2: bad value '-2' for ROWS"},
        {"DATA_TYPE MOVIE\nROWS 2\nCOLS 3\nROW_SPACING 1 parsec\n", "bad value '1 parsec'"},
        {"DATA_TYPE MOVIE\nROWS 2\nCOLS 3\n", "file ends inside the Tekscan header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_tmp("h.asf", cases[i].text);
        char err[512] = "";
        km_frame_reader *r = NULL;
        assert_int_not_equal(km_frame_reader_open(p, NULL, &r, err, sizeof err), KM_OK);
        assert_null(r);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, cases[i].want);
    }
}

static void test_xsensor_fixture(void **state)
{
    (void)state;
    const char *p = KM_TEST_DATA "/xsensor/xsensor_ball.csv";
    assert_int_equal(km_file_sniff(p), KM_FORMAT_XSENSOR);
    char err[512];
    km_frame_reader *r;
    assert_int_equal(km_frame_reader_open(p, NULL, &r, err, sizeof err), KM_OK);
    const km_file_meta *m = km_frame_reader_meta(r);
    assert_int_equal(m->rows, 12);
    assert_int_equal(m->cols, 16);
    assert_true(fabsf(m->pitch_mm - 10.16f) < 1e-4f); /* "1,016" cm, decimal comma */
    assert_true(fabs(m->rate_hz - 20.0) < 1e-6);      /* Time labels 50 ms apart */
    assert_string_equal(m->units, "mmHg");
    km_frame *f = km_frame_new(12 * 16);
    for (int n = 0; n < 4; n++) {
        assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_OK);
        assert_true(llabs(f->device_ns - n * 50000000LL) < 1000);
        /* 900.0 mmHg at the blob's centre */
        assert_true(fabsf(f->kpa[(5 + n) * 16 + 7 + n] - 900.0f * KM_KPA_PER_MMHG) < 1e-3f);
    }
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EEOF);
    km_frame_reader_close(r);
    km_frame_free(f);
}

static void test_xsensor_plain_midnight_and_errors(void **state)
{
    (void)state;
    const char *p = write_tmp("x.csv",
                              "Sensor:,LX100\nRows:,2\nColumns:,2\nSensel Width (in):,0.5\n"
                              "Sensel Height (in):,0.5\nPressure Units:,PSI\n"
                              "Frame:,1\nTime:,23:59:59.950\n1,2\n3,4\n"
                              "Frame:,2\nTime:,00:00:00.000\n1,2\n3,4\n"
                              "Frame:,3\nTime:,00:00:00.050\n1,2\nFrame:,4\nTime:,00:00:00.100\n"
                              "1,2\n3,oops\nFrame:,5\nRows:,3\n");
    char err[512];
    km_frame_reader *r;
    assert_int_equal(km_frame_reader_open(p, NULL, &r, err, sizeof err), KM_OK);
    const km_file_meta *m = km_frame_reader_meta(r);
    assert_true(fabsf(m->pitch_mm - 12.7f) < 1e-4f);
    km_frame *f = km_frame_new(4);
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_OK);
    assert_true(fabsf(f->kpa[3] - 4 * 6.894757f) < 1e-3f);
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_OK);
    assert_true(llabs(f->device_ns - 50000000LL) < 1000); /* across midnight */
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, "frame has 1 of its 2 rows"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, "x.csv:21: row 1, column 1: 'oops' is not a number"));
    assert_int_equal(km_frame_reader_next(r, f, err, sizeof err), KM_EUNSUPPORTED);
    assert_non_null(strstr(err, "the sensor size changes to 3x2 mid-file"));
    km_frame_reader_close(r);
    p = write_tmp("y.csv", "Rows:,2\nColumns:,2\nSensel Width (cm):,1\nUnits:,bananas\n1,2\n3,4\n");
    assert_int_equal(km_frame_reader_open(p, NULL, &r, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, "pressure unit 'bananas' not understood"));
    p = write_tmp("z.csv", "Rows:,2\nColumns:,2\nUnits:,kPa\n1,2\n3,4\n");
    assert_int_equal(km_frame_reader_open(p, NULL, &r, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, "no 'Sensel Width:' line before the first frame"));
    km_frame_free(f);
}

/* One reader for every format: a .kmr reads through km_frame_reader like a
 * CSV, its header comes with it, and the frames are the ones written. */
static void test_kmr_through_the_frame_reader(void **state)
{
    (void)state;
    char path[400], err[512];
    snprintf(path, sizeof path, "%s/r.kmr", tmpdir);
    km_record_meta m;
    memset(&m, 0, sizeof m);
    m.rows = 3;
    m.cols = 5;
    m.pitch_mm = 10;
    m.rate_hz = 40;
    snprintf(m.subject, sizeof m.subject, "S-1");
    km_recorder *rec;
    assert_int_equal(km_recorder_open(path, &m, NULL, &rec, err, sizeof err), KM_OK);
    km_frame *f = km_frame_new(15);
    for (int i = 0; i < 30; i++) {
        km_frame_reset(f, 3, 5, 10);
        f->seq = (uint64_t)i;
        f->device_ns = (int64_t)i * 25000000;
        for (int c = 0; c < 15; c++)
            f->kpa[c] = (float)(i + c);
        assert_int_equal(km_recorder_add_frame(rec, f), KM_OK);
    }
    assert_int_equal(km_recorder_close(rec, err, sizeof err), KM_OK);
    assert_int_equal(km_file_sniff(path), KM_FORMAT_KMR);
    km_frame_reader *r;
    assert_int_equal(km_frame_reader_open(path, NULL, &r, err, sizeof err), KM_OK);
    const km_file_meta *fm = km_frame_reader_meta(r);
    assert_int_equal(fm->format, KM_FORMAT_KMR);
    assert_int_equal(fm->rows, 3);
    assert_int_equal(fm->cols, 5);
    assert_true(fm->rate_hz == 40);
    assert_string_equal(km_file_format_name(fm->format), "kmr");
    assert_non_null(km_frame_reader_record_meta(r));
    assert_string_equal(km_frame_reader_record_meta(r)->subject, "S-1");
    int n = 0, rc;
    while ((rc = km_frame_reader_next(r, f, err, sizeof err)) == KM_OK) {
        assert_int_equal(f->seq, (uint64_t)n);
        assert_true(f->kpa[14] == (float)(n + 14));
        n++;
    }
    assert_int_equal(rc, KM_EEOF);
    assert_int_equal(n, 30);
    km_frame_reader_close(r);
    km_frame_free(f);
    /* its first block damaged: still known as a recording, and said what is wrong */
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 4, SEEK_SET), 0);
    fputc(9, fp); /* the header's type byte */
    fclose(fp);
    assert_int_equal(km_frame_reader_open(path, NULL, &r, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, "not a readable .kmr header"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_reads_layout_and_units),
        cmocka_unit_test(test_kmr_through_the_frame_reader),
        cmocka_unit_test(test_csv_malformed_inputs),
        cmocka_unit_test(test_csv_missing_file),
        cmocka_unit_test(test_csv_raw_units_dead_and_saturation),
        cmocka_unit_test(test_csv_writer_round_trip),
        cmocka_unit_test(test_writer_reports_full_disk),
        cmocka_unit_test(test_writer_refuses_devices_and_links),
        cmocka_unit_test(test_labels_round_trip_and_errors),
        cmocka_unit_test(test_pmatdata_real_file),
        cmocka_unit_test(test_pmatdata_malformed),
        cmocka_unit_test(test_tekscan_fixture),
        cmocka_unit_test(test_tekscan_units_and_malformed),
        cmocka_unit_test(test_tekscan_header_errors),
        cmocka_unit_test(test_xsensor_fixture),
        cmocka_unit_test(test_xsensor_plain_midnight_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
