/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "iovirt-domain.h"
#include "iovirt-names.h"

/* ---- libxml2 objects under our cleanup idiom ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDoc *, xmlFreeDoc);

/* libxml2 2.12 made the error it passes to a handler const */
#if LIBXML_VERSION >= 21200
typedef const xmlError *XmlErrorArg;
#else
typedef xmlError *XmlErrorArg;
#endif

/* ---- libxml2's errors: kept, never printed ----
 *
 * libxml2 prints to stderr unless told otherwise, and reports running out
 * of memory only as an error, sometimes after handing back what it had so
 * far.  For the length of one parse this thread's handlers (libxml2 keeps
 * them per thread) are ours: the first error becomes the sentence, and any
 * memory error makes the whole parse -ENOMEM, whatever came back. */

typedef struct XmlErrors {
        xmlStructuredErrorFunc saved_structured;
        void *saved_structured_context;
        xmlGenericErrorFunc saved_generic;
        void *saved_generic_context;
        bool oom;              /* libxml2 (or this collector) ran out of memory */
        bool failed;           /* an error, not a warning */
        int line;              /* the first error's */
        char *message;         /* the first error's, on one line; NULL: none */
} XmlErrors;

static void xml_errors_collect(void *userdata, XmlErrorArg e) {
        XmlErrors *c = userdata;

        if (!e)
                return;
        if (e->code == XML_ERR_NO_MEMORY) {
                c->oom = true;
                return;
        }
        if (e->level < XML_ERR_ERROR || c->failed)
                return;
        c->failed = true;
        c->line = e->line;
        if (!e->message)
                return;
        c->message = strdup(e->message);
        if (!c->message) {
                c->oom = true;
                return;
        }
        /* "Input is not proper UTF-8, indicate encoding !\nBytes: 0xE9 ...\n": one line */
        size_t l = strlen(c->message);
        while (l > 0 && strchr(" \t\r\n", c->message[l - 1]))
                c->message[--l] = 0;
        for (char *p = c->message; (p = strpbrk(p, "\r\n")); p++)
                *p = ' ';
}

_printf_(2, 3) static void xml_generic_ignore(void *ctx, const char *fmt, ...) {
}

static void xml_errors_begin(XmlErrors *c) {
        *c = (XmlErrors) {
                .saved_structured = xmlStructuredError,
                .saved_structured_context = xmlStructuredErrorContext,
                .saved_generic = xmlGenericError,
                .saved_generic_context = xmlGenericErrorContext,
        };
        xmlSetStructuredErrorFunc(c, xml_errors_collect);
        xmlSetGenericErrorFunc(c, xml_generic_ignore);
}

static void xml_errors_end(XmlErrors *c) {
        xmlSetStructuredErrorFunc(c->saved_structured_context, c->saved_structured);
        xmlSetGenericErrorFunc(c->saved_generic_context, c->saved_generic);
        c->message = mfree(c->message);
}

/* ---- small readers ---- */

/* A value quoted in a sentence, cut at 64 bytes on a UTF-8 character
 * boundary (libxml2 hands out valid UTF-8 only) */
#define QUOTE_MAX (64 + sizeof("..."))
static const char *quote(const char *s, char buf[static QUOTE_MAX]) {
        size_t l = strlen(s);
        if (l < QUOTE_MAX) {
                memcpy(buf, s, l + 1);
                return buf;
        }
        l = 64;
        while (l > 0 && ((unsigned char) s[l] & 0xc0) == 0x80)
                l--;
        memcpy(buf, s, l);
        strcpy(buf + l, "...");
        return buf;
}

/* ---- the tree, read without libxml2 allocating ----
 *
 * Once the document is built, nothing here asks libxml2 for memory: its
 * XPath engine (2.9) frees twice when an allocation fails inside it, and
 * its string getters cannot tell "none" from "no memory".  The paths
 * libvirt's XPath expressions name are simple enough to walk. */

/* The first element child of n named name, in no namespace; NULL: none */
static xmlNode *child(const xmlNode *n, const char *name) {
        for (xmlNode *c = n->children; c; c = c->next)
                if (c->type == XML_ELEMENT_NODE && !c->ns && xmlStrEqual(c->name, (const xmlChar *) name))
                        return c;
        return NULL;
}

