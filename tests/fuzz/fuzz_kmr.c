/* fuzz_kmr.c: libFuzzer target for the .kmr reader, check and recover.
 * Any bytes: no crash, no hang, no sanitizer report; a header within the
 * bounds, frames within them (invariants.h); check accounts for every
 * byte (in a whole block or in a damaged span); recover writes a file that
 * checks whole and holds what check counted. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "invariants.h"
#include "knotmat/record.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    int fd = memfd_create("kmr", 0);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    km_kmr_report rep;
    int crc = km_kmr_check(path, &rep);
    if (rep.blocks && rep.valid_bytes + rep.damaged_bytes != rep.bytes)
        abort();
    if (crc == KM_OK && rep.damaged_spans)
        abort();
    km_kmr_reader *r;
    char err[256];
    if (km_kmr_open(path, &r, err, sizeof err) == KM_OK) {
        const km_record_meta *m = km_kmr_meta(r);
        fuzz_check_geometry(m->rows, m->cols, m->pitch_mm, m->rate_hz);
        km_frame *f = km_frame_new((uint32_t)m->rows * m->cols);
        fuzz_time t = {0};
        int rc = KM_OK;
        for (int i = 0; f && i < 10000 && (rc == KM_OK || rc == KM_EFORMAT); i++)
            if ((rc = km_kmr_next_frame(r, f, err, sizeof err)) == KM_OK)
                fuzz_check_frame(f, m->rows, m->cols, &t);
        km_frame_free(f);
        km_kmr_close(r);
    }
    /* recover (onto tmpfs where there is one): the copy checks whole, with the frames */
    char out[64];
    snprintf(out, sizeof out, "%s/fuzz_kmr_%d.kmr", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
             (int)getpid());
    km_kmr_report rr, fr;
    if (km_kmr_recover(path, out, true, &rr, err, sizeof err) == KM_OK) {
        if (km_kmr_check(out, &fr) != KM_OK || !fr.ended || fr.frames != rr.frames)
            abort();
        unlink(out);
    }
    close(fd);
    return 0;
}
