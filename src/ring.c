/* ring.c: the single-producer, multi-consumer broadcast ring of frames.
 *
 * Why a seqlock ring: the producer (a live mat) must never wait for anyone, and
 * every consumer must see every frame it can keep up with. So the producer owns
 * the slots and overwrites the oldest one; a consumer copies a slot out and then
 * checks the slot's stamp to know whether the producer overwrote it meanwhile.
 * Lag is detected by the consumer alone, so the producer never reads consumer
 * cursors (except in the opt-in backpressure mode used for offline replay).
 *
 * Slot stamp protocol, for ring position p (0, 1, 2, ...) in slot p & mask:
 *   stamp == 2p+1  the producer is writing position p
 *   stamp == 2p+2  position p is complete
 * A consumer wanting position p accepts the slot only if the stamp reads 2p+2
 * before and after its copy. Slot payload words are C11 atomics accessed with
 * relaxed order, and ordering comes from the fences noted below (Boehm, "Can
 * seqlocks get along with programming language memory models?", MSPC 2012), so
 * the ring is free of data races in the C11 sense and ThreadSanitizer agrees.
 *
 * May touch: memory it allocated, the futex syscall. Nothing else. */
#include "knotmat/ring.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CACHELINE 64
#define HEADER_WORDS 6
/* device contacts follow the header: 3 words each, only n_contacts copied */
#define CONTACT_WORDS (3 * KM_FRAME_MAX_CONTACTS)

struct km_ring_consumer {
    /* written by the owning consumer thread only */
    _Alignas(CACHELINE) _Atomic uint64_t cursor; /* next position to read */
    _Atomic uint64_t read;
    _Atomic uint64_t lost;
    _Atomic uint64_t waits;
    _Atomic int active;
    km_ring *ring;
    char name[24];
};

struct km_ring {
    /* read-mostly configuration */
    _Alignas(CACHELINE) uint32_t nslots, mask;
    uint32_t max_cells;
    uint32_t slot_words; /* stamp + header + payload, multiple of 8 words */
    enum km_ring_mode mode;
    _Atomic uint64_t *slots;

    /* producer-written, consumer-read: its own cache line */
    _Alignas(CACHELINE) _Atomic uint64_t published; /* positions [0, published) complete */
    _Atomic int closed;
    _Atomic uint32_t pub_futex; /* bumped on every publish and on close */

    /* written by consumers going to sleep */
    _Alignas(CACHELINE) _Atomic uint32_t sleepers;

    /* backpressure mode: the producer sleeps here, consumers bump it */
    _Alignas(CACHELINE) _Atomic uint32_t space_futex;
    _Atomic uint32_t producer_sleeping;
    _Atomic uint64_t producer_waits;

    /* producer-only */
    _Alignas(CACHELINE) uint64_t head;

    struct km_ring_consumer consumers[KM_RING_MAX_CONSUMERS];
};

static long futex_wait(_Atomic uint32_t *addr, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    return syscall(SYS_futex, (uint32_t *)(uintptr_t)addr, FUTEX_WAIT_PRIVATE, expected, tsp, NULL,
                   0);
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)(uintptr_t)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static _Atomic uint64_t *slot_at(const km_ring *r, uint64_t pos)
{
    return r->slots + (size_t)(pos & r->mask) * r->slot_words;
}

