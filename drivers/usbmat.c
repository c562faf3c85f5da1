/* usbmat.c: the usb:// source. Finds a pressure mat among the USB devices
 * (the Sensel Morph by its VID:PID, DIY mats by their quirks entries), opens
 * its CDC-ACM data interface through libusb (detaching the kernel's cdc_acm
 * driver, claiming the interfaces, raising DTR), hands it to the mat's
 * protocol (sensel.c, fsrmat.c) and runs the producer thread:
 *
 *   frame loop   protocol->next_frame() -> stamp -> ring; faults (stall,
 *                timeout, short, garbled, checksum) counted, noted
 *                (rate-limited), the frame dropped, the loop goes on
 *   unplugged    a marker frame flagged DEVICE_LOST goes into the ring (the
 *                DSP turns it into a device_lost event, the recorder keeps
 *                it), then every 200 ms the thread looks for the same mat
 *                (VID:PID and serial); when it is back the first frame is
 *                flagged DEVICE_BACK
 *
 * Waiting is done inside libusb's synchronous transfers (poll on the usbfs
 * file with a timeout) and in nanosleep between reconnect attempts: no busy
 * loop. Device time: the mat's own clock where it has one (Sensel), anchored
 * to the host clock at each (re)connection so that time never goes back;
 * otherwise the arrival time. Touches: libusb, the ring, the quirks files. */
#include <errno.h>
#include <libusb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "source_private.h"
#include "knotmat/usbmat.h"
#include "usbmat_private.h"

#define MAX_QUIRKS 128
#define RECONNECT_MS 200
#define MAX_CONSECUTIVE_FAULTS 50

typedef struct usbmat usbmat;

struct usbmat {
    libusb_context *ctx;
    libusb_device_handle *h;
    km_source *src;
    /* what the URI asked for */
    int want_any;
    uint16_t want_vid, want_pid;
    char want_serial[64];
    /* the mat we have */
    uint16_t vid, pid;
    char serial[64];
    char name[96];
    int iface_data, iface_comm;
    uint8_t ep_in, ep_out;
    const struct km_mat_protocol *proto;
    void *pstate;
    km_quirk quirks[MAX_QUIRKS];
    size_t nquirks;
    const km_quirk *quirk;
    km_quirk builtin;
    km_quirk calibrated;    /* the quirk with a calibration's factor applied (FSR) */
    double gain;            /* a calibration's gain on the Morph's pressures (1: none) */
    double cal_gain;        /* the calibration's gain, whatever the mat */
    char calibration[160];  /* "" when the mat has none */
    km_mat_info info;
    struct km_usb_link link;
    /* producer */
    km_frame *frame;
    int64_t t0_host;
    int anchored;
    int64_t dev_anchor_us, host_anchor_ns, last_device_ns;
    uint64_t last_seq;
    int have_last;
    /* faults */
    _Atomic uint64_t stalls, timeouts, short_packets, garbled, checksum, disconnects, reconnects;
    unsigned noted[4], noted_io;
    int consecutive_faults;
};

/* A calibration's gain on the pressures (the Morph; FSR mats get it in
 * their factor). In the frame path: no allocation, a multiply per cell. */
static void apply_gain(const struct usbmat *u, km_frame *f)
{
    if (u->gain == 1)
        return;
    float g = (float)u->gain;
    uint32_t n = km_frame_cells(f);
    for (uint32_t i = 0; i < n; i++)
        f->kpa[i] *= g;
    for (uint32_t i = 0; i < f->n_contacts; i++)
        f->contacts[i].force_n *= g;
}

/* ---- the link ----------------------------------------------------------- */

