/* cmd_info.c: knotmat info FILE: geometry, duration, frame count and every
 * defect found, reading the file once, streaming. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli.h"
#include "knotmat/files.h"
#include "knotmat/record.h"
#include "knotmat/stats.h"

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat info [OPTIONS] FILE...\n"
            "Describe recordings (.kmr, knotmat CSV or PmatData text): geometry, pitch, units,\n"
            "duration, frame count, load, and defects: malformed lines (with line and\n"
            "reason), corrupt frames, saturated and dead cells, time gaps, load creep.\n\n"
            "  -j, --json       one JSON object per file\n"
            "      --max-report N  print at most N defect lines per file (default 20)\n"
            "  -h, --help       this text\n\n"
            "Exit status: 0 when every file could be read (defects are reported, not\n"
            "fatal), 1 when a file could not be opened or is not a frame file.\n");
}

static void jstr(json_object *o, const char *key, const char *v)
{
    char buf[2200];
    json_object_object_add(o, key, json_object_new_string(cli_utf8(v, buf, sizeof buf)));
}

static void jnum(json_object *o, const char *key, double v, int decimals)
{
    if (!isfinite(v)) {
        json_object_object_add(o, key, NULL);
        return;
    }
    char t[64];
    snprintf(t, sizeof t, "%.*f", decimals, v);
    json_object_object_add(o, key, json_object_new_double_s(v, t));
}

static void jint(json_object *o, const char *key, int64_t v)
{
    json_object_object_add(o, key, json_object_new_int64(v));
}

static void jbool(json_object *o, const char *key, int v)
{
    json_object_object_add(o, key, json_object_new_boolean(v));
}

static void jprint(json_object *o)
{
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static void jtiming(json_object *o, const km_timing_report *t)
{
    jnum(o, "duration_s", t->duration_s, 3);
    jnum(o, "measured_rate_hz", t->rate_hz, 3);
    jnum(o, "jitter_ms", t->jitter_ms, 2);
    jint(o, "time_gaps", (int64_t)t->gaps);
    jnum(o, "lost_s", t->lost_s, 3);
    jnum(o, "lost_share", t->lost_share, 5);
}

static void print_timing(const km_timing_report *t, double stated)
{
    printf("  frames %llu, duration %.2f s, rate %.3f Hz measured from the frames' times "
           "(jitter %.2f ms)", (unsigned long long)t->frames, t->duration_s, t->rate_hz,
           t->jitter_ms);
    if (stated > 0 && t->rate_hz > 0 && fabs(t->rate_hz - stated) > 0.05 * stated)
        printf("; the file states %g Hz", stated);
    printf("\n");
    if (t->gaps)
        printf("  gaps: %llu, %.2f s missing (%.2f %% of the recording)\n",
               (unsigned long long)t->gaps, t->lost_s, 100 * t->lost_share);
}

/* .kmr recordings: the header's metadata, what check finds, and the frames'
 * own times (damaged spans are skipped and counted). */
