/* fuzz_kmr.c: libFuzzer target for the .kmr reader, check and recover.
 * Any bytes: no crash, no hang, no sanitizer report. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

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
    km_kmr_check(path, &rep);
    km_kmr_reader *r;
    char err[256];
    if (km_kmr_open(path, &r, err, sizeof err) == KM_OK) {
        const km_record_meta *m = km_kmr_meta(r);
        km_frame *f = km_frame_new((uint32_t)m->rows * m->cols);
        for (int i = 0; f && i < 10000 && km_kmr_next_frame(r, f, err, sizeof err) == KM_OK; i++)
            ;
        km_frame_free(f);
        km_kmr_close(r);
    }
    close(fd);
    return 0;
}
