/* test_ring.c: behaviour of the SPMC ring on one thread: order, wrap, loss
 * counting per consumer, independence of consumers, close, sizes, waits,
 * backpressure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "knotmat/ring.h"

static void fill(km_frame *f, uint64_t seq, uint16_t rows, uint16_t cols)
{
    km_frame_reset(f, rows, cols, 10.0f);
    f->seq = seq;
    f->device_ns = (int64_t)seq * 10000000;
    for (uint32_t i = 0; i < km_frame_cells(f); i++) {
        f->kpa[i] = (float)(seq * 1000 + i);
        f->raw[i] = (uint16_t)(seq + i);
        f->cell_flags[i] = (uint8_t)((seq + i) & 3);
    }
}

static void check(const km_frame *f, uint64_t seq, uint16_t rows, uint16_t cols)
{
    assert_int_equal(f->seq, seq);
    assert_int_equal(f->rows, rows);
    assert_int_equal(f->cols, cols);
    assert_true(f->pitch_mm == 10.0f);
    assert_int_equal(f->device_ns, (int64_t)seq * 10000000);
    for (uint32_t i = 0; i < km_frame_cells(f); i++) {
        assert_true(f->kpa[i] == (float)(seq * 1000 + i));
        assert_int_equal(f->raw[i], (uint16_t)(seq + i));
        assert_int_equal(f->cell_flags[i], (uint8_t)((seq + i) & 3));
    }
}

static void test_order_and_wrap(void **state)
{
    (void)state;
    km_ring *r = km_ring_new(5, 64, KM_RING_LOSSY); /* rounds up to 8 */
    assert_non_null(r);
    assert_int_equal(km_ring_slots(r), 8);
    km_ring_consumer *c;
    assert_int_equal(km_ring_consumer_add(r, "a", &c), KM_OK);
    km_frame *in = km_frame_new(64), *out = km_frame_new(64);
    for (uint64_t s = 0; s < 100; s++) {
        fill(in, s, 4, 4);
        assert_int_equal(km_ring_push_spmc(r, in), KM_OK);
        uint64_t lost = 99;
        assert_int_equal(km_ring_pop_spmc(c, out, &lost), KM_OK);
        assert_int_equal(lost, 0);
        check(out, s, 4, 4);
        assert_int_equal(km_ring_pop_spmc(c, out, NULL), KM_ETIMEOUT);
    }
    km_ring_stats st;
    km_ring_consumer_stats(c, &st);
    assert_int_equal(st.pushed, 100);
    assert_int_equal(st.read, 100);
    assert_int_equal(st.lost, 0);
    km_frame_free(in);
    km_frame_free(out);
    km_ring_free(r);
}

static void test_slow_consumer_loses_oldest(void **state)
{
    (void)state;
    km_ring *r = km_ring_new(8, 64, KM_RING_LOSSY);
    km_ring_consumer *fast, *slow;
    assert_int_equal(km_ring_consumer_add(r, "fast", &fast), KM_OK);
    assert_int_equal(km_ring_consumer_add(r, "slow", &slow), KM_OK);
    km_frame *in = km_frame_new(64), *out = km_frame_new(64);
    for (uint64_t s = 0; s < 20; s++) {
        fill(in, s, 3, 5);
        assert_int_equal(km_ring_push_spmc(r, in), KM_OK); /* never blocks */
        assert_int_equal(km_ring_pop_spmc(fast, out, NULL), KM_OK);
        check(out, s, 3, 5);
    }
    /* slow read nothing: 20 pushed into 8 slots, the 12 oldest are gone */
    uint64_t lost = 0;
    assert_int_equal(km_ring_pop_spmc(slow, out, &lost), KM_OK);
    assert_int_equal(lost, 12);
    check(out, 12, 3, 5);
    for (uint64_t s = 13; s < 20; s++) {
        assert_int_equal(km_ring_pop_spmc(slow, out, &lost), KM_OK);
        assert_int_equal(lost, 0);
        check(out, s, 3, 5);
    }
    assert_int_equal(km_ring_pop_spmc(slow, out, NULL), KM_ETIMEOUT);
    km_ring_stats a, b;
    km_ring_consumer_stats(fast, &a);
    km_ring_consumer_stats(slow, &b);
    assert_int_equal(a.lost, 0);
    assert_int_equal(a.read, 20);
    assert_int_equal(b.lost, 12);
    assert_int_equal(b.read, 8);
    assert_string_equal(km_ring_consumer_name(slow), "slow");
    km_frame_free(in);
    km_frame_free(out);
    km_ring_free(r);
}