static int map_usb_error(usbmat *u, int rc, uint8_t ep)
{
    switch (rc) {
    case 0: return KM_OK;
    case LIBUSB_ERROR_TIMEOUT: return KM_ETIMEOUT;
    case LIBUSB_ERROR_NO_DEVICE: return KM_ENODEV;
    case LIBUSB_ERROR_PIPE:
        atomic_fetch_add(&u->stalls, 1);
        if (u->stalls <= 10 || u->stalls % 1000 == 0)
            km_source_note_(u->src, KM_NOTE_MALFORMED, "endpoint %02x stalled (%llu so far); "
                            "cleared", ep, (unsigned long long)u->stalls);
        libusb_clear_halt(u->h, ep);
        return KM_EIO;
    default:
        if (u->noted_io++ < 10 || u->noted_io % 1000 == 0)
            km_source_note_(u->src, KM_NOTE_MALFORMED, "USB transfer on %02x failed: %s (%u so "
                            "far)", ep, libusb_strerror(rc), u->noted_io);
        return KM_EIO;
    }
}

static int link_write(km_usb_link *l, const uint8_t *buf, int len, int timeout_ms)
{
    usbmat *u = l->user;
    int done = 0;
    int rc = libusb_bulk_transfer(u->h, u->ep_out, (unsigned char *)(uintptr_t)buf, len, &done,
                                  (unsigned)timeout_ms);
    if (!rc && done != len)
        return KM_EIO;
    return map_usb_error(u, rc, u->ep_out);
}

static int link_read(km_usb_link *l, uint8_t *buf, int cap, int *got, int timeout_ms)
{
    usbmat *u = l->user;
    *got = 0;
    int rc = libusb_bulk_transfer(u->h, u->ep_in, buf, cap, got, (unsigned)timeout_ms);
    if (rc == LIBUSB_ERROR_OVERFLOW) {
        atomic_fetch_add(&u->garbled, 1);
        return KM_EIO;
    }
    return map_usb_error(u, rc, u->ep_in);
}

void km_usb_fault_(km_usb_link *l, enum km_usb_fault kind, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    l->fault(l, kind, text);
}

static void link_fault(km_usb_link *l, enum km_usb_fault kind, const char *text)
{
    usbmat *u = l->user;
    _Atomic uint64_t *ctr = kind == KM_FAULT_TIMEOUT ? &u->timeouts
                            : kind == KM_FAULT_SHORT ? &u->short_packets
                            : kind == KM_FAULT_GARBLED ? &u->garbled
                                                       : &u->checksum;
    uint64_t n = atomic_fetch_add(ctr, 1) + 1;
    static const char *const what[] = {"timeout", "short packet", "garbled packet",
                                       "checksum mismatch"};
    if (u->noted[kind]++ < 10 || n % 1000 == 0) {
        km_source_note_(u->src, KM_NOTE_MALFORMED, "%s: %s (%s #%llu, frame dropped)", u->name,
                        text, what[kind], (unsigned long long)n);
    }
}

/* ---- finding and opening a mat ---------------------------------------------- */

static const km_quirk *quirk_for(usbmat *u, uint16_t vid, uint16_t pid, const char *serial)
{
    const km_quirk *q = km_quirks_match_(
        u->quirks, u->nquirks < MAX_QUIRKS ? u->nquirks : MAX_QUIRKS, vid, pid, serial);
    if (q)
        return q;
    if (vid == KM_SENSEL_VID && pid == KM_SENSEL_PID) {
        memset(&u->builtin, 0, sizeof u->builtin);
        snprintf(u->builtin.section, sizeof u->builtin.section, "Sensel Morph");
        snprintf(u->builtin.protocol, sizeof u->builtin.protocol, "sensel-morph");
        u->builtin.vid = vid;
        u->builtin.pid = pid;
        return &u->builtin;
    }
    return NULL;
}

static const struct km_mat_protocol *protocol_named(const char *name)
{
    if (!strcmp(name, "sensel-morph"))
        return &km_sensel_protocol;
    if (!strcmp(name, "fsr-rle"))
        return &km_fsr_rle_protocol;
    if (!strcmp(name, "fsr-poll"))
        return &km_fsr_poll_protocol;
    return NULL;
}

