/* cmd_calibrate.c: knotmat calibrate: a mat's gain from a known load (a bag
 * or books on a rigid plate of known size, or a person of known mass lying
 * still). The whole-mat force is averaged over the frames' own time after
 * a settling time, compared with weight x g, and the gain written to the
 * mat's calibration file (knotmat/usbmat.h), which the USB source applies
 * and every recording names. The force is used, not a pressure under the
 * plate: it needs no area and no flat contact; the area, when given, is a
 * check. An FSR is not linear: calibrate near the load it will carry. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "knotmat/stats.h"
#include "knotmat/usbmat.h"

#define G 9.80665

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat calibrate --weight MASS [OPTIONS]\n"
            "Measure a mat's gain with a known load and write its calibration file.\n\n"
            "Put the load on the mat first: a bag or a stack of books on a rigid plate, or a\n"
            "person of known mass lying still. Then:\n"
            "  -W, --weight MASS   the load: 5kg, 5000g, 11lb (a number alone is kg)\n"
            "  -s, --source URI    the mat (default usb://auto)\n"
            "      --area WxH      the plate's size, 20x30cm (mm, cm, m): checks the loaded area\n"
            "  -d, --duration S    measure S seconds of the mat's time (default 10)\n"
            "      --settle S      first let the load settle S seconds (default 3)\n"
            "      --dry-run       measure and print, write nothing\n"
            "  -h, --help          this text\n\n"
            "The gain multiplies what the mat reports (an FSR mat's counts-to-kPa factor, a\n"
            "Sensel Morph's firmware force). Files: $KNOTMAT_CALIBRATION_DIR, else\n"
            "~/.config/knotmat/calibration/VVVV-PPPP-SERIAL.cal. FSR sensors are not linear:\n"
            "calibrate with a load near the one the mat will carry (a person on a ball).\n");
}

static int parse_mass(const char *s, double *kg)
{
    char *end;
    double v = strtod(s, &end);
    double k = !*end || !strcmp(end, "kg") ? 1 : !strcmp(end, "g") ? 1e-3
               : !strcmp(end, "lb") ? 0.45359237 : 0;
    if (end == s || k == 0 || !(v > 0) || v * k > 500)
        return -1;
    *kg = v * k;
    return 0;
}

static int parse_area(const char *s, double *mm2)
{
    double w, h;
    char unit[8] = "cm";
    int n = sscanf(s, "%lfx%lf%7s", &w, &h, unit);
    double k = !strcmp(unit, "mm") ? 1 : !strcmp(unit, "cm") ? 10 : !strcmp(unit, "m") ? 1000 : 0;
    if (n < 2 || k == 0 || !(w > 0) || !(h > 0))
        return -1;
    *mm2 = w * k * h * k;
    return 0;
}

typedef struct measure {
    uint64_t frames;
    double sum, sum2;       /* whole-mat force, N */
    double *cell;           /* mean kPa per cell (sum) */
    uint32_t cells;
    float pitch;
} measure;

static int take(km_source *src, const km_source_info *info, double settle, double duration,
                measure *m)
{
    km_frame *f = km_frame_new(km_source_max_cells(src));
    m->cells = (uint32_t)info->rows * info->cols;
    m->cell = calloc(m->cells, sizeof *m->cell);
    m->pitch = info->pitch_mm;
    if (!f || !m->cell) {
        km_frame_free(f);
        return KM_ENOMEM;
    }
    int64_t t0 = 0;
    int have = 0, rc;
    while (!cli_interrupted && (rc = km_source_read(src, f)) == KM_OK) {
        if (!have)
            t0 = f->device_ns;
        have = 1;
        double t = (double)(f->device_ns - t0) * 1e-9; /* the mat's own time */
        if (t < settle || (f->flags & KM_FRAME_CORRUPT))
            continue;
        if (t >= settle + duration)
            break;
        km_frame_summary s;
        km_frame_summarize(f, &s);
        m->frames++;
        m->sum += s.total_force_n;
        m->sum2 += s.total_force_n * s.total_force_n;
        for (uint32_t i = 0; i < m->cells && i < km_frame_cells(f); i++)
            m->cell[i] += f->cell_flags[i] & KM_CELL_DEAD ? 0 : f->kpa[i];
    }
    km_frame_free(f);
    return m->frames ? KM_OK : KM_EEOF;
}

/* The loaded area: cells above a tenth of the most loaded cell's mean. */
static uint32_t loaded_cells(const measure *m)
{
    double peak = 0;
    for (uint32_t i = 0; i < m->cells; i++)
        peak = fmax(peak, m->cell[i] / (double)m->frames);
    uint32_t loaded = 0;
    for (uint32_t i = 0; i < m->cells; i++)
        loaded += m->cell[i] / (double)m->frames >= 0.1 * peak && peak > 0;
    return loaded;
}

