/* export.c: recordings to CSV, EDF+ and HDF5. Reads any file source, runs
 * the detectors for the events and the hotspot force (EDF+), writes the
 * output through km_outfile (0600 from creation, never over the input, a
 * device node or a symlink; the target appears only once the output is
 * whole and, for EDF+, read back). One de-identification rule
 * (km_record_meta_deidentify) for every format. Offline: allocation and I/O
 * are fine here. Touches: the input and the output file. */
#include <edflib.h>
#include <hdf5.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "knotmat/dsp.h"
#include "knotmat/export.h"
#include "knotmat/pass.h"
#include "edf_private.h"
#include "knotmat/files.h"
#include "knotmat/outfile.h"
#include "knotmat/record.h"
#include "knotmat/source.h"
#include "knotmat/stats.h"

#define EDF_HZ 10
enum { CH_TOTAL, CH_COPX, CH_COPY, CH_AREA, CH_PEAK, CH_HOT, CH_BREATH, NCH };
static const struct { const char *label, *dim; double min, max; } channels[NCH] = {
    {"total force", "N", 0, 5000},        {"CoP x", "mm", 0, 5000},
    {"CoP y", "mm", 0, 5000},             {"contact area", "cm2", 0, 50000},
    {"peak pressure", "kPa", 0, 2000},    {"hotspot force", "N", 0, 2000},
    {"breathing rate", "/min", 0, 60},
};

static int read_meta(const char *in, km_record_meta *m)
{
    memset(m, 0, sizeof *m);
    if (km_file_sniff(in) != KM_FORMAT_KMR)
        return 0; /* a CSV or import: no .kmr metadata */
    km_kmr_reader *r;
    if (km_kmr_open(in, &r, NULL, 0) != KM_OK)
        return 0;
    *m = *km_kmr_meta(r);
    km_kmr_close(r);
    return 1;
}

static int export_csv(km_source *src, const km_source_info *info, km_outfile *of,
                      const km_record_meta *m, km_export_report *rep, char *err, size_t errlen)
{
    char subj[96], sess[96];
    snprintf(subj, sizeof subj, "subject=%s", m->subject);
    snprintf(sess, sizeof sess, "session=%s", m->session);
    const char *extra[] = {"source=knotmat export", subj, sess, NULL};
    FILE *fp = km_outfile_stream_(of);
    km_csv_writer *w = fp ? km_csv_writer_open_fp_(fp, km_outfile_target(of), info->rows,
                                                   info->cols, info->pitch_mm, info->rate_hz,
                                                   extra)
                          : NULL;
    if (!w) {
        if (fp)
            fclose(fp);
        return KM_ENOMEM;
    }
    km_frame *f = km_frame_new(km_source_max_cells(src));
    int64_t t0 = 0;
    int first = 1, rc = f ? KM_OK : KM_ENOMEM;
    while (!rc && (rc = km_source_read(src, f)) == KM_OK) {
        if (first) {
            t0 = f->device_ns;
            first = 0;
        }
        rc = km_csv_writer_write(w, (double)(f->device_ns - t0) * 1e-9, f);
        rep->frames += !rc;
    }
    km_frame_free(f);
    int crc = km_csv_writer_close(w, err, errlen);
    if (rc == KM_EEOF)
        rc = KM_OK;
    else if (rc && err && !err[0])
        km_errf_(err, errlen, "reading the input: %s", km_strerror(rc));
    return rc ? rc : crc;
}

/* ---- EDF+ ---------------------------------------------------------------- */

/* The derived channels, one 1 s data record at a time. A record is kept
 * only when a frame fell into it: a recording with gaps becomes EDF+D with
 * each record at its true second, never data repeated across a gap, and
 * the memory taken grows with the data, not with the time it spans. */
typedef struct {
    double *samples;      /* [record][channel][EDF_HZ] */
    int64_t *onset;       /* second of each record */
    size_t n, cap;
    int64_t cur;          /* second being filled, -1: none */
    double acc[EDF_HZ][NCH];
    int cnt[EDF_HZ];
} edf_records;

