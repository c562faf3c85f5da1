/* kmr.c: the .kmr recording format: writer, reader, check, recover.
 *
 * Every block, the header included:
 *   0  "KMRB"           magic
 *   4  u8 type          1 header, 2 frames, 3 events, 4 gap, 5 end
 *   5  u8 flags         bit 0: payload is zstd-compressed
 *   6  u16 0            reserved
 *   8  u32 stored       payload bytes in the file
 *   12 u32 raw          payload bytes once decompressed
 *   16 u64 serial       first frame's sequence number (frames), else 0
 *   24 payload[stored]
 *   .. u32 CRC32C of everything from the magic to the end of the payload
 * All little-endian. A block is written with one write(); the file is synced
 * after each flush, so a crash leaves whole blocks plus at most one torn one
 * at the end. Frame payloads: u32 count, then per frame seq, device_ns,
 * host_ns (u64), flags, n_saturated, n_dead (u32), then the cells as deltas
 * to the previous frame: kPa float bits XOR, raw counts difference (mod
 * 2^16), cell flags XOR; the first frame of a block is a delta to zeros, so
 * every block decodes on its own, and a reader that meets a damaged block
 * finds the next one by its magic and goes on. Writer and reader share one
 * limit on a block's size (KM_KMR_MAX_BLOCK_BYTES): the writer closes a
 * block before it would grow past it. docs/file-format.md has the full spec.
 * Touches: the files it is given. Runs on the recorder's thread, never in
 * the frame path of the DSP or the audio callback. */
#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "formats.h"
#include "knotmat/outfile.h"
#include "knotmat/record.h"

#define MAGIC "KMRB"
#define HDR 24
#define MAX_PAYLOAD KM_KMR_MAX_BLOCK_BYTES
enum { B_HEADER = 1, B_FRAMES = 2, B_EVENTS = 3, B_GAP = 4, B_END = 5, B_CONTACTS = 6 };
#define B_LAST B_CONTACTS
/* contacts block: u32 count, then per frame u64 seq, u32 n, n x CONTACT_BYTES
 * (u8 id, u8 state, u16 0, f32 x_mm, y_mm, force_n, area_mm2); it comes
 * right before the frame block whose frames it belongs to */
#define CONTACT_BYTES 20
#define FRAME_HDR 36
#define EVENT_BYTES 64
#define GAP_BYTES 20
/* the largest frame always fits a block with room to spare */
_Static_assert(FRAME_HDR + 7ull * KM_FRAME_MAX_DIM * KM_FRAME_MAX_DIM + 4 < MAX_PAYLOAD / 4,
               "a frame must fit a block");

static uint32_t crc32c(const void *p, size_t n)
{
    return ~crc32_iscsi((unsigned char *)(uintptr_t)p, (int)n, 0xFFFFFFFFu);
}

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* ---- a growable byte buffer --------------------------------------------- */

typedef struct { unsigned char *p; size_t n, cap; } bytes;

static int reserve(bytes *b, size_t more)
{
    if (b->n + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->n + more)
        cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q)
        return -1;
    b->p = q;
    b->cap = cap;
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Assemble a block (header, payload, CRC) into `b`; its length, 0 on error. */
static size_t assemble(bytes *b, int type, uint64_t serial, const void *payload, size_t n,
                       int compress)
{
    size_t bound = compress ? ZSTD_compressBound(n) : n;
    b->n = 0;
    if (reserve(b, HDR + bound + 4))
        return 0;
    unsigned char *p = b->p;
    size_t stored = n;
    if (compress) {
        stored = ZSTD_compress(p + HDR, bound, payload, n, 3);
        if (ZSTD_isError(stored))
            return 0;
    } else if (n) {
        memcpy(p + HDR, payload, n);
    }
    memcpy(p, MAGIC, 4);
    p[4] = (unsigned char)type;
    p[5] = compress ? 1 : 0;
    p[6] = p[7] = 0;
    put32(p + 8, (uint32_t)stored);
    put32(p + 12, (uint32_t)n);
    put64(p + 16, serial);
    put32(p + HDR + stored, crc32c(p, HDR + stored));
    return HDR + stored + 4;
}

void km_record_meta_deidentify(km_record_meta *m)
{
    snprintf(m->subject, sizeof m->subject, "X");
    snprintf(m->session, sizeof m->session, "X");
    m->operator_name[0] = m->notes[0] = m->serial[0] = m->calibration[0] = 0;
    snprintf(m->start_utc, sizeof m->start_utc, "1985-01-01T00:00:00Z");
    m->mono_base_ns = 0;
    /* a cue scheme's path may name a home directory: its file name only */
    const char *base = strrchr(m->cue_scheme, '/');
    if (base)
        memmove(m->cue_scheme, base + 1, strlen(base + 1) + 1);
}

/* ---- writer ------------------------------------------------------------- */

struct km_recorder {
    int fd;
    km_outfile *of;
    char path[1024];
    km_record_meta meta;
    uint32_t cells;
    int64_t sync_ns;       /* a frame is on disk at most this long after it arrived */
    bytes frames;          /* encoded frames of the open block */
    uint32_t nframes;
    uint64_t first_seq;
    int64_t first_ns;
    bytes events;
    uint32_t nevents;
    bytes contacts;        /* the open block's frames' device contacts */
    uint32_t ncontacts;
    int64_t oldest_mono;   /* arrival (CLOCK_MONOTONIC) of the oldest unsynced item, 0: none */
    int64_t flush_cost_ns; /* recent cost of one flush (average): a flush starts that early */
    int64_t frame_gap_ns;  /* recent interval between frames (average) */
    int64_t last_add_mono;
    bytes block;           /* assembled block */
    float *prev_kpa;
    uint16_t *prev_raw;
    uint8_t *prev_flags;
    off_t good;            /* end of the last complete block */
    uint64_t written, flushes;
    int64_t flush_total_ns, flush_max_ns;
    int error;             /* first errno seen */
};

void km_recorder_options_default(km_recorder_options *o)
{
    memset(o, 0, sizeof *o);
    o->sync_interval_s = KM_KMR_DEFAULT_SYNC_S;
}

static int write_block(km_recorder *r, int type, uint64_t serial, const void *payload, size_t n,
                       int compress)
{
    if (r->error)
        return KM_EIO;
    size_t total = assemble(&r->block, type, serial, payload, n, compress);
    if (!total)
        return KM_ENOMEM;
    if (write_all(r->fd, r->block.p, total)) {
        r->error = errno;
        /* keep the file valid: cut the partial block off again */
        if (ftruncate(r->fd, r->good) == 0)
            lseek(r->fd, r->good, SEEK_SET);
        return KM_EIO;
    }
    r->good += (off_t)total;
    return KM_OK;
}

