/* pass.c: the one offline pass (knotmat/pass.h): source -> detectors, with
 * the events of a live session's recording read back and given out at the
 * frame on which they were decided. Touches: the input file(s). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "knotmat/pass.h"

#define PASS_MAX_EVENTS 64 /* events one frame can give (km_dsp_process's out) */
#define PASS_MAX_MARKS 16  /* the person's marks given out with one frame (more: the next) */

struct km_pass {
    km_pass_info info;
    km_source *src;
    km_dsp *dsp;
    km_frame *frame;
    km_event *recorded;      /* the file's events, decision order */
    size_t nrec, next_rec;
    km_event out[PASS_MAX_EVENTS + PASS_MAX_MARKS];
    int ended;
};

/* The recorded event's decision time: what the person heard it at. */
static double decided_at(const km_event *e)
{
    return isfinite(e->detected_t_s) ? e->detected_t_s : e->t_s;
}

static int read_recorded(km_pass *p, const km_pass_options *o, char *err, size_t errlen)
{
    km_uri u;
    if (km_uri_parse(o->input, &u, err, errlen))
        return KM_EINVAL;
    km_kmr_reader *kr;
    char why[256];
    if (km_kmr_open(u.path, &kr, why, sizeof why) != KM_OK)
        return KM_OK; /* the source opened it: it is not ours to judge twice */
    p->info.meta = *km_kmr_meta(kr);
    p->info.have_meta = true;
    km_kmr_close(kr);
    if (!p->info.meta.settings[0])
        return KM_OK; /* `knotmat record`: frames only, no detectors ran */
    km_dsp_config rec;
    km_dsp_config_default(&rec);
    char e2[256];
    if (km_dsp_config_parse(&rec, p->info.meta.settings, e2, sizeof e2) && o->note) {
        /* a setting this knotmat does not know (a newer one recorded it) */
        char text[1400];
        snprintf(text, sizeof text, "%s: recorded settings: %s (left at its default)", u.path,
                 e2);
        o->note(o->note_user, KM_NOTE_MALFORMED, text);
    }
    p->info.settings = rec;
    p->info.settings_recorded = true;
    int rc = km_kmr_read_events(u.path, &p->recorded, &p->nrec, &p->info.event_damage, err,
                                errlen);
    p->info.recorded_events = p->nrec;
    if (!rc && o->reanalyze) {
        /* the detectors decide again; the person's own marks are kept */
        size_t k = 0;
        for (size_t i = 0; i < p->nrec; i++)
            if (p->recorded[i].type == KM_EV_MARK)
                p->recorded[k++] = p->recorded[i];
        p->nrec = k;
    }
    return rc;
}

int km_pass_open(const km_pass_options *o, km_pass **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    km_pass *p = calloc(1, sizeof *p);
    if (!p)
        return KM_ENOMEM;
    int rc = km_source_open(o->input, &p->src, err, errlen);
    if (rc) {
        free(p);
        return rc;
    }
    km_source_describe(p->src, &p->info.source);
    if (o->progress)
        km_source_set_progress(p->src, o->progress, o->progress_user);
    if (o->note)
        km_source_set_notify(p->src, o->note, o->note_user);
    km_dsp_config_default(&p->info.settings);
    if (!strcmp(p->info.source.kind, "kmr") && (rc = read_recorded(p, o, err, errlen)))
        goto fail;
    int recorded = p->info.settings_recorded && !o->reanalyze;
    p->info.events_from = recorded ? KM_PASS_EVENTS_RECORDED : KM_PASS_EVENTS_DETECTED;
    if (recorded && o->set && o->set[0]) {
        km_errf_(err, errlen, "%s holds the live session's events, decided with the settings "
                 "it ran with: detector settings apply only to a re-analysis (--reanalyze)",
                 o->input);
        rc = KM_EINVAL;
        goto fail;
    }
    if (!recorded && o->set && (rc = km_dsp_config_parse(&p->info.settings, o->set, err, errlen)))
        goto fail;
    km_dsp_config run = p->info.settings;
    if (o->fast_plan)
        run.fftw_measure = 0;
    km_dsp_config_format(&p->info.settings, p->info.settings_text, sizeof p->info.settings_text);
    const km_source_info *si = &p->info.source;
    /* the stated rate, or 0: the detectors measure it from the frames' times */
    if ((rc = km_dsp_new(&run, si->rows, si->cols, si->pitch_mm, si->rate_hz > 0 ? si->rate_hz : 0,
                         &p->dsp, err, errlen)))
        goto fail;
    if (!(p->frame = km_frame_new(km_source_max_cells(p->src)))) {
        rc = KM_ENOMEM;
        goto fail;
    }
    *out = p;
    return KM_OK;
fail:
    km_pass_close(p);
    return rc;
}

const km_pass_info *km_pass_describe(const km_pass *p) { return &p->info; }

const char *km_pass_events_from_text(const km_pass *p)
{
    if (p->info.events_from == KM_PASS_EVENTS_RECORDED)
        return "as recorded live";
    return p->info.settings_recorded ? "re-analysed, not the live ones"
                                     : "detected on reading (the input holds none)";
}

int km_pass_next(km_pass *p, const km_frame **f, const km_event **ev, size_t *n)
{
    *f = NULL;
    *ev = p->out;
    *n = 0;
    if (p->ended)
        return KM_EEOF;
    int rc = km_source_read(p->src, p->frame);
    if (rc == KM_EEOF) {
        /* the recorded events decided after the last frame (the session's end) */
        p->ended = 1;
        *ev = p->recorded + p->next_rec;
        *n = p->nrec - p->next_rec;
        p->next_rec = p->nrec;
        return KM_OK;
    }
    if (rc)
        return rc;
    *f = p->frame;
    size_t got = km_dsp_process(p->dsp, p->frame, p->out, PASS_MAX_EVENTS);
    double t = (double)p->frame->device_ns * 1e-9;
    if (p->info.events_from == KM_PASS_EVENTS_DETECTED) {
        /* a re-analysis: the recorded marks (the only events kept) by now */
        while (p->next_rec < p->nrec && got < PASS_MAX_EVENTS + PASS_MAX_MARKS &&
               decided_at(&p->recorded[p->next_rec]) <= t + 1e-9)
            p->out[got++] = p->recorded[p->next_rec++];
        *n = got;
        return KM_OK;
    }
    /* recorded: the ones decided by now, in the order they were decided */
    size_t first = p->next_rec;
    while (p->next_rec < p->nrec && decided_at(&p->recorded[p->next_rec]) <= t + 1e-9)
        p->next_rec++;
    *ev = p->recorded + first;
    *n = p->next_rec - first;
    return KM_OK;
}

size_t km_pass_hotspots(const km_pass *p, const km_hotspot **out)
{
    return km_dsp_hotspots(p->dsp, out);
}

void km_pass_dsp_stats(const km_pass *p, km_dsp_stats *out) { km_dsp_stats_get(p->dsp, out); }

void km_pass_source_stats(const km_pass *p, km_source_stats *out)
{
    km_source_stats_get(p->src, out);
}

void km_pass_close(km_pass *p)
{
    if (!p)
        return;
    km_dsp_free(p->dsp);
    km_frame_free(p->frame);
    km_source_close(p->src);
    free(p->recorded);
    free(p);
}
