/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "iovirt-names.h"
#include "iovirt-sysfs.h"
#include "iovirt-util.h"
#include "iovirt-variant.h"

/* The kernel's names (scripts/mod/file2alias.c, do_pci_entry): aliases of
 * id_table entries marked PCI_ID_F_VFIO_DRIVER_OVERRIDE start "vfio_pci:";
 * vfio_pci is also the module of the plain vfio-pci driver. */
#define ALIAS_VFIO_PCI_LINE "alias vfio_pci:"
#define MODULE_VFIO_PCI "vfio_pci"
#define N_FIELDS 7
#define MODULE_NAME_MAX 55   /* the kernel's MODULE_NAME_LEN - 1 on 64-bit */

static const char *const field_names[N_FIELDS] = { "v", "d", "sv", "sd", "bc", "sc", "i" };

/* A slice of the alias text: nothing is copied while scanning. */
typedef struct Span {
        const char *s;
        size_t len;
} Span;

typedef struct Alias {
        Span line;                 /* the whole line, without its newline */
        Span fields[N_FIELDS];
        Span module;
} Alias;

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r';
}

static bool span_eq(Span a, const char *s) {
        return a.len == strlen(s) && memcmp(a.s, s, a.len) == 0;
}

static bool valid_module_name(Span m) {
        if (m.len == 0 || m.len > MODULE_NAME_MAX)
                return false;
        for (size_t i = 0; i < m.len; i++) {
                char c = m.s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-'))
                        return false;
        }
        return true;
}

/* Splits one "alias vfio_pci:PATTERN MODULE" line (line points at "alias",
 * end at its newline or the end of the text) the way libvirt's
 * virPCIDeviceAliasInfoNew does: each field runs up to the first
 * occurrence of the next field's name, the last up to a blank.  false for
 * a line that is not well formed. */
static bool parse_alias(const char *line, const char *end, Alias *ret) {
        const char *p = line + strlen(ALIAS_VFIO_PCI_LINE);
        const char *pattern_end = p;

        while (pattern_end < end && !is_blank(*pattern_end))
                pattern_end++;

        for (size_t i = 0; i < N_FIELDS; i++) {
                size_t kl = strlen(field_names[i]);
                if ((size_t) (pattern_end - p) < kl || memcmp(p, field_names[i], kl) != 0)
                        return false;
                p += kl;
                const char *next = pattern_end;
                if (i + 1 < N_FIELDS) {
                        next = memmem(p, (size_t) (pattern_end - p), field_names[i + 1], strlen(field_names[i + 1]));
                        if (!next)
                                return false;
                }
                if (next == p)
                        return false;   /* an empty field */
                ret->fields[i] = (Span) { p, (size_t) (next - p) };
                p = next;
        }

        /* the module, alone after the pattern */
        while (p < end && is_blank(*p))
                p++;
        const char *m = p;
        while (p < end && !is_blank(*p))
                p++;
        ret->module = (Span) { m, (size_t) (p - m) };
        while (p < end && is_blank(*p))
                p++;
        if (p != end || !valid_module_name(ret->module))
                return false;

        ret->line = (Span) { line, (size_t) (end - line) };
        while (ret->line.len > 0 && is_blank(ret->line.s[ret->line.len - 1]))
                ret->line.len--;
        return true;
}

typedef enum Match { NO_MATCH, MATCH, DEPENDS_ON_UNKNOWN } Match;

/* virPCIDeviceAliasInfoMatch: a field matches when it is exactly "*" (and
 * counts as a wildcard) or equals the device's field.  Fields the model
 * could not read (known[i] false) match nothing but "*". */
static Match match_alias(const Alias *a, char dev[N_FIELDS][9], const bool known[N_FIELDS], unsigned *ret_wildcards) {
        unsigned wildcards = 0;
        bool unknown = false;

        for (size_t i = 0; i < N_FIELDS; i++) {
                if (span_eq(a->fields[i], "*"))
                        wildcards++;
                else if (!known[i])
                        unknown = true;
                else if (!span_eq(a->fields[i], dev[i]))
                        return NO_MATCH;
        }
        *ret_wildcards = wildcards;
        return unknown ? DEPENDS_ON_UNKNOWN : MATCH;
}