static void meta_line(bytes *b, const char *key, const char *val)
{
    char line[1200];
    int n = snprintf(line, sizeof line, "%s=%s\n", key, val);
    if (n >= (int)sizeof line)
        n = (int)sizeof line - 1;
    for (int i = (int)strlen(key) + 1; i < n - 1; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n - 1] = '\n';
    if (n > 0 && !reserve(b, (size_t)n)) {
        memcpy(b->p + b->n, line, (size_t)n);
        b->n += (size_t)n;
    }
}

static void header_text(bytes *h, const km_record_meta *meta, const km_record_meta *filled)
{
    char num[64];
    meta_line(h, "format", "knotmat-kmr");
    meta_line(h, "version", "2"); /* 2: contact blocks may appear */
    meta_line(h, "software", "knotmat " KM_VERSION_STRING);
    snprintf(num, sizeof num, "%u", meta->rows);
    meta_line(h, "rows", num);
    snprintf(num, sizeof num, "%u", meta->cols);
    meta_line(h, "cols", num);
    snprintf(num, sizeof num, "%.6g", (double)meta->pitch_mm);
    meta_line(h, "pitch_mm", num);
    snprintf(num, sizeof num, "%.6g", meta->rate_hz);
    meta_line(h, "rate_hz", num);
    meta_line(h, "units", meta->units[0] ? meta->units : "kPa");
    meta_line(h, "device_kind", meta->device_kind);
    meta_line(h, "vid_pid", meta->vid_pid);
    meta_line(h, "serial", meta->serial);
    meta_line(h, "calibration", meta->calibration);
    meta_line(h, "subject", meta->subject);
    meta_line(h, "session", meta->session);
    meta_line(h, "operator", meta->operator_name);
    meta_line(h, "notes", meta->notes);
    meta_line(h, "start_utc", filled->start_utc);
    meta_line(h, "settings", meta->settings);
    meta_line(h, "cue_scheme", meta->cue_scheme);
    snprintf(num, sizeof num, "%lld", (long long)filled->mono_base_ns);
    meta_line(h, "mono_base_ns", num);
}

static void recorder_free(km_recorder *r)
{
    free(r->contacts.p);
    free(r->frames.p);
    free(r->events.p);
    free(r->block.p);
    free(r->prev_kpa);
    free(r->prev_raw);
    free(r->prev_flags);
    free(r);
}

int km_recorder_open(const char *path, const km_record_meta *meta, const km_recorder_options *opt,
                     km_recorder **out, char *err, size_t errlen)
{
    *out = NULL;
    km_recorder_options defaults;
    km_recorder_options_default(&defaults);
    if (!opt)
        opt = &defaults;
    char why[256];
    if (km_check_geometry_(meta->rows, meta->cols, meta->pitch_mm, why, sizeof why)) {
        km_errf_(err, errlen, "%s: cannot record this mat: %s", path, why);
        return KM_EINVAL;
    }
    km_outfile *of;
    int rc = km_outfile_open(path, opt->force ? KM_OUT_FORCE : 0, opt->inputs, &of, err, errlen);
    if (rc)
        return rc;
    km_recorder *r = calloc(1, sizeof *r);
    if (!r) {
        km_outfile_abort(of);
        return KM_ENOMEM;
    }
    r->of = of;
    r->fd = km_outfile_fd(of);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->meta = *meta;
    r->cells = (uint32_t)meta->rows * meta->cols;
    double s = opt->sync_interval_s > 0 ? opt->sync_interval_s : KM_KMR_DEFAULT_SYNC_S;
    r->sync_ns = (int64_t)(s * 1e9);
    r->prev_kpa = calloc(r->cells, sizeof(float));
    r->prev_raw = calloc(r->cells, sizeof(uint16_t));
    r->prev_flags = calloc(r->cells, 1);
    r->meta.mono_base_ns = km_mono_ns_();
    snprintf(r->meta.software, sizeof r->meta.software, "knotmat %s", KM_VERSION_STRING);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(r->meta.start_utc, sizeof r->meta.start_utc, "%Y-%m-%dT%H:%M:%SZ", &tm);
    bytes h = {0};
    header_text(&h, meta, &r->meta);
    rc = (!r->prev_kpa || !r->prev_raw || !r->prev_flags || !h.p)
             ? KM_ENOMEM
             : write_block(r, B_HEADER, 0, h.p, h.n, 0);
    free(h.p);
    if (!rc && fdatasync(r->fd) != 0) {
        r->error = errno;
        rc = KM_EIO;
    }
    /* the file appears under its name only with a whole header in it */
    if (!rc)
        rc = km_outfile_publish(of, why, sizeof why);
    else
        snprintf(why, sizeof why, "%s", r->error ? strerror(r->error) : km_strerror(rc));
    if (rc) {
        km_errf_(err, errlen, "%s: cannot write the header: %s", path, why);
        km_outfile_abort(of); /* nothing was replaced, nothing is left */
        recorder_free(r);
        return rc;
    }
    *out = r;
    return KM_OK;
}

int km_recorder_flush(km_recorder *r)
{
    int rc = KM_OK;
    int64_t t0 = km_mono_ns_();
    if (r->nframes && r->ncontacts) { /* before its frames, so a reader has them first */
        put32(r->contacts.p, r->ncontacts);
        rc = write_block(r, B_CONTACTS, r->first_seq, r->contacts.p, r->contacts.n, 0);
    }
    r->ncontacts = 0;
    r->contacts.n = 0;
    if (!rc && r->nframes) {
        put32(r->frames.p, r->nframes);
        rc = write_block(r, B_FRAMES, r->first_seq, r->frames.p, r->frames.n, 1);
        if (!rc)
            r->written += r->nframes;
        r->nframes = 0;
        r->frames.n = 0;
    }
    if (!rc && r->nevents) {
        put32(r->events.p, r->nevents);
        rc = write_block(r, B_EVENTS, 0, r->events.p, r->events.n, 0);
        r->nevents = 0;
        r->events.n = 0;
    }
    if (!rc && fdatasync(r->fd) != 0) {
        r->error = errno;
        rc = KM_EIO;
    }
    r->oldest_mono = 0;
    int64_t cost = km_mono_ns_() - t0;
    r->flush_cost_ns = r->flushes ? (3 * r->flush_cost_ns + cost) / 4 : cost;
    r->flush_total_ns += cost;
    if (cost > r->flush_max_ns)
        r->flush_max_ns = cost;
    r->flushes++;
    return rc ? rc : (r->error ? KM_EIO : KM_OK);
}

int64_t km_recorder_deadline_ns(const km_recorder *r)
{
    if (!r->oldest_mono)
        return INT64_MAX;
    /* start early enough that the flush itself, and the frame that may
     * arrive meanwhile, still end inside the interval */
    int64_t lead = 2 * r->flush_cost_ns + r->frame_gap_ns;
    if (lead > r->sync_ns / 2)
        lead = r->sync_ns / 2;
    return r->oldest_mono + r->sync_ns - lead;
}

int km_recorder_poll(km_recorder *r)
{
    if (r->error)
        return KM_EIO;
    if (km_mono_ns_() >= km_recorder_deadline_ns(r))
        return km_recorder_flush(r);
    return KM_OK;
}

