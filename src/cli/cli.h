/* cli.h: shared pieces of the knotmat command's subcommands. */
#ifndef KNOTMAT_CLI_H
#define KNOTMAT_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

int cmd_simulate(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* SIGINT / SIGTERM set this; commands poll it. */
extern volatile sig_atomic_t cli_interrupted;
void cli_install_signals(void);

/* Print "knotmat CMD: message" to stderr; returns `code`. */
int cli_fail(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Strict number parsing for options: false (and a message) if not a number
 * within [lo, hi]. */
bool cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                      double *out);

int64_t cli_mono_ns(void);

#endif
