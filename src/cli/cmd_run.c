/* cmd_run.c: knotmat run: options and display around the library's live
 * session (knotmat/session.h). Three threads of ours:
 *  - this one is the control: duration, Ctrl-C, cues (popped from its own
 *    listener queue and handed to the audio engine, which never blocks),
 *    warnings; it never writes to stdout, so nothing a terminal or a pipe
 *    does can stop the cues, the protection among them, or the clock;
 *  - the printer: events, one status line a second (or the terminal view),
 *    and the summary, on stdout; when stdout stalls only the printer waits,
 *    and its own queue and frame watcher count what it missed;
 *  - the library's threads: source, detectors, recorder.
 * A closed stdout (`| head`) ends the session like Ctrl-C. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "knotmat/session.h"
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
            "      --audio-latency MS  buffer asked of the sound server, 5..500 ms (default\n"
            "                      25: robust on a busy machine; event to sound under 40 ms)\n"
            "      --no-realtime   do not ask real-time priority for the audio thread\n"
            "      --plan SPOTS    a session plan, \"left glute, right glute, upper back\" or a\n"
            "                      file of one spot a line: \"first: left glute\" at start,\n"
            "                      \"next: right glute\" after each release or time-out\n"
            "      --weight KG     body weight: at each hold tick, \"a little more / less\n"
            "                      weight\" to keep the ball's force in a band (docs/cues.md)\n"
            "      --breathe       during a hold, \"breathe out, let it sink\" every 3\n"
            "                      breaths at the measured rate (at most every 20 s)\n"
            "      --no-announce   no spoken start-up (\"knotmat ready\") and shut-down\n"
            "                      summary (\"session over: 2 knots released in 6 minutes\")\n"
            "      --marks PATH    where the person's keys come from: t (or 1) twitch, o (2)\n"
            "                      ouch, r (3) release are marked in the events and the\n"
            "                      recording, q ends; PATH a FIFO or file, - standard input\n"
            "                      (default: standard input when it is a terminal)\n"
            "      --mark-keys KEYS  the keys for twitch, ouch, release (default tor)\n"
            "      --no-marks      no keys read\n"
            "      --cues FILE     a cue scheme file (docs/cues.md)\n"
            "      --hold-interval S  a gentle tick every S seconds of a hold (default 10)\n"
            "  -r, --record FILE   also record the session (frames, events, gaps) to a .kmr\n"
            "  -w, --view          draw the mat as a heatmap in the terminal (hotspots, hold\n"
            "                      timer, last events), 10 times a second; status lines\n"
            "                      instead when stdout is not a terminal\n"
            "      --force         replace an existing recording or wav:FILE\n"
            "      --sync-ms MS    the recording is on disk within MS ms (default 250)\n"
            "      --subject ID --session ID --operator NAME --notes TEXT   recording metadata\n"
            "  -h, --help          this text\n\n"
            "Status fields: frame rate (frames/s), dropped frames (missed by the detectors\n"
            "or the recorder, missing upstream, malformed), total force (N), contact area\n"
            "(cm2, cells >= 0.5 kPa), peak pressure (kPa), centre of pressure (mm, x =\n"
            "column * pitch, y = row * pitch). Printing runs on its own thread: a stalled\n"
            "stdout never stops the cues, the recording or --duration. Exit status: 0, 1\n"
            "(failed, incl. the recording), 2 usage, 3 frames or marks were lost (said on\n"
            "stderr).\n"
            "Not a medical device.\n");
}

typedef struct printer {
    pthread_t thread;
    km_event_queue *events;
    km_ring_consumer *frames;
    km_frame *frame;
    cli_view *view;
    int json;
    int64_t t0;
    _Atomic int stop, done;
    _Atomic uint64_t dropped; /* the pipeline's loss, for the status line (control writes) */
    char final_text[4096];    /* the summary: printed last, by the printer */
    /* written by the printer, read by the control after done */
    uint64_t frames_seen, analysed;
    double force_sum, peak_max;
} printer;

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
    } else if (have && isfinite(s->cop_x_mm)) {
        printf("t=%7.1fs %6.1f fps  dropped %llu  force %7.1f N  area %6.1f cm2  "
               "peak %6.1f kPa  CoP (%5.1f, %5.1f) mm\n",
               t, fps, (unsigned long long)dropped, s->total_force_n, s->contact_cm2,
               s->peak_kpa, s->cop_x_mm, s->cop_y_mm);
    } else {
        printf("t=%7.1fs %6.1f fps  dropped %llu  (no load on the mat)\n", t, fps,
               (unsigned long long)dropped);
    }
    fflush(stdout);
}

