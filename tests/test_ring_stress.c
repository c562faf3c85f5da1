/* test_ring_stress.c: a producer thread and consumer threads hammer the ring
 * with 10 million frames (argv[1] to change). Every frame a consumer returns
 * must be whole (its cells agree with its sequence number), sequence numbers
 * must only increase, each gap must equal the loss reported with that frame,
 * and read + lost must equal pushed. A second run in backpressure mode must
 * deliver every frame. Built and run under ThreadSanitizer in CI. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "knotmat/ring.h"

#define ROWS 2
#define COLS 4

static uint32_t cell_word(uint64_t seq, uint32_t i)
{
    return (uint32_t)(seq * 2654435761u) ^ (i * 40503u) ^ (uint32_t)(seq >> 32);
}

typedef struct {
    km_ring *ring;
    uint64_t n;
} prod_arg;

static void *producer(void *p)
{
    prod_arg *a = p;
    km_frame *f = km_frame_new(ROWS * COLS);
    km_frame_reset(f, ROWS, COLS, 1.0f);
    for (uint64_t s = 0; s < a->n; s++) {
        f->seq = s;
        f->device_ns = (int64_t)s;
        for (uint32_t i = 0; i < ROWS * COLS; i++) {
            uint32_t w = cell_word(s, i);
            memcpy(&f->kpa[i], &w, 4);
            f->raw[i] = (uint16_t)w;
            f->cell_flags[i] = (uint8_t)(w >> 24);
        }
        if (km_ring_push_spmc(a->ring, f) != KM_OK) {
            fprintf(stderr, "push failed at %llu\n", (unsigned long long)s);
            exit(1);
        }
    }
    km_ring_close(a->ring);
    km_frame_free(f);
    return NULL;
}

typedef struct {
    km_ring_consumer *c;
    uint64_t read, lost, bad;
    int64_t last;
} cons_arg;

static void *consumer(void *p)
{
    cons_arg *a = p;
    km_frame *f = km_frame_new(ROWS * COLS);
    a->last = -1;
    for (;;) {
        uint64_t lost = 0;
        int rc = km_ring_pop_wait_spmc(a->c, f, &lost, -1);
        a->lost += lost;
        if (rc == KM_ECLOSED)
            break;
        if (rc != KM_OK) {
            a->bad++;
            break;
        }
        int64_t s = (int64_t)f->seq;
        if (s <= a->last || (uint64_t)(s - a->last - 1) != lost || f->device_ns != s ||
            f->rows != ROWS || f->cols != COLS)
            a->bad++;
        for (uint32_t i = 0; i < ROWS * COLS; i++) {
            uint32_t w, want = cell_word((uint64_t)s, i);
            memcpy(&w, &f->kpa[i], 4);
            if (w != want || f->raw[i] != (uint16_t)want || f->cell_flags[i] != (uint8_t)(want >> 24))
                a->bad++;
        }
        a->last = s;
        a->read++;
    }
    km_frame_free(f);
    return NULL;
}

static int run(uint64_t n, enum km_ring_mode mode, int nconsumers, uint32_t slots)
{
    km_ring *r = km_ring_new(slots, ROWS * COLS, mode);
    cons_arg ca[4];
    pthread_t ct[4], pt;
    memset(ca, 0, sizeof ca);
    for (int i = 0; i < nconsumers; i++)
        km_ring_consumer_add(r, "stress", &ca[i].c);
    for (int i = 0; i < nconsumers; i++)
        pthread_create(&ct[i], NULL, consumer, &ca[i]);
    prod_arg pa = {r, n};
    pthread_create(&pt, NULL, producer, &pa);
    pthread_join(pt, NULL);
    int fail = 0;
    for (int i = 0; i < nconsumers; i++) {
        pthread_join(ct[i], NULL);
        km_ring_stats st;
        km_ring_consumer_stats(ca[i].c, &st);
        printf("%s consumer %d: pushed %llu read %llu lost %llu (%.2f%%) waits %llu bad %llu\n",
               mode == KM_RING_LOSSY ? "lossy" : "backpressure", i,
               (unsigned long long)st.pushed, (unsigned long long)ca[i].read,
               (unsigned long long)ca[i].lost, 100.0 * ca[i].lost / (double)n,
               (unsigned long long)st.waits, (unsigned long long)ca[i].bad);
        if (ca[i].bad || ca[i].read + ca[i].lost != n || st.lost != ca[i].lost ||
            st.read != ca[i].read || st.pushed != n)
            fail = 1;
        if (mode == KM_RING_BACKPRESSURE && ca[i].lost != 0)
            fail = 1;
        /* lossy mode: the last frame is never lost (nothing overwrites it) */
        if (ca[i].last != (int64_t)n - 1)
            fail = 1;
    }
    km_ring_free(r);
    return fail;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000ull;
    int fail = 0;
    fail |= run(n, KM_RING_LOSSY, 1, 64);          /* the two-thread test */
    fail |= run(n / 10, KM_RING_LOSSY, 3, 16);      /* several consumers, small ring */
    fail |= run(n / 10, KM_RING_BACKPRESSURE, 2, 16);
    printf("%s\n", fail ? "FAIL" : "ok");
    return fail;
}
