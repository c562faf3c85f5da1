/* knotmat/outfile.h: every file knotmat writes (exports, reports, CSV,
 * labels, WAV, recordings) is created through this one helper, so that a
 * recording never ends up unreadable by others' accidents and a careless
 * `-o` cannot damage anything:
 *  - the data goes to a new temporary file beside the target, created
 *    O_EXCL with mode 0600 from the first byte (patient data is never
 *    readable by others, not even while it is written);
 *  - only a regular file or a missing name may be the target: a device
 *    node, FIFO, directory or socket is refused, with or without force; a
 *    symlink is never followed (with force the link itself is replaced);
 *  - an existing target is replaced only with KM_OUT_FORCE, and never when
 *    it is one of the inputs (same device and inode);
 *  - km_outfile_commit() syncs the data and renames it into place
 *    atomically; km_outfile_abort() (or any failure) removes the temporary
 *    file and leaves the target as it was.
 * Not for the frame path: it does file-system calls. */
#ifndef KNOTMAT_OUTFILE_H
#define KNOTMAT_OUTFILE_H

#include <stdbool.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_outfile km_outfile;

enum km_outfile_flags {
    KM_OUT_FORCE = 1, /**< replace an existing regular file (or symlink) */
};

/** Check that `path` may be written (the rules above) without creating
 *  anything. `inputs` is a NULL-terminated list of files being read (may
 *  be NULL).
 *  Possible errors: KM_EBUSY (exists, no force), KM_EINVAL (not a regular
 *  file; it is one of the inputs), KM_EIO (cannot stat). */
KM_API int km_outfile_check(const char *path, unsigned flags, const char *const *inputs,
                            char *err, size_t errlen);

/** Check, then create the temporary file. `*out` is NULL on error.
 *  Possible errors: those of km_outfile_check(), KM_EPERM (directory not
 *  writable), KM_EIO, KM_ENOMEM. */
KM_API int km_outfile_open(const char *path, unsigned flags, const char *const *inputs,
                           km_outfile **out, char *err, size_t errlen);
/** The open descriptor of the temporary file (O_WRONLY, O_CLOEXEC). */
KM_API int km_outfile_fd(const km_outfile *o);
/** A name under which a library that opens files by name (EDFlib, HDF5,
 *  cairo) reaches the same file: /proc/self/fd/N where /proc is mounted (a
 *  rename of the directory entry cannot redirect it), else the temporary
 *  path. Opening it with O_TRUNC keeps the mode 0600. */
KM_API const char *km_outfile_io_path(const km_outfile *o);
/** The target path given to km_outfile_open(). */
KM_API const char *km_outfile_target(const km_outfile *o);

/** fsync the data, rename it to the target (atomically; without
 *  KM_OUT_FORCE it fails rather than replace a file that appeared in the
 *  meantime) and fsync the directory. The descriptor stays open and now
 *  names the target (a recorder goes on appending).
 *  Possible errors: KM_EIO (sync or rename failed; the temporary file is
 *  removed), KM_EBUSY (the target appeared meanwhile). */
KM_API int km_outfile_publish(km_outfile *o, char *err, size_t errlen);
/** Publish (unless done), close and free. NULL is a no-op returning KM_OK.
 *  Possible errors: those of km_outfile_publish(), KM_EIO on close. */
KM_API int km_outfile_commit(km_outfile *o, char *err, size_t errlen);
/** Close and free; remove the temporary file if it was never published
 *  (a published file is kept: it is the caller's data). NULL: no-op. */
KM_API void km_outfile_abort(km_outfile *o);

/** Size of what has been written so far (fstat), or -1. */
KM_API int64_t km_outfile_size(const km_outfile *o);

#ifdef __cplusplus
}
#endif
#endif
