/* test_usb.c: the usb:// source through the real libusb against the device
 * that usbemu.c emulates (run as its child under umockdev-wrapper; see
 * usb_test.sh). Each mode opens the mat exactly as `knotmat run` does,
 * streams frames through the ring and checks what arrived:
 *
 *   morph N DROPPED      N frames of the real Morph capture: geometry, pitch,
 *                        lost frames from the device's counter = DROPPED,
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
    km_ring *ring = km_ring_new(256, km_source_max_cells(src), KM_RING_LOSSY);
    km_ring_consumer *cons;
    km_ring_consumer_add(ring, "test", &cons);
    km_frame *f = km_frame_new(km_source_max_cells(src));
    km_frame *prev = km_frame_new(km_source_max_cells(src));
    int have_prev = 0;
    km_dsp *dsp = NULL;
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    cfg.fftw_measure = 0;
    km_dsp_new(&cfg, info.rows, info.cols, info.pitch_mm, info.rate_hz > 0 ? info.rate_hz : 100,
               &dsp, err, sizeof err);
    if (km_source_start(src, ring)) {
        fprintf(stderr, "FAIL: start\n");
        return 1;
    }
    long frames = 0, data_frames = 0, lost_markers = 0, back_frames = 0, pattern_bad = 0;
    long contacts = 0, dsp_lost = 0, dsp_back = 0;
    int64_t last_t = -1, first_t = 0;
    double static_first = 0, static_last = 0, static_max_dev = 0;
    uint64_t last_seq = 0, seen_lost = 0; /* gaps in seq among the frames consumed */
    int have_seq = 0;
    double *dist = calloc(200000, sizeof *dist), *dist0 = calloc(200000, sizeof *dist0);
    size_t nd = 0, nd0 = 0;
    /* force: knotmat's whole pad against the firmware's contacts (kPa x mm2 = mN) */
    double *pad_ratio = calloc(200000, sizeof(double)), *con_ratio = calloc(200000, sizeof(double));
    size_t npr = 0, ncr = 0;
    long fsr_k = -1;
    while (data_frames < want) {
        rc = km_ring_pop_wait_spmc(cons, f, NULL, 5000000000LL);
        if (rc == KM_ETIMEOUT) {
            check(0, "no frame for 5 s after %ld frames", frames);
            break;
        }
        if (rc)
            break;
        frames++;
        check(f->device_ns > last_t, "time goes back at frame %ld", frames);
        if (have_seq && f->seq > last_seq + 1)
            seen_lost += f->seq - last_seq - 1;
        last_seq = f->seq;
        have_seq = 1;
        last_t = f->device_ns;
        km_event ev[32];
        size_t ne = km_dsp_process(dsp, f, ev, 32);
        for (size_t i = 0; i < ne; i++) {
            dsp_lost += ev[i].type == KM_EV_DEVICE_LOST;
            dsp_back += ev[i].type == KM_EV_DEVICE_BACK;
        }
        if (f->flags & KM_FRAME_DEVICE_LOST) {
            lost_markers++;
            continue;
        }
        back_frames += (f->flags & KM_FRAME_DEVICE_BACK) != 0;
        data_frames++;
        check(f->rows == info.rows && f->cols == info.cols, "frame %ld is %ux%u", frames, f->rows,
              f->cols);
        if (!strcmp(mode, "fsr")) {
            uint32_t tag = f->raw[0] - 1u;
            int found = 0;
            for (long k = fsr_k >= 0 ? fsr_k : (long)tag;
                 k < (fsr_k >= 0 ? fsr_k : 0) + 5000 && !found; k++) {
                if ((uint32_t)(k % 250) != tag)
                    continue;
                int ok = 1;
                for (uint32_t i = 0; i < (uint32_t)f->rows * f->cols && ok; i++)
                    ok = f->raw[i] == fsr_pattern((uint32_t)k, i / f->cols, i % f->cols, f->rows,
                                                  f->cols);
                if (ok) {
                    found = 1;
                    fsr_k = k;
                }
            }
            pattern_bad += !found;
            check(fabsf(f->kpa[1] - 0.5f * f->raw[1]) < 1e-4f, "kPa is not 0.5 x count");
            check((f->flags & KM_FRAME_UNCALIBRATED) != 0, "FSR frame not flagged uncalibrated");
        }
        /* The firmware's contacts describe the previous scan (one frame
         * behind the pressure image, as Sensel-Morph-Liberation found):
         * compare them with the previous image, and with this one to show
         * the lag is real. */
        {
            double tot = 0;
            for (uint32_t i = 0; i < (uint32_t)f->rows * f->cols; i++)
                tot += f->kpa[i];
            tot *= (double)f->pitch_mm * f->pitch_mm * 1e-3;
            if (data_frames == 1) {
                static_first = tot;
                first_t = f->device_ns;
            }
            static_last = tot;
            if (static_first > 0)
                static_max_dev = fmax(static_max_dev, fabs(tot - static_first) / static_first);
        }
        double fw = 0, pad = 0;
        for (uint32_t i = 0; i < f->n_contacts; i++)
            fw += f->contacts[i].force_n;
        const km_frame *img = have_prev ? prev : f; /* the contacts describe the previous scan */
        for (uint32_t i = 0; i < (uint32_t)img->rows * img->cols; i++)
            pad += img->kpa[i];
        pad *= (double)img->pitch_mm * img->pitch_mm * 1e-3;
        if (fw >= 2.0 && npr < 200000)
            pad_ratio[npr++] = pad / fw;
        for (uint32_t i = 0; i < f->n_contacts && have_prev; i++) {
            /* an isolated contact (no other within 25 mm): its own force
             * against knotmat's force within 10 mm of it */
            const km_contact *k = &f->contacts[i];
            int alone = 1;
            for (uint32_t j = 0; j < f->n_contacts; j++)
                alone &= j == i || hypot(f->contacts[j].x_mm - k->x_mm,
                                         f->contacts[j].y_mm - k->y_mm) >= 25.0;
            if (!alone || k->state == 3)
                continue;
            double cx, cy, mass;
            centroid_near(prev, k->x_mm, k->y_mm, 10.0, &cx, &cy, &mass);
            if (k->force_n >= 1.0 && ncr < 200000)
                con_ratio[ncr++] = mass * (double)prev->pitch_mm * prev->pitch_mm * 1e-3 / k->force_n;
        }
        for (uint32_t i = 0; i < f->n_contacts; i++) {
            const km_contact *k = &f->contacts[i];
            contacts++;
            if (k->force_n < 0.3f || k->state == 3 || !have_prev)
                continue; /* faint or ending contacts: nothing to compare */
            double cx, cy, mass;
            centroid_near(prev, k->x_mm, k->y_mm, 8.0, &cx, &cy, &mass);
            if (mass > 0 && nd < 200000)
                dist[nd++] = hypot(cx - k->x_mm, cy - k->y_mm);
            centroid_near(f, k->x_mm, k->y_mm, 8.0, &cx, &cy, &mass);
            if (mass > 0 && nd0 < 200000)
                dist0[nd0++] = hypot(cx - k->x_mm, cy - k->y_mm);
        }
        km_frame_copy(prev, f);
        have_prev = !(f->flags & KM_FRAME_DEVICE_LOST);
    }
    km_source_stop(src);
    km_usb_faults fl;
    km_usb_source_faults(src, &fl);
    km_source_stats st;
    km_source_stats_get(src, &st);
    qsort(dist, nd, sizeof *dist, cmp_double);
    qsort(dist0, nd0, sizeof *dist0, cmp_double);
    double med = nd ? dist[nd / 2] : NAN, p90 = nd ? dist[nd * 9 / 10] : NAN;
    double med0 = nd0 ? dist0[nd0 / 2] : NAN;
    qsort(pad_ratio, npr, sizeof *pad_ratio, cmp_double);
    qsort(con_ratio, ncr, sizeof *con_ratio, cmp_double);
    double force_ratio = npr ? pad_ratio[npr / 2] : NAN, contact_ratio = ncr ? con_ratio[ncr / 2] : NAN;
    printf("{\"mode\":\"%s\",\"frames\":%ld,\"data_frames\":%ld,\"lost_seen\":%llu,"
           "\"contacts\":%ld,\"compared\":%zu,\"centroid_median_mm\":%.3f,\"centroid_p90_mm\":%.3f,"
           "\"same_frame_median_mm\":%.3f,\"force_ratio_median\":%.3f,\"force_frames\":%zu,"
           "\"contact_force_ratio_median\":%.3f,\"contact_force_n\":%zu,"
           "\"stalls\":%llu,\"timeouts\":%llu,\"short\":%llu,\"garbled\":%llu,\"checksum\":%llu,"
           "\"disconnects\":%llu,\"reconnects\":%llu,\"lost_markers\":%ld,\"back_frames\":%ld,"
           "\"dsp_lost\":%ld,\"dsp_back\":%ld,\"pattern_bad\":%ld}\n",
           mode, frames, data_frames, (unsigned long long)seen_lost, contacts, nd, med, p90,
           med0, force_ratio, npr, contact_ratio, ncr,
           (unsigned long long)fl.stalls, (unsigned long long)fl.timeouts,
           (unsigned long long)fl.short_packets, (unsigned long long)fl.garbled,
           (unsigned long long)fl.checksum, (unsigned long long)fl.disconnects,
           (unsigned long long)fl.reconnects, lost_markers, back_frames, dsp_lost, dsp_back,
           pattern_bad);
    check(data_frames == want, "%ld of %ld frames", data_frames, want);
    if (!strcmp(mode, "morph")) {
        check(info.rows == 105 && info.cols == 185, "Morph geometry %ux%u", info.rows, info.cols);
        check(fabs(info.pitch_mm - 1.2407) < 0.001, "Morph pitch %.4f", (double)info.pitch_mm);
        check(!strcmp(info.vid_pid, "2c2f:0003") && !strcmp(info.serial, "2044B8374E33"),
              "Morph id %s %s", info.vid_pid, info.serial);
        check(argc > 3 && seen_lost == (unsigned long long)atol(argv[3]),
              "lost frames %llu, the emulator dropped %s", (unsigned long long)seen_lost,
              argc > 3 ? argv[3] : "?");
        check(contacts > 1000 && nd > 500, "only %ld contacts, %zu compared", contacts, nd);
        /* what holds on any real capture: the firmware's contacts sit on knotmat's
         * image (the previous scan's, or this one's when frames are far apart), and
         * its force is the firmware's within 10 %, whole pad and per contact */
        check(fmin(med, med0) < 1.5, "contact vs image centroid: median %.3f mm (previous "
              "image), %.3f mm (same frame)", med, med0);
        check(npr > 100 && force_ratio >= 0.9 && force_ratio <= 1.1,
              "whole-pad force / the firmware's contacts: median %.3f over %zu frames",
              force_ratio, npr);
        check(ncr > 50 && contact_ratio >= 0.9 && contact_ratio <= 1.1,
              "force around a contact / its firmware force: median %.3f over %zu",
              contact_ratio, ncr);
        check(!fl.stalls && !fl.timeouts && !fl.short_packets && !fl.garbled && !fl.checksum,
              "faults on a clean stream");
    } else if (!strcmp(mode, "static")) {
        /* one scan held for minutes of device time: the force stays what it was */
        check(static_first > 1.0, "the held frame carries %.2f N", static_first);
        check(fabs(static_last - static_first) <= 1e-3 * static_first && static_max_dev <= 1e-3,
              "a held load drifts: %.3f N -> %.3f N (max %.4f)", static_first, static_last,
              static_max_dev);
        check((double)(last_t - first_t) * 1e-9 > 60, "only %.1f s of device time",
              (double)(last_t - first_t) * 1e-9);
    } else if (!strcmp(mode, "fsr")) {
        /* optional: expected timeouts, short and garbled frames */
        check(pattern_bad == 0, "%ld frames differ from the pattern", pattern_bad);
        check(fl.timeouts == (uint64_t)(argc > 3 ? atol(argv[3]) : 0) &&
                  fl.short_packets == (uint64_t)(argc > 4 ? atol(argv[4]) : 0) &&
                  fl.garbled == (uint64_t)(argc > 5 ? atol(argv[5]) : 0) && !fl.stalls &&
                  !fl.checksum,
              "faults: timeouts %llu short %llu garbled %llu", (unsigned long long)fl.timeouts,
              (unsigned long long)fl.short_packets, (unsigned long long)fl.garbled);
    } else if (!strcmp(mode, "faults")) {
        check(argc >= 8, "faults mode needs 5 expected counts");
        if (argc >= 8) {
            check(fl.stalls == (uint64_t)atol(argv[3]), "stalls %llu",
                  (unsigned long long)fl.stalls);
            check(fl.timeouts == (uint64_t)atol(argv[4]), "timeouts %llu",
                  (unsigned long long)fl.timeouts);
            check(fl.garbled == (uint64_t)atol(argv[5]), "garbled %llu",
                  (unsigned long long)fl.garbled);
            check(fl.checksum == (uint64_t)atol(argv[6]), "checksum %llu",
                  (unsigned long long)fl.checksum);
            check(fl.short_packets == (uint64_t)atol(argv[7]), "short %llu",
                  (unsigned long long)fl.short_packets);
        }
        check(notes[KM_NOTE_MALFORMED] > 0, "faults were not reported");
        /* faults, even a run of them that makes the driver reopen the mat,
         * are never an unplug: no device_lost, no device_back */
        check(!fl.disconnects && !fl.reconnects && !lost_markers && !back_frames && !dsp_back,
              "faults looked like an unplug: lost %ld back %ld reconnects %llu", lost_markers,
              back_frames, (unsigned long long)fl.reconnects);
        if (argc > 8)
            check(notes[KM_NOTE_DEFECT] >= atoi(argv[8]), "reopened %d times, expected %s",
                  notes[KM_NOTE_DEFECT], argv[8]);
    } else if (!strcmp(mode, "hotplug")) {
        check(fl.disconnects == 1 && fl.reconnects == 1, "disconnects %llu reconnects %llu",
              (unsigned long long)fl.disconnects, (unsigned long long)fl.reconnects);
        check(lost_markers == 1 && back_frames == 1, "markers: lost %ld back %ld", lost_markers,
              back_frames);
        check(dsp_lost == 1 && dsp_back == 1, "DSP events: lost %ld back %ld", dsp_lost, dsp_back);
        check(notes[KM_NOTE_DEVICE_LOST] == 1 && notes[KM_NOTE_DEVICE_BACK] == 1,
              "notes: lost %d back %d", notes[KM_NOTE_DEVICE_LOST], notes[KM_NOTE_DEVICE_BACK]);
    }
    free(dist);
    free(dist0);
    free(pad_ratio);
    free(con_ratio);
    km_frame_free(prev);
    km_dsp_free(dsp);
    km_frame_free(f);
    km_ring_consumer_remove(cons);
    km_source_close(src);
    km_ring_free(ring);
    return failures ? 1 : 0;
}
