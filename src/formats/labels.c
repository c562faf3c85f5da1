/* labels.c: the ground-truth labels beside a simulated CSV
 * (NAME.labels.csv: t_s,type,x_mm,y_mm), written and read. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats.h"
#include "knotmat/outfile.h"

void km_labels_path_for(const char *csv_path, char *buf, size_t len)
{
    size_t n = strlen(csv_path);
    if (n > 4 && !strcmp(csv_path + n - 4, ".csv"))
        snprintf(buf, len, "%.*s.labels.csv", (int)(n - 4), csv_path);
    else
        snprintf(buf, len, "%s.labels.csv", csv_path);
}

int km_labels_write(const char *path, unsigned out_flags, const km_label *labels, size_t n,
                    char *err, size_t errlen)
{
    km_outfile *of;
    int rc = km_outfile_open(path, out_flags, NULL, &of, err, errlen);
    if (rc)
        return rc;
    FILE *fp = km_outfile_stream_(of);
    if (!fp) {
        km_outfile_abort(of);
        return KM_ENOMEM;
    }
    fprintf(fp, "t_s,type,x_mm,y_mm\n");
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%.3f,%s,%.1f,%.1f\n", labels[i].t_s, labels[i].type, labels[i].x_mm,
                labels[i].y_mm);
    int bad = ferror(fp);
    if (fclose(fp) != 0 || bad) {
        km_errf_(err, errlen, "%s: write failed: %s", path, strerror(errno));
        km_outfile_abort(of);
        return KM_EIO;
    }
    return km_outfile_commit(of, err, errlen);
}

int km_labels_read(const char *path, km_label **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        km_errf_(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? KM_ENOENT : KM_EIO;
    }
    km_line_reader_ lr = {.fp = fp};
    km_label *v = NULL;
    size_t cap = 0, cnt = 0;
    int rc = KM_OK;
    if (km_line_next_(&lr) <= 0 || strcmp(lr.buf, "t_s,type,x_mm,y_mm") != 0) {
        km_errf_(err, errlen, "%s:1: expected header 't_s,type,x_mm,y_mm'", path);
        rc = KM_EFORMAT;
    }
    while (!rc && km_line_next_(&lr) > 0) {
        if (!lr.buf[0])
            continue;
        km_label l;
        char type[16];
        int used = 0;
        if (sscanf(lr.buf, "%lf,%15[^,],%lf,%lf%n", &l.t_s, type, &l.x_mm, &l.y_mm, &used) != 4 ||
            lr.buf[used] || !isfinite(l.t_s) || !isfinite(l.x_mm) || !isfinite(l.y_mm) ||
            (strcmp(type, "spasm") && strcmp(type, "release"))) {
            km_errf_(err, errlen, "%s:%llu: expected 't_s,spasm|release,x_mm,y_mm', found '%.60s'",
                     path, (unsigned long long)lr.line, lr.buf);
            rc = KM_EFORMAT;
            break;
        }
        snprintf(l.type, sizeof l.type, "%s", type);
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            km_label *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = KM_ENOMEM;
                break;
            }
            v = nv;
        }
        v[cnt++] = l;
    }
    free(lr.buf);
    fclose(fp);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return KM_OK;
}