static void printer_events(printer *p)
{
    km_event ev;
    int printed = 0;
    while (km_event_queue_pop_spsc(p->events, &ev)) {
        if (p->view)
            cli_view_event(p->view, &ev);
        else
            cli_print_event(&ev, p->json);
        printed = 1;
    }
    if (printed && !p->view)
        fflush(stdout);
}

/* The printer thread: the only one that writes to stdout during a session. */
static void *printer_run(void *arg)
{
    printer *p = arg;
    int64_t next = p->t0 + 1000000000, next_draw = p->t0;
    uint64_t at_last = 0;
    double last_fps = 0;
    km_frame_summary last = {0};
    int have = 0;
    while (!atomic_load(&p->stop)) {
        printer_events(p);
        int64_t now = cli_mono_ns(), wait = next > now ? next - now : 0;
        int rc = km_ring_pop_wait_spmc(p->frames, p->frame, NULL, wait > 50000000 ? 50000000 : wait);
        if (rc == KM_OK) {
            p->frames_seen++;
            if (!(p->frame->flags & KM_FRAME_CORRUPT)) {
                km_frame_summarize(p->frame, &last);
                have = 1;
                p->analysed++;
                p->force_sum += last.total_force_n;
                if (last.peak_kpa > p->peak_max)
                    p->peak_max = last.peak_kpa;
            }
        }
        now = cli_mono_ns();
        uint64_t dropped = atomic_load(&p->dropped);
        if (p->view && now >= next_draw) {
            cli_view_draw(p->view, p->frames_seen ? p->frame : NULL, have ? &last : NULL,
                          (now - p->t0) * 1e-9, last_fps, (unsigned long long)dropped);
            next_draw = now + 100000000;
        }
        if (now >= next) {
            double el = (now - (next - 1000000000)) * 1e-9;
            last_fps = (p->frames_seen - at_last) / el;
            if (!p->view)
                print_status(p->json, (now - p->t0) * 1e-9, last_fps, dropped, &last, have);
            at_last = p->frames_seen;
            next += 1000000000;
            if (next < now)
                next = now + 1000000000;
        }
        if (!cli_stdout_ok())
            break; /* EPIPE: the control sees cli_output_closed and ends the session */
    }
    cli_view_free(p->view);
    p->view = NULL;
    printer_events(p);
    if (!cli_output_closed) {
        fputs(p->final_text, stdout);
        fflush(stdout);
        cli_stdout_ok();
    }
    atomic_store(&p->done, 1);
    return NULL;
}

typedef struct run_opts {
    const char *uri, *record_path;
    double duration, ring_slots;
    int json, view, force;
    int quiet; /* --no-announce: no start-up words, no spoken summary */
    char plan[4096]; /* --plan: the spots, or the file's text */
    double weight_kg; /* --weight: pressure guidance (0: none) */
    int breathe;      /* --breathe: paced breathing words */
    const char *marks_path, *mark_keys; /* --marks, --mark-keys */
    int no_marks;
    km_cue_options cue;
    km_dsp_config dsp;
    km_record_meta meta;
    double sync_s;
} run_opts;

static int parse_meta_option(int c, const char *arg, km_record_meta *m)
{
    switch (c) {
    case 'U': snprintf(m->subject, sizeof m->subject, "%s", arg); return 1;
    case 'E': snprintf(m->session, sizeof m->session, "%s", arg); return 1;
    case 'O': snprintf(m->operator_name, sizeof m->operator_name, "%s", arg); return 1;
    case 'N': snprintf(m->notes, sizeof m->notes, "%s", arg); return 1;
    default: return 0;
    }
}

/* --plan: a file of spots when ARG names one (a path: it must open), else
 * the spots themselves */
