/* uri.c: source URIs, scheme://path?key=value&key=value, percent-decoded. */
#include <ctype.h>
#include <string.h>

#include "internal.h"
#include "knotmat/source.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Copy [s, s+n) percent-decoded into dst (size cap). -1 when too long or bad. */
static int decode(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        dst[o++] = c;
    }
    dst[o] = 0;
    return 0;
}

int km_uri_parse(const char *text, km_uri *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text) {
        km_errf_(err, errlen, "empty source URI");
        return KM_EINVAL;
    }
    const char *sep = strstr(text, "://");
    const char *rest;
    if (!sep) { /* a bare path: the whole text, no query */
        snprintf(out->scheme, sizeof out->scheme, "file");
        if (strlen(text) >= sizeof out->path) {
            km_errf_(err, errlen, "path too long");
            return KM_EINVAL;
        }
        snprintf(out->path, sizeof out->path, "%s", text);
        return KM_OK;
    }
    size_t sl = (size_t)(sep - text);
    if (sl == 0 || sl >= sizeof out->scheme) {
        km_errf_(err, errlen, "'%s': bad scheme (expected e.g. sim://, file://, usb://)", text);
        return KM_EINVAL;
    }
    for (size_t i = 0; i < sl; i++) {
        if (!isalnum((unsigned char)text[i]) && text[i] != '+' && text[i] != '-') {
            km_errf_(err, errlen, "'%s': bad character in scheme", text);
            return KM_EINVAL;
        }
        out->scheme[i] = (char)tolower((unsigned char)text[i]);
    }
    rest = sep + 3;
    const char *q = strchr(rest, '?');
    size_t pl = q ? (size_t)(q - rest) : strlen(rest);
    if (decode(out->path, sizeof out->path, rest, pl)) {
        km_errf_(err, errlen, "'%s': path too long or bad %%-escape", text);
        return KM_EINVAL;
    }
    if (!q)
        return KM_OK;
    const char *p = q + 1;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n) {
            if (out->nparams == KM_URI_MAX_PARAMS) {
                km_errf_(err, errlen, "'%s': more than %d parameters", text, KM_URI_MAX_PARAMS);
                return KM_EINVAL;
            }
            const char *eq = memchr(p, '=', n);
            size_t kl = eq ? (size_t)(eq - p) : n;
            struct km_uri_param *kv = &out->params[out->nparams];
            if (kl == 0 || decode(kv->key, sizeof kv->key, p, kl) ||
                decode(kv->value, sizeof kv->value, eq ? eq + 1 : p + n,
                       eq ? n - kl - 1 : 0)) {
                km_errf_(err, errlen, "'%s': bad parameter '%.*s'", text, (int)n, p);
                return KM_EINVAL;
            }
            out->nparams++;
        }
        p += n + (amp ? 1 : 0);
    }
    return KM_OK;
}

const char *km_uri_get(const km_uri *u, const char *key)
{
    for (int i = u->nparams - 1; i >= 0; i--)
        if (!strcmp(u->params[i].key, key))
            return u->params[i].value;
    return NULL;
}
