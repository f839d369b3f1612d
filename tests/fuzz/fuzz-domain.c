/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds: domain XML as libvirt's qemu hook hands it over on stdin (the
 * bytes as they are, no NUL needed) to iovirt_domain_parse().
 * Asserts beyond "no crash": a refusal is one of the documented errors
 * with a sentence; a domain that is taken has a name, sizes within what
 * libvirt takes (whole KiB), every hostdev found again by its address, and
 * for every hostdev the device XML iovirt attaches it with
 * (iovirt_domain_hostdev_xml()), put in a domain, parses back to that one
 * address, managed='no'.  Parsing the same bytes twice gives the same. */
#include <errno.h>

#include "fuzz.h"
#include "iovirt-domain.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        iovirt_domain_init();
        return 0;
}

static void hostdev_round_trip(const IovirtAddress *a) {
        _cleanup_free_ char *dev = iovirt_domain_hostdev_xml(a), *xml = NULL;
        if (!dev)
                return;
        fuzz_assert(asprintf(&xml, "<domain><name>f</name><memory>1</memory><devices>%s</devices></domain>", dev) > 0);
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = NULL;
        _cleanup_free_ char *reason = NULL;
        int r = iovirt_domain_parse(xml, strlen(xml), &d, &reason);
        if (r == -ENOMEM)
                return;
        fuzz_assert(r == 0 && d->n_hostdevs == 1);
        fuzz_assert(iovirt_address_equal(&d->hostdevs[0].address, a) && !d->hostdevs[0].managed);
}

static bool domains_equal(const IovirtDomain *x, const IovirtDomain *y) {
        if (!streq_ptr(x->name, y->name) || !streq_ptr(x->uuid, y->uuid) || x->memory != y->memory ||
            x->max_memory != y->max_memory || x->hard_limit != y->hard_limit || x->locked != y->locked ||
            x->viommu != y->viommu || !streq_ptr(x->cpuset, y->cpuset) || !streq_ptr(x->nodeset, y->nodeset) ||
            x->n_hostdevs != y->n_hostdevs || x->n_pools != y->n_pools)
                return false;
        for (size_t i = 0; i < x->n_hostdevs; i++)
                if (!iovirt_address_equal(&x->hostdevs[i].address, &y->hostdevs[i].address) ||
                    x->hostdevs[i].managed != y->hostdevs[i].managed ||
                    x->hostdevs[i].interface != y->hostdevs[i].interface ||
                    !streq_ptr(x->hostdevs[i].alias, y->hostdevs[i].alias))
                        return false;
        for (size_t i = 0; i < x->n_pools; i++)
                if (!streq_ptr(x->pools[i], y->pools[i]))
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = NULL, *again = NULL;
        _cleanup_free_ char *reason = NULL;
        int r = iovirt_domain_parse((const char *) data, size, &d, &reason);
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                fuzz_assert(r == -EBADMSG || r == -ERANGE || r == -EFBIG);
                fuzz_assert(reason && *reason && !d);
                return 0;
        }
        fuzz_assert(r == 0 && d && !reason);
        fuzz_assert(d->name && *d->name);
        /* 0 is taken (tests/unit/test-domain.c has it so) */
        fuzz_assert(d->memory <= IOVIRT_DOMAIN_MEMORY_MAX && d->memory % 1024 == 0);
        fuzz_assert(d->max_memory <= IOVIRT_DOMAIN_MEMORY_MAX && d->max_memory % 1024 == 0);
        fuzz_assert(d->hard_limit <= IOVIRT_DOMAIN_MEMORY_MAX && d->hard_limit % 1024 == 0);
        for (size_t i = 0; i < d->n_hostdevs; i++) {
                const IovirtDomainHostdev *h = &d->hostdevs[i];
                fuzz_assert(h->address.dev <= 0x1f && h->address.fn <= 7);
                const IovirtDomainHostdev *found = iovirt_domain_find_hostdev(d, &h->address);
                fuzz_assert(found && found <= h && iovirt_address_equal(&found->address, &h->address));
                fuzz_assert(!h->alias || *h->alias);
                hostdev_round_trip(&h->address);
        }
        for (size_t i = 0; i < d->n_pools; i++)
                fuzz_assert(d->pools[i] && *d->pools[i]);

        _cleanup_free_ char *why = NULL;
        fuzz_assert(iovirt_domain_parse((const char *) data, size, &again, &why) == 0);
        fuzz_assert(domains_equal(d, again));
        return 0;
}