static int edf_close_record(edf_records *R)
{
    if (R->cur < 0)
        return KM_OK;
    if (R->n == R->cap) {
        size_t cap = R->cap ? 2 * R->cap : 256;
        double *s2 = realloc(R->samples, cap * NCH * EDF_HZ * sizeof(double));
        if (s2)
            R->samples = s2;
        int64_t *o2 = realloc(R->onset, cap * sizeof(int64_t));
        if (o2)
            R->onset = o2;
        if (!s2 || !o2)
            return KM_ENOMEM;
        R->cap = cap;
    }
    /* bin means; a bin without a frame (a rate below 10 Hz, jitter) takes
     * the nearest filled bin of the same second */
    double *out = R->samples + R->n * NCH * EDF_HZ;
    int filled = -1;
    for (int b = 0; b < EDF_HZ; b++)
        if (R->cnt[b] && filled < 0)
            filled = b;
    for (int b = 0; b < EDF_HZ; b++) {
        if (R->cnt[b])
            filled = b;
        for (int c = 0; c < NCH; c++)
            out[c * EDF_HZ + b] = R->acc[filled][c] / R->cnt[filled];
    }
    R->onset[R->n++] = R->cur;
    memset(R->acc, 0, sizeof R->acc);
    memset(R->cnt, 0, sizeof R->cnt);
    R->cur = -1;
    return KM_OK;
}

static int edf_add(edf_records *R, double t_s, const double v[NCH])
{
    int64_t sec = (int64_t)floor(t_s);
    int bin = (int)((t_s - (double)sec) * EDF_HZ);
    bin = bin < 0 ? 0 : bin >= EDF_HZ ? EDF_HZ - 1 : bin;
    if (sec != R->cur) {
        int rc = edf_close_record(R);
        if (rc)
            return rc;
        R->cur = sec;
    }
    for (int c = 0; c < NCH; c++)
        R->acc[bin][c] += fmin(fmax(v[c], channels[c].min), channels[c].max);
    R->cnt[bin]++;
    return KM_OK;
}

static int collect_events(km_event **evs, size_t *nev, size_t *cap, const km_event *e)
{
    if (*nev == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        km_event *ne = realloc(*evs, ncap * sizeof *ne);
        if (!ne)
            return KM_ENOMEM;
        *evs = ne;
        *cap = ncap;
    }
    (*evs)[(*nev)++] = *e;
    return KM_OK;
}

/* EDFlib (the reference reader) must read the file back as written: the
 * number of records and of annotations, the type. A full disk or a
 * truncated write cannot pass for an export. */
static int edf_verify(const char *path, size_t records, size_t annots, int discontinuous,
                      char *err, size_t errlen)
{
    struct edf_hdr_struct h;
    if (edfopen_file_readonly(path, &h, EDFLIB_READ_ALL_ANNOTATIONS) < 0) {
        km_errf_(err, errlen, "the EDF+ file does not read back (EDFlib error %d): disk full?",
                 h.filetype);
        return KM_EIO;
    }
    (void)discontinuous; /* EDFlib reads EDF+C and EDF+D alike; the test checks the type */
    int ok = h.datarecords_in_file == (long long)records &&
             h.annotations_in_file == (long long)annots && h.filetype == EDFLIB_FILETYPE_EDFPLUS;
    edfclose_file(h.handle);
    if (!ok) {
        km_errf_(err, errlen, "the EDF+ file reads back with %lld records and %lld annotations, "
                 "not %zu and %zu", h.datarecords_in_file, h.annotations_in_file, records, annots);
        return KM_EIO;
    }
    return KM_OK;
}