void iovirt_variant_choice_clear(IovirtVariantChoice *c) {
        if (!c)
                return;
        free(c->driver);
        free(c->module);
        free(c->alias);
        free(c->why);
        *c = (IovirtVariantChoice) {};
}

int iovirt_variant_choose(const char *alias_text, size_t len, const IovirtDevice *d, IovirtVariantChoice *ret) {
        _cleanup_(iovirt_variant_choice_clear) IovirtVariantChoice c = {};
        char dev[N_FIELDS][9];
        bool known[N_FIELDS];
        static const char needle[] = "\n" ALIAS_VFIO_PCI_LINE;
        const size_t prefix_len = sizeof(needle) - 2;   /* without the newline */
        const char *end;
        Alias best = {}, unknown = {};
        bool have_best = false, have_unknown = false;
        unsigned best_wildcards = N_FIELDS + 1;
        size_t n_matched = 0;

        if (!alias_text)
                len = 0;
        end = alias_text ? alias_text + len : NULL;

        if (!d->ids_known)
                return iovirt_set_reason(&ret->why, -ENODATA,
                                         "cannot choose the VFIO driver of %s: its vendor and device IDs "
                                         "could not be read",
                                         d->name);

        /* the device's modalias, field by field, as the kernel writes it
         * (drivers/pci/pci-sysfs.c, modalias_show) */
        snprintf(dev[0], sizeof(dev[0]), "%08X", d->vendor);
        snprintf(dev[1], sizeof(dev[1]), "%08X", d->device);
        snprintf(dev[2], sizeof(dev[2]), "%08X", d->subsys_vendor);
        snprintf(dev[3], sizeof(dev[3]), "%08X", d->subsys_device);
        snprintf(dev[4], sizeof(dev[4]), "%02X", (d->class_code >> 16) & 0xff);
        snprintf(dev[5], sizeof(dev[5]), "%02X", (d->class_code >> 8) & 0xff);
        snprintf(dev[6], sizeof(dev[6]), "%02X", d->class_code & 0xff);
        /* Vendor and device come from config space or, for VFs and unreadable
         * headers, from the kernel's attributes; subsystem and class only
         * from a readable header. */
        for (size_t i = 0; i < N_FIELDS; i++)
                known[i] = i < 2 || d->caps.header_known;

        /* Every line that starts "alias vfio_pci:", the first line too
         * (libvirt looks only after a newline; depmod's file starts with a
         * comment, so that makes no difference on real files). */
        const char *line = len >= prefix_len && memcmp(alias_text, needle + 1, prefix_len) == 0 ? alias_text : NULL;
        const char *p = alias_text;
        while (len > 0) {
                if (!line) {
                        const char *hit = memmem(p, (size_t) (end - p), needle, sizeof(needle) - 1);
                        if (!hit)
                                break;
                        line = hit + 1;
                }
                const char *eol = memchr(line, '\n', (size_t) (end - line));
                if (!eol)
                        eol = end;

                Alias a;
                unsigned wildcards;
                if (parse_alias(line, eol, &a))
                        switch (match_alias(&a, dev, known, &wildcards)) {
                        case MATCH:
                                n_matched++;
                                /* fewest wildcards; the first one wins a tie */
                                if (wildcards < best_wildcards) {
                                        best = a;
                                        best_wildcards = wildcards;
                                        have_best = true;
                                }
                                break;
                        case DEPENDS_ON_UNKNOWN:
                                if (!have_unknown) {
                                        unknown = a;
                                        have_unknown = true;
                                }
                                break;
                        case NO_MATCH:
                                break;
                        }

                p = eol;
                line = NULL;
        }

        if (have_unknown)
                return iovirt_set_reason(&ret->why, -ENODATA,
                                         "cannot choose the VFIO driver of %s: the kernel's alias %.*s depends on "
                                         "its subsystem IDs or class, which could not be read",
                                         d->name, (int) unknown.line.len, unknown.line.s);

        bool variant = have_best && !span_eq(best.module, MODULE_VFIO_PCI);
        c.module = have_best ? strndup(best.module.s, best.module.len) : strdup(MODULE_VFIO_PCI);
        if (!c.module)
                return -ENOMEM;
        c.driver = strdup(variant ? c.module : DRIVER_VFIO_PCI);
        if (!c.driver)
                return -ENOMEM;
        if (have_best) {
                c.alias = strndup(best.line.s, best.line.len);
                if (!c.alias)
                        return -ENOMEM;
        }
        c.wildcards = have_best ? best_wildcards : N_FIELDS;
        c.variant = variant;

        int r;
        if (variant) {
                const char *pattern = best.line.s + prefix_len;
                int pattern_len = (int) (best.module.s - pattern);
                while (pattern_len > 0 && is_blank(pattern[pattern_len - 1]))
                        pattern_len--;
                if (n_matched > 1)
                        r = asprintf(&c.why,
                                     "%s: the kernel's vfio_pci alias %.*s matches %04x:%04x (libvirt's rule: the most "
                                     "specific variant driver, %u of 7 fields wildcards; %zu other matching "
                                     "alias%s had more, or came later)",
                                     c.driver, pattern_len, pattern, d->vendor, d->device, best_wildcards,
                                     n_matched - 1, n_matched - 1 == 1 ? "" : "es");
                else
                        r = asprintf(&c.why,
                                     "%s: the kernel's vfio_pci alias %.*s matches %04x:%04x (libvirt's rule: the most "
                                     "specific variant driver, %u of 7 fields wildcards)",
                                     c.driver, pattern_len, pattern, d->vendor, d->device, best_wildcards);
        } else
                r = asprintf(&c.why, "%s: no VFIO variant driver of this kernel matches %04x:%04x%s", DRIVER_VFIO_PCI,
                             d->vendor, d->device, have_best ? " (only vfio_pci's own catch-all alias)" : "");
        if (r < 0) {
                c.why = NULL;
                return -ENOMEM;
        }

        *ret = c;
        c = (IovirtVariantChoice) {};
        return 0;
}

