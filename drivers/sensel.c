/* sensel.c: the Sensel Morph (USB 2c2f:0003), 185 x 105 force sensors on a
 * 230 x 130 mm active area, spoken to over its CDC-ACM data interface (bulk
 * OUT 0x02, bulk IN 0x82) with the register protocol below.
 *
 * Sources (facts only, no code): CreativeInquiry/Sensel-Morph-Liberation,
 * docs/communications_protocol.md (register framing, register map, frame
 * payload, pressure and label decompression), and sensel/sensel-api
 * (sensel-lib/src/sensel_protocol.h, sensel.c: register names, frame content
 * bits, contact record layout, force in grams with UNIT_SHIFT_FORCE).
 *
 * Register framing (checksum = low 8 bits of the payload's byte sum):
 *   read fixed:    host 81 REG SIZE           device 01 REG SIZE_LE16 PAYLOAD CK
 *   read variable: host 81 REG 00             device 03 REG 00 SIZE_LE16 PAYLOAD CK
 *   write:         host 01 REG SIZE PAYLOAD CK  device 05 REG
 * Registers used: 00 magic "S3NS31", 10/12 columns/rows (u16), 14/18 active
 * width/height (u32, um), 1c compression metadata
 * (variable: 2 bytes, low-res columns, rows, x scale, y scale), 23 scan
 * detail (0 high), 24 frame content, 25 scan enable, 26 frame (variable),
 * 4b contact mask, 57 dynamic baselining (written 0), a1 unit shift force
 * (register map: sensel-api sensel-lib/src/sensel_register_map.h).
 *
 * Frame payload: content mask, rolling counter (u8), timestamp (u32 LE, us),
 * then by content bit: contacts (0x04: contact mask, count, count x {id,
 * state, x/256 mm, y/256 mm, force/8 g, area in sensels, then 6/8/8/6 bytes
 * of ellipse, deltas, box, peak by the contact mask}), accelerometer (0x08:
 * 3 x s16), pressure (0x01) then labels (0x02) as one byte stream:
 *   varint: b < 0x80 -> b; else (b & 0x7f) | next << 7
 *   pressure: base varint, then alternate zero-run (varint n: n zero cells)
 *   and value mode (varint v: v != 0 -> one cell base + v; 0 -> back to
 *   zero-run) until low-res cols x rows cells; labels: run lengths, null
 *   runs (255) and labelled runs alternating as the label byte's top bit says.
 * The low-res grid (93 x 53 at high detail) is expanded to 185 x 105 by
 * linear interpolation (the vendor's four-tap weights are not published;
 * linear is exact at the transmitted points). A decoded value is the force
 * on one low-resolution cell (xs x ys sensels) in grams x 2^shift: summed
 * over the low-res grid and divided by 2^shift it matches the sum of the
 * firmware's contact forces (0.93-0.95 on the real captures). So the
 * pressure is grams * g / (the low-res cell's area), and interpolating it
 * onto the sensels keeps the whole-pad force (counting the value as grams
 * on each sensel counted it xs * ys = 4 times over).
 * Touches: only the link it is given. No allocation after start(). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "usbmat_private.h"

#define SENSEL_RX_CAP 16384
#define LO_MAX_CELLS (128 * 128)
#define REPLY_TIMEOUT_MS 250

typedef struct {
    uint8_t rx[SENSEL_RX_CAP];
    int rx_len;
    uint16_t rows, cols;
    int lo_cols, lo_rows, xs, ys;  /* compression grid and scale */
    float pitch_x, pitch_y;
    double kpa_per_unit;           /* per decoded pressure unit */
    uint8_t last_counter;
    int have_counter;
    uint32_t last_ts;
    int64_t ts_unwrapped;
    int have_ts;
    const km_quirk *quirk;         /* dead cells, may be NULL */
    /* expansion tables, made at start: output column x reads low-res
     * columns x0[x] and x0[x] + 1 with weight wx[x] on the second */
    uint16_t x0[KM_FRAME_MAX_DIM], y0[KM_FRAME_MAX_DIM];
    float wx[KM_FRAME_MAX_DIM], wy[KM_FRAME_MAX_DIM];
    uint16_t lo[LO_MAX_CELLS];
    uint8_t labels[LO_MAX_CELLS];
    uint8_t payload[SENSEL_RX_CAP];
} sensel;