static int export_edf(km_pass *pass, const km_source_info *info, km_outfile *of,
                      const km_record_meta *m, km_export_report *rep, char *err, size_t errlen)
{
    (void)info;
    edf_records R = {.cur = -1};
    size_t nev = 0, evcap = 0;
    km_event *evs = NULL;
    km_edf_annotation *an = NULL;
    int64_t t0 = 0;
    int first = 1, rc;
    const km_frame *f;
    const km_event *ev;
    size_t n;
    while ((rc = km_pass_next(pass, &f, &ev, &n)) == KM_OK) {
        if (f && first) {
            t0 = f->device_ns;
            first = 0;
        }
        for (size_t i = 0; i < n && !rc; i++)
            if (ev[i].type != KM_EV_HOTSPOT && ev[i].type != KM_EV_BREATHING)
                rc = collect_events(&evs, &nev, &evcap, &ev[i]);
        if (!f)
            continue;
        rep->frames++;
        if (rc || (f->flags & KM_FRAME_CORRUPT))
            continue;
        km_frame_summary s;
        km_frame_summarize(f, &s);
        const km_hotspot *h;
        size_t nh = km_pass_hotspots(pass, &h);
        km_dsp_stats st;
        km_pass_dsp_stats(pass, &st);
        double v[NCH] = {s.total_force_n, isfinite(s.cop_x_mm) ? s.cop_x_mm : 0,
                         isfinite(s.cop_y_mm) ? s.cop_y_mm : 0, s.contact_cm2, s.peak_kpa,
                         nh ? h[0].force_n : 0, isfinite(st.breath_bpm) ? st.breath_bpm : 0};
        rc = edf_add(&R, (double)(f->device_ns - t0) * 1e-9, v);
        if (rc)
            break;
    }
    if (rc == KM_EEOF)
        rc = KM_OK;
    if (!rc)
        rc = edf_close_record(&R);
    if (rc)
        goto out;
    int discontinuous = 0;
    for (size_t r = 0; r < R.n; r++)
        discontinuous |= R.onset[r] != R.onset[0] + (int64_t)r;
    /* the records start at second 0 of the file */
    int64_t base = R.n ? R.onset[0] : 0;
    for (size_t r = 0; r < R.n; r++)
        R.onset[r] -= base;
    an = calloc(nev ? nev : 1, sizeof *an);
    if (!an) {
        rc = KM_ENOMEM;
        goto out;
    }
    size_t na = 0;
    double span = R.n ? (double)R.onset[R.n - 1] + 1 : 0;
    for (size_t i = 0; i < nev; i++) {
        double onset = evs[i].t_s - (double)t0 * 1e-9 - (double)base;
        if (onset < 0 || onset > span)
            continue;
        an[na].onset_s = onset;
        an[na++].text = km_event_label(&evs[i]);
    }
    km_edf_signal sig[NCH];
    for (int c = 0; c < NCH; c++)
        sig[c] = (km_edf_signal){.label = channels[c].label, .dim = channels[c].dim,
                                 .transducer = "pressure mat", .phys_min = channels[c].min,
                                 .phys_max = channels[c].max};
    int y = 1985, mo = 1, dd = 1, hh = 0, mi = 0, ss = 0;
    if (m->start_utc[0] &&
        sscanf(m->start_utc, "%d-%d-%dT%d:%d:%d", &y, &mo, &dd, &hh, &mi, &ss) != 6)
        y = 1985, mo = 1, dd = 1, hh = 0, mi = 0, ss = 0;
    if (y < 1985 || y > 2084 || mo < 1 || mo > 12 || dd < 1 || dd > 31)
        y = 1985, mo = 1, dd = 1; /* what EDF+'s two-digit years can hold */
    char equip[128];
    snprintf(equip, sizeof equip, "%s%s%s", m->device_kind[0] ? m->device_kind : info->kind,
             m->serial[0] ? "-" : "", m->serial);
    km_edf_file ef = {.patient_code = m->subject, .patient_name = "X",
                      .admin_code = m->session, .technician = m->operator_name,
                      .equipment = equip, .year = y, .month = mo, .day = dd, .hour = hh,
                      .minute = mi, .second = ss, .discontinuous = discontinuous, .hz = EDF_HZ,
                      .nsignals = NCH, .signals = sig, .nrecords = R.n, .record_onset_s = R.onset,
                      .samples = R.samples, .nannotations = na, .annotations = an};
    rc = km_edf_write_(km_outfile_fd(of), &ef, err, errlen);
    if (!rc)
        rc = km_edf_verify_(km_outfile_io_path(of), R.n, na, err, errlen);
    if (!rc && !discontinuous) /* and as the reference library reads EDF+C */
        rc = edf_verify(km_outfile_io_path(of), R.n, na, discontinuous, err, errlen);
    rep->events = nev;
    rep->annotations = na;
    rep->records = R.n;
    rep->discontinuous = discontinuous;
out:
    free(R.samples);
    free(R.onset);
    free(an);
    free(evs);
    return rc;
}

