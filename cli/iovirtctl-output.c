/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>

#include "iovirtctl.h"

/* ---- failures ---- */

static const char *const error_names[_CTL_ERROR_MAX] = {
        [CTL_ERROR_USAGE] = "usage",
        [CTL_ERROR_NO_SUCH_DEVICE] = "no-such-device",
        [CTL_ERROR_NO_DAEMON] = "no-daemon",
        [CTL_ERROR_HOST_UNREADABLE] = "host-unreadable",
        [CTL_ERROR_BAD_ANSWER] = "bad-answer",
        [CTL_ERROR_FAILED] = "failed",
};

/* Whether a document went to stdout: then a failing exit is its answer
 * (check with a FAIL, a refused --dry-run), and no error object follows. */
static bool json_printed;

const char *ctl_error_name(CtlError kind) {
        return kind < _CTL_ERROR_MAX ? error_names[kind] : error_names[CTL_ERROR_FAILED];
}

_printf_(4, 0) static int vfail(Ctl *c, const char *name, json_object *fields, const char *fmt, va_list ap) {
        _cleanup_(json_object_putp) json_object *f = fields;
        _cleanup_free_ char *message = NULL;
        int status = streq_ptr(name, error_names[CTL_ERROR_USAGE]) ? EXIT_USAGE : 1;

        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        if (!c->json) {
                fprintf(stderr, "iovirtctl: %s\n", message ? message : "out of memory");
                /* iovirtd's answer: its D-Bus error name, as the README promises */
                if (strchr(name, '.'))
                        fprintf(stderr, "iovirtctl: D-Bus error: %s\n", name);
                return status;
        }
        if (c->error_name)
                return status;          /* the first failure is the one to tell */
        c->error_name = strdup(name);
        c->error_message = TAKE_PTR(message);
        c->error_fields = TAKE_PTR(f);
        return status;
}

int ctl_fail(Ctl *c, CtlError kind, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int status = vfail(c, ctl_error_name(kind), NULL, fmt, ap);
        va_end(ap);
        return status;
}

int ctl_fail_named(Ctl *c, const char *name, json_object *fields, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int status = vfail(c, name, fields, fmt, ap);
        va_end(ap);
        return status;
}

int ctl_finish(Ctl *c, int status) {
        if (!c->json || status == 0 || json_printed)
                return status;
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *e = json_object_new_object();
        if (!root || !e) {
                json_object_put(e);
                fputs("{\"error\": {\"name\": \"failed\", \"message\": \"out of memory\"}}\n", stdout);
                return status;
        }
        json_object_object_add(root, "error", e);
        /* a failure nobody named (a verb that only wrote to stderr): still one object */
        json_object_object_add(e, "name", json_object_new_string(c->error_name ? c->error_name
                                                                               : error_names[CTL_ERROR_FAILED]));
        json_object_object_add(e, "message",
                               json_object_new_string(c->error_message ? c->error_message
                                                      : c->error_name  ? "out of memory"
                                                                       : "the command failed; see standard error"));
        if (c->error_fields) {
                json_object_object_foreach(c->error_fields, key, value)
                        json_object_object_add(e, key, json_object_get(value));
        }
        ctl_print_json(root);
        return status;
}

/* ---- the model ---- */

int ctl_load(Ctl *c) {
        int r;
        if (c->host)
                return 0;
        if (!c->direct) {
                _cleanup_free_ char *why = NULL;
                r = ctl_load_from_daemon(c, &why);
                if (r < 0 && r != -ENOTCONN)
                        return r;
                if (r == -ENOTCONN)
                        fprintf(stderr, "iovirtctl: iovirtd is not running (%s); reading the host directly\n",
                                why ? why : "not on the bus");
        }
        if (!c->host) {
                r = iovirt_host_discover(&c->host);
                if (r < 0) {
                        ctl_fail(c, r == -ENOMEM ? CTL_ERROR_FAILED : CTL_ERROR_HOST_UNREADABLE,
                                 "cannot read the host's PCI devices: %s", strerror(-r));
                        return r;
                }
        }
        /* what the scan skipped: the user should know the list is short */
        for (size_t i = 0; i < c->host->n_problems; i++)
                fprintf(stderr, "iovirtctl: %s\n", c->host->problems[i]);
        r = iovirt_verdicts_compute(c->host, &c->verdicts);
        if (r < 0) {
                ctl_fail(c, CTL_ERROR_FAILED, "cannot compute isolation verdicts: %s", strerror(-r));
                return r;
        }
        if (c->device && !c->from_daemon) {
                _cleanup_free_ char *reason = NULL;
                size_t i;
                r = iovirt_host_lookup(c->host, c->device, &i, &reason);
                if (r < 0) {
                        ctl_fail(c, r == -ENOMEM ? CTL_ERROR_FAILED : CTL_ERROR_NO_SUCH_DEVICE, "%s",
                                 reason ? reason : strerror(-r));
                        return r;
                }
        }
        return 0;
}

