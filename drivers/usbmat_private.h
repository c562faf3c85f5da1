/* usbmat_private.h: what the USB mat protocols (sensel.c, fsrmat.c) share
 * with the generic usb:// source (usbmat.c) and the quirks reader
 * (quirks.c). Never exported. */
#ifndef KNOTMAT_USBMAT_PRIVATE_H
#define KNOTMAT_USBMAT_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include "knotmat/frame.h"
#include "knotmat/usbmat.h"

/* ---- quirks: per-device data (quirks.c, docs/drivers.md) ---------------- */

enum km_orientation {
    KM_ORIENT_NORMAL = 0,
    KM_ORIENT_ROTATE_90,  /* clockwise */
    KM_ORIENT_ROTATE_180,
    KM_ORIENT_ROTATE_270,
    KM_ORIENT_FLIP_ROWS,  /* row 0 becomes the last row */
    KM_ORIENT_FLIP_COLS,
};

#define KM_QUIRK_MAX_DEAD 256

typedef struct km_quirk {
    char section[96];        /* the [name] of the section that matched */
    char file[256];          /* where it came from */
    uint16_t vid, pid;
    char match_serial[64];   /* fnmatch pattern or "" (any) */
    char protocol[16];       /* "sensel-morph", "fsr-rle", "fsr-poll" */
    uint16_t rows, cols;     /* device geometry (before orientation) */
    float pitch_mm;
    double rate_hz;          /* nominal */
    enum km_orientation orientation;
    double kpa_per_count;    /* 0: the documented default, flagged uncalibrated */
    int zero_count;          /* counts at rest, subtracted */
    int full_scale;          /* counts at or above: saturated */
    uint32_t baud;
    uint8_t poll_byte;
    uint32_t ndead;
    struct { uint16_t r, c; } dead[KM_QUIRK_MAX_DEAD]; /* device coordinates */
} km_quirk;

/* Documented default when a quirks entry gives no KpaPerCount: 1 count =
 * 0.5 kPa (a 0-254 count velostat mat reading up to ~127 kPa, the order of
 * a body on an acupressure ball); frames are flagged UNCALIBRATED. */
#define KM_FSR_DEFAULT_KPA_PER_COUNT 0.5

/* Every quirks entry, read from every file in km_quirks_path() order; later
 * files override earlier ones for the same match. Returns the count (may be
 * more than max). Parse errors are written to err ("FILE:LINE: reason") and
 * that file is skipped. */
size_t km_quirks_load_(km_quirk *out, size_t max, char *err, size_t errlen);
/* The entry for this device: serial match beats VID:PID only; NULL if none. */
const km_quirk *km_quirks_match_(const km_quirk *q, size_t n, uint16_t vid, uint16_t pid,
                                 const char *serial);
/* True when some entry is for this VID:PID, whatever serial it asks for. */
bool km_quirks_has_usbid_(const km_quirk *q, size_t n, uint16_t vid, uint16_t pid);
/* Parse one file into out (appending after *n); KM_EFORMAT with a reason. */
int km_quirks_parse_file_(const char *path, km_quirk *out, size_t max, size_t *n, char *err,
                          size_t errlen);

/* Geometry after orientation. */
void km_quirk_out_dims_(const km_quirk *q, uint16_t *rows, uint16_t *cols);
/* Device counts (rows x cols, row-major, device orientation) into a frame:
 * orientation, dead cells, zero offset, count-to-kPa, saturation. The frame
 * has been reset to the output geometry. No allocation. */
void km_quirk_apply_(const km_quirk *q, const uint16_t *counts, km_frame *f);

/* ---- the link: an open device's bulk pipe ---------------------------------
 * usbmat.c implements it on libusb; benchmarks and tests can put bytes in
 * memory behind it (the protocols never see libusb). */

typedef struct km_usb_link km_usb_link;
enum km_usb_fault { KM_FAULT_TIMEOUT, KM_FAULT_SHORT, KM_FAULT_GARBLED, KM_FAULT_CHECKSUM };

struct km_usb_link {
    /* Bulk OUT all of buf. KM_OK, KM_ENODEV (gone), KM_ETIMEOUT, KM_EIO
     * (stall: counted and cleared). */
    int (*write)(km_usb_link *l, const uint8_t *buf, int len, int timeout_ms);
    /* Bulk IN up to cap bytes; *got may be 0 with KM_ETIMEOUT. */
    int (*read)(km_usb_link *l, uint8_t *buf, int cap, int *got, int timeout_ms);
    /* Count a protocol fault and report it (rate-limited). */
    void (*fault)(km_usb_link *l, enum km_usb_fault kind, const char *text);
    void *user;
};

static inline int km_usb_write_(km_usb_link *l, const uint8_t *buf, int len, int timeout_ms)
{
    return l->write(l, buf, len, timeout_ms);
}
static inline int km_usb_read_(km_usb_link *l, uint8_t *buf, int cap, int *got, int timeout_ms)
{
    return l->read(l, buf, cap, got, timeout_ms);
}
/* printf-style front of l->fault. */
void km_usb_fault_(km_usb_link *l, enum km_usb_fault kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- a mat protocol ------------------------------------------------------ */

typedef struct km_mat_info {
    uint16_t rows, cols;     /* frames as delivered */
    float pitch_mm;
    double rate_hz;          /* nominal */
    int calibrated;          /* kPa from a calibration (1) or a default (0) */
} km_mat_info;

struct km_mat_protocol {
    const char *name;        /* "sensel-morph", "fsr-rle", "fsr-poll" */
    size_t state_size;       /* zeroed before start */
    /* Identify and configure a freshly opened device and start it
     * streaming; fill info. Allocation is allowed here (not per frame). */
    int (*start)(void *state, km_usb_link *l, const km_quirk *q, km_mat_info *info, char *err,
                 size_t errlen);
    /* The next frame into f (reset to info's geometry by the caller).
     * *dev_us: the device's own clock in microseconds, or -1 if it has
     * none; *dev_counter_delta: frames since the previous one by the
     * device's counter (1 when nothing was lost; 1 if it has none).
     * KM_OK; KM_EFORMAT (a fault was counted, frame dropped); KM_ENODEV;
     * KM_EIO. No allocation. */
    int (*next_frame)(void *state, km_usb_link *l, km_frame *f, int64_t *dev_us,
                      uint32_t *dev_counter_delta);
    /* Stop streaming (device still there) and free what start allocated. */
    void (*stop)(void *state, km_usb_link *l, bool device_present);
};

extern const struct km_mat_protocol km_sensel_protocol;
extern const struct km_mat_protocol km_fsr_rle_protocol;
extern const struct km_mat_protocol km_fsr_poll_protocol;

#define KM_SENSEL_VID 0x2c2f
#define KM_SENSEL_PID 0x0003

#endif
