/* test_record.c: .kmr recordings round-trip bit-exact; truncated and
 * bit-flipped files are reported at the right block and never crash a reader;
 * recover keeps every whole block; a file-size limit (a full disk) gives a
 * clear error and a valid file; recordings are 0600 and never overwritten. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "knotmat/dsp.h"
#include "knotmat/record.h"
#include "knotmat/sim.h"

static char dir[] = "/tmp/km_rec_XXXXXX";
static char path[600];
#define FRAMES 500 /* 5 s at 100 Hz: 10 blocks of 0.5 s */

static km_sim *sim(void)
{
    km_sim_params p;
    km_sim_params_default(&p);
    p.duration_s = FRAMES / 100.0;
    p.rows = 16;
    p.cols = 24;
    km_sim *s;
    char err[256];
    assert_int_equal(km_sim_new(&p, &s, err, sizeof err), KM_OK);
    return s;
}

static km_record_meta meta(void)
{
    km_record_meta m;
    memset(&m, 0, sizeof m);
    m.rows = 16;
    m.cols = 24;
    m.pitch_mm = 12.7f;
    m.rate_hz = 100;
    snprintf(m.subject, sizeof m.subject, "S-007");
    snprintf(m.notes, sizeof m.notes, "two\nlines");
    return m;
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/a.kmr", dir);
    km_record_meta m = meta();
    km_recorder *r;
    char err[256];
    if (km_recorder_open(path, &m, &(km_recorder_options){.sync_interval_s = 0.5}, &r, err, sizeof err))
        return -1;
    km_sim *s = sim();
    km_frame *f = km_frame_new(16 * 24);
    while (km_sim_next(s, f) == KM_OK)
        km_recorder_add_frame(r, f);
    km_event e = {.type = KM_EV_SPASM, .t_s = 1.5, .detected_t_s = 1.53};
    km_recorder_add_event(r, &e);
    km_recorder_add_gap(r, 500, 3, KM_GAP_DEVICE);
    int rc = km_recorder_close(r, err, sizeof err);
    km_frame_free(f);
    km_sim_free(s);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* Frames of `file` equal the simulator's, bit for bit; returns how many. */
static int compare_with_sim(const char *file)
{
    km_kmr_reader *r;
    char err[256];
    if (km_kmr_open(file, &r, err, sizeof err))
        return -1;
    km_sim *s = sim();
    km_frame *a = km_frame_new(16 * 24), *b = km_frame_new(16 * 24);
    int n = 0, rc;
    while ((rc = km_kmr_next_frame(r, a, err, sizeof err)) == KM_OK || rc == KM_EFORMAT) {
        if (rc == KM_EFORMAT)
            continue; /* a damaged span: the reader goes on after it */
        do /* frames lost in damaged bytes are skipped in the simulator too */
            assert_int_equal(km_sim_next(s, b), KM_OK);
        while (b->seq < a->seq);
        assert_int_equal(a->seq, b->seq);
        assert_int_equal(a->device_ns, b->device_ns);
        assert_int_equal(a->flags, b->flags);
        assert_memory_equal(a->kpa, b->kpa, 16 * 24 * sizeof(float));
        assert_memory_equal(a->raw, b->raw, 16 * 24 * sizeof(uint16_t));
        assert_memory_equal(a->cell_flags, b->cell_flags, 16 * 24);
        n++;
    }
    km_frame_free(a);
    km_frame_free(b);
    km_sim_free(s);
    km_kmr_close(r);
    return n;
}

static void test_round_trip_and_metadata(void **state)
{
    (void)state;
    assert_int_equal(compare_with_sim(path), FRAMES);
    km_kmr_reader *r;
    char err[256];
    assert_int_equal(km_kmr_open(path, &r, err, sizeof err), KM_OK);
    const km_record_meta *m = km_kmr_meta(r);
    assert_string_equal(m->subject, "S-007");
    assert_string_equal(m->notes, "two lines");
    assert_int_equal(m->rows, 16);
    assert_true(m->start_utc[0] == '2');
    km_kmr_close(r);
    km_kmr_report rep;
    assert_int_equal(km_kmr_check(path, &rep), KM_OK);
    assert_true(rep.ended);
    assert_int_equal(rep.frames, FRAMES);
    assert_int_equal(rep.frame_blocks, 10);
    assert_int_equal(rep.events, 1);
    assert_int_equal(rep.gaps, 1);
    assert_int_equal(rep.gap_frames, 3);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* never overwritten without force */
    km_record_meta mm = meta();
    km_recorder *w;
    assert_int_equal(km_recorder_open(path, &mm, NULL, &w, err, sizeof err), KM_EBUSY);
    assert_non_null(strstr(err, "never overwritten without --force"));
}

/* Copy the first `bytes` of `from` (all: < 0) to `to`, one bit flipped at
 * offset `flip_at` (none: < 0). */
static void copy_file(const char *from, const char *to, long bytes, long flip_at)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    long i = 0;
    int c;
    while ((c = fgetc(in)) != EOF && (bytes < 0 || i < bytes)) {
        if (i == flip_at)
            c ^= 0x10;
        fputc(c, out);
        i++;
    }
    fclose(in);
    fclose(out);
}

