/* edf_private.h: the EDF+ writer of the exports (edf.c). Never exported. */
#ifndef KNOTMAT_EDF_PRIVATE_H
#define KNOTMAT_EDF_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct km_edf_signal {
    const char *label, *dim, *transducer, *prefilter;
    double phys_min, phys_max;   /* mapped onto -32768..32767 */
} km_edf_signal;

typedef struct km_edf_annotation {
    double onset_s;              /* from the file's start */
    const char *text;
} km_edf_annotation;

typedef struct km_edf_file {
    /* identification (EDF+ subfields; NULL or "" becomes X) */
    const char *patient_code, *patient_name, *admin_code, *technician, *equipment;
    int year, month, day, hour, minute, second;
    int discontinuous;           /* EDF+D: records at record_onset_s, with gaps */
    int hz;                      /* samples per 1 s record, every signal */
    int nsignals;
    const km_edf_signal *signals;
    size_t nrecords;
    const int64_t *record_onset_s;   /* per record, increasing */
    const double *samples;           /* [record][signal][hz] */
    size_t nannotations;
    const km_edf_annotation *annotations; /* sorted by onset */
} km_edf_file;

/* Write the whole file to fd. KM_OK, KM_EIO (errno in err), KM_EINVAL,
 * KM_ENOMEM. The caller verifies it by reading it back (EDFlib). */
int km_edf_write_(int fd, const km_edf_file *f, char *err, size_t errlen);

/* Read `path` back: header fields, size, record onsets, annotation count.
 * KM_OK or KM_EIO with the reason. */
int km_edf_verify_(const char *path, size_t records, size_t annotations, char *err,
                   size_t errlen);

#endif
