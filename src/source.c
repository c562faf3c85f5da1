/* source.c: opening sources by URI and the generic producer thread that
 * paces a pull-style source (simulator, file) into the ring in real time.
 * Touches: the source's driver, the ring, the clock. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "source_private.h"

static const struct km_source_ops *const registry[] = {
    &km_sim_source_ops,
    &km_sim2_source_ops,
    &km_file_source_ops,
    &km_usb_source_ops,
    NULL,
};

void km_source_note_(km_source *src, enum km_note_kind kind, const char *fmt, ...)
{
    if (!src->note)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    src->note(src->note_user, kind, text);
}

int km_source_open(const char *text, km_source **out, char *err, size_t errlen)
{
    *out = NULL;
    km_source *src = calloc(1, sizeof *src);
    if (!src)
        return KM_ENOMEM;
    int rc = km_uri_parse(text, &src->uri, err, errlen);
    if (rc) {
        free(src);
        return rc;
    }
    for (int i = 0; registry[i]; i++)
        if (!strcmp(registry[i]->scheme, src->uri.scheme))
            src->ops = registry[i];
    if (!src->ops) {
        km_errf_(err, errlen, "'%s': no source for scheme '%s://' (known: sim://, file://, "
                 "usb://)", text, src->uri.scheme);
        free(src);
        return KM_EUNSUPPORTED;
    }
    src->speed = 1;
    const char *sp = km_uri_get(&src->uri, "speed");
    if (sp) {
        char *end;
        double v = strtod(sp, &end);
        if (!strcmp(sp, "max"))
            src->speed = 0;
        else if (end != sp && !*end && v > 0 && v < 1e6)
            src->speed = v;
        else {
            km_errf_(err, errlen, "'%s': speed must be 'max' or a positive number, not '%s'",
                     text, sp);
            free(src);
            return KM_EINVAL;
        }
    }
    atomic_init(&src->running, 0);
    atomic_init(&src->stop_req, 0);
    rc = src->ops->open(src, &src->uri, err, errlen);
    if (rc) {
        free(src);
        return rc;
    }
    *out = src;
    return KM_OK;
}

void km_source_close(km_source *src)
{
    if (!src)
        return;
    km_source_stop(src);
    if (src->ops->close)
        src->ops->close(src);
    km_frame_free(src->scratch);
    free(src);
}

void km_source_describe(const km_source *src, km_source_info *info)
{
    memset(info, 0, sizeof *info);
    src->ops->describe(src, info);
    info->speed = src->speed;
    snprintf(info->uri, sizeof info->uri, "%s://%s", src->uri.scheme, src->uri.path);
}

uint32_t km_source_max_cells(const km_source *src) { return src->max_cells; }

void km_source_set_notify(km_source *src, km_note_fn fn, void *user)
{
    src->note = fn;
    src->note_user = user;
}

static void measure_time(km_source *src, const km_frame *f);

int km_source_read(km_source *src, km_frame *out)
{
    if (!src->ops->read)
        return KM_EUNSUPPORTED;
    for (;;) {
        char err[512] = "";
        int rc = src->ops->read(src, out, err, sizeof err);
        if (rc == KM_EFORMAT) {
            atomic_fetch_add(&src->malformed, 1);
            km_source_note_(src, KM_NOTE_MALFORMED, "%s", err);
            continue;
        }
        if (rc == KM_OK) {
            if (!src->measure_in_publish)
                measure_time(src, out); /* offline; started sources measure in publish */
            uint64_t n = atomic_fetch_add(&src->frames, 1) + 1;
            if (src->progress && n % 4096 == 0)
                src->progress(src->progress_user, km_source_progress(src), n);
            if (out->flags & KM_FRAME_CORRUPT) {
                atomic_fetch_add(&src->corrupt, 1);
                km_source_note_(src, KM_NOTE_DEFECT, "%s", err[0] ? err : "corrupt frame");
            }
        } else if (rc == KM_EEOF) {
            km_source_note_(src, KM_NOTE_END, "end of source");
        } else if (err[0]) {
            km_source_note_(src, KM_NOTE_MALFORMED, "%s", err);
        }
        return rc;
    }
}

/* The rate from the frames' own device times (km_rate_meter_). Producer
 * thread only; readers get the last values. */
static void measure_time(km_source *src, const km_frame *f)
{
    if (!km_rate_meter_add_(&src->meter, f->device_ns))
        return;
    double rate = km_rate_meter_hz_(&src->meter), jit = km_rate_meter_jitter_ms_(&src->meter);
    uint64_t rb, jb;
    memcpy(&rb, &rate, 8);
    memcpy(&jb, &jit, 8);
    atomic_store_explicit(&src->rate_bits, rb, memory_order_relaxed);
    atomic_store_explicit(&src->jitter_bits, jb, memory_order_relaxed);
}