static void test_truncated_and_flipped(void **state)
{
    (void)state;
    km_kmr_report whole;
    km_kmr_check(path, &whole);
    /* block boundaries, from a scan of prefixes */
    char cut[700], fixed[700], err[256];
    snprintf(cut, sizeof cut, "%s/cut.kmr", dir);
    snprintf(fixed, sizeof fixed, "%s/fixed.kmr", dir);
    srand(11);
    for (int k = 0; k < 40; k++) {
        long at = 1 + rand() % (long)(whole.bytes - 1);
        copy_file(path, cut, at, -1);
        km_kmr_report rep;
        int rc = km_kmr_check(cut, &rep);
        /* a cut inside a block is reported at that block's first byte; a cut
         * on a boundary leaves whole blocks (not closed) */
        if (rc == KM_OK) {
            assert_false(rep.ended);
            assert_int_equal((long)rep.valid_bytes, at);
        } else {
            assert_int_equal(rc, KM_EFORMAT);
            assert_true(rep.first_bad_offset <= at);
            assert_int_equal(rep.first_bad_offset, (int64_t)rep.valid_bytes);
        }
        unlink(fixed);
        if (rep.blocks == 0) { /* not even the header: nothing to recover */
            assert_int_not_equal(km_kmr_recover(cut, fixed, false, &rep, err, sizeof err), KM_OK);
            continue;
        }
        assert_int_equal(km_kmr_recover(cut, fixed, false, &rep, err, sizeof err), KM_OK);
        km_kmr_report fr;
        assert_int_equal(km_kmr_check(fixed, &fr), KM_OK);
        assert_true(fr.ended);
        assert_int_equal(compare_with_sim(fixed), (int)fr.frames);
    }
    /* one flipped bit damages one block: check names it, every other byte
     * is in a whole block, readers and recover keep everything around it */
    for (int k = 0; k < 60; k++) {
        long at = rand() % (long)whole.bytes;
        copy_file(path, cut, -1, at);
        km_kmr_report rep;
        assert_int_equal(km_kmr_check(cut, &rep), KM_EFORMAT);
        assert_true(rep.first_bad_offset <= at && rep.first_bad_offset >= 0);
        assert_int_equal(rep.damaged_spans, 1);
        assert_int_equal(rep.valid_bytes + rep.damaged_bytes, rep.bytes);
        if (rep.first_bad_offset == 0) { /* the header: nothing is readable */
            assert_int_not_equal(km_kmr_recover(cut, fixed, true, &rep, err, sizeof err), KM_OK);
            continue;
        }
        /* at most one block of frames (0.5 s, 50) is lost */
        assert_true(rep.frames >= FRAMES - 50);
        km_kmr_reader *r;
        assert_int_equal(km_kmr_open(cut, &r, err, sizeof err), KM_OK);
        km_frame *f = km_frame_new(16 * 24);
        int rc, good = 0, bad = 0;
        while ((rc = km_kmr_next_frame(r, f, err, sizeof err)) == KM_OK || rc == KM_EFORMAT) {
            good += rc == KM_OK;
            bad += rc == KM_EFORMAT;
            if (rc == KM_EFORMAT)
                assert_non_null(strstr(err, "damaged"));
        }
        assert_int_equal(rc, KM_EEOF);
        assert_int_equal(bad, 1);
        assert_int_equal(good, (int)rep.frames);
        km_frame_free(f);
        km_kmr_close(r);
        /* recover: every whole block, a gap where frames were lost, closed */
        km_kmr_report rr, fr;
        assert_int_equal(km_kmr_recover(cut, fixed, true, &rr, err, sizeof err), KM_OK);
        assert_int_equal(km_kmr_check(fixed, &fr), KM_OK);
        assert_true(fr.ended);
        assert_int_equal(fr.frames, rep.frames);
        assert_int_equal(compare_with_sim(fixed), (int)fr.frames);
        /* frames lost after the first recovered one are known by their seq
         * and marked as a gap (the simulator's first seq is 0) */
        km_kmr_reader *fx;
        assert_int_equal(km_kmr_open(fixed, &fx, err, sizeof err), KM_OK);
        km_frame *first = km_frame_new(16 * 24);
        assert_int_equal(km_kmr_next_frame(fx, first, err, sizeof err), KM_OK);
        uint64_t lost = FRAMES - fr.frames;
        assert_int_equal(rr.frames_lost + first->seq, lost);
        assert_int_equal(fr.gap_frames, 3 + rr.frames_lost); /* recorded gap + damaged one */
        km_frame_free(first);
        km_kmr_close(fx);
    }
}

