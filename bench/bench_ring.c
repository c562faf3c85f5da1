/* bench_ring.c: the knotmat frame ring against Concurrency Kit's ck_ring SPSC
 * moving the same bytes between two threads, in the same run.
 *
 * For 2 KiB and 8 KiB frames:
 *  - throughput: the producer pushes as fast as it can, the consumer polls;
 *    frames/s delivered (ck_ring is lossless and makes the producer spin when
 *    full; the knotmat ring is measured lossless too, in backpressure mode,
 *    and in its live lossy mode where the loss is reported);
 *  - handoff latency: one frame every 20 us, consumer polling; time from the
 *    producer's clock reading before the push to the consumer's after the pop
 *    (CLOCK_MONOTONIC), p50 and p99; and for the knotmat ring also with a
 *    sleeping consumer (futex wake-up), the mode knotmat's consumers use.
 * Each figure is the median of REPEATS runs. Prints a table and the ratios
 * knotmat / ck_ring. This is a benchmark: it prints numbers, it asserts
 * nothing. Usage: bench_ring [frames_per_run] [repeats] */
#include <ck_ring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "knotmat/ring.h"

#define SLOTS 64
#define LAT_FRAMES 100000
#define LAT_PERIOD_NS 20000

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}
static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- ck_ring with a by-value frame of the same size -------------------- */

struct frame2k { int64_t t; uint64_t seq; unsigned char b[2048 - 16]; };
struct frame8k { int64_t t; uint64_t seq; unsigned char b[8192 - 16]; };
CK_RING_PROTOTYPE(frame2k, frame2k)
CK_RING_PROTOTYPE(frame8k, frame8k)

typedef struct {
    int size_kib;
    uint64_t n;
    int paced;
    ck_ring_t ring;
    void *buf;
    _Atomic int go;
    int64_t *lat;
    uint64_t got;
} ck_arg;

