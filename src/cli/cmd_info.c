/* cmd_info.c: knotmat info FILE: geometry, duration, frame count and every
 * defect found, reading the file once, streaming. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

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

/* .kmr recordings: the header's metadata and what check finds. */
static int info_kmr(const char *path, int json)
{
    char err[512];
    km_kmr_reader *r;
    if (km_kmr_open(path, &r, err, sizeof err))
        return cli_fail("info", EXIT_FAIL, "%s", err);
    km_record_meta m = *km_kmr_meta(r);
    km_kmr_close(r);
    km_kmr_report rep;
    int rc = km_kmr_check(path, &rep);
    double dur = m.rate_hz > 0 ? rep.frames / m.rate_hz : 0;
    if (json) {
        printf("{\"file\":\"%s\",\"format\":\"kmr\",\"rows\":%u,\"cols\":%u,\"pitch_mm\":%g,"
               "\"rate_hz\":%g,\"frames\":%llu,\"duration_s\":%.2f,\"events\":%llu,\"gaps\":%llu,"
               "\"gap_frames\":%llu,\"whole\":%s,\"closed\":%s,\"first_bad_offset\":%lld,"
               "\"start_utc\":\"%s\",\"device\":\"%s\",\"vid_pid\":\"%s\",\"subject\":\"%s\","
               "\"session\":\"%s\"}\n",
               path, m.rows, m.cols, (double)m.pitch_mm, m.rate_hz,
               (unsigned long long)rep.frames, dur, (unsigned long long)rep.events,
               (unsigned long long)rep.gaps, (unsigned long long)rep.gap_frames,
               rc == KM_OK ? "true" : "false", rep.ended ? "true" : "false",
               (long long)rep.first_bad_offset, m.start_utc, m.device_kind, m.vid_pid, m.subject,
               m.session);
    } else {
        printf("%s: knotmat recording (.kmr), %u rows x %u cols, pitch %g mm, %g Hz, units %s\n",
               path, m.rows, m.cols, (double)m.pitch_mm, m.rate_hz, m.units);
        printf("  started %s, device %s%s%s%s%s, subject '%s', session '%s', operator '%s'\n",
               m.start_utc, m.device_kind, m.vid_pid[0] ? " " : "", m.vid_pid,
               m.serial[0] ? " serial " : "", m.serial, m.subject, m.session, m.operator_name);
        printf("  frames %llu (about %.1f s), events %llu, gaps %llu (%llu frames lost)\n",
               (unsigned long long)rep.frames, dur, (unsigned long long)rep.events,
               (unsigned long long)rep.gaps, (unsigned long long)rep.gap_frames);
        if (rc != KM_OK)
            printf("  defects: damaged from byte %lld (%s): see knotmat recover\n",
                   (long long)rep.first_bad_offset, rep.problem);
        else if (!rep.ended)
            printf("  defects: not closed (%s)\n", rep.problem);
        else
            printf("  defects: none\n");
    }
    return EXIT_OK;
}

static int info_one(const char *path, int json, int max_report)
{
    char err[512];
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
        return cli_fail("info", EXIT_FAIL, "%s", err);
    const km_file_meta *m = km_frame_reader_meta(r);
    km_frame *f = km_frame_new((uint32_t)m->rows * m->cols);
    if (!f) {
        km_frame_reader_close(r);
        return cli_fail("info", EXIT_FAIL, "out of memory");
    }
    uint64_t frames = 0, malformed = 0, corrupt = 0, sat_frames = 0, gaps = 0, reported = 0;
    uint32_t max_dead = 0;
    double t_first = NAN, t_last = NAN, t_prev = NAN, dt_sum = 0;
    double force_first = NAN, force_last = NAN, force_max = 0, peak_max = 0;
    uint64_t good = 0;
    for (;;) {
        rc = km_frame_reader_next(r, f, err, sizeof err);
        if (rc == KM_EEOF)
            break;
        if (rc == KM_EFORMAT) {
            malformed++;
            if (reported++ < (uint64_t)max_report && !json)
                printf("  defect: %s\n", err);
            continue;
        }
        if (rc) {
            printf("  error: %s\n", err);
            break;
        }
        frames++;
        double t = f->device_ns * 1e-9;
        if (isnan(t_first))
            t_first = t;
        if (!isnan(t_prev)) {
            double dt = t - t_prev;
            dt_sum += dt;
            if (m->rate_hz > 0 && dt > 1.5 / m->rate_hz)
                gaps++;
        }
        t_prev = t_last = t;
        if (f->flags & KM_FRAME_CORRUPT) {
            corrupt++;
            if (reported++ < (uint64_t)max_report && !json)
                printf("  defect: %s\n", err);
            continue;
        }
        if (f->n_saturated)
            sat_frames++;
        if (f->n_dead > max_dead)
            max_dead = f->n_dead;
        km_frame_summary s;
        km_frame_summarize(f, &s);
        if (isnan(force_first) && s.total_force_n > 0)
            force_first = s.total_force_n;
        force_last = s.total_force_n;
        if (s.total_force_n > force_max)
            force_max = s.total_force_n;
        if (s.peak_kpa > peak_max)
            peak_max = s.peak_kpa;
        good++;
    }
    double duration = frames > 1 ? t_last - t_first + dt_sum / (frames - 1) : 0;
    double rate = frames > 1 && dt_sum > 0 ? (frames - 1) / dt_sum : m->rate_hz;
    double creep = force_first > 0 ? 100 * (force_last - force_first) / force_first : 0;
    const char *fmt = km_file_format_name(m->format);
    if (json) {
        printf("{\"file\":\"%s\",\"format\":\"%s\",\"rows\":%u,\"cols\":%u,\"pitch_mm\":%g,"
               "\"units\":\"%s\",\"calibrated\":%s,\"frames\":%llu,\"duration_s\":%.3f,"
               "\"rate_hz\":%.3f,\"malformed\":%llu,\"corrupt\":%llu,\"saturated_frames\":%llu,"
               "\"dead_cells\":%u,\"time_gaps\":%llu,\"max_force_n\":%.1f,\"max_peak_kpa\":%.1f,"
               "\"load_change_pct\":%.1f}\n",
               path, fmt, m->rows, m->cols, (double)m->pitch_mm, m->units,
               m->calibrated ? "true" : "false", (unsigned long long)frames, duration, rate,
               (unsigned long long)malformed, (unsigned long long)corrupt,
               (unsigned long long)sat_frames, max_dead, (unsigned long long)gaps, force_max,
               peak_max, creep);
    } else {
        printf("%s: %s, %u rows x %u cols, pitch %g mm, units %s%s\n", path, fmt, m->rows,
               m->cols, (double)m->pitch_mm, m->units,
               m->calibrated ? "" : " (kPa from a default factor, not calibrated)");
        printf("  frames %llu, duration %.2f s, rate %.3f Hz\n", (unsigned long long)frames,
               duration, rate);
        printf("  load: max total force %.1f N, max peak %.1f kPa, change first->last %+.1f %%\n",
               force_max, peak_max, creep);
        printf("  defects: %llu malformed lines, %llu corrupt frames, %llu frames with "
               "saturated cells, %u dead cells, %llu time gaps\n",
               (unsigned long long)malformed, (unsigned long long)corrupt,
               (unsigned long long)sat_frames, max_dead, (unsigned long long)gaps);
        if (reported > (uint64_t)max_report)
            printf("  (%llu more defects not listed)\n",
                   (unsigned long long)(reported - (uint64_t)max_report));
    }
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
