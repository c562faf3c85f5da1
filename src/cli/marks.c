/* marks.c: the keys a person presses during `knotmat run` to mark what they
 * feel ("twitch", "ouch", "release"). Read from a terminal (non-canonical,
 * no echo: a key counts when pressed, no Enter; restored at the end and at
 * exit), a pipe or a FIFO (a foot switch's helper, a test). Polled by the
 * control thread, never blocking: poll() with no wait, then read(). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "knotmat/events.h"

struct cli_marks {
    int fd, own_fd, fifo, tty, ended;
    char keys[KM_MARK_COUNT]; /* keys[m]: the key of mark m */
};

/* one terminal at most is changed; restored by cli_marks_close or atexit */
static struct termios saved_tio;
static int saved_fd = -1;

static void restore_terminal(void)
{
    if (saved_fd < 0)
        return;
    /* put in the background meanwhile (Ctrl-Z, bg), the change would stop
     * us with SIGTTOU at exit: restored regardless */
    void (*was)(int) = signal(SIGTTOU, SIG_IGN);
    tcsetattr(saved_fd, TCSANOW, &saved_tio);
    signal(SIGTTOU, was);
    saved_fd = -1;
}

static int key_mode(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &saved_tio))
        return -1;
    t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* ISIG stays: Ctrl-C still ends the session */
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &t))
        return -1;
    saved_fd = fd;
    static int registered;
    if (!registered++)
        atexit(restore_terminal);
    return 0;
}

int cli_marks_keys_parse(const char *arg, char keys[KM_MARK_COUNT])
{
    if (!arg || strlen(arg) != KM_MARK_COUNT - 1)
        return -1;
    for (int m = 1; m < KM_MARK_COUNT; m++) {
        char k = arg[m - 1];
        if (k <= ' ' || k == 'q' || k == 'Q' || k == 127 || (k >= '1' && k <= '3'))
            return -1;
        for (int j = 1; j < m; j++)
            if (keys[j] == k)
                return -1;
        keys[m] = k;
    }
    return 0;
}

int cli_marks_open(const char *path, const char *keys, cli_marks **out, char *err, size_t len)
{
    *out = NULL;
    int fd = STDIN_FILENO, own = 0;
    /* no terminal, or one this process does not have in the foreground (a
     * job run with &: changing it would stop us with SIGTTOU): no keys
     * unless asked */
    if (!path && (!isatty(STDIN_FILENO) || tcgetpgrp(STDIN_FILENO) != getpgrp()))
        return 0;
    if (path && strcmp(path, "-")) {
        if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
            snprintf(err, len, "--marks %s: %s", path, strerror(errno));
            return -1;
        }
        own = 1;
    }
    cli_marks *m = calloc(1, sizeof *m);
    if (!m) {
        if (own)
            close(fd);
        snprintf(err, len, "out of memory");
        return -1;
    }
    m->fd = fd;
    m->own_fd = own;
    struct stat st;
    if (!fstat(fd, &st) && S_ISDIR(st.st_mode)) {
        snprintf(err, len, "--marks %s: a directory (a FIFO, a file or - for standard input)",
                 path);
        cli_marks_close(m);
        return -1;
    }
    m->fifo = own && S_ISFIFO(st.st_mode);
    m->tty = isatty(fd);
    if (cli_marks_keys_parse(keys ? keys : "tor", m->keys)) {
        snprintf(err, len, "--mark-keys '%s': three different keys (twitch, ouch, release), "
                 "not a space, q or 1-3", keys ? keys : "");
        cli_marks_close(m);
        return -1;
    }
    if (m->tty && tcgetpgrp(fd) == getpgrp())
        key_mode(fd); /* if refused: keys still arrive, after Enter */
    *out = m;
    return 0;
}

const char *cli_marks_help(const cli_marks *m, char *buf, size_t len)
{
    snprintf(buf, len, "keys: %c or 1 twitch, %c or 2 ouch, %c or 3 release, q end", m->keys[1],
             m->keys[2], m->keys[3]);
    return buf;
}

/* The mark of a byte: a key, its digit, else the key's capital (Caps Lock);
 * 0 for any other byte. */
static int key_mark(const cli_marks *m, char c)
{
    for (int k = 1; k < KM_MARK_COUNT; k++)
        if (c == m->keys[k] || c == (char)('0' + k))
            return k;
    for (int k = 1; k < KM_MARK_COUNT; k++)
        if (c >= 'A' && c <= 'Z' && c - 'A' + 'a' == m->keys[k])
            return k;
    return 0;
}

int cli_marks_poll(cli_marks *m, int *marks, int max, int *quit)
{
    *quit = 0;
    if (!m || m->ended)
        return 0;
    if (m->tty && tcgetpgrp(m->fd) != getpgrp())
        return 0; /* a background job's read of the terminal would stop it (SIGTTIN) */
    struct pollfd p = {.fd = m->fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP)))
        return 0;
    char buf[64];
    ssize_t n = read(m->fd, buf, sizeof buf < (size_t)max ? sizeof buf : (size_t)max);
    if ((n == 0 && !m->fifo) || (n < 0 && errno != EAGAIN && errno != EINTR))
        m->ended = 1; /* the pipe or file is done (a FIFO takes its next writer) */
    int got = 0;
    for (ssize_t i = 0; i < n && got < max; i++) {
        char c = buf[i];
        if (c == 'q' || c == 'Q') {
            *quit = 1;
            continue;
        }
        int k = key_mark(m, c);
        if (k)
            marks[got++] = k;
    }
    return got;
}

void cli_marks_close(cli_marks *m)
{
    if (!m)
        return;
    if (saved_fd == m->fd)
        restore_terminal();
    if (m->own_fd)
        close(m->fd);
    free(m);
}
