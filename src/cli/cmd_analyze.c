/* cmd_analyze.c: knotmat analyze FILE: the detection pipeline on a recording
 * as fast as it goes (no threads, no pacing), one event per line. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "knotmat/cue.h"
#include "knotmat/dsp.h"
#include "knotmat/pass.h"
#include "knotmat/source.h"

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat analyze [OPTIONS] FILE|URI\n"
            "Run the detectors (hotspots, hold, spasm, release, breathing, safety) on a\n"
            "recording as fast as possible and print the events, one per line.\n\n"
            "  -j, --json            JSON lines: {\"t_s\":..,\"type\":..,\"x_mm\":..,\"y_mm\":..,\n"
            "                        \"force_n\":..,\"confidence\":..,...}\n"
            "      --set KEY=VALUE   a detector parameter (see docs/detection.md), e.g.\n"
            "                        --set max_hold_s=60 --set ball_mm=100\n"
            "      --no-hotspots     do not print 'hotspot' events\n"
            "      --audio wav:FILE  render the session's cue track (as heard live) to FILE\n"
            "      --force           replace an existing wav:FILE (never without it)\n"
            "      --voice V         espeak-ng voice for spoken words (default en), or none\n"
            "      --cues FILE       a cue scheme file (docs/cues.md)\n"
            "  -q, --quiet           only the summary\n"
            "  -h, --help            this text\n\n"
            "t_s is in the file's time base; x_mm = column * pitch, y_mm = row * pitch.\n"
            "The summary (stderr) gives frames, skipped frames and frames per second.\n");
}

void cli_print_event(const km_event *e, int json)
{
    if (json) {
        char buf[512];
        km_event_to_json(e, buf, sizeof buf);
        puts(buf);
        return;
    }
    printf("%9.3f s  %-12s", e->t_s, km_event_type_name(e->type));
    if (isfinite(e->x_mm))
        printf("  at (%6.1f, %6.1f) mm", e->x_mm, e->y_mm);
    if (isfinite(e->force_n))
        printf("  %6.1f N", e->force_n);
    switch (e->type) {
    case KM_EV_HOLD:
    case KM_EV_HOLD_LIMIT:
    case KM_EV_OFF_TARGET: printf("  held %.0f s", e->value); break;
    case KM_EV_BREATHING: printf("  %.1f breaths/min", e->value); break;
    case KM_EV_OVERPRESSURE: printf("  peak %.0f kPa", e->value); break;
    case KM_EV_RELEASE: printf("  fell %.0f %%", 100 * e->value); break;
    case KM_EV_SPASM: printf("  rise %.0f %%", 100 * e->value); break;
    case KM_EV_MARK: printf("  %s (your mark)", km_mark_name(km_event_mark(e))); break;
    default: break;
    }
    printf("  (confidence %.2f)\n", e->confidence);
}

/* The summary line: frames, the span their own times cover (not frames / a
 * stated rate), the measured and the stated rate, events, speed. */
static void print_summary(const km_pass *pass, uint64_t events, double el, double span)
{
    km_dsp_stats st;
    km_pass_dsp_stats(pass, &st);
    char stated[48] = "no rate stated";
    if (km_pass_describe(pass)->source.rate_hz > 0)
        snprintf(stated, sizeof stated, "%.2f stated", km_pass_describe(pass)->source.rate_hz);
    fprintf(stderr,
            "knotmat analyze: %llu frames (%.1f s of recording at %.2f frames/s measured, %s), "
            "%llu skipped, %llu events in %.3f s: %.0f frames/s, %.0fx real time%s\n",
            (unsigned long long)st.frames, span, st.measured_rate_hz, stated,
            (unsigned long long)st.skipped,
            (unsigned long long)events, el, st.frames / (el > 0 ? el : 1e-9),
            span / (el > 0 ? el : 1e-9),
            st.spasm_enabled ? "" : "; spasm detection off (measured frame rate below 20 Hz)");
}

static char cmd_name_analyze[] = "analyze";

typedef struct {
    km_cue_options cue;
    char set[1024]; /* --set values, "KEY=VALUE ..." */
    int json, quiet;
} analyze_opts;

