/* bench_usb.c: what the USB mat drivers cost, and how fast frames get from
 * an (emulated) mat into the ring.
 *
 *   bench_usb [REPEATS] [CAPTURE.jsonl]
 *     Decode cost per frame of each protocol through the real driver code,
 *     with the bytes served from memory (no USB, no syscalls): the Sensel
 *     Morph on the real capture (register framing, checksum, contacts,
 *     pressure + label decompression, 93x53 -> 185x105 expansion), FSR
 *     zero-run-length and poll framings at 16x16, 48x48 and 64x64. Beside each,
 *     in the same run on the same frames: a plain copy of the decoded frame
 *     (the floor) and, for the Morph, the detection stage (the consumer the
 *     decoder must not slow down). Medians of REPEATS passes, p50/p99 per
 *     frame.
 *
 *   umockdev-wrapper usbemu [--rate HZ] ... -- bench_usb --e2e N
 *     End to end: usb://auto through the real libusb into the ring, N frames
 *     taken by a ring consumer; frames/s, frames lost (device counter, ring),
 *     faults, inter-arrival p50/p99, CPU time. bench/usb_e2e.sh runs it at the
 *     Morph's 125 frames/s and as fast as the emulation allows.
 *   And knotmat's hotspots against the Morph firmware's own contacts on the
 *   capture: distance of isolated contacts (median, p90), contacts missed,
 *   hotspots no contact explains, force ratios (issue 12's bench).
 * Prints numbers; asserts nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "fsr_pattern.h"
#include "knotmat/dsp.h"
#include "knotmat/ring.h"
#include "knotmat/source.h"
#include "usbmat_private.h"

/* ---- a device in memory ---------------------------------------------------- */

typedef struct {
    km_usb_link link;
    uint8_t *rx;
    size_t rx_len, rx_pos, cap;
    /* morph */
    uint8_t **frames;
    int *len, n, next;
    /* fsr */
    int fsr, rows, cols;
    uint32_t k;
    uint8_t *enc[64]; /* pre-encoded frames, so the bench times the decoder only */
    size_t enc_len[64];
    uint64_t faults;
} memdev;

static void put(memdev *m, const void *p, size_t n)
{
    if (m->rx_pos == m->rx_len)
        m->rx_pos = m->rx_len = 0;
    if (m->rx_len + n > m->cap) {
        m->cap = (m->rx_len + n) * 2;
        m->rx = realloc(m->rx, m->cap);
    }
    memcpy(m->rx + m->rx_len, p, n);
    m->rx_len += n;
}

static uint8_t ck(const uint8_t *p, int n)
{
    unsigned s = 0;
    for (int i = 0; i < n; i++)
        s += p[i];
    return (uint8_t)s;
}

static void encode(memdev *m, int rle, uint32_t k, uint8_t *out, size_t *len)
{
    uint32_t cells = (uint32_t)(m->rows * m->cols);
    size_t n = 0;
    for (uint32_t i = 0; i < cells;) {
        uint8_t v = fsr_pattern(k, i / m->cols, i % m->cols, m->rows, m->cols);
        if (v || !rle) {
            out[n++] = v;
            i++;
            continue;
        }
        uint8_t run = 0;
        while (i < cells && run < 254 &&
               !fsr_pattern(k, i / m->cols, i % m->cols, m->rows, m->cols))
            run++, i++;
        out[n++] = 0;
        out[n++] = run;
    }
    if (rle)
        out[n++] = 0xff;
    *len = n;
}

static void fsr_frame(memdev *m, int rle)
{
    uint32_t k = m->k++ % 64;
    if (!m->enc[k]) {
        m->enc[k] = malloc((size_t)(m->rows * m->cols) * 2 + 1);
        encode(m, rle, k, m->enc[k], &m->enc_len[k]);
    }
    put(m, m->enc[k], m->enc_len[k]);
}