static int info_kmr(const char *path, int json)
{
    char err[512];
    km_kmr_reader *r;
    if (km_kmr_open(path, &r, err, sizeof err))
        return cli_fail("info", EXIT_FAIL, "%s", err);
    km_record_meta m = *km_kmr_meta(r);
    km_frame *f = km_frame_new((uint32_t)m.rows * m.cols);
    km_timing *tm = km_timing_new();
    int rc;
    if (!f || !tm) {
        km_frame_free(f);
        km_timing_free(tm);
        km_kmr_close(r);
        return cli_fail("info", EXIT_FAIL, "out of memory");
    }
    while ((rc = km_kmr_next_frame(r, f, err, sizeof err)) == KM_OK || rc == KM_EFORMAT)
        if (rc == KM_OK)
            km_timing_add(tm, f->device_ns);
    km_kmr_close(r);
    km_frame_free(f);
    km_timing_report t;
    km_timing_get(tm, &t);
    km_timing_free(tm);
    km_kmr_report rep;
    rc = km_kmr_check(path, &rep);
    if (json) {
        json_object *o = json_object_new_object();
        jstr(o, "file", path);
        jstr(o, "format", "kmr");
        jint(o, "rows", m.rows);
        jint(o, "cols", m.cols);
        jnum(o, "pitch_mm", m.pitch_mm, 4);
        jnum(o, "rate_hz", m.rate_hz, 3);
        jint(o, "frames", (int64_t)rep.frames);
        jtiming(o, &t);
        jint(o, "events", (int64_t)rep.events);
        jint(o, "gaps", (int64_t)rep.gaps);
        jint(o, "gap_frames", (int64_t)rep.gap_frames);
        jbool(o, "whole", rc == KM_OK);
        jbool(o, "closed", rep.ended);
        jint(o, "damaged_spans", (int64_t)rep.damaged_spans);
        jint(o, "damaged_bytes", (int64_t)rep.damaged_bytes);
        jint(o, "first_bad_offset", rep.first_bad_offset);
        jstr(o, "start_utc", m.start_utc);
        jstr(o, "device", m.device_kind);
        jstr(o, "vid_pid", m.vid_pid);
        jstr(o, "serial", m.serial);
        jstr(o, "subject", m.subject);
        jstr(o, "session", m.session);
        jstr(o, "operator", m.operator_name);
        jstr(o, "notes", m.notes);
        jstr(o, "calibration", m.calibration);
        jstr(o, "software", m.software);
        jstr(o, "settings", m.settings);
        jstr(o, "cue_scheme", m.cue_scheme);
        jbool(o, "live_events", m.settings[0] != 0);
        jprint(o);
        return EXIT_OK;
    }
    char a[600], b[600], c[600], d[600], e[600];
    printf("%s: knotmat recording (.kmr), %u rows x %u cols, pitch %g mm, %g Hz stated, units "
           "%s\n", cli_term_safe(path, a, sizeof a), m.rows, m.cols, (double)m.pitch_mm,
           m.rate_hz, cli_term_safe(m.units, b, sizeof b));
    printf("  started %s, device %s%s%s", cli_term_safe(m.start_utc, a, sizeof a),
           cli_term_safe(m.device_kind, b, sizeof b), m.vid_pid[0] ? " " : "",
           cli_term_safe(m.vid_pid, c, sizeof c));
    printf("%s%s, subject '%s', session '%s', operator '%s'\n", m.serial[0] ? " serial " : "",
           cli_term_safe(m.serial, a, sizeof a), cli_term_safe(m.subject, b, sizeof b),
           cli_term_safe(m.session, d, sizeof d), cli_term_safe(m.operator_name, e, sizeof e));
    if (m.notes[0])
        printf("  notes: %s\n", cli_term_safe(m.notes, a, sizeof a));
    print_timing(&t, m.rate_hz);
    printf("  events %llu%s, gap blocks %llu (%llu frames lost while recording)\n",
           (unsigned long long)rep.events,
           m.settings[0] ? " (the live session's: report and export show these)"
                         : " (no detectors ran while recording)",
           (unsigned long long)rep.gaps, (unsigned long long)rep.gap_frames);
    if (m.settings[0] || m.software[0])
        printf("  recorded by %s, cues %s, detector settings: %s\n",
               cli_term_safe(m.software[0] ? m.software : "?", a, sizeof a),
               cli_term_safe(m.cue_scheme[0] ? m.cue_scheme : "-", b, sizeof b),
               cli_term_safe(m.settings[0] ? m.settings : "none", c, sizeof c));
    if (rep.damaged_spans)
        printf("  defects: %llu damaged spans (%llu bytes, the first at byte %lld: %s): 'knotmat "
               "recover' keeps every whole block\n", (unsigned long long)rep.damaged_spans,
               (unsigned long long)rep.damaged_bytes, (long long)rep.first_bad_offset,
               cli_term_safe(rep.problem, a, sizeof a));
    else if (!rep.ended)
        printf("  defects: not closed (%s)\n", cli_term_safe(rep.problem, a, sizeof a));
    else if (rep.gap_frames || t.gaps)
        printf("  defects: frames were lost (see gaps)\n");
    else
        printf("  defects: none\n");
    return EXIT_OK;
}

typedef struct file_tally {
    uint64_t frames, malformed, corrupt, sat_frames, reported;
    uint32_t max_dead;
    double force_first, force_last, force_max, peak_max;
} file_tally;

static void tally_frame(file_tally *c, const km_frame *f)
{
    if (f->n_saturated)
        c->sat_frames++;
    if (f->n_dead > c->max_dead)
        c->max_dead = f->n_dead;
    km_frame_summary s;
    km_frame_summarize(f, &s);
    if (isnan(c->force_first) && s.total_force_n > 0)
        c->force_first = s.total_force_n;
    c->force_last = s.total_force_n;
    c->force_max = fmax(c->force_max, s.total_force_n);
    c->peak_max = fmax(c->peak_max, s.peak_kpa);
}

static void info_file_json(const char *path, const km_file_meta *m, const file_tally *c,
                           const km_timing_report *t)
{
    double creep = c->force_first > 0 ? 100 * (c->force_last - c->force_first) / c->force_first
                                      : 0;
    json_object *o = json_object_new_object();
    jstr(o, "file", path);
    jstr(o, "format", km_file_format_name(m->format));
    jint(o, "rows", m->rows);
    jint(o, "cols", m->cols);
    jnum(o, "pitch_mm", m->pitch_mm, 4);
    jstr(o, "units", m->units);
    jbool(o, "calibrated", m->calibrated);
    jint(o, "frames", (int64_t)c->frames);
    jtiming(o, t);
    jnum(o, "rate_hz", t->rate_hz > 0 ? t->rate_hz : m->rate_hz, 3);
    jnum(o, "stated_rate_hz", m->rate_hz, 3);
    jint(o, "malformed", (int64_t)c->malformed);
    jint(o, "corrupt", (int64_t)c->corrupt);
    jint(o, "saturated_frames", (int64_t)c->sat_frames);
    jint(o, "dead_cells", c->max_dead);
    jnum(o, "max_force_n", c->force_max, 1);
    jnum(o, "max_peak_kpa", c->peak_max, 1);
    jnum(o, "load_change_pct", creep, 1);
    jprint(o);
}

