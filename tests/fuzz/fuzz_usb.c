/* fuzz_usb.c: libFuzzer target for the USB mat protocols' decoders: any
 * bytes coming back from a device, in any chunking, must give frames or
 * counted faults, never a crash, a hang or a read out of bounds. The first
 * input byte picks the protocol (Sensel Morph, FSR zero-run-length, FSR
 * poll) and the chunk size; the rest is what the device answers. The Morph
 * first gets a well-formed start-up (its registers) so that the fuzzed
 * bytes reach the frame decoder. Memory link only: no libusb. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "usbmat_private.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

typedef struct {
    const uint8_t *p;
    size_t n, pos, chunk;
    uint8_t reply[64];
    size_t rlen, rpos;
    int starting;
} fz;

static void reply(fz *z, const uint8_t *p, size_t n)
{
    memcpy(z->reply, p, n);
    z->rlen = n;
    z->rpos = 0;
}

static int fz_write(km_usb_link *l, const uint8_t *b, int len, int timeout_ms)
{
    fz *z = l->user;
    if (!z->starting || len < 3)
        return KM_OK;
    /* start-up: answer the Morph's register reads and writes properly */
    uint8_t reg = b[1];
    if (b[0] == 0x01) {
        reply(z, (const uint8_t[]){0x05, reg}, 2);
        return KM_OK;
    }
    uint8_t v[8] = {0};
    int vl = b[2];
    uint32_t w = 230000, h = 130000;
    switch (reg) {
    case 0x00: memcpy(v, "S3NS31", 6); break;
    case 0x10: v[0] = 185; break;
    case 0x12: v[0] = 105; break;
    case 0x14: memcpy(v, &w, 4); break;
    case 0x18: memcpy(v, &h, 4); break;
    case 0xa1: v[0] = 3; break;
    case 0x1c: memcpy(v, (const uint8_t[]){0, 0, 0x5d, 0x35, 2, 2}, 6); vl = 6; break;
    case 0x0f: memcpy(v, "FUZZ", 4); vl = 4; break;
    }
    uint8_t m[24];
    size_t k = 0;
    unsigned ck = 0;
    m[k++] = b[2] ? 0x01 : 0x03;
    m[k++] = reg;
    if (!b[2])
        m[k++] = 0;
    m[k++] = (uint8_t)vl;
    m[k++] = 0;
    for (int i = 0; i < vl; i++)
        m[k++] = v[i], ck += v[i];
    m[k++] = (uint8_t)ck;
    reply(z, m, k);
    return KM_OK;
}

static int fz_read(km_usb_link *l, uint8_t *buf, int cap, int *got, int timeout_ms)
{
    fz *z = l->user;
    *got = 0;
    if (z->rpos < z->rlen) {
        size_t n = z->rlen - z->rpos;
        if (n > (size_t)cap)
            n = (size_t)cap;
        memcpy(buf, z->reply + z->rpos, n);
        z->rpos += n;
        *got = (int)n;
        return KM_OK;
    }
    if (z->starting || z->pos >= z->n)
        return KM_ETIMEOUT;
    size_t n = z->n - z->pos;
    if (n > z->chunk)
        n = z->chunk;
    if (n > (size_t)cap)
        n = (size_t)cap;
    memcpy(buf, z->p + z->pos, n);
    z->pos += n;
    *got = (int)n;
    return KM_OK;
}

static void fz_fault(km_usb_link *l, enum km_usb_fault kind, const char *text) {}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    static const struct km_mat_protocol *const protos[] = {
        &km_sensel_protocol, &km_fsr_rle_protocol, &km_fsr_poll_protocol};
    const struct km_mat_protocol *proto = protos[data[0] % 3];
    fz z = {.p = data + 1, .n = size - 1, .chunk = 1 + (size_t)(data[0] >> 2) * 17,
            .starting = 1};
    km_usb_link link = {.write = fz_write, .read = fz_read, .fault = fz_fault, .user = &z};
    km_quirk q;
    memset(&q, 0, sizeof q);
    q.rows = 12;
    q.cols = 9;
    q.pitch_mm = 10;
    q.full_scale = 254;
    q.poll_byte = 'A';
    void *st = calloc(1, proto->state_size);
    km_mat_info info;
    char err[256];
    if (st && proto->start(st, &link, &q, &info, err, sizeof err) == KM_OK) {
        z.starting = 0;
        km_frame *f = km_frame_new((uint32_t)info.rows * info.cols);
        for (int i = 0; f && i < 64 && z.pos < z.n; i++) {
            km_frame_reset(f, info.rows, info.cols, info.pitch_mm);
            int64_t us;
            uint32_t delta;
            proto->next_frame(st, &link, f, &us, &delta);
        }
        km_frame_free(f);
    }
    free(st);
    return 0;
}