static int mem_write(km_usb_link *l, const uint8_t *p, int n, int timeout_ms)
{
    memdev *m = l->user;
    if (m->fsr) {
        if (m->fsr == 2 && n == 1)
            fsr_frame(m, 0);
        return KM_OK;
    }
    if (p[0] == 0x01) { /* register write */
        uint8_t ack[2] = {0x05, p[1]};
        put(m, ack, 2);
        return KM_OK;
    }
    uint8_t reg = p[1], size = p[2], val[16] = {0};
    int vl = size;
    if (reg == 0x26) {
        int i = m->next++ % m->n;
        uint8_t hdr[5] = {0x03, 0x26, 0, (uint8_t)m->len[i], (uint8_t)(m->len[i] >> 8)};
        put(m, hdr, 5);
        put(m, m->frames[i], (size_t)m->len[i]);
        uint8_t c = ck(m->frames[i], m->len[i]);
        put(m, &c, 1);
        return KM_OK;
    }
    uint32_t w = 230000, h = 130000;
    switch (reg) {
    case 0x00: memcpy(val, "S3NS31", 6); break;
    case 0x10: val[0] = 185; break;
    case 0x12: val[0] = 105; break;
    case 0x14: memcpy(val, &w, 4); break;
    case 0x18: memcpy(val, &h, 4); break;
    case 0xa1: val[0] = 3; break;
    case 0x1c: memcpy(val, (uint8_t[]){0, 0, 0x5d, 0x35, 2, 2}, 6); vl = 6; break;
    case 0x0f: memcpy(val, "BENCH", 5); vl = 5; break;
    }
    uint8_t hdr[5] = {size ? 0x01 : 0x03, reg, size ? (uint8_t)vl : 0, size ? 0 : (uint8_t)vl, 0};
    put(m, hdr, size ? 4 : 5);
    put(m, val, (size_t)vl);
    uint8_t c = ck(val, vl);
    put(m, &c, 1);
    return KM_OK;
}

static int mem_read(km_usb_link *l, uint8_t *buf, int cap, int *got, int timeout_ms)
{
    memdev *m = l->user;
    if (m->fsr == 1 && m->rx_pos == m->rx_len)
        fsr_frame(m, 1); /* free-running: the next frame is always there */
    size_t n = m->rx_len - m->rx_pos;
    if (n > (size_t)cap)
        n = (size_t)cap;
    memcpy(buf, m->rx + m->rx_pos, n);
    m->rx_pos += n;
    *got = (int)n;
    return n ? KM_OK : KM_ETIMEOUT;
}

static void mem_fault(km_usb_link *l, enum km_usb_fault kind, const char *text)
{
    memdev *m = l->user;
    m->faults++;
    fprintf(stderr, "fault: %s\n", text);
}

static int load_capture(memdev *m, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    static char line[1 << 16];
    m->frames = calloc(4096, sizeof *m->frames);
    m->len = calloc(4096, sizeof *m->len);
    while (fgets(line, sizeof line, fp) && m->n < 4096) {
        char *h = strstr(line, "\"payload_hex\":\"");
        if (!h)
            continue;
        h += 15;
        int n = (int)(strchr(h, '"') - h) / 2;
        m->frames[m->n] = malloc((size_t)n);
        for (int i = 0; i < n; i++)
            sscanf(h + 2 * i, "%2hhx", &m->frames[m->n][i]);
        m->len[m->n++] = n;
    }
    fclose(fp);
    return m->n ? 0 : -1;
}

/* ---- decode cost ---------------------------------------------------------- */

