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
 * every block decodes on its own. docs/file-format.md has the full spec.
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

#include "internal.h"
#include "knotmat/record.h"

#define MAGIC "KMRB"
#define HDR 24
#define MAX_PAYLOAD (64u << 20)
enum { B_HEADER = 1, B_FRAMES = 2, B_EVENTS = 3, B_GAP = 4, B_END = 5 };
#define FRAME_HDR 36

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

/* ---- writer ------------------------------------------------------------- */

struct km_recorder {
    int fd;
    char path[1024];
    km_record_meta meta;
    uint32_t cells;
    double sync_s;
    bytes frames;      /* encoded frames of the open block */
    uint32_t nframes;
    uint64_t first_seq;
    int64_t first_ns;
    bytes events;
    uint32_t nevents;
    bytes block;       /* assembled block */
    float *prev_kpa;
    uint16_t *prev_raw;
    uint8_t *prev_flags;
    off_t good;        /* end of the last complete block */
    uint64_t written;
    int error;         /* first errno seen */
};

static int write_block(km_recorder *r, int type, uint64_t serial, const void *payload, size_t n,
                       int compress)
{
    if (r->error)
        return KM_EIO;
    size_t bound = compress ? ZSTD_compressBound(n) : n;
    r->block.n = 0;
    if (reserve(&r->block, HDR + bound + 4))
        return KM_ENOMEM;
    unsigned char *b = r->block.p;
    size_t stored = n;
    if (compress) {
        stored = ZSTD_compress(b + HDR, bound, payload, n, 3);
        if (ZSTD_isError(stored))
            return KM_EIO;
    } else if (n) {
        memcpy(b + HDR, payload, n);
    }
    memcpy(b, MAGIC, 4);
    b[4] = (unsigned char)type;
    b[5] = compress ? 1 : 0;
    b[6] = b[7] = 0;
    put32(b + 8, (uint32_t)stored);
    put32(b + 12, (uint32_t)n);
    put64(b + 16, serial);
    put32(b + HDR + stored, crc32c(b, HDR + stored));
    size_t total = HDR + stored + 4, done = 0;
    while (done < total) {
        ssize_t w = write(r->fd, b + done, total - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r->error = w < 0 ? errno : ENOSPC;
            /* keep the file valid: cut the partial block off again */
            if (ftruncate(r->fd, r->good) == 0)
                lseek(r->fd, r->good, SEEK_SET);
            return KM_EIO;
        }
        done += (size_t)w;
    }
    r->good += (off_t)total;
    return KM_OK;
}