static void mark_pending(km_recorder *r, int64_t now)
{
    if (!r->oldest_mono)
        r->oldest_mono = now;
}

int km_recorder_add_frame(km_recorder *r, const km_frame *f)
{
    if (r->error)
        return KM_EIO;
    if ((uint32_t)f->rows * f->cols != r->cells || f->rows != r->meta.rows)
        return KM_EINVAL;
    size_t need = FRAME_HDR + (size_t)r->cells * 7;
    /* a block ends after sync_s of device time or before it outgrows the
     * limit its reader enforces, whichever comes first */
    if (r->nframes && ((f->device_ns - r->first_ns) >= r->sync_ns ||
                       f->device_ns < r->first_ns || r->frames.n + need > MAX_PAYLOAD)) {
        int rc = km_recorder_flush(r);
        if (rc)
            return rc;
    }
    int64_t now = km_mono_ns_();
    if (r->last_add_mono) {
        int64_t gap = now - r->last_add_mono;
        r->frame_gap_ns = (7 * r->frame_gap_ns + gap) / 8;
    }
    r->last_add_mono = now;
    if (!r->nframes) {
        r->frames.n = 4; /* room for the count */
        if (reserve(&r->frames, 4))
            return KM_ENOMEM;
        r->first_seq = f->seq;
        r->first_ns = f->device_ns;
        memset(r->prev_kpa, 0, r->cells * sizeof(float));
        memset(r->prev_raw, 0, r->cells * sizeof(uint16_t));
        memset(r->prev_flags, 0, r->cells);
    }
    if (reserve(&r->frames, need))
        return KM_ENOMEM;
    unsigned char *p = r->frames.p + r->frames.n;
    put64(p, f->seq);
    put64(p + 8, (uint64_t)f->device_ns);
    put64(p + 16, (uint64_t)f->host_ns);
    put32(p + 24, f->flags);
    put32(p + 28, f->n_saturated);
    put32(p + 32, f->n_dead);
    p += FRAME_HDR;
    for (uint32_t i = 0; i < r->cells; i++) {
        uint32_t a, b;
        memcpy(&a, &f->kpa[i], 4);
        memcpy(&b, &r->prev_kpa[i], 4);
        put32(p + 4 * (size_t)i, a ^ b);
    }
    p += 4 * (size_t)r->cells;
    for (uint32_t i = 0; i < r->cells; i++) {
        uint16_t d = (uint16_t)(f->raw[i] - r->prev_raw[i]);
        memcpy(p + 2 * (size_t)i, &d, 2);
    }
    p += 2 * (size_t)r->cells;
    for (uint32_t i = 0; i < r->cells; i++)
        p[i] = f->cell_flags[i] ^ r->prev_flags[i];
    memcpy(r->prev_kpa, f->kpa, r->cells * sizeof(float));
    memcpy(r->prev_raw, f->raw, r->cells * sizeof(uint16_t));
    memcpy(r->prev_flags, f->cell_flags, r->cells);
    r->frames.n += need;
    r->nframes++;
    if (f->n_contacts) {
        uint32_t nc = f->n_contacts > KM_FRAME_MAX_CONTACTS ? KM_FRAME_MAX_CONTACTS : f->n_contacts;
        if (!r->ncontacts)
            r->contacts.n = 4;
        if (reserve(&r->contacts, 12 + (size_t)nc * CONTACT_BYTES + 4))
            return KM_ENOMEM;
        unsigned char *c = r->contacts.p + r->contacts.n;
        put64(c, f->seq);
        put32(c + 8, nc);
        c += 12;
        for (uint32_t i = 0; i < nc; i++, c += CONTACT_BYTES) {
            const km_contact *k = &f->contacts[i];
            c[0] = k->id;
            c[1] = k->state;
            c[2] = c[3] = 0;
            float v[4] = {k->x_mm, k->y_mm, k->force_n, k->area_mm2};
            memcpy(c + 4, v, sizeof v);
        }
        r->contacts.n += 12 + (size_t)nc * CONTACT_BYTES;
        r->ncontacts++;
    }
    mark_pending(r, now);
    /* on disk within sync_s of arrival, whatever the device clock says */
    if (now >= km_recorder_deadline_ns(r))
        return km_recorder_flush(r);
    return KM_OK;
}

int km_recorder_add_gap(km_recorder *r, uint64_t first_seq, uint64_t count, int reason)
{
    /* frames before the gap first, so the file stays in time order */
    int rc = km_recorder_flush(r);
    if (rc)
        return rc;
    unsigned char g[GAP_BYTES];
    put64(g, first_seq);
    put64(g + 8, count);
    put32(g + 16, (uint32_t)reason);
    rc = write_block(r, B_GAP, first_seq, g, sizeof g, 0);
    if (!rc)
        mark_pending(r, km_mono_ns_());
    return rc;
}

int km_recorder_add_event(km_recorder *r, const km_event *e)
{
    if (r->error)
        return KM_EIO;
    if (!r->nevents)
        r->events.n = 4;
    if (r->events.n + EVENT_BYTES > MAX_PAYLOAD) {
        int rc = km_recorder_flush(r);
        if (rc)
            return rc;
        r->events.n = 4;
    }
    if (reserve(&r->events, EVENT_BYTES + 4))
        return KM_ENOMEM;
    unsigned char *p = r->events.p + r->events.n;
    put32(p, (uint32_t)e->type);
    double v[7] = {e->t_s, e->x_mm, e->y_mm, e->force_n, e->confidence, e->value, e->detected_t_s};
    memcpy(p + 4, v, sizeof v);
    put32(p + 60, e->track);
    r->events.n += EVENT_BYTES;
    r->nevents++;
    mark_pending(r, km_mono_ns_());
    return KM_OK;
}

uint64_t km_recorder_frames_written(const km_recorder *r) { return r->written; }

void km_recorder_stats_get(const km_recorder *r, km_recorder_stats *out)
{
    out->frames_written = r->written;
    out->flushes = r->flushes;
    out->flush_total_s = (double)r->flush_total_ns * 1e-9;
    out->flush_max_s = (double)r->flush_max_ns * 1e-9;
    out->bytes = (uint64_t)r->good;
}

int km_recorder_close(km_recorder *r, char *err, size_t errlen)
{
    if (!r)
        return KM_OK;
    int rc = km_recorder_flush(r);
    if (!rc)
        rc = write_block(r, B_END, 0, NULL, 0, 0);
    if (!rc && fdatasync(r->fd) != 0) {
        r->error = errno;
        rc = KM_EIO;
    }
    char why[256] = "";
    if (km_outfile_commit(r->of, why, sizeof why) && !rc) {
        r->error = errno ? errno : EIO;
        rc = KM_EIO;
    }
    if (rc)
        km_errf_(err, errlen, "%s: %s; the file holds the %llu frames written before it",
                 r->path, r->error ? strerror(r->error) : km_strerror(rc),
                 (unsigned long long)r->written);
    recorder_free(r);
    return rc;
}

