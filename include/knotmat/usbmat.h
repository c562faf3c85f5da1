/* knotmat/usbmat.h: pressure mats on USB, through libusb. Sources named
 *   usb://auto                      the only mat connected (or a list to choose from)
 *   usb://VID:PID                   e.g. usb://2c2f:0003 (Sensel Morph)
 *   usb://VID:PID/SERIAL            one of several identical mats
 * are opened with km_source_open(); this header adds discovery and the
 * quirks files that describe DIY mats (docs/drivers.md). */
#ifndef KNOTMAT_USBMAT_H
#define KNOTMAT_USBMAT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One connected mat as found by km_usb_list(). */
typedef struct km_usb_mat {
    char kind[32];        /**< protocol: "sensel-morph", "fsr-rle", "fsr-poll" */
    char name[96];        /**< product or quirks section name */
    uint16_t vid, pid;
    uint8_t bus, address;
    char serial[64];      /**< "" when it could not be read (see access) */
    uint16_t rows, cols;  /**< geometry (0 when only the device can tell) */
    float pitch_mm;
    int access;           /**< 1 openable; 0 permission denied (udev rule missing) */
} km_usb_mat;

/** List connected mats (known devices and those matched by a quirks file)
 *  into out[0..max); *n gets how many were found (may exceed max).
 *  KM_EIO with a reason when libusb cannot start. */
KM_API int km_usb_list(km_usb_mat *out, size_t max, size_t *n, char *err, size_t errlen);

/** Fault counters of a usb:// source (km_usb_source_faults()). */
typedef struct km_usb_faults {
    uint64_t stalls;      /**< endpoint stalls (cleared and continued) */
    uint64_t timeouts;    /**< a reply or frame did not come in time */
    uint64_t short_packets; /**< a frame shorter than its header or geometry says */
    uint64_t garbled;     /**< bytes that are not the protocol (resynchronised) */
    uint64_t checksum;    /**< checksum mismatches */
    uint64_t disconnects; /**< times the mat went away */
    uint64_t reconnects;  /**< times it came back */
} km_usb_faults;

struct km_source;
/** Fault counters of a source opened with a usb:// URI; KM_EINVAL for any
 *  other source. Safe from any thread. */
KM_API int km_usb_source_faults(const struct km_source *src, km_usb_faults *out);

/** Where quirks files are read from, colon separated, lowest priority first:
 *  the source tree's drivers/quirks, the installed ${datadir}/knotmat/quirks,
 *  then $KNOTMAT_QUIRKS_DIR (itself colon separated). An entry read later
 *  overrides an earlier one for the same device. Written into buf. */
KM_API void km_quirks_path(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