static void meta_line(bytes *b, const char *key, const char *val)
{
    char line[1200];
    int n = snprintf(line, sizeof line, "%s=%s\n", key, val);
    for (int i = (int)strlen(key) + 1; i < n - 1; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    if (n > 0 && !reserve(b, (size_t)n)) {
        memcpy(b->p + b->n, line, (size_t)n);
        b->n += (size_t)n;
    }
}

int km_recorder_open(const char *path, const km_record_meta *meta, bool force,
                     double sync_interval_s, km_recorder **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!meta->rows || !meta->cols || !(meta->pitch_mm > 0)) {
        km_errf_(err, errlen, "%s: recording needs the mat's geometry", path);
        return KM_EINVAL;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), 0600);
    if (fd < 0) {
        int e = errno;
        km_errf_(err, errlen, "%s: %s%s", path, strerror(e),
                 e == EEXIST ? " (a recording is never overwritten without --force)" : "");
        return e == EEXIST ? KM_EBUSY : e == EACCES ? KM_EPERM : KM_EIO;
    }
    if (force)
        fchmod(fd, 0600);
    km_recorder *r = calloc(1, sizeof *r);
    if (!r) {
        close(fd);
        return KM_ENOMEM;
    }
    r->fd = fd;
    snprintf(r->path, sizeof r->path, "%s", path);
    r->meta = *meta;
    r->cells = (uint32_t)meta->rows * meta->cols;
    r->sync_s = sync_interval_s > 0 ? sync_interval_s : 1.0;
    r->prev_kpa = calloc(r->cells, sizeof(float));
    r->prev_raw = calloc(r->cells, sizeof(uint16_t));
    r->prev_flags = calloc(r->cells, 1);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->meta.mono_base_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(r->meta.start_utc, sizeof r->meta.start_utc, "%Y-%m-%dT%H:%M:%SZ", &tm);
    bytes h = {0};
    char num[64];
    meta_line(&h, "format", "knotmat-kmr");
    meta_line(&h, "version", "1");
    meta_line(&h, "software", "knotmat " KM_VERSION_STRING);
    snprintf(num, sizeof num, "%u", meta->rows);
    meta_line(&h, "rows", num);
    snprintf(num, sizeof num, "%u", meta->cols);
    meta_line(&h, "cols", num);
    snprintf(num, sizeof num, "%.6g", (double)meta->pitch_mm);
    meta_line(&h, "pitch_mm", num);
    snprintf(num, sizeof num, "%.6g", meta->rate_hz);
    meta_line(&h, "rate_hz", num);
    meta_line(&h, "units", meta->units[0] ? meta->units : "kPa");
    meta_line(&h, "device_kind", meta->device_kind);
    meta_line(&h, "vid_pid", meta->vid_pid);
    meta_line(&h, "serial", meta->serial);
    meta_line(&h, "calibration", meta->calibration);
    meta_line(&h, "subject", meta->subject);
    meta_line(&h, "session", meta->session);
    meta_line(&h, "operator", meta->operator_name);
    meta_line(&h, "notes", meta->notes);
    meta_line(&h, "start_utc", r->meta.start_utc);
    snprintf(num, sizeof num, "%lld", (long long)r->meta.mono_base_ns);
    meta_line(&h, "mono_base_ns", num);
    int rc = (!r->prev_kpa || !r->prev_raw || !r->prev_flags || !h.p) ? KM_ENOMEM
             : write_block(r, B_HEADER, 0, h.p, h.n, 0);
    free(h.p);
    if (!rc && fdatasync(fd) != 0)
        rc = KM_EIO;
    if (rc) {
        km_errf_(err, errlen, "%s: cannot write the header: %s", path,
                 r->error ? strerror(r->error) : km_strerror(rc));
        close(fd);
        unlink(path);
        free(r->prev_kpa);
        free(r->prev_raw);
        free(r->prev_flags);
        free(r->block.p);
        free(r);
        return rc;
    }
    *out = r;
    return KM_OK;
}

int km_recorder_flush(km_recorder *r)
{
    int rc = KM_OK;
    if (r->nframes) {
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
    return rc ? rc : (r->error ? KM_EIO : KM_OK);
}

int km_recorder_add_frame(km_recorder *r, const km_frame *f)
{
    if (r->error)
        return KM_EIO;
    if ((uint32_t)f->rows * f->cols != r->cells || f->rows != r->meta.rows)
        return KM_EINVAL;
    if (r->nframes && (f->device_ns - r->first_ns) >= (int64_t)(r->sync_s * 1e9)) {
        int rc = km_recorder_flush(r);
        if (rc)
            return rc;
    }
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
    size_t need = FRAME_HDR + (size_t)r->cells * 7;
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
    return KM_OK;
}

int km_recorder_add_gap(km_recorder *r, uint64_t first_seq, uint64_t count, int reason)
{
    /* frames before the gap first, so the file stays in time order */
    int rc = km_recorder_flush(r);
    if (rc)
        return rc;
    unsigned char g[20];
    put64(g, first_seq);
    put64(g + 8, count);
    put32(g + 16, (uint32_t)reason);
    return write_block(r, B_GAP, first_seq, g, sizeof g, 0);
}

int km_recorder_add_event(km_recorder *r, const km_event *e)
{
    if (r->error)
        return KM_EIO;
    if (!r->nevents)
        r->events.n = 4;
    if (reserve(&r->events, 64 + 4))
        return KM_ENOMEM;
    unsigned char *p = r->events.p + r->events.n;
    put32(p, (uint32_t)e->type);
    double v[7] = {e->t_s, e->x_mm, e->y_mm, e->force_n, e->confidence, e->value, e->detected_t_s};
    memcpy(p + 4, v, sizeof v);
    put32(p + 60, e->track);
    r->events.n += 64;
    r->nevents++;
    return KM_OK;
}

uint64_t km_recorder_frames_written(const km_recorder *r) { return r->written; }

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
    if (close(r->fd) != 0 && !rc) {
        r->error = errno;
        rc = KM_EIO;
    }
    if (rc)
        km_errf_(err, errlen, "%s: %s; the file holds the %llu frames written before it",
                 r->path, r->error ? strerror(r->error) : km_strerror(rc),
                 (unsigned long long)r->written);
    free(r->frames.p);
    free(r->events.p);
    free(r->block.p);
    free(r->prev_kpa);
    free(r->prev_raw);
    free(r->prev_flags);
    free(r);
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
} block_reader;

