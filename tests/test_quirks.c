/* test_quirks.c: the quirks files that describe DIY USB mats: parsing, the
 * documented errors (file:line), matching (serial beats VID:PID, later files
 * override earlier ones), and applying a quirk to device counts
 * (orientation, dead cells, zero offset, calibration, saturation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usbmat_private.h"

static char dir[256];

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/km_quirks_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void test_parse_and_match(void **state)
{
    const char *p = write_file("a.quirks",
                               "# a comment\n"
                               "[Generic 4x3]\nMatchUSBID=16c0:0483\nProtocol=fsr-rle\nRows=4\n"
                               "Cols=3\nPitchMM=20\n\n"
                               "[Special serial]\nMatchUSBID=16c0:0483\nMatchSerial=KM-*\n"
                               "Protocol=fsr-poll\nRows=2\nCols=5\nPitchMM=10\nPollByte=0x52\n"
                               "Orientation=rotate-90\nDeadCells=r0c1;r1c4\nKpaPerCount=0.25\n"
                               "ZeroCount=3\nFullScale=200\n");
    km_quirk q[8];
    size_t n = 0;
    char err[256];
    assert_int_equal(km_quirks_parse_file_(p, q, 8, &n, err, sizeof err), KM_OK);
    assert_int_equal(n, 2);
    assert_string_equal(q[1].protocol, "fsr-poll");
    assert_int_equal(q[1].poll_byte, 0x52);
    assert_int_equal(q[1].ndead, 2);
    assert_ptr_equal(km_quirks_match_(q, n, 0x16c0, 0x0483, "KM-0042"), &q[1]);
    assert_ptr_equal(km_quirks_match_(q, n, 0x16c0, 0x0483, "OTHER"), &q[0]);
    assert_ptr_equal(km_quirks_match_(q, n, 0x16c0, 0x0483, NULL), &q[0]);
    assert_null(km_quirks_match_(q, n, 0x2341, 0x8036, NULL));
    /* a later file's entry for the same match wins */
    const char *p2 = write_file("b.quirks", "[Override]\nMatchUSBID=16c0:0483\nProtocol=fsr-rle\n"
                                            "Rows=8\nCols=8\nPitchMM=5\n");
    assert_int_equal(km_quirks_parse_file_(p2, q, 8, &n, err, sizeof err), KM_OK);
    assert_int_equal(n, 3);
    assert_string_equal(km_quirks_match_(q, n, 0x16c0, 0x0483, "X")->section, "Override");
}

static void test_errors_name_file_and_line(void **state)
{
    struct { const char *text, *want; } cases[] = {
        {"Rows=4\n", ":1: a key before the first [section]"},
        {"[x]\nMatchUSBID=zz\n", ":2: bad value for MatchUSBID"},
        {"[x]\nMatchUSBID=16c0:0483\nProtocol=telepathy\n", ":3: bad value for Protocol"},
        {"[x]\nMatchUSBID=16c0:0483\nColour=blue\n", ":3: unknown key 'Colour'"},
        {"[x]\nMatchUSBID=16c0:0483\nProtocol=fsr-rle\nRows=4\n", ":1: section [x] has no Cols"},
        {"[x]\nMatchUSBID=16c0:0483\nProtocol=fsr-rle\nRows=4\nCols=4\nPitchMM=1\n"
         "DeadCells=r9c1\n", "dead cell r9c1 is outside 4x4"},
        {"[x\n", ":1: section header without ']'"},
        {"[x]\nno equals sign\n", ":2: expected Key=Value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_file("bad.quirks", cases[i].text);
        km_quirk q[4];
        size_t n = 0;
        char err[256] = "";
        assert_int_equal(km_quirks_parse_file_(p, q, 4, &n, err, sizeof err), KM_EFORMAT);
        assert_int_equal(n, 0); /* a broken file contributes nothing */
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].want);
    }
}

static void test_apply_orientation_dead_calibration(void **state)
{
    km_quirk q;
    memset(&q, 0, sizeof q);
    q.rows = 2;
    q.cols = 3;
    q.pitch_mm = 10;
    q.kpa_per_count = 0.25;
    q.zero_count = 3;
    q.full_scale = 200;
    q.ndead = 1;
    q.dead[0].r = 0;
    q.dead[0].c = 2;
    /* device image   10  20  30
     *                40  50 200 */
    const uint16_t counts[6] = {10, 20, 30, 40, 50, 200};
    struct { enum km_orientation o; uint16_t rows, cols; uint16_t want[6]; } cases[] = {
        {KM_ORIENT_NORMAL, 2, 3, {10, 20, 30, 40, 50, 200}},
        {KM_ORIENT_ROTATE_90, 3, 2, {40, 10, 50, 20, 200, 30}},
        {KM_ORIENT_ROTATE_180, 2, 3, {200, 50, 40, 30, 20, 10}},
        {KM_ORIENT_ROTATE_270, 3, 2, {30, 200, 20, 50, 10, 40}},
        {KM_ORIENT_FLIP_ROWS, 2, 3, {40, 50, 200, 10, 20, 30}},
        {KM_ORIENT_FLIP_COLS, 2, 3, {30, 20, 10, 200, 50, 40}},
    };
    km_frame *f = km_frame_new(6);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        q.orientation = cases[i].o;
        uint16_t r, c;
        km_quirk_out_dims_(&q, &r, &c);
        assert_int_equal(r, cases[i].rows);
        assert_int_equal(c, cases[i].cols);
        assert_int_equal(km_frame_reset(f, r, c, q.pitch_mm), KM_OK);
        km_quirk_apply_(&q, counts, f);
        for (int k = 0; k < 6; k++) {
            assert_int_equal(f->raw[k], cases[i].want[k]);
            if (f->raw[k] == 30) { /* device r0c2: dead wherever it lands */
                assert_true(f->cell_flags[k] & KM_CELL_DEAD);
                assert_true(f->kpa[k] == 0.0f);
            } else {
                assert_true(fabsf(f->kpa[k] - (f->raw[k] - 3) * 0.25f) < 1e-5f);
            }
            assert_int_equal((f->cell_flags[k] & KM_CELL_SATURATED) != 0, f->raw[k] >= 200);
        }
        assert_int_equal(f->n_dead, 1);
        assert_int_equal(f->n_saturated, 1);
        assert_false(f->flags & KM_FRAME_UNCALIBRATED);
    }
    /* without KpaPerCount: the documented default, flagged */
    q.kpa_per_count = 0;
    q.orientation = KM_ORIENT_NORMAL;
    km_frame_reset(f, 2, 3, 10);
    km_quirk_apply_(&q, counts, f);
    assert_true(fabsf(f->kpa[0] - 7 * (float)KM_FSR_DEFAULT_KPA_PER_COUNT) < 1e-5f);
    assert_true(f->flags & KM_FRAME_UNCALIBRATED);
    km_frame_free(f);
}

static void test_shipped_quirks_parse(void **state)
{
    km_quirk q[16];
    size_t n = 0;
    char err[256] = "";
    assert_int_equal(km_quirks_parse_file_(KM_SOURCE_DIR "/drivers/quirks/50-diy-fsr.quirks", q,
                                           16, &n, err, sizeof err), KM_OK);
    assert_true(n >= 2);
    assert_non_null(km_quirks_match_(q, n, 0x16c0, 0x0483, "anything"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_match),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_apply_orientation_dead_calibration),
        cmocka_unit_test(test_shipped_quirks_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
