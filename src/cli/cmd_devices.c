/* cmd_devices.c: knotmat devices: the pressure mats connected over USB (the
 * Sensel Morph, and DIY mats described by a quirks file), with what to pass
 * to --source. Touches: libusb (through libknotmat), stdout. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "knotmat/usbmat.h"

static void help(FILE *out)
{
    char path[1024];
    km_quirks_path(path, sizeof path);
    fprintf(out,
            "Usage: knotmat devices [--json]\n"
            "List the pressure mats connected over USB: kind, VID:PID, serial, geometry,\n"
            "and the URI to give to 'knotmat run --source'. DIY mats are found through\n"
            "quirks files (docs/drivers.md), read from: %s\n\n"
            "  -j, --json   one JSON object per mat\n"
            "  -h, --help   this text\n",
            path);
}

int cmd_devices(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h') {
            help(stdout);
            return EXIT_OK;
        } else {
            help(stderr);
            return EXIT_USAGE;
        }
    }
    km_usb_mat mats[32];
    size_t n = 0;
    char err[512] = "";
    int rc = km_usb_list(mats, 32, &n, err, sizeof err);
    if (rc)
        return cli_fail("devices", EXIT_FAIL, "%s", err);
    if (err[0])
        fprintf(stderr, "knotmat devices: %s\n", err);
    if (!n && !json)
        printf("no pressure mat found (plug one in; DIY mats need a quirks file)\n");
    for (size_t i = 0; i < n && i < 32; i++) {
        const km_usb_mat *m = &mats[i];
        char uri[128];
        snprintf(uri, sizeof uri, "usb://%04x:%04x%s%s", m->vid, m->pid, m->serial[0] ? "/" : "",
                 m->serial);
        char k[200], nm[200], se[200];
        if (json) {
            json_object *o = json_object_new_object();
            char vp[16];
            snprintf(vp, sizeof vp, "%04x:%04x", m->vid, m->pid);
            json_object_object_add(o, "kind", json_object_new_string(cli_utf8(m->kind, k, sizeof k)));
            json_object_object_add(o, "name", json_object_new_string(cli_utf8(m->name, nm, sizeof nm)));
            json_object_object_add(o, "vid_pid", json_object_new_string(vp));
            json_object_object_add(o, "serial",
                                   json_object_new_string(cli_utf8(m->serial, se, sizeof se)));
            json_object_object_add(o, "bus", json_object_new_int(m->bus));
            json_object_object_add(o, "address", json_object_new_int(m->address));
            json_object_object_add(o, "rows", json_object_new_int(m->rows));
            json_object_object_add(o, "cols", json_object_new_int(m->cols));
            json_object_object_add(o, "pitch_mm", json_object_new_double(m->pitch_mm));
            json_object_object_add(o, "access", json_object_new_boolean(m->access));
            json_object_object_add(o, "uri", json_object_new_string(cli_utf8(uri, se, sizeof se)));
            puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
            json_object_put(o);
        } else {
            char su[300];
            printf("%-13s %04x:%04x  serial %-14s  %ux%u at %.2f mm  bus %03u dev %03u  %s%s\n",
                   cli_term_safe(m->kind, k, sizeof k), m->vid, m->pid,
                   m->serial[0] ? cli_term_safe(m->serial, se, sizeof se) : "?", m->cols,
                   m->rows, (double)m->pitch_mm, m->bus, m->address,
                   cli_term_safe(uri, su, sizeof su),
                   m->access ? "" : "  (permission denied: install the udev rule, README)");
        }
    }
    return EXIT_OK;
}