static void test_geometry_changes_and_sizes(void **state)
{
    (void)state;
    km_ring *r = km_ring_new(4, 100, KM_RING_LOSSY);
    km_ring_consumer *c;
    km_ring_consumer_add(r, "c", &c);
    km_frame *big = km_frame_new(200), *out = km_frame_new(100), *tiny = km_frame_new(10);
    fill(big, 0, 10, 20);
    assert_int_equal(km_ring_push_spmc(r, big), KM_ETOOBIG); /* 200 cells > 100 */
    fill(big, 1, 10, 10);
    assert_int_equal(km_ring_push_spmc(r, big), KM_OK);
    fill(big, 2, 1, 7);
    assert_int_equal(km_ring_push_spmc(r, big), KM_OK);
    assert_int_equal(km_ring_pop_spmc(c, tiny, NULL), KM_ETOOBIG); /* frame 1 does not fit 10 */
    assert_int_equal(km_ring_pop_spmc(c, out, NULL), KM_OK);
    check(out, 1, 10, 10);
    assert_int_equal(km_ring_pop_spmc(c, out, NULL), KM_OK);
    check(out, 2, 1, 7);
    km_frame_free(big);
    km_frame_free(out);
    km_frame_free(tiny);
    km_ring_free(r);
}

static void test_close_drains_then_reports(void **state)
{
    (void)state;
    km_ring *r = km_ring_new(4, 16, KM_RING_LOSSY);
    km_ring_consumer *c;
    km_ring_consumer_add(r, "c", &c);
    km_frame *f = km_frame_new(16);
    fill(f, 7, 2, 2);
    km_ring_push_spmc(r, f);
    km_ring_close(r);
    assert_int_equal(km_ring_push_spmc(r, f), KM_ECLOSED);
    assert_int_equal(km_ring_pop_wait_spmc(c, f, NULL, 1000000000), KM_OK);
    check(f, 7, 2, 2);
    assert_int_equal(km_ring_pop_wait_spmc(c, f, NULL, -1), KM_ECLOSED); /* no hang */
    km_frame_free(f);
    km_ring_free(r);
}

