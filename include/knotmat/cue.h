/* knotmat/cue.h: audio cues for a person lying on the mat with eyes closed.
 * Each event type maps to a short, distinct cue (tones with envelopes and,
 * optionally, a few spoken words rendered once by espeak-ng). Everything is
 * rendered into memory at start-up; the audio callback only mixes those
 * samples, driven by a lock-free queue of cue commands. The scheme (which
 * tones, which words, how loud) can be changed with a scheme file; the
 * default scheme and the file format are in docs/cues.md. */
#ifndef KNOTMAT_CUE_H
#define KNOTMAT_CUE_H

#include <stdbool.h>
#include "events.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_cue_engine km_cue_engine;

/** Software latency asked of the sound server by default, and its bounds.
 *  25 ms: under load a 10 ms buffer damaged cues
 *  (bench/cue_latency.sh measures both); event to sound stays under 40 ms. */
#define KM_CUE_LATENCY_DEFAULT_S 0.025
#define KM_CUE_LATENCY_MIN_S 0.005
#define KM_CUE_LATENCY_MAX_S 0.500
/** The audio thread's round-robin priority when real-time is allowed: below
 *  PulseAudio's own threads (5 by default), above every ordinary process. */
#define KM_CUE_RT_PRIORITY 4
/** Spots in a session plan, at most */
#define KM_CUE_MAX_PLAN 16

typedef struct km_cue_options {
    /** "auto" (PulseAudio, then JACK, then ALSA; never a silent Dummy),
     *  "pulseaudio", "alsa", "jack", "dummy", "none", or "wav:FILE" (the cue
     *  track of the session rendered to FILE at each event's time). */
    const char *audio;
    const char *voice;       /**< espeak-ng voice ("en"), or "none" for tones only */
    double volume;           /**< 0..1, default 0.7 */
    const char *scheme_file; /**< NULL: the built-in scheme */
    double latency_s;        /**< software latency asked of the server, s
                                  (KM_CUE_LATENCY_DEFAULT_S; MIN..MAX) */
    /** Ask real-time (round-robin) priority for the audio thread, once, at
     *  its first callback. Refusal is not an error: km_cue_engine_realtime()
     *  says it. Default true. */
    bool realtime;
    int sample_rate;         /**< 48000 */
    bool overwrite;          /**< wav: replace an existing file (never without it) */
    /** A session plan: spots separated by commas or new lines ("left glute,
     *  right glute, upper back"), at most KM_CUE_MAX_PLAN; NULL: none. */
    const char *plan;
    /** With audio "none" (or no sound server), render the cues anyway (for
     *  km_cue_samples: listing, tests). false saves espeak-ng's start-up,
     *  and its audio probe, when nothing can be heard. Default true. */
    bool render_silent;
} km_cue_options;

KM_API void km_cue_options_default(km_cue_options *o);

/** Render the cues, connect the backend. A missing sound server is not an
 *  error: the engine runs silent and `warning` (may be NULL) says why.
 *  Possible errors: KM_EINVAL (an option out of range, a plan naming no spot
 *  or too many, an unknown audio
 *  backend), KM_ENOENT (the scheme file is not there), KM_EFORMAT (a bad
 *  line in the scheme file: `err` names it), KM_ENOMEM; for a WAV output,
 *  those of km_outfile_open(). */
KM_API int km_cue_engine_new(const km_cue_options *o, km_cue_engine **out, char *err,
                             size_t errlen, char *warning, size_t warnlen);
/** Stop the stream, finish a WAV file. NULL is a no-op returning KM_OK.
 *  Possible errors: KM_EIO (the WAV file could not be written: it is not
 *  left behind). */
KM_API int km_cue_engine_free(km_cue_engine *e, char *err, size_t errlen);

/** Name of what is playing: "PulseAudio", "ALSA", "JACK", "Dummy", "wav",
 *  or "none". */
KM_API const char *km_cue_engine_backend(const km_cue_engine *e);

/** Queue the cue for this event (nothing for events without a cue); a
 *  hold's tick becomes its time in words when the hold passes a mark of the
 *  scheme's `times` (30 and 60 s by default). One
 *  thread only: the engine's command queue has a single producer (the
 *  caller) and a single consumer (the audio callback). Live backends play it now; wav places it at e->detected_t_s, the moment
 *  a live session would have played it. Never blocks; returns false if
 *  the event has no cue or the command queue was full (counted). */
