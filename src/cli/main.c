/* main.c: the knotmat command: dispatch to one file per subcommand. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "knotmat/common.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"run", cmd_run, "run the live pipeline on a source (simulated mat, file, device)"},
    {"simulate", cmd_simulate, "write a simulated session to CSV with its ground-truth labels"},
    {"analyze", cmd_analyze, "run the detectors on a recording as fast as possible"},
    {"cues", cmd_cues, "list the audio cues, or play them to learn them"},
    {"record", cmd_record, "record a session to a crash-safe .kmr file"},
    {"check", cmd_check, "verify every block of .kmr recordings"},
    {"recover", cmd_recover, "rescue every whole block of a damaged .kmr into a new file"},
    {"export", cmd_export, "export a recording to CSV or EDF+ (derived channels, events)"},
    {"info", cmd_info, "describe a recording: geometry, duration, frames, defects"},
    {"devices", cmd_devices, "list the pressure mats connected over USB"},
    {"report", cmd_report, "draw a session report (PDF or PNG): maps, timeline, holds"},
    {"calibrate", cmd_calibrate, "measure a mat's gain with a known weight and keep it"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: knotmat COMMAND [OPTIONS]\n"
            "Real-time pressure-mat signal processing for trigger-point work on a ball.\n"
            "Not a medical device.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'knotmat COMMAND --help' describes each command.\n"
                 "  --version  print the version\n  --help     this text\n");
}

/* What a command printed must have reached stdout: a closed pipe (`| head`)
 * ends quietly with the status a shell shows for SIGPIPE; any other write
 * error is said. */
static int finish_stdout(int status)
{
    if (cli_stdout_stuck) { /* a thread holds stdout's lock in a write that never ends */
        fflush(stderr);
        _exit(status);
    }
    if (fflush(stdout) == 0 && !ferror(stdout))
        return status;
    if (errno == EPIPE || cli_output_closed)
        return 128 + SIGPIPE;
    fprintf(stderr, "knotmat: writing standard output: %s\n", strerror(errno));
    return status ? status : EXIT_FAIL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("knotmat %s (libknotmat %s)\n", KM_VERSION_STRING, km_version());
        return EXIT_OK;
    }
    cli_ignore_fatal_signals();
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int status = commands[i].fn(argc - 1, argv + 1);
            return finish_stdout(status);
        }
    fprintf(stderr, "knotmat: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