static void test_wait_times_out_without_spinning(void **state)
{
    (void)state;
    km_ring *r = km_ring_new(4, 16, KM_RING_LOSSY);
    km_ring_consumer *c;
    km_ring_consumer_add(r, "c", &c);
    km_frame *f = km_frame_new(16);
    struct timespec a, b, ca, cb;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
    assert_int_equal(km_ring_pop_wait_spmc(c, f, NULL, 200000000), KM_ETIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
    double wall = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
    double cpu = (cb.tv_sec - ca.tv_sec) + (cb.tv_nsec - ca.tv_nsec) * 1e-9;
    assert_true(wall >= 0.19);
    assert_true(cpu < 0.05); /* slept in the kernel, did not spin */
    km_ring_stats st;
    km_ring_consumer_stats(c, &st);
    assert_true(st.waits >= 1);
    km_frame_free(f);
    km_ring_free(r);
}

static void test_consumer_slots_and_late_join(void **state)
{
    (void)state;
    km_ring *r = km_ring_new(4, 16, KM_RING_LOSSY);
    km_ring_consumer *c[KM_RING_MAX_CONSUMERS], *extra;
    for (int i = 0; i < KM_RING_MAX_CONSUMERS; i++)
        assert_int_equal(km_ring_consumer_add(r, "x", &c[i]), KM_OK);
    assert_int_equal(km_ring_consumer_add(r, "y", &extra), KM_EBUSY);
    km_frame *f = km_frame_new(16);
    fill(f, 0, 2, 2);
    km_ring_push_spmc(r, f);
    km_ring_consumer_remove(c[3]);
    assert_int_equal(km_ring_consumer_add(r, "late", &extra), KM_OK);
    /* a consumer joining late starts at the next frame, not at old ones */
    assert_int_equal(km_ring_pop_spmc(extra, f, NULL), KM_ETIMEOUT);
    fill(f, 1, 2, 2);
    km_ring_push_spmc(r, f);
    assert_int_equal(km_ring_pop_spmc(extra, f, NULL), KM_OK);
    check(f, 1, 2, 2);
    km_frame_free(f);
    km_ring_free(r);
}

/* Device contacts and the device-lost/back flags travel with the frame. */
static void test_contacts_and_device_flags_carried(void **state)
{
    km_ring *r = km_ring_new(4, 64, KM_RING_LOSSY);
    km_ring_consumer *c;
    assert_int_equal(km_ring_consumer_add(r, "c", &c), KM_OK);
    km_frame *in = km_frame_new(64), *out = km_frame_new(64);
    km_frame_reset(in, 8, 8, 1.25f);
    in->n_contacts = 3;
    for (int i = 0; i < 3; i++)
        in->contacts[i] = (km_contact){.id = (uint8_t)(7 + i), .state = 2, .x_mm = 1.5f * i,
                                       .y_mm = 100.25f - i, .force_n = 3.75f + i,
                                       .area_mm2 = 42.5f * i};
    in->flags = KM_FRAME_DEVICE_BACK;
    assert_int_equal(km_ring_push_spmc(r, in), KM_OK);
    km_frame_reset(in, 8, 8, 1.25f); /* no contacts, a lost marker */
    in->flags = KM_FRAME_DEVICE_LOST | KM_FRAME_CORRUPT;
    assert_int_equal(km_ring_push_spmc(r, in), KM_OK);
    assert_int_equal(km_ring_pop_spmc(c, out, NULL), KM_OK);
    assert_int_equal(out->n_contacts, 3);
    assert_int_equal(out->flags, KM_FRAME_DEVICE_BACK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out->contacts[i].id, 7 + i);
        assert_int_equal(out->contacts[i].state, 2);
        assert_true(out->contacts[i].x_mm == 1.5f * i && out->contacts[i].y_mm == 100.25f - i);
        assert_true(out->contacts[i].force_n == 3.75f + i);
        assert_true(out->contacts[i].area_mm2 == 42.5f * i);
    }
    assert_int_equal(km_ring_pop_spmc(c, out, NULL), KM_OK);
    assert_int_equal(out->n_contacts, 0);
    assert_int_equal(out->flags, KM_FRAME_DEVICE_LOST | KM_FRAME_CORRUPT);
    km_frame_free(in);
    km_frame_free(out);
    km_ring_consumer_remove(c);
    km_ring_free(r);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(km_ring_new(1, 16, KM_RING_LOSSY));
    assert_null(km_ring_new(8, 0, KM_RING_LOSSY));
    assert_null(km_frame_new(0));
    km_frame *f = km_frame_new(16);
    assert_int_equal(km_frame_reset(f, 5, 5, 1.0f), KM_ETOOBIG);
    assert_int_equal(km_frame_reset(f, 0, 5, 1.0f), KM_EINVAL);
    km_frame_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_wrap),
        cmocka_unit_test(test_slow_consumer_loses_oldest),
        cmocka_unit_test(test_geometry_changes_and_sizes),
        cmocka_unit_test(test_close_drains_then_reports),
        cmocka_unit_test(test_wait_times_out_without_spinning),
        cmocka_unit_test(test_consumer_slots_and_late_join),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_contacts_and_device_flags_carried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
