/* test_usb.c: the usb:// source through the real libusb against the device
 * that usbemu.c emulates (run as its child under umockdev-wrapper; see
 * usb_test.sh). Each mode opens the mat exactly as `knotmat run` does,
 * streams frames through the ring and checks what arrived:
 *
 *   morph N DROPPED [EXPECTED]
 *                        N frames of the real Morph capture: geometry, pitch,
 *                        id and length as EXPECTED says (default
 *                        tests/mats/sensel-morph/expected), lost frames from
 *                        the device's counter = DROPPED,
 *                        each firmware contact agrees with the decoded image
 *   fsr N [TIMEOUT SHORT GARBLED]
 *                        N frames of the FSR test pattern, every cell exact,
 *                        and exactly these faults counted (default none)
 *   faults N STALL TIMEOUT GARBAGE CHECKSUM SHORT [REOPENS]
 *                        N frames while faults are injected: each counted
 *                        under its own name, no crash, no hang, never taken
 *                        for an unplug (at least REOPENS reopenings noted)
 *   hotplug N            the mat unplugged and replugged mid-stream:
 *                        device_lost then device_back, in the ring and as
 *                        DSP events, time never going back
 * Prints one JSON line of what it measured; exit 0 only if every check holds. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr_pattern.h"
#include "knotmat/dsp.h"
#include "knotmat/ring.h"
#include "knotmat/source.h"
#include "knotmat/usbmat.h"

static int failures;

static void check(int ok, const char *fmt, ...)
{
    if (ok)
        return;
    failures++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void note(void *user, enum km_note_kind kind, const char *text)
{
    int *counts = user;
    counts[kind]++;
    fprintf(stderr, "note %d: %s\n", kind, text);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Pressure-weighted centroid of the image within `radius_mm` of (x, y). */
static void centroid_near(const km_frame *f, double x, double y, double radius_mm, double *cx,
                          double *cy, double *mass)
{
    double p = f->pitch_mm, sx = 0, sy = 0, sm = 0;
    int r0 = (int)floor((y - radius_mm) / p), r1 = (int)ceil((y + radius_mm) / p);
    int c0 = (int)floor((x - radius_mm) / p), c1 = (int)ceil((x + radius_mm) / p);
    for (int r = r0 < 0 ? 0 : r0; r <= r1 && r < f->rows; r++)
        for (int c = c0 < 0 ? 0 : c0; c <= c1 && c < f->cols; c++) {
            double dx = c * p - x, dy = r * p - y;
            if (dx * dx + dy * dy > radius_mm * radius_mm)
                continue;
            double v = f->kpa[r * f->cols + c];
            sx += v * c * p;
            sy += v * r * p;
            sm += v;
        }
    *mass = sm;
    *cx = sm > 0 ? sx / sm : NAN;
    *cy = sm > 0 ? sy / sm : NAN;
}

/* What one run measured, frame by frame. */
#define MAX_SAMPLES 200000
typedef struct {
    long frames, data_frames, lost_markers, back_frames, pattern_bad;
    long contacts, dsp_lost, dsp_back;
    int64_t last_t, first_t;
    double static_first, static_last, static_max_dev;
    uint64_t last_seq, seen_lost; /* gaps in seq among the frames consumed */
    int have_seq, have_prev;
    long fsr_k;
    double *dist, *dist0; /* contact vs image centroid: previous image, same frame */
    size_t nd, nd0;
    /* force: knotmat's whole pad against the firmware's contacts (kPa x mm2 = mN) */
    double *pad_ratio, *con_ratio;
    size_t npr, ncr;
} usb_run;

static double frame_force_n(const km_frame *f)
{
    double tot = 0;
    for (uint32_t i = 0; i < (uint32_t)f->rows * f->cols; i++)
        tot += f->kpa[i];
    return tot * (double)f->pitch_mm * f->pitch_mm * 1e-3;
}

/* The FSR mat's frames are the test pattern, found by its tag (raw[0] - 1
 * is the frame number mod 250), every cell exact; kPa is 0.5 x count. */