/* ---- reading blocks ----------------------------------------------------- */

typedef struct {
    FILE *fp;
    char path[1024];
    off_t size;         /* file size: no block may claim more than is left */
    off_t off;          /* offset of the next block */
    int type;
    uint64_t serial;
    bytes raw;          /* the whole block as stored (header..crc) */
    bytes payload;      /* decompressed payload */
    uint64_t resync_budget; /* bytes a search for the next block may still read */
    unsigned skip_payload;  /* bit per block type: checked (CRC) but not decompressed */
} block_reader;

/* Read and verify the block at br->off (the stream is positioned there).
 * 1 ok, 0 clean EOF, -1 damaged (why). */
static int next_block(block_reader *br, char *why, size_t whylen)
{
    unsigned char h[HDR];
    size_t got = fread(h, 1, HDR, br->fp);
    if (got == 0 && feof(br->fp))
        return 0;
    if (got < HDR) {
        km_errf_(why, whylen, "torn block header (%zu of %d bytes)", got, HDR);
        return -1;
    }
    if (memcmp(h, MAGIC, 4)) {
        km_errf_(why, whylen, "no block magic");
        return -1;
    }
    uint32_t stored = get32(h + 8), rawn = get32(h + 12);
    /* sizes are bounded here by the limit the writer also keeps, and are
     * covered by the CRC, checked before the decompressed size is allocated
     * (no ratio limit: a second of a mostly idle 185 x 105 mat compresses
     * more than 500 to 1) */
    if (stored > MAX_PAYLOAD || rawn > MAX_PAYLOAD || h[4] < B_HEADER || h[4] > B_LAST ||
        h[5] > 1 || h[6] || h[7]) {
        km_errf_(why, whylen, "implausible block (type %u, %u bytes)", h[4], stored);
        return -1;
    }
    /* a block longer than the rest of the file is torn: do not allocate for it */
    if ((off_t)HDR + stored + 4 > br->size - br->off) {
        km_errf_(why, whylen, "torn block: %lld of %u bytes", (long long)(br->size - br->off),
                 stored + 4 + HDR);
        return -1;
    }
    br->raw.n = 0;
    if (reserve(&br->raw, HDR + (size_t)stored + 4)) {
        km_errf_(why, whylen, "out of memory");
        return -1;
    }
    memcpy(br->raw.p, h, HDR);
    got = fread(br->raw.p + HDR, 1, (size_t)stored + 4, br->fp);
    if (got < (size_t)stored + 4) {
        km_errf_(why, whylen, "torn block: %zu of %u bytes", got + HDR, stored + 4 + HDR);
        return -1;
    }
    br->raw.n = HDR + (size_t)stored + 4;
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* fuzzing builds only: let mutated blocks reach the decoders behind the CRC */
    if (0) {
#else
    if (crc32c(br->raw.p, HDR + stored) != get32(br->raw.p + HDR + stored)) {
#endif
        km_errf_(why, whylen, "CRC32C mismatch");
        return -1;
    }
    br->type = h[4];
    br->serial = get64(h + 16);
    br->payload.n = 0;
    if (br->skip_payload & (1u << h[4]))
        return 1; /* whole (its CRC holds); its payload is not wanted */
    if (reserve(&br->payload, rawn ? rawn : 1)) {
        km_errf_(why, whylen, "out of memory");
        return -1;
    }
    if (h[5] & 1) {
        size_t d = ZSTD_decompress(br->payload.p, rawn, br->raw.p + HDR, stored);
        if (ZSTD_isError(d) || d != rawn) {
            km_errf_(why, whylen, "zstd payload does not decompress");
            return -1;
        }
    } else {
        if (stored != rawn) {
            km_errf_(why, whylen, "payload sizes disagree");
            return -1;
        }
        memcpy(br->payload.p, br->raw.p + HDR, stored);
    }
    br->payload.n = rawn;
    return 1;
}

/* Sizes inside a CRC-valid block that must agree with its counts: a block
 * that passes its CRC but lies about what it holds is damage too. */
static int block_consistent(const block_reader *br, uint32_t cells, char *why, size_t whylen)
{
    const bytes *p = &br->payload;
    uint64_t n = p->n >= 4 ? get32(p->p) : 0;
    switch (br->type) {
    case B_FRAMES:
        if (!cells || n == 0 || n * (FRAME_HDR + (uint64_t)cells * 7) + 4 != p->n) {
            km_errf_(why, whylen, "frame block of %llu frames has %zu bytes",
                     (unsigned long long)n, p->n);
            return 0;
        }
        if (get64(p->p + 4) != br->serial) {
            km_errf_(why, whylen, "frame block's serial is not its first frame's");
            return 0;
        }
        return 1;
    case B_EVENTS:
        if (p->n < 4 || 4 + n * EVENT_BYTES != p->n) {
            km_errf_(why, whylen, "event block says %llu events in %zu bytes",
                     (unsigned long long)n, p->n);
            return 0;
        }
        return 1;
    case B_GAP:
        if (p->n != GAP_BYTES || get64(p->p + 8) == 0 || get64(p->p + 8) > (1ull << 48) ||
            get64(p->p) != br->serial) {
            km_errf_(why, whylen, "gap block is malformed");
            return 0;
        }
        return 1;
    case B_CONTACTS: {
        size_t pos = 4;
        for (uint64_t i = 0; i < n && p->n >= 4; i++) {
            if (pos + 12 > p->n || get32(p->p + pos + 8) > KM_FRAME_MAX_CONTACTS)
                break;
            pos += 12 + (size_t)get32(p->p + pos + 8) * CONTACT_BYTES;
        }
        if (p->n < 4 || pos != p->n) {
            km_errf_(why, whylen, "contact block is malformed");
            return 0;
        }
        return 1;
    }
    case B_END:
        if (p->n) {
            km_errf_(why, whylen, "end block with a payload");
            return 0;
        }
        return 1;
    default:
        return 1;
    }
}

/* After damage at `from`: the offset of the next block that reads whole
 * and consistent, or -1 if none is left. Candidates are found by their
 * magic; the search reads a bounded number of bytes in all, so that a file
 * of crafted magics cannot make it quadratic. The stream is left at the
 * returned offset. */
static off_t resync(block_reader *br, off_t from, uint32_t cells)
{
    static const size_t CHUNK = 1 << 16;
    unsigned char *buf = malloc(CHUNK + 3);
    if (!buf)
        return -1;
    off_t pos = from, found = -1;
    while (found < 0 && pos + HDR + 4 <= br->size && br->resync_budget > 0) {
        if (fseeko(br->fp, pos, SEEK_SET) != 0)
            break;
        size_t got = fread(buf, 1, CHUNK + 3, br->fp);
        if (got < 4)
            break;
        br->resync_budget -= got < br->resync_budget ? got : br->resync_budget;
        const unsigned char *m = memmem(buf, got, MAGIC, 4);
        if (!m) {
            pos += (off_t)(got - 3);
            continue;
        }
        off_t cand = pos + (off_t)(m - buf);
        char why[128];
        br->off = cand;
        if (fseeko(br->fp, cand, SEEK_SET) == 0 && next_block(br, why, sizeof why) == 1 &&
            block_consistent(br, cells, why, sizeof why))
            found = cand;
        br->resync_budget -= br->raw.n < br->resync_budget ? br->raw.n : br->resync_budget;
        pos = cand + 1;
    }
    free(buf);
    br->off = found >= 0 ? found : br->size;
    fseeko(br->fp, br->off, SEEK_SET);
    return found;
}

static int parse_u16(const char *v, unsigned long lo, unsigned long hi, uint16_t *out)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi || v[0] == '-')
        return -1;
    *out = (uint16_t)x;
    return 0;
}

