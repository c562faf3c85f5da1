/* fuzz_csv.c: libFuzzer target for the frame readers (knotmat CSV and
 * PmatData, Tekscan and XSENSOR) and the labels reader. Any bytes: no
 * crash, no hang, and every frame returned keeps the bounds (invariants.h). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "invariants.h"
#include "knotmat/files.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    int fd = memfd_create("csv", 0);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    km_reader_options o;
    km_reader_options_default(&o);
    o.rows = 4; /* small PmatData geometry so short inputs can be whole frames */
    o.cols = 3;
    km_frame_reader *r;
    if (km_frame_reader_open(path, &o, &r, err, sizeof err) == KM_OK) {
        const km_file_meta *m = km_frame_reader_meta(r);
        fuzz_check_geometry(m->rows, m->cols, m->pitch_mm, m->rate_hz);
        km_frame *f = km_frame_new((uint32_t)m->rows * m->cols);
        int rc = KM_OK;
        fuzz_time t = {0};
        for (int i = 0; f && i < 10000 && rc != KM_EEOF && rc != KM_EIO; i++)
            if ((rc = km_frame_reader_next(r, f, err, sizeof err)) == KM_OK)
                fuzz_check_frame(f, m->rows, m->cols, &t);
        km_frame_free(f);
        km_frame_reader_close(r);
    }
    km_label *labels;
    size_t n;
    if (km_labels_read(path, &labels, &n, err, sizeof err) == KM_OK)
        free(labels);
    close(fd);
    return 0;
}