/* The next element after c named name among its siblings; NULL: none */
static xmlNode *next_named(const xmlNode *c, const char *name) {
        for (xmlNode *s = c->next; s; s = s->next)
                if (s->type == XML_ELEMENT_NODE && !s->ns && xmlStrEqual(s->name, (const xmlChar *) name))
                        return s;
        return NULL;
}

#define FOREACH_CHILD(c, n, name) for (xmlNode *c = child((n), (name)); c; c = next_named(c, (name)))

/* The first name/sub in document order, as libvirt's "./name/sub[1]" finds it */
static xmlNode *grandchild(const xmlNode *n, const char *name, const char *sub) {
        FOREACH_CHILD(c, n, name) {
                xmlNode *g = child(c, sub);
                if (g)
                        return g;
        }
        return NULL;
}

/* The node after c in document order below top (not top's siblings); NULL at the end */
static xmlNode *walk_next(xmlNode *c, const xmlNode *top) {
        if (c->type == XML_ELEMENT_NODE && c->children)
                return c->children;
        for (; c && c != top; c = c->parent)
                if (c->next)
                        return c->next;
        return NULL;
}

/* The text below n (an element or an attribute), as XPath's string() reads
 * it: every text and CDATA node, in document order.  NULL: no memory. */
static char *text_of(const xmlNode *n) {
        size_t len = 0;
        for (xmlNode *c = n->children; c; c = walk_next(c, n))
                if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
                        len += strlen((const char *) c->content);
        char *s = malloc(len + 1), *p = s;
        if (!s)
                return NULL;
        for (xmlNode *c = n->children; c; c = walk_next(c, n))
                if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
                        p = stpcpy(p, (const char *) c->content);
        *p = 0;
        return s;
}

/* n's attribute name (in no namespace): 1 and its value in *ret, 0 and
 * NULL when n has none */
static int attr_get(const xmlNode *n, const char *name, char **ret) {
        for (xmlAttr *a = n->properties; a; a = a->next)
                if (!a->ns && xmlStrEqual(a->name, (const xmlChar *) name)) {
                        if (!(*ret = text_of((const xmlNode *) a)))
                                return -ENOMEM;
                        return 1;
                }
        *ret = NULL;
        return 0;
}

/* The same, NULL also when empty */
static int attr_nonempty(const xmlNode *n, const char *name, char **ret) {
        int r = attr_get(n, name, ret);
        if (r > 0 && !**ret) {
                *ret = mfree(*ret);
                r = 0;
        }
        return r;
}

static bool ascii_caseeq(const char *a, const char *b) {
        for (;; a++, b++) {
                char x = *a >= 'A' && *a <= 'Z' ? (char) (*a - 'A' + 'a') : *a;
                char y = *b >= 'A' && *b <= 'Z' ? (char) (*b - 'A' + 'a') : *b;
                if (x != y)
                        return false;
                if (!x)
                        return true;
        }
}

/* ---- sizes, as libvirt reads them (virDomainParseMemory, virScaleInteger) ---- */

/* A unit's bytes: none is KiB; b, byte, bytes; k, KiB ... e, EiB (1024^n);
 * KB ... EB (1000^n); case does not matter. -EINVAL: unknown. */
static int unit_scale(const char *unit, uint64_t *ret) {
        if (!unit || !*unit) {
                *ret = 1024;
                return 0;
        }
        if (ascii_caseeq(unit, "b") || ascii_caseeq(unit, "byte") || ascii_caseeq(unit, "bytes")) {
                *ret = 1;
                return 0;
        }
        uint64_t base;
        if (!unit[1] || ascii_caseeq(unit + 1, "ib"))
                base = 1024;
        else if ((unit[1] == 'b' || unit[1] == 'B') && !unit[2])
                base = 1000;
        else
                return -EINVAL;
        static const char prefixes[] = "kmgtpe";
        char p = unit[0] >= 'A' && unit[0] <= 'Z' ? (char) (unit[0] - 'A' + 'a') : unit[0];
        const char *at = strchr(prefixes, p);
        if (!at)
                return -EINVAL;
        uint64_t scale = 1;
        for (const char *i = prefixes; i <= at; i++)
                scale *= base;
        *ret = scale;
        return 0;
}

/* The size n holds, in bytes rounded up to whole KiB as libvirt keeps it:
 * 1 and *ret; 0 when n is empty (libvirt's "not set").  what names n. */