static void read_serial(libusb_device_handle *h, const struct libusb_device_descriptor *d,
                        char *out, size_t len)
{
    out[0] = 0;
    if (d->iSerialNumber &&
        libusb_get_string_descriptor_ascii(h, d->iSerialNumber, (unsigned char *)out, (int)len) < 0)
        out[0] = 0;
}

/* The CDC data interface (class 0x0a) and its bulk endpoints; the comm
 * interface (class 0x02) if any. */
static int find_endpoints(usbmat *u, libusb_device *dev, char *err, size_t errlen)
{
    struct libusb_config_descriptor *cfg;
    int rc = libusb_get_active_config_descriptor(dev, &cfg);
    if (rc) {
        km_errf_(err, errlen, "reading the configuration: %s", libusb_strerror(rc));
        return KM_EIO;
    }
    u->iface_data = u->iface_comm = -1;
    u->ep_in = u->ep_out = 0;
    for (int i = 0; i < cfg->bNumInterfaces; i++) {
        const struct libusb_interface_descriptor *id = &cfg->interface[i].altsetting[0];
        if (id->bInterfaceClass == LIBUSB_CLASS_COMM && u->iface_comm < 0)
            u->iface_comm = id->bInterfaceNumber;
        if (id->bInterfaceClass != LIBUSB_CLASS_DATA || u->iface_data >= 0)
            continue;
        for (int e = 0; e < id->bNumEndpoints; e++) {
            const struct libusb_endpoint_descriptor *ep = &id->endpoint[e];
            if ((ep->bmAttributes & 3) != LIBUSB_TRANSFER_TYPE_BULK)
                continue;
            if (ep->bEndpointAddress & LIBUSB_ENDPOINT_IN)
                u->ep_in = ep->bEndpointAddress;
            else
                u->ep_out = ep->bEndpointAddress;
        }
        if (u->ep_in && u->ep_out)
            u->iface_data = id->bInterfaceNumber;
    }
    libusb_free_config_descriptor(cfg);
    if (u->iface_data < 0) {
        km_errf_(err, errlen, "no CDC data interface with bulk IN and OUT endpoints");
        return KM_EUNSUPPORTED;
    }
    return KM_OK;
}

static void close_device(usbmat *u, bool present)
{
    if (!u->h)
        return;
    if (u->proto && u->pstate)
        u->proto->stop(u->pstate, &u->link, present);
    free(u->pstate);
    u->pstate = NULL;
    if (present) {
        libusb_release_interface(u->h, u->iface_data);
        if (u->iface_comm >= 0)
            libusb_release_interface(u->h, u->iface_comm);
    }
    libusb_close(u->h);
    u->h = NULL;
}

/* Open this device as our mat: claim, configure the CDC line, start the
 * protocol. KM_ENOENT when it is not the mat we want (serial). */
