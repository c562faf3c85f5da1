/* scheme.c: which cue each event gets, the scheme file, and tone rendering.
 *
 * Default cues (docs/cues.md): distinct pitches a person can tell apart with
 * eyes closed, soft envelopes (8 ms raised-cosine attack, 25 ms release, so no
 * clicks), levels well below full scale so that overlapping cues mix cleanly.
 * Scheme file: "volume = 0.7" then sections named after event types:
 *     [spasm]
 *     tones = 880:120, 0:40, 1320:160     # Hz:ms, A>B:ms a glide, 0:ms silence
 *     words =                             # spoken after the tones
 *     gain = 0.8
 *     style = tone                        # or chime (bell-like decay)
 * An empty `tones` and `words` silences that event. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cue_internal.h"
#include "internal.h"

/* Lists "a, b, c": past the separators before an item */
static const char *list_next(const char *p)
{
    while (*p == ' ' || *p == ',')
        p++;
    return p;
}

/* after an item: only spaces, then a comma or the end */
static int list_item_ends(const char **p)
{
    while (**p == ' ')
        (*p)++;
    return !**p || **p == ',';
}

static int parse_tones(cue_def *c, const char *v)
{
    c->nseg = 0;
    const char *p = v;
    while (*(p = list_next(p))) {
        if (c->nseg == CUE_MAX_SEGS)
            return -1;
        char *end;
        double f0 = strtod(p, &end), f1;
        if (end == p || f0 < 0 || f0 > 20000)
            return -1;
        p = end;
        f1 = f0;
        if (*p == '>') {
            f1 = strtod(p + 1, &end);
            if (end == p + 1 || f1 < 20 || f1 > 20000)
                return -1;
            p = end;
        }
        if (*p != ':')
            return -1;
        double ms = strtod(p + 1, &end);
        if (end == p + 1 || !(ms >= 5 && ms <= 5000))
            return -1;
        p = end;
        c->seg[c->nseg++] = (cue_seg){f0, f1, ms};
        if (!list_item_ends(&p))
            return -1;
    }
    return 0;
}

/* "30, 60, 90": rising seconds; empty: no time in words */
static int parse_times(cue_scheme *s, const char *v)
{
    int n = 0;
    double t[CUE_MAX_TIMES];
    const char *p = v;
    while (*(p = list_next(p))) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || n == CUE_MAX_TIMES || !(x >= 5 && x <= 3600) || (n && x <= t[n - 1]))
            return -1;
        t[n++] = x;
        p = end;
        if (!list_item_ends(&p))
            return -1;
    }
    memcpy(s->times, t, sizeof(double) * (size_t)n);
    s->ntimes = n;
    return 0;
}

static void set(cue_scheme *s, enum km_event_type t, const char *tones, const char *words,
                double gain, int chime)
{
    cue_def *c = &s->cue[t];
    memset(c, 0, sizeof *c);
    parse_tones(c, tones);
    snprintf(c->words, sizeof c->words, "%s", words);
    c->gain = gain;
    c->chime = chime;
}

