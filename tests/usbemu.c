/* usbemu.c: an emulated USB pressure mat for the driver tests, on umockdev's
 * programmable ioctl API (notes: umockdev 0.17, libusb 1.0.26). It builds a
 * test bed with one USB device (descriptors, sysfs attributes), answers the
 * usbfs ioctls that libusb issues on its device node (SUBMITURB, REAPURB,
 * DISCARDURB, control requests, claim/detach), plays the device's side of
 * the mat protocol, and runs a command against it:
 *
 *   umockdev-wrapper usbemu [options] -- COMMAND [ARGS...]
 *
 * The command is unmodified knotmat code using the real libusb; only the
 * kernel is emulated. Options:
 *   --mat morph|fsr-rle|fsr-poll   which device (default morph)
 *   --capture FILE                 morph: the JSONL capture of a real Morph's
 *                                  frame packets, replayed in order (looped)
 *   --rate HZ|capture              frames per second (0: as fast as asked); a
 *                                  capture is replayed on its own device clock
 *                                  by default (capture)
 *   --rows R --cols C              fsr geometry (default 16 x 16)
 *   --drop-every K                 morph: skip every K-th captured frame
 *                                  (the device's counter shows the loss)
 *   --fault KIND@N[-M]             at the N-th (to the M-th) frame: stall |
 *                                  timeout | garbage | checksum | short
 *                                  (repeatable)
 *   --unplug-at N --replug-after MS  remove the device at frame N, bring it
 *                                  back MS milliseconds later
 *   --stats FILE                   JSON of what was served, at exit
 *   --id VVVV:PPPP                 fsr: the board's VID:PID (default 16c0:0483)
 *   --lock-node                    the device node readable by root only (and
 *                                  the test bed open to all), as without the
 *                                  udev rule: for the permission-denied test
 * Exit status: the command's. Written for knotmat's tests; no code from
 * umockdev itself (its pcap handler was read to learn the API). */
#include <errno.h>
#include <glib.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <umockdev.h>
#include <unistd.h>

#include "fsr_pattern.h"

#define SYSPATH "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1"
#define DEVNODE "/dev/bus/usb/001/002"
#define MAX_FRAMES 4096
#define MAX_FAULTS 32
#define TXCAP (1 << 20)

enum mat { MAT_MORPH, MAT_FSR_RLE, MAT_FSR_POLL };
enum fault { F_STALL, F_TIMEOUT, F_GARBAGE, F_CHECKSUM, F_SHORT };

typedef struct urb {
    UMockdevIoctlData *urbd, *bufd;
    struct usbdevfs_urb *u;
    int ready;
    struct urb *next;
} urb;

static struct {
    enum mat mat;
    UMockdevTestbed *tb;
    UMockdevIoctlBase *handler;
    GMainLoop *loop;
    int gone;
    urb *urbs;
    /* device -> host bytes, released no earlier than tx_at */
    uint8_t *tx;
    size_t tx_len;
    gint64 tx_at;
    /* morph */
    uint8_t *frames[MAX_FRAMES];
    int frame_len[MAX_FRAMES];
    int nframes, next_frame;
    uint8_t regs[256];
    char serial[64];
    /* fsr */
    int rows, cols;
    /* pacing */
    double rate;
    gint64 next_due;
    /* scenario */
    int drop_every;
    struct { enum fault kind; long at, to; } faults[MAX_FAULTS]; /* frames at..to */
    int nfaults;
    long unplug_at, replug_ms;
    long served;      /* frames sent */
    long dropped;     /* frames skipped by --drop-every */
    long injected[5]; /* faults injected by kind */
    int child_status;
    const char *stats_path;
    int stall_next_in;
    int lock_node;
    int static_frame;  /* serve this capture frame forever (-1: the capture) */
    int load[5];       /* fsr --load R0:C0:R1:C1:COUNT: a plate; load[4] = 0: the pattern */
    unsigned vid, pid; /* FSR board's id (default 16c0:0483, a Teensy) */
} E;

/* ---- descriptors -------------------------------------------------------- */