/* Read and verify the next block. 1 ok, 0 clean EOF, -1 damaged (why). */
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
    /* sizes are bounded here and covered by the CRC, checked before the
     * decompressed size is allocated (no ratio limit: a second of a mostly
     * idle 185 x 105 mat compresses more than 500 to 1) */
    if (stored > MAX_PAYLOAD || rawn > MAX_PAYLOAD || h[4] < B_HEADER || h[4] > B_END) {
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
    br->payload.n = 0;
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
    br->type = h[4];
    br->serial = get64(h + 16);
    return 1;
}

static int parse_header(km_record_meta *m, const bytes *p, char *why, size_t whylen)
{
    memset(m, 0, sizeof *m);
    char *text = malloc(p->n + 1);
    if (!text)
        return KM_ENOMEM;
    memcpy(text, p->p, p->n);
    text[p->n] = 0;
    int format_ok = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = 0;
        const char *k = line, *v = eq + 1;
#define STR(name, field) else if (!strcmp(k, name)) snprintf(m->field, sizeof m->field, "%s", v)
        if (!strcmp(k, "format"))
            format_ok = !strcmp(v, "knotmat-kmr");
        else if (!strcmp(k, "rows"))
            m->rows = (uint16_t)atoi(v);
        else if (!strcmp(k, "cols"))
            m->cols = (uint16_t)atoi(v);
        else if (!strcmp(k, "pitch_mm"))
            m->pitch_mm = (float)atof(v);
        else if (!strcmp(k, "rate_hz"))
            m->rate_hz = atof(v);
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
#undef STR
    }
    free(text);
    if (!format_ok || !m->rows || !m->cols || m->rows > KM_FRAME_MAX_DIM ||
        m->cols > KM_FRAME_MAX_DIM || !(m->pitch_mm > 0)) {
        km_errf_(why, whylen, "header is not a knotmat recording's (format, rows, cols, pitch)");
        return KM_EFORMAT;
    }
    return KM_OK;
}

/* ---- reader ------------------------------------------------------------- */

struct km_kmr_reader {
    block_reader br;
    km_record_meta meta;
    uint32_t cells;
    uint32_t left;      /* frames left in the current block */
    size_t pos;         /* read position in br.payload */
    float *prev_kpa;
    uint16_t *prev_raw;
    uint8_t *prev_flags;
};

double km_kmr_progress(const km_kmr_reader *r)
{
    return r->br.size > 0 ? (double)r->br.off / (double)r->br.size : -1;
}