/* ---- HDF5 ---------------------------------------------------------------- */

static void h5_attr_str(hid_t obj, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, v);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

static void h5_attr_num(hid_t obj, const char *name, double v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    H5Sclose(sp);
}

/* An extendible dataset of frames (rank 3) or of scalars per frame (rank 1). */
#define H5_BATCH 64

static hid_t h5_series(hid_t g, const char *name, hid_t ftype, int rank, hsize_t rows, hsize_t cols)
{
    hsize_t dims[3] = {0, rows, cols}, maxd[3] = {H5S_UNLIMITED, rows, cols};
    /* chunks of H5_BATCH frames (h5py reads one frame by one chunk of a
     * few hundred KB); shuffle + deflate 1: most of deflate-4's size at a
     * fraction of its time */
    hsize_t chunk[3] = {rank == 3 ? H5_BATCH : 4096, rows, cols};
    hid_t sp = H5Screate_simple(rank, dims, maxd);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, rank, chunk);
    H5Pset_deflate(pl, 1);
    hid_t d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    H5Sclose(sp);
    return d;
}

/* Append `k` frames' values (a batch) at frame n. */
static int h5_append(hid_t d, hid_t mtype, int rank, hsize_t n, hsize_t k, hsize_t rows,
                     hsize_t cols, const void *buf)
{
    hsize_t ext[3] = {n + k, rows, cols}, start[3] = {n, 0, 0}, count[3] = {k, rows, cols};
    if (H5Dset_extent(d, ext) < 0)
        return -1;
    hid_t fs = H5Dget_space(d);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t e = H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    return e < 0 ? -1 : 0;
}

static void h5_vector(hid_t g, const char *name, hid_t ftype, hid_t mtype, size_t n,
                      const void *buf)
{
    hsize_t dims[1] = {n};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (n)
        H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(d);
    H5Sclose(sp);
}

/* The metadata as attributes of the root group. */
static void h5_root_attrs(hid_t f5, const km_source_info *info, const km_record_meta *m,
                          const char *events_from, const char *settings)
{
    h5_attr_str(f5, "format", "knotmat-hdf5");
    h5_attr_num(f5, "version", 1);
    h5_attr_num(f5, "rows", (double)info->rows);
    h5_attr_num(f5, "cols", (double)info->cols);
    char pitch[32]; /* the float's shortest decimal: 12.7, not 12.699999809 */
    snprintf(pitch, sizeof pitch, "%.7g", (double)info->pitch_mm);
    h5_attr_num(f5, "pitch_mm", strtod(pitch, NULL));
    h5_attr_num(f5, "rate_hz", info->rate_hz);
    h5_attr_str(f5, "units", "kPa");
    h5_attr_str(f5, "coordinates", "x_mm = column * pitch_mm, y_mm = row * pitch_mm");
    h5_attr_str(f5, "device_kind", m->device_kind[0] ? m->device_kind : info->kind);
    h5_attr_str(f5, "software", "knotmat " KM_VERSION_STRING);
    h5_attr_str(f5, "start_utc", m->start_utc);
    h5_attr_str(f5, "subject", m->subject);
    h5_attr_str(f5, "session", m->session);
    h5_attr_str(f5, "operator", m->operator_name);
    h5_attr_str(f5, "serial", m->serial);
    h5_attr_str(f5, "notes", m->notes);
    h5_attr_str(f5, "events_from", events_from);
    h5_attr_str(f5, "settings", settings);
    h5_attr_str(f5, "recorded_settings", m->settings);
    h5_attr_str(f5, "cue_scheme", m->cue_scheme);
}