void ctl_print_json(json_object *o) {
        fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE),
              stdout);
        fputc('\n', stdout);
        json_printed = true;
}

void ctl_cell(const char *s, unsigned width, bool pad) {
        size_t l = strlen(s);
        if (l > width && width > 3)
                printf("%.*s...", (int) (width - 3), s);
        else
                printf(pad ? "%-*s" : "%.*s", (int) width, s);
}

const char *ctl_describe(Ctl *c, const IovirtDevice *d, char *buf, size_t size) {
        char cls[128], name[256];
        const char *cn = iovirt_class_name(c->host, d->class_code, cls, sizeof(cls));
        const char *dn = iovirt_host_device_name(c->host, d, name, sizeof(name));
        if (!cn)
                snprintf(cls, sizeof(cls), "Class %04x", d->class_code >> 8), cn = cls;
        if (dn)
                snprintf(buf, size, "%s: %s", cn, dn);
        else if (d->ids_known)
                snprintf(buf, size, "%s: device %04x:%04x", cn, d->vendor, d->device);
        else
                snprintf(buf, size, "%s: unknown device", cn);
        return buf;
}

const char *ctl_device_name(Ctl *c, const IovirtDevice *d, char *buf, size_t size) {
        char name[256];
        const char *dn = iovirt_host_device_name(c->host, d, name, sizeof(name));
        if (dn)
                snprintf(buf, size, "%s", dn);
        else if (d->ids_known)
                snprintf(buf, size, "device %04x:%04x", d->vendor, d->device);
        else
                snprintf(buf, size, "unknown device");
        return buf;
}

void ctl_wrap_at(Ctl *c, unsigned col, unsigned indent, const char *text) {
        unsigned start = col;
        const char *p = text;
        while (*p) {
                size_t l = strcspn(p, " ");
                if (col > start && col + 1 + l > c->columns) {
                        printf("\n%*s", (int) indent, "");
                        col = start = indent;
                } else if (col > start) {
                        putchar(' ');
                        col++;
                }
                printf("%.*s", (int) l, p);
                col += (unsigned) l;
                p += l;
                p += strspn(p, " ");
        }
        putchar('\n');
}

void ctl_wrap(Ctl *c, unsigned indent, const char *text) {
        printf("%*s", (int) indent, "");
        ctl_wrap_at(c, indent, indent + 2, text);
}

static void list_addresses(Ctl *c, char *buf, size_t size, const size_t *idx, size_t n) {
        size_t l = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < n && l < size; i++)
                l += (size_t) snprintf(buf + l, size - l, "%s%s", i ? ", " : "", c->host->devices[idx[i]].name);
}

void ctl_explain_group(Ctl *c, size_t gi, unsigned indent) {
        const IovirtGroupVerdict *gv = &c->verdicts->groups[gi];
        char text[8192], part[512];

        if (gv->isolation == IOVIRT_ISOLATION_UNKNOWN) {
                const IovirtDevice *d = &c->host->devices[gv->unknown_device];
                snprintf(text, sizeof(text), "unknown: %s: %s", d->name,
                         d->problem ? d->problem : "its config space could not be read");
                ctl_wrap(c, indent, text);
                return;
        }
        if (gv->n_peers > 0) {
                int l = snprintf(text, sizeof(text), "reachable by DMA from outside the group: ");
                list_addresses(c, text + l, sizeof(text) - (size_t) l, gv->peers, gv->n_peers);
                ctl_wrap(c, indent, text);
        }
        if (gv->n_peers > 0 || gv->isolation == IOVIRT_SHARED)
                for (size_t i = 0; i < gv->n_causes; i++) {
                        const IovirtCause *k = &gv->causes[i];
                        /* one line for all functions of one multifunction device */
                        if (i > 0 && k->kind == IOVIRT_CAUSE_MULTIFUNCTION &&
                            gv->causes[i - 1].kind == IOVIRT_CAUSE_MULTIFUNCTION &&
                            strncmp(c->host->devices[k->device].name,
                                    c->host->devices[gv->causes[i - 1].device].name, 10) == 0)
                                continue;
                        iovirt_cause_text(c->host, k, part, sizeof(part));
                        snprintf(text, sizeof(text), "because %s", part);
                        ctl_wrap(c, indent, text);
                }
}
