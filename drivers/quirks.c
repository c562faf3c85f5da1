/* quirks.c: per-device data for USB mats, so that a new DIY mat needs a text
 * file, not code (the idea of libinput's quirks). A file holds sections:
 *
 *     # comment
 *     [Velostat 16x16 on a Teensy 3.2]
 *     MatchUSBID=16c0:0483
 *     MatchSerial=KM-FSR-*          optional, fnmatch(3) pattern
 *     Protocol=fsr-rle              fsr-rle | fsr-poll | sensel-morph
 *     Rows=16
 *     Cols=16
 *     PitchMM=25.4
 *     RateHz=40                     nominal frame rate
 *     Orientation=normal            normal | rotate-90 | rotate-180 | rotate-270 |
 *                                   flip-rows | flip-cols
 *     DeadCells=r3c4;r10c2          device coordinates, before orientation
 *     KpaPerCount=0.5               omitted: default, frames flagged uncalibrated
 *     ZeroCount=0
 *     FullScale=254
 *     Baud=115200
 *     PollByte=0x41                 fsr-poll: the byte that asks for a frame
 *
 * Files are read from every directory of km_quirks_path() (the source
 * tree's drivers/quirks, the installed ${datadir}/knotmat/quirks, then
 * $KNOTMAT_QUIRKS_DIR), each directory's *.quirks files sorted by name; an
 * entry read later overrides an earlier one for the same match. Format reference: docs/drivers.md.
 * Touches only the files it reads. Not in any frame path except
 * km_quirk_apply_(), which never allocates. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#include "internal.h"
#include "usbmat_private.h"

#ifndef KM_QUIRKS_INSTALL_DIR
#define KM_QUIRKS_INSTALL_DIR "/usr/local/share/knotmat/quirks"
#endif
#ifndef KM_QUIRKS_SOURCE_DIR
#define KM_QUIRKS_SOURCE_DIR ""
#endif

#ifndef KM_BUILD_DIR
#define KM_BUILD_DIR ""
#endif

/* The source tree's quirks serve only programs run from the build tree: an
 * installed knotmat never reads calibration from a directory its builder
 * (or anyone who can write there) owns. */
static int running_from_build_tree(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    size_t b = strlen(KM_BUILD_DIR);
    if (n <= 0 || !b)
        return 0;
    exe[n] = 0;
    return !strncmp(exe, KM_BUILD_DIR, b) && exe[b] == '/';
}

