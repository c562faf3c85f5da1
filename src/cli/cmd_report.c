/* cmd_report.c: knotmat report FILE -o OUT.pdf|OUT.png: a session report
 * for a clinician (src/report/report.c draws it). Touches: the input, the
 * output, stderr (progress on a terminal). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "knotmat/report.h"

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat report FILE -o OUT.pdf|OUT.png [OPTIONS]\n"
            "Draw a session report: metadata, the mean and peak pressure maps (kPa and mmHg)\n"
            "with the holds marked, a timeline of total load, ball force and breathing with\n"
            "every event marked, and a table of the holds (where, how long, time to spasm\n"
            "and release, peak pressure); the person's own marks (keys pressed during\n"
            "'knotmat run') against the detector's events (kept by --reanalyze). PDF:\n"
            "several pages (timeline detail pages for long sessions); PNG: the first page.\n"
            "FILE: .kmr, knotmat CSV, PmatData, Tekscan or XSENSOR export, or a file:// URI.\n\n"
            "  -o, --output OUT      the report (.pdf or .png), created 0600\n"
            "      --deidentify      leave out subject, operator, serial, notes, file name, date\n"
            "      --span S          seconds per timeline detail page (default 300)\n"
            "      --reanalyze       run the detectors again instead of showing the events the\n"
            "                        live session decided (a .kmr from 'knotmat run -r' holds\n"
            "                        them and its settings); the report says which it shows\n"
            "      --set KEY=VALUE   a detector parameter of the re-analysis (docs/detection.md)\n"
            "      --force           overwrite OUT\n"
            "      --map FILE        also write the plot geometry as JSON (for tests)\n"
            "  -h, --help            this text\n");
}

static char cmd_name[] = "report";

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"deidentify", no_argument, 0, 'D'},
        {"span", required_argument, 0, 's'},   {"set", required_argument, 0, 'S'},
        {"force", no_argument, 0, 'F'},        {"map", required_argument, 0, 'm'},
        {"reanalyze", no_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    km_report_options o = {0};
    char set[1024] = "";
    char err[512] = "";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; break;
        case 'D': o.deidentify = true; break;
        case 'F': o.force = true; break;
        case 'm': o.map_path = optarg; break;
        case 'R': o.reanalyze = true; break;
        case 's':
            if (!cli_parse_double("report", "span", optarg, 10, 86400, &o.page_span_s))
                return EXIT_USAGE;
            break;
        case 'S':
            if (!cli_add_set("report", optarg, set, sizeof set))
                return EXIT_USAGE;
            o.set = set;
            break;
        case 'h': help(stdout); return EXIT_OK;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !o.output)
        return cli_fail("report", EXIT_USAGE, "one FILE and -o OUT.pdf|OUT.png please (--help)");
    o.input = argv[optind];
    cli_progress bar;
    cli_progress_begin(&bar, "report", "frames");
    o.progress = cli_progress_update;
    o.progress_user = &bar;
    o.note = cli_note_to_stderr;
    o.note_user = cmd_name;
    km_report_summary s;
    int rc = km_report_render(&o, &s, err, sizeof err);
    cli_progress_end(&bar);
    if (rc)
        return cli_fail("report", rc == KM_EINVAL || rc == KM_EBUSY ? EXIT_USAGE : EXIT_FAIL, "%s",
                        err);
    char marks[48] = "";
    if (s.marks)
        snprintf(marks, sizeof marks, ", %zu of your marks", s.marks);
    printf("report: %s, %d page%s: %llu frames, %.1f s, %zu holds, %zu events %s%s%s\n",
           o.output, s.pages, s.pages == 1 ? "" : "s", (unsigned long long)s.frames,
           s.duration_s, s.holds, s.events, s.events_from, marks,
           o.deidentify ? " (de-identified)" : "");
    if (s.skipped) {
        fprintf(stderr, "knotmat report: warning: %llu damaged or malformed parts of the input "
                "were skipped (see above)\n", (unsigned long long)s.skipped);
        return EXIT_PARTIAL;
    }
    return EXIT_OK;
}