/* /events: one vector per field, the types as 16-byte strings. */
static void h5_events(hid_t f5, const km_event *evs, size_t nev)
{
    hid_t ge = H5Gcreate2(f5, "events", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    double *col = malloc((nev ? nev : 1) * sizeof(double));
    char *types = calloc(nev ? nev : 1, 16);
    static const char *const names[] = {"t_s",     "x_mm",       "y_mm",
                                        "force_n", "confidence", "value"};
    for (int c = 0; c < 6 && col; c++) {
        for (size_t i = 0; i < nev; i++) {
            const double v[6] = {evs[i].t_s, evs[i].x_mm, evs[i].y_mm, evs[i].force_n,
                                 evs[i].confidence, evs[i].value};
            col[i] = v[c];
        }
        h5_vector(ge, names[c], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, nev, col);
    }
    for (size_t i = 0; types && i < nev; i++)
        snprintf(types + 16 * i, 16, "%s", km_event_type_name(evs[i].type));
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 16);
    if (types)
        h5_vector(ge, "type", st, st, nev, types);
    H5Tclose(st);
    free(col);
    free(types);
    H5Gclose(ge);
}

/* All of `p` to `fd`; KM_EIO said (a full disk is "no space"). */
static int write_all(int fd, const char *p, size_t left, const char *out, char *err,
                     size_t errlen)
{
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            km_errf_(err, errlen, "%s: write failed: %s", out, w < 0 ? strerror(errno) : "no space");
            return KM_EIO;
        }
        p += w;
        left -= (size_t)w;
    }
    return KM_OK;
}

/* /frames: the extendible datasets, self-describing for h5py and MATLAB. */
typedef struct { hid_t g, dk, dr, df, dt, ds, dfl; } h5_frames;