static int parse_size(const xmlNode *n, const char *what, uint64_t *ret, char **reason) {
        _cleanup_free_ char *text = text_of(n), *unit = NULL;
        char q[QUOTE_MAX];

        if (!text)
                return -ENOMEM;
        if (attr_get(n, "unit", &unit) < 0)
                return -ENOMEM;

        /* the number, decimal, between any white space */
        const char *s = text + strspn(text, " \t\r\n");
        size_t len = strcspn(s, " \t\r\n");
        bool trailing = s[len + strspn(s + len, " \t\r\n")];
        if (len == 0)
                return 0;
        if (trailing || strspn(s, "0123456789") != len)
                return iovirt_set_reason(reason, -EBADMSG, "the domain's %s is '%s', not a whole number of bytes or "
                                         "units", what, quote(text, q));

        uint64_t scale;
        if (unit_scale(unit, &scale) < 0)
                return iovirt_set_reason(reason, -EBADMSG, "the domain's %s has unit='%s', which libvirt does not "
                                         "know (b, KB, k or KiB, MB, M or MiB, ... EB, E or EiB)", what,
                                         quote(unit, q));

        uint64_t v = 0;
        bool over = false;
        for (size_t i = 0; i < len && !over; i++) {
                unsigned digit = (unsigned) (s[i] - '0');
                if (v > (UINT64_MAX - digit) / 10)
                        over = true;
                else
                        v = v * 10 + digit;
        }
        if (over || v > IOVIRT_DOMAIN_MEMORY_MAX / scale)
                return iovirt_set_reason(reason, -ERANGE, "the domain's %s of %.*s %s is more than libvirt takes (at "
                                         "most %" PRIu64 " KiB)", what, (int) (len < 64 ? len : 64), s,
                                         unit ? unit : "KiB", IOVIRT_DOMAIN_MEMORY_MAX / 1024);
        /* IOVIRT_DOMAIN_MEMORY_MAX is a multiple of 1024: rounding up stays below it */
        *ret = (v * scale + 1023) / 1024 * 1024;
        return 1;
}

/* ---- devices ---- */

/* An unsigned integer as libvirt reads an address attribute
 * (virStrToLong_uip(s, NULL, 0, ...)): strtoul(3)'s base 0, so '0x1f',
 * '31' and '037' are the same; no '-' anywhere; nothing after it. */
static int parse_base0(const char *s, uint64_t max, uint64_t *ret) {
        if (strchr(s, '-'))
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 0);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno || end == s || *end)
                return -EINVAL;
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int parse_pci_address(const xmlNode *n, const char *what, IovirtAddress *ret, char **reason) {
        static const struct {
                const char *name;
                uint64_t max;
        } fields[] = {
                { "domain", UINT32_MAX },
                { "bus", 0xff },
                { "slot", 0x1f },
                { "function", 7 },
        };
        uint64_t v[ELEMENTSOF(fields)];
        char q[QUOTE_MAX];

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                _cleanup_free_ char *s = NULL;
                int r = attr_get(n, fields[i].name, &s);
                if (r < 0)
                        return r;
                /* libvirt would read a missing one as 0, but never writes an address without all four */
                if (r == 0)
                        return iovirt_set_reason(reason, -EBADMSG, "%s has an address without a %s", what,
                                                 fields[i].name);
                r = parse_base0(s, fields[i].max, &v[i]);
                if (r == -ERANGE)
                        return iovirt_set_reason(reason, -EBADMSG, "%s has an address with %s='%s', out of range "
                                                 "(at most 0x%" PRIx64 ")", what, fields[i].name, quote(s, q),
                                                 fields[i].max);
                if (r < 0)
                        return iovirt_set_reason(reason, -EBADMSG, "%s has an address with %s='%s', which is not a "
                                                 "number", what, fields[i].name, quote(s, q));
        }
        *ret = (IovirtAddress) {
                .domain = (uint32_t) v[0],
                .bus = (uint8_t) v[1],
                .dev = (uint8_t) v[2],
                .fn = (uint8_t) v[3],
        };
        return 0;
}