km_ring *km_ring_new(uint32_t slots, uint32_t max_cells, enum km_ring_mode mode)
{
    if (slots < 2 || slots > (1u << 20) || max_cells == 0 ||
        max_cells > (uint32_t)KM_FRAME_MAX_DIM * KM_FRAME_MAX_DIM)
        return NULL;
    uint32_t n = 2;
    while (n < slots)
        n <<= 1;
    km_ring *r = aligned_alloc(CACHELINE, sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->nslots = n;
    r->mask = n - 1;
    r->max_cells = max_cells;
    r->mode = mode;
    size_t words = 1 + HEADER_WORDS + CONTACT_WORDS + km_frame_block_bytes(max_cells) / 8;
    words = (words + 7) & ~(size_t)7;
    r->slot_words = (uint32_t)words;
    size_t bytes = words * 8 * (size_t)n;
    r->slots = aligned_alloc(CACHELINE, bytes);
    if (!r->slots) {
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < words * (size_t)n; i++)
        atomic_init(&r->slots[i], 0);
    atomic_init(&r->published, 0);
    atomic_init(&r->closed, 0);
    atomic_init(&r->pub_futex, 0);
    atomic_init(&r->sleepers, 0);
    atomic_init(&r->space_futex, 0);
    atomic_init(&r->producer_sleeping, 0);
    atomic_init(&r->producer_waits, 0);
    for (int i = 0; i < KM_RING_MAX_CONSUMERS; i++) {
        atomic_init(&r->consumers[i].active, 0);
        atomic_init(&r->consumers[i].cursor, 0);
        atomic_init(&r->consumers[i].read, 0);
        atomic_init(&r->consumers[i].lost, 0);
        atomic_init(&r->consumers[i].waits, 0);
        r->consumers[i].ring = r;
    }
    return r;
}

void km_ring_free(km_ring *r)
{
    if (!r)
        return;
    free(r->slots);
    free(r);
}

uint32_t km_ring_slots(const km_ring *r) { return r->nslots; }
uint32_t km_ring_max_cells(const km_ring *r) { return r->max_cells; }

uint64_t km_ring_pushed(const km_ring *r)
{
    return atomic_load_explicit(&r->published, memory_order_acquire);
}

uint64_t km_ring_producer_waits(const km_ring *r)
{
    return atomic_load_explicit(&r->producer_waits, memory_order_relaxed);
}

static int consumer_add(km_ring *r, const char *name, int kind, km_ring_consumer **out);

int km_ring_consumer_add(km_ring *r, const char *name, km_ring_consumer **out)
{
    return consumer_add(r, name, 1, out);
}

int km_ring_consumer_add_lossy(km_ring *r, const char *name, km_ring_consumer **out)
{
    return consumer_add(r, name, 3, out);
}

/* active: 0 free, 2 being set up, 1 in use (waited for in backpressure
 * mode), 3 in use but never waited for (a display) */
static int consumer_add(km_ring *r, const char *name, int kind, km_ring_consumer **out)
{
    for (int i = 0; i < KM_RING_MAX_CONSUMERS; i++) {
        km_ring_consumer *c = &r->consumers[i];
        int expected = 0;
        if (!atomic_compare_exchange_strong(&c->active, &expected, 2))
            continue;
        /* slot reserved (active == 2): set it up, then make it visible */
        atomic_store_explicit(&c->cursor, atomic_load(&r->published), memory_order_relaxed);
        atomic_store_explicit(&c->read, 0, memory_order_relaxed);
        atomic_store_explicit(&c->lost, 0, memory_order_relaxed);
        atomic_store_explicit(&c->waits, 0, memory_order_relaxed);
        snprintf(c->name, sizeof c->name, "%s", name ? name : "consumer");
        atomic_store_explicit(&c->active, kind, memory_order_release);
        *out = c;
        return KM_OK;
    }
    return KM_EBUSY;
}

void km_ring_consumer_remove(km_ring_consumer *c)
{
    if (!c)
        return;
    atomic_store_explicit(&c->active, 0, memory_order_release);
    /* a producer waiting for this consumer must re-evaluate */
    atomic_fetch_add_explicit(&c->ring->space_futex, 1, memory_order_seq_cst);
    futex_wake_all(&c->ring->space_futex);
}

/* Backpressure mode: the slowest active consumer's cursor. */
static uint64_t slowest_cursor(km_ring *r, uint64_t head)
{
    uint64_t min = head;
    for (int i = 0; i < KM_RING_MAX_CONSUMERS; i++) {
        km_ring_consumer *c = &r->consumers[i];
        if (atomic_load_explicit(&c->active, memory_order_acquire) != 1)
            continue;
        uint64_t cur = atomic_load_explicit(&c->cursor, memory_order_acquire);
        if (cur < min)
            min = cur;
    }
    return min;
}

static void wait_for_space(km_ring *r, uint64_t pos)
{
    for (;;) {
        uint32_t seen = atomic_load_explicit(&r->space_futex, memory_order_seq_cst);
        if (pos - slowest_cursor(r, pos) < r->nslots)
            return;
        atomic_fetch_add_explicit(&r->producer_waits, 1, memory_order_relaxed);
        atomic_store_explicit(&r->producer_sleeping, 1, memory_order_seq_cst);
        if (pos - slowest_cursor(r, pos) < r->nslots) {
            atomic_store_explicit(&r->producer_sleeping, 0, memory_order_relaxed);
            return;
        }
        futex_wait(&r->space_futex, seen, 100000000);
        atomic_store_explicit(&r->producer_sleeping, 0, memory_order_relaxed);
    }
}

static void pack_header(uint64_t *h, const km_frame *f)
{
    uint32_t pitch_bits;
    memcpy(&pitch_bits, &f->pitch_mm, 4);
    h[0] = f->seq;
    h[1] = (uint64_t)f->device_ns;
    h[2] = (uint64_t)f->host_ns;
    h[3] = (uint64_t)f->rows | (uint64_t)f->cols << 16 | (uint64_t)pitch_bits << 32;
    h[4] = (uint64_t)f->flags | (uint64_t)f->n_saturated << 32;
    h[5] = (uint64_t)f->n_dead | (uint64_t)(f->n_contacts <= KM_FRAME_MAX_CONTACTS
                                                 ? f->n_contacts : KM_FRAME_MAX_CONTACTS) << 32;
}

/* A contact in three words: id and state; x and y; force and area (floats). */
static void pack_contact(uint64_t *w, const km_contact *c)
{
    uint32_t x, y, fo, ar;
    memcpy(&x, &c->x_mm, 4);
    memcpy(&y, &c->y_mm, 4);
    memcpy(&fo, &c->force_n, 4);
    memcpy(&ar, &c->area_mm2, 4);
    w[0] = (uint64_t)c->id | (uint64_t)c->state << 8;
    w[1] = (uint64_t)x | (uint64_t)y << 32;
    w[2] = (uint64_t)fo | (uint64_t)ar << 32;
}

static void unpack_contact(km_contact *c, const uint64_t *w)
{
    uint32_t x = (uint32_t)w[1], y = (uint32_t)(w[1] >> 32), fo = (uint32_t)w[2],
             ar = (uint32_t)(w[2] >> 32);
    c->id = (uint8_t)w[0];
    c->state = (uint8_t)(w[0] >> 8);
    memcpy(&c->x_mm, &x, 4);
    memcpy(&c->y_mm, &y, 4);
    memcpy(&c->force_n, &fo, 4);
    memcpy(&c->area_mm2, &ar, 4);
}

int km_ring_push_spmc(km_ring *r, const km_frame *f)
{
    uint32_t cells = km_frame_cells(f);
    if (cells > r->max_cells)
        return KM_ETOOBIG;
    if (atomic_load_explicit(&r->closed, memory_order_relaxed))
        return KM_ECLOSED;
    uint64_t pos = r->head;
    if (r->mode == KM_RING_BACKPRESSURE)
        wait_for_space(r, pos);

    _Atomic uint64_t *s = slot_at(r, pos);
    atomic_store_explicit(&s[0], 2 * pos + 1, memory_order_relaxed);
    /* Order the odd stamp before every payload store: a reader that sees any
     * new payload word is then guaranteed to see the odd (or a later) stamp. */
    atomic_thread_fence(memory_order_release);

    uint64_t h[HEADER_WORDS];
    pack_header(h, f);
    for (int i = 0; i < HEADER_WORDS; i++)
        atomic_store_explicit(&s[1 + i], h[i], memory_order_relaxed);
    uint32_t nc = (uint32_t)(h[5] >> 32);
    for (uint32_t i = 0; i < nc; i++) {
        uint64_t w[3];
        pack_contact(w, &f->contacts[i]);
        for (int k = 0; k < 3; k++)
            atomic_store_explicit(&s[1 + HEADER_WORDS + 3 * i + k], w[k], memory_order_relaxed);
    }
    const unsigned char *src = f->block_;
    size_t nw = km_frame_block_bytes(cells) / 8;
    _Atomic uint64_t *dst = s + 1 + HEADER_WORDS + CONTACT_WORDS;
    for (size_t i = 0; i < nw; i++) {
        uint64_t w;
        memcpy(&w, src + 8 * i, 8);
        atomic_store_explicit(&dst[i], w, memory_order_relaxed);
    }
    /* Release: payload stores happen-before any reader that sees 2pos+2. */
    atomic_store_explicit(&s[0], 2 * pos + 2, memory_order_release);
    r->head = pos + 1;
    atomic_store_explicit(&r->published, pos + 1, memory_order_release);

    /* Wake sleepers. seq_cst store then seq_cst load pairs with the consumer's
     * seq_cst increment of `sleepers` then futex check (Dekker): either we see
     * the sleeper or the sleeper's futex_wait sees the new pub_futex value. */
    atomic_fetch_add_explicit(&r->pub_futex, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&r->sleepers, memory_order_seq_cst))
        futex_wake_all(&r->pub_futex);
    return KM_OK;
}