static int parse_num(const char *v, double *out)
{
    const char *p = v;
    return km_parse_double_(&p, out) || *p ? -1 : 0;
}

static int parse_header(km_record_meta *m, const bytes *p, char *why, size_t whylen)
{
    memset(m, 0, sizeof *m);
    char *text = malloc(p->n + 1);
    if (!text)
        return KM_ENOMEM;
    memcpy(text, p->p, p->n);
    text[p->n] = 0;
    int format_ok = 0, bad = 0;
    double pitch = 0, rate = 0;
    char badkey[32] = "";
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && !bad;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = 0;
        const char *k = line, *v = eq + 1;
#define STR(name, field) else if (!strcmp(k, name)) snprintf(m->field, sizeof m->field, "%s", v)
        if (!strcmp(k, "format"))
            format_ok = !strcmp(v, "knotmat-kmr");
        else if (!strcmp(k, "version") && atoi(v) > 2)
            format_ok = -1; /* a newer format than this reader knows */
        else if (!strcmp(k, "rows"))
            bad = parse_u16(v, 1, KM_FRAME_MAX_DIM, &m->rows);
        else if (!strcmp(k, "cols"))
            bad = parse_u16(v, 1, KM_FRAME_MAX_DIM, &m->cols);
        else if (!strcmp(k, "pitch_mm"))
            bad = parse_num(v, &pitch);
        else if (!strcmp(k, "rate_hz"))
            bad = parse_num(v, &rate);
        else if (!strcmp(k, "mono_base_ns"))
            m->mono_base_ns = atoll(v);
        STR("units", units);
        STR("device_kind", device_kind);
        STR("vid_pid", vid_pid);
        STR("serial", serial);
        STR("calibration", calibration);
        STR("subject", subject);
        STR("session", session);
        STR("operator", operator_name);
        STR("notes", notes);
        STR("start_utc", start_utc);
        STR("settings", settings);
        STR("cue_scheme", cue_scheme);
        STR("software", software);
#undef STR
        if (bad)
            snprintf(badkey, sizeof badkey, "%s", k);
    }
    free(text);
    if (bad) {
        km_errf_(why, whylen, "header: bad value for '%s'", badkey);
        return KM_EFORMAT;
    }
    if (format_ok < 0) {
        km_errf_(why, whylen, "header: a newer .kmr version than this knotmat reads (%s)",
                 KM_VERSION_STRING);
        return KM_EUNSUPPORTED;
    }
    if (!format_ok || !m->rows || !m->cols) {
        km_errf_(why, whylen, "header is not a knotmat recording's (format, rows, cols)");
        return KM_EFORMAT;
    }
    if (km_check_geometry_(m->rows, m->cols, pitch, why, whylen) ||
        km_check_rate_(rate, why, whylen))
        return KM_EFORMAT;
    m->pitch_mm = (float)pitch;
    m->rate_hz = rate;
    return KM_OK;
}

/* ---- reader ------------------------------------------------------------- */

struct km_kmr_reader {
    block_reader br;
    km_record_meta meta;
    uint32_t cells;
    uint32_t left;      /* frames left in the current block */
    size_t pos;         /* read position in br.payload */
    int finished;       /* end block, a second header, or damage to the end */
    km_frame_checker_ check;
    km_kmr_damage damage;
    bytes contacts;     /* the contact block before the current frame block */
    size_t cpos;
    uint32_t cleft;
    float *prev_kpa;
    uint16_t *prev_raw;
    uint8_t *prev_flags;
};

double km_kmr_progress(const km_kmr_reader *r)
{
    return r->br.size > 0 ? (double)r->br.off / (double)r->br.size : -1;
}

static void budget_init(block_reader *br)
{
    br->resync_budget = 2 * (uint64_t)(br->size > 0 ? br->size : 0) + (4ull << 20);
}

int km_kmr_open(const char *path, km_kmr_reader **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        km_errf_(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? KM_ENOENT : KM_EIO;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        km_errf_(err, errlen, "%s: not a regular file (a recording must be one)", path);
        fclose(fp);
        return KM_EFORMAT;
    }
    km_kmr_reader *r = calloc(1, sizeof *r);
    if (!r) {
        fclose(fp);
        return KM_ENOMEM;
    }
    r->br.fp = fp;
    r->br.size = st.st_size;
    budget_init(&r->br);
    snprintf(r->br.path, sizeof r->br.path, "%s", path);
    char why[256];
    int got = next_block(&r->br, why, sizeof why);
    int rc = KM_OK;
    if (got != 1 || r->br.type != B_HEADER) {
        km_errf_(err, errlen, "%s: offset 0: not a readable .kmr header (%s)", path,
                 got == 1 ? "first block is not the header" : got == 0 ? "empty file" : why);
        rc = KM_EFORMAT;
    } else if ((rc = parse_header(&r->meta, &r->br.payload, why, sizeof why))) {
        km_errf_(err, errlen, "%s: %s", path, why);
    }
    if (!rc) {
        r->br.off = (off_t)r->br.raw.n;
        r->cells = (uint32_t)r->meta.rows * r->meta.cols;
        r->damage.first_offset = -1;
        r->prev_kpa = calloc(r->cells, sizeof(float));
        r->prev_raw = calloc(r->cells, sizeof(uint16_t));
        r->prev_flags = calloc(r->cells, 1);
        if (!r->prev_kpa || !r->prev_raw || !r->prev_flags)
            rc = KM_ENOMEM;
    }
    if (rc) {
        km_kmr_close(r);
        return rc;
    }
    *out = r;
    return KM_OK;
}

void km_kmr_close(km_kmr_reader *r)
{
    if (!r)
        return;
    fclose(r->br.fp);
    free(r->br.raw.p);
    free(r->br.payload.p);
    free(r->contacts.p);
    free(r->prev_kpa);
    free(r->prev_raw);
    free(r->prev_flags);
    free(r);
}

const km_record_meta *km_kmr_meta(const km_kmr_reader *r) { return &r->meta; }

void km_kmr_damage_get(const km_kmr_reader *r, km_kmr_damage *out) { *out = r->damage; }