static void bench_protocol(const char *label, const struct km_mat_protocol *proto, memdev *m,
                           const km_quirk *q, int frames, int reps, int with_dsp)
{
    km_usb_link link = {.write = mem_write, .read = mem_read, .fault = mem_fault, .user = m};
    void *st = calloc(1, proto->state_size);
    km_mat_info info;
    char err[256] = "";
    if (proto->start(st, &link, q, &info, err, sizeof err)) {
        printf("%s: start failed: %s\n", label, err);
        return;
    }
    uint32_t cells = (uint32_t)info.rows * info.cols;
    km_frame *f = km_frame_new(cells), *copy = km_frame_new(cells);
    km_dsp *dsp = NULL;
    if (with_dsp) {
        km_dsp_config cfg;
        km_dsp_config_default(&cfg);
        km_dsp_new(&cfg, info.rows, info.cols, info.pitch_mm, 125, &dsp, err, sizeof err);
    }
    double *dec = malloc(sizeof(double) * (size_t)frames),
           *cp = malloc(sizeof(double) * (size_t)frames),
           *ds = malloc(sizeof(double) * (size_t)frames);
    double med_dec[50], med_p99[50], med_cp[50], med_ds[50];
    int64_t t = 0;
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < frames; i++) {
            km_frame_reset(f, info.rows, info.cols, info.pitch_mm);
            int64_t us;
            uint32_t delta;
            double t0 = now_s();
            proto->next_frame(st, &link, f, &us, &delta);
            double t1 = now_s();
            km_frame_copy(copy, f);
            double t2 = now_s();
            dec[i] = (t1 - t0) * 1e6;
            cp[i] = (t2 - t1) * 1e6;
            if (dsp) {
                f->device_ns = (t += 8000000);
                km_event ev[32];
                double t3 = now_s();
                km_dsp_process(dsp, f, ev, 32);
                ds[i] = (now_s() - t3) * 1e6;
            }
        }
        med_dec[r] = pct(dec, frames, 0.5);
        med_p99[r] = pct(dec, frames, 0.99);
        med_cp[r] = pct(cp, frames, 0.5);
        med_ds[r] = dsp ? pct(ds, frames, 0.5) : 0;
    }
    double d50 = pct(med_dec, reps, 0.5), d99 = pct(med_p99, reps, 0.5),
           c50 = pct(med_cp, reps, 0.5), s50 = pct(med_ds, reps, 0.5);
    printf("%-26s %4ux%-4u decode p50 %7.2f us  p99 %7.2f us  (%8.0f frames/s)  copy %6.2f us "
           "(decode/copy %5.1fx)",
           label, info.cols, info.rows, d50, d99, 1e6 / d50, c50, d50 / c50);
    if (dsp)
        printf("  DSP %7.1f us (decode/DSP %.3f)", s50, d50 / s50);
    printf("  faults %llu\n", (unsigned long long)m->faults);
    proto->stop(st, &link, true);
    free(st);
    free(dec);
    free(cp);
    free(ds);
    km_frame_free(f);
    km_frame_free(copy);
    km_dsp_free(dsp);
}

/* ---- knotmat's hotspots against the Morph's own contacts ------------------------ */

/* Every frame of the capture through the driver and the detectors (the ball
 * set to the size of what presses: the capture holds hands and fingers, and
 * there is one capture only, so the bench prints a sweep of sizes rather
 * than one fitted number), on the device's own clock. The firmware's
 * contacts describe the device's last scan: frame k-1's when frames come
 * less than 35 ms apart, frame k's otherwise. Isolated contacts: no other contact
 * within 25 mm, at least 1 N, not ending. */
typedef struct {
    double *dist, *ratio; /* per matched isolated contact: distance, force ratio */
    size_t nd, nr, isolated, missed, extra, hot_frames;
    double pad_sum, fw_sum;
} contact_match;

/* One frame's contacts against the hotspots of the scan they describe. */
static void match_contacts(contact_match *cm, const km_frame *f, const km_hotspot *prev,
                           size_t nprev)
{
    for (uint32_t c = 0; c < f->n_contacts; c++) {
        const km_contact *k = &f->contacts[c];
        int alone = k->force_n >= 1.0f && k->state != 3;
        for (uint32_t j = 0; j < f->n_contacts && alone; j++)
            alone = j == c ||
                    hypot(f->contacts[j].x_mm - k->x_mm, f->contacts[j].y_mm - k->y_mm) >= 25.0;
        if (!alone)
            continue;
        cm->isolated++;
        double best = 1e9;
        size_t bi = 0;
        for (size_t h = 0; h < nprev; h++) {
            double dd = hypot(prev[h].x_mm - k->x_mm, prev[h].y_mm - k->y_mm);
            if (dd < best)
                best = dd, bi = h;
        }
        if (best > 10.0) {
            cm->missed++;
            continue;
        }
        if (cm->nd < 20000)
            cm->dist[cm->nd++] = best;
        if (cm->nr < 20000)
            cm->ratio[cm->nr++] = prev[bi].force_n / k->force_n;
    }
    /* hotspots no contact explains */
    for (size_t h = 0; h < nprev; h++) {
        int near = 0;
        for (uint32_t c = 0; c < f->n_contacts && !near; c++)
            near = hypot(prev[h].x_mm - f->contacts[c].x_mm, prev[h].y_mm - f->contacts[c].y_mm) <=
                   10.0;
        cm->extra += !near;
    }
}