/* D1: a stream whose device clock never advances (or a long sync interval
 * with a large mat) still gives blocks its reader accepts: the writer
 * closes a block before it passes the reader's limit. */
static void test_blocks_stay_under_the_readers_limit(void **state)
{
    (void)state;
    char big[700], err[256];
    snprintf(big, sizeof big, "%s/big.kmr", dir);
    km_record_meta m = meta();
    m.rows = 105;
    m.cols = 185;
    m.pitch_mm = 1.25f;
    km_recorder *r;
    assert_int_equal(km_recorder_open(big, &m, &(km_recorder_options){.sync_interval_s = 60}, &r,
                                      err, sizeof err), KM_OK);
    km_frame *f = km_frame_new(105 * 185);
    assert_int_equal(km_frame_reset(f, 105, 185, 1.25f), KM_OK);
    const uint32_t n = 1100; /* 150 MB of frame payload, all at t = 0 */
    srand(5);
    for (uint32_t i = 0; i < n; i++) {
        f->seq = i;
        f->device_ns = 0;
        for (uint32_t c = 0; c < 105 * 185; c += 7)
            f->kpa[c] = (float)(rand() % 1000);
        assert_int_equal(km_recorder_add_frame(r, f), KM_OK);
    }
    assert_int_equal(km_recorder_close(r, err, sizeof err), KM_OK);
    km_kmr_report rep;
    assert_int_equal(km_kmr_check(big, &rep), KM_OK);
    assert_int_equal(rep.frames, n);
    assert_true(rep.frame_blocks >= 3);
    km_kmr_reader *rd;
    assert_int_equal(km_kmr_open(big, &rd, err, sizeof err), KM_OK);
    uint32_t got = 0;
    while (km_kmr_next_frame(rd, f, err, sizeof err) == KM_OK)
        got++;
    assert_int_equal(got, n);
    km_kmr_close(rd);
    km_frame_free(f);
    unlink(big);
}