static const char *descriptor_hex(void)
{
    /* device: USB 2.0, composite (EF/02/01) for the Morph, CDC (02) for the
     * FSR boards; config: CDC comm interface 0 (notification EP 0x81) and CDC
     * data interface 1 (bulk OUT 0x02, bulk IN 0x82, 64-byte packets) */
    static char buf[512];
    /* bLength type bcdUSB class sub proto maxpkt VID PID bcdDevice iMfr iProd iSer nCfg */
    static const char morph[] = "12" "01" "0002" "ef" "02" "01" "40" "2f2c" "0300" "0002"
                                "01" "02" "03" "01";
    char board[64]; /* an FSR board: CDC class, its VID:PID little-endian */
    snprintf(board, sizeof board, "1201000202000040%02x%02x%02x%02x0001" "01020301",
             E.vid & 0xff, E.vid >> 8, E.pid & 0xff, E.pid >> 8);
    const char *dev = E.mat == MAT_MORPH ? morph : board;
    snprintf(buf, sizeof buf, "%s"
             "09024300020100" "80fa"
             "090400000102020100" "0524001001" "04240202" "0524060001" "0524010001"
             "0705810308" "00ff"
             "0904010002" "0a000000" "0705020240" "0000" "0705820240" "0000", dev);
    return buf;
}

static char *device_text(void)
{
    int morph = E.mat == MAT_MORPH;
    char product[32], vid[8], pid[8];
    snprintf(product, sizeof product, "%x/%x/100", E.vid, E.pid);
    snprintf(vid, sizeof vid, "%04x", E.vid);
    snprintf(pid, sizeof pid, "%04x", E.pid);
    return g_strdup_printf(
        "P: /devices/pci0000:00/0000:00:14.0/usb1/1-1\n"
        "N: bus/usb/001/002\n"
        "E: BUSNUM=001\nE: DEVNUM=002\nE: DEVNAME=/dev/bus/usb/001/002\n"
        "E: DEVTYPE=usb_device\nE: DRIVER=usb\nE: MAJOR=189\nE: MINOR=1\n"
        "E: PRODUCT=%s\nE: SUBSYSTEM=usb\n"
        "A: bConfigurationValue=1\nA: bNumConfigurations=1\nA: bNumInterfaces= 2\n"
        "A: busnum=1\nA: devnum=2\nA: idVendor=%s\nA: idProduct=%s\n"
        "A: manufacturer=%s\nA: product=%s\nA: serial=%s\nA: speed=12\n"
        "H: descriptors=%s\n",
        morph ? "2c2f/3/200" : product, morph ? "2c2f" : vid, morph ? "0003" : pid,
        morph ? "Sensel" : "Teensyduino", morph ? "Sensel Morph" : "USB Serial", E.serial,
        descriptor_hex());
}

/* ---- the capture ---------------------------------------------------------- */

static int load_capture(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "usbemu: %s: %s\n", path, strerror(errno));
        return -1;
    }
    static char line[1 << 16];
    while (fgets(line, sizeof line, fp) && E.nframes < MAX_FRAMES) {
        char *h = strstr(line, "\"payload_hex\":\"");
        if (!h || !strstr(line, "\"type\":\"frame\""))
            continue;
        h += 15;
        char *end = strchr(h, '"');
        int n = (int)(end - h) / 2;
        uint8_t *p = malloc((size_t)n);
        for (int i = 0; i < n; i++)
            sscanf(h + 2 * i, "%2hhx", &p[i]);
        E.frames[E.nframes] = p;
        E.frame_len[E.nframes++] = n;
    }
    fclose(fp);
    return E.nframes ? 0 : -1;
}

/* ---- bytes to the host ------------------------------------------------------ */

static void tx_put(const uint8_t *p, size_t n)
{
    if (E.tx_len + n > TXCAP)
        return;
    memcpy(E.tx + E.tx_len, p, n);
    E.tx_len += n;
}

static uint8_t cksum(const uint8_t *p, int n)
{
    unsigned s = 0;
    for (int i = 0; i < n; i++)
        s += p[i];
    return (uint8_t)s;
}

/* The fault scheduled for this frame, if any. */
static int fault_now(long frame)
{
    for (int i = 0; i < E.nfaults; i++)
        if (frame >= E.faults[i].at && frame <= E.faults[i].to) {
            E.injected[E.faults[i].kind]++;
            return (int)E.faults[i].kind;
        }
    return -1;
}

static void unplug(void);

/* The device's reply to a frame request or its next free-running frame. */
static uint8_t fsr_cell(uint32_t k, uint32_t r, uint32_t c);

