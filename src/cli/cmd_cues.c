/* cmd_cues.c: knotmat cues: list, preview and render the cue scheme, so a
 * person can hear what each cue means before lying down. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "knotmat/cue.h"

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat cues [OPTIONS]\n"
            "List the audio cues (one per event) or play them to learn them.\n\n"
            "  -l, --list          each cue: event, length (ms), main frequencies (default)\n"
            "  -j, --json          the list as JSON lines\n"
            "  -p, --play EVENT    play one cue (spasm, release, ...), or 'all' in turn\n"
            "  -a, --audio WHAT    auto, pulseaudio, alsa, jack, dummy or wav:FILE (default auto)\n"
            "      --voice V       espeak-ng voice (default en), or none\n"
            "      --volume X      0..1 (default 0.7)\n"
            "      --cues FILE     a cue scheme file (docs/cues.md)\n"
            "  -h, --help          this text\n");
}

int cmd_cues(int argc, char **argv)
{
    static const struct option opts[] = {
        {"list", no_argument, 0, 'l'},          {"json", no_argument, 0, 'j'},
        {"play", required_argument, 0, 'p'},    {"audio", required_argument, 0, 'a'},
        {"voice", required_argument, 0, 'V'},   {"volume", required_argument, 0, 'v'},
        {"cues", required_argument, 0, 'c'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    km_cue_options o;
    km_cue_options_default(&o);
    const char *play = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ljp:a:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': break;
        case 'j': json = 1; break;
        case 'p': play = optarg; break;
        case 'a': o.audio = optarg; break;
        case 'V': o.voice = optarg; break;
        case 'c': o.scheme_file = optarg; break;
        case 'v':
            if (!cli_parse_double("cues", "volume", optarg, 0, 1, &o.volume))
                return EXIT_USAGE;
            break;
        case 'h': help(stdout); return EXIT_OK;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    if (!play)
        o.audio = "none";
    char err[512], warn[512];
    km_cue_engine *e;
    if (km_cue_engine_new(&o, &e, err, sizeof err, warn, sizeof warn))
        return cli_fail("cues", EXIT_USAGE, "%s", err);
    if (warn[0])
        fprintf(stderr, "knotmat cues: warning: %s\n", warn);
    int status = EXIT_OK;
    if (!play) {
        for (int t = 1; t < KM_EV_TYPE_COUNT; t++) {
            size_t n;
            km_cue_samples(e, (enum km_event_type)t, &n);
            const double *f = km_cue_frequencies(e, (enum km_event_type)t);
            const char *name = km_event_type_name((enum km_event_type)t);
            if (json) {
                printf("{\"event\":\"%s\",\"ms\":%.1f,\"hz\":[", name, n * 1000.0 / 48000);
                for (int k = 0; f[k] && k < 4; k++)
                    printf("%s%.0f", k ? "," : "", f[k]);
                printf("]}\n");
            } else if (n) {
                printf("%-13s %6.0f ms  ", name, n * 1000.0 / 48000);
                for (int k = 0; f[k] && k < 4; k++)
                    printf("%s%.0f Hz", k ? ", " : "", f[k]);
                printf("\n");
            } else {
                printf("%-13s (silent)\n", name);
            }
        }
    } else {
        int known = !strcmp(play, "all");
        for (int ty = 1; ty < KM_EV_TYPE_COUNT && !known; ty++)
            known = !strcmp(play, km_event_type_name((enum km_event_type)ty));
        if (!known) {
            km_cue_engine_free(e, NULL, 0);
            return cli_fail("cues", EXIT_USAGE, "--play %s: no such cue (see 'knotmat cues' for "
                            "the list, or 'all')", play);
        }
        if (!strcmp(km_cue_engine_backend(e), "none")) {
            km_cue_engine_free(e, NULL, 0);
            return cli_fail("cues", EXIT_FAIL, "nothing can be played: no sound output (%s)",
                            warn[0] ? warn : "--audio none");
        }
        double t = 0.5;
        for (int ty = 1; ty < KM_EV_TYPE_COUNT; ty++) {
            const char *name = km_event_type_name((enum km_event_type)ty);
            if (strcmp(play, "all") && strcmp(play, name))
                continue;
            size_t n;
            if (!km_cue_samples(e, (enum km_event_type)ty, &n))
                continue;
            km_event ev = {.type = (enum km_event_type)ty, .t_s = t, .detected_t_s = t};
            printf("%s\n", name);
            fflush(stdout);
            km_cue_play(e, &ev);
            double gap = n / 48000.0 + 0.8;
            t += gap;
            if (strncmp(km_cue_engine_backend(e), "wav", 3)) {
                struct timespec ts = {(time_t)gap, (long)((gap - (time_t)gap) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
    }
    if (km_cue_engine_free(e, err, sizeof err)) {
        fprintf(stderr, "knotmat cues: %s\n", err);
        status = EXIT_FAIL;
    }
    return status;
}