/* D34: the firmware's contacts (Sensel Morph) are kept with their frames */
static void test_contacts_round_trip(void **state)
{
    (void)state;
    char cp[700], err[256];
    snprintf(cp, sizeof cp, "%s/contacts.kmr", dir);
    km_record_meta m = meta();
    km_recorder *r;
    assert_int_equal(km_recorder_open(cp, &m, NULL, &r, err, sizeof err), KM_OK);
    km_sim *s = sim();
    km_frame *f = km_frame_new(16 * 24), *g = km_frame_new(16 * 24);
    for (int i = 0; km_sim_next(s, f) == KM_OK; i++) {
        f->n_contacts = (uint32_t)(i % 3);
        for (uint32_t k = 0; k < f->n_contacts; k++)
            f->contacts[k] = (km_contact){.id = (uint8_t)(k + 1), .state = 2, .x_mm = i + 0.5f,
                                          .y_mm = (float)k, .force_n = 10.0f * k,
                                          .area_mm2 = 3.25f};
        assert_int_equal(km_recorder_add_frame(r, f), KM_OK);
    }
    assert_int_equal(km_recorder_close(r, err, sizeof err), KM_OK);
    km_kmr_reader *rd;
    assert_int_equal(km_kmr_open(cp, &rd, err, sizeof err), KM_OK);
    int i = 0;
    while (km_kmr_next_frame(rd, g, err, sizeof err) == KM_OK) {
        assert_int_equal(g->n_contacts, (uint32_t)(i % 3));
        for (uint32_t k = 0; k < g->n_contacts; k++) {
            assert_int_equal(g->contacts[k].id, k + 1);
            assert_true(g->contacts[k].x_mm == i + 0.5f && g->contacts[k].area_mm2 == 3.25f);
            assert_true(g->contacts[k].force_n == 10.0f * k);
        }
        i++;
    }
    assert_int_equal(i, FRAMES);
    km_kmr_close(rd);
    km_kmr_report rep;
    assert_int_equal(km_kmr_check(cp, &rep), KM_OK);
    km_frame_free(f);
    km_frame_free(g);
    km_sim_free(s);
    unlink(cp);
}

static void test_recover_never_over_its_input(void **state)
{
    (void)state;
    char copy[700], err[256];
    snprintf(copy, sizeof copy, "%s/self.kmr", dir);
    copy_file(path, copy, -1, -1);
    km_kmr_report rep;
    assert_int_equal(km_kmr_recover(copy, copy, true, &rep, err, sizeof err), KM_EINVAL);
    assert_non_null(strstr(err, "is the input"));
    assert_int_equal(compare_with_sim(copy), FRAMES); /* untouched */
}

static void test_file_size_limit_gives_error_and_valid_file(void **state)
{
    (void)state;
    char small[700];
    snprintf(small, sizeof small, "%s/small.kmr", dir);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {60000, 60000};
        setrlimit(RLIMIT_FSIZE, &rl);
        km_record_meta m = meta();
        km_recorder *r;
        char err[256];
        if (km_recorder_open(small, &m, &(km_recorder_options){.sync_interval_s = 0.5}, &r, err, sizeof err))
            _exit(2);
        km_sim *s = sim();
        km_frame *f = km_frame_new(16 * 24);
        int rc = KM_OK;
        while (rc == KM_OK && km_sim_next(s, f) == KM_OK)
            rc = km_recorder_add_frame(r, f);
        int crc = km_recorder_close(r, err, sizeof err);
        /* the error names the file and the cause */
        _exit(rc == KM_EIO && crc == KM_EIO && strstr(err, "small.kmr") &&
                      strstr(err, "File too large") ? 0 : 3);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    km_kmr_report rep;
    assert_int_equal(km_kmr_check(small, &rep), KM_OK); /* valid, just not closed */
    assert_true(rep.frames >= 50 && rep.frames < FRAMES);
    assert_true(rep.bytes <= 60000);
    assert_int_equal(compare_with_sim(small), (int)rep.frames);
}