/* Whole-pad force against the sum of the firmware's contacts. */
static void add_pad_force(contact_match *cm, const km_frame *f)
{
    double pad = 0;
    for (uint32_t c = 0; c < (uint32_t)f->rows * f->cols; c++)
        pad += f->kpa[c];
    pad *= (double)f->pitch_mm * f->pitch_mm * 1e-3;
    double fw = 0;
    for (uint32_t c = 0; c < f->n_contacts; c++)
        fw += f->contacts[c].force_n;
    if (fw > 2) {
        cm->pad_sum += pad;
        cm->fw_sum += fw;
    }
}

static void contacts_vs_hotspots(memdev *m, double ball_mm)
{
    km_usb_link link = {.write = mem_write, .read = mem_read, .fault = mem_fault, .user = m};
    m->next = 0;
    void *st = calloc(1, km_sensel_protocol.state_size);
    km_mat_info info;
    char err[256] = "";
    if (km_sensel_protocol.start(st, &link, NULL, &info, err, sizeof err)) {
        printf("contacts: start failed: %s\n", err);
        return;
    }
    km_frame *f = km_frame_new((uint32_t)info.rows * info.cols);
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    cfg.ball_mm = ball_mm;
    cfg.min_ball_kpa = 5;
    km_dsp *dsp = NULL;
    if (km_dsp_new(&cfg, info.rows, info.cols, info.pitch_mm, 45, &dsp, err, sizeof err)) {
        printf("contacts: %s\n", err);
        return;
    }
    km_hotspot prev[64];
    size_t nprev = 0;
    contact_match cm = {.dist = malloc(sizeof(double) * 20000),
                        .ratio = malloc(sizeof(double) * 20000)};
    int64_t last_ns = 0;
    for (int i = 0; i < m->n; i++) {
        km_frame_reset(f, info.rows, info.cols, info.pitch_mm);
        int64_t us;
        uint32_t delta;
        if (km_sensel_protocol.next_frame(st, &link, f, &us, &delta))
            continue;
        f->device_ns = us * 1000;
        f->seq = (uint64_t)i;
        /* the contacts describe the device's last scan: the previous frame's
         * when frames come less than 35 ms apart, this one's otherwise (the
         * lag is one device scan, not one read frame) */
        int own = i > 0 && f->device_ns - last_ns >= 35000000;
        last_ns = f->device_ns;
        km_event ev0[32];
        km_dsp_process(dsp, f, ev0, 32);
        const km_hotspot *cur;
        size_t ncur = km_dsp_hotspots(dsp, &cur);
        if (own) {
            nprev = ncur > 64 ? 64 : ncur;
            memcpy(prev, cur, nprev * sizeof *cur);
        }
        if (i > 0)
            match_contacts(&cm, f, prev, nprev);
        cm.hot_frames += nprev > 0;
        nprev = ncur > 64 ? 64 : ncur;
        memcpy(prev, cur, nprev * sizeof *cur);
        add_pad_force(&cm, f);
    }
    qsort(cm.dist, cm.nd, sizeof *cm.dist, cmp_d);
    qsort(cm.ratio, cm.nr, sizeof *cm.ratio, cmp_d);
    printf("hotspots vs the Morph's contacts (%d frames, ball %.0f mm): %zu isolated contacts, "
           "distance median %.2f mm p90 %.2f mm, missed %zu (%.1f %%), hotspot force / contact "
           "force median %.3f; %zu hotspots without a contact in %zu frames; whole-pad force / "
           "contacts %.3f\n",
           m->n, ball_mm, cm.isolated, cm.nd ? cm.dist[cm.nd / 2] : NAN,
           cm.nd ? cm.dist[cm.nd * 9 / 10] : NAN, cm.missed,
           cm.isolated ? 100.0 * cm.missed / cm.isolated : 0, cm.nr ? cm.ratio[cm.nr / 2] : NAN,
           cm.extra, cm.hot_frames, cm.fw_sum > 0 ? cm.pad_sum / cm.fw_sum : NAN);
    km_sensel_protocol.stop(st, &link, true);
    free(st);
    free(cm.dist);
    free(cm.ratio);
    km_frame_free(f);
    km_dsp_free(dsp);
}

/* ---- end to end through libusb -------------------------------------------------- */

