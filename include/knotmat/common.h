/* knotmat/common.h: what every module shares: the export macro, the error
 * enum and km_strerror(), the version. Touches nothing else. */
#ifndef KNOTMAT_COMMON_H
#define KNOTMAT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KM_BUILDING_LIBRARY) || defined(KM_STATIC)
#define KM_API __attribute__((visibility("default")))
#else
#define KM_API
#endif

/** Errors returned by every fallible knotmat function; 0 is success.
 *  Functions return `-KM_E...`-free plain enum values (never negative). */
enum km_error {
    KM_OK = 0,
    KM_ENOMEM,        /**< out of memory */
    KM_EINVAL,        /**< invalid argument (bad URI, bad parameter) */
    KM_EIO,           /**< read or write failed; errno-level detail in the message */
    KM_ENOENT,        /**< file or device not found */
    KM_EFORMAT,       /**< malformed input: file, packet or line not understood */
    KM_EUNSUPPORTED,  /**< valid but not supported (unknown scheme, unit, scenario) */
    KM_EEOF,          /**< the source has no more frames */
    KM_ETIMEOUT,      /**< nothing arrived within the deadline */
    KM_ECLOSED,       /**< the ring was closed by its producer and is drained */
    KM_ETOOBIG,       /**< frame larger than the ring's slots */
    KM_EBUSY,         /**< resource already in use (all consumer slots taken) */
    KM_ENODEV,        /**< the device went away */
    KM_EPERM,         /**< permission denied */
    KM_ERROR_COUNT
};

/** A short static English description of `err`; never NULL. */
KM_API const char *km_strerror(int err);

/** The library version, "MAJOR.MINOR.PATCH". */
KM_API const char *km_version(void);

#ifdef __cplusplus
}
#endif
#endif
