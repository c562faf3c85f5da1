/* cli.h: shared pieces of the knotmat command's subcommands. */
#ifndef KNOTMAT_CLI_H
#define KNOTMAT_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "knotmat/source.h"

/* Exit statuses of every subcommand. EXIT_PARTIAL: the command did its work
 * on everything readable, but part of the input was damaged or malformed
 * and was skipped (each span said on stderr). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_PARTIAL = 3 };

int cmd_simulate(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_cues(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);

/* progress.c: a progress bar on a terminal, nothing when piped */
typedef struct cli_progress {
    const char *label, *unit;
    int enabled, shown;
    int64_t t0, last;
} cli_progress;
void cli_progress_begin(cli_progress *p, const char *label, const char *unit);
/* matches km_progress_fn: user is the cli_progress */
void cli_progress_update(void *user, double fraction, uint64_t done);
void cli_progress_end(cli_progress *p);

/* view.c: the terminal heatmap of knotmat run --view */
#include "knotmat/events.h"
#include "knotmat/stats.h"
typedef struct cli_view cli_view;
cli_view *cli_view_new(double max_hold_s);
void cli_view_event(cli_view *v, const km_event *e);
void cli_view_draw(cli_view *v, const km_frame *f, const km_frame_summary *s, double t,
                   double fps, unsigned long long dropped);
void cli_view_free(cli_view *v);

/* marks.c: the keys a person presses during `run` to mark what they feel */
typedef struct cli_marks cli_marks;
/* path NULL: standard input when it is a terminal (else *out stays NULL);
 * "-": standard input; else a file or FIFO. keys: twitch, ouch and release
 * ("tor" when NULL). -1 with the reason in err. */
int cli_marks_open(const char *path, const char *keys, cli_marks **out, char *err, size_t len);
/* "tor" -> keys[1..3]; -1 when not three different printable keys. */
int cli_marks_keys_parse(const char *arg, char keys[KM_MARK_COUNT]);
/* The marks (enum km_mark) pressed since the last call, at most max; *quit
 * when 'q' was pressed. Never blocks. */
int cli_marks_poll(cli_marks *m, int *marks, int max, int *quit);
/* "keys: t or 1 twitch, ..." */
const char *cli_marks_help(const cli_marks *m, char *buf, size_t len);
/* Closes it and restores the terminal. */
void cli_marks_close(cli_marks *m);

struct km_event;
/* Print one event as text or a JSON line. */
void cli_print_event(const struct km_event *e, int json);
/* A source note callback printing to stderr; user = the command name. */
void cli_note_to_stderr(void *user, enum km_note_kind kind, const char *text);

/* SIGINT / SIGTERM / SIGHUP set this; commands poll it. */
extern volatile sig_atomic_t cli_interrupted;
/* Set when standard output is gone (EPIPE: `| head` stopped reading). */
extern volatile sig_atomic_t cli_output_closed;
/* Set when a thread is stuck writing stdout (nobody reads it): then nothing
 * may touch stdout again, not even exit()'s flush; main() ends with _exit. */
extern volatile sig_atomic_t cli_stdout_stuck;
void cli_install_signals(void);
/* For every command, first thing: SIGPIPE and SIGXFSZ ignored, so a closed
 * pipe or a file-size limit is an error a write reports, never a kill. */
void cli_ignore_fatal_signals(void);
/* After a write to stdout: false (and cli_output_closed set on EPIPE) when
 * it failed. */
bool cli_stdout_ok(void);

/* Ring slots for frames of `cells` cells: `wanted`, but never more than a
 * memory budget allows (a 1024 x 1024 mat gets fewer, smaller rings). */
uint32_t cli_ring_slots(uint32_t cells, uint32_t wanted);
/* Text from files and devices (metadata, USB strings) made safe to print:
 * for a terminal, control characters become '?' (no escape sequences);
 * for JSON, invalid UTF-8 becomes U+FFFD (json-c escapes the rest). */
const char *cli_term_safe(const char *in, char *buf, size_t n);
const char *cli_utf8(const char *in, char *buf, size_t n);

/* The file a source URI reads (file://PATH or a bare PATH), else NULL. */
const char *cli_source_file(const char *uri);

/* Print "knotmat CMD: message" to stderr; returns `code`. */
int cli_fail(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Strict number parsing for options: false (and a message) if not a number
 * within [lo, hi]. */
bool cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                      double *out);

int64_t cli_mono_ns(void);

struct km_record_meta;
/* Recording metadata (geometry, rate, units, device kind) from a source. */
void cli_meta_from_source(struct km_record_meta *m, const km_source_info *info);

/* Split "KEY=VALUE" (an --OPT argument) into buf (KEY) and *value. false
 * and a usage message when there is no '='. */
bool cli_split_kv(const char *cmd, const char *opt, const char *arg, char *buf, size_t len,
                  const char **value);
/* --set KEY=VALUE: checked against the detector's settings, appended to
 * `buf` ("KEY=VALUE ..." for km_pass / km_report options); false after
 * saying why. */
bool cli_add_set(const char *cmd, const char *arg, char *buf, size_t len);

#endif