static void make_frame(void)
{
    if (E.unplug_at > 0 && E.served == E.unplug_at) {
        E.unplug_at = 0;
        unplug();
        return;
    }
    int f = fault_now(E.served);
    E.served++;
    if (f == F_TIMEOUT)
        return; /* say nothing: the host's read times out */
    if (f == F_STALL) {
        E.stall_next_in = 1;
        return;
    }
    if (f == F_GARBAGE) {
        static const uint8_t junk[] = {0x7e, 0x13, 0x00, 0xfe, 0x42, 0x99, 0x01, 0x05};
        tx_put(junk, sizeof junk);
        return;
    }
    if (E.mat == MAT_MORPH) {
        if (E.drop_every > 0 && (E.next_frame + 1) % E.drop_every == 0) {
            E.next_frame++; /* the device scanned it, we never asked in time */
            E.dropped++;
        }
        int i = E.next_frame % E.nframes, loop = E.next_frame / E.nframes;
        E.next_frame++;
        static uint8_t patched[1 << 15];
        if (E.static_frame >= 0 && E.frame_len[E.static_frame % E.nframes] <= (int)sizeof patched) {
            /* a load held still: the same scan again and again, the device's
             * counter and clock going on (22 ms a scan, as in the capture) */
            int sf = E.static_frame % E.nframes, sn = E.frame_len[sf];
            memcpy(patched, E.frames[sf], (size_t)sn);
            uint32_t ts;
            memcpy(&ts, patched + 2, 4);
            ts += (uint32_t)(E.next_frame - 1) * 22472u;
            patched[1] = (uint8_t)(patched[1] + E.next_frame - 1);
            memcpy(patched + 2, &ts, 4);
            i = sf;
            loop = 0;
        }
        const uint8_t *p = E.static_frame >= 0 ? patched : E.frames[i];
        int n = E.frame_len[i];
        if (E.static_frame < 0 && loop > 0 && n >= 6 && n <= (int)sizeof patched) {
            /* replaying the capture again: the device's counter and clock go
             * on, they do not jump back to the capture's first frame */
            memcpy(patched, p, (size_t)n);
            uint32_t t0, t1, tl, ti;
            memcpy(&t0, E.frames[0] + 2, 4);
            memcpy(&t1, E.frames[1] + 2, 4);
            memcpy(&tl, E.frames[E.nframes - 1] + 2, 4);
            memcpy(&ti, p + 2, 4);
            uint32_t span = tl - t0 + (t1 - t0);
            ti += (uint32_t)loop * span;
            patched[1] = (uint8_t)(E.frames[0][1] + E.next_frame - 1);
            memcpy(patched + 2, &ti, 4);
            p = patched;
        }
        uint8_t hdr[5] = {0x03, 0x26, 0x00, (uint8_t)n, (uint8_t)(n >> 8)};
        uint8_t ck = cksum(p, n);
        if (f == F_CHECKSUM)
            ck ^= 0x5a;
        tx_put(hdr, 5);
        tx_put(p, f == F_SHORT ? (size_t)n / 2 : (size_t)n);
        if (f != F_SHORT)
            tx_put(&ck, 1);
        return;
    }
    uint32_t k = (uint32_t)E.served - 1, cells = (uint32_t)(E.rows * E.cols);
    uint32_t sent = f == F_SHORT ? cells / 2 : cells;
    if (E.mat == MAT_FSR_POLL) {
        for (uint32_t i = 0; i < sent; i++) {
            uint8_t v = fsr_cell(k, i / E.cols, i % E.cols);
            tx_put(&v, 1);
        }
        return;
    }
    /* zero-run-length, 0xFF at the end */
    for (uint32_t i = 0; i < sent;) {
        uint8_t v = fsr_cell(k, i / E.cols, i % E.cols);
        if (v) {
            tx_put(&v, 1);
            i++;
            continue;
        }
        uint32_t run = 0;
        while (i < sent && run < 254 && !fsr_cell(k, i / E.cols, i % E.cols)) {
            run++;
            i++;
        }
        uint8_t two[2] = {0, (uint8_t)run};
        tx_put(two, 2);
    }
    uint8_t end = 0xff;
    tx_put(&end, 1);
}

/* An FSR cell: the test pattern, or a known load held still (a rigid plate
 * over rows r0..r1 and columns c0..c1 at COUNT, +-1 count of noise). */
static uint8_t fsr_cell(uint32_t k, uint32_t r, uint32_t c)
{
    if (!E.load[4])
        return fsr_pattern(k, r, c, E.rows, E.cols);
    if ((int)r < E.load[0] || (int)r > E.load[2] || (int)c < E.load[1] || (int)c > E.load[3])
        return 0;
    return (uint8_t)(E.load[4] + (int)((k + r * 7 + c * 3) % 3) - 1);
}