#define CK_PRODUCER(NAME, TYPE)                                                             \
    static void *ck_prod_##NAME(void *p)                                                    \
    {                                                                                       \
        ck_arg *a = p;                                                                      \
        struct TYPE *f = calloc(1, sizeof *f);                                              \
        while (!atomic_load(&a->go))                                                        \
            ;                                                                               \
        int64_t next = now_ns();                                                            \
        for (uint64_t s = 0; s < a->n; s++) {                                               \
            if (a->paced) {                                                                 \
                next += LAT_PERIOD_NS;                                                      \
                while (now_ns() < next)                                                     \
                    ;                                                                       \
            }                                                                               \
            f->seq = s;                                                                     \
            f->t = now_ns();                                                                \
            memset(f->b, (int)s, 64);                                                       \
            while (!ck_ring_enqueue_spsc_##NAME(&a->ring, a->buf, f))                       \
                ;                                                                           \
        }                                                                                   \
        free(f);                                                                            \
        return NULL;                                                                        \
    }                                                                                       \
    static void *ck_cons_##NAME(void *p)                                                    \
    {                                                                                       \
        ck_arg *a = p;                                                                      \
        struct TYPE *f = calloc(1, sizeof *f);                                              \
        atomic_store(&a->go, 1);                                                            \
        for (uint64_t s = 0; s < a->n;) {                                                   \
            if (!ck_ring_dequeue_spsc_##NAME(&a->ring, a->buf, f))                          \
                continue;                                                                   \
            if (a->lat && s < LAT_FRAMES)                                                   \
                a->lat[s] = now_ns() - f->t;                                                \
            s++;                                                                            \
        }                                                                                   \
        a->got = a->n;                                                                      \
        free(f);                                                                            \
        return NULL;                                                                        \
    }
CK_PRODUCER(frame2k, frame2k)
CK_PRODUCER(frame8k, frame8k)

/* Returns frames/s; fills lat[] when paced. */
static double run_ck(int kib, uint64_t n, int paced, int64_t *lat)
{
    ck_arg a;
    memset(&a, 0, sizeof a);
    a.size_kib = kib;
    a.n = n;
    a.paced = paced;
    a.lat = lat;
    size_t fs = kib == 2 ? sizeof(struct frame2k) : sizeof(struct frame8k);
    a.buf = aligned_alloc(64, fs * SLOTS);
    ck_ring_init(&a.ring, SLOTS);
    pthread_t p, c;
    pthread_create(&c, NULL, kib == 2 ? ck_cons_frame2k : ck_cons_frame8k, &a);
    pthread_create(&p, NULL, kib == 2 ? ck_prod_frame2k : ck_prod_frame8k, &a);
    int64_t t0 = now_ns();
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    int64_t el = now_ns() - t0;
    free(a.buf);
    return n / (el * 1e-9);
}

/* ---- knotmat ring ------------------------------------------------------- */

typedef struct {
    km_ring *ring;
    km_ring_consumer *c;
    uint32_t cells;
    uint64_t n;
    int paced, sleeping;
    _Atomic int go;
    _Atomic int done;
    int64_t *lat;
    uint64_t got, lost;
} km_arg;

static void *km_prod(void *p)
{
    km_arg *a = p;
    km_frame *f = km_frame_new(a->cells);
    km_frame_reset(f, 1, (uint16_t)a->cells, 1.0f);
    while (!atomic_load(&a->go))
        ;
    int64_t next = now_ns();
    for (uint64_t s = 0; s < a->n; s++) {
        if (a->paced) {
            next += LAT_PERIOD_NS;
            while (now_ns() < next)
                ;
        }
        f->seq = s;
        f->host_ns = now_ns();
        memset(f->kpa, (int)s, 64);
        km_ring_push_spmc(a->ring, f);
    }
    km_ring_close(a->ring);
    km_frame_free(f);
    return NULL;
}

static void *km_cons(void *p)
{
    km_arg *a = p;
    km_frame *f = km_frame_new(a->cells);
    atomic_store(&a->go, 1);
    for (;;) {
        uint64_t lost = 0;
        int rc = a->sleeping ? km_ring_pop_wait_spmc(a->c, f, &lost, -1) : km_ring_pop_spmc(a->c, f, &lost);
        a->lost += lost;
        if (rc == KM_ECLOSED)
            break;
        if (rc != KM_OK)
            continue;
        if (a->lat && f->seq < LAT_FRAMES)
            a->lat[f->seq] = now_ns() - f->host_ns;
        a->got++;
    }
    km_frame_free(f);
    return NULL;
}

/* cells such that the ring moves about `bytes` per frame (header + cells) */
static uint32_t cells_for(size_t bytes)
{
    uint32_t c = 1;
    while (km_frame_block_bytes(c + 1) + 48 <= bytes)
        c++;
    return c;
}

static double run_km(int kib, uint64_t n, int paced, int sleeping, enum km_ring_mode mode,
                     int64_t *lat, double *loss_pct)
{
    km_arg a;
    memset(&a, 0, sizeof a);
    a.cells = cells_for((size_t)kib * 1024);
    a.n = n;
    a.paced = paced;
    a.sleeping = sleeping;
    a.lat = lat;
    a.ring = km_ring_new(SLOTS, a.cells, mode);
    km_ring_consumer_add(a.ring, "bench", &a.c);
    if (lat)
        for (int i = 0; i < LAT_FRAMES; i++)
            lat[i] = -1;
    pthread_t p, c;
    pthread_create(&c, NULL, km_cons, &a);
    pthread_create(&p, NULL, km_prod, &a);
    int64_t t0 = now_ns();
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    int64_t el = now_ns() - t0;
    km_ring_free(a.ring);
    if (loss_pct)
        *loss_pct = 100.0 * a.lost / (double)n;
    return a.got / (el * 1e-9);
}

static void percentiles(int64_t *lat, int n, double *p50, double *p99)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (lat[i] >= 0)
            lat[k++] = lat[i];
    qsort(lat, (size_t)k, sizeof *lat, cmp_i64);
    *p50 = k ? lat[k / 2] / 1000.0 : -1;
    *p99 = k ? lat[(int)(k * 0.99)] / 1000.0 : -1;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (reps < 1 || reps > 50)
        reps = 5;
    int64_t *lat = malloc(sizeof(int64_t) * LAT_FRAMES);
    printf("ring benchmark: %llu frames per throughput run, %d latency frames at one per %d us, "
           "median of %d runs, %d slots\n",
           (unsigned long long)n, LAT_FRAMES, LAT_PERIOD_NS / 1000, reps, SLOTS);
    printf("%-6s %-34s %14s %8s %10s %10s\n", "frame", "ring", "frames/s", "loss%", "p50 us",
           "p99 us");
    for (int kib = 2; kib <= 8; kib += 6) {
        double ck_t[50], ck_50[50], ck_99[50], bp_t[50], ls_t[50], ls_l[50], km_50[50], km_99[50],
            sl_50[50], sl_99[50];
        for (int r = 0; r < reps; r++) {
            ck_t[r] = run_ck(kib, n, 0, NULL);
            run_ck(kib, LAT_FRAMES, 1, lat);
            percentiles(lat, LAT_FRAMES, &ck_50[r], &ck_99[r]);
            bp_t[r] = run_km(kib, n, 0, 0, KM_RING_BACKPRESSURE, NULL, NULL);
            ls_t[r] = run_km(kib, n, 0, 0, KM_RING_LOSSY, NULL, &ls_l[r]);
            run_km(kib, LAT_FRAMES, 1, 0, KM_RING_LOSSY, lat, NULL);
            percentiles(lat, LAT_FRAMES, &km_50[r], &km_99[r]);
            run_km(kib, LAT_FRAMES, 1, 1, KM_RING_LOSSY, lat, NULL);
            percentiles(lat, LAT_FRAMES, &sl_50[r], &sl_99[r]);
        }
        double ckt = median(ck_t, reps), bpt = median(bp_t, reps), lst = median(ls_t, reps);
        double c50 = median(ck_50, reps), c99 = median(ck_99, reps);
        double k50 = median(km_50, reps), k99 = median(km_99, reps);
        double s50 = median(sl_50, reps), s99 = median(sl_99, reps);
        printf("%d KiB  %-34s %14.0f %8s %10.2f %10.2f\n", kib, "ck_ring spsc (lossless, spin)",
               ckt, "0", c50, c99);
        printf("%d KiB  %-34s %14.0f %8s %10s %10s\n", kib, "knotmat backpressure (lossless)",
               bpt, "0", "-", "-");
        printf("%d KiB  %-34s %14.0f %8.2f %10.2f %10.2f\n", kib, "knotmat lossy (live), polling",
               lst, median(ls_l, reps), k50, k99);
        printf("%d KiB  %-34s %14s %8s %10.2f %10.2f\n", kib, "knotmat lossy, sleeping (futex)",
               "-", "-", s50, s99);
        printf("%d KiB  ratio knotmat/ck_ring: throughput lossless %.2f, lossy delivered %.2f; "
               "latency p50 %.2f, p99 %.2f\n",
               kib, bpt / ckt, lst / ckt, k50 / c50, k99 / c99);
    }
    free(lat);
    return 0;
}
