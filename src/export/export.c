/* export.c: recordings to CSV and EDF+. Reads any file source, runs the
 * detectors for the events and the hotspot force (EDF+), writes the output.
 * Offline: allocation and I/O are fine here. Touches: the input and the
 * output file. */
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
#include "knotmat/files.h"
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

/* Refuse to overwrite unless asked; report a clear error. */
static int check_output(const char *out, bool force, char *err, size_t errlen)
{
    if (!force && access(out, F_OK) == 0) {
        km_errf_(err, errlen, "%s exists (use --force to overwrite)", out);
        return KM_EBUSY;
    }
    return KM_OK;
}

static int read_meta(const char *in, km_record_meta *m)
{
    memset(m, 0, sizeof *m);
    km_kmr_reader *r;
    if (km_kmr_open(in, &r, NULL, 0) != KM_OK)
        return 0;
    *m = *km_kmr_meta(r);
    km_kmr_close(r);
    return 1;
}

static int export_csv(km_source *src, const km_source_info *info, const char *out,
                      const km_record_meta *m, bool deid, km_export_report *rep, char *err,
                      size_t errlen)
{
    char subj[96], sess[96];
    snprintf(subj, sizeof subj, "subject=%s", deid ? "" : m->subject);
    snprintf(sess, sizeof sess, "session=%s", m->session);
    const char *extra[] = {"source=knotmat export", subj, sess, NULL};
    km_csv_writer *w;
    int rc = km_csv_writer_open(out, info->rows, info->cols, info->pitch_mm, info->rate_hz,
                                extra, &w, err, errlen);
    if (rc)
        return rc;
    km_frame *f = km_frame_new(km_source_max_cells(src));
    int64_t t0 = 0;
    int first = 1;
    while (!rc && (rc = km_source_read(src, f)) == KM_OK) {
        if (first) {
            t0 = f->device_ns;
            first = 0;
        }
        rc = km_csv_writer_write(w, (f->device_ns - t0) * 1e-9, f);
        rep->frames += !rc;
    }
    km_frame_free(f);
    int crc = km_csv_writer_close(w, err, errlen);
    if (rc == KM_EEOF)
        rc = KM_OK;
    return rc ? rc : crc;
}

/* Append one 10 Hz bin (NCH values) to the channel arrays, growing them. */
static int push_bin(double *ch[NCH], size_t *cap, size_t *nbins, const double v[NCH])
{
    if (*nbins + 1 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 4096;
        for (int c = 0; c < NCH; c++) {
            double *p = realloc(ch[c], ncap * sizeof(double));
            if (!p)
                return KM_ENOMEM;
            ch[c] = p;
        }
        *cap = ncap;
    }
    for (int c = 0; c < NCH; c++)
        ch[c][*nbins] = v[c];
    (*nbins)++;
    return KM_OK;
}