/* ---- the host's commands (bulk OUT) --------------------------------------------- */

/* A scanning mat makes a frame every 1/rate s on its own clock: a request
 * that comes a little late is answered at once and the schedule stays; only
 * a host more than a frame behind restarts it (a real mat would have skipped
 * frames then). */
static gint64 capture_period_us(void)
{
    /* the capture's own clock: the next frame's timestamp minus this one's
     * (at the loop, the first interval again) */
    int i = E.next_frame % E.nframes, j = (i + 1) % E.nframes;
    uint32_t a, b;
    memcpy(&a, E.frames[j ? i : 0] + 2, 4);
    memcpy(&b, E.frames[j ? j : 1] + 2, 4);
    gint64 d = (gint64)(uint32_t)(b - a);
    return d > 0 && d < 1000000 ? d : 8000;
}

static void pace(gint64 now)
{
    gint64 period = E.rate < 0 ? capture_period_us() : (gint64)(1e6 / E.rate);
    if (E.next_due < now - period)
        E.next_due = now;
    E.tx_at = E.next_due;
    E.next_due += period;
}

static void morph_command(const uint8_t *p, int n)
{
    for (int i = 0; i < n;) {
        if (p[i] == 0x81 && i + 2 < n) {
            uint8_t reg = p[i + 1], size = p[i + 2];
            i += 3;
            if (reg == 0x26) {
                gint64 now = g_get_monotonic_time();
                if (E.rate != 0)
                    pace(now);
                make_frame();
                continue;
            }
            uint8_t val[64];
            int len = size;
            if (reg == 0x0f) {
                len = (int)strlen(E.serial);
                memcpy(val, E.serial, (size_t)len);
            } else if (reg == 0x1c) {
                static const uint8_t meta[6] = {0, 0, 0x5d, 0x35, 2, 2};
                len = 6;
                memcpy(val, meta, 6);
            } else {
                memcpy(val, E.regs + reg, (size_t)(size > 8 ? 8 : size));
            }
            uint8_t hdr[5];
            int hl;
            if (size) {
                hdr[0] = 0x01, hdr[1] = reg, hdr[2] = (uint8_t)len, hdr[3] = 0, hl = 4;
            } else {
                hdr[0] = 0x03, hdr[1] = reg, hdr[2] = 0, hdr[3] = (uint8_t)len, hdr[4] = 0, hl = 5;
            }
            uint8_t ck = cksum(val, len);
            tx_put(hdr, (size_t)hl);
            tx_put(val, (size_t)len);
            tx_put(&ck, 1);
        } else if (p[i] == 0x01 && i + 2 < n) {
            uint8_t reg = p[i + 1], size = p[i + 2];
            if (i + 3 + size + 1 > n)
                break;
            if (size == 1)
                E.regs[reg] = p[i + 3];
            uint8_t ack[2] = {0x05, reg};
            tx_put(ack, 2);
            i += 4 + size;
        } else {
            i++;
        }
    }
}

static void host_sent(const uint8_t *p, int n)
{
    if (E.mat == MAT_MORPH)
        morph_command(p, n);
    else if (E.mat == MAT_FSR_POLL)
        for (int i = 0; i < n; i++)
            if (p[i] == 'A') {
                gint64 now = g_get_monotonic_time();
                if (E.rate != 0)
                    pace(now);
                make_frame();
            }
}

/* Free-running FSR: frames appear on their own at the rate. */
static void fsr_free_run(gint64 now)
{
    if (E.mat != MAT_FSR_RLE || E.gone)
        return;
    if (E.tx_len > 64 * 1024)
        return; /* the host is not reading: a real device's buffer would overflow too */
    if (E.rate <= 0) {
        if (E.tx_len < 4096)
            make_frame();
        return;
    }
    if (!E.next_due)
        E.next_due = now;
    while (E.next_due <= now && !E.gone) {
        make_frame();
        E.next_due += (gint64)(1e6 / E.rate);
    }
}

/* ---- URBs ----------------------------------------------------------------------- */