static int open_device(usbmat *u, libusb_device *dev, char *err, size_t errlen)
{
    struct libusb_device_descriptor d;
    libusb_get_device_descriptor(dev, &d);
    libusb_device_handle *h;
    int rc = libusb_open(dev, &h);
    if (rc == LIBUSB_ERROR_ACCESS) {
        km_errf_(err, errlen,
                 "permission denied opening the mat %04x:%04x at /dev/bus/usb/%03u/%03u: install "
                 "the udev rule (sudo cmake --install build, or copy drivers/70-knotmat.rules to "
                 "/etc/udev/rules.d/), then unplug and replug the mat",
                 d.idVendor, d.idProduct, libusb_get_bus_number(dev),
                 libusb_get_device_address(dev));
        return KM_EPERM;
    }
    if (rc) {
        km_errf_(err, errlen, "opening %04x:%04x: %s", d.idVendor, d.idProduct,
                 libusb_strerror(rc));
        return rc == LIBUSB_ERROR_NO_DEVICE ? KM_ENODEV : KM_EIO;
    }
    char serial[64];
    read_serial(h, &d, serial, sizeof serial);
    const char *want = u->want_serial[0] ? u->want_serial : u->serial[0] ? u->serial : NULL;
    if (want && strcmp(want, serial) != 0) {
        libusb_close(h);
        return KM_ENOENT;
    }
    const km_quirk *q = quirk_for(u, d.idVendor, d.idProduct, serial);
    const struct km_mat_protocol *proto = q ? protocol_named(q->protocol) : NULL;
    if (!proto) {
        libusb_close(h);
        km_errf_(err, errlen, "%04x:%04x is not a known mat and no quirks file describes it",
                 d.idVendor, d.idProduct);
        return KM_EUNSUPPORTED;
    }
    /* a calibration made with a known weight (knotmat calibrate) */
    km_calibration cal;
    char cerr[256] = "";
    u->gain = 1;
    u->calibration[0] = 0;
    int crc = km_calibration_load(d.idVendor, d.idProduct, serial, &cal, cerr, sizeof cerr);
    if (crc == KM_OK) {
        u->cal_gain = cal.gain;
        snprintf(u->calibration, sizeof u->calibration, "%.32s: gain %.4g (%.100s)", cal.when, cal.gain,
                 cal.method);
        if (strcmp(proto->name, "sensel-morph")) {
            u->calibrated = *q;
            u->calibrated.kpa_per_count =
                (q->kpa_per_count > 0 ? q->kpa_per_count : KM_FSR_DEFAULT_KPA_PER_COUNT) *
                cal.gain;
            q = &u->calibrated;
        } else {
            u->gain = cal.gain;
        }
    } else if (crc != KM_ENOENT) {
        km_source_note_(u->src, KM_NOTE_DEFECT, "calibration not used: %s", cerr);
    }
    u->h = h;
    u->quirk = q;
    u->proto = proto;
    u->vid = d.idVendor;
    u->pid = d.idProduct;
    snprintf(u->serial, sizeof u->serial, "%s", serial);
    snprintf(u->name, sizeof u->name, "%s", q->section);
    if ((rc = find_endpoints(u, dev, err, errlen)))
        goto fail;
    libusb_set_auto_detach_kernel_driver(h, 1);
    int lrc;
    if ((lrc = libusb_claim_interface(h, u->iface_data)) != 0) {
        km_errf_(err, errlen, "claiming interface %d of %s: %s (is another program using the "
                 "mat?)", u->iface_data, u->name, libusb_strerror(lrc));
        rc = lrc == LIBUSB_ERROR_BUSY ? KM_EBUSY : KM_EIO;
        goto fail;
    }
    if (u->iface_comm >= 0 && libusb_claim_interface(h, u->iface_comm) == 0) {
        /* 8N1 at the quirk's baud (ignored by native-USB boards), DTR + RTS */
        uint32_t baud = q->baud ? q->baud : 115200;
        unsigned char coding[7] = {(unsigned char)baud, (unsigned char)(baud >> 8),
                                   (unsigned char)(baud >> 16), (unsigned char)(baud >> 24), 0, 0,
                                   8};
        libusb_control_transfer(h, 0x21, 0x20, 0, (uint16_t)u->iface_comm, coding, 7, 200);
        libusb_control_transfer(h, 0x21, 0x22, 3, (uint16_t)u->iface_comm, NULL, 0, 200);
    } else {
        u->iface_comm = -1;
    }
    u->pstate = calloc(1, proto->state_size);
    if (!u->pstate) {
        rc = KM_ENOMEM;
        goto fail;
    }
    memset(&u->info, 0, sizeof u->info);
    u->link = (km_usb_link){.write = link_write, .read = link_read, .fault = link_fault,
                            .user = u};
    if ((rc = proto->start(u->pstate, &u->link, q, &u->info, err, errlen)))
        goto fail;
    u->anchored = 0;
    return KM_OK;
fail:
    close_device(u, true);
    return rc;
}

