/* edf.c: an EDF+ writer for the derived channels, continuous (EDF+C) or,
 * when the recording has gaps, discontinuous (EDF+D): only data records that
 * hold data are written, each stamped with its true onset in its
 * time-keeping annotation. EDFlib (the reference library, used to read every
 * file back) writes EDF+C only, which made gaps look like data; this writer
 * exists for that reason alone. EDFlib reads EDF+C only: an EDF+D file is
 * for EDFbrowser and other readers of the full EDF+ spec.
 * Format (Kemp & Olivan, "European data format 'plus' (EDF+)", Clin
 * Neurophysiol 114:1755, 2003; edfplus.info/specs): a 256-byte header, 256
 * bytes per signal, then data records of 16-bit little-endian samples; the
 * last signal is "EDF Annotations", holding TALs: "+ONSET\x14\x14\0" first
 * (the record's onset), then "+ONSET\x14TEXT\x14\0" per annotation.
 * Touches: the descriptor it is given. Offline only. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edf_private.h"
#include "internal.h"

/* EDF header fields are printable ASCII, left-justified, space-padded */
static void field(char *dst, size_t width, const char *src)
{
    size_t n = 0;
    for (; src[n] && n < width; n++) {
        unsigned char c = (unsigned char)src[n];
        dst[n] = (c >= 32 && c < 127) ? (char)c : '_';
    }
    for (; n < width; n++)
        dst[n] = ' ';
}

/* an EDF+ subfield: no spaces inside (they separate subfields), X if empty */
static void subfield(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; src && src[n] && n + 1 < cap; n++)
        dst[n] = src[n] == ' ' ? '_' : src[n];
    dst[n] = 0;
    if (!n)
        snprintf(dst, cap, "X");
}

static void numfield(char *dst, size_t width, double v)
{
    char tmp[400]; /* %g of any double fits */
    snprintf(tmp, sizeof tmp, "%.*g", (int)width, v);
    if (strlen(tmp) > width) /* shorter: fewer digits */
        snprintf(tmp, sizeof tmp, "%.*g", (int)width - 5, v);
    field(dst, width, tmp);
}