/* The calibration's date and how it was measured. */
static void describe(km_calibration *cal, double kg, double mean, uint64_t frames,
                     uint32_t loaded, double area)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(cal->when, sizeof cal->when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(cal->method, sizeof cal->method, "%.3f kg, %.2f N measured over %llu frames, %u "
             "cells loaded%s", kg, mean, (unsigned long long)frames, loaded,
             area > 0 ? ", on a plate" : "");
}

int cmd_calibrate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"weight", required_argument, 0, 'W'}, {"source", required_argument, 0, 's'},
        {"area", required_argument, 0, 'A'},   {"duration", required_argument, 0, 'd'},
        {"settle", required_argument, 0, 'T'}, {"dry-run", no_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *uri = "usb://auto";
    double kg = 0, area = 0, duration = 10, settle = 3;
    int dry = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "W:s:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'W':
            if (parse_mass(optarg, &kg))
                return cli_fail("calibrate", EXIT_USAGE, "--weight %s: a mass like 5kg", optarg);
            break;
        case 'A':
            if (parse_area(optarg, &area))
                return cli_fail("calibrate", EXIT_USAGE, "--area %s: like 20x30cm", optarg);
            break;
        case 's': uri = optarg; break;
        case 'd':
            if (!cli_parse_double("calibrate", "duration", optarg, 0.5, 3600, &duration))
                return EXIT_USAGE;
            break;
        case 'T':
            if (!cli_parse_double("calibrate", "settle", optarg, 0, 600, &settle))
                return EXIT_USAGE;
            break;
        case 'n': dry = 1; break;
        case 'h': help(stdout); return EXIT_OK;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    if (!(kg > 0) || optind < argc)
        return cli_fail("calibrate", EXIT_USAGE, "--weight MASS is required (see --help)");
    char err[512];
    km_source *src;
    if (km_source_open(uri, &src, err, sizeof err))
        return cli_fail("calibrate", EXIT_FAIL, "%s", err);
    static char name[] = "calibrate";
    km_source_set_notify(src, cli_note_to_stderr, name);
    km_source_info info;
    km_source_describe(src, &info);
    cli_install_signals();
    fprintf(stderr, "knotmat calibrate: %s: settling %g s, then measuring %g s\n", uri, settle,
            duration);
    measure m = {0};
    int rc = take(src, &info, settle, duration, &m);
    km_source_close(src);
    if (rc) {
        free(m.cell);
        return cli_fail("calibrate", EXIT_FAIL, "no frames to measure (%s)", km_strerror(rc));
    }
    double mean = m.sum / (double)m.frames, want = kg * G;
    double sd = sqrt(fmax(0, m.sum2 / (double)m.frames - mean * mean));
    double old = info.calibration_gain > 0 ? info.calibration_gain : 1;
    uint32_t loaded = loaded_cells(&m);
    double loaded_mm2 = loaded * (double)m.pitch * m.pitch;
    free(m.cell);
    printf("measured %.2f N (sd %.2f N over %llu frames) for %.3f kg = %.2f N\n", mean, sd,
           (unsigned long long)m.frames, kg, want);
    printf("loaded area %.0f cm2 (%u cells)", loaded_mm2 / 100, loaded);
    if (area > 0)
        printf(", the plate %.0f cm2", area / 100);
    printf("\n");
    if (!(mean > 0.05 * want))
        return cli_fail("calibrate", EXIT_FAIL, "the mat measures almost nothing (%.2f N): is "
                        "the load on it?", mean);
    if (sd > 0.05 * mean)
        fprintf(stderr, "knotmat calibrate: warning: the force varied by %.0f %%: the load was "
                "not still\n", 100 * sd / mean);
    if (area > 0 && fabs(loaded_mm2 - area) > 0.3 * area)
        fprintf(stderr, "knotmat calibrate: warning: the loaded area is not the plate's: is the "
                "plate flat and wholly on the mat?\n");
    km_calibration cal = {.gain = old * want / mean};
    describe(&cal, kg, mean, m.frames, loaded, area);
    printf("gain %.4f (was %.4f)\n", cal.gain, old);
    unsigned vid, pid;
    if (dry || sscanf(info.vid_pid, "%x:%x", &vid, &pid) != 2) {
        printf("%s\n", dry ? "dry run: nothing written"
                           : "not a USB mat: nothing written (calibration files are per device)");
        return EXIT_OK;
    }
    char path[1200];
    if (km_calibration_save((uint16_t)vid, (uint16_t)pid, info.serial, &cal, path, sizeof path,
                            err, sizeof err))
        return cli_fail("calibrate", EXIT_FAIL, "%s", err);
    printf("wrote %s\n", path);
    return EXIT_OK;
}
