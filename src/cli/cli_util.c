/* cli_util.c: signal handling, error printing and option parsing shared by
 * the subcommands. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "knotmat/dsp.h"
#include "knotmat/record.h"

volatile sig_atomic_t cli_interrupted = 0;
volatile sig_atomic_t cli_output_closed = 0;
volatile sig_atomic_t cli_stdout_stuck = 0;

static void on_signal(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

void cli_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* the terminal closed: end cleanly, close the file */
    cli_ignore_fatal_signals();
}

void cli_ignore_fatal_signals(void)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
}

bool cli_stdout_ok(void)
{
    if (!ferror(stdout))
        return true;
    if (errno == EPIPE)
        cli_output_closed = 1;
    return false;
}

uint32_t cli_ring_slots(uint32_t cells, uint32_t wanted)
{
    /* 256 MiB of slots at most, at least 8 */
    size_t per = km_frame_block_bytes(cells) + sizeof(km_frame);
    size_t fit = ((size_t)256 << 20) / per;
    uint32_t n = wanted;
    if (n > fit)
        n = fit < 8 ? 8 : (uint32_t)fit;
    return n;
}

const char *cli_source_file(const char *uri)
{
    static km_uri u;
    char err[256];
    if (km_uri_parse(uri, &u, err, sizeof err) || strcmp(u.scheme, "file"))
        return NULL;
    return u.path;
}

int cli_fail(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "knotmat %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

bool cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                      double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_fail(cmd, EXIT_USAGE, "--%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

int64_t cli_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Called on a source's producer thread (never the DSP's), only for rare
 * problems: malformed or corrupt frames, device loss. */
void cli_note_to_stderr(void *user, enum km_note_kind kind, const char *text)
{
    const char *what = kind == KM_NOTE_MALFORMED     ? "skipped"
                       : kind == KM_NOTE_DEFECT      ? "defect"
                       : kind == KM_NOTE_DEVICE_LOST ? "device lost"
                       : kind == KM_NOTE_DEVICE_BACK ? "device back"
                                                     : NULL;
    if (what)
        fprintf(stderr, "knotmat %s: %s: %s\n", (const char *)user, what, text);
}

bool cli_split_kv(const char *cmd, const char *opt, const char *arg, char *buf, size_t len,
                  const char **value)
{
    snprintf(buf, len, "%s", arg);
    char *eq = strchr(buf, '=');
    if (!eq) {
        cli_fail(cmd, EXIT_USAGE, "--%s wants KEY=VALUE, not '%s'", opt, arg);
        return false;
    }
    *eq = 0;
    *value = eq + 1;
    return true;
}

bool cli_add_set(const char *cmd, const char *arg, char *buf, size_t len)
{
    char key[300], err[300];
    const char *val;
    if (!cli_split_kv(cmd, "set", arg, key, sizeof key, &val))
        return false;
    km_dsp_config scratch;
    km_dsp_config_default(&scratch);
    if (km_dsp_config_set(&scratch, key, val, err, sizeof err)) {
        cli_fail(cmd, EXIT_USAGE, "%s", err);
        return false;
    }
    size_t n = strlen(buf);
    if (strchr(arg, ' ') || n + strlen(arg) + 2 > len) {
        cli_fail(cmd, EXIT_USAGE, "--set %s: too many settings or a space in one", arg);
        return false;
    }
    snprintf(buf + n, len - n, "%s%s", n ? " " : "", arg);
    return true;
}

void cli_meta_from_source(struct km_record_meta *m, const km_source_info *info)
{
    m->rows = info->rows;
    m->cols = info->cols;
    m->pitch_mm = info->pitch_mm;
    m->rate_hz = info->rate_hz;
    snprintf(m->units, sizeof m->units, "kPa");
    snprintf(m->device_kind, sizeof m->device_kind, "%s", info->kind);
    snprintf(m->vid_pid, sizeof m->vid_pid, "%s", info->vid_pid);
    snprintf(m->serial, sizeof m->serial, "%s", info->serial);
    snprintf(m->calibration, sizeof m->calibration, "%s", info->calibration);
}

const char *cli_term_safe(const char *in, char *buf, size_t n)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)in;
    for (; *p && o + 1 < n; p++) {
        unsigned char c = *p;
        /* C0 controls, DEL, and C1 controls (UTF-8 C2 80..9F) */
        if (c < 0x20 || c == 0x7f || (c == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)) {
            buf[o++] = '?';
            if (c == 0xc2)
                p++;
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = 0;
    return buf;
}

/* length of the valid UTF-8 sequence at p, 0 if invalid */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || (n == 2 && c < 0xc2) || (n == 4 && c > 0xf4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)))
        return 0; /* overlong, surrogates */
    if (n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)))
        return 0;
    return n;
}

const char *cli_utf8(const char *in, char *buf, size_t n)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)in;
    while (*p && o + 4 < n) {
        size_t k = utf8_len(p);
        if (k) {
            memcpy(buf + o, p, k);
            o += k;
            p += k;
        } else {
            memcpy(buf + o, "\xef\xbf\xbd", 3); /* U+FFFD */
            o += 3;
            p++;
        }
    }
    buf[o] = 0;
    return buf;
}