static h5_frames h5_frames_create(hid_t f5, hsize_t R, hsize_t C)
{
    h5_frames d;
    d.g = H5Gcreate2(f5, "frames", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    d.dk = h5_series(d.g, "kpa", H5T_IEEE_F32LE, 3, R, C);
    d.dr = h5_series(d.g, "raw", H5T_STD_U16LE, 3, R, C);
    d.df = h5_series(d.g, "cell_flags", H5T_STD_U8LE, 3, R, C);
    d.dt = h5_series(d.g, "t_s", H5T_IEEE_F64LE, 1, 0, 0);
    d.ds = h5_series(d.g, "seq", H5T_STD_U64LE, 1, 0, 0);
    d.dfl = h5_series(d.g, "flags", H5T_STD_U32LE, 1, 0, 0);
    /* self-describing for h5py and MATLAB: units, axes, flag meanings */
    h5_attr_str(d.dk, "units", "kPa");
    h5_attr_str(d.dk, "dims", "frame, row, col");
    h5_attr_str(d.dr, "units", "counts (the device's raw readings, when it gives them)");
    h5_attr_str(d.dr, "dims", "frame, row, col");
    h5_attr_str(d.df, "flag_meanings", "1 saturated (at the ADC's full scale), 2 dead sensor");
    h5_attr_str(d.df, "dims", "frame, row, col");
    h5_attr_str(d.dt, "units", "s (device time from the first frame)");
    h5_attr_str(d.ds, "units", "source sequence number (gaps: frames lost)");
    h5_attr_str(d.dfl, "flag_meanings", "1 corrupt, 2 uncalibrated (kPa from a default), 4 raw "
                "counts present, 8 device lost, 16 device back");
    return d;
}

static void h5_frames_close(h5_frames *d)
{
    H5Dclose(d->dk);
    H5Dclose(d->dr);
    H5Dclose(d->df);
    H5Dclose(d->dt);
    H5Dclose(d->ds);
    H5Dclose(d->dfl);
    H5Gclose(d->g);
}

/* The in-memory file, finished and written to the output (when rc is 0);
 * closed in any case. */
static int h5_finish(hid_t f5, km_outfile *of, const char *out, int rc, char *err, size_t errlen)
{
    if (!rc && H5Fflush(f5, H5F_SCOPE_GLOBAL) < 0) {
        km_errf_(err, errlen, "%s: HDF5 could not finish the file", out);
        rc = KM_EIO;
    }
    ssize_t size = rc ? 0 : H5Fget_file_image(f5, NULL, 0);
    void *image = size > 0 ? malloc((size_t)size) : NULL;
    if (!rc && (!image || H5Fget_file_image(f5, image, (size_t)size) != size)) {
        km_errf_(err, errlen, "%s: HDF5 image of %zd bytes: out of memory", out, size);
        rc = KM_ENOMEM;
    }
    H5Fclose(f5);
    if (!rc)
        rc = write_all(km_outfile_fd(of), image, (size_t)size, out, err, errlen);
    free(image);
    return rc;
}

static int export_hdf5(km_pass *pass, const km_source_info *info, km_outfile *of,
                       const km_record_meta *m, const km_pass_info *pi, km_export_report *rep,
                       char *err, size_t errlen)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are ours to report */
    const char *out = km_outfile_target(of);
    /* The file is built in memory (HDF5's core driver, no backing store) and
     * written in one go by us: a full disk is then our write error, said and
     * cleaned up. (HDF5 1.10 crashes at exit after a failed write through its
     * own file driver.) Memory: the compressed file's size. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 16u << 20, 0);
    hid_t f5 = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f5 < 0) {
        km_errf_(err, errlen, "%s: HDF5 cannot create the file in memory", out);
        return KM_EIO;
    }
    hsize_t R = info->rows, C = info->cols;
    h5_root_attrs(f5, info, m, rep->events_from, pi->settings_text);
    h5_frames d = h5_frames_create(f5, R, C);
    size_t nev = 0, evcap = 0, cells = (size_t)R * C;
    km_event *evs = NULL;
    int64_t t0 = 0;
    hsize_t n = 0, b = 0; /* frames written, frames in the batch */
    float *bk = malloc(H5_BATCH * cells * sizeof(float));
    uint16_t *br = malloc(H5_BATCH * cells * sizeof(uint16_t));
    uint8_t *bf = malloc(H5_BATCH * cells);
    double bt[H5_BATCH];
    uint64_t bs[H5_BATCH];
    uint32_t bfl[H5_BATCH];
    int rc = !bk || !br || !bf ? KM_ENOMEM : KM_OK;
    for (;;) {
        const km_frame *f = NULL;
        const km_event *ev;
        size_t k = 0;
        int got = rc ? rc : km_pass_next(pass, &f, &ev, &k);
        if (got == KM_OK && !f)
            got = KM_EEOF; /* the events after the last frame are taken below */
        if (f) {
            if (!n && !b)
                t0 = f->device_ns;
            memcpy(bk + b * cells, f->kpa, cells * sizeof(float));
            memcpy(br + b * cells, f->raw, cells * sizeof(uint16_t));
            memcpy(bf + b * cells, f->cell_flags, cells);
            bt[b] = (double)(f->device_ns - t0) * 1e-9;
            bs[b] = f->seq;
            bfl[b] = f->flags;
            b++;
        }
        for (size_t i = 0; i < k && !rc; i++)
            if (!(rc = collect_events(&evs, &nev, &evcap, &ev[i])))
                evs[nev - 1].t_s -= (double)t0 * 1e-9;
        if (b && (b == H5_BATCH || got != KM_OK)) {
            if (h5_append(d.dk, H5T_NATIVE_FLOAT, 3, n, b, R, C, bk) ||
                h5_append(d.dr, H5T_NATIVE_UINT16, 3, n, b, R, C, br) ||
                h5_append(d.df, H5T_NATIVE_UINT8, 3, n, b, R, C, bf) ||
                h5_append(d.dt, H5T_NATIVE_DOUBLE, 1, n, b, 0, 0, bt) ||
                h5_append(d.ds, H5T_NATIVE_UINT64, 1, n, b, 0, 0, bs) ||
                h5_append(d.dfl, H5T_NATIVE_UINT32, 1, n, b, 0, 0, bfl)) {
                km_errf_(err, errlen, "%s: HDF5 write failed (out of memory?)", out);
                rc = KM_EIO;
                break;
            }
            n += b;
            b = 0;
        }
        if (got != KM_OK) {
            if (!rc)
                rc = got;
            break;
        }
    }
    free(bk);
    free(br);
    free(bf);
    if (rc == KM_EEOF)
        rc = KM_OK;
    rep->frames = n;
    rep->events = nev;
    if (!rc)
        h5_events(f5, evs, nev);
    h5_frames_close(&d);
    rc = h5_finish(f5, of, out, rc, err, errlen);
    free(evs);
    return rc;
}

