/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds: a string as iovirtd answers DescribeTree and Check, parsed as the
 * CLI parses them (json_tokener_parse()), to iovirt_host_from_json() and
 * iovirt_checks_from_json(): the CLI's view of the daemon.
 * Asserts beyond "no crash": a tree that is refused is -EBADMSG; one that
 * is taken has devices in address order, each once, parent chains without
 * loops, groups in number order that hold each grouped device once; its
 * verdicts can be computed; and the document the daemon would serve for
 * that model (iovirt_json_device() for every device) is taken too and
 * serves again the very same text (a fixed point).  Checks that are taken
 * are written back by iovirt_json_checks() and read again the same. */
#include <errno.h>

#include "fuzz.h"
#include "iovirt-host.h"
#include "iovirt-json.h"
#include "iovirt-verdict.h"

/* Holds libpci's pci.ids once, for every model's names (as one CLI run
 * would load it once): a model rebuilt from JSON loads it on first use */
static IovirtHost names;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char buf[64];
        iovirt_class_name(&names, 0x020000, buf, sizeof(buf));
        return 0;
}

/* The document DescribeTree serves for h (daemon/iovirtd-manager.c,
 * build_tree), as text; NULL when memory ran out */
static char *tree_text(IovirtHost *h) {
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v = NULL;
        if (iovirt_verdicts_compute(h, &v) < 0)
                return NULL;
        fuzz_assert(v);
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *a = json_object_new_array();
        if (!root || !a) {
                json_object_put(a);
                return NULL;
        }
        json_object_object_add(root, "devices", a);
        void *own = h->pci_access;
        h->pci_access = names.pci_access;
        for (size_t i = 0; i < h->n_devices; i++)
                json_object_array_add(a, iovirt_json_device(h, v, i));
        h->pci_access = own;
        const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
        return s ? strdup(s) : NULL;
}

static void check_model(const IovirtHost *h) {
        for (size_t i = 0; i < h->n_devices; i++) {
                const IovirtDevice *d = &h->devices[i];
                char buf[IOVIRT_ADDRESS_MAX];
                fuzz_assert(streq_ptr(iovirt_address_format(&d->addr, buf), d->name));
                if (i > 0)
                        fuzz_assert(iovirt_address_compare(&h->devices[i - 1].addr, &d->addr) < 0);
                fuzz_assert(d->parent == IOVIRT_NONE || d->parent < h->n_devices);
                fuzz_assert(d->physfn == IOVIRT_NONE || d->physfn < h->n_devices);
                fuzz_assert((d->iommu_group >= 0) == (d->group != IOVIRT_NONE));
                if (d->group != IOVIRT_NONE)
                        fuzz_assert(d->group < h->n_groups && h->groups[d->group].number == d->iommu_group);
                size_t steps = 0;
                for (size_t p = d->parent; p != IOVIRT_NONE; p = h->devices[p].parent)
                        fuzz_assert(++steps <= h->n_devices);
        }
        size_t members = 0;
        for (size_t g = 0; g < h->n_groups; g++) {
                const IovirtGroup *grp = &h->groups[g];
                if (g > 0)
                        fuzz_assert(h->groups[g - 1].number < grp->number);
                fuzz_assert(grp->n_members > 0);
                for (size_t m = 0; m < grp->n_members; m++) {
                        fuzz_assert(grp->members[m] < h->n_devices && h->devices[grp->members[m]].group == g);
                        members++;
                }
        }
        size_t grouped = 0;
        for (size_t i = 0; i < h->n_devices; i++)
                grouped += h->devices[i].group != IOVIRT_NONE;
        fuzz_assert(members == grouped);
}

static void tree(json_object *doc) {
        _cleanup_(iovirt_host_freep) IovirtHost *h = NULL, *h2 = NULL;
        int r = iovirt_host_from_json(doc, &h);
        if (r == -ENOMEM)
                return;
        if (r < 0) {
                fuzz_assert(r == -EBADMSG && !h);
                return;
        }
        fuzz_assert(h);
        check_model(h);

        _cleanup_free_ char *text = tree_text(h);
        if (!text)
                return;
        _cleanup_(json_object_putp) json_object *served = json_tokener_parse(text);
        fuzz_assert(served);
        fuzz_assert(iovirt_host_from_json(served, &h2) == 0);
        check_model(h2);
        fuzz_assert(h2->n_devices == h->n_devices && h2->n_groups == h->n_groups);
        _cleanup_free_ char *text2 = tree_text(h2);
        fuzz_assert(text2 && streq_ptr(text, text2));
}

static void checks(json_object *doc) {
        _cleanup_(iovirt_checks_freep) IovirtChecks *c = NULL, *c2 = NULL;
        int r = iovirt_checks_from_json(doc, &c);
        if (r == -ENOMEM)
                return;
        if (r < 0) {
                fuzz_assert(r == -EBADMSG && !c);
                return;
        }
        _cleanup_(json_object_putp) json_object *o = iovirt_json_checks(c);
        if (!o)
                return;
        _cleanup_free_ char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        _cleanup_(json_object_putp) json_object *back = json_tokener_parse(text);
        fuzz_assert(back && iovirt_checks_from_json(back, &c2) == 0);
        _cleanup_(json_object_putp) json_object *o2 = iovirt_json_checks(c2);
        fuzz_assert(o2 && streq_ptr(text, json_object_to_json_string_ext(o2, JSON_C_TO_STRING_PLAIN)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* a D-Bus string: no NUL inside */
        _cleanup_free_ char *s = fuzz_string(data, size);
        if (!s)
                return 0;
        _cleanup_(json_object_putp) json_object *doc = json_tokener_parse(s);
        if (!doc)
                return 0;
        tree(doc);
        checks(doc);
        return 0;
}