/* managed='yes' or 'no'; omitted is 'no' */
static int parse_managed(const xmlNode *n, const char *what, bool *ret, char **reason) {
        _cleanup_free_ char *m = NULL;
        char q[QUOTE_MAX];
        int r = attr_get(n, "managed", &m);
        if (r < 0)
                return r;
        if (r == 0 || streq_ptr(m, "no")) {
                *ret = false;
                return 0;
        }
        if (streq_ptr(m, "yes")) {
                *ret = true;
                return 0;
        }
        return iovirt_set_reason(reason, -EBADMSG, "%s has managed='%s'; libvirt knows 'yes' and 'no'", what,
                                 quote(m, q));
}

static int add_hostdev(IovirtDomain *d, size_t *allocated, const xmlNode *n, const xmlNode *address, bool interface,
                       const char *what, char **reason) {
        IovirtDomainHostdev h = { .interface = interface };
        int r = parse_managed(n, what, &h.managed, reason);
        if (r < 0)
                return r;
        r = parse_pci_address(address, what, &h.address, reason);
        if (r < 0)
                return r;
        const xmlNode *alias = child(n, "alias");
        if (alias && attr_nonempty(alias, "name", &h.alias) < 0)
                return -ENOMEM;
        IovirtDomainHostdev *e = GROW(d->hostdevs, d->n_hostdevs, *allocated);
        if (!e) {
                free(h.alias);
                return -ENOMEM;
        }
        *e = h;
        return 0;
}

/* <hostdev mode='subsystem' type='pci'>: <source><address domain= bus= slot= function=/> */
static int parse_hostdev(IovirtDomain *d, size_t *allocated, const xmlNode *n, unsigned index, char **reason) {
        _cleanup_free_ char *mode = NULL, *type = NULL;
        char what[64], q[QUOTE_MAX];

        snprintf(what, sizeof(what), "hostdev %u", index);
        if (attr_get(n, "mode", &mode) < 0 || attr_get(n, "type", &type) < 0)
                return -ENOMEM;
        /* libvirt's default mode is subsystem */
        if (mode && streq_ptr(mode, "capabilities"))
                return 0;
        if (mode && !streq_ptr(mode, "subsystem"))
                return iovirt_set_reason(reason, -EBADMSG, "%s has mode='%s'; libvirt knows 'subsystem' and "
                                         "'capabilities'", what, quote(mode, q));
        if (!type)
                return iovirt_set_reason(reason, -EBADMSG, "%s has no type", what);
        if (!streq_ptr(type, "pci"))
                return 0;   /* usb, scsi, scsi_host, mdev: no PCI function of the host */

        xmlNode *source = child(n, "source"), *address = source ? child(source, "address") : NULL;
        if (!address)
                return iovirt_set_reason(reason, -EBADMSG, "%s (type='pci') has no <source><address>", what);
        return add_hostdev(d, allocated, n, address, false, what, reason);
}

/* <interface type='hostdev'>: <source><address type='pci' domain= bus= slot= function=/> */
static int parse_interface(IovirtDomain *d, size_t *allocated, const xmlNode *n, unsigned index, char **reason) {
        _cleanup_free_ char *type = NULL, *address_type = NULL;
        char what[64];

        if (attr_get(n, "type", &type) < 0)
                return -ENOMEM;
        if (!type || !streq_ptr(type, "hostdev"))
                return 0;
        snprintf(what, sizeof(what), "interface %u (type='hostdev')", index);

        xmlNode *source = child(n, "source");
        if (!source)
                return iovirt_set_reason(reason, -EBADMSG, "%s has no <source>", what);
        xmlNode *address = child(source, "address");
        if (!address) {
                /* libvirt: a <vendor> without an address means a USB device */
                if (child(source, "vendor"))
                        return 0;
                return iovirt_set_reason(reason, -EBADMSG, "%s has no <source><address>", what);
        }
        int r = attr_get(address, "type", &address_type);
        if (r < 0)
                return r;
        if (r == 0)
                return iovirt_set_reason(reason, -EBADMSG, "%s has a source address without a type ('pci' or "
                                         "'usb')", what);
        if (!streq_ptr(address_type, "pci"))
                return 0;
        return add_hostdev(d, allocated, n, address, true, what, reason);
}

