/* error.c: the text of each km_error and the library version. */
#include "knotmat/common.h"

static const char *const messages[KM_ERROR_COUNT] = {
    [KM_OK] = "success",
    [KM_ENOMEM] = "out of memory",
    [KM_EINVAL] = "invalid argument",
    [KM_EIO] = "input/output error",
    [KM_ENOENT] = "no such file or device",
    [KM_EFORMAT] = "malformed input",
    [KM_EUNSUPPORTED] = "not supported",
    [KM_EEOF] = "end of stream",
    [KM_ETIMEOUT] = "timed out",
    [KM_ECLOSED] = "closed",
    [KM_ETOOBIG] = "frame too large",
    [KM_EBUSY] = "resource busy",
    [KM_ENODEV] = "device lost",
    [KM_EPERM] = "permission denied",
};

const char *km_strerror(int err)
{
    if (err < 0 || err >= KM_ERROR_COUNT || !messages[err])
        return "unknown error";
    return messages[err];
}

const char *km_version(void) { return KM_VERSION_STRING; }