void km_ring_close(km_ring *r)
{
    atomic_store_explicit(&r->closed, 1, memory_order_release);
    atomic_fetch_add_explicit(&r->pub_futex, 1, memory_order_seq_cst);
    futex_wake_all(&r->pub_futex);
}

static void unpack_header(km_frame *out, const uint64_t *h)
{
    uint32_t pitch_bits = (uint32_t)(h[3] >> 32);
    out->seq = h[0];
    out->device_ns = (int64_t)h[1];
    out->host_ns = (int64_t)h[2];
    out->rows = (uint16_t)(h[3] & 0xffff);
    out->cols = (uint16_t)((h[3] >> 16) & 0xffff);
    memcpy(&out->pitch_mm, &pitch_bits, 4);
    out->flags = (uint32_t)h[4];
    out->n_saturated = (uint32_t)(h[4] >> 32);
    out->n_dead = (uint32_t)h[5];
}

static void consumer_advance(km_ring_consumer *c, uint64_t pos)
{
    atomic_store_explicit(&c->cursor, pos, memory_order_release);
    km_ring *r = c->ring;
    if (r->mode == KM_RING_BACKPRESSURE) {
        atomic_fetch_add_explicit(&r->space_futex, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&r->producer_sleeping, memory_order_seq_cst))
            futex_wake_all(&r->space_futex);
    }
}

