/* cmd_run.c: knotmat run: the live pipeline. A source thread fills the ring;
 * this thread is the status consumer: once a second it prints frame rate,
 * dropped frames, total force, contact area, peak pressure and centre of
 * pressure (text or JSON lines). Ctrl-C stops cleanly with a summary. */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "knotmat/cue.h"
#include "knotmat/dsp.h"
#include "knotmat/record.h"
#include "knotmat/ring.h"
#include "knotmat/source.h"
#include "knotmat/stats.h"

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat run [OPTIONS]\n"
            "Run the live pipeline on a source and print one status line a second.\n\n"
            "  -s, --source URI    where frames come from (default sim://)\n"
            "                        sim://?scenario=release&seed=7   simulated mat\n"
            "                        file://x.csv?speed=1|max         replay a CSV\n"
            "                        file://S1/1.txt                  replay PmatData text\n"
            "                        usb://auto                       the USB mat (see\n"
            "                                                         'knotmat devices')\n"
            "                        usb://2c2f:0003[/SERIAL]         a USB mat by id\n"
            "                        PATH                             the same as file://PATH\n"
            "  -d, --duration S    stop after S seconds of wall time (default: until the\n"
            "                      source ends or Ctrl-C)\n"
            "  -j, --json          JSON lines instead of text\n"
            "      --ring N        ring slots (default 256)\n"
            "      --set KEY=VALUE a detector parameter (docs/detection.md)\n"
            "  -a, --audio WHAT    cues: auto (PulseAudio, JACK, ALSA; says which), pulseaudio,\n"
            "                      alsa, jack, dummy, none, wav:FILE (default auto)\n"
            "      --voice V       espeak-ng voice for the spoken words (default en), or none\n"
            "      --volume X      0..1 (default 0.7)\n"
            "      --cues FILE     a cue scheme file (docs/cues.md)\n"
            "      --hold-interval S  a gentle tick every S seconds of a hold (default 10)\n"
            "  -r, --record FILE   also record the session (frames, events, gaps) to a .kmr\n"
            "  -w, --view          draw the mat as a heatmap in the terminal (hotspots, hold\n"
            "                      timer, last events), 10 times a second; status lines\n"
            "                      instead when stdout is not a terminal\n"
            "      --force         overwrite an existing recording\n"
            "  -h, --help          this text\n\n"
            "Status fields: frame rate (frames/s), dropped frames (lost in the ring plus\n"
            "gaps in the source's sequence), total force (N), contact area (cm2, cells\n"
            ">= 0.5 kPa), peak pressure (kPa), centre of pressure (mm, x = column * pitch,\n"
            "y = row * pitch). Not a medical device.\n");
}

static void print_status(int json, double t, double fps, uint64_t dropped,
                         const km_frame_summary *s, int have)
{
    if (json) {
        if (have)
            printf("{\"t_s\":%.3f,\"fps\":%.1f,\"dropped\":%llu,\"force_n\":%.2f,"
                   "\"contact_cm2\":%.1f,\"peak_kpa\":%.2f,\"cop_x_mm\":%.1f,\"cop_y_mm\":%.1f}\n",
                   t, fps, (unsigned long long)dropped, s->total_force_n, s->contact_cm2,
                   s->peak_kpa, isfinite(s->cop_x_mm) ? s->cop_x_mm : -1.0,
                   isfinite(s->cop_y_mm) ? s->cop_y_mm : -1.0);
        else
            printf("{\"t_s\":%.3f,\"fps\":%.1f,\"dropped\":%llu}\n", t, fps,
                   (unsigned long long)dropped);
    } else {
        if (have && isfinite(s->cop_x_mm))
            printf("t=%7.1fs %6.1f fps  dropped %llu  force %7.1f N  area %6.1f cm2  "
                   "peak %6.1f kPa  CoP (%5.1f, %5.1f) mm\n",
                   t, fps, (unsigned long long)dropped, s->total_force_n, s->contact_cm2,
                   s->peak_kpa, s->cop_x_mm, s->cop_y_mm);
        else
            printf("t=%7.1fs %6.1f fps  dropped %llu  (no load on the mat)\n", t, fps,
                   (unsigned long long)dropped);
    }
    fflush(stdout);
}

