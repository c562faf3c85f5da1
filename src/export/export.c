/* export.c: recordings to CSV and EDF+. Reads any file source, runs the
 * detectors for the events and the hotspot force (EDF+), writes the output.
 * Offline: allocation and I/O are fine here. Touches: the input and the
 * output file. */
#include <edflib.h>
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
            if (nbins + 1 > cap) {
                cap = cap ? cap * 2 : 4096;
                for (int c = 0; c < NCH; c++) {
                    double *p = realloc(ch[c], cap * sizeof(double));
                    if (!p) {
                        rc = KM_ENOMEM;
                        goto out;
                    }
                    ch[c] = p;
                }
            }
            for (int c = 0; c < NCH; c++) {
                if (accn)
                    last[c] = acc[c] / accn;
                ch[c][nbins] = last[c];
                acc[c] = 0;
            }
            accn = 0;
            nbins++;
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
        if (nbins + 1 > cap) {
            cap = cap ? cap * 2 : 16;
            for (int c = 0; c < NCH; c++) {
                double *p = realloc(ch[c], cap * sizeof(double));
                if (!p) {
                    rc = KM_ENOMEM;
                    goto out;
                }
                ch[c] = p;
            }
        }
        for (int c = 0; c < NCH; c++)
            ch[c][nbins] = acc[c] / accn;
        nbins++;
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
    km_record_meta m;
    read_meta(in, &m);
    if (o->format == KM_EXPORT_CSV)
        rc = export_csv(src, &info, out, &m, o->deidentify, rep, err, errlen);
    else if (o->format == KM_EXPORT_EDF)
        rc = export_edf(src, &info, out, &m, o->deidentify, rep, err, errlen);
    else {
        km_errf_(err, errlen, "unknown export format");
        rc = KM_EINVAL;
    }
    km_source_close(src);
    return rc;
}