/* Decode the events of one whole event block onto the list. */
static int take_events(const bytes *p, km_event **ev, size_t *n, size_t *cap)
{
    uint32_t k = get32(p->p);
    if (*n + k > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *n + k)
            nc *= 2;
        km_event *ne = realloc(*ev, nc * sizeof *ne);
        if (!ne)
            return KM_ENOMEM;
        *ev = ne;
        *cap = nc;
    }
    for (uint32_t i = 0; i < k; i++) {
        const unsigned char *q = p->p + 4 + (size_t)i * EVENT_BYTES;
        double v[7];
        memcpy(v, q + 4, sizeof v);
        uint32_t type = get32(q);
        if (type < KM_EV_HOTSPOT || type >= KM_EV_TYPE_COUNT || !isfinite(v[0]))
            continue; /* a type this knotmat does not know: not shown as another */
        (*ev)[(*n)++] = (km_event){.type = (enum km_event_type)type, .t_s = v[0], .x_mm = v[1],
                                   .y_mm = v[2], .force_n = v[3], .confidence = v[4],
                                   .value = v[5], .detected_t_s = v[6], .track = get32(q + 60)};
    }
    return KM_OK;
}

int km_kmr_read_events(const char *path, km_event **out, size_t *nout, km_kmr_damage *dmg,
                       char *err, size_t errlen)
{
    *out = NULL;
    *nout = 0;
    if (dmg)
        *dmg = (km_kmr_damage){.first_offset = -1};
    km_kmr_reader *r;
    int rc = km_kmr_open(path, &r, err, errlen);
    if (rc)
        return rc;
    block_reader *br = &r->br;
    /* every block is read and its CRC checked (a damaged size field must not
     * step over the events after it); only event payloads are decompressed */
    const unsigned skip = (1u << B_FRAMES) | (1u << B_CONTACTS) | (1u << B_GAP);
    km_event *ev = NULL;
    size_t n = 0, cap = 0;
    fseeko(br->fp, br->off, SEEK_SET);
    while (!rc) {
        char why[256] = "";
        off_t at = br->off;
        br->skip_payload = skip;
        int got = next_block(br, why, sizeof why);
        br->skip_payload = 0;
        if (got > 0 && br->type == B_EVENTS && !block_consistent(br, r->cells, why, sizeof why))
            got = -1;
        if (got == 0)
            break;
        if (got < 0) {
            off_t next = resync(br, at + 1, r->cells); /* payloads wanted: it checks them */
            r->damage.spans++;
            r->damage.bytes += (uint64_t)((next >= 0 ? next : br->size) - at);
            if (r->damage.first_offset < 0)
                r->damage.first_offset = at;
            if (next < 0)
                break;
            continue; /* the stream is at the next whole block */
        }
        if (br->type == B_END || br->type == B_HEADER)
            break; /* the end, or a second recording's header */
        br->off = at + (off_t)br->raw.n;
        if (br->type == B_EVENTS)
            rc = take_events(&br->payload, &ev, &n, &cap);
    }
    if (dmg)
        *dmg = r->damage;
    km_kmr_close(r);
    if (rc) {
        free(ev);
        km_errf_(err, errlen, "%s: out of memory for its events", path);
        return rc;
    }
    *out = ev;
    *nout = n;
    return KM_OK;
}

/* Damage at `at`: skip to the next whole block, count it, say where. */
static int reader_damaged(km_kmr_reader *r, off_t at, const char *why, char *err, size_t errlen)
{
    off_t next = resync(&r->br, at + 1, r->cells);
    off_t to = next >= 0 ? next : r->br.size;
    r->damage.spans++;
    r->damage.bytes += (uint64_t)(to - at);
    if (r->damage.first_offset < 0)
        r->damage.first_offset = at;
    r->left = 0;
    if (next < 0 && !strncmp(why, "torn", 4)) {
        r->finished = 1;
        km_errf_(err, errlen, "%s: the last %lld bytes (from offset %lld) are a torn block: the "
                 "recording was interrupted ('knotmat recover' closes it)", r->br.path,
                 (long long)(to - at), (long long)at);
    } else if (next < 0) {
        r->finished = 1;
        km_errf_(err, errlen, "%s: bytes %lld-%lld (%lld, to the end of the file) are damaged "
                 "(%s): not read", r->br.path, (long long)at, (long long)to, (long long)(to - at),
                 why);
    } else {
        km_errf_(err, errlen, "%s: bytes %lld-%lld (%lld) are damaged (%s): skipped, reading "
                 "goes on after them", r->br.path, (long long)at, (long long)to,
                 (long long)(to - at), why);
    }
    return KM_EFORMAT;
}

static int reader_next_block(km_kmr_reader *r, char *err, size_t errlen)
{
    while (!r->left) {
        if (r->finished)
            return KM_EEOF;
        char why[256];
        off_t at = r->br.off;
        int got = next_block(&r->br, why, sizeof why);
        if (got == 0)
            return KM_EEOF;
        if (got > 0 && !block_consistent(&r->br, r->cells, why, sizeof why))
            got = -1;
        if (got < 0)
            return reader_damaged(r, at, why, err, errlen);
        r->br.off += (off_t)r->br.raw.n;
        if (r->br.type == B_END) {
            r->finished = 1;
            return KM_EEOF;
        }
        if (r->br.type == B_HEADER) {
            /* two recordings glued together: the second is not this one's */
            r->finished = 1;
            r->damage.spans++;
            r->damage.bytes += (uint64_t)(r->br.size - at);
            if (r->damage.first_offset < 0)
                r->damage.first_offset = at;
            km_errf_(err, errlen, "%s: offset %lld: a second recording's header (two files "
                     "joined?): it and the %lld bytes after it are not read", r->br.path,
                     (long long)at, (long long)(r->br.size - at));
            return KM_EFORMAT;
        }
        if (r->br.type == B_CONTACTS) {
            r->contacts.n = 0;
            if (reserve(&r->contacts, r->br.payload.n))
                return KM_ENOMEM;
            memcpy(r->contacts.p, r->br.payload.p, r->br.payload.n);
            r->contacts.n = r->br.payload.n;
            r->cleft = get32(r->contacts.p);
            r->cpos = 4;
            continue;
        }
        if (r->br.type != B_FRAMES)
            continue;
        r->left = get32(r->br.payload.p);
        r->pos = 4;
        memset(r->prev_kpa, 0, r->cells * sizeof(float));
        memset(r->prev_raw, 0, r->cells * sizeof(uint16_t));
        memset(r->prev_flags, 0, r->cells);
    }
    return KM_OK;
}