static int e2e(long want)
{
    km_source *src;
    char err[512];
    if (km_source_open("usb://auto", &src, err, sizeof err)) {
        fprintf(stderr, "usb://auto: %s\n", err);
        return 1;
    }
    km_source_info info;
    km_source_describe(src, &info);
    km_ring *ring = km_ring_new(256, km_source_max_cells(src), KM_RING_LOSSY);
    km_ring_consumer *c;
    km_ring_consumer_add(ring, "bench", &c);
    km_frame *f = km_frame_new(km_source_max_cells(src));
    double *gap = malloc(sizeof(double) * (size_t)want);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    km_source_start(src, ring);
    long n = 0;
    int64_t last = 0, first = 0;
    while (n < want && km_ring_pop_wait_spmc(c, f, NULL, 5000000000LL) == KM_OK) {
        if (n == 0)
            first = f->host_ns;
        else
            gap[n - 1] = (f->host_ns - last) * 1e-6;
        last = f->host_ns;
        n++;
    }
    getrusage(RUSAGE_SELF, &r1);
    km_source_stop(src);
    km_source_stats st;
    km_source_stats_get(src, &st);
    km_ring_stats rs;
    km_ring_consumer_stats(c, &rs);
    km_usb_faults fl;
    km_usb_source_faults(src, &fl);
    double secs = (last - first) * 1e-9;
    double cpu =
        (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
        (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) *
            1e-6;
    printf(
        "{\"kind\":\"%s\",\"rows\":%u,\"cols\":%u,\"frames\":%ld,\"seconds\":%.3f,"
        "\"fps\":%.1f,\"lost_device\":%llu,\"lost_ring\":%llu,\"faults\":%llu,"
        "\"gap_p50_ms\":%.3f,\"gap_p99_ms\":%.3f,\"cpu_s\":%.3f}\n",
        info.kind, info.rows, info.cols, n, secs, n > 1 ? (n - 1) / secs : 0,
        (unsigned long long)st.lost_upstream, (unsigned long long)rs.lost,
        (unsigned long long)(fl.stalls + fl.timeouts + fl.short_packets + fl.garbled + fl.checksum),
        n > 2 ? pct(gap, (int)n - 1, 0.5) : 0, n > 2 ? pct(gap, (int)n - 1, 0.99) : 0, cpu);
    free(gap);
    km_frame_free(f);
    km_ring_consumer_remove(c);
    km_source_close(src);
    km_ring_free(ring);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "--e2e"))
        return e2e(atol(argv[2]));
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1 || reps > 50)
        reps = 5;
    const char *cap =
        argc > 2 ? argv[2] : KM_TEST_DATA "/sensel-morph/sensel_recording_20260712_202359.jsonl";
    char host[256];
    cpu_name(host, sizeof host);
    printf("bench_usb: decode cost per frame, bytes served from memory; median of %d passes; %s\n",
           reps, host);
    memdev morph = {0};
    if (load_capture(&morph, cap)) {
        fprintf(stderr, "bench_usb: cannot read %s\n", cap);
        return 1;
    }
    bench_protocol("sensel-morph (capture)", &km_sensel_protocol, &morph, NULL, morph.n, reps, 1);
    static const double balls[] = {15, 20, 25, 30};
    for (int b = 0; b < 4; b++)
        contacts_vs_hotspots(&morph, balls[b]);
    static const int sizes[][2] = {{16, 16}, {48, 48}, {64, 64}};
    for (int i = 0; i < 3; i++) {
        km_quirk q;
        memset(&q, 0, sizeof q);
        snprintf(q.section, sizeof q.section, "bench");
        q.rows = (uint16_t)sizes[i][0];
        q.cols = (uint16_t)sizes[i][1];
        q.pitch_mm = 10;
        q.full_scale = 255;
        q.kpa_per_count = 0.5;
        memdev m = {.fsr = 1, .rows = q.rows, .cols = q.cols};
        bench_protocol("fsr-rle", &km_fsr_rle_protocol, &m, &q, 2000, reps, 0);
        memdev p = {.fsr = 2, .rows = q.rows, .cols = q.cols};
        bench_protocol("fsr-poll", &km_fsr_poll_protocol, &p, &q, 2000, reps, 0);
        free(m.rx);
        free(p.rx);
        for (int k = 0; k < 64; k++) {
            free(m.enc[k]);
            free(p.enc[k]);
        }
    }
    return 0;
}