static int export_edf(km_source *src, const km_source_info *info, const char *out,
                      const km_record_meta *m, bool deid, km_export_report *rep, char *err,
                      size_t errlen)
{
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    cfg.fftw_measure = 0;
    km_dsp *d;
    double rate = info->rate_hz > 0 ? info->rate_hz : 100;
    int rc = km_dsp_new(&cfg, info->rows, info->cols, info->pitch_mm, rate, &d, err, errlen);
    if (rc)
        return rc;
    /* pass 1: channels at 10 Hz (bin means; empty bins repeat) and events */
    size_t cap = 0, nbins = 0, nev = 0, evcap = 0;
    double *ch[NCH] = {0};
    km_event *evs = NULL;
    km_frame *f = km_frame_new(km_source_max_cells(src));
    double acc[NCH] = {0}, last[NCH] = {0};
    int accn = 0;
    int64_t t0 = 0, cur = -1;
    int first = 1;
    km_event ev[64];
    while ((rc = km_source_read(src, f)) == KM_OK) {
        if (first) {
            t0 = f->device_ns;
            first = 0;
        }
        size_t n = km_dsp_process(d, f, ev, 64);
        for (size_t i = 0; i < n; i++) {
            if (ev[i].type == KM_EV_HOTSPOT || ev[i].type == KM_EV_BREATHING)
                continue;
            if (nev == evcap) {
                evcap = evcap ? evcap * 2 : 64;
                km_event *ne = realloc(evs, evcap * sizeof *ne);
                if (!ne) {
                    rc = KM_ENOMEM;
                    break;
                }
                evs = ne;
            }
            evs[nev++] = ev[i];
        }
        rep->frames++;
        int64_t bin = (f->device_ns - t0) / (1000000000 / EDF_HZ);
        if (cur < 0)
            cur = bin;
        while (bin > cur) { /* close bin `cur`, repeat into empty ones */
            for (int c = 0; c < NCH; c++) {
                if (accn)
                    last[c] = acc[c] / accn;
                acc[c] = 0;
            }
            accn = 0;
            if ((rc = push_bin(ch, &cap, &nbins, last)))
                goto out;
            cur++;
        }
        if (f->flags & KM_FRAME_CORRUPT)
            continue;
        km_frame_summary s;
        km_frame_summarize(f, &s);
        const km_hotspot *h;
        size_t nh = km_dsp_hotspots(d, &h);
        km_dsp_stats st;
        km_dsp_stats_get(d, &st);
        double v[NCH] = {s.total_force_n, isfinite(s.cop_x_mm) ? s.cop_x_mm : 0,
                         isfinite(s.cop_y_mm) ? s.cop_y_mm : 0, s.contact_cm2, s.peak_kpa,
                         nh ? h[0].force_n : 0, isfinite(st.breath_bpm) ? st.breath_bpm : 0};
        for (int c = 0; c < NCH; c++)
            acc[c] += fmin(fmax(v[c], channels[c].min), channels[c].max);
        accn++;
    }
    if (rc == KM_EEOF)
        rc = KM_OK;
    if (!rc && accn) { /* the last, open bin */
        for (int c = 0; c < NCH; c++)
            last[c] = acc[c] / accn;
        rc = push_bin(ch, &cap, &nbins, last);
    }
    if (rc)
        goto out;
    /* pass 2: the EDF+ file, whole 1 s data records */
    int hdl = edfopen_file_writeonly(out, EDFLIB_FILETYPE_EDFPLUS, NCH);
    if (hdl < 0) {
        km_errf_(err, errlen, "%s: EDFlib cannot create the file (error %d)", out, hdl);
        rc = KM_EIO;
        goto out;
    }
    for (int c = 0; c < NCH; c++) {
        edf_set_samplefrequency(hdl, c, EDF_HZ);
        edf_set_physical_maximum(hdl, c, channels[c].max);
        edf_set_physical_minimum(hdl, c, channels[c].min);
        edf_set_digital_maximum(hdl, c, 32767);
        edf_set_digital_minimum(hdl, c, -32768);
        edf_set_label(hdl, c, channels[c].label);
        edf_set_physical_dimension(hdl, c, channels[c].dim);
    }
    int y = 1985, mo = 1, dd = 1, hh = 0, mi = 0, ss = 0;
    if (!deid && m->start_utc[0])
        sscanf(m->start_utc, "%d-%d-%dT%d:%d:%d", &y, &mo, &dd, &hh, &mi, &ss);
    edf_set_startdatetime(hdl, y, mo, dd, hh, mi, ss);
    edf_set_patientcode(hdl, deid ? "X" : (m->subject[0] ? m->subject : "X"));
    edf_set_patientname(hdl, "X");
    char equip[128];
    snprintf(equip, sizeof equip, "%s %s", m->device_kind[0] ? m->device_kind : info->kind,
             deid ? "" : m->serial);
    edf_set_equipment(hdl, equip);
    if (!deid && m->session[0]) {
        char add[128];
        snprintf(add, sizeof add, "session %s", m->session);
        edf_set_recording_additional(hdl, add);
    }
    size_t records = nbins / EDF_HZ;
    double buf[EDF_HZ];
    for (size_t r = 0; r < records && !rc; r++)
        for (int c = 0; c < NCH && !rc; c++) {
            memcpy(buf, ch[c] + r * EDF_HZ, sizeof buf);
            if (edfwrite_physical_samples(hdl, buf)) {
                km_errf_(err, errlen, "%s: EDF write failed", out);
                rc = KM_EIO;
            }
        }
    for (size_t i = 0; i < nev && !rc; i++) {
        double onset = evs[i].t_s - t0 * 1e-9;
        if (onset < 0 || onset > (double)records)
            continue;
        edfwrite_annotation_utf8(hdl, llround(onset * 10000), -1,
                                 km_event_type_name(evs[i].type));
        rep->annotations++;
    }
    rep->events = nev;
    rep->records = records;
    if (edfclose_file(hdl) && !rc) {
        km_errf_(err, errlen, "%s: EDF close failed", out);
        rc = KM_EIO;
    }
out:
    for (int c = 0; c < NCH; c++)
        free(ch[c]);
    free(evs);
    km_frame_free(f);
    km_dsp_free(d);
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
static hid_t h5_series(hid_t g, const char *name, hid_t ftype, int rank, hsize_t rows, hsize_t cols)
{
    hsize_t dims[3] = {0, rows, cols}, maxd[3] = {H5S_UNLIMITED, rows, cols};
    hsize_t chunk[3] = {rank == 3 ? 1 : 1024, rows, cols};
    hid_t sp = H5Screate_simple(rank, dims, maxd);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, rank, chunk);
    H5Pset_deflate(pl, 4);
    hid_t d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    H5Sclose(sp);
    return d;
}

