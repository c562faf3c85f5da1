/* calibration.c: per-device calibration files made by `knotmat calibrate`
 * with a known weight (knotmat/usbmat.h): where they live, reading and
 * writing them. The USB source applies them (usbmat.c). A calibration is a
 * gain on what the mat reports, so it composes with a quirks entry's
 * KpaPerCount (or the documented default) and with the Morph's firmware
 * units alike. Touches: the calibration directory. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "knotmat/outfile.h"
#include "knotmat/usbmat.h"

void km_calibration_dir(char *buf, size_t len)
{
    const char *env = getenv("KNOTMAT_CALIBRATION_DIR"), *xdg = getenv("XDG_CONFIG_HOME"),
               *home = getenv("HOME");
    if (env && *env)
        snprintf(buf, len, "%s", env);
    else if (xdg && *xdg)
        snprintf(buf, len, "%s/knotmat/calibration", xdg);
    else
        snprintf(buf, len, "%s/.config/knotmat/calibration", home && *home ? home : ".");
}

static void file_for(uint16_t vid, uint16_t pid, const char *serial, char *buf, size_t len)
{
    char dir[1024], safe[64];
    km_calibration_dir(dir, sizeof dir);
    size_t n = 0;
    for (const char *p = serial ? serial : ""; *p && n + 1 < sizeof safe; p++)
        safe[n++] = isalnum((unsigned char)*p) || *p == '-' || *p == '_' ? *p : '_';
    safe[n] = 0;
    snprintf(buf, len, "%s/%04x-%04x-%s.cal", dir, vid, pid, n ? safe : "any");
}

int km_calibration_load(uint16_t vid, uint16_t pid, const char *serial, km_calibration *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char path[1200];
    file_for(vid, pid, serial, path, sizeof path);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return KM_ENOENT;
    char line[512];
    int ln = 0, rc = KM_OK;
    unsigned fv = 0, fp_ = 0;
    while (!rc && fgets(line, sizeof line, fp)) {
        ln++;
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (line[0] == '#' || !eq)
            continue;
        *eq = 0;
        const char *k = line, *v = eq + 1;
        char *end;
        if (!strcmp(k, "Gain")) {
            out->gain = strtod(v, &end);
            if (*end || !(out->gain > 0.01 && out->gain < 100))
                rc = KM_EFORMAT;
        } else if (!strcmp(k, "Calibrated")) {
            snprintf(out->when, sizeof out->when, "%s", v);
        } else if (!strcmp(k, "Method")) {
            snprintf(out->method, sizeof out->method, "%s", v);
        } else if (!strcmp(k, "MatchUSBID")) {
            if (sscanf(v, "%x:%x", &fv, &fp_) != 2 || fv != vid || fp_ != pid)
                rc = KM_EFORMAT;
        }
        if (rc)
            km_errf_(err, errlen, "%s:%d: bad value '%s' for %s", path, ln, v, k);
    }
    fclose(fp);
    if (!rc && !(out->gain > 0)) {
        km_errf_(err, errlen, "%s: no Gain", path);
        rc = KM_EFORMAT;
    }
    return rc;
}

static int mkdirs(const char *dir)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int km_calibration_save(uint16_t vid, uint16_t pid, const char *serial, const km_calibration *c,
                        char *path, size_t pathlen, char *err, size_t errlen)
{
    if (!(c->gain > 0.01 && c->gain < 100)) {
        km_errf_(err, errlen, "calibration gain %g is not plausible (0.01-100)", c->gain);
        return KM_EINVAL;
    }
    char dir[1024], file[1200];
    km_calibration_dir(dir, sizeof dir);
    file_for(vid, pid, serial, file, sizeof file);
    if (path)
        snprintf(path, pathlen, "%s", file);
    if (mkdirs(dir)) {
        km_errf_(err, errlen, "%s: %s", dir, strerror(errno));
        return errno == EACCES ? KM_EPERM : KM_EIO;
    }
    km_outfile *of;
    int rc = km_outfile_open(file, KM_OUT_FORCE, NULL, &of, err, errlen);
    if (rc)
        return rc;
    FILE *fp = km_outfile_stream_(of);
    if (!fp) {
        km_outfile_abort(of);
        return KM_ENOMEM;
    }
    fprintf(fp, "# knotmat calibration (knotmat calibrate): a gain on the pressures this mat "
                "reports\nMatchUSBID=%04x:%04x\nMatchSerial=%s\nGain=%.6g\nCalibrated=%s\n"
                "Method=%s\n", vid, pid, serial ? serial : "", c->gain, c->when, c->method);
    if (fclose(fp) != 0) {
        km_errf_(err, errlen, "%s: %s", file, strerror(errno));
        km_outfile_abort(of);
        return KM_EIO;
    }
    return km_outfile_commit(of, err, errlen);
}