static void check_fsr_frame(usb_run *u, const km_frame *f)
{
    uint32_t tag = f->raw[0] - 1u;
    int found = 0;
    long from = u->fsr_k >= 0 ? u->fsr_k : (long)tag, to = (u->fsr_k >= 0 ? u->fsr_k : 0) + 5000;
    for (long k = from; k < to && !found; k++) {
        if ((uint32_t)(k % 250) != tag)
            continue;
        int ok = 1;
        for (uint32_t i = 0; i < (uint32_t)f->rows * f->cols && ok; i++)
            ok = f->raw[i] == fsr_pattern((uint32_t)k, i / f->cols, i % f->cols, f->rows, f->cols);
        if (ok) {
            found = 1;
            u->fsr_k = k;
        }
    }
    u->pattern_bad += !found;
    check(fabsf(f->kpa[1] - 0.5f * f->raw[1]) < 1e-4f, "kPa is not 0.5 x count");
    check((f->flags & KM_FRAME_UNCALIBRATED) != 0, "FSR frame not flagged uncalibrated");
}

/* Force of the whole pad, and around each isolated contact (no other
 * within 25 mm; knotmat's force within 10 mm of it), against the
 * firmware's. The firmware's contacts describe the previous scan (one frame
 * behind the pressure image, as Sensel-Morph-Liberation found). */
static void measure_force(usb_run *u, const km_frame *f, const km_frame *prev)
{
    double tot = frame_force_n(f);
    if (u->data_frames == 1) {
        u->static_first = tot;
        u->first_t = f->device_ns;
    }
    u->static_last = tot;
    if (u->static_first > 0)
        u->static_max_dev = fmax(u->static_max_dev, fabs(tot - u->static_first) / u->static_first);
    double fw = 0;
    for (uint32_t i = 0; i < f->n_contacts; i++)
        fw += f->contacts[i].force_n;
    double pad = frame_force_n(u->have_prev ? prev : f);
    if (fw >= 2.0 && u->npr < MAX_SAMPLES)
        u->pad_ratio[u->npr++] = pad / fw;
    for (uint32_t i = 0; i < f->n_contacts && u->have_prev; i++) {
        const km_contact *k = &f->contacts[i];
        int alone = 1;
        for (uint32_t j = 0; j < f->n_contacts; j++)
            alone &= j == i ||
                     hypot(f->contacts[j].x_mm - k->x_mm, f->contacts[j].y_mm - k->y_mm) >= 25.0;
        if (!alone || k->state == 3)
            continue;
        double cx, cy, mass;
        centroid_near(prev, k->x_mm, k->y_mm, 10.0, &cx, &cy, &mass);
        if (k->force_n >= 1.0 && u->ncr < MAX_SAMPLES)
            u->con_ratio[u->ncr++] = mass * (double)prev->pitch_mm * prev->pitch_mm * 1e-3 /
                                     k->force_n;
    }
}

/* Where each firmware contact sits on knotmat's image: the previous scan's
 * and, to show the lag is real, this one's. */
static void measure_contacts(usb_run *u, const km_frame *f, const km_frame *prev)
{
    for (uint32_t i = 0; i < f->n_contacts; i++) {
        const km_contact *k = &f->contacts[i];
        u->contacts++;
        if (k->force_n < 0.3f || k->state == 3 || !u->have_prev)
            continue; /* faint or ending contacts: nothing to compare */
        double cx, cy, mass;
        centroid_near(prev, k->x_mm, k->y_mm, 8.0, &cx, &cy, &mass);
        if (mass > 0 && u->nd < MAX_SAMPLES)
            u->dist[u->nd++] = hypot(cx - k->x_mm, cy - k->y_mm);
        centroid_near(f, k->x_mm, k->y_mm, 8.0, &cx, &cy, &mass);
        if (mass > 0 && u->nd0 < MAX_SAMPLES)
            u->dist0[u->nd0++] = hypot(cx - k->x_mm, cy - k->y_mm);
    }
}

/* One frame from the ring: time and sequence, DSP events, then what the
 * mode measures. A marker frame (device lost) carries no data. */
static void consume_frame(usb_run *u, const char *mode, const km_source_info *info, km_dsp *dsp,
                         const km_frame *f, km_frame *prev)
{
    u->frames++;
    check(f->device_ns > u->last_t, "time goes back at frame %ld", u->frames);
    if (u->have_seq && f->seq > u->last_seq + 1)
        u->seen_lost += f->seq - u->last_seq - 1;
    u->last_seq = f->seq;
    u->have_seq = 1;
    u->last_t = f->device_ns;
    km_event ev[32];
    size_t ne = km_dsp_process(dsp, f, ev, 32);
    for (size_t i = 0; i < ne; i++) {
        u->dsp_lost += ev[i].type == KM_EV_DEVICE_LOST;
        u->dsp_back += ev[i].type == KM_EV_DEVICE_BACK;
    }
    if (f->flags & KM_FRAME_DEVICE_LOST) {
        u->lost_markers++;
        return;
    }
    u->back_frames += (f->flags & KM_FRAME_DEVICE_BACK) != 0;
    u->data_frames++;
    check(f->rows == info->rows && f->cols == info->cols, "frame %ld is %ux%u", u->frames, f->rows,
          f->cols);
    if (!strcmp(mode, "fsr"))
        check_fsr_frame(u, f);
    measure_force(u, f, prev);
    measure_contacts(u, f, prev);
    km_frame_copy(prev, f);
    u->have_prev = 1;
}

