/* cmd_export.c: knotmat export FILE --to csv|edf -o OUT [--deidentify]. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "knotmat/export.h"

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat export FILE --to csv|edf|hdf5 -o OUT [OPTIONS]\n"
            "Export a recording (.kmr, knotmat CSV or PmatData) for other tools.\n\n"
            "  -t, --to csv|edf   csv: every frame in the knotmat CSV layout;\n"
            "                     edf: EDF+ with derived channels at 10 Hz (total force, centre\n"
            "                     of pressure x/y, contact area, peak pressure, hotspot force,\n"
            "                     breathing rate) and the detected events as annotations;\n"
            "                     hdf5: every frame (kPa, raw counts, cell flags) as chunked\n"
            "                     datasets, the events, the metadata as attributes\n"
            "  -o, --output OUT   the file to write (created 0600; not over an existing file\n"
            "                     without --force, never over the input or a device)\n"
            "      --deidentify   subject and session ids become X; operator, device serial\n"
            "                     and free text are dropped; start date 1985-01-01 (EDF+)\n"
            "      --force        replace OUT once the new one is whole\n"
            "      --reanalyze    edf, hdf5: run the detectors again instead of carrying the\n"
            "                     events the live session decided (a .kmr from 'knotmat run\n"
            "                     -r' holds them and its settings)\n"
            "      --set KEY=VALUE  a detector parameter of the re-analysis (docs/detection.md)\n"
            "  -h, --help         this text\n\n"
            "Exit status: 0 done, 1 failed (nothing written), 2 usage, 3 done but part of the\n"
            "input was damaged or malformed and skipped (said on stderr).\n");
}

static char cmd_name[] = "export";

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {{"to", required_argument, 0, 't'},
                                          {"output", required_argument, 0, 'o'},
                                          {"deidentify", no_argument, 0, 'D'},
                                          {"force", no_argument, 0, 'F'},
                                          {"reanalyze", no_argument, 0, 'R'},
                                          {"set", required_argument, 0, 'S'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    km_export_options o = {0};
    const char *out = NULL;
    char set[1024] = "";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!strcmp(optarg, "csv"))
                o.format = KM_EXPORT_CSV;
            else if (!strcmp(optarg, "edf"))
                o.format = KM_EXPORT_EDF;
            else if (!strcmp(optarg, "hdf5") || !strcmp(optarg, "h5"))
                o.format = KM_EXPORT_HDF5;
            else
                return cli_fail("export", EXIT_USAGE, "--to %s: csv, edf or hdf5", optarg);
            break;
        case 'o': out = optarg; break;
        case 'D': o.deidentify = true; break;
        case 'F': o.force = true; break;
        case 'R': o.reanalyze = true; break;
        case 'S':
            if (!cli_add_set("export", optarg, set, sizeof set))
                return EXIT_USAGE;
            o.set = set;
            break;
        case 'h': help(stdout); return EXIT_OK;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    if (!o.format || !out || optind != argc - 1)
        return cli_fail("export", EXIT_USAGE,
                        "usage: knotmat export FILE --to csv|edf|hdf5 -o OUT");
    if (o.format == KM_EXPORT_CSV && (o.reanalyze || o.set))
        return cli_fail("export", EXIT_USAGE, "--reanalyze and --set are for edf and hdf5: a "
                        "CSV export carries the frames only");
    char err[1024];
    km_export_report rep;
    cli_progress bar;
    cli_progress_begin(&bar, "export", "frames");
    o.progress = cli_progress_update;
    o.progress_user = &bar;
    o.note = cli_note_to_stderr;
    o.note_user = cmd_name;
    int rc = km_export(argv[optind], out, &o, &rep, err, sizeof err);
    cli_progress_end(&bar);
    if (rc)
        return cli_fail("export", rc == KM_EBUSY ? EXIT_USAGE : EXIT_FAIL, "%s", err);
    int status = EXIT_OK;
    if (rep.skipped) {
        fprintf(stderr, "knotmat export: warning: %llu damaged or malformed parts of %s were "
                "skipped (see above); %s holds the rest\n", (unsigned long long)rep.skipped,
                argv[optind], out);
        status = EXIT_PARTIAL;
    }
    if (o.format == KM_EXPORT_CSV)
        printf("exported %llu frames to %s\n", (unsigned long long)rep.frames, out);
    else if (o.format == KM_EXPORT_HDF5)
        printf("exported %llu frames and %llu events (%s) to %s%s\n",
               (unsigned long long)rep.frames, (unsigned long long)rep.events, rep.events_from,
               out, o.deidentify ? " (de-identified)" : "");
    else
        printf("exported %llu frames as %llu s of 7 derived channels and %llu annotations to "
               "%s (%s; events %s)%s\n",
               (unsigned long long)rep.frames, (unsigned long long)rep.records,
               (unsigned long long)rep.annotations, out,
               rep.discontinuous ? "EDF+D: the recording has gaps, only seconds with data"
                                 : "EDF+C",
               rep.events_from, o.deidentify ? " (de-identified)" : "");
    return status;
}