static void urb_finish(urb *x, int status, const uint8_t *data, int n)
{
    if (n > 0)
        umockdev_ioctl_data_update(x->bufd, 0, (guint8 *)(uintptr_t)data, n);
    int actual = n;
    umockdev_ioctl_data_update(x->urbd, offsetof(struct usbdevfs_urb, status), (guint8 *)&status,
                               sizeof status);
    umockdev_ioctl_data_update(x->urbd, offsetof(struct usbdevfs_urb, actual_length),
                               (guint8 *)&actual, sizeof actual);
    x->ready = 1;
}

/* Fill waiting bulk IN URBs from tx. */
static void pump(void)
{
    gint64 now = g_get_monotonic_time();
    fsr_free_run(now);
    for (urb *x = E.urbs; x; x = x->next) {
        if (x->ready || x->u->type != USBDEVFS_URB_TYPE_BULK || !(x->u->endpoint & 0x80))
            continue;
        if (E.stall_next_in) {
            E.stall_next_in = 0;
            urb_finish(x, -EPIPE, NULL, 0);
            continue;
        }
        if (!E.tx_len || now < E.tx_at)
            break;
        int n = (int)E.tx_len < x->u->buffer_length ? (int)E.tx_len : x->u->buffer_length;
        urb_finish(x, 0, E.tx, n);
        memmove(E.tx, E.tx + n, E.tx_len - (size_t)n);
        E.tx_len -= (size_t)n;
    }
}

static void control(urb *x)
{
    uint8_t *b = x->bufd->data;
    uint8_t type = b[0], req = b[1];
    int wvalue = b[2] | b[3] << 8, wlength = b[6] | b[7] << 8;
    uint8_t out[8 + 256];
    int n = 0;
    if (type == 0x80 && req == 6 && (wvalue >> 8) == 3) { /* string descriptor */
        int idx = wvalue & 0xff;
        const char *s = idx == 1 ? (E.mat == MAT_MORPH ? "Sensel" : "Teensyduino")
                        : idx == 2 ? (E.mat == MAT_MORPH ? "Sensel Morph" : "USB Serial")
                        : idx == 3 ? E.serial : NULL;
        if (idx == 0) {
            out[8] = 4, out[9] = 3, out[10] = 0x09, out[11] = 0x04;
            n = 4;
        } else if (s) {
            int len = (int)strlen(s);
            out[8] = (uint8_t)(2 + 2 * len), out[9] = 3;
            for (int i = 0; i < len; i++)
                out[10 + 2 * i] = (uint8_t)s[i], out[11 + 2 * i] = 0;
            n = 2 + 2 * len;
        }
        if (n > wlength)
            n = wlength;
    }
    /* CDC SET_LINE_CODING / SET_CONTROL_LINE_STATE and the rest: accepted */
    memcpy(out, b, 8);
    urb_finish(x, 0, out, 0);
    if (n > 0)
        umockdev_ioctl_data_update(x->bufd, 8, out + 8, n);
    umockdev_ioctl_data_update(x->urbd, offsetof(struct usbdevfs_urb, actual_length),
                               (guint8 *)&n, sizeof n);
}

static void fail_all(int status)
{
    for (urb *x = E.urbs; x; x = x->next)
        if (!x->ready)
            urb_finish(x, status, NULL, 0);
}

/* ---- the ioctl handler ------------------------------------------------------------- */

/* umockdev serves ioctls on its own thread; timers run on ours: one lock. */
static GMutex lock;

static gboolean handle(UMockdevIoctlClient *client);

static gboolean on_ioctl(UMockdevIoctlBase *h, UMockdevIoctlClient *client, gpointer user)
{
    g_mutex_lock(&lock);
    gboolean r = handle(client);
    g_mutex_unlock(&lock);
    return r;
}