/* libvirt's "./devices/hostdev", then "./devices/interface" */
static int parse_devices(IovirtDomain *d, const xmlNode *root, char **reason) {
        size_t allocated = 0;
        unsigned i = 0;
        int r;

        FOREACH_CHILD(devices, root, "devices")
                FOREACH_CHILD(n, devices, "hostdev")
                        if ((r = parse_hostdev(d, &allocated, n, ++i, reason)) < 0)
                                return r;
        i = 0;
        FOREACH_CHILD(devices, root, "devices")
                FOREACH_CHILD(n, devices, "interface")
                        if ((r = parse_interface(d, &allocated, n, ++i, reason)) < 0)
                                return r;
        return 0;
}

/* <metadata>...<iovirt:device pool='NAME'/>...: "./metadata//iovirt:device" */
static int parse_pools(IovirtDomain *d, const xmlNode *root, char **reason) {
        unsigned i = 0;

        FOREACH_CHILD(metadata, root, "metadata")
                for (xmlNode *n = metadata->children; n; n = walk_next(n, metadata)) {
                        if (n->type != XML_ELEMENT_NODE || !n->ns || !n->ns->href ||
                            !xmlStrEqual(n->ns->href, (const xmlChar *) IOVIRT_DOMAIN_XMLNS) ||
                            !xmlStrEqual(n->name, (const xmlChar *) "device"))
                                continue;
                        _cleanup_free_ char *pool = NULL;
                        int r = attr_nonempty(n, "pool", &pool);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                return iovirt_set_reason(reason, -EBADMSG, "iovirt metadata device %u has no "
                                                         "pool='NAME'", i + 1);
                        char **p = reallocarray(d->pools, d->n_pools + 1, sizeof(char *));
                        if (!p)
                                return -ENOMEM;
                        d->pools = p;
                        d->pools[d->n_pools++] = TAKE_PTR(pool);
                        i++;
                }
        return 0;
}

/* ---- the domain ---- */

IovirtDomain *iovirt_domain_free(IovirtDomain *d) {
        if (!d)
                return NULL;
        free(d->name);
        free(d->uuid);
        free(d->cpuset);
        free(d->nodeset);
        for (size_t i = 0; i < d->n_hostdevs; i++)
                free(d->hostdevs[i].alias);
        free(d->hostdevs);
        for (size_t i = 0; i < d->n_pools; i++)
                free(d->pools[i]);
        free(d->pools);
        return mfree(d);
}

static int parse_name(IovirtDomain *d, const xmlNode *root, char **reason) {
        xmlNode *n = child(root, "name");
        if (!n)
                return iovirt_set_reason(reason, -EBADMSG, "the domain has no <name>");
        if (!(d->name = text_of(n)))
                return -ENOMEM;
        if (!*d->name)
                return iovirt_set_reason(reason, -EBADMSG, "the domain's <name> is empty");

        if (!(n = child(root, "uuid")))
                return 0;
        if (!(d->uuid = text_of(n)))
                return -ENOMEM;
        if (!*d->uuid)
                d->uuid = mfree(d->uuid);
        return 0;
}

static int parse_memory(IovirtDomain *d, const xmlNode *root, char **reason) {
        xmlNode *n = child(root, "memory");
        if (!n)
                return iovirt_set_reason(reason, -EBADMSG, "the domain has no <memory>");
        int r = parse_size(n, "<memory>", &d->memory, reason);
        if (r < 0)
                return r;
        if (r == 0)
                return iovirt_set_reason(reason, -EBADMSG, "the domain's <memory> is empty");
        /* memory hotplug: what the guest may grow to */
        if ((n = child(root, "maxMemory")) && (r = parse_size(n, "<maxMemory>", &d->max_memory, reason)) < 0)
                return r;

        if (!(n = grandchild(root, "memtune", "hard_limit")))
                return 0;
        r = parse_size(n, "<memtune><hard_limit>", &d->hard_limit, reason);
        if (r < 0)
                return r;
        /* libvirt's "unlimited" is no limit */
        if (d->hard_limit == IOVIRT_DOMAIN_MEMORY_MAX)
                d->hard_limit = 0;
        return 0;
}

static int parse_placement(IovirtDomain *d, const xmlNode *root) {
        xmlNode *n;
        int r;

        d->locked = grandchild(root, "memoryBacking", "locked");
        d->viommu = grandchild(root, "devices", "iommu");
        if ((n = child(root, "vcpu")) && (r = attr_nonempty(n, "cpuset", &d->cpuset)) < 0)
                return r;
        if ((n = grandchild(root, "numatune", "memory")) && (r = attr_nonempty(n, "nodeset", &d->nodeset)) < 0)
                return r;
        return 0;
}

