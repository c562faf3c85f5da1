/* cmd_record.c: knotmat record, check and recover: crash-safe .kmr files.
 * `record` runs the source into the ring and is the ring's recorder
 * consumer: frames lost in the ring or upstream become explicit gap blocks;
 * every frame is on disk within --sync-ms (250 ms) of its arrival, so a
 * crash loses at most that. A full disk or file-size limit is a clear error
 * and leaves a valid file; losing frames is said and makes the exit status
 * non-zero. `check` lists every damaged span; `recover` keeps every whole
 * block around them. */
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "knotmat/record.h"
#include "knotmat/ring.h"
#include "knotmat/source.h"

static char cmd_name[] = "record";

typedef struct record_tally {
    uint64_t frames, gaps, lost, lost_ring, last_seq;
    int have_last, failed;
} record_tally;

/* One popped frame: the gap before it (lost in the ring or upstream) as a
 * gap block, then the frame. */
static void record_frame(km_recorder *rec, const km_frame *f, uint64_t ring_lost, record_tally *t)
{
    if (t->have_last && f->seq > t->last_seq + 1) {
        uint64_t missing = f->seq - t->last_seq - 1;
        int reason = ring_lost >= missing ? KM_GAP_RING : KM_GAP_DEVICE;
        if (km_recorder_add_gap(rec, t->last_seq + 1, missing, reason))
            t->failed = 1;
        t->gaps++;
        t->lost += missing;
        t->lost_ring += reason == KM_GAP_RING ? missing : 0;
    }
    t->last_seq = f->seq;
    t->have_last = 1;
    if (km_recorder_add_frame(rec, f))
        t->failed = 1;
    else
        t->frames++;
}

static void help(FILE *out)
{
    fprintf(out,
            "Usage: knotmat record --source URI -o FILE.kmr [OPTIONS]\n"
            "Record a session to a crash-safe .kmr file (docs/file-format.md).\n\n"
            "  -s, --source URI      where frames come from (default sim://)\n"
            "  -o, --output FILE     the recording (created 0600; never overwritten...)\n"
            "      --force           ...unless this is given\n"
            "  -d, --duration S      stop after S seconds (default: Ctrl-C or end of source)\n"
            "      --sync-ms MS      every frame is on disk within MS ms of its arrival\n"
            "                        (default 250: what a crash can lose)\n"
            "      --subject ID --session ID --operator NAME --notes TEXT   metadata\n"
            "  -q, --quiet           no status line\n"
            "  -h, --help            this text\n");
}

typedef struct {
    const char *uri, *out;
    double duration, sync_s;
    int force, quiet;
    km_record_meta meta;
} record_opts;

