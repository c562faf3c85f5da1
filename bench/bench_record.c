/* bench_record.c: recording under load, file size, replay speed.
 *  1. a live simulated mat at 185x105 @ 125 Hz and at 64x64 @ 1 kHz for
 *     SECONDS each: the DSP stage and the recorder stage consume the same
 *     ring; reports frames, losses per consumer (the goal: zero), bytes per
 *     frame and compression against the raw 7 bytes per cell;
 *  2. bytes per frame on the real PmatData recordings (all files of DIR);
 *  3. replay speed of .kmr files in frames/s.
 * Usage: bench_record [SECONDS] [PMATDATA_DIR]. Prints; asserts nothing. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "knotmat/dsp.h"
#include "knotmat/record.h"
#include "knotmat/ring.h"
#include "knotmat/source.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static double replay_fps(const char *path, long *frames)
{
    km_kmr_reader *r;
    char err[256];
    if (km_kmr_open(path, &r, err, sizeof err))
        return 0;
    const km_record_meta *m = km_kmr_meta(r);
    km_frame *f = km_frame_new((uint32_t)m->rows * m->cols);
    double t0 = now_s();
    long n = 0;
    while (km_kmr_next_frame(r, f, err, sizeof err) == KM_OK)
        n++;
    double el = now_s() - t0;
    km_frame_free(f);
    km_kmr_close(r);
    *frames = n;
    return n / el;
}

static void live(const char *uri, const char *label, double seconds, const char *out,
                 double sync_s)
{
    char err[512];
    km_source *src;
    if (km_source_open(uri, &src, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    km_source_info info;
    km_source_describe(src, &info);
    km_ring *ring = km_ring_new(1024, km_source_max_cells(src), KM_RING_LOSSY);
    km_dsp_config cfg;
    km_dsp_config_default(&cfg);
    km_dsp *d;
    km_dsp_new(&cfg, info.rows, info.cols, info.pitch_mm, info.rate_hz, &d, err, sizeof err);
    km_event_queue *q = km_event_queue_new(4096);
    km_dsp_stage *ds;
    km_dsp_stage_start(d, ring, q, &ds);
    km_record_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.rows = info.rows;
    meta.cols = info.cols;
    meta.pitch_mm = info.pitch_mm;
    meta.rate_hz = info.rate_hz;
    km_recorder *rec;
    unlink(out);
    if (km_recorder_open(out, &meta, &(km_recorder_options){.force = true, .sync_interval_s = sync_s}, &rec, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    km_record_stage *rs;
    km_record_stage_start(rec, ring, &rs);
    km_source_start(src, ring);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    km_source_stop(src);
    while (!km_record_stage_done(rs) || !km_dsp_stage_done(ds)) {
        struct timespec w = {0, 10000000};
        nanosleep(&w, NULL);
        km_event e;
        while (km_event_queue_pop_spsc(q, &e))
            ;
    }
    uint64_t dsp_lost = km_dsp_stage_lost(ds), pushed = km_ring_pushed(ring);
    int rerr = km_record_stage_error(rs);
    km_dsp_stage_stop(ds);
    km_record_stage_stop(rs);
    uint64_t written = km_recorder_frames_written(rec);
    km_recorder_stats rst;
    km_recorder_stats_get(rec, &rst);
    km_recorder_close(rec, err, sizeof err);
    km_kmr_report rep;
    km_kmr_check(out, &rep);
    long bytes = file_size(out);
    double raw = 36.0 + 7.0 * info.rows * info.cols;
    long rframes;
    double rfps = replay_fps(out, &rframes);
    printf("%-16s sync %4.0f ms %5.0f s  pushed %7llu  dsp lost %4llu  recorder: %7llu "
           "frames, %llu gaps%s  %8.0f B/frame (raw %6.0f, %.2fx)  %5.1f flushes/s, "
           "flush mean %.2f ms max %.2f ms, %.2f %% of a core  replay %7.0f frames/s\n",
           label, sync_s * 1e3, seconds, (unsigned long long)pushed,
           (unsigned long long)dsp_lost, (unsigned long long)rep.frames,
           (unsigned long long)rep.gaps, rerr ? " WRITE ERROR" : "",
           written ? (double)bytes / rep.frames : 0, raw,
           raw / ((double)bytes / (rep.frames ? rep.frames : 1)), rst.flushes / seconds,
           rst.flushes ? 1e3 * rst.flush_total_s / rst.flushes : 0, 1e3 * rst.flush_max_s,
           100 * rst.flush_total_s / seconds, rfps);
    km_dsp_free(d);
    km_event_queue_free(q);
    km_ring_free(ring);
    km_source_close(src);
    unlink(out);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 10;
    const char *dir = argc > 2 ? argv[2] : "../shared/data/pmatdata-S1";
    char out[] = "/tmp/km_bench_rec_XXXXXX";
    if (!mkdtemp(out))
        return 1;
    char path[600];
    snprintf(path, sizeof path, "%s/live.kmr", out);
    printf("recording benchmark: live simulated mat, DSP and recorder on the same ring (lossy, "
           "1024 slots); the cost of the sync interval (--sync-ms): flushes (zstd + write + "
           "fdatasync) and their share of a core, file size, on %s\n", out);
    const double syncs[] = {1.0, 0.25, 0.1};
    for (int i = 0; i < 3; i++) {
        live("sim://release?seed=2&rows=105&cols=185&pitch=1.25&rate=125", "185x105 @ 125 Hz",
             seconds, path, syncs[i]);
        live("sim://release?seed=2&rows=64&cols=64&pitch=6.35&rate=1000", "64x64 @ 1 kHz",
             seconds, path, syncs[i]);
        live("sim://release?seed=2", "32x32 @ 100 Hz", seconds, path, syncs[i]);
    }
    /* real recordings */
    DIR *d = opendir(dir);
    if (!d && (d = opendir("tests/mats/pmatdata")))
        dir = "tests/mats/pmatdata";
    if (d) {
        long frames = 0, bytes = 0, text = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t l = strlen(e->d_name);
            if (l < 5 || strcmp(e->d_name + l - 4, ".txt"))
                continue;
            char in[1200], cmd[2600];
            snprintf(in, sizeof in, "%s/%s", dir, e->d_name);
            snprintf(cmd, sizeof cmd, "file://%s?speed=max", in);
            km_source *src;
            char err[256];
            if (km_source_open(cmd, &src, err, sizeof err))
                continue;
            km_source_info info;
            km_source_describe(src, &info);
            km_record_meta meta;
            memset(&meta, 0, sizeof meta);
            meta.rows = info.rows;
            meta.cols = info.cols;
            meta.pitch_mm = info.pitch_mm;
            meta.rate_hz = info.rate_hz;
            km_recorder *rec;
            unlink(path);
            km_recorder_open(path, &meta, &(km_recorder_options){.force = true, .sync_interval_s = 1.0}, &rec, err, sizeof err);
            km_frame *f = km_frame_new(km_source_max_cells(src));
            while (km_source_read(src, f) == KM_OK) {
                km_recorder_add_frame(rec, f);
                frames++;
            }
            km_recorder_close(rec, err, sizeof err);
            bytes += file_size(path);
            text += file_size(in);
            km_frame_free(f);
            km_source_close(src);
        }
        closedir(d);
        printf("PmatData (%s): %ld frames, %.0f B/frame in .kmr (raw %d, %.2fx; the text files "
               "hold %.0f B/frame)\n",
               dir, frames, (double)bytes / frames, 36 + 7 * 2048,
               (36.0 + 7 * 2048) / ((double)bytes / frames), (double)text / frames);
    }
    unlink(path);
    rmdir(out);
    return 0;
}