/* 0, -1 (--help printed) or the exit status of a usage error (said). */
static int parse_options(int argc, char **argv, analyze_opts *o)
{
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                          {"set", required_argument, 0, 'S'},
                                          {"no-hotspots", no_argument, 0, 'H'},
                                          {"quiet", no_argument, 0, 'q'},
                                          {"help", no_argument, 0, 'h'},
                                          {"audio", required_argument, 0, 'a'},
                                          {"voice", required_argument, 0, 'V'},
                                          {"cues", required_argument, 0, 'c'},
                                          {"force", no_argument, 0, 'F'},
                                          {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    km_cue_options_default(&o->cue);
    o->cue.audio = "none";
    o->cue.render_silent = false; /* nothing to hear unless wav:FILE */
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jqh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': o->json = 1; break;
        case 'q': o->quiet = 1; break;
        case 'H':
            if (!cli_add_set("analyze", "emit_hotspot_events=0", o->set, sizeof o->set))
                return EXIT_USAGE;
            break;
        case 'a':
            if (strncmp(optarg, "wav:", 4) && strcmp(optarg, "none"))
                return cli_fail("analyze", EXIT_USAGE, "--audio: only wav:FILE or none offline");
            o->cue.audio = optarg;
            break;
        case 'V': o->cue.voice = optarg; break;
        case 'c': o->cue.scheme_file = optarg; break;
        case 'F': o->cue.overwrite = true; break;
        case 'S':
            if (!cli_add_set("analyze", optarg, o->set, sizeof o->set))
                return EXIT_USAGE;
            break;
        case 'h': help(stdout); return -1;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    return 0;
}

int cmd_analyze(int argc, char **argv)
{
    analyze_opts o;
    int prc = parse_options(argc, argv, &o);
    if (prc)
        return prc < 0 ? EXIT_OK : prc;
    km_cue_options cue_opt = o.cue;
    char *set = o.set;
    int json = o.json, quiet = o.quiet;
    char err[512];
    if (optind != argc - 1)
        return cli_fail("analyze", EXIT_USAGE, "one FILE or URI please (see --help)");
    char warn[512] = "";
    km_cue_engine *cues;
    if (km_cue_engine_new(&cue_opt, &cues, err, sizeof err, warn, sizeof warn))
        return cli_fail("analyze", EXIT_USAGE, "%s", err);
    if (warn[0])
        fprintf(stderr, "knotmat analyze: warning: %s\n", warn);
    cli_progress bar;
    cli_progress_begin(&bar, "analyze", "frames");
    /* the bar shares the terminal with the events: only when they go elsewhere */
    if (!quiet && isatty(STDOUT_FILENO))
        bar.enabled = 0;
    /* the detectors always run here, with a recording's own settings (and
     * --set over them): what the live session would decide again */
    km_pass_options po = {.input = argv[optind], .reanalyze = true, .set = set,
                          .progress = cli_progress_update, .progress_user = &bar,
                          .note = cli_note_to_stderr, .note_user = cmd_name_analyze};
    km_pass *pass;
    if (km_pass_open(&po, &pass, err, sizeof err)) {
        km_cue_engine_free(cues, NULL, 0);
        return cli_fail("analyze", EXIT_FAIL, "%s", err);
    }
    if (km_pass_describe(pass)->settings_recorded && !quiet)
        fprintf(stderr, "knotmat analyze: the detectors run with the settings recorded in %s%s\n",
                argv[optind], set[0] ? " and --set over them" : "");
    const km_frame *f;
    const km_event *ev;
    size_t n;
    uint64_t events = 0;
    int64_t t0 = cli_mono_ns(), first_ns = 0, last_ns = 0;
    int rc, have = 0;
    while ((rc = km_pass_next(pass, &f, &ev, &n)) == KM_OK) {
        if (f && !have)
            first_ns = f->device_ns;
        if (f) {
            have = 1;
            last_ns = f->device_ns;
        }
        for (size_t i = 0; i < n; i++) {
            if (!quiet)
                cli_print_event(&ev[i], json);
            km_cue_play(cues, &ev[i]);
        }
        events += n;
        if (n && !quiet && !cli_stdout_ok())
            break; /* nobody reads the events any more (`| head`) */
    }
    cli_progress_end(&bar);
    print_summary(pass, events, (cli_mono_ns() - t0) * 1e-9,
                  have ? (double)(last_ns - first_ns) * 1e-9 : 0);
    km_source_stats ss;
    km_pass_source_stats(pass, &ss);
    km_pass_close(pass);
    if (km_cue_engine_free(cues, err, sizeof err)) {
        fprintf(stderr, "knotmat analyze: %s\n", err);
        return EXIT_FAIL;
    }
    if (cli_output_closed)
        return EXIT_OK; /* main() reports the closed pipe */
    if (rc != KM_EEOF)
        return EXIT_FAIL;
    if (ss.malformed) {
        fprintf(stderr, "knotmat analyze: warning: %llu damaged or malformed parts of the input "
                "were skipped (see above)\n", (unsigned long long)ss.malformed);
        return EXIT_PARTIAL;
    }
    return EXIT_OK;
}
