/* cmd_record.c: knotmat record, check and recover: crash-safe .kmr files.
 * `record` runs the source into the ring and is the ring's recorder
 * consumer: frames lost in the ring or upstream become explicit gap blocks;
 * blocks are synced every --sync seconds (1 s), so a crash loses at most
 * that. A full disk or file-size limit is a clear error and leaves a valid
 * file. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "knotmat/record.h"
#include "knotmat/ring.h"
#include "knotmat/source.h"

static char cmd_name[] = "record";

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat record --source URI -o FILE.kmr [OPTIONS]\n"
            "Record a session to a crash-safe .kmr file (docs/file-format.md).\n\n"
            "  -s, --source URI      where frames come from (default sim://)\n"
            "  -o, --output FILE     the recording (created 0600; never overwritten...)\n"
            "      --force           ...unless this is given\n"
            "  -d, --duration S      stop after S seconds (default: Ctrl-C or end of source)\n"
            "      --sync S          write and sync at least every S seconds (default 1)\n"
            "      --subject ID --session ID --operator NAME --notes TEXT   metadata\n"
            "  -q, --quiet           no status line\n"
            "  -h, --help            this text\n");
}

int cmd_record(int argc, char **argv)
{
    static const struct option opts[] = {
        {"source", required_argument, 0, 's'},   {"output", required_argument, 0, 'o'},
        {"force", no_argument, 0, 'F'},          {"duration", required_argument, 0, 'd'},
        {"sync", required_argument, 0, 'Y'},     {"subject", required_argument, 0, 'S'},
        {"session", required_argument, 0, 'E'},  {"operator", required_argument, 0, 'O'},
        {"notes", required_argument, 0, 'N'},    {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    const char *uri = "sim://", *out = NULL;
    double duration = 0, sync_s = 1;
    int force = 0, quiet = 0, c;
    km_record_meta meta;
    memset(&meta, 0, sizeof meta);
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:o:d:qh", opts, NULL)) != -1) {
        switch (c) {
        case 's': uri = optarg; break;
        case 'o': out = optarg; break;
        case 'F': force = 1; break;
        case 'q': quiet = 1; break;
        case 'd':
            if (!cli_parse_double("record", "duration", optarg, 0, 1e7, &duration))
                return EXIT_USAGE;
            break;
        case 'Y':
            if (!cli_parse_double("record", "sync", optarg, 0.05, 60, &sync_s))
                return EXIT_USAGE;
            break;
        case 'S': snprintf(meta.subject, sizeof meta.subject, "%s", optarg); break;
        case 'E': snprintf(meta.session, sizeof meta.session, "%s", optarg); break;
        case 'O': snprintf(meta.operator_name, sizeof meta.operator_name, "%s", optarg); break;
        case 'N': snprintf(meta.notes, sizeof meta.notes, "%s", optarg); break;
        case 'h': help(stdout); return EXIT_OK;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    if (!out || optind < argc)
        return cli_fail("record", EXIT_USAGE, "-o FILE.kmr is required (see --help)");
    char err[512];
    km_source *src;
    if (km_source_open(uri, &src, err, sizeof err))
        return cli_fail("record", EXIT_FAIL, "%s", err);
    km_source_set_notify(src, cli_note_to_stderr, cmd_name);
    km_source_info info;
    km_source_describe(src, &info);
    cli_meta_from_source(&meta, &info);
    km_recorder *rec;
    int rc = km_recorder_open(out, &meta, force, sync_s, &rec, err, sizeof err);
    if (rc) {
        km_source_close(src);
        return cli_fail("record", rc == KM_EBUSY ? EXIT_USAGE : EXIT_FAIL, "%s", err);
    }
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit must be an error, not a kill */
    enum km_ring_mode mode = (!info.live && info.speed == 0) ? KM_RING_BACKPRESSURE : KM_RING_LOSSY;
    km_ring *ring = km_ring_new(1024, km_source_max_cells(src), mode);
    km_frame *f = km_frame_new(km_source_max_cells(src));
    km_ring_consumer *cons;
    if (!ring || !f || km_ring_consumer_add(ring, "recorder", &cons) ||
        km_source_start(src, ring)) {
        km_recorder_close(rec, NULL, 0);
        km_ring_free(ring);
        km_frame_free(f);
        km_source_close(src);
        return cli_fail("record", EXIT_FAIL, "cannot start the source");
    }
    cli_install_signals();
    fprintf(stderr, "knotmat record: %s -> %s (sync every %g s)\n", uri, out, sync_s);
    int64_t t0 = cli_mono_ns(), next = t0 + 1000000000;
    uint64_t frames = 0, gaps = 0, last_seq = 0;
    int have_last = 0, failed = 0;
    while (!cli_interrupted) {
        if (duration > 0 && cli_mono_ns() - t0 >= (int64_t)(duration * 1e9))
            break;
        uint64_t lost = 0;
        rc = km_ring_pop_wait(cons, f, &lost, 100000000);
        if (rc == KM_ECLOSED)
            break;
        if (rc == KM_OK) {
            /* frames missing before this one: lost in the ring or upstream */
            if (have_last && f->seq > last_seq + 1) {
                uint64_t missing = f->seq - last_seq - 1;
                int reason = lost >= missing ? KM_GAP_RING : KM_GAP_DEVICE;
                if (km_recorder_add_gap(rec, last_seq + 1, missing, reason))
                    failed = 1;
                gaps++;
            }
            last_seq = f->seq;
            have_last = 1;
            if (km_recorder_add_frame(rec, f))
                failed = 1;
            else
                frames++;
            if (failed)
                break;
        }
        int64_t now = cli_mono_ns();
        if (!quiet && now >= next) {
            fprintf(stderr, "knotmat record: %llu frames, %llu written and synced, %llu gaps\n",
                    (unsigned long long)frames,
                    (unsigned long long)km_recorder_frames_written(rec), (unsigned long long)gaps);
            next += 1000000000;
        }
    }
    km_source_stop(src);
    uint64_t written_before_close = km_recorder_frames_written(rec);
    rc = km_recorder_close(rec, err, sizeof err);
    km_ring_free(ring);
    km_frame_free(f);
    km_source_close(src);
    if (rc || failed) {
        fprintf(stderr, "knotmat record: %s\n", rc ? err : "recording stopped: write failed");
        fprintf(stderr, "knotmat record: %s is valid and holds %llu frames\n", out,
                (unsigned long long)written_before_close);
        return EXIT_FAIL;
    }
    printf("recorded %llu frames to %s (%llu gaps)%s\n", (unsigned long long)frames, out,
           (unsigned long long)gaps, cli_interrupted ? " (interrupted)" : "");
    return EXIT_OK;
}

