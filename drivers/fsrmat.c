/* fsrmat.c: DIY force-sensing-resistor and velostat matrix mats behind a
 * microcontroller (Arduino, Teensy and the like) that enumerates as USB
 * CDC-ACM; knotmat talks to its data interface's bulk endpoints through
 * libusb. One byte per cell, row-major, in the device's orientation; the
 * geometry, orientation, pitch, dead cells and count-to-kPa factor come from
 * the mat's quirks entry (quirks.c, docs/drivers.md). Two framings:
 *
 * fsr-rle (free-running; the scheme of the Sensitronics FSR matrix Arduino
 * tutorial): the device streams frames without being asked. A cell value is
 * 1..254; 0x00 N stands for N zero cells (N = 1..254, never the 0xFF that
 * ends a frame); 0xFF ends a frame.
 * A frame is good when it decodes to exactly rows x cols cells. The first
 * bytes after start-up are skipped up to the first 0xFF (we join mid-frame).
 *
 * fsr-poll: the host sends the poll byte (default 'A', 0x41) and the device
 * answers with exactly rows x cols raw bytes (0..255), no framing, no
 * checksum. A reply that stops short is a short frame: counted, dropped,
 * and the input is drained before the next poll so frames stay aligned.
 *
 * Neither framing has a checksum or a device clock: a frame's time is when
 * it arrived. Touches: only the link it is given. No allocation after
 * start(). */
#include <string.h>

#include "internal.h"
#include "usbmat_private.h"

#define FSR_MAX_CELLS (256 * 256)
#define FSR_RX 4096

typedef struct {
    const km_quirk *q;
    uint32_t cells;
    uint8_t rx[FSR_RX];
    int rx_len, rx_pos;
    int synced;                /* rle: seen a frame end */
    uint16_t counts[FSR_MAX_CELLS];
} fsr;

static int fsr_start_common(fsr *s, const km_quirk *q, km_mat_info *info, char *err,
                            size_t errlen)
{
    if (!q || !q->rows || !q->cols) {
        km_errf_(err, errlen, "an FSR mat needs a quirks entry with Rows, Cols and PitchMM "
                 "(docs/drivers.md)");
        return KM_EINVAL;
    }
    if ((uint32_t)q->rows * q->cols > FSR_MAX_CELLS) {
        km_errf_(err, errlen, "FSR mat of %ux%u cells is larger than %u", q->rows, q->cols,
                 FSR_MAX_CELLS);
        return KM_EUNSUPPORTED;
    }
    s->q = q;
    s->cells = (uint32_t)q->rows * q->cols;
    km_quirk_out_dims_(q, &info->rows, &info->cols);
    info->pitch_mm = q->pitch_mm;
    info->rate_hz = q->rate_hz > 0 ? q->rate_hz : 30;
    info->calibrated = q->kpa_per_count > 0;
    return KM_OK;
}

/* Next byte of the stream; KM_ETIMEOUT when nothing came for timeout_ms. */
static int next_byte(fsr *s, km_usb_link *l, uint8_t *b, int timeout_ms)
{
    if (s->rx_pos >= s->rx_len) {
        int got = 0;
        int rc = km_usb_read_(l, s->rx, FSR_RX, &got, timeout_ms);
        s->rx_pos = 0;
        s->rx_len = got;
        if (got == 0)
            return rc ? rc : KM_ETIMEOUT;
    }
    *b = s->rx[s->rx_pos++];
    return KM_OK;
}

/* ---- free-running zero-run-length frames -------------------------------- */

static int rle_start(void *state, km_usb_link *l, const km_quirk *q, km_mat_info *info, char *err,
                     size_t errlen)
{
    fsr *s = state;
    return fsr_start_common(s, q, info, err, errlen);
}