static gboolean handle(UMockdevIoctlClient *client)
{
    gulong req = umockdev_ioctl_client_get_request(client);
    UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
    GError *err = NULL;
    if (req == USBDEVFS_REAPURB || req == USBDEVFS_REAPURBNDELAY) {
        pump();
        urb **pp = &E.urbs;
        while (*pp && !(*pp)->ready)
            pp = &(*pp)->next;
        if (!*pp) {
            umockdev_ioctl_client_complete(client, -1, E.gone ? ENODEV : EAGAIN);
            return TRUE;
        }
        urb *x = *pp;
        *pp = x->next;
        UMockdevIoctlData *pd = umockdev_ioctl_data_resolve(arg, 0, sizeof(void *), &err);
        umockdev_ioctl_data_set_ptr(pd, 0, x->urbd);
        umockdev_ioctl_client_complete(client, 0, 0);
        g_object_unref(x->bufd);
        g_object_unref(x->urbd);
        g_free(x);
        return TRUE;
    }
    if (E.gone) {
        umockdev_ioctl_client_complete(client, -1, ENODEV);
        return TRUE;
    }
    if (req == USBDEVFS_SUBMITURB) {
        UMockdevIoctlData *urbd = umockdev_ioctl_data_resolve(arg, 0, sizeof(struct usbdevfs_urb),
                                                              &err);
        struct usbdevfs_urb *u = (struct usbdevfs_urb *)urbd->data;
        UMockdevIoctlData *bufd = umockdev_ioctl_data_resolve(
            urbd, offsetof(struct usbdevfs_urb, buffer), (gsize)u->buffer_length, &err);
        urb *x = g_new0(urb, 1);
        x->urbd = g_object_ref(urbd);
        x->bufd = g_object_ref(bufd);
        x->u = u;
        urb **pp = &E.urbs;
        while (*pp)
            pp = &(*pp)->next;
        *pp = x;
        if (u->type == USBDEVFS_URB_TYPE_CONTROL) {
            control(x);
        } else if (u->type == USBDEVFS_URB_TYPE_BULK && !(u->endpoint & 0x80)) {
            host_sent(bufd->data, u->buffer_length);
            urb_finish(x, 0, NULL, 0);
            int len = u->buffer_length;
            umockdev_ioctl_data_update(urbd, offsetof(struct usbdevfs_urb, actual_length),
                                       (guint8 *)&len, sizeof len);
        }
        umockdev_ioctl_client_complete(client, 0, 0);
        return TRUE;
    }
    if (req == USBDEVFS_DISCARDURB) {
        gulong addr = *(gulong *)arg->data;
        for (urb *x = E.urbs; x; x = x->next)
            if (x->urbd->client_addr == addr && !x->ready) {
                urb_finish(x, -ENOENT, NULL, 0);
                umockdev_ioctl_client_complete(client, 0, 0);
                return TRUE;
            }
        umockdev_ioctl_client_complete(client, -1, EINVAL);
        return TRUE;
    }
    if (req == USBDEVFS_GET_CAPABILITIES) {
        UMockdevIoctlData *d = umockdev_ioctl_data_resolve(arg, 0, 4, &err);
        guint32 caps = USBDEVFS_CAP_ZERO_PACKET | USBDEVFS_CAP_BULK_CONTINUATION |
                       USBDEVFS_CAP_NO_PACKET_SIZE_LIM | USBDEVFS_CAP_REAP_AFTER_DISCONNECT;
        umockdev_ioctl_data_update(d, 0, (guint8 *)&caps, 4);
        umockdev_ioctl_client_complete(client, 0, 0);
        return TRUE;
    }
    if (req == USBDEVFS_GETDRIVER) {
        umockdev_ioctl_client_complete(client, -1, ENODATA);
        return TRUE;
    }
    if (req == USBDEVFS_CLAIMINTERFACE || req == USBDEVFS_RELEASEINTERFACE ||
        req == USBDEVFS_SETCONFIGURATION || req == USBDEVFS_SETINTERFACE ||
        req == USBDEVFS_CLEAR_HALT || req == USBDEVFS_RESET || req == USBDEVFS_RESETEP ||
        req == USBDEVFS_IOCTL || req == USBDEVFS_DISCONNECT_CLAIM) {
        umockdev_ioctl_client_complete(client, 0, 0);
        return TRUE;
    }
    umockdev_ioctl_client_complete(client, -1, ENOTTY);
    return TRUE;
}

static void attach(void)
{
    GError *err = NULL;
    char *text = device_text();
    if (!umockdev_testbed_add_from_string(E.tb, text, &err)) {
        fprintf(stderr, "usbemu: adding the device: %s\n", err->message);
        exit(2);
    }
    g_free(text);
    if (!umockdev_testbed_attach_ioctl(E.tb, DEVNODE, E.handler, &err)) {
        fprintf(stderr, "usbemu: attaching the ioctl handler: %s\n", err->message);
        exit(2);
    }
}

static gboolean replug(gpointer user)
{
    g_mutex_lock(&lock);
    E.gone = 0;
    E.tx_len = 0;
    E.next_due = 0;
    attach();
    umockdev_testbed_uevent(E.tb, SYSPATH, "add");
    fprintf(stderr, "usbemu: device plugged back in\n");
    g_mutex_unlock(&lock);
    return G_SOURCE_REMOVE;
}