void km_cue_scheme_default_(cue_scheme *s)
{
    memset(s, 0, sizeof *s);
    s->volume = 0.7;
    /* every cue also in words (tones stay for those who know them); gains
     * equal but for the twitch and the release, the news of a session */
    set(s, KM_EV_ON_TARGET, "660:450", "on the spot", 0.6, 1);        /* soft chime */
    set(s, KM_EV_HOLD, "1000:45", "", 0.6, 0);  /* a tick; time in words at `times` */
    set(s, KM_EV_SPASM, "880:120, 0:40, 1320:160", "twitch", 0.7, 0); /* clear two-tone */
    set(s, KM_EV_RELEASE, "440>880:450", "released - move on", 0.7, 0); /* rising + words */
    set(s, KM_EV_OFF_TARGET, "330:300", "off the spot", 0.6, 0);    /* low */
    set(s, KM_EV_OVERPRESSURE, "740:90, 0:70, 740:90, 0:70, 740:90", "less pressure", 0.6, 0);
    set(s, KM_EV_HOLD_LIMIT, "587:160, 0:80, 587:160", "time to move on", 0.6, 0);
    set(s, KM_EV_DEVICE_LOST, "523>392:400", "mat disconnected", 0.6, 0);
    set(s, KM_EV_DEVICE_BACK, "392>523:400", "mat connected", 0.6, 0);
    /* the person's own mark (a key): a short high pip, then "twitch noted" */
    set(s, KM_EV_MARK, "1175:70", "noted", 0.6, 0);
    /* the dose schedule: trigger-point pressure release holds 30-90 s (90 s
     * at the pain threshold, 30-60 s firmer: docs/cues.md); 90 s is the
     * hold limit's own "time to move on" */
    s->times[0] = 30;
    s->times[1] = 60;
    s->ntimes = 2;
    snprintf(s->ready, sizeof s->ready, "knotmat ready. lie down on the ball");
    /* hotspot and breathing: no cue (breathing has its own slow cue later) */
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

/* One "key = value" of an [event] section into its cue. */
static int set_key(cue_def *c, const char *key, const char *val, const char *path, int ln,
                   char *err, size_t errlen)
{
    char *end;
    if (!strcmp(key, "tones")) {
        if (parse_tones(c, val)) {
            km_errf_(err, errlen, "%s:%d: tones '%s' not understood (e.g. 880:120, 0:40, "
                     "440>880:300)", path, ln, val);
            return KM_EFORMAT;
        }
        if (c->gain == 0)
            c->gain = 0.6;
    } else if (!strcmp(key, "words")) {
        if (strlen(val) >= sizeof c->words) {
            km_errf_(err, errlen, "%s:%d: words are at most %zu characters (a cue is a few "
                     "words)", path, ln, sizeof c->words - 1);
            return KM_EFORMAT;
        }
        snprintf(c->words, sizeof c->words, "%s", val);
        if (c->gain == 0)
            c->gain = 0.6;
    } else if (!strcmp(key, "gain")) {
        double v = strtod(val, &end);
        if (end == val || *end || !(v >= 0 && v <= 1)) {
            km_errf_(err, errlen, "%s:%d: gain must be 0..1", path, ln);
            return KM_EFORMAT;
        }
        c->gain = v;
    } else if (!strcmp(key, "style")) {
        if (strcmp(val, "tone") && strcmp(val, "chime")) {
            km_errf_(err, errlen, "%s:%d: style is 'tone' or 'chime'", path, ln);
            return KM_EFORMAT;
        }
        c->chime = !strcmp(val, "chime");
    } else {
        km_errf_(err, errlen, "%s:%d: unknown key '%s' (tones, words, gain, style)", path, ln,
                 key);
        return KM_EFORMAT;
    }
    return KM_OK;
}

int km_cue_scheme_load_(cue_scheme *s, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        km_errf_(err, errlen, "%s: %s", path, strerror(errno));
        return KM_ENOENT;
    }
    char *line = NULL;
    size_t cap = 0;
    int ln = 0, cur = -1, rc = KM_OK;
    /* whole lines, however long: an error's line number is the file's */
    while (getline(&line, &cap, fp) > 0) {
        ln++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *l = trim(line);
        if (!*l)
            continue;
        if (*l == '[') {
            char *close = strchr(l, ']');
            if (!close) {
                km_errf_(err, errlen, "%s:%d: section header without ']'", path, ln);
                rc = KM_EFORMAT;
                break;
            }
            *close = 0;
            cur = -1;
            for (int t = 1; t < KM_EV_TYPE_COUNT; t++)
                if (!strcmp(trim(l + 1), km_event_type_name((enum km_event_type)t)))
                    cur = t;
            if (cur < 0) {
                km_errf_(err, errlen, "%s:%d: no event called '%s' (spasm, release, hold, ...)",
                         path, ln, trim(l + 1));
                rc = KM_EFORMAT;
                break;
            }
            continue;
        }
        char *eq = strchr(l, '=');
        if (!eq) {
            km_errf_(err, errlen, "%s:%d: expected 'key = value'", path, ln);
            rc = KM_EFORMAT;
            break;
        }
        *eq = 0;
        char *key = trim(l), *val = trim(eq + 1), *end;
        if (cur < 0 && !strcmp(key, "ready")) {
            if (strlen(val) >= sizeof s->ready) {
                km_errf_(err, errlen, "%s:%d: ready words are at most %zu characters", path, ln,
                         sizeof s->ready - 1);
                rc = KM_EFORMAT;
                break;
            }
            snprintf(s->ready, sizeof s->ready, "%s", val);
            continue;
        }
        if (cur < 0) {
            double v = strtod(val, &end);
            if (strcmp(key, "volume") || end == val || *end || !(v >= 0 && v <= 1)) {
                km_errf_(err, errlen, "%s:%d: before any [event] only 'volume = 0..1' and "
                         "'ready = WORDS' are allowed", path, ln);
                rc = KM_EFORMAT;
                break;
            }
            s->volume = v;
            continue;
        }
        if (cur == KM_EV_HOLD && !strcmp(key, "times")) {
            if (parse_times(s, val)) {
                km_errf_(err, errlen, "%s:%d: times are up to %d rising seconds in 5..3600 "
                         "(e.g. 30, 60, 90)", path, ln, CUE_MAX_TIMES);
                rc = KM_EFORMAT;
                break;
            }
            continue;
        }
        if ((rc = set_key(&s->cue[cur], key, val, path, ln, err, errlen)))
            break;
    }
    free(line);
    fclose(fp);
    return rc;
}

float *km_cue_render_tones_(const cue_def *c, int rate, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < c->nseg; i++)
        total += (size_t)llround(c->seg[i].ms * 1e-3 * rate);
    *n = total;
    float *out = calloc(total ? total : 1, sizeof(float));
    if (!out)
        return NULL;
    size_t o = 0;
    const double attack = 0.008, release = 0.025;
    for (int i = 0; i < c->nseg; i++) {
        const cue_seg *s = &c->seg[i];
        size_t len = (size_t)llround(s->ms * 1e-3 * rate);
        double dur = (double)len / rate, phase = 0;
        for (size_t k = 0; k < len && s->f0 > 0; k++) {
            double t = (double)k / rate;
            double f = s->f0 + (s->f1 - s->f0) * t / dur;
            phase += 2 * M_PI * f / rate;
            double env = 1;
            if (t < attack)
                env = 0.5 - 0.5 * cos(M_PI * t / attack);
            double left = dur - t;
            if (left < release)
                env *= 0.5 - 0.5 * cos(M_PI * left / release);
            double v;
            if (c->chime) /* bell: fundamental with decaying octave and twelfth */
                v = exp(-t / (dur * 0.35)) *
                    (sin(phase) + 0.3 * exp(-t / 0.08) * sin(2 * phase) + 0.1 * sin(3 * phase));
            else /* warm tone: a little second harmonic */
                v = sin(phase) + 0.15 * sin(2 * phase);
            out[o + k] = (float)(CUE_TONE_PEAK * env * v * c->gain);
        }
        o += len;
    }
    return out;
}