static int read_plan(const char *arg, char *out, size_t len)
{
    FILE *fp = strchr(arg, ',') ? NULL : fopen(arg, "r");
    if (!fp && strchr(arg, '/') && !strchr(arg, ',')) {
        fprintf(stderr, "knotmat run: --plan %s: %s\n", arg, strerror(errno));
        return -1;
    }
    if (!fp) {
        snprintf(out, len, "%s", arg);
        return 0;
    }
    size_t n = fread(out, 1, len - 1, fp);
    int bad = ferror(fp), big = !bad && !feof(fp);
    fclose(fp);
    out[n] = 0;
    if (bad || big) {
        if (bad)
            fprintf(stderr, "knotmat run: --plan %s: cannot be read (a directory?)\n", arg);
        else
            fprintf(stderr, "knotmat run: --plan %s: more than %zu bytes\n", arg, len - 1);
        return -1;
    }
    return 0;
}

/* knotmat run's options */
static const struct option run_options[] = {
    {"source", required_argument, 0, 's'}, {"duration", required_argument, 0, 'd'},
    {"json", no_argument, 0, 'j'},         {"ring", required_argument, 0, 'R'},
    {"set", required_argument, 0, 'S'},    {"help", no_argument, 0, 'h'},
    {"audio", required_argument, 0, 'a'},  {"voice", required_argument, 0, 'V'},
    {"volume", required_argument, 0, 'v'}, {"cues", required_argument, 0, 'c'},
    {"audio-latency", required_argument, 0, 'L'}, {"no-realtime", no_argument, 0, 'T'},
    {"no-announce", no_argument, 0, 'A'}, {"plan", required_argument, 0, 'P'},
    {"weight", required_argument, 0, 'W'}, {"breathe", no_argument, 0, 'B'},
    {"hold-interval", required_argument, 0, 'I'},
    {"marks", required_argument, 0, 'K'}, {"mark-keys", required_argument, 0, 'Y'},
    {"no-marks", no_argument, 0, 'Z'},
    {"record", required_argument, 0, 'r'}, {"force", no_argument, 0, 'F'},
    {"view", no_argument, 0, 'w'},         {"sync-ms", required_argument, 0, 'M'},
    {"subject", required_argument, 0, 'U'}, {"session", required_argument, 0, 'E'},
    {"operator", required_argument, 0, 'O'}, {"notes", required_argument, 0, 'N'},
    {0, 0, 0, 0}};