int km_kmr_open(const char *path, km_kmr_reader **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        km_errf_(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? KM_ENOENT : KM_EIO;
    }
    km_kmr_reader *r = calloc(1, sizeof *r);
    if (!r) {
        fclose(fp);
        return KM_ENOMEM;
    }
    r->br.fp = fp;
    struct stat st;
    r->br.size = fstat(fileno(fp), &st) == 0 ? st.st_size : 0;
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
    free(r->prev_kpa);
    free(r->prev_raw);
    free(r->prev_flags);
    free(r);
}


const km_record_meta *km_kmr_meta(const km_kmr_reader *r) { return &r->meta; }

int km_kmr_next_frame(km_kmr_reader *r, km_frame *out, char *err, size_t errlen)
{
    while (!r->left) {
        char why[256];
        off_t at = r->br.off;
        int got = next_block(&r->br, why, sizeof why);
        if (got == 0)
            return KM_EEOF;
        if (got < 0) {
            km_errf_(err, errlen, "%s: offset %lld: %s", r->br.path, (long long)at, why);
            return KM_EFORMAT;
        }
        r->br.off += (off_t)r->br.raw.n;
        if (r->br.type == B_END)
            return KM_EEOF;
        if (r->br.type != B_FRAMES)
            continue;
        if (r->br.payload.n < 4) {
            km_errf_(err, errlen, "%s: offset %lld: empty frame block", r->br.path, (long long)at);
            return KM_EFORMAT;
        }
        uint32_t n = get32(r->br.payload.p);
        size_t per = FRAME_HDR + (size_t)r->cells * 7;
        if ((size_t)n * per + 4 != r->br.payload.n) {
            km_errf_(err, errlen, "%s: offset %lld: frame block of %u frames has %zu bytes",
                     r->br.path, (long long)at, n, r->br.payload.n);
            return KM_EFORMAT;
        }
        r->left = n;
        r->pos = 4;
        memset(r->prev_kpa, 0, r->cells * sizeof(float));
        memset(r->prev_raw, 0, r->cells * sizeof(uint16_t));
        memset(r->prev_flags, 0, r->cells);
    }
    int rc = km_frame_reset(out, r->meta.rows, r->meta.cols, r->meta.pitch_mm);
    if (rc)
        return rc;
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
    return KM_OK;
}

/* ---- check and recover -------------------------------------------------- */

/* Walk every block; with `out` open, copy each valid one there verbatim. */
typedef void (*scan_progress_fn)(void *user, double fraction, uint64_t frames);

static int scan_p(const char *path, km_kmr_report *rep, FILE *out, scan_progress_fn progress,
                  void *user);

static int scan(const char *path, km_kmr_report *rep, FILE *out)
{
    return scan_p(path, rep, out, NULL, NULL);
}

