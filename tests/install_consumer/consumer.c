/* A program outside the project using only the installed public API. */
#include <knotmat/ring.h>
#include <knotmat/sim.h>
#include <knotmat/source.h>
#include <knotmat/stats.h>
#include <stdio.h>

int main(void)
{
    char err[256];
    km_source *src;
    if (km_source_open("sim://release?seed=2&duration=1&speed=max", &src, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    km_frame *f = km_frame_new(km_source_max_cells(src));
    int n = 0;
    km_frame_summary s = {0};
    while (km_source_read(src, f) == KM_OK) {
        km_frame_summarize(f, &s);
        n++;
    }
    printf("knotmat %s: %d frames, last force %.1f N\n", km_version(), n, s.total_force_n);
    km_frame_free(f);
    km_source_close(src);
    return n == 100 && s.total_force_n > 100 ? 0 : 1;
}