/* Offset of the k-th block of `type` in `file` (by its magic), -1 if none. */
static long block_offset(const char *file, int type, int k)
{
    FILE *fp = fopen(file, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    unsigned char *b = malloc((size_t)n);
    fseek(fp, 0, SEEK_SET);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    long found = -1;
    for (long i = 0; i + 5 <= n && found < 0; i++)
        if (!memcmp(b + i, "KMRB", 4) && b[i + 4] == type && k-- == 0)
            found = i;
    free(b);
    return found;
}

enum { NEV = 40 };

/* A recording with non-default settings and NEV events in several blocks;
 * `cfg` gets the settings, `want` the events. */
static void record_with_events(const char *file, km_dsp_config *cfg, km_event *want)
{
    char err[256];
    km_record_meta m = meta();
    km_dsp_config_default(cfg);
    cfg->max_hold_s = 30;
    cfg->release_drop = 0.0731;
    cfg->ball_mm = 100.0 / 3.0; /* not a short decimal */
    km_dsp_config_format(cfg, m.settings, sizeof m.settings);
    snprintf(m.cue_scheme, sizeof m.cue_scheme, "/home/someone/cues.txt");
    km_recorder *r;
    assert_int_equal(km_recorder_open(file, &m, &(km_recorder_options){.sync_interval_s = 0.5},
                                      &r, err, sizeof err), KM_OK);
    km_sim *s = sim();
    km_frame *f = km_frame_new(16 * 24);
    int k = 0;
    while (km_sim_next(s, f) == KM_OK) {
        assert_int_equal(km_recorder_add_frame(r, f), KM_OK);
        if (f->seq % 12 == 5 && k < NEV) {
            want[k] = (km_event){.type = (enum km_event_type)(KM_EV_HOTSPOT + k % 11),
                                 .t_s = f->device_ns * 1e-9 - 0.2, .x_mm = k, .y_mm = -k,
                                 .force_n = 10 + k, .confidence = 0.5, .value = k * 0.25,
                                 .detected_t_s = f->device_ns * 1e-9, .track = (uint32_t)k};
            assert_int_equal(km_recorder_add_event(r, &want[k]), KM_OK);
            k++;
        }
        if (f->seq % 50 == 0)
            assert_int_equal(km_recorder_flush(r), KM_OK); /* events in several blocks */
    }
    assert_int_equal(km_recorder_close(r, err, sizeof err), KM_OK);
    km_frame_free(f);
    km_sim_free(s);
    assert_int_equal(k, NEV);
}

/* The live session's events and settings come back from the file as they
 * were written: every event, in order; the settings parse to the same
 * detector configuration. */
static void test_events_and_settings_read_back(void **state)
{
    (void)state;
    char file[700], err[256];
    snprintf(file, sizeof file, "%s/ev.kmr", dir);
    km_dsp_config cfg;
    km_event want[NEV];
    record_with_events(file, &cfg, want);

    km_kmr_reader *kr;
    assert_int_equal(km_kmr_open(file, &kr, err, sizeof err), KM_OK);
    km_dsp_config back;
    km_dsp_config_default(&back);
    assert_int_equal(km_dsp_config_parse(&back, km_kmr_meta(kr)->settings, err, sizeof err),
                     KM_OK);
    assert_memory_equal(&back, &cfg, sizeof cfg);
    assert_string_equal(km_kmr_meta(kr)->cue_scheme, "/home/someone/cues.txt");
    assert_true(!strncmp(km_kmr_meta(kr)->software, "knotmat ", 8));
    km_record_meta dm = *km_kmr_meta(kr);
    km_record_meta_deidentify(&dm);
    assert_string_equal(dm.cue_scheme, "cues.txt");
    km_kmr_close(kr);

    km_event *ev;
    size_t n;
    km_kmr_damage dmg;
    assert_int_equal(km_kmr_read_events(file, &ev, &n, &dmg, err, sizeof err), KM_OK);
    assert_int_equal(n, NEV);
    assert_int_equal(dmg.spans, 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ev[i].type, want[i].type);
        assert_true(ev[i].t_s == want[i].t_s && ev[i].detected_t_s == want[i].detected_t_s);
        assert_true(ev[i].force_n == want[i].force_n && ev[i].value == want[i].value);
        assert_int_equal(ev[i].track, want[i].track);
    }
    free(ev);
}

/* Damage in a frame block loses no event, damage in an event block loses
 * that block's only, and says so. */