/* The running kernel's release: the testbed's osrelease, or uname(2)'s. */
static int kernel_release(char **ret, char **why) {
        _cleanup_free_ char *path = iovirt_root_path(PROC_OSRELEASE), *s = NULL;
        if (!path)
                return -ENOMEM;
        int r = iovirt_read_file(path, &s);
        if (r == -ENOENT) {
                struct utsname u;
                if (uname(&u) < 0)
                        return iovirt_set_reason(why, -errno, "cannot tell the running kernel's release: uname: %s",
                                                 strerror(errno));
                s = strdup(u.release);
                if (!s)
                        return -ENOMEM;
        } else if (r == -ENOMEM)
                return r;
        else if (r < 0)
                return iovirt_set_reason(why, r, "cannot tell the running kernel's release: %s: %s", path,
                                         strerror(-r));
        s[strcspn(s, "\n")] = '\0';
        if (!*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return iovirt_set_reason(why, -EINVAL, "the running kernel's release '%s' is not a directory name", s);
        *ret = TAKE_PTR(s);
        return 0;
}

int iovirt_variant_for_device(const IovirtDevice *d, IovirtVariantChoice *ret) {
        _cleanup_free_ char *release = NULL, *rel = NULL, *path = NULL, *text = NULL;
        size_t size;
        int r;

        r = kernel_release(&release, &ret->why);
        if (r < 0)
                return r;
        if (asprintf(&rel, LIB_MODULES "/%s/" MODULES_ALIAS, release) < 0) {
                rel = NULL;
                return -ENOMEM;
        }
        path = iovirt_root_path(rel);
        if (!path)
                return -ENOMEM;

        /* Read once, whole; nothing is allocated per line after that. */
        r = iovirt_read_file_sized(path, &text, &size);
        if (r == -ENOENT) {
                _cleanup_(iovirt_variant_choice_clear) IovirtVariantChoice c = {};
                c.driver = strdup(DRIVER_VFIO_PCI);
                c.module = strdup(MODULE_VFIO_PCI);
                c.wildcards = N_FIELDS;
                if (!c.driver || !c.module ||
                    asprintf(&c.why,
                             "%s: %s is not there, so no VFIO variant driver can be chosen "
                             "(libvirt 10.0 and later cannot detach a managed device without it)",
                             DRIVER_VFIO_PCI, path) < 0) {
                        c.why = NULL;
                        return -ENOMEM;
                }
                *ret = c;
                c = (IovirtVariantChoice) {};
                return 0;
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return iovirt_set_reason(&ret->why, r, "cannot read %s: %s", path, strerror(-r));

        return iovirt_variant_choose(text, size, d, ret);
}
