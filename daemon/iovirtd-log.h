/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <syslog.h>

#include "iovirt-util.h"

/* Logging at the boundary, once, with the cause.  Under systemd (stderr is
 * the journal) messages go to the journal with structured fields; otherwise
 * to stderr.  Each function returns the negative errno it was given, so
 * that "return log_error_errno(r, ...)" reads as it does in systemd. */

void log_set_max_level(int level);
int log_full_errno(int level, int error, const char *device, const char *fmt, ...) _printf_(4, 5);

#define log_debug(...) log_full_errno(LOG_DEBUG, 0, NULL, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, NULL, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, NULL, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, NULL, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, (error), NULL, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), NULL, __VA_ARGS__)
/* with an IOVIRT_DEVICE= journal field */
#define log_device_info(device, ...) log_full_errno(LOG_INFO, 0, (device), __VA_ARGS__)