static char cmd_name_run[] = "run";

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"source", required_argument, 0, 's'}, {"duration", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},         {"ring", required_argument, 0, 'R'},
        {"set", required_argument, 0, 'S'},    {"help", no_argument, 0, 'h'},
        {"audio", required_argument, 0, 'a'},  {"voice", required_argument, 0, 'V'},
        {"volume", required_argument, 0, 'v'}, {"cues", required_argument, 0, 'c'},
        {"hold-interval", required_argument, 0, 'I'},
        {"record", required_argument, 0, 'r'},   {"force", no_argument, 0, 'F'},
        {"view", no_argument, 0, 'w'},
        {0, 0, 0, 0}};
    const char *record_path = NULL;
    int force = 0;
    km_cue_options cue_opt;
    km_cue_options_default(&cue_opt);
    km_dsp_config dsp_cfg;
    km_dsp_config_default(&dsp_cfg);
    char err[512] = "";
    const char *uri = "sim://";
    double duration = 0, ring_slots = 256;
    int json = 0, view_wanted = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:d:jha:r:w", opts, NULL)) != -1) {
        switch (c) {
        case 'w': view_wanted = 1; break;
        case 'r': record_path = optarg; break;
        case 'F': force = 1; cue_opt.overwrite = true; break;
        case 'a': cue_opt.audio = optarg; break;
        case 'V': cue_opt.voice = optarg; break;
        case 'c': cue_opt.scheme_file = optarg; break;
        case 'v':
            if (!cli_parse_double("run", "volume", optarg, 0, 1, &cue_opt.volume))
                return EXIT_USAGE;
            break;
        case 'I':
            if (!cli_parse_double("run", "hold-interval", optarg, 1, 600, &dsp_cfg.hold_interval_s))
                return EXIT_USAGE;
            break;
        case 's': uri = optarg; break;
        case 'd':
            if (!cli_parse_double("run", "duration", optarg, 0, 1e7, &duration))
                return EXIT_USAGE;
            break;
        case 'j': json = 1; break;
        case 'R':
            if (!cli_parse_double("run", "ring", optarg, 2, 65536, &ring_slots))
                return EXIT_USAGE;
            break;
        case 'S': {
            char key[300];
            const char *val;
            if (!cli_split_kv("run", "set", optarg, key, sizeof key, &val))
                return EXIT_USAGE;
            if (km_dsp_config_set(&dsp_cfg, key, val, err, sizeof err))
                return cli_fail("run", EXIT_USAGE, "%s", err);
            break;
        }
        case 'h': help(stdout); return EXIT_OK;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_fail("run", EXIT_USAGE, "unexpected argument '%s'", argv[optind]);

    char warn[512] = "";
    km_cue_engine *cues;
    if (km_cue_engine_new(&cue_opt, &cues, err, sizeof err, warn, sizeof warn))
        return cli_fail("run", EXIT_USAGE, "%s", err);
    if (warn[0])
        fprintf(stderr, "knotmat run: warning: %s\n", warn);
    fprintf(stderr, "knotmat run: audio cues: %s\n", km_cue_engine_backend(cues));
    km_source *src;
    int rc = km_source_open(uri, &src, err, sizeof err);
    if (rc) {
        km_cue_engine_free(cues, NULL, 0);
        return cli_fail("run", EXIT_FAIL, "%s", err);
    }
    km_source_info info;
    km_source_describe(src, &info);
    km_source_set_notify(src, cli_note_to_stderr, cmd_name_run);

    /* Live sources and paced replays never wait for us; a replay at max
     * speed must not outrun its consumers, so it gets backpressure. */
    enum km_ring_mode mode = (!info.live && info.speed == 0) ? KM_RING_BACKPRESSURE : KM_RING_LOSSY;
    /* everything the session needs; on failure one path frees what exists */
    km_ring *ring = km_ring_new((uint32_t)ring_slots, km_source_max_cells(src), mode);
    km_frame *frame = km_frame_new(km_source_max_cells(src));
    km_event_queue *events = km_event_queue_new(1024);
    km_ring_consumer *status;
    km_dsp *dsp = NULL;
    km_dsp_stage *stage = NULL;
    km_recorder *rec = NULL;
    km_record_stage *rstage = NULL;
    int fail_code = EXIT_FAIL;
    if (!ring || !frame || !events || km_ring_consumer_add(ring, "status", &status)) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (km_dsp_new(&dsp_cfg, info.rows, info.cols, info.pitch_mm,
                   info.rate_hz > 0 ? info.rate_hz : 100, &dsp, err, sizeof err) ||
        km_dsp_stage_start(dsp, ring, events, &stage)) {
        if (!err[0])
            snprintf(err, sizeof err, "cannot start the detectors");
        goto fail;
    }
    if (record_path) {
        km_record_meta meta;
        memset(&meta, 0, sizeof meta);
        cli_meta_from_source(&meta, &info);
        signal(SIGXFSZ, SIG_IGN); /* a file-size limit must be an error, not a kill */
        km_recorder_options ro;
        km_recorder_options_default(&ro);
        ro.force = force;
        const char *inputs[] = {cli_source_file(uri), NULL};
        ro.inputs = inputs;
        int rrc = km_recorder_open(record_path, &meta, &ro, &rec, err, sizeof err);
        if (!rrc && (rrc = km_record_stage_start(rec, ring, &rstage)))
            snprintf(err, sizeof err, "cannot start the recorder");
        if (rrc) {
            fail_code = rrc == KM_EBUSY ? EXIT_USAGE : EXIT_FAIL;
            goto fail;
        }
        fprintf(stderr, "knotmat run: recording to %s\n", record_path);
    }
    int record_warned = 0;
    fprintf(stderr, "knotmat run: %s (%s, %ux%u, %.1f mm pitch, %g Hz%s)\n", uri, info.kind,
            info.rows, info.cols, (double)info.pitch_mm, info.rate_hz,
            info.live ? ", live" : info.speed == 0 ? ", as fast as possible" : "");
    cli_view *view = NULL;
    if (view_wanted && !isatty(STDOUT_FILENO))
        fprintf(stderr, "knotmat run: --view: stdout is not a terminal; status lines instead\n");
    else if (view_wanted && !(view = cli_view_new(dsp_cfg.max_hold_s)))
        fprintf(stderr, "knotmat run: --view: out of memory; status lines instead\n");
    cli_install_signals();
    if ((rc = km_source_start(src, ring))) {
        cli_view_free(view);
        snprintf(err, sizeof err, "cannot start the source: %s", km_strerror(rc));
        goto fail;
    }

    int64_t t0 = cli_mono_ns(), next = t0 + 1000000000, next_draw = t0;
    double last_fps = 0;
    uint64_t frames = 0, frames_at_last = 0, analysed = 0;
    double force_sum = 0, peak_max = 0;
    km_frame_summary last = {0};
    int have = 0;
    for (;;) {
        if (cli_interrupted)
            break;
        int64_t now = cli_mono_ns();
        if (duration > 0 && now - t0 >= (int64_t)(duration * 1e9))
            break;
        km_event ev;
        while (km_event_queue_pop(events, &ev)) {
            if (view)
                cli_view_event(view, &ev);
            else
                cli_print_event(&ev, json);
            km_cue_play(cues, &ev);
            if (rstage)
                km_record_stage_add_event(rstage, &ev);
        }
        if (rstage && !record_warned && km_record_stage_error(rstage)) {
            record_warned = 1;
            fprintf(stderr, "knotmat run: warning: the recording stopped (%s): %s keeps what "
                    "was written; the session goes on\n",
                    km_strerror(km_record_stage_error(rstage)), record_path);
        }
        warn[0] = 0;
        if (!km_cue_engine_poll(cues, warn, sizeof warn) && warn[0])
            fprintf(stderr, "knotmat run: warning: %s\n", warn);
        /* wake at least every 50 ms to print events promptly */
        int64_t wait = next > now ? next - now : 0;
        rc = km_ring_pop_wait(status, frame, NULL, wait > 50000000 ? 50000000 : wait);
        if (rc == 0) {
            frames++;
            if (!(frame->flags & KM_FRAME_CORRUPT)) {
                km_frame_summarize(frame, &last);
                have = 1;
                analysed++;
                force_sum += last.total_force_n;
                if (last.peak_kpa > peak_max)
                    peak_max = last.peak_kpa;
            }
        } else if (rc != KM_ETIMEOUT) {
            break; /* closed and drained: the source ended */
        }
        now = cli_mono_ns();
        if (view && now >= next_draw) {
            km_ring_stats rs;
            km_source_stats ss;
            km_ring_consumer_stats(status, &rs);
            km_source_stats_get(src, &ss);
            cli_view_draw(view, frames ? frame : NULL, have ? &last : NULL, (now - t0) * 1e-9,
                          last_fps, (unsigned long long)(rs.lost + ss.lost_upstream));
            next_draw = now + 100000000;
        }
        if (now >= next) {
            km_ring_stats rs;
            km_source_stats ss;
            km_ring_consumer_stats(status, &rs);
            km_source_stats_get(src, &ss);
            double el = (now - (next - 1000000000)) * 1e-9;
            last_fps = (frames - frames_at_last) / el;
            if (!view)
                print_status(json, (now - t0) * 1e-9, (frames - frames_at_last) / el,
                             rs.lost + ss.lost_upstream, &last, have);
            frames_at_last = frames;
            next += 1000000000;
            if (next < now)
                next = now + 1000000000;
        }
    }
    km_source_stop(src);
    cli_view_free(view);
    view = NULL;
    /* the DSP drains what is left in the ring, then its last events */
    while (!cli_interrupted && !km_dsp_stage_done(stage)) {
        km_event ev;
        while (km_event_queue_pop(events, &ev)) {
            cli_print_event(&ev, json);
            km_cue_play(cues, &ev);
            if (rstage)
                km_record_stage_add_event(rstage, &ev);
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    uint64_t dsp_lost = km_dsp_stage_lost(stage);
    km_dsp_stage_stop(stage);
    {
        km_event ev;
        while (km_event_queue_pop(events, &ev)) {
            cli_print_event(&ev, json);
            km_cue_play(cues, &ev);
            if (rstage)
                km_record_stage_add_event(rstage, &ev);
        }
    }
    if (rstage) {
        /* the recorder drains the ring (closed by now), then the file closes */
        while (!cli_interrupted && !km_record_stage_done(rstage)) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        km_record_stage_stop(rstage);
        if (km_recorder_close(rec, err, sizeof err))
            fprintf(stderr, "knotmat run: recording: %s\n", err);
        else
            fprintf(stderr, "knotmat run: recorded %s\n", record_path);
    }
    km_ring_stats rs;
    km_source_stats ss;
    km_ring_consumer_stats(status, &rs);
    km_source_stats_get(src, &ss);
    double el = (cli_mono_ns() - t0) * 1e-9;
    if (json)
        printf("{\"summary\":true,\"frames\":%llu,\"seconds\":%.3f,\"fps\":%.1f,"
               "\"dropped_ring\":%llu,\"lost_upstream\":%llu,\"malformed\":%llu,"
               "\"corrupt\":%llu,\"mean_force_n\":%.2f,\"max_peak_kpa\":%.2f,"
               "\"dsp_lost\":%llu,\"events_dropped\":%llu,\"interrupted\":%s}\n",
               (unsigned long long)frames, el, frames / (el > 0 ? el : 1),
               (unsigned long long)rs.lost, (unsigned long long)ss.lost_upstream,
               (unsigned long long)ss.malformed, (unsigned long long)ss.corrupt,
               analysed ? force_sum / analysed : 0.0, peak_max, (unsigned long long)dsp_lost,
               (unsigned long long)km_event_queue_overruns(events),
               cli_interrupted ? "true" : "false");
    else
        printf("summary: %llu frames in %.1f s (%.1f fps); dropped %llu in the ring, %llu "
               "upstream; %llu malformed, %llu corrupt; mean force %.1f N, max peak %.1f "
               "kPa; detector lost %llu frames, %llu events dropped%s\n",
               (unsigned long long)frames, el, frames / (el > 0 ? el : 1),
               (unsigned long long)rs.lost, (unsigned long long)ss.lost_upstream,
               (unsigned long long)ss.malformed, (unsigned long long)ss.corrupt,
               analysed ? force_sum / analysed : 0.0, peak_max, (unsigned long long)dsp_lost,
               (unsigned long long)km_event_queue_overruns(events),
               cli_interrupted ? " (interrupted)" : "");
    /* let the last cue finish before the stream goes */
    if (strcmp(km_cue_engine_backend(cues), "none") && strncmp(cue_opt.audio, "wav:", 4)) {
        struct timespec ts = {1, 200000000};
        nanosleep(&ts, NULL);
    }
    km_cue_stats cs;
    km_cue_engine_stats(cues, &cs);
    if (json)
        printf("{\"audio\":\"%s\",\"cues\":%llu,\"cues_dropped\":%llu,\"underflows\":%llu,"
               "\"audio_errors\":%llu,\"cue_latency_p50_ms\":%.1f,\"cue_latency_p99_ms\":%.1f}\n",
               km_cue_engine_backend(cues), (unsigned long long)cs.started,
               (unsigned long long)cs.dropped, (unsigned long long)cs.underflows,
               (unsigned long long)cs.errors, isfinite(cs.latency_p50_ms) ? cs.latency_p50_ms : -1,
               isfinite(cs.latency_p99_ms) ? cs.latency_p99_ms : -1);
    else
        printf("audio: %s, %llu cues played, %llu dropped, %llu underflows, %llu errors\n",
               km_cue_engine_backend(cues), (unsigned long long)cs.started,
               (unsigned long long)cs.dropped, (unsigned long long)cs.underflows,
               (unsigned long long)cs.errors);
    int exit_status = EXIT_OK;
    if (km_cue_engine_free(cues, err, sizeof err)) {
        fprintf(stderr, "knotmat run: %s\n", err);
        exit_status = EXIT_FAIL;
    }
    km_dsp_free(dsp);
    km_event_queue_free(events);
    km_ring_free(ring);
    km_frame_free(frame);
    km_source_close(src);
    return exit_status;

fail:
    km_record_stage_stop(rstage);
    km_recorder_close(rec, NULL, 0);
    km_dsp_stage_stop(stage);
    km_dsp_free(dsp);
    km_event_queue_free(events);
    km_ring_free(ring);
    km_frame_free(frame);
    km_source_close(src);
    km_cue_engine_free(cues, NULL, 0);
    return cli_fail("run", fail_code, "%s", err);
}