int km_ring_pop_spmc(km_ring_consumer *c, km_frame *out, uint64_t *lost_now)
{
    km_ring *r = c->ring;
    uint64_t start = atomic_load_explicit(&c->cursor, memory_order_relaxed);
    uint64_t pos = start;
    uint64_t lost = 0;
    int rc;
    for (;;) {
        /* closed before published: once closed is seen, published is final */
        int closed = atomic_load_explicit(&r->closed, memory_order_acquire);
        uint64_t pub = atomic_load_explicit(&r->published, memory_order_acquire);
        if (pos >= pub) {
            rc = closed ? KM_ECLOSED : KM_ETIMEOUT;
            break;
        }
        if (pub - pos > r->nslots) { /* whole laps behind: skip what is surely gone */
            lost += pub - r->nslots - pos;
            pos = pub - r->nslots;
        }
        _Atomic uint64_t *s = slot_at(r, pos);
        uint64_t want = 2 * pos + 2;
        uint64_t st1 = atomic_load_explicit(&s[0], memory_order_acquire);
        if (st1 != want) { /* overwritten by a later lap (or being written) */
            lost++;
            pos++;
            continue;
        }
        uint64_t h[HEADER_WORDS];
        for (int i = 0; i < HEADER_WORDS; i++)
            h[i] = atomic_load_explicit(&s[1 + i], memory_order_relaxed);
        uint32_t cells = (uint32_t)(h[3] & 0xffff) * (uint32_t)((h[3] >> 16) & 0xffff);
        if (cells > r->max_cells)
            cells = r->max_cells; /* torn header; the stamp check below rejects it */
        if (cells > out->capacity_cells_) {
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&s[0], memory_order_relaxed) == st1) {
                rc = KM_ETOOBIG;
                break;
            }
            lost++;
            pos++;
            continue;
        }
        uint32_t nc = (uint32_t)(h[5] >> 32);
        if (nc > KM_FRAME_MAX_CONTACTS)
            nc = 0; /* torn header; the stamp check below rejects it */
        uint64_t cw[CONTACT_WORDS];
        for (uint32_t i = 0; i < 3 * nc; i++)
            cw[i] = atomic_load_explicit(&s[1 + HEADER_WORDS + i], memory_order_relaxed);
        unsigned char *dst = out->block_;
        size_t nw = km_frame_block_bytes(cells) / 8;
        const _Atomic uint64_t *src = s + 1 + HEADER_WORDS + CONTACT_WORDS;
        for (size_t i = 0; i < nw; i++) {
            uint64_t w = atomic_load_explicit(&src[i], memory_order_relaxed);
            memcpy(dst + 8 * i, &w, 8);
        }
        /* Acquire fence: if any payload word we read came from a newer write,
         * the stamp load below sees that write's odd stamp or later. */
        atomic_thread_fence(memory_order_acquire);
        uint64_t st2 = atomic_load_explicit(&s[0], memory_order_relaxed);
        if (st2 != st1) {
            lost++;
            pos++;
            continue;
        }
        unpack_header(out, h);
        out->n_contacts = nc;
        for (uint32_t i = 0; i < nc; i++)
            unpack_contact(&out->contacts[i], &cw[3 * i]);
        km_frame_point_(out, cells);
        pos++;
        atomic_fetch_add_explicit(&c->read, 1, memory_order_relaxed);
        rc = KM_OK;
        break;
    }
    if (lost)
        atomic_fetch_add_explicit(&c->lost, lost, memory_order_relaxed);
    if (lost_now)
        *lost_now = lost;
    if (pos != start)
        consumer_advance(c, pos);
    return rc;
}