static void unplug(void)
{
    fprintf(stderr, "usbemu: device unplugged after %ld frames\n", E.served);
    E.gone = 1;
    E.tx_len = 0;
    fail_all(-ENODEV);
    umockdev_testbed_uevent(E.tb, SYSPATH, "remove");
    GError *err = NULL;
    umockdev_testbed_detach_ioctl(E.tb, DEVNODE, &err);
    umockdev_testbed_remove_device(E.tb, SYSPATH);
    if (E.replug_ms > 0)
        g_timeout_add((guint)E.replug_ms, replug, NULL);
}

static gboolean tick(gpointer user)
{
    g_mutex_lock(&lock);
    if (!E.gone)
        pump(); /* free-running frames keep coming even if nobody reaps */
    g_mutex_unlock(&lock);
    return G_SOURCE_CONTINUE;
}

static void child_done(GPid pid, gint status, gpointer user)
{
    E.child_status = status;
    g_main_loop_quit(E.loop);
}

static void write_stats(void)
{
    if (!E.stats_path)
        return;
    FILE *fp = fopen(E.stats_path, "w");
    if (!fp)
        return;
    fprintf(fp, "{\"served\":%ld,\"dropped\":%ld,\"stall\":%ld,\"timeout\":%ld,\"garbage\":%ld,"
            "\"checksum\":%ld,\"short\":%ld,\"capture_frames\":%d,"
            "\"dynamic_baseline\":%d}\n",
            E.served, E.dropped, E.injected[F_STALL], E.injected[F_TIMEOUT],
            E.injected[F_GARBAGE], E.injected[F_CHECKSUM], E.injected[F_SHORT], E.nframes,
            E.regs[0x57]);
    fclose(fp);
}

static int usage(void)
{
    fprintf(stderr, "usage: umockdev-wrapper usbemu [--mat morph|fsr-rle|fsr-poll] "
                    "[--capture FILE] [--rate HZ] [--rows R --cols C] [--drop-every K] "
                    "[--fault KIND@N]... [--unplug-at N --replug-after MS] [--stats FILE] "
                    "[--serial S] [--id VVVV:PPPP] [--lock-node yes] "
                    "-- COMMAND [ARGS...]\n");
    return 2;
}

/* --fault KIND@N or KIND@N-M; 0 when it parses. */
static int parse_fault(const char *v)
{
    static const char *const kinds[] = {"stall", "timeout", "garbage", "checksum", "short"};
    const char *at = strchr(v, '@');
    int k = -1;
    for (int j = 0; j < 5; j++)
        if (at && !strncmp(v, kinds[j], (size_t)(at - v)) && strlen(kinds[j]) == (size_t)(at - v))
            k = j;
    if (k < 0 || E.nfaults >= MAX_FAULTS)
        return -1;
    char *dash;
    E.faults[E.nfaults].kind = (enum fault)k;
    E.faults[E.nfaults].at = strtol(at + 1, &dash, 10);
    E.faults[E.nfaults].to = *dash == '-' ? atol(dash + 1) : E.faults[E.nfaults].at;
    E.nfaults++;
    return 0;
}

/* One option and its value; 0 when it is known. */
static int parse_option(const char *o, const char *v, const char **capture, int *rate_given)
{
    if (!strcmp(o, "--mat"))
        E.mat = !strcmp(v, "fsr-rle") ? MAT_FSR_RLE : !strcmp(v, "fsr-poll") ? MAT_FSR_POLL
                                                                              : MAT_MORPH;
    else if (!strcmp(o, "--capture"))
        *capture = v;
    else if (!strcmp(o, "--rate"))
        E.rate = !strcmp(v, "capture") ? -1 : atof(v), *rate_given = 1;
    else if (!strcmp(o, "--rows"))
        E.rows = atoi(v);
    else if (!strcmp(o, "--cols"))
        E.cols = atoi(v);
    else if (!strcmp(o, "--serial"))
        snprintf(E.serial, sizeof E.serial, "%s", v);
    else if (!strcmp(o, "--drop-every"))
        E.drop_every = atoi(v);
    else if (!strcmp(o, "--unplug-at"))
        E.unplug_at = atol(v);
    else if (!strcmp(o, "--replug-after"))
        E.replug_ms = atol(v);
    else if (!strcmp(o, "--stats"))
        E.stats_path = v;
    else if (!strcmp(o, "--load"))
        return sscanf(v, "%d:%d:%d:%d:%d", &E.load[0], &E.load[1], &E.load[2], &E.load[3],
                      &E.load[4]) == 5 ? 0 : -1;
    else if (!strcmp(o, "--static-frame"))
        E.static_frame = atoi(v);
    else if (!strcmp(o, "--lock-node") && !strcmp(v, "yes"))
        E.lock_node = 1;
    else if (!strcmp(o, "--id"))
        return sscanf(v, "%x:%x", &E.vid, &E.pid) == 2 ? 0 : -1;
    else if (!strcmp(o, "--fault"))
        return parse_fault(v);
    else
        return -1;
    return 0;
}

