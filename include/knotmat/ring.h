/* knotmat/ring.h: the lock-free frame ring between one producer (a source) and
 * several consumers (DSP, recorder, view), each with its own cursor.
 *
 * Concurrency contract (spmc, broadcast, lossy):
 *  - exactly one thread calls km_ring_push_spmc();
 *  - each consumer handle is used by exactly one thread;
 *  - the producer never blocks and never reads consumer state (in the default
 *    KM_RING_LOSSY mode): a consumer that falls a whole ring behind loses its
 *    oldest frames, and finds out itself, counting them in its own `lost`;
 *  - frames are copied in and out of fixed slots guarded by per-slot sequence
 *    stamps (a seqlock), so a consumer never returns a torn frame;
 *  - an idle consumer sleeps on a futex (km_ring_pop_wait_spmc); the producer pays
 *    one atomic load per push to learn whether anyone sleeps.
 * KM_RING_BACKPRESSURE is for offline replay only (file at speed=max): the
 * producer then waits for the slowest consumer instead of overwriting. */
#ifndef KNOTMAT_RING_H
#define KNOTMAT_RING_H

#include <stdbool.h>
#include "frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_ring km_ring;
typedef struct km_ring_consumer km_ring_consumer;

enum km_ring_mode {
    KM_RING_LOSSY = 0,        /**< live: producer never waits, slow consumers lose frames */
    KM_RING_BACKPRESSURE = 1, /**< offline: producer waits for the slowest consumer */
};

#define KM_RING_MAX_CONSUMERS 8

/** Create a ring of `slots` slots (rounded up to a power of two, >= 2), each
 *  able to carry a frame of up to `max_cells` cells. NULL on bad arguments or
 *  out of memory. */
KM_API km_ring *km_ring_new(uint32_t slots, uint32_t max_cells, enum km_ring_mode mode);
/** Free the ring. No thread may use it or its consumers any more. */
KM_API void km_ring_free(km_ring *r);

KM_API uint32_t km_ring_slots(const km_ring *r);
KM_API uint32_t km_ring_max_cells(const km_ring *r);

/** Register a consumer; it sees frames pushed from now on. Call before the
 *  producer starts, or accept that it starts mid-stream. Possible errors:
 *  KM_EBUSY (all KM_RING_MAX_CONSUMERS are taken). */
KM_API int km_ring_consumer_add(km_ring *r, const char *name, km_ring_consumer **out);
/** Register a consumer the producer never waits for, even in backpressure
 *  mode: a display that may stall (a blocked stdout) loses frames, counted,
 *  instead of stalling the replay. Otherwise as km_ring_consumer_add().
 *  Possible errors: KM_EBUSY. */
KM_API int km_ring_consumer_add_lossy(km_ring *r, const char *name, km_ring_consumer **out);
/** Unregister (the producer stops waiting for it in backpressure mode). */
KM_API void km_ring_consumer_remove(km_ring_consumer *c);

/** Producer: copy `f` into the next slot and publish it. Never blocks in
 *  lossy mode. Real-time safe: no allocation, no lock, no I/O.
 *  Possible errors: KM_ETOOBIG (the frame does not fit a slot), KM_ECLOSED
 *  (after km_ring_close()). Either way the frame is counted in ring_full. */
KM_API int km_ring_push_spmc(km_ring *r, const km_frame *f);

/** Producer: no more frames will come. Wakes every sleeping consumer; they
 *  drain what is left and then get KM_ECLOSED. */
KM_API void km_ring_close(km_ring *r);

/** Consumer: copy the next frame into `out` without waiting.
 *  Possible errors: KM_ETIMEOUT (nothing new, not yet closed), KM_ECLOSED
 *  (the ring is closed and drained), KM_ETOOBIG (`out` is too small).
 *  Frames this consumer lost since the last call are added to its `lost`
 *  count; `*lost_now` (may be NULL) tells how many just before this frame. */
KM_API int km_ring_pop_spmc(km_ring_consumer *c, km_frame *out, uint64_t *lost_now);

/** Consumer: like km_ring_pop_spmc() but sleeps up to `timeout_ns` (< 0: forever)
 *  for a frame to arrive, without spinning. Possible errors: those of
 *  km_ring_pop_spmc() (KM_ETIMEOUT: nothing came within `timeout_ns`). */
KM_API int km_ring_pop_wait_spmc(km_ring_consumer *c, km_frame *out, uint64_t *lost_now,
                            int64_t timeout_ns);

typedef struct km_ring_stats {
    uint64_t pushed;   /**< frames published by the producer */
    uint64_t read;     /**< frames this consumer read */
    uint64_t lost;     /**< frames this consumer lost by falling behind */
    uint64_t waits;    /**< times the consumer went to sleep */
} km_ring_stats;

/** Counters of one consumer (read by any thread; values are monotonic). */
KM_API void km_ring_consumer_stats(const km_ring_consumer *c, km_ring_stats *out);
KM_API const char *km_ring_consumer_name(const km_ring_consumer *c);
/** Frames published so far. */
KM_API uint64_t km_ring_pushed(const km_ring *r);
/** Times the producer had to wait (backpressure mode only). */
KM_API uint64_t km_ring_producer_waits(const km_ring *r);

#ifdef __cplusplus
}
#endif
#endif