int km_kmr_next_frame(km_kmr_reader *r, km_frame *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    int rc = reader_next_block(r, err, errlen);
    if (rc)
        return rc;
    rc = km_frame_reset(out, r->meta.rows, r->meta.cols, r->meta.pitch_mm);
    if (rc) {
        km_errf_(err, errlen, "%s: a %ux%u frame does not fit the %u-cell buffer", r->br.path,
                 r->meta.rows, r->meta.cols, out->capacity_cells_);
        return rc;
    }
    const unsigned char *p = r->br.payload.p + r->pos;
    out->seq = get64(p);
    out->device_ns = (int64_t)get64(p + 8);
    out->host_ns = (int64_t)get64(p + 16);
    out->flags = get32(p + 24);
    out->n_saturated = get32(p + 28);
    out->n_dead = get32(p + 32);
    p += FRAME_HDR;
    for (uint32_t i = 0; i < r->cells; i++) {
        uint32_t a = get32(p + 4 * (size_t)i), b;
        memcpy(&b, &r->prev_kpa[i], 4);
        a ^= b;
        memcpy(&out->kpa[i], &a, 4);
    }
    p += 4 * (size_t)r->cells;
    for (uint32_t i = 0; i < r->cells; i++) {
        uint16_t d;
        memcpy(&d, p + 2 * (size_t)i, 2);
        out->raw[i] = (uint16_t)(r->prev_raw[i] + d);
    }
    p += 2 * (size_t)r->cells;
    for (uint32_t i = 0; i < r->cells; i++)
        out->cell_flags[i] = p[i] ^ r->prev_flags[i];
    memcpy(r->prev_kpa, out->kpa, r->cells * sizeof(float));
    memcpy(r->prev_raw, out->raw, r->cells * sizeof(uint16_t));
    memcpy(r->prev_flags, out->cell_flags, r->cells);
    r->pos += FRAME_HDR + (size_t)r->cells * 7;
    r->left--;
    /* contacts of this frame, from the contact block read before */
    out->n_contacts = 0;
    while (r->cleft && get64(r->contacts.p + r->cpos) < out->seq) { /* not ours: skip */
        r->cpos += 12 + (size_t)get32(r->contacts.p + r->cpos + 8) * CONTACT_BYTES;
        r->cleft--;
    }
    if (r->cleft && get64(r->contacts.p + r->cpos) == out->seq) {
        uint32_t nc = get32(r->contacts.p + r->cpos + 8);
        const unsigned char *c = r->contacts.p + r->cpos + 12;
        for (uint32_t i = 0; i < nc; i++, c += CONTACT_BYTES) {
            km_contact *k = &out->contacts[i];
            float v[4];
            memcpy(v, c + 4, sizeof v);
            *k = (km_contact){.id = c[0], .state = c[1], .x_mm = v[0], .y_mm = v[1],
                              .force_n = v[2], .area_mm2 = v[3]};
        }
        out->n_contacts = nc;
        r->cpos += 12 + (size_t)nc * CONTACT_BYTES;
        r->cleft--;
    }
    if (!r->left)
        r->cleft = 0; /* a contact block serves one frame block */
    km_frame_count_flags(out);
    /* the same bounds every reader applies (time, values) */
    char why[200];
    if (km_frame_check_(&r->check, out, why, sizeof why)) {
        km_errf_(err, errlen, "%s: frame %llu: %s: skipped", r->br.path,
                 (unsigned long long)out->seq, why);
        return KM_EFORMAT;
    }
    return KM_OK;
}

/* ---- check and recover -------------------------------------------------- */

typedef struct {
    const km_kmr_scan_options *o;
    km_kmr_report *rep;
    int out_fd;             /* recover: the new file, or -1 */
    int io_error;
    uint64_t expect_seq;    /* the next frame's seq, as far as the file says */
    int have_seq, damaged_since; /* damage since the last frame block */
    bytes gap;
} scan_state;

static void note_damage(scan_state *s, off_t from, off_t to, const char *why)
{
    km_kmr_report *rep = s->rep;
    rep->damaged_spans++;
    rep->damaged_bytes += (uint64_t)(to - from);
    if (rep->first_bad_offset < 0) {
        rep->first_bad_offset = from;
        snprintf(rep->problem, sizeof rep->problem, "offset %lld: %s", (long long)from, why);
    }
    s->damaged_since = 1;
    if (s->o && s->o->on_damage)
        s->o->on_damage(s->o->user, from, to, why);
}

static void copy_out(scan_state *s, const void *p, size_t n)
{
    if (s->out_fd >= 0 && !s->io_error && write_all(s->out_fd, p, n))
        s->io_error = errno ? errno : EIO;
}

/* A block after damage that starts beyond the next expected frame (a frame
 * block's first frame, a gap's first missing one): the frames in between
 * were in the damaged bytes. Say so in the recovered file with a gap block. */
static void fill_damaged_gap(scan_state *s, uint64_t next_seq)
{
    if (!(s->have_seq && s->damaged_since && next_seq > s->expect_seq))
        return;
    uint64_t missing = next_seq - s->expect_seq;
    s->rep->frames_lost += missing;
    unsigned char g[GAP_BYTES];
    put64(g, s->expect_seq);
    put64(g + 8, missing);
    put32(g + 16, KM_GAP_DAMAGED);
    size_t len = assemble(&s->gap, B_GAP, s->expect_seq, g, sizeof g, 0);
    if (len)
        copy_out(s, s->gap.p, len);
    s->expect_seq = next_seq;
}

static void account_frames(scan_state *s, const block_reader *br, uint32_t cells)
{
    uint32_t n = get32(br->payload.p);
    size_t per = FRAME_HDR + (size_t)cells * 7;
    uint64_t last = get64(br->payload.p + 4 + (size_t)(n - 1) * per);
    fill_damaged_gap(s, br->serial);
    s->expect_seq = last + 1;
    s->have_seq = 1;
    s->damaged_since = 0;
    s->rep->frame_blocks++;
    s->rep->frames += n;
}