static double median_of(double *v, size_t n, size_t num, size_t den)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n ? v[n * num / den] : NAN;
}

typedef struct {
    double med, p90, med0, force_ratio, contact_ratio;
} usb_summary;

static void print_run(const char *mode, const usb_run *u, const usb_summary *s,
                      const km_usb_faults *fl)
{
    printf("{\"mode\":\"%s\",\"frames\":%ld,\"data_frames\":%ld,\"lost_seen\":%llu,"
           "\"contacts\":%ld,\"compared\":%zu,\"centroid_median_mm\":%.3f,\"centroid_p90_mm\":%.3f,"
           "\"same_frame_median_mm\":%.3f,\"force_ratio_median\":%.3f,\"force_frames\":%zu,"
           "\"contact_force_ratio_median\":%.3f,\"contact_force_n\":%zu,"
           "\"stalls\":%llu,\"timeouts\":%llu,\"short\":%llu,\"garbled\":%llu,\"checksum\":%llu,"
           "\"disconnects\":%llu,\"reconnects\":%llu,\"lost_markers\":%ld,\"back_frames\":%ld,"
           "\"dsp_lost\":%ld,\"dsp_back\":%ld,\"pattern_bad\":%ld}\n",
           mode, u->frames, u->data_frames, (unsigned long long)u->seen_lost, u->contacts, u->nd,
           s->med, s->p90, s->med0, s->force_ratio, u->npr, s->contact_ratio, u->ncr,
           (unsigned long long)fl->stalls, (unsigned long long)fl->timeouts,
           (unsigned long long)fl->short_packets, (unsigned long long)fl->garbled,
           (unsigned long long)fl->checksum, (unsigned long long)fl->disconnects,
           (unsigned long long)fl->reconnects, u->lost_markers, u->back_frames, u->dsp_lost,
           u->dsp_back, u->pattern_bad);
}

/* The capture's expected results (tests/mats/sensel-morph/expected): the
 * value of `key`, or "" when the file does not give it. */
static const char *expected(const char *path, const char *key, char *buf, size_t len)
{
    buf[0] = 0;
    FILE *fp = fopen(path, "r");
    check(fp != NULL, "cannot read %s", path);
    if (!fp)
        return buf;
    char line[512];
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, key, kl) && line[kl] == '=') {
            line[strcspn(line, "\r\n")] = 0;
            snprintf(buf, len, "%s", line + kl + 1);
        }
    fclose(fp);
    check(buf[0] != 0, "%s gives no %s", path, key);
    return buf;
}

static void check_morph(int argc, char **argv, const km_source_info *info, const usb_run *u,
                        const usb_summary *s, const km_usb_faults *fl)
{
    const char *exp = argc > 4 ? argv[4] : KM_TEST_DATA "/sensel-morph/expected";
    char b1[128], b2[128];
    check(info->rows == atoi(expected(exp, "rows", b1, sizeof b1)) &&
              info->cols == atoi(expected(exp, "cols", b2, sizeof b2)),
          "Morph geometry %ux%u, expected %sx%s", info->rows, info->cols, b1, b2);
    check(fabs(info->pitch_mm - atof(expected(exp, "pitch_mm", b1, sizeof b1))) < 0.001,
          "Morph pitch %.4f, expected %s", (double)info->pitch_mm, b1);
    check(!strcmp(info->vid_pid, expected(exp, "vid_pid", b1, sizeof b1)) &&
              !strcmp(info->serial, expected(exp, "serial", b2, sizeof b2)),
          "Morph id %s %s, expected %s %s", info->vid_pid, info->serial, b1, b2);
    long frames = atol(expected(exp, "frames", b1, sizeof b1));
    check(u->data_frames + (long)u->seen_lost <= frames,
          "%ld frames read and %llu lost: the capture has %ld", u->data_frames,
          (unsigned long long)u->seen_lost, frames);
    check(argc > 3 && u->seen_lost == (unsigned long long)atol(argv[3]),
          "lost frames %llu, the emulator dropped %s", (unsigned long long)u->seen_lost,
          argc > 3 ? argv[3] : "?");
    check(u->contacts > 1000 && u->nd > 500, "only %ld contacts, %zu compared", u->contacts, u->nd);
    /* what holds on any real capture: the firmware's contacts sit on knotmat's
     * image (the previous scan's, or this one's when frames are far apart), and
     * its force is the firmware's within 10 %, whole pad and per contact */
    check(fmin(s->med, s->med0) < 1.5,
          "contact vs image centroid: median %.3f mm (previous image), %.3f mm (same frame)",
          s->med, s->med0);
    check(u->npr > 100 && s->force_ratio >= 0.9 && s->force_ratio <= 1.1,
          "whole-pad force / the firmware's contacts: median %.3f over %zu frames",
          s->force_ratio, u->npr);
    check(u->ncr > 50 && s->contact_ratio >= 0.9 && s->contact_ratio <= 1.1,
          "force around a contact / its firmware force: median %.3f over %zu", s->contact_ratio,
          u->ncr);
    check(!fl->stalls && !fl->timeouts && !fl->short_packets && !fl->garbled && !fl->checksum,
          "faults on a clean stream");
}