/* ---- bytes in -------------------------------------------------------------- */

/* Make sure rx holds at least n bytes; reads more from the device. The
 * deadline is for the whole reply: a device answering with empty or
 * trickling transfers cannot keep the driver waiting longer than that. */
static int rx_need(sensel *s, km_usb_link *l, int n, int timeout_ms)
{
    int64_t deadline = km_mono_ns_() + (int64_t)timeout_ms * 1000000;
    while (s->rx_len < n) {
        int64_t left_ms = (deadline - km_mono_ns_()) / 1000000;
        if (left_ms <= 0)
            return KM_ETIMEOUT;
        int got = 0;
        int rc = km_usb_read_(l, s->rx + s->rx_len, SENSEL_RX_CAP - s->rx_len, &got, (int)left_ms);
        s->rx_len += got;
        if (rc && s->rx_len < n)
            return rc;
    }
    return KM_OK;
}

static void rx_consume(sensel *s, int n)
{
    memmove(s->rx, s->rx + n, (size_t)(s->rx_len - n));
    s->rx_len -= n;
}

/* After garbage: drop what we have and whatever is still in flight. */
static void rx_flush(sensel *s, km_usb_link *l)
{
    s->rx_len = 0;
    for (int i = 0; i < 8; i++) {
        int got = 0;
        if (km_usb_read_(l, s->rx, SENSEL_RX_CAP, &got, 20) || got == 0)
            break;
    }
    s->rx_len = 0;
}

static uint8_t checksum(const uint8_t *p, int n)
{
    unsigned sum = 0;
    for (int i = 0; i < n; i++)
        sum += p[i];
    return (uint8_t)sum;
}

/* ---- registers ------------------------------------------------------------- */

/* Read a register; variable-size when size == 0. The payload goes to out
 * (up to cap bytes), its length to *len. Faults are counted. */
static int reg_read(sensel *s, km_usb_link *l, uint8_t reg, uint8_t size, uint8_t *out, int cap,
                    int *len)
{
    uint8_t cmd[3] = {0x81, reg, size};
    int rc = km_usb_write_(l, cmd, 3, REPLY_TIMEOUT_MS);
    if (rc)
        return rc;
    int hdr = size ? 4 : 5;
    if ((rc = rx_need(s, l, hdr, REPLY_TIMEOUT_MS))) {
        if (rc == KM_ETIMEOUT)
            km_usb_fault_(l, s->rx_len ? KM_FAULT_SHORT : KM_FAULT_TIMEOUT,
                          "register %02x: %s", reg, s->rx_len ? "reply cut short" : "no reply");
        s->rx_len = 0;
        return rc == KM_ETIMEOUT ? KM_EFORMAT : rc;
    }
    uint8_t ack = size ? 0x01 : 0x03;
    if (s->rx[0] != ack || s->rx[1] != reg || (!size && s->rx[2] != 0)) {
        km_usb_fault_(l, KM_FAULT_GARBLED,
                      "register %02x: reply starts %02x %02x %02x, not %02x %02x", reg, s->rx[0],
                      s->rx[1], s->rx[2], ack, reg);
        rx_flush(s, l);
        return KM_EFORMAT;
    }
    int n = s->rx[hdr - 2] | s->rx[hdr - 1] << 8;
    if (n > cap || hdr + n + 1 > SENSEL_RX_CAP) {
        km_usb_fault_(l, KM_FAULT_GARBLED, "register %02x: payload of %d bytes is too large", reg,
                      n);
        rx_flush(s, l);
        return KM_EFORMAT;
    }
    if ((rc = rx_need(s, l, hdr + n + 1, REPLY_TIMEOUT_MS))) {
        km_usb_fault_(l, KM_FAULT_SHORT, "register %02x: %d of %d payload bytes arrived", reg,
                      s->rx_len - hdr, n);
        s->rx_len = 0;
        return rc == KM_ETIMEOUT ? KM_EFORMAT : rc;
    }
    uint8_t ck = checksum(s->rx + hdr, n);
    if (ck != s->rx[hdr + n]) {
        km_usb_fault_(l, KM_FAULT_CHECKSUM, "register %02x: checksum %02x, payload sums to %02x",
                      reg, s->rx[hdr + n], ck);
        rx_consume(s, hdr + n + 1);
        return KM_EFORMAT;
    }
    memcpy(out, s->rx + hdr, (size_t)n);
    *len = n;
    rx_consume(s, hdr + n + 1);
    return KM_OK;
}

