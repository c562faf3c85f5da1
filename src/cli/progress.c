/* progress.c: a progress bar for offline commands that can take more than a
 * second (analyze, export, recover, report): on a terminal only (stderr is a
 * tty), redrawn at most 8 times a second, with the rate and the time left;
 * nothing at all when stderr is piped or redirected. Touches: stderr. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"

void cli_progress_begin(cli_progress *p, const char *label, const char *unit)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit;
    p->enabled = isatty(STDERR_FILENO) && !getenv("KNOTMAT_NO_PROGRESS");
    p->t0 = cli_mono_ns();
}

void cli_progress_update(void *user, double fraction, uint64_t done)
{
    cli_progress *p = user;
    if (!p->enabled)
        return;
    int64_t now = cli_mono_ns();
    if (now - p->last < 125000000 && fraction < 1)
        return;
    p->last = now;
    p->shown = 1;
    double el = (now - p->t0) * 1e-9;
    double rate = el > 0 ? done / el : 0;
    char bar[33];
    if (fraction >= 0) {
        if (fraction > 1)
            fraction = 1;
        int fill = (int)(fraction * 30 + 0.5);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        double left = fraction > 0.001 ? el * (1 - fraction) / fraction : 0;
        fprintf(stderr, "\r%s [%s] %3.0f%%  %llu %s  %.0f/s  %d:%02d left\x1b[K", p->label, bar,
                100 * fraction, (unsigned long long)done, p->unit, rate, (int)left / 60,
                (int)left % 60);
    } else {
        fprintf(stderr, "\r%s  %llu %s  %.0f/s  %.1f s\x1b[K", p->label,
                (unsigned long long)done, p->unit, rate, el);
    }
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (p->enabled && p->shown) {
        fprintf(stderr, "\r\x1b[K");
        fflush(stderr);
    }
}