/* 0, -1 (--help printed) or the exit status of a usage error (said). */
static int parse_options(int argc, char **argv, record_opts *o)
{
    static const struct option opts[] = {
        {"source", required_argument, 0, 's'},   {"output", required_argument, 0, 'o'},
        {"force", no_argument, 0, 'F'},          {"duration", required_argument, 0, 'd'},
        {"sync", required_argument, 0, 'Y'},     {"sync-ms", required_argument, 0, 'M'},
        {"subject", required_argument, 0, 'S'},
        {"session", required_argument, 0, 'E'},  {"operator", required_argument, 0, 'O'},
        {"notes", required_argument, 0, 'N'},    {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->uri = "sim://";
    o->sync_s = KM_KMR_DEFAULT_SYNC_S;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:o:d:qh", opts, NULL)) != -1) {
        switch (c) {
        case 's': o->uri = optarg; break;
        case 'o': o->out = optarg; break;
        case 'F': o->force = 1; break;
        case 'q': o->quiet = 1; break;
        case 'd':
            if (!cli_parse_double("record", "duration", optarg, 0, 1e7, &o->duration))
                return EXIT_USAGE;
            break;
        case 'Y': /* --sync S, the older spelling */
            if (!cli_parse_double("record", "sync", optarg, 0.01, 60, &o->sync_s))
                return EXIT_USAGE;
            break;
        case 'M': {
            double ms;
            if (!cli_parse_double("record", "sync-ms", optarg, 10, 60000, &ms))
                return EXIT_USAGE;
            o->sync_s = ms / 1000;
            break;
        }
        case 'S': snprintf(o->meta.subject, sizeof o->meta.subject, "%s", optarg); break;
        case 'E': snprintf(o->meta.session, sizeof o->meta.session, "%s", optarg); break;
        case 'O': snprintf(o->meta.operator_name, sizeof o->meta.operator_name, "%s", optarg); break;
        case 'N': snprintf(o->meta.notes, sizeof o->meta.notes, "%s", optarg); break;
        case 'h': help(stdout); return -1;
        default: help(stderr); return EXIT_USAGE;
        }
    }
    if (!o->out || optind < argc)
        return cli_fail("record", EXIT_USAGE, "-o FILE.kmr is required (see --help)");
    return 0;
}

/* The end: what was recorded and, never silently, what was lost (said, and
 * in the exit status). */
static int say_loss(const record_tally *t, const km_source_stats *ss, const char *out)
{
    printf("recorded %llu frames to %s (%llu gaps)%s\n", (unsigned long long)t->frames, out,
           (unsigned long long)t->gaps, cli_interrupted ? " (interrupted)" : "");
    /* loss is never silent: said, and in the exit status */
    uint64_t lost_all = t->lost + ss->malformed;
    if (lost_all) {
        double share = 100.0 * (double)lost_all / (double)(t->frames + lost_all);
        fprintf(stderr, "knotmat record: warning: %llu frames lost (%.2f %%): %llu in %llu gaps "
                "(%llu fell behind in the ring, %llu missing from the source), %llu malformed; "
                "the gaps are marked in %s\n",
                (unsigned long long)lost_all, share, (unsigned long long)t->lost,
                (unsigned long long)t->gaps, (unsigned long long)t->lost_ring,
                (unsigned long long)(t->lost - t->lost_ring), (unsigned long long)ss->malformed, out);
        return EXIT_PARTIAL;
    }
    return EXIT_OK;
}

int cmd_record(int argc, char **argv)
{
    record_opts o;
    int prc = parse_options(argc, argv, &o);
    if (prc)
        return prc < 0 ? EXIT_OK : prc;
    const char *uri = o.uri, *out = o.out;
    double duration = o.duration, sync_s = o.sync_s;
    int force = o.force, quiet = o.quiet;
    km_record_meta meta = o.meta;
    char err[512];
    km_source *src;
    if (km_source_open(uri, &src, err, sizeof err))
        return cli_fail("record", EXIT_FAIL, "%s", err);
    km_source_set_notify(src, cli_note_to_stderr, cmd_name);
    km_source_info info;
    km_source_describe(src, &info);
    cli_meta_from_source(&meta, &info);
    km_recorder *rec;
    km_recorder_options ro;
    km_recorder_options_default(&ro);
    ro.force = force;
    ro.sync_interval_s = sync_s;
    const char *inputs[] = {cli_source_file(uri), NULL};
    ro.inputs = inputs;
    int rc = km_recorder_open(out, &meta, &ro, &rec, err, sizeof err);
    if (rc) {
        km_source_close(src);
        return cli_fail("record", rc == KM_EBUSY ? EXIT_USAGE : EXIT_FAIL, "%s", err);
    }
    cli_install_signals();
    /* a source that can wait (a file, a simulator at max speed) waits for
     * the recorder instead of losing frames; a live mat cannot */
    enum km_ring_mode mode = info.speed == 0 ? KM_RING_BACKPRESSURE : KM_RING_LOSSY;
    uint32_t cells = km_source_max_cells(src);
    km_ring *ring = km_ring_new(cli_ring_slots(cells, 1024), cells, mode);
    km_frame *f = km_frame_new(cells);
    km_ring_consumer *cons;
    if (!ring || !f || km_ring_consumer_add(ring, "recorder", &cons) ||
        (rc = km_source_start(src, ring))) {
        km_recorder_close(rec, NULL, 0);
        km_ring_free(ring);
        km_frame_free(f);
        km_source_close(src);
        return cli_fail("record", EXIT_FAIL, "cannot start the source: %s",
                        !ring || !f ? "out of memory for the ring of frames" : km_strerror(rc));
    }
    fprintf(stderr, "knotmat record: %s -> %s (on disk within %g ms)\n", uri, out, sync_s * 1e3);
    int64_t t0 = cli_mono_ns(), next = t0 + 1000000000;
    record_tally t = {0};
    int stopping = 0;
    for (;;) {
        if (!stopping && (cli_interrupted || cli_output_closed ||
                          (duration > 0 && cli_mono_ns() - t0 >= (int64_t)(duration * 1e9)))) {
            /* stop the source; what is in the ring is still written */
            km_source_stop(src);
            stopping = 1;
        }
        uint64_t lost = 0;
        int64_t now0 = cli_mono_ns(), wait = 100000000, due = km_recorder_deadline_ns(rec);
        if (due != INT64_MAX && due - now0 < wait)
            wait = due > now0 ? due - now0 : 0;
        rc = km_ring_pop_wait_spmc(cons, f, &lost, wait);
        if (rc == KM_ECLOSED)
            break;
        if (rc == KM_ETIMEOUT && km_recorder_poll(rec))
            t.failed = 1;
        else if (rc == KM_OK)
            record_frame(rec, f, lost, &t);
        if (t.failed)
            break;
        int64_t now = cli_mono_ns();
        if (!quiet && now >= next) {
            fprintf(stderr, "knotmat record: %llu frames, %llu on disk, %llu lost in %llu gaps\n",
                    (unsigned long long)t.frames,
                    (unsigned long long)km_recorder_frames_written(rec),
                    (unsigned long long)t.lost, (unsigned long long)t.gaps);
            next += 1000000000;
        }
    }
    km_source_stop(src);
    km_source_stats ss;
    km_source_stats_get(src, &ss);
    uint64_t written_before_close = km_recorder_frames_written(rec);
    rc = km_recorder_close(rec, err, sizeof err);
    km_ring_free(ring);
    km_frame_free(f);
    km_source_close(src);
    if (rc || t.failed) {
        fprintf(stderr, "knotmat record: %s\n", rc ? err : "recording stopped: write failed");
        fprintf(stderr, "knotmat record: %s is valid and holds %llu frames\n", out,
                (unsigned long long)written_before_close);
        return EXIT_FAIL;
    }
    return say_loss(&t, &ss, out);
}

static void print_span(void *user, int64_t from, int64_t to, const char *why)
{
    printf("%s: damaged: bytes %lld-%lld (%lld bytes): %s\n", (const char *)user, (long long)from, (long long)to,
           (long long)(to - from), why);
    (void)user;
}

static void print_report(const char *path, const km_kmr_report *r, int rc)
{
    printf("%s: %s\n", path,
           rc == KM_OK ? (r->ended ? "ok" : "ok, but not closed")
           : r->blocks ? "DAMAGED" : "NOT A RECORDING");
    printf("  %llu blocks (%llu of frames), %llu frames, %llu events, %llu gaps (%llu frames "
           "lost)\n",
           (unsigned long long)r->blocks, (unsigned long long)r->frame_blocks,
           (unsigned long long)r->frames, (unsigned long long)r->events,
           (unsigned long long)r->gaps, (unsigned long long)r->gap_frames);
    printf("  %llu bytes, %llu in whole valid blocks\n", (unsigned long long)r->bytes,
           (unsigned long long)r->valid_bytes);
    if (r->damaged_spans)
        printf("  %llu damaged spans, %llu bytes; first bad byte: %lld (%s); 'knotmat recover' "
               "keeps every whole block around them\n",
               (unsigned long long)r->damaged_spans, (unsigned long long)r->damaged_bytes,
               (long long)r->first_bad_offset, r->problem);
    else if (rc != KM_OK || !r->ended)
        printf("  %s\n", r->problem);
}

int cmd_check(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("Usage: knotmat check FILE.kmr...\nVerify every block of recordings (CRC32C, "
               "sizes, counts, order); report frames, events, gaps\nand every damaged span. "
               "Exit 0 when every file is whole (closed or not), 1 otherwise.\n");
        return EXIT_OK;
    }
    if (argc < 2)
        return cli_fail("check", EXIT_USAGE, "which file? (see --help)");
    int status = EXIT_OK;
    for (int i = 1; i < argc; i++) {
        km_kmr_report r;
        char err[512] = "";
        km_kmr_scan_options o = {.on_damage = print_span, .user = argv[i]};
        int rc = km_kmr_scan(argv[i], &o, &r, err, sizeof err);
        if (rc != KM_OK && rc != KM_EFORMAT) {
            cli_fail("check", EXIT_FAIL, "%s", err);
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
            printf("Usage: knotmat recover DAMAGED.kmr -o FIXED.kmr [--force]\nCopy every whole, "
                   "valid block of a damaged or interrupted recording into a\nnew, properly "
                   "closed file (created 0600, not over an existing one without --force,\n"
                   "never over the input), with a gap block where damaged bytes held frames.\n"
                   "Exit 0 when nothing was lost, 3 when damaged spans were left out.\n");
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
    km_kmr_scan_options o = {.recover_to = out, .force = force, .progress = cli_progress_update,
                             .user = &bar};
    int rc = km_kmr_scan(argv[optind], &o, &r, err, sizeof err);
    cli_progress_end(&bar);
    if (rc)
        return cli_fail("recover", rc == KM_EBUSY ? EXIT_USAGE : EXIT_FAIL, "%s", err);
    printf("recovered %llu frames in %llu blocks from %s into %s\n",
           (unsigned long long)r.frames, (unsigned long long)r.blocks, argv[optind], out);
    if (r.damaged_spans == 1 && r.torn_tail) {
        fprintf(stderr, "knotmat recover: the torn block at the end (%llu bytes from byte %lld: "
                "the recording was interrupted) was left out\n",
                (unsigned long long)r.damaged_bytes, (long long)r.first_bad_offset);
    } else if (r.damaged_spans) {
        fprintf(stderr, "knotmat recover: %llu damaged spans (%llu bytes, first at byte %lld: "
                "%s) left out; %llu frames known lost there, marked as a gap\n",
                (unsigned long long)r.damaged_spans, (unsigned long long)r.damaged_bytes,
                (long long)r.first_bad_offset, r.problem, (unsigned long long)r.frames_lost);
        return EXIT_PARTIAL;
    }
    return EXIT_OK;
}