static int reg_write(sensel *s, km_usb_link *l, uint8_t reg, const uint8_t *val, uint8_t n)
{
    uint8_t cmd[3 + 255 + 1] = {0x01, reg, n};
    memcpy(cmd + 3, val, n);
    cmd[3 + n] = checksum(val, n);
    int rc = km_usb_write_(l, cmd, 4 + n, REPLY_TIMEOUT_MS);
    if (rc)
        return rc;
    if ((rc = rx_need(s, l, 2, REPLY_TIMEOUT_MS))) {
        km_usb_fault_(l, KM_FAULT_TIMEOUT, "register %02x: write not acknowledged", reg);
        s->rx_len = 0;
        return rc == KM_ETIMEOUT ? KM_EFORMAT : rc;
    }
    if (s->rx[0] != 0x05 || s->rx[1] != reg) {
        km_usb_fault_(l, KM_FAULT_GARBLED, "register %02x: write acknowledged with %02x %02x", reg,
                      s->rx[0], s->rx[1]);
        rx_flush(s, l);
        return KM_EFORMAT;
    }
    rx_consume(s, 2);
    return KM_OK;
}

/* A few tries: a fault during start-up is retried, not fatal. */
static int reg_read_retry(sensel *s, km_usb_link *l, uint8_t reg, uint8_t size, uint8_t *out,
                          int cap, int *len)
{
    int rc = KM_EFORMAT;
    for (int i = 0; i < 3 && rc == KM_EFORMAT; i++)
        rc = reg_read(s, l, reg, size, out, cap, len);
    return rc;
}

static int reg_write_retry(sensel *s, km_usb_link *l, uint8_t reg, uint8_t v)
{
    int rc = KM_EFORMAT;
    for (int i = 0; i < 3 && rc == KM_EFORMAT; i++)
        rc = reg_write(s, l, reg, &v, 1);
    return rc;
}