static int parse_doc(const xmlDoc *doc, IovirtDomain **ret, char **reason) {
        char q[QUOTE_MAX];

        /* libvirt never writes one; without it no entity can be declared, so none is expanded */
        if (doc->intSubset || doc->extSubset)
                return iovirt_set_reason(reason, -EBADMSG, "the domain XML has a document type declaration "
                                         "(<!DOCTYPE>), which libvirt never writes");
        const xmlNode *root = xmlDocGetRootElement(doc);
        if (!root)
                return iovirt_set_reason(reason, -EBADMSG, "the domain XML has no root element");
        if (!xmlStrEqual(root->name, (const xmlChar *) "domain"))
                return iovirt_set_reason(reason, -EBADMSG, "the root element is <%s>, not <domain>: this is not "
                                         "a libvirt domain", quote((const char *) root->name, q));
        if (root->ns)
                return iovirt_set_reason(reason, -EBADMSG, "the root element <domain> is in the namespace '%s'; "
                                         "libvirt's is in none", quote((const char *) root->ns->href, q));

        _cleanup_(iovirt_domain_freep) IovirtDomain *d = calloc(1, sizeof(IovirtDomain));
        if (!d)
                return -ENOMEM;
        int r = parse_name(d, root, reason);
        if (r < 0)
                return r;
        r = parse_memory(d, root, reason);
        if (r < 0)
                return r;
        r = parse_placement(d, root);
        if (r < 0)
                return r;
        r = parse_devices(d, root, reason);
        if (r < 0)
                return r;
        r = parse_pools(d, root, reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(d);
        return 0;
}

int iovirt_domain_parse(const char *xml, size_t size, IovirtDomain **ret, char **reason) {
        /* no entities (no XML_PARSE_NOENT), no DTD loaded (no XML_PARSE_DTDLOAD), no network;
         * errors to our handler only */
        static const int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;

        if (size > IOVIRT_DOMAIN_XML_MAX)
                return iovirt_set_reason(reason, -EFBIG, "the domain XML is %zu bytes, more than the %u MiB iovirt "
                                         "reads", size, IOVIRT_DOMAIN_XML_MAX >> 20);
        if (size == 0)
                return iovirt_set_reason(reason, -EBADMSG, "the domain XML is empty");

        xmlInitParser();
        _cleanup_(xml_errors_end) XmlErrors errors = {};
        xml_errors_begin(&errors);

        errno = 0;
        _cleanup_(xmlFreeDocp) xmlDoc *doc = xmlReadMemory(xml, (int) size, NULL, NULL, options);
        /* libxml2 2.9 loses some of its allocation failures (a namespace URI it could not copy
         * becomes "Empty XML namespace is not allowed"); malloc's errno still tells.  Whatever
         * it handed back after running out of memory may be short of something. */
        if (errors.oom || ((!doc || errors.failed) && errno == ENOMEM))
                return -ENOMEM;
        if (!doc || errors.failed) {
                if (!errors.message)
                        return iovirt_set_reason(reason, -EBADMSG, "the domain XML is not well-formed (line %d)",
                                                 errors.line);
                return iovirt_set_reason(reason, -EBADMSG, "line %d: %s", errors.line, errors.message);
        }
        /* from here on only our own allocations: libxml2 is not called to allocate */
        return parse_doc(doc, ret, reason);
}

void iovirt_domain_init(void) {
        xmlInitParser();
}

const IovirtDomainHostdev *iovirt_domain_find_hostdev(const IovirtDomain *d, const IovirtAddress *a) {
        for (size_t i = 0; i < d->n_hostdevs; i++)
                if (iovirt_address_equal(&d->hostdevs[i].address, a))
                        return &d->hostdevs[i];
        return NULL;
}

char *iovirt_domain_hostdev_xml(const IovirtAddress *a) {
        char *xml;
        if (asprintf(&xml, "<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x%04x' "
                           "bus='0x%02x' slot='0x%02x' function='0x%x'/></source></hostdev>",
                     a->domain, a->bus, a->dev, a->fn) < 0)
                return NULL;
        return xml;
}