/* 0 to go on; else the exit status (help, usage error) */
static int parse_options(int argc, char **argv, run_opts *o)
{
    char err[512];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:d:jha:r:w", run_options, NULL)) != -1) {
        if (parse_meta_option(c, optarg, &o->meta))
            continue;
        switch (c) {
        case 'w': o->view = 1; break;
        case 'r': o->record_path = optarg; break;
        case 'F': o->force = 1; o->cue.overwrite = true; break;
        case 'a': o->cue.audio = optarg; break;
        case 'V': o->cue.voice = optarg; break;
        case 'c': o->cue.scheme_file = optarg; break;
        case 's': o->uri = optarg; break;
        case 'j': o->json = 1; break;
        case 'v':
            if (!cli_parse_double("run", "volume", optarg, 0, 1, &o->cue.volume))
                return EXIT_USAGE;
            break;
        case 'T': o->cue.realtime = false; break;
        case 'A': o->quiet = 1; break;
        case 'B': o->breathe = 1; break;
        case 'K': o->marks_path = optarg; break;
        case 'Z': o->no_marks = 1; break;
        case 'Y': {
            char keys[KM_MARK_COUNT];
            if (cli_marks_keys_parse(optarg, keys))
                return cli_fail("run", EXIT_USAGE, "--mark-keys '%s': three different keys "
                                "(twitch, ouch, release), not a space, q or 1-3", optarg);
            o->mark_keys = optarg;
            break;
        }
        case 'W':
            if (!cli_parse_double("run", "weight", optarg, 20, 300, &o->weight_kg))
                return EXIT_USAGE;
            break;
        case 'P':
            if (read_plan(optarg, o->plan, sizeof o->plan))
                return EXIT_USAGE;
            o->cue.plan = o->plan;
            break;
        case 'L': {
            double ms;
            if (!cli_parse_double("run", "audio-latency", optarg, KM_CUE_LATENCY_MIN_S * 1e3,
                                  KM_CUE_LATENCY_MAX_S * 1e3, &ms))
                return EXIT_USAGE;
            o->cue.latency_s = ms / 1000;
            break;
        }
        case 'I':
            if (!cli_parse_double("run", "hold-interval", optarg, 1, 600, &o->dsp.hold_interval_s))
                return EXIT_USAGE;
            break;
        case 'd':
            if (!cli_parse_double("run", "duration", optarg, 0, 1e7, &o->duration))
                return EXIT_USAGE;
            break;
        case 'R':
            if (!cli_parse_double("run", "ring", optarg, 2, 65536, &o->ring_slots))
                return EXIT_USAGE;
            break;
        case 'M': {
            double ms;
            if (!cli_parse_double("run", "sync-ms", optarg, 10, 60000, &ms))
                return EXIT_USAGE;
            o->sync_s = ms / 1000;
            break;
        }
        case 'S': {
            char key[300];
            const char *val;
            if (!cli_split_kv("run", "set", optarg, key, sizeof key, &val))
                return EXIT_USAGE;
            if (km_dsp_config_set(&o->dsp, key, val, err, sizeof err))
                return cli_fail("run", EXIT_USAGE, "%s", err);
            break;
        }
        case 'h': help(stdout); return -1;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_fail("run", EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* releases heard this session, for the shut-down summary, and whether the
 * plan has moved on since the last hold began (control thread) */
static unsigned releases_cued;
static int plan_moved;
/* --weight: the band of ball force the guidance keeps to, N (0: no guidance) */
static double guide_lo_n, guide_hi_n;
static unsigned guided_more, guided_less; /* said, for the summary */
/* --breathe: paced breathing during a hold (control thread) */
static int breathe_on, in_hold;
static double breathe_last_s = -1e9;
static unsigned breathe_said;
/* the person's marks heard, by kind; an "ouch" in this hold: no "more weight" */
static unsigned marks_heard[KM_MARK_COUNT];
static int ouch_in_hold;

/* "breathe out, let it sink" during a hold, on a breathing event: every 3
 * breaths at the measured rate, never closer than 20 s (words at each breath
 * would crowd the hold) */
static void pace_breathing(km_cue_engine *cues, const km_event *ev)
{
    if (ev->type == KM_EV_ON_TARGET)
        in_hold = 1;
    if (ev->type == KM_EV_OFF_TARGET || ev->type == KM_EV_HOLD_LIMIT ||
        ev->type == KM_EV_RELEASE) /* after these: move on, not breathe into it */
        in_hold = 0;
    if (!breathe_on || !in_hold || ev->type != KM_EV_BREATHING || !(ev->value > 2) ||
        ev->confidence < 0.5)
        return;
    double every = fmax(20, 3 * 60 / ev->value);
    if (ev->detected_t_s - breathe_last_s >= every && km_cue_breathe(cues, ev)) {
        breathe_last_s = ev->detected_t_s;
        breathe_said++;
    }
}

/* Self-massage loads of 25-55 % of body weight are reported (foam rolling:
 * 32-34 % on average, peaks 51-55 %; Baumgart et al.), but the band never
 * reaches the safety limit: its top stays at 85 % of max_force_n and its
 * bottom at 60 % of its top, so "more weight" cannot lead to overpressure. */
static void guide_band(double weight_kg, double max_force_n)
{
    guide_hi_n = fmin(0.55 * weight_kg * 9.81, 0.85 * max_force_n);
    guide_lo_n = fmin(0.25 * weight_kg * 9.81, 0.6 * guide_hi_n);
}

/* Hand the cue listener's events to the audio engine (never blocks). */
static void play_cues(km_event_queue *q, km_cue_engine *cues)
{
    km_event ev;
    while (km_event_queue_pop_spsc(q, &ev)) {
        km_cue_play(cues, &ev);
        pace_breathing(cues, &ev);
        int mark = km_event_mark(&ev);
        marks_heard[mark]++; /* [0]: not a mark */
        ouch_in_hold |= mark == KM_MARK_OUCH;
        /* at each tick of a hold: the ball's force against the band */
        if (ev.type == KM_EV_HOLD && guide_hi_n > 0 && isfinite(ev.force_n)) {
            int dir = ev.force_n > guide_hi_n ? -1 : ev.force_n < guide_lo_n;
            if (dir > 0 && ouch_in_hold) /* it hurt: never ask for more */
                dir = 0;
            if (km_cue_guide(cues, dir, &ev)) {
                guided_more += dir > 0;
                guided_less += dir < 0;
            }
        }
        releases_cued += ev.type == KM_EV_RELEASE;
        if (ev.type == KM_EV_ON_TARGET)
            plan_moved = ouch_in_hold = 0;
        /* a release or the first time-out of a hold: the next spot */
        if ((ev.type == KM_EV_RELEASE || ev.type == KM_EV_HOLD_LIMIT) && !plan_moved) {
            plan_moved = 1;
            const char *next = km_cue_next(cues, &ev);
            if (next)
                fprintf(stderr, "knotmat run: %s%s\n", next[0] ? "next: " : "the plan is done",
                        next);
        }
    }
}

/* "session over: 2 knots released in 6 minutes" (espeak says the numbers) */
static void summary_words(char *out, size_t len, unsigned releases, double seconds)
{
    char knots[32], span[32];
    if (releases == 0)
        snprintf(knots, sizeof knots, "no knot");
    else
        snprintf(knots, sizeof knots, "%u knot%s", releases, releases == 1 ? "" : "s");
    long min = lround(seconds / 60);
    if (seconds < 90)
        snprintf(span, sizeof span, "%ld seconds", lround(seconds) < 1 ? 1 : lround(seconds));
    else
        snprintf(span, sizeof span, "%ld minute%s", min, min == 1 ? "" : "s");
    snprintf(out, len, "session over: %s released in %s", knots, span);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static uint64_t pipeline_lost(const km_session_stats *st)
{
    return st->dsp_lost + st->recorder_lost + st->source.lost_upstream + st->source.malformed;
}

/* The control loop: until Ctrl-C, the duration, a closed stdout or the
 * source's end. Never writes to stdout. */
static void control_loop(km_session *s, const run_opts *o, km_event_queue *cueq,
                         km_cue_engine *cues, printer *p, cli_marks *marks)
{
    int64_t t0 = p->t0;
    int record_warned = 0, rt_said = 0;
    char warn[512];
    for (;;) {
        if (cli_interrupted || cli_output_closed)
            break;
        int keyed[16], quit, nk = cli_marks_poll(marks, keyed, 16, &quit);
        for (int i = 0; i < nk; i++)
            km_session_mark(s, keyed[i]);
        if (quit)
            break;
        if (o->duration > 0 && cli_mono_ns() - t0 >= (int64_t)(o->duration * 1e9))
            break;
        if (km_session_source_ended(s) && km_session_drained(s))
            break;
        play_cues(cueq, cues);
        warn[0] = 0;
        if (!km_cue_engine_poll(cues, warn, sizeof warn) && warn[0])
            fprintf(stderr, "knotmat run: warning: %s\n", warn);
        int rt = rt_said ? 0 : km_cue_engine_realtime(cues, warn, sizeof warn);
        if (rt && warn[0])
            fprintf(stderr, "knotmat run: %saudio thread: %s\n", rt == -1 ? "warning: " : "",
                    warn);
        rt_said |= rt != 0;
        km_session_stats st;
        km_session_stats_get(s, &st);
        atomic_store(&p->dropped, pipeline_lost(&st));
        if (st.record_error && !record_warned) {
            record_warned = 1;
            fprintf(stderr, "knotmat run: warning: the recording stopped (%s): %s keeps what "
                    "was written; the session goes on\n", km_strerror(st.record_error),
                    o->record_path);
        }
        sleep_ms(5);
    }
    /* the detectors drain the ring: their last events are still cued */
    km_session_stop(s);
    while (!km_session_drained(s)) {
        play_cues(cueq, cues);
        sleep_ms(5);
    }
    play_cues(cueq, cues);
}

static void summary_text(char *out, size_t len, const run_opts *o, const km_session_stats *st,
                         const printer *p, double el, const km_cue_stats *cs,
                         const char *backend, int rt)
{
    unsigned long long printer_missed = 0;
    for (size_t i = 0; i < st->nlisteners && i < KM_DSP_STAGE_MAX_QUEUES; i++)
        if (!strcmp(st->listeners[i].name, "printer"))
            printer_missed = st->listeners[i].overruns;
    double mean = p->analysed ? p->force_sum / (double)p->analysed : 0.0;
    int n;
    if (o->json)
        n = snprintf(out, len,
                     "{\"summary\":true,\"frames\":%llu,\"seconds\":%.3f,\"fps\":%.1f,"
                     "\"dropped_ring\":%llu,\"lost_upstream\":%llu,\"malformed\":%llu,"
                     "\"corrupt\":%llu,\"mean_force_n\":%.2f,\"max_peak_kpa\":%.2f,"
                     "\"dsp_lost\":%llu,\"recorder_lost\":%llu,\"recorded\":%llu,"
                     "\"events_dropped\":%llu,\"measured_rate_hz\":%.3f,\"jitter_ms\":%.2f,"
                     "\"marks\":%llu,\"marks_lost\":%llu,\"interrupted\":%s}\n",
                     (unsigned long long)st->frames, el, st->frames / (el > 0 ? el : 1),
                     (unsigned long long)(st->dsp_lost + st->recorder_lost),
                     (unsigned long long)st->source.lost_upstream,
                     (unsigned long long)st->source.malformed,
                     (unsigned long long)st->source.corrupt, mean, p->peak_max,
                     (unsigned long long)st->dsp_lost, (unsigned long long)st->recorder_lost,
                     (unsigned long long)st->recorded, printer_missed,
                     st->source.measured_rate_hz, st->source.jitter_ms,
                     (unsigned long long)st->marks, (unsigned long long)st->marks_lost,
                     cli_interrupted ? "true" : "false");
    else
        n = snprintf(out, len,
                     "summary: %llu frames in %.1f s (%.1f fps; the device's clock says %.2f "
                     "frames/s, jitter %.2f ms); detector lost %llu, recorder "
                     "lost %llu, %llu missing upstream; %llu malformed, %llu corrupt; mean "
                     "force %.1f N, max peak %.1f kPa; %llu events not printed%s\n",
                     (unsigned long long)st->frames, el, st->frames / (el > 0 ? el : 1),
                     st->source.measured_rate_hz, st->source.jitter_ms,
                     (unsigned long long)st->dsp_lost, (unsigned long long)st->recorder_lost,
                     (unsigned long long)st->source.lost_upstream,
                     (unsigned long long)st->source.malformed,
                     (unsigned long long)st->source.corrupt, mean, p->peak_max, printer_missed,
                     cli_interrupted ? " (interrupted)" : "");
    if (n < 0 || (size_t)n >= len)
        return;
    if (!o->json && (st->marks || st->marks_lost)) {
        int m = snprintf(out + n, len - (size_t)n, "marks: %llu (twitch %u, ouch %u, release %u), "
                         "%llu not taken\n", (unsigned long long)st->marks,
                         marks_heard[KM_MARK_TWITCH], marks_heard[KM_MARK_OUCH],
                         marks_heard[KM_MARK_RELEASE], (unsigned long long)st->marks_lost);
        if (m < 0 || (size_t)(n + m) >= len)
            return;
        n += m;
    }
    if (o->json)
        snprintf(out + n, len - (size_t)n,
                 "{\"audio\":\"%s\",\"cues\":%llu,\"cues_dropped\":%llu,\"underflows\":%llu,"
                 "\"cues_damaged\":%llu,\"audio_errors\":%llu,\"audio_realtime\":%s,"
                 "\"guided_more\":%u,\"guided_less\":%u,\"breathe_cues\":%u,"
                 "\"cue_latency_p50_ms\":%.1f,\"cue_latency_p99_ms\":%.1f}\n",
                 backend, (unsigned long long)cs->started, (unsigned long long)cs->dropped,
                 (unsigned long long)cs->underflows, (unsigned long long)cs->damaged,
                 (unsigned long long)cs->errors, rt > 0 ? "true" : "false", guided_more,
                 guided_less, breathe_said,
                 isfinite(cs->latency_p50_ms) ? cs->latency_p50_ms : -1,
                 isfinite(cs->latency_p99_ms) ? cs->latency_p99_ms : -1);
    else
        snprintf(out + n, len - (size_t)n,
                 "audio: %s, %llu cues played, %llu dropped, %llu damaged (%llu underflows), "
                 "%llu errors\n",
                 backend, (unsigned long long)cs->started, (unsigned long long)cs->dropped,
                 (unsigned long long)cs->damaged, (unsigned long long)cs->underflows,
                 (unsigned long long)cs->errors);
}

static int open_session(const run_opts *o, km_session **s, char *err, size_t errlen)
{
    km_session_config c;
    km_session_config_default(&c);
    c.source = o->uri;
    c.ring_slots = (uint32_t)o->ring_slots;
    c.dsp = o->dsp;
    c.record_path = o->record_path;
    c.record.force = o->force;
    if (o->sync_s > 0)
        c.record.sync_interval_s = o->sync_s;
    c.meta = o->meta;
    snprintf(c.meta.cue_scheme, sizeof c.meta.cue_scheme, "%s",
             o->cue.scheme_file ? o->cue.scheme_file : "built-in");
    c.note = cli_note_to_stderr;
    static char name[] = "run";
    c.note_user = name;
    return km_session_open(&c, s, err, errlen);
}

/* After the session: the summary goes through the printer (it may be stuck
 * on a stalled stdout: then it is said on stderr and the status says so). */
static int finish_printer(printer *p)
{
    atomic_store(&p->stop, 1);
    int64_t deadline = cli_mono_ns() + 3000000000LL;
    while (!atomic_load(&p->done) && cli_mono_ns() < deadline)
        sleep_ms(10);
    if (!atomic_load(&p->done)) {
        cli_stdout_stuck = 1;
        fprintf(stderr, "knotmat run: standard output is not being read; what was not printed "
                "is lost (the recording and the cues are not affected):\n%s", p->final_text);
        return EXIT_FAIL; /* the thread stays blocked in write(); exit ends it */
    }
    pthread_join(p->thread, NULL);
    return EXIT_OK;
}

/* What runs: the recording, the source and its rate, the mat's calibration. */
static void say_source(const run_opts *o, const km_source_info *info)
{
    if (o->record_path)
        fprintf(stderr, "knotmat run: recording to %s\n", o->record_path);
    char rate[48];
    if (info->rate_hz > 0)
        snprintf(rate, sizeof rate, "%g Hz stated", info->rate_hz);
    else
        snprintf(rate, sizeof rate, "rate from the device's clock");
    fprintf(stderr, "knotmat run: %s (%s, %ux%u, %.2f mm pitch, %s%s)\n", o->uri, info->kind,
            info->rows, info->cols, (double)info->pitch_mm, rate,
            info->live ? ", live" : info->speed == 0 ? ", as fast as possible" : "");
    if (!strcmp(info->kind, "sensel-morph") || !strncmp(info->kind, "fsr", 3)) {
        if (info->calibration[0])
            fprintf(stderr, "knotmat run: calibration: %s\n", info->calibration);
        else
            fprintf(stderr, "knotmat run: warning: this mat has no calibration: pressures are "
                    "the %s; 'knotmat calibrate --weight KG' measures it with a known load\n",
                    strcmp(info->kind, "sensel-morph") ? "quirks file's or the default factor's"
                                                       : "firmware's");
    }
}

/* Frames or marks lost: said, and exit status 3 */
static int loss_status(const km_session_stats *st)
{
    uint64_t lost = pipeline_lost(st);
    int status = EXIT_OK;
    if (lost) {
        fprintf(stderr, "knotmat run: warning: %llu frames lost (detector %llu, recorder %llu, "
                "missing upstream %llu, malformed %llu)\n", (unsigned long long)lost,
                (unsigned long long)st->dsp_lost, (unsigned long long)st->recorder_lost,
                (unsigned long long)st->source.lost_upstream,
                (unsigned long long)st->source.malformed);
        status = EXIT_PARTIAL;
    }
    if (st->marks_lost) {
        fprintf(stderr, "knotmat run: warning: %llu of your marks could not be taken\n",
                (unsigned long long)st->marks_lost);
        status = EXIT_PARTIAL;
    }
    return status;
}

int cmd_run(int argc, char **argv)
{
    run_opts o = {.uri = "sim://", .ring_slots = 256};
    km_cue_options_default(&o.cue);
    o.cue.render_silent = false; /* --audio none: nothing to render, no audio probe */
    km_dsp_config_default(&o.dsp);
    int prc = parse_options(argc, argv, &o);
    if (prc)
        return prc < 0 ? EXIT_OK : prc;
    if (o.weight_kg > 0)
        guide_band(o.weight_kg, o.dsp.max_force_n);
    breathe_on = o.breathe;
    char err[512] = "", warn[512] = "";
    cli_marks *marks = NULL;
    if (!o.no_marks && cli_marks_open(o.marks_path, o.mark_keys, &marks, err, sizeof err))
        return cli_fail("run", EXIT_USAGE, "%s", err);
    km_cue_engine *cues;
    if (km_cue_engine_new(&o.cue, &cues, err, sizeof err, warn, sizeof warn))
        return cli_fail("run", EXIT_USAGE, "%s", err);
    if (warn[0])
        fprintf(stderr, "knotmat run: warning: %s\n", warn);
    fprintf(stderr, "knotmat run: audio cues: %s\n", km_cue_engine_backend(cues));
    km_session *s;
    int rc = open_session(&o, &s, err, sizeof err);
    if (rc) {
        km_cue_engine_free(cues, NULL, 0);
        return cli_fail("run", rc == KM_EBUSY ? EXIT_USAGE : EXIT_FAIL, "%s", err);
    }
    const km_source_info *info = km_session_source_info(s);
    if (!o.quiet) /* the mat answers: say so, so a muted output is noticed */
        km_cue_ready(cues);
    printer p = {.json = o.json};
    km_event_queue *cueq = km_session_listen(s, "cues", 256);
    p.events = km_session_listen(s, "printer", 1024);
    p.frame = km_frame_new(km_session_max_cells(s));
    if (!cueq || !p.events || !p.frame || km_session_watch_frames(s, "status", &p.frames)) {
        km_frame_free(p.frame);
        km_session_free(s);
        km_cue_engine_free(cues, NULL, 0);
        return cli_fail("run", EXIT_FAIL, "out of memory");
    }
    say_source(&o, info);
    if (marks) {
        char keys[128];
        fprintf(stderr, "knotmat run: %s\n", cli_marks_help(marks, keys, sizeof keys));
    }
    if (o.view && !isatty(STDOUT_FILENO))
        fprintf(stderr, "knotmat run: --view: stdout is not a terminal; status lines instead\n");
    else if (o.view && !(p.view = cli_view_new(o.dsp.max_hold_s)))
        fprintf(stderr, "knotmat run: --view: out of memory; status lines instead\n");
    cli_install_signals();
    p.t0 = cli_mono_ns();
    if ((rc = km_session_start(s, err, sizeof err)) ||
        pthread_create(&p.thread, NULL, printer_run, &p) != 0) {
        cli_view_free(p.view);
        km_frame_free(p.frame);
        km_session_free(s);
        km_cue_engine_free(cues, NULL, 0);
        return cli_fail("run", EXIT_FAIL, "%s", err[0] ? err : "cannot start the printer");
    }
    control_loop(s, &o, cueq, cues, &p, marks);
    cli_marks_close(marks); /* the terminal as it was */
    int status = EXIT_OK;
    if (km_session_finish(s, err, sizeof err)) {
        fprintf(stderr, "knotmat run: recording: %s\n", err);
        status = EXIT_FAIL;
    } else if (o.record_path) {
        fprintf(stderr, "knotmat run: recorded %s\n", o.record_path);
    }
    play_cues(cueq, cues);
    double el = (cli_mono_ns() - p.t0) * 1e-9, said = 0;
    if (!o.quiet) {
        char words[128];
        summary_words(words, sizeof words, releases_cued, el);
        said = km_cue_say(cues, words, -1);
    }
    /* let the last cue (and the summary) finish before the stream goes */
    if (strcmp(km_cue_engine_backend(cues), "none") && strncmp(o.cue.audio, "wav:", 4))
        sleep_ms(1200 + lround(said * 1000));
    km_session_stats st;
    km_session_stats_get(s, &st);
    km_cue_stats cs;
    km_cue_engine_stats(cues, &cs);
    summary_text(p.final_text, sizeof p.final_text, &o, &st, &p, el, &cs,
                 km_cue_engine_backend(cues), km_cue_engine_realtime(cues, NULL, 0));
    if (finish_printer(&p))
        status = EXIT_FAIL;
    if (km_cue_engine_free(cues, err, sizeof err)) {
        fprintf(stderr, "knotmat run: %s\n", err);
        status = EXIT_FAIL;
    }
    if (status == EXIT_OK)
        status = loss_status(&st);
    if (atomic_load(&p.done)) { /* else the printer thread still uses them: exit frees */
        km_frame_free(p.frame);
        km_session_free(s);
    }
    return status;
}