KM_API bool km_cue_play(km_cue_engine *e, const km_event *ev);

/** The start-up words ("knotmat ready. lie down on the ball"; the scheme's
 *  `ready`), so a muted output is noticed before lying down. Same thread as
 *  km_cue_play(). false without speech or when the queue was full. */
KM_API bool km_cue_ready(km_cue_engine *e);
/** The session plan moves on after `after` (a release, or the hold limit):
 *  "next: right glute" once that event's cue has sounded (0.3 s after it),
 *  or "that was the last spot" after the last. km_cue_ready() says the first
 *  spot. Same thread as km_cue_play(). Returns the next spot's name, "" when
 *  the plan has just ended, NULL without a plan or after its end. */
KM_API const char *km_cue_next(km_cue_engine *e, const km_event *after);
/** Pressure guidance after `after`'s cue (the one km_cue_play() queued last,
 *  0.3 s after it): "a little more weight" (direction > 0) or "a little less
 *  weight" (< 0). The caller decides against its band; the band must never
 *  reach the safety limits. Same thread as km_cue_play(). */
KM_API bool km_cue_guide(km_cue_engine *e, int direction, const km_event *after);
/** The paced-breathing words, "breathe out, let it sink", at `at`'s time;
 *  when to say them is the caller's (knotmat run: --breathe). Same thread
 *  as km_cue_play(). */
KM_API bool km_cue_breathe(km_cue_engine *e, const km_event *at);
/** Say `text` (the shut-down summary): rendered now by espeak-ng, on this
 *  thread (km_cue_play()'s, never the audio thread), then queued; wav
 *  places it at t_s, or after everything when t_s < 0; live, t_s < 0 waits
 *  until every cue queued so far has sounded (the summary never talks over
 *  "next: right glute"). One such text sounds at a time. Returns the seconds
 *  from now until it has been said (its length on a wav track), 0 when
 *  nothing was queued (no speech, still saying the last one, queue full). */
KM_API double km_cue_say(km_cue_engine *e, const char *text, double t_s);

/** Call regularly from the main loop (not the audio thread): handles server
 *  events. When the sound server goes away the engine is silent and tries
 *  to connect again every 2 s (the session goes on). Returns false when
 *  the stream is down or has just come back; `warning` then says so, once
 *  per change. */
KM_API bool km_cue_engine_poll(km_cue_engine *e, char *warning, size_t warnlen);

typedef struct km_cue_stats {
    uint64_t queued;      /**< cue commands accepted */
    uint64_t started;     /**< cues the callback began to play */
    uint64_t dropped;     /**< commands refused: queue full */
    uint64_t underflows;  /**< the server ran dry */
    uint64_t damaged;     /**< cues that were sounding when it ran dry (a hole) */
    uint64_t errors;      /**< stream errors (server died, ...) */
    /** km_cue_play() to the cue's first sample leaving the stream's buffer
     *  into the server's mixer (the wait for the callback plus what the
     *  stream holds ahead of it, at most its software latency), over the last
     *  256 cues. A sound card's own latency comes on top. */
    double latency_p50_ms, latency_p99_ms;
    uint32_t latency_n;
} km_cue_stats;
KM_API void km_cue_engine_stats(km_cue_engine *e, km_cue_stats *out);

/** Whether the audio thread got real-time priority: 1 yes, 0 not known yet
 *  (no callback so far), -1 refused, -2 not asked (options.realtime false,
 *  or no live backend); `why` (may be NULL) says it in words, empty without
 *  a live backend. Any thread. */
KM_API int km_cue_engine_realtime(const km_cue_engine *e, char *why, size_t whylen);

/** The rendered samples of an event type's cue (mono, sample_rate), for
 *  tests and docs; NULL/0 when that event has no cue. */
KM_API const float *km_cue_samples(const km_cue_engine *e, enum km_event_type t, size_t *n);
/** The cue's main frequencies, Hz (up to 4; 0-terminated), for tests. */
KM_API const double *km_cue_frequencies(const km_cue_engine *e, enum km_event_type t);

#ifdef __cplusplus
}
#endif
#endif
