/* events.c: event names, JSON (json-c), and the SPSC event queue (DSP thread ->
 * listeners). The queue's push is real-time safe: no allocation, no lock. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "knotmat/events.h"
#include "spsc.h"

static const char *const names[KM_EV_TYPE_COUNT] = {
    [KM_EV_HOTSPOT] = "hotspot",         [KM_EV_ON_TARGET] = "on_target",
    [KM_EV_HOLD] = "hold",               [KM_EV_SPASM] = "spasm",
    [KM_EV_RELEASE] = "release",         [KM_EV_OFF_TARGET] = "off_target",
    [KM_EV_OVERPRESSURE] = "overpressure", [KM_EV_HOLD_LIMIT] = "hold_limit",
    [KM_EV_BREATHING] = "breathing",     [KM_EV_DEVICE_LOST] = "device_lost",
    [KM_EV_DEVICE_BACK] = "device_back", [KM_EV_MARK] = "mark",
};

static const char *const mark_names[KM_MARK_COUNT] = {
    [KM_MARK_TWITCH] = "twitch", [KM_MARK_OUCH] = "ouch", [KM_MARK_RELEASE] = "release"};

const char *km_event_type_name(enum km_event_type t)
{
    return (t > 0 && t < KM_EV_TYPE_COUNT && names[t]) ? names[t] : "unknown";
}

const char *km_mark_name(int mark)
{
    return (mark > 0 && mark < KM_MARK_COUNT) ? mark_names[mark] : "unknown";
}

int km_event_mark(const km_event *e)
{
    double v = e->value;
    if (e->type != KM_EV_MARK || !(v >= 1 && v < KM_MARK_COUNT) || v != floor(v))
        return 0;
    return (int)v;
}

const char *km_event_label(const km_event *e)
{
    static const char *const labels[KM_MARK_COUNT] = {
        [KM_MARK_TWITCH] = "mark twitch", [KM_MARK_OUCH] = "mark ouch",
        [KM_MARK_RELEASE] = "mark release"};
    int m = km_event_mark(e);
    return m ? labels[m] : km_event_type_name(e->type);
}

/* A number with a fixed number of decimals; JSON has no NaN: absent
 * quantities are null. */
static void num(json_object *o, const char *key, double v, int decimals)
{
    char txt[64];
    if (!isfinite(v)) {
        json_object_object_add(o, key, NULL);
        return;
    }
    snprintf(txt, sizeof txt, "%.*f", decimals, v);
    json_object_object_add(o, key, json_object_new_double_s(v, txt));
}

int km_event_to_json(const km_event *e, char *buf, size_t len)
{
    json_object *o = json_object_new_object();
    if (!o)
        return snprintf(buf, len, "{}");
    num(o, "t_s", e->t_s, 3);
    json_object_object_add(o, "type", json_object_new_string(km_event_type_name(e->type)));
    num(o, "x_mm", e->x_mm, 1);
    num(o, "y_mm", e->y_mm, 1);
    num(o, "force_n", e->force_n, 1);
    num(o, "confidence", e->confidence, 2);
    switch (e->type) {
    case KM_EV_HOLD:
    case KM_EV_HOLD_LIMIT:
    case KM_EV_OFF_TARGET: num(o, "hold_s", e->value, 1); break;
    case KM_EV_BREATHING: num(o, "rate_bpm", e->value, 1); break;
    case KM_EV_OVERPRESSURE:
    case KM_EV_HOTSPOT: num(o, "peak_kpa", e->value, 1); break;
    case KM_EV_RELEASE: num(o, "drop", e->value, 3); break;
    case KM_EV_SPASM: num(o, "rise", e->value, 3); break;
    case KM_EV_MARK:
        json_object_object_add(o, "mark", json_object_new_string(km_mark_name(km_event_mark(e))));
        break;
    default: break;
    }
    num(o, "detected_t_s", e->detected_t_s, 3);
    json_object_object_add(o, "id", json_object_new_int64(e->track));
    int n = snprintf(buf, len, "%s",
                     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return n;
}

struct km_event_queue {
    km_spsc_ idx; /* the one SPSC index pair (spsc.h) */
    _Alignas(64) _Atomic uint64_t overruns;
    uint32_t mask;
    km_event *slots;
};

km_event_queue *km_event_queue_new(uint32_t capacity)
{
    uint32_t n = 2;
    while (n < capacity && n < (1u << 20))
        n <<= 1;
    km_event_queue *q = aligned_alloc(64, sizeof *q);
    if (!q)
        return NULL;
    km_spsc_init_(&q->idx, n);
    atomic_init(&q->overruns, 0);
    q->slots = calloc(n, sizeof(km_event));
    if (!q->slots) {
        free(q);
        return NULL;
    }
    return q;
}

void km_event_queue_free(km_event_queue *q)
{
    if (!q)
        return;
    free(q->slots);
    free(q);
}

bool km_event_queue_push_spsc(km_event_queue *q, const km_event *e)
{
    int64_t slot = km_spsc_produce_begin_(&q->idx);
    if (slot < 0) {
        atomic_fetch_add_explicit(&q->overruns, 1, memory_order_relaxed);
        return false;
    }
    q->slots[slot] = *e;
    km_spsc_produce_end_(&q->idx);
    return true;
}

bool km_event_queue_pop_spsc(km_event_queue *q, km_event *out)
{
    uint32_t first;
    if (!km_spsc_consume_begin_(&q->idx, &first))
        return false;
    *out = q->slots[km_spsc_slot_(&q->idx, first)];
    km_spsc_consume_end_(&q->idx, 1);
    return true;
}

uint64_t km_event_queue_overruns(const km_event_queue *q)
{
    return atomic_load_explicit(&q->overruns, memory_order_relaxed);
}
