/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds: a string to iovirt_address_parse(), as the CLI, D-Bus callers,
 * state records and policy files hand addresses over.
 * Asserts beyond "no crash": a refusal says why; a parsed address is in
 * range, formats in the kernel's form within IOVIRT_ADDRESS_MAX, and that
 * form, libvirt's node-device name and (in domain 0) the short form all
 * parse back to the same address; parsing is case-blind. */
#include <ctype.h>
#include <errno.h>

#include "fuzz.h"
#include "iovirt-address.h"
#include "iovirt-util.h"

static void parses_to(const char *s, const IovirtAddress *want) {
        IovirtAddress back;
        const char *reason = NULL;
        fuzz_assert(iovirt_address_parse(s, &back, &reason) == 0);
        fuzz_assert(iovirt_address_equal(&back, want));
        fuzz_assert(iovirt_address_compare(&back, want) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = fuzz_string(data, size);
        if (!s)
                return 0;

        IovirtAddress a;
        const char *reason = NULL;
        int r = iovirt_address_parse(s, &a, &reason);
        if (r < 0) {
                fuzz_assert(r == -EINVAL);
                fuzz_assert(reason && *reason);
                return 0;
        }
        fuzz_assert(r == 0);
        fuzz_assert(a.dev <= 0x1f && a.fn <= 7);

        char buf[IOVIRT_ADDRESS_MAX], other[64];
        fuzz_assert(iovirt_address_format(&a, buf) == buf);
        fuzz_assert(strlen(buf) < IOVIRT_ADDRESS_MAX);
        parses_to(buf, &a);

        snprintf(other, sizeof(other), "pci_%04x_%02x_%02x_%x", a.domain, a.bus, a.dev, a.fn);
        parses_to(other, &a);
        if (a.domain == 0) {
                snprintf(other, sizeof(other), "%02x:%02x.%x", a.bus, a.dev, a.fn);
                parses_to(other, &a);
        }

        /* hex digits in either case: the input with its letters swapped
         * parses to the same (the "pci_" prefix is lower case only) */
        size_t from = strncmp(s, "pci_", 4) == 0 ? 4 : 0;
        for (size_t i = from; s[i]; i++)
                s[i] = (char) (islower((unsigned char) s[i]) ? toupper((unsigned char) s[i])
                                                               : tolower((unsigned char) s[i]));
        parses_to(s, &a);
        return 0;
}