static void info_file_text(const char *path, const km_file_meta *m, const file_tally *c,
                           const km_timing_report *t, int max_report)
{
    char a[600], b[64];
    double creep = c->force_first > 0 ? 100 * (c->force_last - c->force_first) / c->force_first
                                      : 0;
    printf("%s: %s, %u rows x %u cols, pitch %g mm, units %s%s\n",
           cli_term_safe(path, a, sizeof a), km_file_format_name(m->format), m->rows, m->cols,
           (double)m->pitch_mm, cli_term_safe(m->units, b, sizeof b),
           m->calibrated ? "" : " (kPa from a default factor, not calibrated)");
    print_timing(t, m->rate_hz);
    printf("  load: max total force %.1f N, max peak %.1f kPa, change first->last %+.1f %%\n",
           c->force_max, c->peak_max, creep);
    printf("  defects: %llu malformed lines, %llu corrupt frames, %llu frames with "
           "saturated cells, %u dead cells, %llu time gaps\n",
           (unsigned long long)c->malformed, (unsigned long long)c->corrupt,
           (unsigned long long)c->sat_frames, c->max_dead, (unsigned long long)t->gaps);
    if (c->reported > (uint64_t)max_report)
        printf("  (%llu more defects not listed)\n",
               (unsigned long long)(c->reported - (uint64_t)max_report));
}

static int info_one(const char *path, int json, int max_report)
{
    char err[512], safe[600];
    struct stat st;
    if (stat(path, &st) != 0)
        return cli_fail("info", EXIT_FAIL, "%s: %s", cli_term_safe(path, safe, sizeof safe),
                        strerror(errno));
    if (!S_ISREG(st.st_mode)) /* a FIFO would block, a device is not a recording */
        return cli_fail("info", EXIT_FAIL, "%s is not a regular file",
                        cli_term_safe(path, safe, sizeof safe));
    FILE *probe = fopen(path, "rb");
    if (probe) {
        char magic[4] = {0};
        size_t got = fread(magic, 1, 4, probe);
        fclose(probe);
        if (got == 4 && !memcmp(magic, "KMRB", 4))
            return info_kmr(path, json);
    }
    km_frame_reader *r;
    int rc = km_frame_reader_open(path, NULL, &r, err, sizeof err);
    if (rc)
        return cli_fail("info", EXIT_FAIL, "%s", cli_term_safe(err, safe, sizeof safe));
    const km_file_meta *m = km_frame_reader_meta(r);
    km_frame *f = km_frame_new((uint32_t)m->rows * m->cols);
    km_timing *tm = km_timing_new();
    if (!f || !tm) {
        km_frame_free(f);
        km_timing_free(tm);
        km_frame_reader_close(r);
        return cli_fail("info", EXIT_FAIL, "out of memory");
    }
    file_tally c = {.force_first = NAN};
    while ((rc = km_frame_reader_next(r, f, err, sizeof err)) != KM_EEOF) {
        if (rc == KM_EFORMAT || (!rc && (f->flags & KM_FRAME_CORRUPT))) {
            c.malformed += rc == KM_EFORMAT;
            c.corrupt += rc == KM_OK;
            if (c.reported++ < (uint64_t)max_report && !json)
                printf("  defect: %s\n", cli_term_safe(err, safe, sizeof safe));
            if (rc)
                continue;
        } else if (rc) {
            printf("  error: %s\n", cli_term_safe(err, safe, sizeof safe));
            break;
        }
        c.frames++;
        km_timing_add(tm, f->device_ns);
        if (!(f->flags & KM_FRAME_CORRUPT))
            tally_frame(&c, f);
    }
    km_timing_report t;
    km_timing_get(tm, &t);
    if (json)
        info_file_json(path, m, &c, &t);
    else
        info_file_text(path, m, &c, &t, max_report);
    km_timing_free(tm);
    km_frame_free(f);
    km_frame_reader_close(r);
    return EXIT_OK;
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                          {"max-report", required_argument, 0, 'm'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    int json = 0, c;
    double max_report = 20;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'm':
            if (!cli_parse_double("info", "max-report", optarg, 0, 1e9, &max_report))
                return EXIT_USAGE;
            break;
        case 'h': help(stdout); return EXIT_OK;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_fail("info", EXIT_USAGE, "which file? (see --help)");
    int status = EXIT_OK;
    for (int i = optind; i < argc; i++)
        if (info_one(argv[i], json, (int)max_report) != EXIT_OK)
            status = EXIT_FAIL;
    return status;
}