/* Lowest priority first: later directories override earlier ones. */
void km_quirks_path(char *buf, size_t len)
{
    const char *env = getenv("KNOTMAT_QUIRKS_DIR");
    const char *src = running_from_build_tree() ? KM_QUIRKS_SOURCE_DIR : "";
    snprintf(buf, len, "%s%s%s%s%s", src, src[0] ? ":" : "", KM_QUIRKS_INSTALL_DIR,
             env && *env ? ":" : "", env && *env ? env : "");
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

static void quirk_defaults(km_quirk *q)
{
    memset(q, 0, sizeof *q);
    q->full_scale = 254;
    q->baud = 115200;
    q->poll_byte = 'A';
    q->rate_hz = 0;
}

static int parse_dead(km_quirk *q, char *v)
{
    for (char *tok = strtok(v, ";, "); tok; tok = strtok(NULL, ";, ")) {
        unsigned r, c;
        char tail;
        if (sscanf(tok, "r%uc%u%c", &r, &c, &tail) != 2 || q->ndead >= KM_QUIRK_MAX_DEAD)
            return -1;
        q->dead[q->ndead].r = (uint16_t)r;
        q->dead[q->ndead].c = (uint16_t)c;
        q->ndead++;
    }
    return 0;
}

static int set_key(km_quirk *q, const char *key, char *val)
{
    char *end;
    if (!strcasecmp(key, "MatchUSBID")) {
        unsigned v, p;
        char tail;
        if (sscanf(val, "%x:%x%c", &v, &p, &tail) != 2 || v > 0xffff || p > 0xffff)
            return -1;
        q->vid = (uint16_t)v;
        q->pid = (uint16_t)p;
    } else if (!strcasecmp(key, "MatchSerial")) {
        snprintf(q->match_serial, sizeof q->match_serial, "%s", val);
    } else if (!strcasecmp(key, "Protocol")) {
        if (strcmp(val, "fsr-rle") && strcmp(val, "fsr-poll") && strcmp(val, "sensel-morph"))
            return -1;
        snprintf(q->protocol, sizeof q->protocol, "%s", val);
    } else if (!strcasecmp(key, "Rows") || !strcasecmp(key, "Cols")) {
        long v = strtol(val, &end, 10);
        if (*end || v <= 0 || v > KM_FRAME_MAX_DIM)
            return -1;
        *(!strcasecmp(key, "Rows") ? &q->rows : &q->cols) = (uint16_t)v;
    } else if (!strcasecmp(key, "PitchMM")) {
        double v = strtod(val, &end);
        if (*end || !(v > 0 && v < 1000))
            return -1;
        q->pitch_mm = (float)v;
    } else if (!strcasecmp(key, "RateHz")) {
        q->rate_hz = strtod(val, &end);
        if (*end || !(q->rate_hz > 0 && q->rate_hz < 100000))
            return -1;
    } else if (!strcasecmp(key, "Orientation")) {
        static const char *const names[] = {"normal", "rotate-90", "rotate-180", "rotate-270",
                                            "flip-rows", "flip-cols"};
        int found = -1;
        for (int i = 0; i < 6; i++)
            if (!strcmp(val, names[i]))
                found = i;
        if (found < 0)
            return -1;
        q->orientation = (enum km_orientation)found;
    } else if (!strcasecmp(key, "DeadCells")) {
        return parse_dead(q, val);
    } else if (!strcasecmp(key, "KpaPerCount")) {
        q->kpa_per_count = strtod(val, &end);
        if (*end || !(q->kpa_per_count > 0 && q->kpa_per_count < 1e6))
            return -1;
    } else if (!strcasecmp(key, "ZeroCount") || !strcasecmp(key, "FullScale")) {
        long v = strtol(val, &end, 10);
        if (*end || v < 0 || v > 65535)
            return -1;
        *(!strcasecmp(key, "ZeroCount") ? &q->zero_count : &q->full_scale) = (int)v;
    } else if (!strcasecmp(key, "Baud")) {
        long v = strtol(val, &end, 10);
        if (*end || v <= 0)
            return -1;
        q->baud = (uint32_t)v;
    } else if (!strcasecmp(key, "PollByte")) {
        long v = strtol(val, &end, 0);
        if (*end || v < 0 || v > 255)
            return -1;
        q->poll_byte = (uint8_t)v;
    } else {
        return -2;
    }
    return 0;
}

static int check_section(const km_quirk *q, const char *path, unsigned line, char *err,
                         size_t errlen)
{
    const char *missing = !q->vid && !q->pid ? "MatchUSBID"
                          : !q->protocol[0]  ? "Protocol"
                                             : NULL;
    if (!missing && strcmp(q->protocol, "sensel-morph") != 0)
        missing = !q->rows ? "Rows" : !q->cols ? "Cols" : !(q->pitch_mm > 0) ? "PitchMM" : NULL;
    if (missing) {
        km_errf_(err, errlen, "%s:%u: section [%s] has no %s", path, line, q->section, missing);
        return KM_EFORMAT;
    }
    for (uint32_t i = 0; i < q->ndead && q->rows; i++)
        if (q->dead[i].r >= q->rows || q->dead[i].c >= q->cols) {
            km_errf_(err, errlen, "%s: section [%s]: dead cell r%uc%u is outside %ux%u", path,
                     q->section, q->dead[i].r, q->dead[i].c, q->rows, q->cols);
            return KM_EFORMAT;
        }
    return KM_OK;
}

int km_quirks_parse_file_(const char *path, km_quirk *out, size_t max, size_t *n, char *err,
                          size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        km_errf_(err, errlen, "%s: %s", path, strerror(errno));
        return KM_EIO;
    }
    char buf[1024];
    unsigned line = 0, section_line = 0;
    km_quirk cur;
    int have = 0, rc = KM_OK;
    size_t start = *n;
    while (fgets(buf, sizeof buf, fp)) {
        line++;
        char *l = trim(buf);
        if (!*l || *l == '#')
            continue;
        if (*l == '[') {
            char *close = strchr(l, ']');
            if (!close) {
                km_errf_(err, errlen, "%s:%u: section header without ']'", path, line);
                rc = KM_EFORMAT;
                break;
            }
            if (have && (rc = check_section(&cur, path, section_line, err, errlen)))
                break;
            if (have && *n < max)
                out[*n] = cur;
            if (have)
                (*n)++;
            quirk_defaults(&cur);
            *close = 0;
            snprintf(cur.section, sizeof cur.section, "%s", l + 1);
            snprintf(cur.file, sizeof cur.file, "%s", path);
            have = 1;
            section_line = line;
            continue;
        }
        char *eq = strchr(l, '=');
        if (!have || !eq) {
            km_errf_(err, errlen, "%s:%u: %s", path, line,
                     !have ? "a key before the first [section]" : "expected Key=Value");
            rc = KM_EFORMAT;
            break;
        }
        *eq = 0;
        char *key = trim(l), *val = trim(eq + 1);
        int k = set_key(&cur, key, val);
        if (k) {
            km_errf_(err, errlen, k == -2 ? "%s:%u: unknown key '%s'" : "%s:%u: bad value for %s",
                     path, line, key);
            rc = KM_EFORMAT;
            break;
        }
    }
    fclose(fp);
    if (!rc && have && !(rc = check_section(&cur, path, section_line, err, errlen))) {
        if (*n < max)
            out[*n] = cur;
        (*n)++;
    }
    if (rc)
        *n = start; /* a broken file contributes nothing */
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t km_quirks_load_(km_quirk *out, size_t max, char *err, size_t errlen)
{
    char path[4096];
    km_quirks_path(path, sizeof path);
    size_t n = 0;
    if (err && errlen)
        err[0] = 0;
    for (char *dir = strtok(path, ":"); dir; dir = strtok(NULL, ":")) {
        DIR *d = opendir(dir);
        if (!d)
            continue;
        char *names[256];
        size_t nn = 0;
        struct dirent *e;
        while ((e = readdir(d)) && nn < 256) {
            size_t len = strlen(e->d_name);
            if (len > 7 && !strcmp(e->d_name + len - 7, ".quirks"))
                names[nn++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, nn, sizeof names[0], cmp_names);
        for (size_t i = 0; i < nn; i++) {
            char file[4352];
            snprintf(file, sizeof file, "%s/%s", dir, names[i]);
            char e1[512];
            if (names[i] && km_quirks_parse_file_(file, out, max, &n, e1, sizeof e1) &&
                err && !err[0])
                snprintf(err, errlen, "%s", e1);
            free(names[i]);
        }
    }
    return n;
}

const km_quirk *km_quirks_match_(const km_quirk *q, size_t n, uint16_t vid, uint16_t pid,
                                 const char *serial)
{
    const km_quirk *best = NULL;
    int best_score = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i].vid != vid || q[i].pid != pid)
            continue;
        int score = 1;
        if (q[i].match_serial[0]) {
            if (!serial || fnmatch(q[i].match_serial, serial, 0) != 0)
                continue;
            score = 2;
        }
        if (score >= best_score) { /* later files override earlier ones */
            best = &q[i];
            best_score = score;
        }
    }
    return best;
}