/* The Morph's registers (docs/drivers.md). */
static void set_registers(void)
{
    memcpy(E.regs + 0x00, "S3NS31", 6);
    E.regs[0x06] = 1;
    E.regs[0x0c] = 3;
    E.regs[0x10] = 185;
    E.regs[0x12] = 105;
    uint32_t w = 230000, hgt = 130000;
    memcpy(E.regs + 0x14, &w, 4);
    memcpy(E.regs + 0x18, &hgt, 4);
    E.regs[0x20] = 0xd0, E.regs[0x21] = 0x07;
    E.regs[0x28] = 0x0f;
    E.regs[0x40] = 16;
    E.regs[0xa1] = 3;
    E.regs[0x50] = 1; /* baseline on, dynamic baselining on: the firmware's defaults */
    E.regs[0x57] = 1;
}

/* The device in the test bed, the command run as a child, the main loop
 * serving it until it exits; returns the command's status. */
static int serve(char **command)
{
    E.tb = umockdev_testbed_new();
    E.handler = umockdev_ioctl_base_new();
    g_signal_connect(E.handler, "handle-ioctl", G_CALLBACK(on_ioctl), NULL);
    attach();
    if (E.lock_node) {
        /* the test bed readable by anyone (sysfs, udev data), the node not */
        char *root = umockdev_testbed_get_root_dir(E.tb);
        char *cmd = g_strdup_printf("chmod -R a+rwX '%s' && chmod 0600 '%s/dev/bus/usb/001/002'",
                                    root, root);
        if (system(cmd) != 0)
            fprintf(stderr, "usbemu: could not change the test bed's modes\n");
        g_free(cmd);
        g_free(root);
    }
    E.loop = g_main_loop_new(NULL, FALSE);
    GPid pid;
    GError *err = NULL;
    if (!g_spawn_async(NULL, command, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH |
                       G_SPAWN_CHILD_INHERITS_STDIN, NULL, NULL, &pid, &err)) {
        fprintf(stderr, "usbemu: cannot run %s: %s\n", command[0], err->message);
        return 2;
    }
    g_child_watch_add(pid, child_done, NULL);
    g_timeout_add(2, tick, NULL);
    g_main_loop_run(E.loop);
    write_stats();
    if (WIFEXITED(E.child_status))
        return WEXITSTATUS(E.child_status);
    fprintf(stderr, "usbemu: the command died (signal %d)\n",
            WIFSIGNALED(E.child_status) ? WTERMSIG(E.child_status) : 0);
    return 1;
}

int main(int argc, char **argv)
{
    E.rows = E.cols = 16;
    E.vid = 0x16c0;
    E.pid = 0x0483;
    E.rate = 125;
    E.static_frame = -1;
    snprintf(E.serial, sizeof E.serial, "SM01164910368");
    const char *capture = NULL;
    int i, rate_given = 0;
    for (i = 1; i < argc && strcmp(argv[i], "--"); i += 2)
        if (i + 1 >= argc || parse_option(argv[i], argv[i + 1], &capture, &rate_given))
            return usage();
    if (i >= argc - 1)
        return usage();
    if (E.mat == MAT_MORPH) {
        if (!capture || load_capture(capture)) {
            fprintf(stderr, "usbemu: the morph needs --capture FILE with frame packets\n");
            return 2;
        }
        if (strcmp(E.serial, "SM01164910368") == 0)
            snprintf(E.serial, sizeof E.serial, "2044B8374E33");
        if (!rate_given)
            E.rate = -1; /* the capture's own clock */
    } else if (strcmp(E.serial, "SM01164910368") == 0) {
        snprintf(E.serial, sizeof E.serial, "KM-FSR-0001");
    }
    set_registers();
    E.tx = g_malloc(TXCAP);
    return serve(argv + i + 1);
}
