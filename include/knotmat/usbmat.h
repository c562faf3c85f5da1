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
 *  Possible errors: KM_EIO (libusb cannot start: the reason in `err`),
 *  KM_ENOMEM. */
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
 *  other source. Safe from any thread. Possible errors: KM_EINVAL (not a
 *  usb:// source). */
KM_API int km_usb_source_faults(const struct km_source *src, km_usb_faults *out);

/** Where quirks files are read from, colon separated, lowest priority first:
 *  the source tree's drivers/quirks, the installed ${datadir}/knotmat/quirks,
 *  then $KNOTMAT_QUIRKS_DIR (itself colon separated). An entry read later
 *  overrides an earlier one for the same device. Written into buf. */
KM_API void km_quirks_path(char *buf, size_t len);

/* ---- calibration with a known weight (knotmat calibrate) ------------------ */

/** A mat's calibration: a gain on the pressures it reports (an FSR mat's
 *  counts-to-kPa factor from its quirks entry or the default, a Morph's
 *  firmware grams), measured with a known load. Files live in the
 *  calibration directory (km_calibration_dir), one per device, named
 *  VVVV-PPPP-SERIAL.cal, "Key=value" lines: MatchUSBID, MatchSerial, Gain,
 *  Calibrated (ISO 8601 UTC), Method. A usb:// source applies the file of
 *  its device and names it in km_source_info.calibration (and so in every
 *  recording made with it). */
typedef struct km_calibration {
    double gain;          /**< multiplies the pressures the mat reports */
    char when[32];        /**< ISO 8601 UTC */
    char method[192];     /**< "5 kg on 400 cm2: 412 cells, 49.0 N measured" */
} km_calibration;

/** $KNOTMAT_CALIBRATION_DIR, else $XDG_CONFIG_HOME/knotmat/calibration,
 *  else ~/.config/knotmat/calibration. */
KM_API void km_calibration_dir(char *buf, size_t len);
/** Read the calibration of vid:pid/serial. Possible errors: KM_ENOENT
 *  (there is none), KM_EFORMAT (the file is bad: the reason in `err`). */
KM_API int km_calibration_load(uint16_t vid, uint16_t pid, const char *serial,
                               km_calibration *out, char *err, size_t errlen);
/** Write it (the directory is created; the old file is replaced once the
 *  new one is whole). `path` (may be NULL) gets the file's name.
 *  Possible errors: KM_EIO, KM_EPERM, KM_EINVAL (gain not finite and > 0). */
KM_API int km_calibration_save(uint16_t vid, uint16_t pid, const char *serial,
                               const km_calibration *c, char *path, size_t pathlen, char *err,
                               size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