/* one scan held for minutes of device time: the force stays what it was */
static void check_static(const usb_run *u)
{
    check(u->static_first > 1.0, "the held frame carries %.2f N", u->static_first);
    check(fabs(u->static_last - u->static_first) <= 1e-3 * u->static_first &&
              u->static_max_dev <= 1e-3,
          "a held load drifts: %.3f N -> %.3f N (max %.4f)", u->static_first, u->static_last,
          u->static_max_dev);
    check((double)(u->last_t - u->first_t) * 1e-9 > 60, "only %.1f s of device time",
          (double)(u->last_t - u->first_t) * 1e-9);
}

/* optional arguments: expected timeouts, short and garbled frames */
static void check_fsr(int argc, char **argv, const usb_run *u, const km_usb_faults *fl)
{
    check(u->pattern_bad == 0, "%ld frames differ from the pattern", u->pattern_bad);
    check(fl->timeouts == (uint64_t)(argc > 3 ? atol(argv[3]) : 0) &&
              fl->short_packets == (uint64_t)(argc > 4 ? atol(argv[4]) : 0) &&
              fl->garbled == (uint64_t)(argc > 5 ? atol(argv[5]) : 0) && !fl->stalls &&
              !fl->checksum,
          "faults: timeouts %llu short %llu garbled %llu", (unsigned long long)fl->timeouts,
          (unsigned long long)fl->short_packets, (unsigned long long)fl->garbled);
}

static void check_faults(int argc, char **argv, const usb_run *u, const km_usb_faults *fl,
                         const int *notes)
{
    check(argc >= 8, "faults mode needs 5 expected counts");
    if (argc >= 8) {
        check(fl->stalls == (uint64_t)atol(argv[3]), "stalls %llu",
              (unsigned long long)fl->stalls);
        check(fl->timeouts == (uint64_t)atol(argv[4]), "timeouts %llu",
              (unsigned long long)fl->timeouts);
        check(fl->garbled == (uint64_t)atol(argv[5]), "garbled %llu",
              (unsigned long long)fl->garbled);
        check(fl->checksum == (uint64_t)atol(argv[6]), "checksum %llu",
              (unsigned long long)fl->checksum);
        check(fl->short_packets == (uint64_t)atol(argv[7]), "short %llu",
              (unsigned long long)fl->short_packets);
    }
    check(notes[KM_NOTE_MALFORMED] > 0, "faults were not reported");
    /* faults, even a run of them that makes the driver reopen the mat,
     * are never an unplug: no device_lost, no device_back */
    check(!fl->disconnects && !fl->reconnects && !u->lost_markers && !u->back_frames &&
              !u->dsp_back,
          "faults looked like an unplug: lost %ld back %ld reconnects %llu", u->lost_markers,
          u->back_frames, (unsigned long long)fl->reconnects);
    if (argc > 8)
        check(notes[KM_NOTE_DEFECT] >= atoi(argv[8]), "reopened %d times, expected %s",
              notes[KM_NOTE_DEFECT], argv[8]);
}

