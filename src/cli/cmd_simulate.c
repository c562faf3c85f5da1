/* cmd_simulate.c: knotmat simulate: a simulated session to knotmat CSV plus
 * its ground truth (NAME.labels.csv), as fast as the machine goes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "knotmat/outfile.h"
#include "knotmat/files.h"
#include "knotmat/sim.h"

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat simulate [OPTIONS] -o FILE.csv\n"
            "Simulate a person lying on an acupressure ball on a pressure mat and write the\n"
            "frames as knotmat CSV, with the ground truth (spasm, release) in\n"
            "FILE.labels.csv. Deterministic: the same options give the same bytes.\n\n"
            "  -s, --scenario NAME   what happens (default release; --list shows all)\n"
            "  -d, --duration S      seconds to simulate (default 120)\n"
            "      --seed N          random seed (default 1)\n"
            "      --rows N --cols N grid (default 32 x 32)\n"
            "      --pitch MM        sensor pitch in mm (default 12.7)\n"
            "      --rate HZ         frame rate (default 100)\n"
            "      --ball MM         ball diameter (default 63)\n"
            "      --weight KG       body mass (default 70)\n"
            "  -p, --param KEY=VAL   any simulator parameter (see docs/simulator.md)\n"
            "  -o, --output FILE     CSV to write (required; FILE.labels.csv beside it)\n"
            "      --force           replace existing files (never without it)\n"
            "      --truth           also print every planned event, confounders included\n"
            "      --list            list the scenarios and exit\n"
            "  -h, --help            this text\n");
}

/* Every frame of the simulation into the CSV, its parameters and dead cells
 * in the header. */
static int write_frames(km_sim *sim, const km_sim_params *p, const char *out_path,
                        unsigned out_flags, uint64_t *frames, char *err, size_t errlen)
{
    char seed_meta[64], scen_meta[64], ball_meta[64], weight_meta[64];
    snprintf(scen_meta, sizeof scen_meta, "scenario=%s", p->scenario);
    snprintf(seed_meta, sizeof seed_meta, "seed=%llu", (unsigned long long)p->seed);
    snprintf(ball_meta, sizeof ball_meta, "ball_mm=%g", p->ball_mm);
    snprintf(weight_meta, sizeof weight_meta, "weight_kg=%g", p->weight_kg);
    const char *meta[] = {"source=knotmat simulate", scen_meta, seed_meta, ball_meta,
                          weight_meta, NULL, NULL};
    km_frame *f = km_frame_new((uint32_t)p->rows * p->cols);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return KM_ENOMEM;
    }
    int rc = km_sim_next(sim, f);
    /* dead cells are written as a "dead=" key so a reader flags them too */
    char *dead = calloc(1, 16u * f->rows * f->cols + 8);
    size_t dl = 0;
    if (dead) {
        dl += (size_t)sprintf(dead, "dead=");
        for (uint32_t i = 0; i < km_frame_cells(f); i++)
            if (f->cell_flags[i] & KM_CELL_DEAD)
                dl += (size_t)sprintf(dead + dl, "%sr%uc%u", dl > 5 ? ";" : "", i / f->cols,
                                      i % f->cols);
        meta[5] = dl > 5 ? dead : NULL;
    }
    km_csv_writer *w;
    int orc = km_csv_writer_open(out_path, out_flags, p->rows, p->cols, p->pitch_mm, p->rate_hz,
                                 meta, &w, err, errlen);
    while (!orc && rc == 0) {
        if (km_csv_writer_write(w, (double)f->device_ns * 1e-9, f)) {
            rc = -1;
            break;
        }
        (*frames)++;
        rc = km_sim_next(sim, f);
    }
    int wrc = orc ? orc : km_csv_writer_close(w, err, errlen);
    free(dead);
    km_frame_free(f);
    if (!wrc && rc == -1) {
        snprintf(err, errlen, "write failed");
        wrc = KM_EIO;
    }
    return wrc;
}

/* The ground truth beside the CSV: every spasm and release (none left out). */
static int write_labels(const km_sim_event *ev, size_t nev, const char *lpath, unsigned out_flags,
                        size_t *nl, char *err, size_t errlen)
{
    km_label *labels = calloc(nev ? nev : 1, sizeof *labels);
    if (!labels) {
        snprintf(err, errlen, "out of memory for %zu labels", nev);
        return KM_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < nev; i++) {
        if (ev[i].type != KM_SIM_SPASM && ev[i].type != KM_SIM_RELEASE)
            continue;
        labels[n].t_s = ev[i].t_s;
        snprintf(labels[n].type, sizeof labels[n].type, "%s", km_sim_event_name(ev[i].type));
        labels[n].x_mm = ev[i].x_mm;
        labels[n].y_mm = ev[i].y_mm;
        n++;
    }
    int rc = km_labels_write(lpath, out_flags, labels, n, err, errlen);
    free(labels);
    *nl = n;
    return rc;
}