bool km_quirks_has_usbid_(const km_quirk *q, size_t n, uint16_t vid, uint16_t pid)
{
    for (size_t i = 0; i < n; i++)
        if (q[i].vid == vid && q[i].pid == pid)
            return true;
    return false;
}

void km_quirk_out_dims_(const km_quirk *q, uint16_t *rows, uint16_t *cols)
{
    int swap = q->orientation == KM_ORIENT_ROTATE_90 || q->orientation == KM_ORIENT_ROTATE_270;
    *rows = swap ? q->cols : q->rows;
    *cols = swap ? q->rows : q->cols;
}

/* Device cell (r, c) -> output index. */
static inline uint32_t out_index(const km_quirk *q, uint32_t r, uint32_t c, uint32_t ocols)
{
    uint32_t R = q->rows, C = q->cols, orow, ocol;
    switch (q->orientation) {
    case KM_ORIENT_ROTATE_90: orow = c; ocol = R - 1 - r; break;
    case KM_ORIENT_ROTATE_180: orow = R - 1 - r; ocol = C - 1 - c; break;
    case KM_ORIENT_ROTATE_270: orow = C - 1 - c; ocol = r; break;
    case KM_ORIENT_FLIP_ROWS: orow = R - 1 - r; ocol = c; break;
    case KM_ORIENT_FLIP_COLS: orow = r; ocol = C - 1 - c; break;
    default: orow = r; ocol = c; break;
    }
    return orow * ocols + ocol;
}

void km_quirk_apply_(const km_quirk *q, const uint16_t *counts, km_frame *f)
{
    double k = q->kpa_per_count > 0 ? q->kpa_per_count : KM_FSR_DEFAULT_KPA_PER_COUNT;
    uint32_t ocols = f->cols;
    for (uint32_t r = 0; r < q->rows; r++)
        for (uint32_t c = 0; c < q->cols; c++) {
            uint16_t v = counts[r * q->cols + c];
            uint32_t o = out_index(q, r, c, ocols);
            int above = (int)v - q->zero_count;
            f->raw[o] = v;
            f->kpa[o] = above > 0 ? (float)(above * k) : 0.0f;
            f->cell_flags[o] = v >= q->full_scale ? KM_CELL_SATURATED : 0;
        }
    for (uint32_t i = 0; i < q->ndead; i++) {
        uint32_t o = out_index(q, q->dead[i].r, q->dead[i].c, ocols);
        f->cell_flags[o] |= KM_CELL_DEAD;
        f->kpa[o] = 0;
    }
    f->flags |= KM_FRAME_HAS_RAW | (q->kpa_per_count > 0 ? 0 : KM_FRAME_UNCALIBRATED);
    km_frame_count_flags(f);
}
