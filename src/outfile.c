/* outfile.c: the one way knotmat creates output files (the rules are in
 * include/knotmat/outfile.h): a 0600 temporary file beside the target,
 * renamed into place only once the data is whole and synced; never through
 * a symlink, never onto a device node, never over the input.
 * Touches: the target's directory (one temporary file, one rename). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "knotmat/outfile.h"

struct km_outfile {
    int fd;
    unsigned flags;
    int published;
    char target[4096];
    char temp[4096];
    char io_path[64];
};

static const char *kind_of(mode_t m)
{
    return S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
           : S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket"
                                                                 : "not a regular file";
}

int km_outfile_check(const char *path, unsigned flags, const char *const *inputs, char *err,
                     size_t errlen)
{
    if (!path || !path[0]) {
        km_errf_(err, errlen, "no output file name");
        return KM_EINVAL;
    }
    struct stat ls, ts;
    if (lstat(path, &ls) != 0) {
        if (errno != ENOENT) {
            km_errf_(err, errlen, "%s: %s", path, strerror(errno));
            return errno == EACCES ? KM_EPERM : KM_EIO;
        }
        return KM_OK; /* a new name: nothing to protect */
    }
    if (!S_ISREG(ls.st_mode) && !S_ISLNK(ls.st_mode)) {
        km_errf_(err, errlen, "%s is %s; knotmat writes only regular files (not even with "
                 "--force)", path, kind_of(ls.st_mode));
        return KM_EINVAL;
    }
    /* the output must not be one of the inputs, however it is named */
    int have_target = stat(path, &ts) == 0;
    for (const char *const *in = inputs; have_target && in && *in; in++) {
        struct stat is;
        if (stat(*in, &is) == 0 && is.st_dev == ts.st_dev && is.st_ino == ts.st_ino) {
            km_errf_(err, errlen, "%s is the input %s: write the output somewhere else", path, *in);
            return KM_EINVAL;
        }
    }
    if (!(flags & KM_OUT_FORCE)) {
        km_errf_(err, errlen, "%s exists%s (never overwritten without --force)", path,
                 S_ISLNK(ls.st_mode) ? " as a symlink, which is not followed" : "");
        return KM_EBUSY;
    }
    return KM_OK;
}

int km_outfile_open(const char *path, unsigned flags, const char *const *inputs,
                    km_outfile **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc = km_outfile_check(path, flags, inputs, err, errlen);
    if (rc)
        return rc;
    km_outfile *o = calloc(1, sizeof *o);
    if (!o)
        return KM_ENOMEM;
    if (strlen(path) + 16 >= sizeof o->temp) {
        free(o);
        km_errf_(err, errlen, "%.80s...: path too long", path);
        return KM_EINVAL;
    }
    o->flags = flags;
    snprintf(o->target, sizeof o->target, "%s", path);
    /* the temporary file lives in the target's directory so that the final
     * rename stays on one file system (and is atomic) */
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    snprintf(o->temp, sizeof o->temp, "%.*s.%s.XXXXXX", dirlen, path, slash ? slash + 1 : path);
    o->fd = mkostemp(o->temp, O_CLOEXEC); /* O_EXCL, mode 0600 */
    if (o->fd < 0) {
        int e = errno;
        km_errf_(err, errlen, "%s: cannot create the file: %s", path, strerror(e));
        free(o);
        return e == EACCES || e == EPERM ? KM_EPERM : KM_EIO;
    }
    fchmod(o->fd, 0600); /* mkostemp's mode, whatever the umask widened */
    if (access("/proc/self/fd", X_OK) == 0)
        snprintf(o->io_path, sizeof o->io_path, "/proc/self/fd/%d", o->fd);
    *out = o;
    return KM_OK;
}

int km_outfile_fd(const km_outfile *o) { return o->fd; }
const char *km_outfile_io_path(const km_outfile *o) { return o->io_path[0] ? o->io_path : o->temp; }
const char *km_outfile_target(const km_outfile *o) { return o->target; }

int64_t km_outfile_size(const km_outfile *o)
{
    struct stat st;
    return fstat(o->fd, &st) == 0 ? (int64_t)st.st_size : -1;
}

static void sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        snprintf(dir, sizeof dir, ".");
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        fsync(d); /* some file systems refuse it on directories: nothing to do then */
        close(d);
    }
}

/* rename without replacing: renameat2(RENAME_NOREPLACE), or link + unlink
 * where the file system does not know the flag */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (link(from, to) != 0)
        return -1;
    unlink(from);
    return 0;
}

int km_outfile_publish(km_outfile *o, char *err, size_t errlen)
{
    if (o->published)
        return KM_OK;
    if (fsync(o->fd) != 0) {
        km_errf_(err, errlen, "%s: %s", o->target, strerror(errno));
        return KM_EIO;
    }
    /* the checks again, right before the rename: the target may have
     * changed while the data was written */
    char why[512];
    int rc = km_outfile_check(o->target, o->flags, NULL, why, sizeof why);
    if (!rc) {
        int r = (o->flags & KM_OUT_FORCE) ? rename(o->temp, o->target)
                                          : rename_noreplace(o->temp, o->target);
        if (r != 0) {
            rc = errno == EEXIST ? KM_EBUSY : KM_EIO;
            km_errf_(why, sizeof why, "%.300s: %s", o->target,
                     errno == EEXIST ? "appeared while it was written (not replaced)"
                                     : strerror(errno));
        }
    }
    if (rc) {
        km_errf_(err, errlen, "%s", why);
        return rc;
    }
    o->published = 1;
    sync_dir(o->target);
    return KM_OK;
}

int km_outfile_commit(km_outfile *o, char *err, size_t errlen)
{
    if (!o)
        return KM_OK;
    int rc = km_outfile_publish(o, err, errlen);
    if (rc) {
        km_outfile_abort(o);
        return rc;
    }
    if (close(o->fd) != 0) {
        km_errf_(err, errlen, "%s: %s", o->target, strerror(errno));
        rc = KM_EIO;
    }
    free(o);
    return rc;
}

void km_outfile_abort(km_outfile *o)
{
    if (!o)
        return;
    close(o->fd);
    if (!o->published)
        unlink(o->temp);
    free(o);
}