/* The scenarios of both simulators, with what happens in each. */
static void list_scenarios(void)
{
    for (int m = 1; m <= 2; m++) {
        printf("%s (-p model=%d%s):\n", m == 1 ? "sim://" : "sim2://, written apart", m,
               m == 1 ? ", the default" : ", before -s");
        for (const char *const *s = km_sim_model_scenarios(m); *s; s++)
            printf("  %-14s %s\n", *s, km_sim_model_help(m, *s));
    }
}

int cmd_simulate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"scenario", required_argument, 0, 's'}, {"duration", required_argument, 0, 'd'},
        {"seed", required_argument, 0, 'S'},     {"rows", required_argument, 0, 'R'},
        {"cols", required_argument, 0, 'C'},     {"pitch", required_argument, 0, 'P'},
        {"rate", required_argument, 0, 'r'},     {"ball", required_argument, 0, 'B'},
        {"weight", required_argument, 0, 'W'},   {"param", required_argument, 0, 'p'},
        {"output", required_argument, 0, 'o'},   {"truth", no_argument, 0, 'T'},
        {"force", no_argument, 0, 'F'},
        {"list", no_argument, 0, 'L'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    km_sim_params p;
    km_sim_params_default(&p);
    const char *out_path = NULL;
    unsigned out_flags = 0;
    int show_truth = 0;
    char err[512];
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "s:d:p:o:h", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 's': key = "scenario"; break;
        case 'd': key = "duration"; break;
        case 'S': key = "seed"; break;
        case 'R': key = "rows"; break;
        case 'C': key = "cols"; break;
        case 'P': key = "pitch"; break;
        case 'r': key = "rate"; break;
        case 'B': key = "ball"; break;
        case 'W': key = "weight"; break;
        case 'p': {
            char kv[300];
            const char *val;
            if (!cli_split_kv("simulate", "param", optarg, kv, sizeof kv, &val))
                return EXIT_USAGE;
            if (km_sim_params_set(&p, kv, val, err, sizeof err))
                return cli_fail("simulate", EXIT_USAGE, "%s", err);
            continue;
        }
        case 'o': out_path = optarg; continue;
        case 'F': out_flags |= KM_OUT_FORCE; continue;
        case 'T': show_truth = 1; continue;
        case 'L': list_scenarios(); return EXIT_OK;
        case 'h': help(stdout); return EXIT_OK;
        default: help(stderr); return EXIT_USAGE;
        }
        if (km_sim_params_set(&p, key, optarg, err, sizeof err))
            return cli_fail("simulate", EXIT_USAGE, "%s", err);
    }
    if (optind < argc)
        return cli_fail("simulate", EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!out_path)
        return cli_fail("simulate", EXIT_USAGE, "-o FILE.csv is required (see --help)");
    if (p.duration_s <= 0)
        return cli_fail("simulate", EXIT_USAGE, "--duration must be > 0 for a file");

    /* both files may be written, or neither is touched */
    char lpath[1100];
    km_labels_path_for(out_path, lpath, sizeof lpath);
    if (km_outfile_check(out_path, out_flags, NULL, err, sizeof err) ||
        km_outfile_check(lpath, out_flags, NULL, err, sizeof err))
        return cli_fail("simulate", EXIT_USAGE, "%s", err);
    km_sim *sim;
    if (km_sim_new(&p, &sim, err, sizeof err))
        return cli_fail("simulate", EXIT_FAIL, "%s", err);
    uint64_t frames = 0;
    if (write_frames(sim, &p, out_path, out_flags, &frames, err, sizeof err)) {
        km_sim_free(sim);
        return cli_fail("simulate", EXIT_FAIL, "%s", err);
    }
    const km_sim_event *ev;
    size_t nev = km_sim_truth(sim, &ev), nl;
    if (write_labels(ev, nev, lpath, out_flags, &nl, err, sizeof err)) {
        km_sim_free(sim);
        return cli_fail("simulate", EXIT_FAIL, "%s", err);
    }
    printf("wrote %s: %llu frames of %ux%u at %g Hz (%s, seed %llu)\n", out_path,
           (unsigned long long)frames, p.rows, p.cols, p.rate_hz, p.scenario,
           (unsigned long long)p.seed);
    printf("wrote %s: %zu labelled events\n", lpath, nl);
    if (show_truth)
        for (size_t i = 0; i < nev; i++)
            printf("  %8.3f s  %-9s x=%.1f mm y=%.1f mm dur=%.2f s mag=%.3f\n", ev[i].t_s,
                   km_sim_event_name(ev[i].type), ev[i].x_mm, ev[i].y_mm, ev[i].duration_s,
                   ev[i].magnitude);
    km_sim_free(sim);
    return EXIT_OK;
}
