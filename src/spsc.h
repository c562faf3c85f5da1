/* spsc.h: the one single-producer single-consumer index pair behind every
 * bounded queue of knotmat (the event queues of events.c, the cue engine's
 * command queue to the audio callback). Index-only: the caller owns the
 * slots (a power of two of them) and copies its items in and out; these
 * helpers say which slot and publish it with the fences that make the copy
 * visible (the pattern of Concurrency Kit's ck_ring.h and PipeWire's
 * spa/utils/ringbuffer.h). Contract: one producer thread calls produce_*,
 * one consumer thread calls consume_*; neither ever blocks; no allocation,
 * so both sides are real-time safe. */
#ifndef KNOTMAT_SPSC_H
#define KNOTMAT_SPSC_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct km_spsc_ {
    _Alignas(64) _Atomic uint32_t head; /* next slot to fill: the producer's */
    _Alignas(64) _Atomic uint32_t tail; /* next slot to read: the consumer's */
    uint32_t mask;                      /* slots - 1 */
} km_spsc_;

/* `slots` must be a power of two. Before either side runs. */
static inline void km_spsc_init_(km_spsc_ *q, uint32_t slots)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    q->mask = slots - 1;
}

/* Producer: the index of the slot to fill, or -1 when the queue is full. */
static inline int64_t km_spsc_produce_begin_(km_spsc_ *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    /* acquire: the consumer has finished reading the slot that is reused */
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    return h - t > q->mask ? -1 : (int64_t)(h & q->mask);
}

/* Producer: the slot from produce_begin is filled; publish it. */
static inline void km_spsc_produce_end_(km_spsc_ *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    /* release: the slot's contents before the new head */
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
}

/* Consumer: how many slots are ready; *first the position of the first
 * (slot index: km_spsc_slot_(q, *first + i)). */
static inline uint32_t km_spsc_consume_begin_(km_spsc_ *q, uint32_t *first)
{
    *first = atomic_load_explicit(&q->tail, memory_order_relaxed);
    /* acquire: pairs with the producer's release of head */
    return atomic_load_explicit(&q->head, memory_order_acquire) - *first;
}

static inline uint32_t km_spsc_slot_(const km_spsc_ *q, uint32_t pos) { return pos & q->mask; }

/* Consumer: the first `n` ready slots are read; they are free again. */
static inline void km_spsc_consume_end_(km_spsc_ *q, uint32_t n)
{
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    /* release: done with the slots before the producer may reuse them */
    atomic_store_explicit(&q->tail, t + n, memory_order_release);
}

#endif
