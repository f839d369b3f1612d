/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <systemd/sd-journal.h>

#include "iovirtd-log.h"

static int max_level = LOG_INFO;

void log_set_max_level(int level) {
        max_level = level;
}

int log_full_errno(int level, int error, const char *device, const char *fmt, ...) {
        char msg[2048];
        va_list ap;
        int saved = errno;

        if (level > max_level)
                return error < 0 ? error : -abs(error);
        /* %m in fmt means the error given, as in systemd */
        errno = abs(error);
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        if (getenv("JOURNAL_STREAM")) {
                /* structured: the message, its priority, errno and device */
                char m[2100], prio[16], err[32], dev[128];
                struct iovec iov[4];
                size_t n = 0;
                snprintf(m, sizeof(m), "MESSAGE=%s", msg);
                iov[n++] = (struct iovec) { m, strlen(m) };
                snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
                iov[n++] = (struct iovec) { prio, strlen(prio) };
                if (error) {
                        snprintf(err, sizeof(err), "ERRNO=%d", abs(error));
                        iov[n++] = (struct iovec) { err, strlen(err) };
                }
                if (device) {
                        snprintf(dev, sizeof(dev), "IOVIRT_DEVICE=%s", device);
                        iov[n++] = (struct iovec) { dev, strlen(dev) };
                }
                sd_journal_sendv(iov, (int) n);
        } else
                fprintf(stderr, "iovirtd: %s\n", msg);
        errno = saved;
        return error < 0 ? error : -abs(error);
}