/* Open the input (a regular file) and, to recover, the output. */
static int scan_open(const char *path, const km_kmr_scan_options *o, km_kmr_report *rep,
                     block_reader *br, km_outfile **of, char *err, size_t errlen)
{
    br->fp = fopen(path, "rb");
    if (!br->fp) {
        int e = errno;
        snprintf(rep->problem, sizeof rep->problem, "%s", strerror(e));
        km_errf_(err, errlen, "%s: %s", path, rep->problem);
        return e == ENOENT ? KM_ENOENT : KM_EIO;
    }
    struct stat st;
    if (fstat(fileno(br->fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(rep->problem, sizeof rep->problem, "not a regular file");
        km_errf_(err, errlen, "%s: not a regular file (a recording must be one)", path);
        fclose(br->fp);
        return KM_EFORMAT;
    }
    rep->bytes = (uint64_t)st.st_size;
    br->size = st.st_size;
    budget_init(br);
    snprintf(br->path, sizeof br->path, "%s", path);
    if (o && o->recover_to) {
        const char *inputs[] = {path, NULL};
        int rc = km_outfile_open(o->recover_to, o->force ? KM_OUT_FORCE : 0, inputs, of, err,
                                 errlen);
        if (rc) {
            fclose(br->fp);
            return rc;
        }
    }
    return KM_OK;
}

/* What a whole block other than the header adds to the report. */
static void account_block(scan_state *s, const block_reader *br, uint32_t cells)
{
    km_kmr_report *rep = s->rep;
    if (br->type == B_FRAMES) {
        account_frames(s, br, cells);
    } else if (br->type == B_EVENTS) {
        rep->events += get32(br->payload.p);
    } else if (br->type == B_GAP) {
        rep->gaps++;
        uint64_t first = get64(br->payload.p), count = get64(br->payload.p + 8);
        rep->gap_frames += count;
        fill_damaged_gap(s, first);
        s->damaged_since = 0;
        if (!s->have_seq || first + count > s->expect_seq) {
            s->expect_seq = first + count;
            s->have_seq = 1;
        }
    } else if (br->type == B_END) {
        rep->ended = true;
    }
}

/* The recovered copy: closed with an end block and committed, or removed. */
static int finish_recovery(scan_state *s, km_outfile *of, int header_ok, int rc,
                           const char *to, char *err, size_t errlen)
{
    if (header_ok) {
        /* close it properly: an end block */
        size_t len = assemble(&s->gap, B_END, 0, NULL, 0, 0);
        if (len)
            copy_out(s, s->gap.p, len);
        else
            s->io_error = ENOMEM;
    }
    if (!header_ok) {
        km_outfile_abort(of);
    } else if (s->io_error) {
        km_errf_(err, errlen, "%s: write failed: %s", to, strerror(s->io_error));
        km_outfile_abort(of);
        rc = KM_EIO;
    } else if (km_outfile_commit(of, err, errlen)) {
        rc = KM_EIO;
    } else if (rc == KM_EFORMAT) {
        rc = KM_OK; /* recovered: the damage is in the report */
    }
    return rc;
}

int km_kmr_scan(const char *path, const km_kmr_scan_options *o, km_kmr_report *rep, char *err,
                size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    rep->first_bad_offset = -1;
    scan_state s = {.o = o, .rep = rep, .out_fd = -1};
    block_reader br = {0};
    km_outfile *of = NULL;
    int orc = scan_open(path, o, rep, &br, &of, err, errlen);
    if (orc)
        return orc;
    s.out_fd = of ? km_outfile_fd(of) : -1;
    uint32_t cells = 0;
    int header_ok = 0;
    for (;;) {
        char why[200];
        off_t at = br.off;
        if (o && o->progress && rep->blocks % 16 == 0 && br.size > 0)
            o->progress(o->user, (double)at / (double)br.size, rep->frames);
        int got = next_block(&br, why, sizeof why);
        if (got == 0)
            break;
        if (got > 0 && !header_ok && br.type != B_HEADER) {
            got = -1;
            snprintf(why, sizeof why, "the first block is not the header");
        }
        if (got > 0 && !block_consistent(&br, cells, why, sizeof why))
            got = -1;
        if (got > 0 && header_ok && (br.type == B_HEADER || rep->ended)) {
            /* a second recording (files joined) or data after the end: not this
             * recording's; nothing after it is taken */
            note_damage(&s, at, br.size, br.type == B_HEADER
                                             ? "a second recording's header (two files joined?)"
                                             : "data after the end block");
            break;
        }
        if (got < 0 && !header_ok) {
            note_damage(&s, at, br.size, why);
            break; /* without the header nothing can be read */
        }
        if (got < 0) {
            off_t next = resync(&br, at + 1, cells);
            note_damage(&s, at, next >= 0 ? next : br.size, why);
            if (next < 0) {
                /* the last block cut short: how a crash ends a recording */
                rep->torn_tail = !strncmp(why, "torn", 4);
                break;
            }
            continue;
        }
        if (br.type == B_HEADER) {
            km_record_meta m;
            if (parse_header(&m, &br.payload, why, sizeof why)) {
                note_damage(&s, at, br.size, why);
                break;
            }
            cells = (uint32_t)m.rows * m.cols;
            header_ok = 1;
        } else {
            account_block(&s, &br, cells);
        }
        rep->blocks++;
        br.off += (off_t)br.raw.n;
        rep->valid_bytes += br.raw.n;
        if (br.type != B_END)
            copy_out(&s, br.raw.p, br.raw.n);
    }
    int rc = KM_OK;
    if (!header_ok) {
        rc = KM_EFORMAT;
        if (!rep->bytes)
            snprintf(rep->problem, sizeof rep->problem, "an empty file: not a recording");
        km_errf_(err, errlen, "%s: no readable header: %s", path, rep->problem);
    } else if (rep->damaged_spans) {
        rc = KM_EFORMAT;
    } else if (!rep->ended) {
        snprintf(rep->problem, sizeof rep->problem,
                 "no end block: the recording was interrupted (every block is whole)");
    }
    fclose(br.fp);
    free(br.raw.p);
    free(br.payload.p);
    if (of)
        rc = finish_recovery(&s, of, header_ok, rc, o->recover_to, err, errlen);
    free(s.gap.p);
    return rc;
}

int km_kmr_check(const char *path, km_kmr_report *rep) { return km_kmr_scan(path, NULL, rep, NULL, 0); }

int km_kmr_recover(const char *in, const char *out, bool force, km_kmr_report *rep, char *err,
                   size_t errlen)
{
    km_kmr_scan_options o = {.recover_to = out, .force = force};
    return km_kmr_scan(in, &o, rep, err, errlen);
}

/* ---- as one of the formats of km_frame_reader (reader.c) ---------------- */

/* The magic alone: a recording whose first block is damaged is still one,
 * and km_kmr_open says what is wrong with it. */
static int kmr_sniff(const char *head, size_t n)
{
    return n >= 4 && !memcmp(head, MAGIC, 4);
}

static int kmr_open(km_frame_reader *r, char *err, size_t errlen)
{
    int rc = km_kmr_open(r->path, &r->kmr, err, errlen);
    if (rc)
        return rc;
    fclose(r->lr.fp); /* the .kmr reader has its own */
    r->lr.fp = NULL;
    const km_record_meta *m = km_kmr_meta(r->kmr);
    r->meta.rows = m->rows;
    r->meta.cols = m->cols;
    r->meta.pitch_mm = m->pitch_mm;
    r->meta.rate_hz = m->rate_hz;
    snprintf(r->meta.units, sizeof r->meta.units, "%s", m->units);
    r->meta.kpa_per_unit = 1.0; /* frames are stored in kPa */
    r->meta.calibrated = 1;
    return KM_OK;
}

static int kmr_next(km_frame_reader *r, km_frame *f, char *err, size_t errlen)
{
    return km_kmr_next_frame(r->kmr, f, err, errlen);
}

static void kmr_close(km_frame_reader *r)
{
    km_kmr_close(r->kmr);
    r->kmr = NULL;
}

const km_format_ops_ km_format_kmr_ = {
    .format = KM_FORMAT_KMR,
    .name = "kmr",
    .sniff = kmr_sniff,
    .open = kmr_open,
    .next = kmr_next,
    .close = kmr_close,
};