/* one annotation record's TALs; returns bytes, or 0 if they do not fit */
static size_t tals(char *buf, size_t cap, double onset, const km_edf_annotation *a, size_t na)
{
    int n = snprintf(buf, cap, "+%.4f%c%c%c", onset, 20, 20, 0);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t used = (size_t)n;
    for (size_t i = 0; i < na; i++) {
        n = snprintf(buf + used, cap - used, "+%.4f%c%s%c%c", a[i].onset_s, 20, a[i].text, 20, 0);
        if (n < 0 || (size_t)n >= cap - used)
            return 0;
        used += (size_t)n;
    }
    return used;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *const MONTHS[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};

static void write_header(char *h, const km_edf_file *f, int ns, int annot_samples)
{
    char code[81], name[81], equip[81], admin[81], tech[81], buf[512];
    subfield(code, sizeof code, f->patient_code);
    subfield(name, sizeof name, f->patient_name);
    subfield(equip, sizeof equip, f->equipment);
    subfield(admin, sizeof admin, f->admin_code);
    subfield(tech, sizeof tech, f->technician);
    memset(h, ' ', 256 * (size_t)(ns + 1));
    field(h, 8, "0");
    snprintf(buf, sizeof buf, "%s X X %s", code, name);
    field(h + 8, 80, buf);
    snprintf(buf, sizeof buf, "Startdate %02d-%s-%04d %s %s %s", f->day, MONTHS[f->month - 1],
             f->year, admin, tech, equip);
    field(h + 88, 80, buf);
    snprintf(buf, sizeof buf, "%02d.%02d.%02d", f->day, f->month, f->year % 100);
    field(h + 168, 8, buf);
    snprintf(buf, sizeof buf, "%02d.%02d.%02d", f->hour, f->minute, f->second);
    field(h + 176, 8, buf);
    numfield(h + 184, 8, 256.0 * (ns + 1));
    field(h + 192, 44, f->discontinuous ? "EDF+D" : "EDF+C");
    numfield(h + 236, 8, (double)f->nrecords);
    numfield(h + 244, 8, 1);
    numfield(h + 252, 4, ns);
    char *s = h + 256;
    for (int i = 0; i < ns; i++) {
        int annot = i == ns - 1;
        const km_edf_signal *g = annot ? NULL : &f->signals[i];
        field(s + 16 * i, 16, annot ? "EDF Annotations" : g->label);
        field(s + 16 * ns + 80 * i, 80, annot ? "" : g->transducer ? g->transducer : "");
        field(s + 96 * ns + 8 * i, 8, annot ? "" : g->dim);
        numfield(s + 104 * ns + 8 * i, 8, annot ? -1 : g->phys_min);
        numfield(s + 112 * ns + 8 * i, 8, annot ? 1 : g->phys_max);
        numfield(s + 120 * ns + 8 * i, 8, -32768);
        numfield(s + 128 * ns + 8 * i, 8, 32767);
        field(s + 136 * ns + 80 * i, 80, annot ? "" : g->prefilter ? g->prefilter : "");
        numfield(s + 216 * ns + 8 * i, 8, annot ? annot_samples : f->hz);
    }
}

int km_edf_write_(int fd, const km_edf_file *f, char *err, size_t errlen)
{
    int ns = f->nsignals + 1; /* + the annotation signal */
    /* annotations go into the record that holds their onset (or the first
     * record after it, in a gap); the annotation signal is as long as the
     * fullest record needs */
    size_t *first = calloc(f->nrecords + 1, sizeof *first);
    char *tal = malloc(65536);
    if (!first || !tal) {
        free(first);
        free(tal);
        return KM_ENOMEM;
    }
    size_t a = 0, most = 0;
    for (size_t r = 0; r < f->nrecords; r++) {
        first[r] = a;
        double end = r + 1 < f->nrecords ? (double)f->record_onset_s[r + 1] : INFINITY;
        size_t b = a;
        while (b < f->nannotations && f->annotations[b].onset_s < end)
            b++;
        size_t len = tals(tal, 65536, (double)f->record_onset_s[r], f->annotations + a, b - a);
        if (!len) {
            free(first);
            free(tal);
            km_errf_(err, errlen, "too many annotations in one second for EDF+");
            return KM_EINVAL;
        }
        most = len > most ? len : most;
        a = b;
    }
    first[f->nrecords] = a;
    int annot_samples = (int)((most + 1) / 2);
    if (annot_samples < 16)
        annot_samples = 16;
    size_t hdr = 256 * (size_t)(ns + 1);
    size_t rec_bytes = 2 * ((size_t)f->nsignals * (size_t)f->hz + (size_t)annot_samples);
    char *h = malloc(hdr);
    unsigned char *rec = malloc(rec_bytes);
    int rc = KM_OK;
    if (!h || !rec) {
        rc = KM_ENOMEM;
        goto out;
    }
    write_header(h, f, ns, annot_samples);
    if (write_all(fd, h, hdr))
        rc = KM_EIO;
    for (size_t r = 0; r < f->nrecords && !rc; r++) {
        unsigned char *p = rec;
        for (int c = 0; c < f->nsignals; c++) {
            const km_edf_signal *g = &f->signals[c];
            double scale = 65535.0 / (g->phys_max - g->phys_min);
            for (int k = 0; k < f->hz; k++) {
                double v = f->samples[(r * (size_t)f->nsignals + (size_t)c) * (size_t)f->hz + k];
                double d = -32768.0 + (v - g->phys_min) * scale;
                long q = lround(fmin(fmax(d, -32768.0), 32767.0));
                uint16_t u = (uint16_t)(int16_t)q;
                *p++ = (unsigned char)(u & 0xff);
                *p++ = (unsigned char)(u >> 8);
            }
        }
        memset(p, 0, 2 * (size_t)annot_samples);
        tals((char *)p, 2 * (size_t)annot_samples, (double)f->record_onset_s[r],
             f->annotations + first[r], first[r + 1] - first[r]);
        if (write_all(fd, rec, rec_bytes))
            rc = KM_EIO;
    }
    if (rc == KM_EIO)
        km_errf_(err, errlen, "write failed: %s", errno ? strerror(errno) : "no space left");
out:
    free(h);
    free(rec);
    free(first);
    free(tal);
    return rc;
}

/* Read the file back as a reader would: the header's own fields, the size
 * they imply, and every record's time-keeping onset (increasing; in EDF+C
 * the record's index). EDFlib refuses EDF+D outright
 * (EDFLIB_FILE_IS_DISCONTINUOUS), so this check is knotmat's own. */
int km_edf_verify_(const char *path, size_t records, size_t annotations, char *err,
                   size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    char h[257] = "";
    if (!fp || fread(h, 1, 256, fp) != 256) {
        if (fp)
            fclose(fp);
        km_errf_(err, errlen, "the EDF+ file does not read back (disk full?)");
        return KM_EIO;
    }
    long hdr = strtol(h + 184, NULL, 10), nrec = strtol(h + 236, NULL, 10);
    int ns = (int)strtol(h + 252, NULL, 10), disc = !strncmp(h + 192, "EDF+D", 5);
    int rc = KM_OK;
    char *sig = ns > 0 && ns < 1000 ? malloc((size_t)ns * 256) : NULL;
    if (!sig || hdr != 256L * (ns + 1) || nrec != (long)records ||
        fread(sig, 1, (size_t)ns * 256, fp) != (size_t)ns * 256)
        rc = KM_EIO;
    long per = 0, annot = 0;
    for (int i = 0; !rc && i < ns; i++) {
        long n = strtol(sig + 216 * ns + 8 * i, NULL, 10);
        if (i == ns - 1)
            annot = n;
        per += 2 * n;
    }
    struct stat st;
    if (!rc && (fstat(fileno(fp), &st) != 0 || st.st_size != hdr + nrec * per))
        rc = KM_EIO;
    size_t seen = 0;
    double last = -1;
    char *rec = rc ? NULL : malloc((size_t)per);
    for (long r = 0; !rc && rec && r < nrec; r++) {
        if (fread(rec, 1, (size_t)per, fp) != (size_t)per) {
            rc = KM_EIO;
            break;
        }
        char *a = rec + per - 2 * annot, *end = rec + per;
        double onset = strtod(a, NULL);
        if (a[0] != '+' || onset <= last || (!disc && fabs(onset - (double)r) > 1e-3))
            rc = KM_EIO;
        last = onset;
        for (char *q = a + strlen(a) + 1; q < end && *q == '+'; q += strlen(q) + 1)
            seen++; /* the TALs after the time-keeping one */
    }
    if (!rc && seen != annotations)
        rc = KM_EIO;
    if (rc)
        km_errf_(err, errlen, "the EDF+ file does not read back as written (%ld of %zu records; "
                 "disk full?)", nrec, records);
    free(rec);
    free(sig);
    fclose(fp);
    return rc;
}
