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

void iovirt_variant_aliases_clear(IovirtAliases *a) {
        if (!a)
                return;
        free(a->path);
        free(a->text);
        free(a->why);
        *a = (IovirtAliases) {};
}

int iovirt_variant_aliases_read(IovirtAliases *ret) {
        _cleanup_(iovirt_variant_aliases_clear) IovirtAliases a = {};
        _cleanup_free_ char *release = NULL, *rel = NULL;
        int r;

        r = kernel_release(&release, &a.why);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (!a.why)
                        return -ENOMEM;
                a.error = r;
                *ret = a;
                a = (IovirtAliases) {};
                return 0;
        }
        if (asprintf(&rel, LIB_MODULES "/%s/" MODULES_ALIAS, release) < 0) {
                rel = NULL;
                return -ENOMEM;
        }
        a.path = iovirt_root_path(rel);
        if (!a.path)
                return -ENOMEM;

        /* Read once, whole; nothing is allocated per line after that. */
        r = iovirt_read_file_sized(a.path, &a.text, &a.size);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -ENOENT) {
                a.error = iovirt_set_reason(&a.why, r, "cannot read %s: %s", a.path, strerror(-r));
                if (!a.why)
                        return -ENOMEM;
        }
        if (r < 0) {
                a.text = mfree(a.text);
                a.size = 0;
        }
        *ret = a;
        a = (IovirtAliases) {};
        return 0;
}

int iovirt_variant_for_device_in(const IovirtAliases *a, const IovirtDevice *d, IovirtVariantChoice *ret) {
        if (a->error < 0) {
                free(ret->why);
                ret->why = strdup(strna(a->why));
                return ret->why ? a->error : -ENOMEM;
        }
        if (!a->text) {
                _cleanup_(iovirt_variant_choice_clear) IovirtVariantChoice c = {};
                c.driver = strdup(DRIVER_VFIO_PCI);
                c.module = strdup(MODULE_VFIO_PCI);
                c.wildcards = N_FIELDS;
                if (!c.driver || !c.module ||
                    asprintf(&c.why,
                             "%s: %s is not there, so no VFIO variant driver can be chosen "
                             "(libvirt 10.0 and later cannot detach a managed device without it)",
                             DRIVER_VFIO_PCI, a->path) < 0) {
                        c.why = NULL;
                        return -ENOMEM;
                }
                *ret = c;
                c = (IovirtVariantChoice) {};
                return 0;
        }
        return iovirt_variant_choose(a->text, a->size, d, ret);
}

int iovirt_variant_for_device(const IovirtDevice *d, IovirtVariantChoice *ret) {
        _cleanup_(iovirt_variant_aliases_clear) IovirtAliases a = {};
        int r = iovirt_variant_aliases_read(&a);
        if (r < 0)
                return r;
        return iovirt_variant_for_device_in(&a, d, ret);
}

bool iovirt_variant_name_valid(const char *name) {
        /* not starting with '-', which modprobe would take for an option */
        return name && name[0] != '-' && valid_module_name((Span) { name, strlen(name) });
}

bool iovirt_variant_is_vfio(const char *driver) {
        static const char suffix[] = "_vfio_pci";
        size_t l = driver ? strlen(driver) : 0;
        return streq_ptr(driver, DRIVER_VFIO_PCI) ||
               (l > sizeof(suffix) - 1 && strcmp(driver + l - (sizeof(suffix) - 1), suffix) == 0);
}

/* Is module the module of a well-formed "alias vfio_pci:" line of the text? */
static bool alias_module(const char *text, size_t len, const char *module) {
        static const char needle[] = "\n" ALIAS_VFIO_PCI_LINE;
        if (!text)
                return false;
        const char *end = text + len;
        for (const char *p = text; p < end;) {
                const char *line;
                if (p == text && (size_t) (end - p) >= sizeof(needle) - 2 &&
                    memcmp(p, needle + 1, sizeof(needle) - 2) == 0)
                        line = p;
                else {
                        const char *hit = memmem(p, (size_t) (end - p), needle, sizeof(needle) - 1);
                        if (!hit)
                                return false;
                        line = hit + 1;
                }
                const char *eol = memchr(line, '\n', (size_t) (end - line));
                if (!eol)
                        eol = end;
                Alias a;
                if (parse_alias(line, eol, &a) && span_eq(a.module, module))
                        return true;
                p = eol;
        }
        return false;
}

int iovirt_variant_asked(const IovirtAliases *a, const IovirtDevice *d, const char *name, IovirtVariantChoice *ret) {
        _cleanup_(iovirt_variant_choice_clear) IovirtVariantChoice c = {}, kernel = {};
        int r;

        if (!iovirt_variant_name_valid(name))
                return iovirt_set_reason(&ret->why, -EINVAL,
                                         "'%s' is not a driver name (1-%d characters: letters, digits, '_' and "
                                         "'-', not starting with '-')",
                                         name, MODULE_NAME_MAX);
        /* module names are written with '_', driver names as the driver registers them */
        c.module = strdup(name);
        if (!c.module)
                return -ENOMEM;
        for (char *p = c.module; *p; p++)
                if (*p == '-')
                        *p = '_';
        c.variant = !streq_ptr(c.module, MODULE_VFIO_PCI);
        /* a variant registers its pci_driver as its module's name (see above) */
        c.driver = strdup(c.variant ? c.module : DRIVER_VFIO_PCI);
        if (!c.driver)
                return -ENOMEM;
        c.wildcards = N_FIELDS;

        /* a VFIO driver by its name, or by a vfio_pci alias of its module */
        if (c.variant && !iovirt_variant_is_vfio(c.module)) {
                if (a->error < 0)
                        return iovirt_set_reason(&ret->why, a->error,
                                                 "cannot tell whether %s is a VFIO driver: %s", name, strna(a->why));
                if (!alias_module(a->text, a->size, c.module))
                        return iovirt_set_reason(&ret->why, -EINVAL,
                                                 "%s is not a VFIO driver: only vfio-pci and VFIO variant drivers (a "
                                                 "name ending in _vfio_pci, or a module with a vfio_pci alias in %s) "
                                                 "may be bound to give a device to a VM",
                                                 name, a->path ? a->path : "modules.alias");
        }

        /* what the kernel would have chosen, for the why; not knowing it is no error here */
        r = a->error < 0 ? a->error : iovirt_variant_for_device_in(a, d, &kernel);
        if (r == -ENOMEM)
                return r;
        if (r >= 0 && streq_ptr(kernel.driver, c.driver))
                r = asprintf(&c.why, "%s: as asked (--driver), which is also the kernel's own choice", c.driver);
        else if (r >= 0)
                r = asprintf(&c.why, "%s: as asked (--driver), in place of the kernel's own choice, %s", c.driver,
                             kernel.driver);
        else
                r = asprintf(&c.why, "%s: as asked (--driver)", c.driver);
        if (r < 0) {
                c.why = NULL;
                return -ENOMEM;
        }
        *ret = c;
        c = (IovirtVariantChoice) {};
        return 0;
}