static int is_candidate(usbmat *u, const struct libusb_device_descriptor *d)
{
    if (!u->want_any && (d->idVendor != u->want_vid || d->idProduct != u->want_pid))
        return 0;
    /* a quirks entry for this VID:PID, even one that asks for a serial (checked
     * when the device is opened), or a mat knotmat knows by itself */
    return km_quirks_has_usbid_(u->quirks, u->nquirks < MAX_QUIRKS ? u->nquirks : MAX_QUIRKS,
                                d->idVendor, d->idProduct) ||
           (d->idVendor == KM_SENSEL_VID && d->idProduct == KM_SENSEL_PID);
}

/* Any matching device that opens. For usb://auto at open time: exactly one. */
static int connect_any(usbmat *u, int require_unique, char *err, size_t errlen)
{
    libusb_device **list;
    ssize_t n = libusb_get_device_list(u->ctx, &list);
    if (n < 0) {
        km_errf_(err, errlen, "listing USB devices: %s", libusb_strerror((int)n));
        return KM_EIO;
    }
    libusb_device *cand[16];
    int nc = 0;
    for (ssize_t i = 0; i < n && nc < 16; i++) {
        struct libusb_device_descriptor d;
        if (libusb_get_device_descriptor(list[i], &d) == 0 && is_candidate(u, &d))
            cand[nc++] = list[i];
    }
    int rc = KM_ENOENT;
    if (require_unique && u->want_any && !u->want_serial[0] && nc > 1) {
        size_t off = (size_t)snprintf(err, errlen, "%d mats are connected; choose one:", nc);
        for (int i = 0; i < nc && off < errlen; i++) {
            struct libusb_device_descriptor d;
            libusb_get_device_descriptor(cand[i], &d);
            char serial[64] = "";
            libusb_device_handle *h;
            if (libusb_open(cand[i], &h) == 0) {
                read_serial(h, &d, serial, sizeof serial);
                libusb_close(h);
            }
            off += (size_t)snprintf(err + off, errlen - off, " usb://%04x:%04x%s%s", d.idVendor,
                                    d.idProduct, serial[0] ? "/" : "", serial);
        }
        rc = KM_EBUSY;
    } else {
        char e1[512] = "";
        for (int i = 0; i < nc; i++) {
            e1[0] = 0;
            rc = open_device(u, cand[i], e1, sizeof e1);
            if (rc == KM_OK)
                break;
            if (rc != KM_ENOENT)
                snprintf(err, errlen, "%s", e1);
        }
        if (rc == KM_ENOENT)
            km_errf_(err, errlen, "no %s found: plug it in; `knotmat devices` lists what is "
                     "connected", u->want_any ? "pressure mat" : "matching mat");
    }
    libusb_free_device_list(list, 1);
    return rc;
}

/* ---- the source ------------------------------------------------------------ */

static int parse_target(usbmat *u, const km_uri *uri, char *err, size_t errlen)
{
    const char *p = uri->path;
    if (!*p || !strcmp(p, "auto")) {
        u->want_any = 1;
        return KM_OK;
    }
    unsigned v, pid;
    int used = 0;
    if (sscanf(p, "%4x:%4x%n", &v, &pid, &used) != 2 || (p[used] && p[used] != '/')) {
        km_errf_(err, errlen, "usb://%s: expected usb://auto, usb://VID:PID or "
                 "usb://VID:PID/SERIAL (hex ids, e.g. usb://2c2f:0003)", p);
        return KM_EINVAL;
    }
    u->want_vid = (uint16_t)v;
    u->want_pid = (uint16_t)pid;
    if (p[used] == '/')
        snprintf(u->want_serial, sizeof u->want_serial, "%s", p + used + 1);
    return KM_OK;
}

static void usb_close(km_source *src);