static int scan_p(const char *path, km_kmr_report *rep, FILE *out, scan_progress_fn progress,
                  void *user)
{
    memset(rep, 0, sizeof *rep);
    rep->first_bad_offset = -1;
    block_reader br = {0};
    br.fp = fopen(path, "rb");
    if (!br.fp) {
        snprintf(rep->problem, sizeof rep->problem, "%s", strerror(errno));
        return KM_ENOENT;
    }
    struct stat st;
    if (fstat(fileno(br.fp), &st) == 0) {
        rep->bytes = (uint64_t)st.st_size;
        br.size = st.st_size;
    }
    snprintf(br.path, sizeof br.path, "%s", path);
    int rc = KM_OK;
    uint32_t cells = 0;
    for (;;) {
        char why[200];
        off_t at = br.off;
        if (progress && rep->blocks % 16 == 0 && br.size > 0)
            progress(user, (double)at / (double)br.size, rep->frames);
        int got = next_block(&br, why, sizeof why);
        if (got == 0)
            break;
        if (got < 0 || (rep->blocks == 0 && br.type != B_HEADER) ||
            (rep->blocks > 0 && br.type == B_HEADER) || rep->ended) {
            rep->first_bad_offset = at;
            snprintf(rep->problem, sizeof rep->problem, "offset %lld: %s", (long long)at,
                     got < 0 ? why : rep->ended ? "data after the end block"
                                                : "block out of place");
            rc = KM_EFORMAT;
            break;
        }
        if (br.type == B_HEADER) {
            km_record_meta m;
            if (parse_header(&m, &br.payload, why, sizeof why)) {
                rep->first_bad_offset = at;
                snprintf(rep->problem, sizeof rep->problem, "offset 0: %s", why);
                rc = KM_EFORMAT;
                break;
            }
            cells = (uint32_t)m.rows * m.cols;
        } else if (br.type == B_FRAMES) {
            uint32_t n = br.payload.n >= 4 ? get32(br.payload.p) : 0;
            if (!n || (size_t)n * (FRAME_HDR + (size_t)cells * 7) + 4 != br.payload.n) {
                rep->first_bad_offset = at;
                snprintf(rep->problem, sizeof rep->problem,
                         "offset %lld: frame block size does not match its frame count",
                         (long long)at);
                rc = KM_EFORMAT;
                break;
            }
            rep->frame_blocks++;
            rep->frames += n;
        } else if (br.type == B_EVENTS) {
            rep->events += br.payload.n >= 4 ? get32(br.payload.p) : 0;
        } else if (br.type == B_GAP) {
            rep->gaps++;
            rep->gap_frames += br.payload.n >= 16 ? get64(br.payload.p + 8) : 0;
        } else if (br.type == B_END) {
            rep->ended = true;
        }
        rep->blocks++;
        br.off += (off_t)br.raw.n;
        rep->valid_bytes = (uint64_t)br.off;
        if (out && br.type != B_END && fwrite(br.raw.p, 1, br.raw.n, out) != br.raw.n) {
            snprintf(rep->problem, sizeof rep->problem, "writing the copy: %s", strerror(errno));
            rc = KM_EIO;
            break;
        }
    }
    if (!rc && !rep->ended)
        snprintf(rep->problem, sizeof rep->problem,
                 "no end block: the recording was interrupted (every block is whole)");
    fclose(br.fp);
    free(br.raw.p);
    free(br.payload.p);
    return rc;
}

int km_kmr_check(const char *path, km_kmr_report *rep) { return scan(path, rep, NULL); }

int km_kmr_recover(const char *in, const char *out, bool force, km_kmr_report *rep, char *err,
                   size_t errlen)
{
    return km_kmr_recover_progress(in, out, force, NULL, NULL, rep, err, errlen);
}

int km_kmr_recover_progress(const char *in, const char *out, bool force,
                            void (*progress)(void *user, double fraction, uint64_t frames),
                            void *user, km_kmr_report *rep, char *err, size_t errlen)
{
    int fd = open(out, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), 0600);
    if (fd < 0) {
        km_errf_(err, errlen, "%s: %s%s", out, strerror(errno),
                 errno == EEXIST ? " (not overwritten without --force)" : "");
        return errno == EEXIST ? KM_EBUSY : KM_EIO;
    }
    FILE *fp = fdopen(fd, "wb");
    int rc = scan_p(in, rep, fp, progress, user);
    if (rc == KM_EIO || rc == KM_ENOENT || rep->blocks == 0) {
        km_errf_(err, errlen, "%s: %s", in, rep->blocks ? rep->problem : "no readable header");
        fclose(fp);
        unlink(out);
        return rc == KM_OK ? KM_EFORMAT : rc;
    }
    /* close it properly: an end block */
    unsigned char b[HDR + 4] = {0};
    memcpy(b, MAGIC, 4);
    b[4] = B_END;
    put32(b + HDR, crc32c(b, HDR));
    int bad = fwrite(b, 1, sizeof b, fp) != sizeof b;
    bad |= fflush(fp) != 0 || fdatasync(fileno(fp)) != 0;
    bad |= fclose(fp) != 0;
    if (bad) {
        km_errf_(err, errlen, "%s: write failed: %s", out, strerror(errno));
        return KM_EIO;
    }
    return KM_OK;
}
