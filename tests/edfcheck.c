/* edfcheck FILE.edf: open an EDF+ file with EDFlib as a viewer would; print
 * signals, duration, start date, patient code and every annotation:
 *     signals N duration_s S start YYYY-MM-DD patient CODE
 *     annotation ONSET_S TEXT
 * Exit 1 if EDFlib cannot read it. */
#include <edflib.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    struct edf_hdr_struct h;
    if (edfopen_file_readonly(argv[1], &h, EDFLIB_READ_ALL_ANNOTATIONS) < 0) {
        fprintf(stderr, "EDFlib cannot read %s (error %d)\n", argv[1], h.filetype);
        return 1;
    }
    printf("signals %d duration_s %.1f start %04d-%02d-%02d patient %s\n", h.edfsignals,
           h.file_duration / 1e7, h.startdate_year, h.startdate_month, h.startdate_day,
           h.patientcode[0] ? h.patientcode : "-");
    for (int s = 0; s < h.edfsignals; s++)
        printf("signal %s %s %d\n", h.signalparam[s].label, h.signalparam[s].physdimension,
               h.signalparam[s].smp_in_datarecord);
    for (long long i = 0; i < h.annotations_in_file; i++) {
        struct edf_annotation_struct a;
        if (edf_get_annotation(h.handle, (int)i, &a) == 0)
            printf("annotation %.3f %s\n", a.onset / 1e7, a.annotation);
    }
    edfclose_file(h.handle);
    return 0;
}