static void test_events_under_damage(void **state)
{
    (void)state;
    char file[700], err[256];
    snprintf(file, sizeof file, "%s/ev-d.kmr", dir);
    km_dsp_config cfg;
    km_event want[NEV];
    record_with_events(file, &cfg, want);
    km_event *ev;
    size_t n;
    km_kmr_damage dmg;
    /* a flipped bit in a frame block: every event still there */
    char bad[760];
    snprintf(bad, sizeof bad, "%s/ev-frames.kmr", dir);
    long at = block_offset(file, 2, 3);
    assert_true(at > 0);
    copy_file(file, bad, -1, at + 40);
    assert_int_equal(km_kmr_read_events(bad, &ev, &n, &dmg, err, sizeof err), KM_OK);
    assert_int_equal(n, NEV);
    free(ev);
    /* a frame block's size field made to point past the event block after it:
     * the block fails its CRC and the reader finds the next whole one; the
     * events behind the bad size are not stepped over */
    snprintf(bad, sizeof bad, "%s/ev-size.kmr", dir);
    at = block_offset(file, 2, 3);
    long evb = -1;
    for (int b = 0; evb <= at; b++)
        assert_true((evb = block_offset(file, 3, b)) >= 0);
    copy_file(file, bad, -1, -1);
    FILE *fp = fopen(bad, "r+b");
    assert_non_null(fp);
    uint32_t stored = (uint32_t)(evb + 30 - at - 24 - 4); /* lands inside that event block */
    unsigned char le[4] = {stored & 0xff, (stored >> 8) & 0xff, (stored >> 16) & 0xff,
                           stored >> 24};
    assert_int_equal(fseek(fp, at + 8, SEEK_SET), 0);
    assert_int_equal(fwrite(le, 1, 4, fp), 4);
    fclose(fp);
    assert_int_equal(km_kmr_read_events(bad, &ev, &n, &dmg, err, sizeof err), KM_OK);
    assert_int_equal(n, NEV);
    assert_true(dmg.spans >= 1);
    free(ev);
    /* in an event block: its events are lost, said, the others kept */
    snprintf(bad, sizeof bad, "%s/ev-events.kmr", dir);
    at = block_offset(file, 3, 1);
    assert_true(at > 0);
    copy_file(file, bad, -1, at + 30);
    assert_int_equal(km_kmr_read_events(bad, &ev, &n, &dmg, err, sizeof err), KM_OK);
    assert_int_equal(dmg.spans, 1);
    assert_true(n > 0 && n < NEV);
    for (size_t i = 0, j = 0; i < n; i++, j++) { /* the rest in order, a run left out */
        while (j < NEV && want[j].track != ev[i].track)
            j++;
        assert_true(j < NEV);
    }
    free(ev);
}

static void test_not_a_recording(void **state)
{
    (void)state;
    char junk[700], err[256];
    snprintf(junk, sizeof junk, "%s/junk.kmr", dir);
    FILE *fp = fopen(junk, "wb");
    fputs("KMRBthis is not a block at all", fp);
    fclose(fp);
    km_kmr_reader *r;
    assert_int_equal(km_kmr_open(junk, &r, err, sizeof err), KM_EFORMAT);
    assert_non_null(strstr(err, "offset 0"));
    km_kmr_report rep;
    assert_int_equal(km_kmr_check(junk, &rep), KM_EFORMAT);
    assert_int_equal(rep.first_bad_offset, 0);
    assert_int_equal(km_kmr_check("/nonexistent.kmr", &rep), KM_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_metadata),
        cmocka_unit_test(test_recover_never_over_its_input),
        cmocka_unit_test(test_contacts_round_trip),
        cmocka_unit_test(test_blocks_stay_under_the_readers_limit),
        cmocka_unit_test(test_truncated_and_flipped),
        cmocka_unit_test(test_file_size_limit_gives_error_and_valid_file),
        cmocka_unit_test(test_not_a_recording),
        cmocka_unit_test(test_events_and_settings_read_back),
        cmocka_unit_test(test_events_under_damage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