static uint32_t le(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Interpolation table for one axis: out index i -> low-res index and weight. */
static void axis_table(uint16_t *i0, float *w, int out_n, int lo_n, int scale)
{
    for (int i = 0; i < out_n; i++) {
        float f = (float)i / (float)scale;
        int k = (int)f;
        if (k > lo_n - 2)
            k = lo_n - 2 < 0 ? 0 : lo_n - 2;
        float wk = f - (float)k;
        i0[i] = (uint16_t)k;
        w[i] = lo_n < 2 ? 0.0f : wk > 1 ? 1.0f : wk;
    }
}

static int sensel_start(void *state, km_usb_link *l, const km_quirk *q, km_mat_info *info,
                        char *err, size_t errlen)
{
    sensel *s = state;
    s->quirk = q;
    uint8_t b[256];
    int n = 0, rc;
    if ((rc = reg_read_retry(s, l, 0x00, 6, b, sizeof b, &n)))
        goto fail;
    if (n != 6 || memcmp(b, "S3NS31", 6) != 0) {
        km_errf_(err, errlen, "not a Sensel device: magic register reads '%.*s'", n, (char *)b);
        return KM_EUNSUPPORTED;
    }
    int cols_n, rows_n, w_n, h_n, shift_n, meta_n;
    uint8_t cols_b[4], rows_b[4], w_b[8], h_b[8], shift_b[4], meta[16];
    if ((rc = reg_read_retry(s, l, 0x10, 2, cols_b, 4, &cols_n)) ||
        (rc = reg_read_retry(s, l, 0x12, 2, rows_b, 4, &rows_n)) ||
        (rc = reg_read_retry(s, l, 0x14, 4, w_b, 8, &w_n)) ||
        (rc = reg_read_retry(s, l, 0x18, 4, h_b, 8, &h_n)) ||
        (rc = reg_read_retry(s, l, 0xa1, 1, shift_b, 4, &shift_n)))
        goto fail;
    s->cols = (uint16_t)le(cols_b, 2);
    s->rows = (uint16_t)le(rows_b, 2);
    double w_um = le(w_b, 4), h_um = le(h_b, 4);
    if (!s->cols || !s->rows || s->cols > KM_FRAME_MAX_DIM || s->rows > KM_FRAME_MAX_DIM ||
        !(w_um > 0) || !(h_um > 0)) {
        km_errf_(err, errlen, "Sensel reports a %ux%u sensor of %.0fx%.0f um", s->cols, s->rows,
                 w_um, h_um);
        return KM_EFORMAT;
    }
    s->pitch_x = (float)(w_um / 1000.0 / s->cols);
    s->pitch_y = (float)(h_um / 1000.0 / s->rows);
    /* stop a scan left running by a previous program, then configure:
     * high detail, pressure + labels + contacts + accelerometer, all
     * contact fields (what the SDK asks for) */
    if ((rc = reg_write_retry(s, l, 0x25, 0)) || (rc = reg_write_retry(s, l, 0x23, 0)) ||
        (rc = reg_write_retry(s, l, 0x24, 0x0f)) || (rc = reg_write_retry(s, l, 0x4b, 0x0f)))
        goto fail;
    /* a body lying on a ball is a load held for minutes: the firmware's
     * dynamic baselining (register 0x57, on by default) would drift it
     * towards zero (sensel-api issue #5: "forces decaying over time ... we
     * turn on Dynamic Baselining, which removes unintended forces over
     * time"); knotmat turns it off and does its own slow-signal handling */
    if ((rc = reg_write_retry(s, l, 0x57, 0)))
        goto fail;
    rx_flush(s, l);
    if ((rc = reg_read_retry(s, l, 0x1c, 0, meta, sizeof meta, &meta_n)))
        goto fail;
    if (meta_n < 6 || !meta[2] || !meta[3] || !meta[4] || !meta[5] ||
        meta[2] * meta[3] > LO_MAX_CELLS) {
        km_errf_(err, errlen, "Sensel compression metadata not understood (%d bytes)", meta_n);
        return KM_EFORMAT;
    }
    s->lo_cols = meta[2];
    s->lo_rows = meta[3];
    s->xs = meta[4];
    s->ys = meta[5];
    axis_table(s->x0, s->wx, s->cols, s->lo_cols, s->xs);
    axis_table(s->y0, s->wy, s->rows, s->lo_rows, s->ys);
    int shift = shift_n ? shift_b[0] : 3;
    /* grams per low-res cell = value / 2^shift;
     * kPa = g * 9.80665e-3 N / (low-res cell area mm2 * 1e-6) / 1e3 */
    double area_mm2 = (double)s->pitch_x * s->xs * s->pitch_y * s->ys;
    s->kpa_per_unit = 9.80665 / area_mm2 / (double)(1 << shift);
    if ((rc = reg_write_retry(s, l, 0x25, 1)))
        goto fail;
    info->rows = s->rows;
    info->cols = s->cols;
    info->pitch_mm = 0.5f * (s->pitch_x + s->pitch_y);
    /* not stated: the documentation's 125 Hz is not what the device does
     * (its own clock says 31-48 Hz in real captures); the rate is measured
     * from the device's timestamps (km_source_stats.measured_rate_hz) */
    info->rate_hz = 0;
    info->calibrated = 1;
    return KM_OK;
fail:
    if (rc == KM_EFORMAT)
        km_errf_(err, errlen, "Sensel did not answer its registers properly (see the notes above)");
    else if (!err[0])
        km_errf_(err, errlen, "Sensel start-up: %s", km_strerror(rc));
    return rc;
}

/* ---- frame decoding ----------------------------------------------------- */

static int varint(const uint8_t *p, int n, int *pos, uint32_t *v)
{
    if (*pos >= n)
        return -1;
    uint8_t b = p[(*pos)++];
    if (!(b & 0x80)) {
        *v = b;
        return 0;
    }
    if (*pos >= n)
        return -1;
    *v = (uint32_t)(b & 0x7f) | (uint32_t)p[(*pos)++] << 7;
    return 0;
}

/* Pressure RLE into lo[0, cells); returns bytes used or -1. */
static int decode_pressure(uint16_t *lo, int cells, const uint8_t *p, int n)
{
    int pos = 0, emitted = 0, zero_mode = 1;
    uint32_t base, v;
    if (varint(p, n, &pos, &base))
        return -1;
    while (emitted < cells) {
        if (varint(p, n, &pos, &v))
            return -1;
        if (zero_mode) {
            if (emitted + (int)v > cells)
                return -1;
            memset(lo + emitted, 0, v * sizeof *lo);
            emitted += (int)v;
            zero_mode = 0;
        } else if (v == 0) {
            zero_mode = 1;
        } else {
            uint32_t x = base + v;
            lo[emitted++] = (uint16_t)(x > 65535 ? 65535 : x);
        }
    }
    return pos;
}

static int decode_labels(uint8_t *lab, int cells, const uint8_t *p, int n)
{
    int pos = 0, emitted = 0, null_run = 1;
    while (emitted < cells) {
        uint32_t run;
        if (varint(p, n, &pos, &run))
            return -1;
        uint8_t label = 255;
        if (!null_run) {
            if (pos >= n)
                return -1;
            uint8_t b = p[pos++];
            label = b & 0x7f;
            null_run = b < 0x80;
        } else {
            null_run = 0;
        }
        if (emitted + (int)run > cells)
            return -1;
        memset(lab + emitted, label, run);
        emitted += (int)run;
    }
    return pos;
}

/* lo-res grid -> sensor grid, linear in x and y; kPa. */
static void expand(const sensel *s, km_frame *f)
{
    int C = s->cols, R = s->rows, lc = s->lo_cols;
    float k = (float)s->kpa_per_unit;
    for (int y = 0; y < R; y++) {
        const uint16_t *r0 = s->lo + s->y0[y] * lc;
        const uint16_t *r1 = s->lo_rows > 1 ? r0 + lc : r0;
        float wy = s->wy[y];
        float *kpa = f->kpa + y * C;
        uint16_t *raw = f->raw + y * C;
        for (int x = 0; x < C; x++) {
            int a = s->x0[x];
            int b = lc > 1 ? a + 1 : a;
            float top = r0[a] + s->wx[x] * (float)(r0[b] - r0[a]);
            float bot = r1[a] + s->wx[x] * (float)(r1[b] - r1[a]);
            float v = top + wy * (bot - top);
            kpa[x] = v * k;
            raw[x] = (uint16_t)(v + 0.5f);
        }
    }
}

static int parse_contacts(sensel *s, km_frame *f, const uint8_t *p, int n, int *pos)
{
    if (*pos + 2 > n)
        return -1;
    uint8_t cmask = p[*pos], count = p[*pos + 1];
    *pos += 2;
    if (count > KM_FRAME_MAX_CONTACTS)
        return -1;
    int extra =
        (cmask & 1 ? 6 : 0) + (cmask & 2 ? 8 : 0) + (cmask & 4 ? 8 : 0) + (cmask & 8 ? 6 : 0);
    if (*pos + count * (10 + extra) > n)
        return -1;
    float half_x = 0.5f * s->pitch_x, half_y = 0.5f * s->pitch_y;
    for (int i = 0; i < count; i++) {
        const uint8_t *c = p + *pos;
        km_contact *k = &f->contacts[i];
        k->id = c[0];
        k->state = c[1];
        /* the firmware measures from the sensor's edge; knotmat from the
         * centre of cell 0 */
        k->x_mm = (float)le(c + 2, 2) / 256.0f - half_x;
        k->y_mm = (float)le(c + 4, 2) / 256.0f - half_y;
        k->force_n = (float)le(c + 6, 2) / 8.0f * 9.80665e-3f;
        k->area_mm2 = (float)le(c + 8, 2) * s->pitch_x * s->pitch_y;
        *pos += 10 + extra;
    }
    f->n_contacts = count;
    return 0;
}

static int sensel_next(void *state, km_usb_link *l, km_frame *f, int64_t *dev_us,
                       uint32_t *delta)
{
    sensel *s = state;
    int n = 0;
    int rc = reg_read(s, l, 0x26, 0, s->payload, sizeof s->payload, &n);
    if (rc)
        return rc;
    const uint8_t *p = s->payload;
    if (n < 6) {
        km_usb_fault_(l, KM_FAULT_SHORT, "frame payload of %d bytes has no header", n);
        return KM_EFORMAT;
    }
    uint8_t mask = p[0], counter = p[1];
    uint32_t ts = le(p + 2, 4);
    int pos = 6;
    if ((mask & 0x04) && parse_contacts(s, f, p, n, &pos)) {
        km_usb_fault_(l, KM_FAULT_GARBLED, "frame %u: contact section does not fit", counter);
        f->n_contacts = 0;
        return KM_EFORMAT;
    }
    if (mask & 0x08)
        pos += 6; /* accelerometer: not used */
    if (!(mask & 0x01) || pos > n) {
        km_usb_fault_(l, KM_FAULT_SHORT, "frame %u has no pressure image (content %02x)", counter,
                      mask);
        return KM_EFORMAT;
    }
    int cells = s->lo_cols * s->lo_rows;
    int used = decode_pressure(s->lo, cells, p + pos, n - pos);
    if (used < 0 || ((mask & 0x02) ? decode_labels(s->labels, cells, p + pos + used,
                                                   n - pos - used) != n - pos - used
                                   : used != n - pos)) {
        km_usb_fault_(l, KM_FAULT_GARBLED, "frame %u: pressure/label stream does not decode to "
                      "%dx%d cells", counter, s->lo_cols, s->lo_rows);
        return KM_EFORMAT;
    }
    expand(s, f);
    if (s->quirk)
        for (uint32_t i = 0; i < s->quirk->ndead; i++) {
            uint32_t k = (uint32_t)s->quirk->dead[i].r * s->cols + s->quirk->dead[i].c;
            if (k < km_frame_cells(f)) {
                f->cell_flags[k] |= KM_CELL_DEAD;
                f->kpa[k] = 0;
            }
        }
    f->flags |= KM_FRAME_HAS_RAW;
    km_frame_count_flags(f);
    *delta = s->have_counter ? (uint8_t)(counter - s->last_counter) : 1;
    if (*delta == 0)
        *delta = 1; /* the same counter twice: not a loss */
    s->last_counter = counter;
    s->have_counter = 1;
    if (s->have_ts)
        s->ts_unwrapped += (uint32_t)(ts - s->last_ts);
    s->last_ts = ts;
    s->have_ts = 1;
    *dev_us = s->ts_unwrapped;
    return KM_OK;
}

static void sensel_stop(void *state, km_usb_link *l, bool present)
{
    sensel *s = state;
    if (present)
        reg_write(s, l, 0x25, (const uint8_t[]){0}, 1);
}

const struct km_mat_protocol km_sensel_protocol = {
    .name = "sensel-morph",
    .state_size = sizeof(sensel),
    .start = sensel_start,
    .next_frame = sensel_next,
    .stop = sensel_stop,
};