static void print_report(const char *path, const km_kmr_report *r, int rc)
{
    printf("%s: %s\n", path, rc == KM_OK ? (r->ended ? "ok" : "ok, but not closed") : "DAMAGED");
    printf("  %llu blocks (%llu of frames), %llu frames, %llu events, %llu gaps (%llu frames "
           "lost)\n",
           (unsigned long long)r->blocks, (unsigned long long)r->frame_blocks,
           (unsigned long long)r->frames, (unsigned long long)r->events,
           (unsigned long long)r->gaps, (unsigned long long)r->gap_frames);
    printf("  %llu bytes, %llu in whole valid blocks\n", (unsigned long long)r->bytes,
           (unsigned long long)r->valid_bytes);
    if (r->first_bad_offset >= 0)
        printf("  first bad byte: %lld (%s); 'knotmat recover' keeps every whole block before it\n",
               (long long)r->first_bad_offset, r->problem);
    else if (!r->ended)
        printf("  %s\n", r->problem);
}

int cmd_check(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("Usage: knotmat check FILE.kmr...\nVerify every block of recordings (CRC32C, "
               "sizes, order); report frames, events, gaps\nand the first bad byte. Exit 0 when "
               "every file is whole, 1 otherwise.\n");
        return EXIT_OK;
    }
    if (argc < 2)
        return cli_fail("check", EXIT_USAGE, "which file? (see --help)");
    int status = EXIT_OK;
    for (int i = 1; i < argc; i++) {
        km_kmr_report r;
        int rc = km_kmr_check(argv[i], &r);
        if (rc == KM_ENOENT) {
            cli_fail("check", EXIT_FAIL, "%s: %s", argv[i], r.problem);
            status = EXIT_FAIL;
            continue;
        }
        print_report(argv[i], &r, rc);
        if (rc)
            status = EXIT_FAIL;
    }
    return status;
}

int cmd_recover(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                          {"force", no_argument, 0, 'F'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const char *out = NULL;
    int force = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'F': force = 1; break;
        case 'h':
            printf("Usage: knotmat recover TORN.kmr -o FIXED.kmr [--force]\nCopy every whole, "
                   "valid block of a damaged or interrupted recording into a\nnew, properly "
                   "closed file (created 0600, not over an existing one without --force).\n");
            return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (!out || optind != argc - 1)
        return cli_fail("recover", EXIT_USAGE, "usage: knotmat recover TORN.kmr -o FIXED.kmr");
    char err[512];
    km_kmr_report r;
    cli_progress bar;
    cli_progress_begin(&bar, "recover", "frames");
    int rc = km_kmr_recover_progress(argv[optind], out, force, cli_progress_update, &bar, &r, err,
                                     sizeof err);
    cli_progress_end(&bar);
    if (rc)
        return cli_fail("recover", rc == KM_EBUSY ? EXIT_USAGE : EXIT_FAIL, "%s", err);
    printf("recovered %llu frames in %llu blocks from %s into %s\n",
           (unsigned long long)r.frames, (unsigned long long)r.blocks, argv[optind], out);
    if (r.first_bad_offset >= 0)
        printf("  dropped from byte %lld: %s\n", (long long)r.first_bad_offset, r.problem);
    return EXIT_OK;
}