static int rle_next(void *state, km_usb_link *l, km_frame *f, int64_t *dev_us, uint32_t *delta)
{
    fsr *s = state;
    uint8_t b;
    int rc;
    /* a frame should come within a few frame periods; 500 ms is generous.
     * The longest valid frame is 2 bytes per cell (isolated zero runs) plus
     * its end: more bytes without an 0xFF is a broken stream, not a frame */
    uint32_t budget = 2 * s->cells + 1, skipped = 0;
    while (!s->synced) {
        if (++skipped > budget) {
            km_usb_fault_(l, KM_FAULT_GARBLED, "%u bytes without a frame end (0xFF)", budget);
            return KM_EFORMAT;
        }
        if ((rc = next_byte(s, l, &b, 500))) {
            if (rc == KM_ETIMEOUT)
                km_usb_fault_(l, KM_FAULT_TIMEOUT, "no frame end (0xFF) within 500 ms");
            return rc == KM_ETIMEOUT ? KM_EFORMAT : rc;
        }
        s->synced = b == 0xff;
    }
    uint32_t n = 0, bytes = 0;
    int overflow = 0;
    for (;;) {
        if (++bytes > budget) {
            km_usb_fault_(l, KM_FAULT_GARBLED, "frame longer than %u bytes without its end",
                          budget);
            s->synced = 0;
            return KM_EFORMAT;
        }
        if ((rc = next_byte(s, l, &b, 500))) {
            if (rc == KM_ETIMEOUT && n)
                km_usb_fault_(l, KM_FAULT_SHORT, "frame stopped after %u of %u cells", n, s->cells);
            else if (rc == KM_ETIMEOUT)
                km_usb_fault_(l, KM_FAULT_TIMEOUT, "no frame for 500 ms");
            s->synced = 0;
            return rc == KM_ETIMEOUT ? KM_EFORMAT : rc;
        }
        if (b == 0xff)
            break;
        if (b == 0x00) {
            uint8_t run;
            if ((rc = next_byte(s, l, &run, 500))) {
                s->synced = 0;
                if (rc == KM_ETIMEOUT)
                    km_usb_fault_(l, KM_FAULT_SHORT, "frame stopped inside a zero run");
                return rc == KM_ETIMEOUT ? KM_EFORMAT : rc;
            }
            if (run == 0xff || run == 0) { /* not a run length: the stream is broken */
                km_usb_fault_(l, KM_FAULT_GARBLED, "zero run of length %u", run);
                s->synced = run == 0xff;
                return KM_EFORMAT;
            }
            if (n + run > s->cells)
                overflow = 1;
            else
                memset(s->counts + n, 0, run * sizeof s->counts[0]);
            n += run;
        } else {
            if (n < s->cells)
                s->counts[n] = b;
            else
                overflow = 1;
            n++;
        }
    }
    if (n != s->cells || overflow) {
        km_usb_fault_(l, n < s->cells ? KM_FAULT_SHORT : KM_FAULT_GARBLED,
                      "frame of %u cells, the mat has %u", n, s->cells);
        return KM_EFORMAT;
    }
    km_quirk_apply_(s->q, s->counts, f);
    *dev_us = -1;
    *delta = 1;
    return KM_OK;
}

static void fsr_stop(void *state, km_usb_link *l, bool present) { (void)state; }

const struct km_mat_protocol km_fsr_rle_protocol = {
    .name = "fsr-rle",
    .state_size = sizeof(fsr),
    .start = rle_start,
    .next_frame = rle_next,
    .stop = fsr_stop,
};

/* ---- poll one byte, get one frame ----------------------------------------- */

static int poll_start(void *state, km_usb_link *l, const km_quirk *q, km_mat_info *info,
                      char *err, size_t errlen)
{
    fsr *s = state;
    int rc = fsr_start_common(s, q, info, err, errlen);
    if (rc)
        return rc;
    /* drop anything a previous session left in the pipe */
    uint8_t junk[256];
    int got = 1;
    for (int i = 0; i < 16 && got > 0; i++)
        if (km_usb_read_(l, junk, sizeof junk, &got, 20))
            break;
    return KM_OK;
}

static int poll_next(void *state, km_usb_link *l, km_frame *f, int64_t *dev_us, uint32_t *delta)
{
    fsr *s = state;
    uint8_t poll = s->q->poll_byte;
    s->rx_len = s->rx_pos = 0; /* a reply never spans polls */
    int rc = km_usb_write_(l, &poll, 1, 250);
    if (rc)
        return rc;
    for (uint32_t n = 0; n < s->cells; n++) {
        uint8_t b;
        if ((rc = next_byte(s, l, &b, 250))) {
            if (rc != KM_ETIMEOUT)
                return rc;
            if (n)
                km_usb_fault_(l, KM_FAULT_SHORT, "reply stopped after %u of %u bytes", n, s->cells);
            else
                km_usb_fault_(l, KM_FAULT_TIMEOUT, "no reply to poll");
            return KM_EFORMAT;
        }
        s->counts[n] = b;
    }
    if (s->rx_pos < s->rx_len) {
        km_usb_fault_(l, KM_FAULT_GARBLED, "%d bytes more than one frame after a poll",
                      s->rx_len - s->rx_pos);
        return KM_EFORMAT;
    }
    km_quirk_apply_(s->q, s->counts, f);
    *dev_us = -1;
    *delta = 1;
    return KM_OK;
}

const struct km_mat_protocol km_fsr_poll_protocol = {
    .name = "fsr-poll",
    .state_size = sizeof(fsr),
    .start = poll_start,
    .next_frame = poll_next,
    .stop = fsr_stop,
};