static void check_hotplug(const usb_run *u, const km_usb_faults *fl, const int *notes)
{
    check(fl->disconnects == 1 && fl->reconnects == 1, "disconnects %llu reconnects %llu",
          (unsigned long long)fl->disconnects, (unsigned long long)fl->reconnects);
    check(u->lost_markers == 1 && u->back_frames == 1, "markers: lost %ld back %ld",
          u->lost_markers, u->back_frames);
    check(u->dsp_lost == 1 && u->dsp_back == 1, "DSP events: lost %ld back %ld", u->dsp_lost,
          u->dsp_back);
    check(notes[KM_NOTE_DEVICE_LOST] == 1 && notes[KM_NOTE_DEVICE_BACK] == 1,
          "notes: lost %d back %d", notes[KM_NOTE_DEVICE_LOST], notes[KM_NOTE_DEVICE_BACK]);
}

/* Streams `want` data frames from the opened source through the ring into
 * `u`; the source is stopped on return. */
static int stream(km_source *src, const char *mode, const km_source_info *info, long want,
                  usb_run *u)
{
    km_ring *ring = km_ring_new(256, km_source_max_cells(src), KM_RING_LOSSY);
    km_ring_consumer *cons;
    km_ring_consumer_add(ring, "test", &cons);
    km_frame *f = km_frame_new(km_source_max_cells(src));
    km_frame *prev = km_frame_new(km_source_max_cells(src));
    km_dsp *dsp = NULL;
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    cfg.fftw_measure = 0;
    char err[512];
    km_dsp_new(&cfg, info->rows, info->cols, info->pitch_mm, info->rate_hz > 0 ? info->rate_hz : 100,
               &dsp, err, sizeof err);
    int started = km_source_start(src, ring) == 0;
    check(started, "start");
    while (started && u->data_frames < want) {
        int rc = km_ring_pop_wait_spmc(cons, f, NULL, 5000000000LL);
        if (rc == KM_ETIMEOUT) {
            check(0, "no frame for 5 s after %ld frames", u->frames);
            break;
        }
        if (rc)
            break;
        consume_frame(u, mode, info, dsp, f, prev);
    }
    km_source_stop(src);
    km_frame_free(prev);
    km_dsp_free(dsp);
    km_frame_free(f);
    km_ring_consumer_remove(cons);
    km_ring_free(ring);
    return started;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_usb morph|fsr|faults|hotplug N [...]\n");
        return 2;
    }
    const char *mode = argv[1];
    long want = atol(argv[2]);
    int notes[8] = {0};
    km_source *src;
    char err[512];
    int rc = km_source_open("usb://auto", &src, err, sizeof err);
    if (rc) {
        fprintf(stderr, "FAIL: open usb://auto: %s (%s)\n", err, km_strerror(rc));
        return 1;
    }
    km_source_set_notify(src, note, notes);
    km_source_info info;
    km_source_describe(src, &info);
    fprintf(stderr, "opened %s %s %s: %ux%u, pitch %.4f mm\n", info.kind, info.vid_pid,
            info.serial, info.rows, info.cols, (double)info.pitch_mm);
    usb_run u = {.last_t = -1, .fsr_k = -1};
    u.dist = calloc(MAX_SAMPLES, sizeof(double));
    u.dist0 = calloc(MAX_SAMPLES, sizeof(double));
    u.pad_ratio = calloc(MAX_SAMPLES, sizeof(double));
    u.con_ratio = calloc(MAX_SAMPLES, sizeof(double));
    if (!stream(src, mode, &info, want, &u)) {
        km_source_close(src);
        return 1;
    }
    km_usb_faults fl;
    km_usb_source_faults(src, &fl);
    usb_summary s = {
        .med = median_of(u.dist, u.nd, 1, 2),
        .p90 = median_of(u.dist, u.nd, 9, 10),
        .med0 = median_of(u.dist0, u.nd0, 1, 2),
        .force_ratio = median_of(u.pad_ratio, u.npr, 1, 2),
        .contact_ratio = median_of(u.con_ratio, u.ncr, 1, 2),
    };
    print_run(mode, &u, &s, &fl);
    check(u.data_frames == want, "%ld of %ld frames", u.data_frames, want);
    if (!strcmp(mode, "morph"))
        check_morph(argc, argv, &info, &u, &s, &fl);
    else if (!strcmp(mode, "static"))
        check_static(&u);
    else if (!strcmp(mode, "fsr"))
        check_fsr(argc, argv, &u, &fl);
    else if (!strcmp(mode, "faults"))
        check_faults(argc, argv, &u, &fl, notes);
    else if (!strcmp(mode, "hotplug"))
        check_hotplug(&u, &fl, notes);
    free(u.dist);
    free(u.dist0);
    free(u.pad_ratio);
    free(u.con_ratio);
    km_source_close(src);
    return failures ? 1 : 0;
}