int km_source_publish_(km_source *src, km_frame *f, uint64_t *last_seq, int *have_last)
{
    if (!(f->flags & KM_FRAME_DEVICE_LOST))
        measure_time(src, f);
    if (*have_last && f->seq > *last_seq + 1)
        atomic_fetch_add(&src->lost_upstream, f->seq - *last_seq - 1);
    *last_seq = f->seq;
    *have_last = 1;
    int rc = km_ring_push_spmc(src->ring, f);
    if (rc)
        atomic_fetch_add(&src->ring_full, 1);
    return rc;
}

static void sleep_until(int64_t target_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(target_ns / 1000000000),
                          .tv_nsec = (long)(target_ns % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* The generic producer: read, wait for the frame's time, stamp, publish. */
static void *pacing_thread(void *arg)
{
    km_source *src = arg;
    km_frame *f = src->scratch;
    int64_t t0_host = 0, t0_dev = 0;
    uint64_t last_seq = 0;
    int have_last = 0, first = 1;
    while (!atomic_load(&src->stop_req)) {
        int rc = km_source_read(src, f);
        if (rc != KM_OK)
            break;
        if (first) {
            t0_host = km_mono_ns_();
            t0_dev = f->device_ns;
            first = 0;
        }
        if (src->speed > 0) {
            int64_t target = t0_host + (int64_t)((double)(f->device_ns - t0_dev) / src->speed);
            /* sleep in slices so that stop is prompt even at 1 frame/s */
            for (;;) {
                if (atomic_load(&src->stop_req))
                    goto out;
                int64_t now = km_mono_ns_();
                if (now >= target)
                    break;
                sleep_until(target - now > 100000000 ? now + 100000000 : target);
            }
        }
        f->host_ns = km_mono_ns_();
        km_source_publish_(src, f, &last_seq, &have_last);
    }
out:
    km_ring_close(src->ring);
    atomic_store(&src->running, 0);
    return NULL;
}

int km_source_start(km_source *src, km_ring *ring)
{
    if (src->started)
        return KM_EBUSY;
    if (km_ring_max_cells(ring) < src->max_cells)
        return KM_ETOOBIG;
    src->ring = ring;
    src->measure_in_publish = 1; /* before the producer thread exists */
    atomic_store(&src->stop_req, 0);
    atomic_store(&src->running, 1);
    if (src->ops->start) {
        int rc = src->ops->start(src, ring);
        if (rc) {
            atomic_store(&src->running, 0);
            return rc;
        }
        src->started = 1;
        return KM_OK;
    }
    if (!src->scratch && !(src->scratch = km_frame_new(src->max_cells))) {
        atomic_store(&src->running, 0);
        return KM_ENOMEM;
    }
    if (pthread_create(&src->thread, NULL, pacing_thread, src) != 0) {
        atomic_store(&src->running, 0);
        return KM_ENOMEM;
    }
    src->started = 1;
    return KM_OK;
}

void km_source_stop(km_source *src)
{
    if (!src->started)
        return;
    atomic_store(&src->stop_req, 1);
    if (src->ops->start) {
        if (src->ops->stop)
            src->ops->stop(src);
    } else {
        pthread_join(src->thread, NULL);
    }
    km_ring_close(src->ring);
    src->started = 0;
}

bool km_source_running(const km_source *src)
{
    return atomic_load(&src->running) != 0;
}

void km_source_set_progress(km_source *src, km_progress_fn fn, void *user)
{
    src->progress = fn;
    src->progress_user = user;
}

double km_source_progress(const km_source *src)
{
    return src->ops == &km_file_source_ops ? km_file_source_progress_(src) : -1;
}

void km_source_stats_get(const km_source *src, km_source_stats *out)
{
    const km_source *s = src;
    out->frames = atomic_load(&s->frames);
    out->malformed = atomic_load(&s->malformed);
    out->corrupt = atomic_load(&s->corrupt);
    out->lost_upstream = atomic_load(&s->lost_upstream);
    out->ring_full = atomic_load(&s->ring_full);
    uint64_t rb = atomic_load_explicit(&s->rate_bits, memory_order_relaxed);
    uint64_t jb = atomic_load_explicit(&s->jitter_bits, memory_order_relaxed);
    memcpy(&out->measured_rate_hz, &rb, 8);
    memcpy(&out->jitter_ms, &jb, 8);
}
