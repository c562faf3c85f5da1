/* examples/session.c: a live session with the library alone: a simulated
 * mat (or the source given), the detectors on their own thread, every event
 * printed as JSON from this thread, for a few seconds. The library builds
 * the pipeline (knotmat/session.h); the program only listens.
 *     build/examples/example_session ["sim://?scenario=release&speed=max"] */
#include <stdio.h>
#include <time.h>

#include "knotmat/session.h"

int main(int argc, char **argv)
{
    km_session_config c;
    km_session_config_default(&c);
    c.source = argc > 1 ? argv[1] : "sim://?scenario=release&seed=7&speed=max&duration=60";
    char err[512];
    km_session *s;
    if (km_session_open(&c, &s, err, sizeof err)) {
        fprintf(stderr, "example_session: %s\n", err);
        return 1;
    }
    km_event_queue *events = km_session_listen(s, "printer", 256);
    if (!events || km_session_start(s, err, sizeof err)) {
        fprintf(stderr, "example_session: %s\n", events ? err : "no listener slot");
        km_session_free(s);
        return 1;
    }
    size_t n = 0;
    km_event e;
    char line[512];
    /* until the source ends (a file, a finite simulation) and the last
     * events are out */
    while (!km_session_drained(s)) {
        while (km_event_queue_pop_spsc(events, &e)) {
            km_event_to_json(&e, line, sizeof line);
            puts(line);
            n++;
        }
        if (km_session_source_ended(s))
            km_session_stop(s);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    while (km_event_queue_pop_spsc(events, &e))
        n++;
    int rc = km_session_finish(s, err, sizeof err);
    /* the session owns the queue: its count is read before the session goes */
    unsigned long long overruns = (unsigned long long)km_event_queue_overruns(events);
    km_session_free(s);
    fprintf(stderr, "example_session: %zu events, %llu listener overruns%s%s\n", n, overruns,
            rc ? ": " : "", rc ? err : "");
    return rc ? 1 : 0;
}