static int usb_open(km_source *src, const km_uri *uri, char *err, size_t errlen)
{
    for (int i = 0; i < uri->nparams; i++) {
        km_errf_(err, errlen, "usb: unknown parameter '%s' (usb:// takes none)",
                 uri->params[i].key);
        return KM_EINVAL;
    }
    usbmat *u = calloc(1, sizeof *u);
    if (!u)
        return KM_ENOMEM;
    u->src = src;
    src->impl = u;
    int rc = parse_target(u, uri, err, errlen);
    if (rc)
        goto fail;
    int lrc = libusb_init(&u->ctx);
    if (lrc) {
        km_errf_(err, errlen, "libusb cannot start: %s", libusb_strerror(lrc));
        rc = KM_EIO;
        goto fail;
    }
    char qerr[512] = "";
    u->nquirks = km_quirks_load_(u->quirks, MAX_QUIRKS, qerr, sizeof qerr);
    if (qerr[0])
        km_source_note_(src, KM_NOTE_DEFECT, "quirks file skipped: %s", qerr);
    if ((rc = connect_any(u, 1, err, errlen)))
        goto fail;
    uint16_t rows = u->info.rows, cols = u->info.cols;
    src->max_cells = (uint32_t)rows * cols;
    u->frame = km_frame_new(src->max_cells);
    if (!u->frame) {
        rc = KM_ENOMEM;
        goto fail;
    }
    return KM_OK;
fail:
    usb_close(src);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int64_t device_time(usbmat *u, int64_t dev_us, int64_t now)
{
    int64_t t;
    if (dev_us >= 0) {
        if (!u->anchored) {
            u->anchored = 1;
            u->dev_anchor_us = dev_us;
            u->host_anchor_ns = now - u->t0_host;
        }
        t = u->host_anchor_ns + (dev_us - u->dev_anchor_us) * 1000;
    } else {
        t = now - u->t0_host;
    }
    if (u->have_last && t <= u->last_device_ns)
        t = u->last_device_ns + 1; /* never back in time, even across a reconnect */
    u->last_device_ns = t;
    return t;
}

static void publish_lost(usbmat *u)
{
    km_frame *f = u->frame;
    if (km_frame_reset(f, u->info.rows, u->info.cols, u->info.pitch_mm))
        return;
    f->flags = KM_FRAME_DEVICE_LOST | KM_FRAME_CORRUPT;
    int64_t now = km_mono_ns_();
    f->host_ns = now;
    f->device_ns = device_time(u, -1, now);
    f->seq = u->have_last ? u->last_seq + 1 : 0;
    km_source_publish_(u->src, f, &u->last_seq, &u->have_last);
}

static void *usb_thread(void *arg)
{
    km_source *src = arg;
    usbmat *u = src->impl;
    int lost = 0, back = 0;
    u->t0_host = km_mono_ns_();
    while (!atomic_load(&src->stop_req)) {
        if (!u->h) {
            char err[512] = "";
            int rc = connect_any(u, 0, err, sizeof err);
            if (!rc && (uint32_t)u->info.rows * u->info.cols > src->max_cells) {
                /* the frames and the ring were sized at open: never more */
                km_source_note_(src, KM_NOTE_DEFECT, "%s came back as %ux%u, larger than the "
                                "%u cells of this session; not using it", u->name, u->info.cols,
                                u->info.rows, src->max_cells);
                close_device(u, true);
                rc = KM_ETOOBIG;
            }
            if (rc) {
                sleep_ms(RECONNECT_MS);
                continue;
            }
            if (lost) { /* reopened after a loss, not after a run of faults */
                atomic_fetch_add(&u->reconnects, 1);
                km_source_note_(src, KM_NOTE_DEVICE_BACK, "%s %s is back", u->name, u->serial);
                back = 1;
                lost = 0;
            }
            continue;
        }
        km_frame *f = u->frame;
        km_frame_reset(f, u->info.rows, u->info.cols, u->info.pitch_mm);
        int64_t dev_us = -1;
        uint32_t delta = 1;
        int rc = u->proto->next_frame(u->pstate, &u->link, f, &dev_us, &delta);
        if (rc == KM_ENODEV) {
            atomic_fetch_add(&u->disconnects, 1);
            km_source_note_(src, KM_NOTE_DEVICE_LOST, "%s %s was unplugged; waiting for it to "
                            "come back (the session goes on)", u->name, u->serial);
            close_device(u, false);
            publish_lost(u);
            lost = 1;
            continue;
        }
        if (rc) {
            if (++u->consecutive_faults >= MAX_CONSECUTIVE_FAULTS) {
                km_source_note_(src, KM_NOTE_DEFECT, "%s: %d faults in a row; reopening it",
                                u->name, u->consecutive_faults);
                close_device(u, true);
                u->consecutive_faults = 0;
                sleep_ms(RECONNECT_MS); /* a device failing at once must not make a hot loop */
            }
            continue;
        }
        u->consecutive_faults = 0;
        int64_t now = km_mono_ns_();
        f->host_ns = now;
        f->device_ns = device_time(u, dev_us, now);
        f->seq = u->have_last ? u->last_seq + delta : 0;
        if (back) {
            f->flags |= KM_FRAME_DEVICE_BACK;
            back = 0;
        }
        if (!u->info.calibrated)
            f->flags |= KM_FRAME_UNCALIBRATED;
        apply_gain(u, f);
        atomic_fetch_add(&src->frames, 1);
        km_source_publish_(src, f, &u->last_seq, &u->have_last);
    }
    km_ring_close(src->ring);
    atomic_store(&src->running, 0);
    return NULL;
}

static int usb_start(km_source *src, km_ring *ring)
{
    if (pthread_create(&src->thread, NULL, usb_thread, src) != 0)
        return KM_ENOMEM;
    return KM_OK;
}

static void usb_stop(km_source *src) { pthread_join(src->thread, NULL); }

/* Pull mode (offline use): one frame, without the reconnect loop. */
static int usb_read(km_source *src, km_frame *out, char *err, size_t errlen)
{
    usbmat *u = src->impl;
    if (!u->h) {
        km_errf_(err, errlen, "%s was unplugged", u->name);
        return KM_ENODEV;
    }
    if (!u->t0_host)
        u->t0_host = km_mono_ns_();
    km_frame_reset(out, u->info.rows, u->info.cols, u->info.pitch_mm);
    int64_t dev_us = -1;
    uint32_t delta = 1;
    int rc;
    while ((rc = u->proto->next_frame(u->pstate, &u->link, out, &dev_us, &delta)) == KM_EFORMAT)
        km_frame_reset(out, u->info.rows, u->info.cols, u->info.pitch_mm);
    if (rc) {
        km_errf_(err, errlen, "%s: %s", u->name, km_strerror(rc));
        if (rc == KM_ENODEV)
            close_device(u, false);
        return rc == KM_ENODEV ? KM_ENODEV : KM_EIO;
    }
    int64_t now = km_mono_ns_();
    out->host_ns = now;
    out->device_ns = device_time(u, dev_us, now);
    out->seq = u->have_last ? u->last_seq + delta : 0;
    u->last_seq = out->seq;
    u->have_last = 1;
    if (!u->info.calibrated)
        out->flags |= KM_FRAME_UNCALIBRATED;
    apply_gain(u, out);
    return KM_OK;
}

static void usb_close(km_source *src)
{
    usbmat *u = src->impl;
    if (!u)
        return;
    close_device(u, true);
    if (u->ctx)
        libusb_exit(u->ctx);
    km_frame_free(u->frame);
    free(u);
    src->impl = NULL;
}

static void usb_describe(const km_source *src, km_source_info *info)
{
    const usbmat *u = src->impl;
    snprintf(info->kind, sizeof info->kind, "%s", u->proto ? u->proto->name : "usb");
    info->rows = u->info.rows;
    info->cols = u->info.cols;
    info->pitch_mm = u->info.pitch_mm;
    info->rate_hz = u->info.rate_hz;
    info->live = true;
    snprintf(info->units, sizeof info->units, "%s", u->info.calibrated ? "kPa" : "raw");
    snprintf(info->device, sizeof info->device, "%s", u->name);
    snprintf(info->vid_pid, sizeof info->vid_pid, "%04x:%04x", u->vid, u->pid);
    snprintf(info->serial, sizeof info->serial, "%s", u->serial);
    snprintf(info->calibration, sizeof info->calibration, "%s", u->calibration);
    info->calibration_gain = u->calibration[0] ? u->cal_gain : 0;
}

const struct km_source_ops km_usb_source_ops = {
    .scheme = "usb",
    .open = usb_open,
    .read = usb_read,
    .start = usb_start,
    .stop = usb_stop,
    .close = usb_close,
    .describe = usb_describe,
};

int km_usb_source_faults(const km_source *src, km_usb_faults *out)
{
    memset(out, 0, sizeof *out);
    if (!src || src->ops != &km_usb_source_ops)
        return KM_EINVAL;
    usbmat *u = src->impl;
    out->stalls = atomic_load(&u->stalls);
    out->timeouts = atomic_load(&u->timeouts);
    out->short_packets = atomic_load(&u->short_packets);
    out->garbled = atomic_load(&u->garbled);
    out->checksum = atomic_load(&u->checksum);
    out->disconnects = atomic_load(&u->disconnects);
    out->reconnects = atomic_load(&u->reconnects);
    return KM_OK;
}

/* ---- discovery ---------------------------------------------------------------- */

int km_usb_list(km_usb_mat *out, size_t max, size_t *count, char *err, size_t errlen)
{
    *count = 0;
    usbmat *u = calloc(1, sizeof *u);
    if (!u)
        return KM_ENOMEM;
    int lrc = libusb_init(&u->ctx);
    if (lrc) {
        km_errf_(err, errlen, "libusb cannot start: %s", libusb_strerror(lrc));
        free(u);
        return KM_EIO;
    }
    char qerr[512] = "";
    u->nquirks = km_quirks_load_(u->quirks, MAX_QUIRKS, qerr, sizeof qerr);
    if (qerr[0])
        km_errf_(err, errlen, "quirks file skipped: %s", qerr);
    u->want_any = 1;
    libusb_device **list;
    ssize_t n = libusb_get_device_list(u->ctx, &list);
    for (ssize_t i = 0; i < n; i++) {
        struct libusb_device_descriptor d;
        if (libusb_get_device_descriptor(list[i], &d) || !is_candidate(u, &d))
            continue;
        km_usb_mat m;
        memset(&m, 0, sizeof m);
        m.vid = d.idVendor;
        m.pid = d.idProduct;
        m.bus = libusb_get_bus_number(list[i]);
        m.address = libusb_get_device_address(list[i]);
        libusb_device_handle *h;
        int rc = libusb_open(list[i], &h);
        m.access = rc == 0;
        if (rc == 0) {
            read_serial(h, &d, m.serial, sizeof m.serial);
            libusb_close(h);
        }
        const km_quirk *q = quirk_for(u, d.idVendor, d.idProduct, m.serial);
        if (q) {
            snprintf(m.kind, sizeof m.kind, "%s", q->protocol);
            snprintf(m.name, sizeof m.name, "%s", q->section);
            km_quirk_out_dims_(q, &m.rows, &m.cols);
            m.pitch_mm = q->pitch_mm;
        }
        if (!q) /* its quirks entries ask for another serial, or it could not be read */
            snprintf(m.kind, sizeof m.kind, "?");
        if (q && !strcmp(q->protocol, "sensel-morph") && !m.rows) {
            m.rows = 105; /* the Morph's documented sensor */
            m.cols = 185;
            m.pitch_mm = 1.24f;
        }
        if (*count < max)
            out[*count] = m;
        (*count)++;
    }
    if (n >= 0)
        libusb_free_device_list(list, 1);
    libusb_exit(u->ctx);
    free(u);
    return KM_OK;
}
