/* test_mats.c: every mat's recordings against what knotmat is expected to
 * read from them (libfprint's tests/<driver>/ layout): tests/mats/<mat>/
 * holds the recordings of one mat or format, their README and licence, and
 * `expected`, one section per recording:
 *
 *   [1.txt]
 *   format=pmatdata           rows=64   cols=32   pitch_mm=25.4
 *   rate_hz=1                 (stated by the file; 0: none)
 *   frames=82 malformed=0 corrupt=1 saturated_cells=0 dead_cells=0
 *   measured_rate_hz=...      (from the frames' own times)
 *   mean_force_n=... peak_kpa=...  (within 0.1 %)
 *   events=hotspot:2 on_target:1  (what the detectors decide, default settings)
 *
 * A section with `via=usb` is a device capture that only the USB emulator
 * can play (tests/usb_test.sh checks it); it is skipped here.
 *
 *   test_mats DIR                     check every DIR/<mat>/expected
 *   test_mats --write FILE...         print the sections for these recordings
 *
 * Each mismatch is printed as "mat/recording: key: expected X, read Y";
 * exit 0 only when every key of every section holds. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "knotmat/files.h"
#include "knotmat/pass.h"

/* What one pass over a recording read. */
typedef struct {
    char format[32];
    unsigned rows, cols;
    double pitch_mm, rate_hz, measured_rate_hz;
    unsigned long long frames, malformed, corrupt, saturated, dead;
    double mean_force_n, peak_kpa;
    unsigned events[KM_EV_TYPE_COUNT];
    char events_text[512];
} reading;