int km_export(const char *in, const char *out, const km_export_options *o, km_export_report *rep,
              char *err, size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    if (err && errlen)
        err[0] = 0;
    /* the input as a path (a URI's path, or the bare path: '?' and '%' in
     * a file name are the name's, not a query) */
    char path[1100];
    int is_uri = strstr(in, "://") != NULL;
    if (is_uri) {
        km_uri u;
        if (km_uri_parse(in, &u, err, errlen))
            return KM_EINVAL;
        snprintf(path, sizeof path, "%s", u.path);
    } else {
        snprintf(path, sizeof path, "%s", in);
    }
    const char *inputs[] = {path, NULL};
    km_outfile *of;
    int rc = km_outfile_open(out, o->force ? KM_OUT_FORCE : 0, inputs, &of, err, errlen);
    if (rc)
        return rc;
    km_record_meta m;
    km_source_stats ss;
    if (o->format == KM_EXPORT_CSV) {
        /* frames only: a conversion, no detectors */
        km_source *src;
        if ((rc = km_source_open(in, &src, err, errlen))) {
            km_outfile_abort(of);
            return rc;
        }
        km_source_info info;
        km_source_describe(src, &info);
        if (o->progress)
            km_source_set_progress(src, o->progress, o->progress_user);
        if (o->note)
            km_source_set_notify(src, o->note, o->note_user);
        read_meta(path, &m);
        if (o->deidentify)
            km_record_meta_deidentify(&m);
        rc = export_csv(src, &info, of, &m, rep, err, errlen);
        km_source_stats_get(src, &ss);
        km_source_close(src);
    } else if (o->format == KM_EXPORT_EDF || o->format == KM_EXPORT_HDF5) {
        /* the one offline pass: the live session's events when recorded */
        km_pass_options po = {.input = in, .reanalyze = o->reanalyze, .set = o->set,
                              .fast_plan = true, .progress = o->progress,
                              .progress_user = o->progress_user, .note = o->note,
                              .note_user = o->note_user};
        km_pass *pass;
        if ((rc = km_pass_open(&po, &pass, err, errlen))) {
            km_outfile_abort(of);
            return rc;
        }
        const km_pass_info *pi = km_pass_describe(pass);
        m = pi->meta; /* a .kmr's header, read by the pass (zeros otherwise) */
        if (o->deidentify)
            km_record_meta_deidentify(&m);
        snprintf(rep->events_from, sizeof rep->events_from, "%s", km_pass_events_from_text(pass));
        rc = o->format == KM_EXPORT_EDF
                 ? export_edf(pass, &pi->source, of, &m, rep, err, errlen)
                 : export_hdf5(pass, &pi->source, of, &m, pi, rep, err, errlen);
        km_pass_source_stats(pass, &ss);
        ss.malformed += pi->event_damage.spans;
        km_pass_close(pass);
    } else {
        km_errf_(err, errlen, "unknown export format");
        km_outfile_abort(of);
        return KM_EINVAL;
    }
    rep->skipped = ss.malformed;
    if (rc) {
        if (err && !err[0])
            km_errf_(err, errlen, "%s: %s", out, km_strerror(rc));
        km_outfile_abort(of); /* nothing half-written is left, the target is untouched */
        return rc;
    }
    return km_outfile_commit(of, err, errlen);
}
