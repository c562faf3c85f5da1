/* examples/replay.c: the offline pass (knotmat/pass.h) over a recording: its
 * holds as the person had them (the live session's recorded events when the
 * file holds them, else the detectors' on this pass), and where they come from.
 *     build/examples/example_replay FILE.kmr|FILE.csv [--reanalyze] */
#include <stdio.h>
#include <string.h>

#include "knotmat/pass.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: example_replay FILE [--reanalyze]\n");
        return 2;
    }
    km_pass_options o = {.input = argv[1], .reanalyze = argc > 2 && !strcmp(argv[2], "--reanalyze")};
    km_pass *p;
    char err[1024];
    if (km_pass_open(&o, &p, err, sizeof err)) {
        fprintf(stderr, "example_replay: %s\n", err);
        return 1;
    }
    printf("events %s (settings: %s)\n", km_pass_events_from_text(p),
           km_pass_describe(p)->settings_text);
    const km_frame *f;
    const km_event *ev;
    size_t n, holds = 0;
    double t0 = -1;
    int rc;
    while ((rc = km_pass_next(p, &f, &ev, &n)) == KM_OK) {
        if (f && t0 < 0)
            t0 = f->device_ns * 1e-9;
        for (size_t i = 0; i < n; i++) {
            if (ev[i].type == KM_EV_ON_TARGET)
                printf("hold %zu from %.1f s\n", ++holds, ev[i].t_s - t0);
            else if (ev[i].type == KM_EV_HOLD_LIMIT)
                printf("  limit cue at %.1f s held\n", ev[i].value);
            else if (ev[i].type == KM_EV_OFF_TARGET)
                printf("  ended after %.1f s\n", ev[i].value);
            else if (ev[i].type == KM_EV_SPASM || ev[i].type == KM_EV_RELEASE)
                printf("  %s at %.1f s\n", km_event_type_name(ev[i].type), ev[i].t_s - t0);
        }
    }
    km_dsp_stats st;
    km_pass_dsp_stats(p, &st);
    printf("%llu frames at %.2f frames/s (measured), %zu holds\n",
           (unsigned long long)st.frames, st.measured_rate_hz, holds);
    km_pass_close(p);
    return rc == KM_EEOF ? 0 : 1;
}
