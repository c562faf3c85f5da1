/* kmr_simcompare FILE.kmr SEED: compare every frame of a recording of
 * sim://release?seed=SEED&duration=600 with the simulator's own frames, bit
 * for bit; print how many matched and the last frame's host_ns (when it
 * reached the recorder, CLOCK_MONOTONIC); exit 1 at the first difference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "knotmat/record.h"
#include "knotmat/sim.h"

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    km_sim_params p;
    km_sim_params_default(&p);
    p.seed = strtoull(argv[2], NULL, 10);
    p.duration_s = 600;
    km_sim *s;
    km_kmr_reader *r;
    char err[512];
    if (km_sim_new(&p, &s, err, sizeof err))
        return 1;
    if (km_kmr_open(argv[1], &r, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        km_sim_free(s);
        return 1;
    }
    km_frame *a = km_frame_new(1024), *b = km_frame_new(1024);
    long n = 0;
    long long last_host = 0;
    int rc, status = 0;
    while ((rc = km_kmr_next_frame(r, a, err, sizeof err)) == KM_OK) {
        if (km_sim_next(s, b) != KM_OK || a->seq != b->seq || a->device_ns != b->device_ns ||
            memcmp(a->kpa, b->kpa, 1024 * sizeof(float)) ||
            memcmp(a->raw, b->raw, 1024 * sizeof(uint16_t)) ||
            memcmp(a->cell_flags, b->cell_flags, 1024)) {
            fprintf(stderr, "frame %ld differs\n", n);
            status = 1;
            break;
        }
        last_host = a->host_ns;
        n++;
    }
    if (!status && rc != KM_EEOF) {
        fprintf(stderr, "%s\n", err);
        status = 1;
    }
    if (!status)
        printf("%ld %lld\n", n, last_host);
    km_frame_free(a);
    km_frame_free(b);
    km_kmr_close(r);
    km_sim_free(s);
    return status;
}