static int h5_append(hid_t d, hid_t mtype, int rank, hsize_t n, hsize_t rows, hsize_t cols,
                     const void *buf)
{
    hsize_t ext[3] = {n + 1, rows, cols}, start[3] = {n, 0, 0}, count[3] = {1, rows, cols};
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

static int export_hdf5(km_source *src, const km_source_info *info, const char *out,
                       const km_record_meta *m, bool deid, km_export_report *rep, char *err,
                       size_t errlen)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are ours to report */
    unlink(out); /* check_output allowed it */
    hid_t f5 = H5Fcreate(out, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (f5 < 0) {
        km_errf_(err, errlen, "%s: HDF5 cannot create the file", out);
        return KM_EIO;
    }
    hsize_t R = info->rows, C = info->cols;
    h5_attr_str(f5, "format", "knotmat-hdf5");
    h5_attr_num(f5, "version", 1);
    h5_attr_num(f5, "rows", (double)R);
    h5_attr_num(f5, "cols", (double)C);
    char pitch[32]; /* the float's shortest decimal: 12.7, not 12.699999809 */
    snprintf(pitch, sizeof pitch, "%.7g", (double)info->pitch_mm);
    h5_attr_num(f5, "pitch_mm", strtod(pitch, NULL));
    h5_attr_num(f5, "rate_hz", info->rate_hz);
    h5_attr_str(f5, "units", "kPa");
    h5_attr_str(f5, "coordinates", "x_mm = column * pitch_mm, y_mm = row * pitch_mm");
    h5_attr_str(f5, "device_kind", m->device_kind[0] ? m->device_kind : info->kind);
    h5_attr_str(f5, "software", "knotmat " KM_VERSION_STRING);
    h5_attr_str(f5, "start_utc", deid ? "1985-01-01T00:00:00Z" : m->start_utc);
    h5_attr_str(f5, "subject", deid ? "" : m->subject);
    h5_attr_str(f5, "session", m->session);
    h5_attr_str(f5, "operator", deid ? "" : m->operator_name);
    h5_attr_str(f5, "serial", deid ? "" : m->serial);
    h5_attr_str(f5, "notes", deid ? "" : m->notes);
    hid_t g = H5Gcreate2(f5, "frames", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dk = h5_series(g, "kpa", H5T_IEEE_F32LE, 3, R, C);
    hid_t dr = h5_series(g, "raw", H5T_STD_U16LE, 3, R, C);
    hid_t df = h5_series(g, "cell_flags", H5T_STD_U8LE, 3, R, C);
    hid_t dt = h5_series(g, "t_s", H5T_IEEE_F64LE, 1, 0, 0);
    hid_t ds = h5_series(g, "seq", H5T_STD_U64LE, 1, 0, 0);
    hid_t dfl = h5_series(g, "flags", H5T_STD_U32LE, 1, 0, 0);
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    cfg.fftw_measure = 0;
    km_dsp *d = NULL;
    int rc = km_dsp_new(&cfg, info->rows, info->cols, info->pitch_mm,
                        info->rate_hz > 0 ? info->rate_hz : 100, &d, err, errlen);
    km_frame *f = km_frame_new(km_source_max_cells(src));
    size_t nev = 0, evcap = 0;
    km_event *evs = NULL, ev[64];
    int64_t t0 = 0;
    hsize_t n = 0;
    while (!rc && (rc = km_source_read(src, f)) == KM_OK) {
        if (!n)
            t0 = f->device_ns;
        double t = (f->device_ns - t0) * 1e-9;
        if (h5_append(dk, H5T_NATIVE_FLOAT, 3, n, R, C, f->kpa) ||
            h5_append(dr, H5T_NATIVE_UINT16, 3, n, R, C, f->raw) ||
            h5_append(df, H5T_NATIVE_UINT8, 3, n, R, C, f->cell_flags) ||
            h5_append(dt, H5T_NATIVE_DOUBLE, 1, n, 0, 0, &t) ||
            h5_append(ds, H5T_NATIVE_UINT64, 1, n, 0, 0, &f->seq) ||
            h5_append(dfl, H5T_NATIVE_UINT32, 1, n, 0, 0, &f->flags)) {
            km_errf_(err, errlen, "%s: HDF5 write failed (disk full?)", out);
            rc = KM_EIO;
            break;
        }
        n++;
        size_t k = km_dsp_process(d, f, ev, 64);
        for (size_t i = 0; i < k; i++) {
            if (nev == evcap) {
                evcap = evcap ? evcap * 2 : 64;
                km_event *ne = realloc(evs, evcap * sizeof *ne);
                if (!ne) {
                    rc = KM_ENOMEM;
                    break;
                }
                evs = ne;
            }
            evs[nev] = ev[i];
            evs[nev].t_s -= t0 * 1e-9;
            nev++;
        }
    }
    if (rc == KM_EEOF)
        rc = KM_OK;
    rep->frames = n;
    rep->events = nev;
    if (!rc) {
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
    H5Dclose(dk);
    H5Dclose(dr);
    H5Dclose(df);
    H5Dclose(dt);
    H5Dclose(ds);
    H5Dclose(dfl);
    H5Gclose(g);
    if (H5Fclose(f5) < 0 && !rc) {
        km_errf_(err, errlen, "%s: HDF5 close failed", out);
        rc = KM_EIO;
    }
    free(evs);
    km_frame_free(f);
    km_dsp_free(d);
    return rc;
}

int km_export(const char *in, const char *out, const km_export_options *o, km_export_report *rep,
              char *err, size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    int rc = check_output(out, o->force, err, errlen);
    if (rc)
        return rc;
    char uri[1200];
    snprintf(uri, sizeof uri, "file://%s", in);
    km_source *src;
    if ((rc = km_source_open(uri, &src, err, errlen)))
        return rc;
    km_source_info info;
    km_source_describe(src, &info);
    if (o->progress)
        km_source_set_progress(src, o->progress, o->progress_user);
    km_record_meta m;
    read_meta(in, &m);
    if (o->format == KM_EXPORT_CSV)
        rc = export_csv(src, &info, out, &m, o->deidentify, rep, err, errlen);
    else if (o->format == KM_EXPORT_EDF)
        rc = export_edf(src, &info, out, &m, o->deidentify, rep, err, errlen);
    else if (o->format == KM_EXPORT_HDF5)
        rc = export_hdf5(src, &info, out, &m, o->deidentify, rep, err, errlen);
    else {
        km_errf_(err, errlen, "unknown export format");
        rc = KM_EINVAL;
    }
    km_source_close(src);
    /* exports hold the same personal data as the recording: same mode */
    if (!rc)
        chmod(out, 0600);
    return rc;
}