static int read_recording(const char *path, reading *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->format, sizeof r->format, "%s", km_file_format_name(km_file_sniff(path)));
    km_pass_options o = {.input = path, .fast_plan = true};
    km_pass *p;
    char err[512];
    if (km_pass_open(&o, &p, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    const km_pass_info *in = km_pass_describe(p);
    r->rows = in->source.rows;
    r->cols = in->source.cols;
    r->pitch_mm = in->source.pitch_mm;
    r->rate_hz = in->source.rate_hz;
    double force_sum = 0;
    const km_frame *f;
    const km_event *ev;
    size_t n;
    int rc;
    while ((rc = km_pass_next(p, &f, &ev, &n)) == KM_OK || rc == KM_EFORMAT) {
        for (size_t i = 0; i < n; i++)
            if (ev[i].type > 0 && ev[i].type < KM_EV_TYPE_COUNT)
                r->events[ev[i].type]++;
        if (rc != KM_OK || !f)
            continue;
        double tot = 0;
        for (uint32_t i = 0; i < (uint32_t)f->rows * f->cols; i++) {
            tot += f->kpa[i];
            r->peak_kpa = fmax(r->peak_kpa, f->kpa[i]);
        }
        force_sum += tot * (double)f->pitch_mm * f->pitch_mm * 1e-3;
        r->saturated += f->n_saturated;
        r->dead += f->n_dead;
    }
    km_source_stats st;
    km_pass_source_stats(p, &st);
    r->frames = st.frames;
    r->malformed = st.malformed;
    r->corrupt = st.corrupt;
    r->measured_rate_hz = st.measured_rate_hz;
    r->mean_force_n = st.frames ? force_sum / (double)st.frames : 0;
    km_pass_close(p);
    size_t len = 0;
    for (int t = 1; t < KM_EV_TYPE_COUNT; t++)
        if (r->events[t] && len < sizeof r->events_text)
            len += (size_t)snprintf(r->events_text + len, sizeof r->events_text - len, "%s%s:%u",
                                    len ? " " : "", km_event_type_name((enum km_event_type)t),
                                    r->events[t]);
    return 0;
}

static void write_section(const char *path, const reading *r)
{
    const char *base = strrchr(path, '/');
    printf("[%s]\n", base ? base + 1 : path);
    printf("format=%s\nrows=%u\ncols=%u\npitch_mm=%.6g\nrate_hz=%.6g\n", r->format, r->rows,
           r->cols, r->pitch_mm, r->rate_hz);
    printf("frames=%llu\nmalformed=%llu\ncorrupt=%llu\nsaturated_cells=%llu\ndead_cells=%llu\n",
           r->frames, r->malformed, r->corrupt, r->saturated, r->dead);
    printf("measured_rate_hz=%.6g\nmean_force_n=%.6g\npeak_kpa=%.6g\nevents=%s\n\n",
           r->measured_rate_hz, r->mean_force_n, r->peak_kpa, r->events_text);
}

static int failures;

/* A number within 0.1 % (or 1e-6 absolute near zero). */
static void check_num(const char *where, const char *key, const char *want, double got)
{
    double w = atof(want);
    if (fabs(got - w) <= fmax(1e-3 * fabs(w), 1e-6))
        return;
    printf("%s: %s: expected %s, read %.6g\n", where, key, want, got);
    failures++;
}

static void check_key(const char *where, const reading *r, const char *key, const char *want)
{
    const struct { const char *key; double v; } nums[] = {
        {"rows", r->rows},
        {"cols", r->cols},
        {"pitch_mm", r->pitch_mm},
        {"rate_hz", r->rate_hz},
        {"frames", (double)r->frames},
        {"malformed", (double)r->malformed},
        {"corrupt", (double)r->corrupt},
        {"saturated_cells", (double)r->saturated},
        {"dead_cells", (double)r->dead},
        {"measured_rate_hz", r->measured_rate_hz},
        {"mean_force_n", r->mean_force_n},
        {"peak_kpa", r->peak_kpa},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (!strcmp(key, nums[i].key)) {
            check_num(where, key, want, nums[i].v);
            return;
        }
    const char *got = !strcmp(key, "format") ? r->format
                      : !strcmp(key, "events") ? r->events_text
                                               : NULL;
    if (!got) {
        printf("%s: unknown key %s\n", where, key);
        failures++;
    } else if (strcmp(got, want)) {
        printf("%s: %s: expected \"%s\", read \"%s\"\n", where, key, want, got);
        failures++;
    }
}

/* One mat's expected file: each section's recording read and compared. */
static int check_mat(const char *dir, const char *mat)
{
    char path[2048], where[1024];
    snprintf(path, sizeof path, "%s/%s/expected", dir, mat);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0; /* a folder without expectations (e.g. emulated mats) */
    char line[1024], keys[64][64], vals[64][512];
    int nk = 0, sections = 0, usb = 0;
    char rec[512] = "";
    for (int more = 1; more;) {
        more = fgets(line, sizeof line, fp) != NULL;
        line[strcspn(line, "\r\n")] = 0;
        if (!more || line[0] == '[') {
            if (rec[0] && !usb) {
                reading r;
                snprintf(path, sizeof path, "%s/%s/%s", dir, mat, rec);
                snprintf(where, sizeof where, "%s/%s", mat, rec);
                if (read_recording(path, &r)) {
                    failures++;
                } else {
                    for (int k = 0; k < nk; k++)
                        check_key(where, &r, keys[k], vals[k]);
                    printf("%s: %d keys checked\n", where, nk);
                }
                sections++;
            }
            if (more) {
                int len = (int)strcspn(line + 1, "]");
                snprintf(rec, sizeof rec, "%.*s", len > 500 ? 500 : len, line + 1);
                nk = usb = 0;
            }
            continue;
        }
        char *eq = strchr(line, '=');
        if (line[0] == '#' || !eq)
            continue;
        *eq = 0;
        if (!strcmp(line, "via"))
            usb = !strcmp(eq + 1, "usb");
        else if (nk < 64) {
            snprintf(keys[nk], sizeof keys[nk], "%.63s", line);
            snprintf(vals[nk], sizeof vals[nk], "%.511s", eq + 1);
            nk++;
        }
    }
    fclose(fp);
    return sections;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--write")) {
        for (int i = 2; i < argc; i++) {
            reading r;
            if (read_recording(argv[i], &r))
                return 1;
            write_section(argv[i], &r);
        }
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: test_mats DIR | test_mats --write FILE...\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 2;
    }
    int recordings = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            recordings += check_mat(argv[1], e->d_name);
    closedir(d);
    printf("%d recordings checked, %d mismatches\n", recordings, failures);
    if (recordings == 0) {
        printf("no expected results found under %s\n", argv[1]);
        return 1;
    }
    return failures ? 1 : 0;
}