int km_ring_pop_wait_spmc(km_ring_consumer *c, km_frame *out, uint64_t *lost_now, int64_t timeout_ns)
{
    km_ring *r = c->ring;
    int64_t deadline = timeout_ns >= 0 ? km_mono_ns_() + timeout_ns : -1;
    uint64_t lost_total = 0;
    for (;;) {
        uint32_t seen = atomic_load_explicit(&r->pub_futex, memory_order_seq_cst);
        uint64_t lost = 0;
        int rc = km_ring_pop_spmc(c, out, &lost);
        lost_total += lost;
        if (rc != KM_ETIMEOUT) {
            if (lost_now)
                *lost_now = lost_total;
            return rc;
        }
        int64_t left = -1;
        if (deadline >= 0) {
            left = deadline - km_mono_ns_();
            if (left <= 0) {
                if (lost_now)
                    *lost_now = lost_total;
                return KM_ETIMEOUT;
            }
        }
        atomic_fetch_add_explicit(&c->waits, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->sleepers, 1, memory_order_seq_cst);
        futex_wait(&r->pub_futex, seen, left);
        atomic_fetch_sub_explicit(&r->sleepers, 1, memory_order_seq_cst);
    }
}

void km_ring_consumer_stats(const km_ring_consumer *c, km_ring_stats *out)
{
    out->pushed = km_ring_pushed(c->ring);
    out->read = atomic_load_explicit(&c->read, memory_order_relaxed);
    out->lost = atomic_load_explicit(&c->lost, memory_order_relaxed);
    out->waits = atomic_load_explicit(&c->waits, memory_order_relaxed);
}

const char *km_ring_consumer_name(const km_ring_consumer *c) { return c->name; }
