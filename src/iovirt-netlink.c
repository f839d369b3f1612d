/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "iovirt-address.h"
#include "iovirt-netlink.h"
#include "iovirt-util.h"

/* How long the kernel may take to answer (it answers while handling the
 * send, so this only guards against a reply that never comes). */
#define NETLINK_TIMEOUT_SEC 10
/* The longest extended-ack message kept; the kernel's are short literals. */
#define NETLINK_MESSAGE_MAX 1024
/* Errno values are small; anything else in an NLMSG_ERROR is garbage. */
#define ERRNO_MAX 4095

static int fail(const char **reason, int r, const char *why) {
        if (reason)
                *reason = why;
        return r;
}

/* ---- user input ---- */

static bool mac_is_broadcast(const uint8_t mac[static 6]) {
        for (unsigned i = 0; i < 6; i++)
                if (mac[i] != 0xff)
                        return false;
        return true;
}

static int mac_check(const uint8_t mac[static 6], const char **reason) {
        if (mac_is_broadcast(mac))
                return fail(reason, -EINVAL, "ff:ff:ff:ff:ff:ff is the broadcast address; a VF needs a unicast address");
        if (mac[0] & 1)
                return fail(reason, -EINVAL, "a VF needs a unicast address: the first octet's lowest bit is set");
        return 0;
}

int iovirt_mac_parse(const char *s, uint8_t mac[static 6], const char **reason) {
        uint8_t m[6];
        char sep = 0;

        if (!s || !*s)
                return fail(reason, -EINVAL, "the MAC address is empty; expected six hex pairs, as in 02:00:00:00:00:01");
        const char *p = s;
        for (unsigned i = 0; i < 6; i++) {
                if (i > 0) {
                        if (*p == '\0')
                                return fail(reason, -EINVAL, "a MAC address has six octets, as in 02:00:00:00:00:01");
                        if (*p != ':' && *p != '-')
                                return fail(reason, -EINVAL,
                                            "octets are separated by ':' (or all by '-'), as in 02:00:00:00:00:01");
                        if (sep && *p != sep)
                                return fail(reason, -EINVAL, "the separators are mixed: use ':' or '-' throughout");
                        sep = *p++;
                }
                int hi = iovirt_hex_digit(p[0]);
                int lo = hi >= 0 ? iovirt_hex_digit(p[1]) : -1;
                if (hi < 0 || lo < 0)
                        return fail(reason, -EINVAL, "each octet is two hex digits, as in 02:00:00:00:00:01");
                m[i] = (uint8_t) (hi << 4 | lo);
                p += 2;
        }
        if (*p == ':' || *p == '-')
                return fail(reason, -EINVAL, "a MAC address has six octets, not more");
        if (*p != '\0')
                return fail(reason, -EINVAL, "unexpected characters after the sixth octet");
        int r = mac_check(m, reason);
        if (r < 0)
                return r;
        memcpy(mac, m, sizeof(m));
        return 0;
}

int iovirt_vlan_parse(const char *s, unsigned *ret, const char **reason) {
        unsigned v = 0;

        if (!s || !*s)
                return fail(reason, -EINVAL, "the VLAN ID is empty; expected a number 0-4095 (0: no VLAN)");
        if (*s == '-')
                return fail(reason, -EINVAL, "a VLAN ID cannot be negative; expected 0-4095 (0: no VLAN)");
        for (const char *p = s; *p; p++)
                if (*p < '0' || *p > '9')
                        return fail(reason, -EINVAL, "a VLAN ID is a decimal number 0-4095 (0: no VLAN)");
        for (const char *p = s; *p; p++) {
                v = v * 10 + (unsigned) (*p - '0');
                if (v > 4095)   /* stops long before unsigned could overflow */
                        return fail(reason, -EINVAL, "a VLAN ID is at most 4095 (0: no VLAN)");
        }
        *ret = v;
        return 0;
}

int iovirt_onoff_parse(const char *s, bool *ret) {
        static const struct {
                const char *word;
                bool value;
        } words[] = {
                { "on", true },   { "off", false }, { "yes", true }, { "no", false },
                { "true", true }, { "false", false }, { "1", true }, { "0", false },
        };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strcasecmp(s, words[i].word) == 0) {
                        *ret = words[i].value;
                        return 0;
                }
        return -EINVAL;
}

char *iovirt_mac_format(const uint8_t mac[static 6], char buf[static IOVIRT_MAC_STRING_MAX]) {
        snprintf(buf, IOVIRT_MAC_STRING_MAX, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                 mac[5]);
        return buf;
}

/* As the kernel's dev_valid_name(), and no control characters either: the
 * name ends up in sentences. */
int iovirt_ifname_check(const char *ifname, const char **reason) {
        if (!ifname || !*ifname)
                return fail(reason, -EINVAL, "the interface name is empty");
        if (strnlen(ifname, IFNAMSIZ) >= IFNAMSIZ)
                return fail(reason, -EINVAL, "an interface name has at most 15 characters");
        if (streq_ptr(ifname, ".") || streq_ptr(ifname, ".."))
                return fail(reason, -EINVAL, "'.' and '..' are not interface names");
        for (const unsigned char *p = (const unsigned char *) ifname; *p; p++)
                if (*p == '/' || *p == ':' || *p <= ' ' || *p == 0x7f)
                        return fail(reason, -EINVAL, "an interface name has no '/', ':', spaces or control characters");
        return 0;
}

int iovirt_vf_settings_check(const IovirtVfSettings *s, const char **reason) {
        if (s->set_mac) {
                int r = mac_check(s->mac, reason);
                if (r < 0)
                        return r;
        }
        if (s->set_vlan && s->vlan > 4095)
                return fail(reason, -EINVAL, "a VLAN ID is at most 4095 (0: no VLAN)");
        return 0;
}

/* ---- building requests ---- */

static struct nlmsghdr *link_request(void *buf, size_t size, uint16_t type, uint32_t seq, const char *ifname) {
        if (size < MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct ifinfomsg)))
                return NULL;
        /* libmnl before 1.0.5 (Debian 12 has 1.0.4) leaves an attribute's
         * alignment padding as it found it: IFLA_IFNAME's would carry stack
         * bytes to the kernel (valgrind: sendto points to uninitialised bytes) */
        memset(buf, 0, size);
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        nlh->nlmsg_seq = seq;
        struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = 0;   /* the kernel looks the interface up by IFLA_IFNAME */
        if (!mnl_attr_put_strz_check(nlh, size, IFLA_IFNAME, ifname))
                return NULL;
        return nlh;
}

int iovirt_vf_getlink_build(void *buf, size_t size, uint32_t seq, const char *ifname) {
        if (iovirt_ifname_check(ifname, NULL) < 0)
                return -EINVAL;
        struct nlmsghdr *nlh = link_request(buf, size, RTM_GETLINK, seq, ifname);
        /* VF statistics are not wanted: skipping them keeps the reply small */
        if (!nlh || !mnl_attr_put_u32_check(nlh, size, IFLA_EXT_MASK, RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS))
                return -ENOBUFS;
        return (int) nlh->nlmsg_len;
}

int iovirt_vf_setlink_build(void *buf, size_t size, uint32_t seq, const char *ifname, unsigned vf,
                            const IovirtVfSettings *s) {
        if (iovirt_ifname_check(ifname, NULL) < 0 || vf >= INT_MAX || iovirt_vf_settings_check(s, NULL) < 0)
                return -EINVAL;
        if (!s->set_mac && !s->set_vlan && !s->set_spoofchk && !s->set_trust)
                return -EINVAL;

        struct nlmsghdr *nlh = link_request(buf, size, RTM_SETLINK, seq, ifname);
        if (!nlh)
                return -ENOBUFS;
        struct nlattr *list = mnl_attr_nest_start_check(nlh, size, IFLA_VFINFO_LIST);
        struct nlattr *info = list ? mnl_attr_nest_start_check(nlh, size, IFLA_VF_INFO) : NULL;
        if (!info)
                return -ENOBUFS;
        if (s->set_mac) {
                struct ifla_vf_mac ivm = { .vf = vf };
                memcpy(ivm.mac, s->mac, 6);
                if (!mnl_attr_put_check(nlh, size, IFLA_VF_MAC, sizeof(ivm), &ivm))
                        return -ENOBUFS;
        }
        if (s->set_vlan) {
                /* IFLA_VF_VLAN is 802.1Q, as `ip link` sends it; the QoS bits stay 0 */
                struct ifla_vf_vlan ivv = { .vf = vf, .vlan = s->vlan, .qos = 0 };
                if (!mnl_attr_put_check(nlh, size, IFLA_VF_VLAN, sizeof(ivv), &ivv))
                        return -ENOBUFS;
        }
        if (s->set_spoofchk) {
                struct ifla_vf_spoofchk ivs = { .vf = vf, .setting = s->spoofchk };
                if (!mnl_attr_put_check(nlh, size, IFLA_VF_SPOOFCHK, sizeof(ivs), &ivs))
                        return -ENOBUFS;
        }
        if (s->set_trust) {
                struct ifla_vf_trust ivt = { .vf = vf, .setting = s->trust };
                if (!mnl_attr_put_check(nlh, size, IFLA_VF_TRUST, sizeof(ivt), &ivt))
                        return -ENOBUFS;
        }
        mnl_attr_nest_end(nlh, info);
        mnl_attr_nest_end(nlh, list);
        return (int) nlh->nlmsg_len;
}

/* ---- walking attributes and replies ---- */

/* The next attribute of the len bytes at *pos: 1 and *ret, 0 at the end,
 * -EBADMSG when what is left is not a whole attribute. */
static int attr_next(const void **pos, size_t *rem, const struct nlattr **ret) {
        const struct nlattr *a = *pos;

        if (*rem == 0)
                return 0;
        if (*rem < sizeof(struct nlattr) || a->nla_len < sizeof(struct nlattr) || a->nla_len > *rem)
                return -EBADMSG;
        size_t step = MNL_ALIGN(a->nla_len);
        if (step > *rem)   /* the last one need not be padded */
                step = *rem;
        *pos = (const uint8_t *) *pos + step;
        *rem -= step;
        *ret = a;
        return 1;
}

/* Copies the fixed-size struct an attribute carries; -EBADMSG if it is short. */
static int attr_struct(const struct nlattr *a, void *dst, size_t size) {
        if (mnl_attr_get_payload_len(a) < size)
                return -EBADMSG;
        memcpy(dst, mnl_attr_get_payload(a), size);
        return 0;
}

static int message_take(const struct nlattr *a, char **ret) {
        size_t len = mnl_attr_get_payload_len(a);
        const char *s = mnl_attr_get_payload(a);

        /* NUL-terminated within the attribute, and short */
        size_t l = strnlen(s, len);
        if (l == len || l == 0 || l > NETLINK_MESSAGE_MAX)
                return 0;
        char *m = strndup(s, l);
        if (!m)
                return -ENOMEM;
        for (char *c = m; *c; c++)
                if ((unsigned char) *c < ' ' || *c == 0x7f)
                        *c = '?';
        free(*ret);
        *ret = m;
        return 0;
}

static int reply_error(IovirtNetlinkReply *r, const struct nlmsghdr *nlh) {
        const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
        size_t plen = mnl_nlmsg_get_payload_len(nlh);

        if (plen < sizeof(struct nlmsgerr) || e->error > 0 || e->error < -ERRNO_MAX)
                return -EBADMSG;
        r->done = true;
        r->error = e->error;
        if (e->error == 0 || !(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
                return 0;

        /* The extended ack follows the request's header (NLM_F_CAPPED) or
         * the whole request.  The error stands on its own: a malformed
         * extended ack only loses the message. */
        size_t off = sizeof(struct nlmsgerr);
        if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
                if (e->msg.nlmsg_len < NLMSG_HDRLEN)
                        return 0;
                off += e->msg.nlmsg_len - NLMSG_HDRLEN;
        }
        off = MNL_ALIGN(off);
        if (off > plen)
                return 0;
        const void *pos = (const uint8_t *) e + off;
        size_t rem = plen - off;
        const struct nlattr *a;
        while (attr_next(&pos, &rem, &a) > 0)
                if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG) {
                        int k = message_take(a, &r->message);
                        if (k < 0)
                                return k;
                }
        return 0;
}

int iovirt_netlink_reply_feed(IovirtNetlinkReply *r, const void *buf, size_t len) {
        const uint8_t *p = buf;

        while (len > 0) {
                const struct nlmsghdr *nlh = (const struct nlmsghdr *) p;
                if (len < sizeof(struct nlmsghdr) || nlh->nlmsg_len < sizeof(struct nlmsghdr) || nlh->nlmsg_len > len)
                        return -EBADMSG;
                size_t step = MNL_ALIGN(nlh->nlmsg_len);
                if (step > len)
                        step = len;
                p += step;
                len -= step;

                if (r->done || nlh->nlmsg_seq != r->seq || nlh->nlmsg_pid != r->portid)
                        continue;
                switch (nlh->nlmsg_type) {
                case NLMSG_NOOP:
                        break;
                case NLMSG_OVERRUN:
                        return -ENOBUFS;
                case NLMSG_ERROR: {
                        int k = reply_error(r, nlh);
                        if (k < 0)
                                return k;
                        break;
                }
                case NLMSG_DONE: {
                        /* the end of a multi-part reply; a dump that failed says why */
                        int error = 0;
                        if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int))
                                memcpy(&error, mnl_nlmsg_get_payload(nlh), sizeof(int));
                        if (error > 0 || error < -ERRNO_MAX)
                                return -EBADMSG;
                        r->done = true;
                        r->error = error;
                        break;
                }
                default:
                        if (nlh->nlmsg_type < NLMSG_MIN_TYPE || !r->handler)
                                break;
                        int k = r->handler(nlh, r->userdata);
                        if (k < 0)
                                return k;
                }
        }
        return 0;
}

void iovirt_netlink_reply_clear(IovirtNetlinkReply *r) {
        r->message = mfree(r->message);
}

/* ---- parsing RTM_NEWLINK ---- */

static int setting_value(uint32_t v) {
        /* the kernel presets (u32) -1 and leaves it when the driver says nothing */
        return v == UINT32_MAX ? -1 : v != 0;
}

static int vf_parse(const struct nlattr *info, IovirtVfInfo *vf, const char **reason) {
        const struct nlattr *tb[IFLA_VF_MAX + 1] = {};
        const void *pos = mnl_attr_get_payload(info);
        size_t rem = mnl_attr_get_payload_len(info);
        const struct nlattr *a;
        int r;

        while ((r = attr_next(&pos, &rem, &a)) > 0)
                if (mnl_attr_get_type(a) <= IFLA_VF_MAX)
                        tb[mnl_attr_get_type(a)] = a;
        if (r < 0)
                return fail(reason, r, "an attribute of a VF runs past the VF's entry");

        /* The kernel puts every VF's MAC; its VF number is the index */
        struct ifla_vf_mac ivm;
        if (!tb[IFLA_VF_MAC])
                return fail(reason, -EBADMSG, "a VF entry has no IFLA_VF_MAC");
        if (attr_struct(tb[IFLA_VF_MAC], &ivm, sizeof(ivm)) < 0)
                return fail(reason, -EBADMSG, "a VF's IFLA_VF_MAC is too short");
        if (ivm.vf > INT_MAX)
                return fail(reason, -EBADMSG, "a VF number is out of range");
        *vf = (IovirtVfInfo) { .index = ivm.vf, .spoofchk = -1, .trust = -1, .link_state = -1 };
        memcpy(vf->mac, ivm.mac, 6);

        if (tb[IFLA_VF_VLAN]) {
                struct ifla_vf_vlan ivv;
                if (attr_struct(tb[IFLA_VF_VLAN], &ivv, sizeof(ivv)) < 0)
                        return fail(reason, -EBADMSG, "a VF's IFLA_VF_VLAN is too short");
                if (ivv.vf != ivm.vf)
                        return fail(reason, -EBADMSG, "a VF's attributes name different VF numbers");
                vf->vlan = ivv.vlan;
                vf->qos = ivv.qos;
        }
        if (tb[IFLA_VF_SPOOFCHK]) {
                struct ifla_vf_spoofchk ivs;
                if (attr_struct(tb[IFLA_VF_SPOOFCHK], &ivs, sizeof(ivs)) < 0)
                        return fail(reason, -EBADMSG, "a VF's IFLA_VF_SPOOFCHK is too short");
                if (ivs.vf != ivm.vf)
                        return fail(reason, -EBADMSG, "a VF's attributes name different VF numbers");
                vf->spoofchk = setting_value(ivs.setting);
        }
        if (tb[IFLA_VF_TRUST]) {
                struct ifla_vf_trust ivt;
                if (attr_struct(tb[IFLA_VF_TRUST], &ivt, sizeof(ivt)) < 0)
                        return fail(reason, -EBADMSG, "a VF's IFLA_VF_TRUST is too short");
                if (ivt.vf != ivm.vf)
                        return fail(reason, -EBADMSG, "a VF's attributes name different VF numbers");
                vf->trust = setting_value(ivt.setting);
        }
        if (tb[IFLA_VF_LINK_STATE]) {
                struct ifla_vf_link_state ivl;
                if (attr_struct(tb[IFLA_VF_LINK_STATE], &ivl, sizeof(ivl)) < 0)
                        return fail(reason, -EBADMSG, "a VF's IFLA_VF_LINK_STATE is too short");
                if (ivl.vf != ivm.vf)
                        return fail(reason, -EBADMSG, "a VF's attributes name different VF numbers");
                vf->link_state = ivl.link_state <= IFLA_VF_LINK_STATE_DISABLE ? (int) ivl.link_state : -1;
        }
        return 0;
}

int iovirt_vf_info_parse(const struct nlmsghdr *nlh, IovirtVfInfo **ret, size_t *n_ret, const char **reason) {
        _cleanup_free_ IovirtVfInfo *vfs = NULL;
        size_t n = 0, allocated = 0;
        const struct nlattr *a, *list = NULL;
        bool has_num_vf = false;
        struct ifinfomsg ifi;
        int r;

        if (nlh->nlmsg_type != RTM_NEWLINK || nlh->nlmsg_len < MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(ifi)))
                return fail(reason, -EBADMSG, "the answer is not an RTM_NEWLINK message");
        memcpy(&ifi, mnl_nlmsg_get_payload(nlh), sizeof(ifi));

        const void *pos = mnl_nlmsg_get_payload_offset(nlh, sizeof(ifi));
        size_t rem = nlh->nlmsg_len - (MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(ifi)));
        while ((r = attr_next(&pos, &rem, &a)) > 0)
                switch (mnl_attr_get_type(a)) {
                case IFLA_NUM_VF:
                        has_num_vf = true;
                        break;
                case IFLA_VFINFO_LIST:
                        list = a;
                        break;
                }
        if (r < 0)
                return fail(reason, r, "an attribute runs past the end of the message");

        /* What rtnl_fill_vf() does: no parent device, no IFLA_NUM_VF; a
         * driver without ndo_get_vf_config, no list. */
        if (!list)
                return fail(reason, -EOPNOTSUPP,
                            has_num_vf ? "reports no VF list: its driver has no ndo_get_vf_config to report VF settings"
                                       : "reports no VF list: it has no parent device, so it is not an SR-IOV physical function");
        if (ifi.ifi_type != ARPHRD_ETHER)
                return fail(reason, -EOPNOTSUPP, "is not an Ethernet interface, and only Ethernet VFs are handled");

        pos = mnl_attr_get_payload(list);
        rem = mnl_attr_get_payload_len(list);
        while ((r = attr_next(&pos, &rem, &a)) > 0) {
                if (mnl_attr_get_type(a) != IFLA_VF_INFO)
                        continue;
                IovirtVfInfo *vf = GROW(vfs, n, allocated);
                if (!vf)
                        return fail(reason, -ENOMEM, "out of memory");
                r = vf_parse(a, vf, reason);
                if (r < 0)
                        return r;
                for (size_t i = 0; i + 1 < n; i++)
                        if (vfs[i].index == vf->index)
                                return fail(reason, -EBADMSG, "a VF appears twice in the list");
        }
        if (r < 0)
                return fail(reason, r, "an entry runs past the end of the VF list");

        *ret = TAKE_PTR(vfs);
        *n_ret = n;
        return (int) n;
}

/* ---- talking to the kernel ---- */

static uint32_t next_seq(void) {
        static uint32_t seq;
        uint32_t s = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
        return (uint32_t) time(NULL) + s;
}

static int netlink_open(uint32_t *ret_portid) {
        _cleanup_close_ int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
                return -errno;

        /* Both are optional (kernels before 4.12 lack extended acks): without
         * them, errors come without the kernel's message or with the request
         * echoed, and iovirt_netlink_reply_feed() reads either form. */
        int one = 1;
        (void) setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
        (void) setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
        struct timeval tv = { .tv_sec = NETLINK_TIMEOUT_SEC };
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                return -errno;

        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        socklen_t salen = sizeof(sa);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        if (getsockname(fd, (struct sockaddr *) &sa, &salen) < 0)
                return -errno;
        if (salen != sizeof(sa) || sa.nl_family != AF_NETLINK)
                return -EPROTO;
        *ret_portid = sa.nl_pid;
        return TAKE_FD(fd);
}

/* The next datagram from the kernel, whole, in a new buffer. */
static int netlink_receive(int fd, void **ret, size_t *ret_len) {
        for (;;) {
                ssize_t n = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
                }
                size_t size = n > 0 ? (size_t) n : 1;
                _cleanup_free_ void *buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                struct sockaddr_nl sa = {};
                socklen_t salen = sizeof(sa);
                ssize_t m = recvfrom(fd, buf, size, MSG_TRUNC, (struct sockaddr *) &sa, &salen);
                if (m < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
                }
                if ((size_t) m > size)
                        return -EMSGSIZE;
                /* only the kernel (port 0) answers */
                if (m == 0 || salen != sizeof(sa) || sa.nl_family != AF_NETLINK || sa.nl_pid != 0)
                        continue;
                *ret = TAKE_PTR(buf);
                *ret_len = (size_t) m;
                return 0;
        }
}

/* Sends the request and feeds the reply to r until it is done.  A negative
 * return is our failure; the kernel's answer is in r->error. */
static int netlink_transact(const struct nlmsghdr *req, IovirtNetlinkReply *r) {
        uint32_t portid = 0;
        _cleanup_close_ int fd = netlink_open(&portid);
        if (fd < 0)
                return fd;
        r->seq = req->nlmsg_seq;
        r->portid = portid;

        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        ssize_t k;
        do
                k = sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *) &kernel, sizeof(kernel));
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if ((size_t) k != req->nlmsg_len)
                return -EIO;

        while (!r->done) {
                _cleanup_free_ void *buf = NULL;
                size_t len = 0;
                int q = netlink_receive(fd, &buf, &len);
                if (q < 0)
                        return q;
                q = iovirt_netlink_reply_feed(r, buf, len);
                if (q < 0)
                        return q;
        }
        return 0;
}

typedef struct ReadContext {
        bool seen, twice;
        int r;
        const char *why;
        IovirtVfInfo *vfs;
        size_t n;
} ReadContext;

static int on_link(const struct nlmsghdr *nlh, void *userdata) {
        ReadContext *c = userdata;

        if (nlh->nlmsg_type != RTM_NEWLINK)
                return 0;
        if (c->seen) {
                c->twice = true;   /* one interface was asked for */
                return -EBADMSG;
        }
        c->seen = true;
        /* kept until the ack: the reply is read to its end either way */
        c->r = iovirt_vf_info_parse(nlh, &c->vfs, &c->n, &c->why);
        return 0;
}

int iovirt_vf_info_read(const char *ifname, IovirtVfInfo **ret, size_t *n_ret, char **reason) {
        _Alignas(struct nlmsghdr) uint8_t req[IOVIRT_NETLINK_REQUEST_MAX];
        ReadContext c = {};
        _cleanup_(iovirt_netlink_reply_clear) IovirtNetlinkReply reply = { .handler = on_link, .userdata = &c };
        const char *why;
        int r;

        r = iovirt_ifname_check(ifname, &why);
        if (r < 0)
                return iovirt_set_reason(reason, r, "Not a valid interface name: %s", why);
        r = iovirt_vf_getlink_build(req, sizeof(req), next_seq(), ifname);
        if (r < 0)
                return iovirt_set_reason(reason, r, "Could not build the request for %s: %s", ifname, strerror(-r));

        r = netlink_transact((const struct nlmsghdr *) req, &reply);
        _cleanup_free_ IovirtVfInfo *vfs = c.vfs;   /* whatever happened, it is freed */
        if (c.twice)
                return iovirt_set_reason(reason, r, "The kernel described %s more than once", ifname);
        if (r < 0)
                return iovirt_set_reason(reason, r, "Could not ask the kernel about %s: %s", ifname, strerror(-r));
        if (reply.error == -ENODEV)
                return iovirt_set_reason(reason, reply.error, "No network interface %s in this network namespace",
                                         ifname);
        if (reply.error < 0)
                return iovirt_set_reason(reason, reply.error, "Could not read the VF settings of %s: %s%s%s", ifname,
                                         strerror(-reply.error), reply.message ? "; the kernel says: " : "",
                                         reply.message ?: "");
        if (!c.seen)
                return iovirt_set_reason(reason, -EBADMSG, "The kernel acknowledged the request without describing %s",
                                         ifname);
        if (c.r == -EOPNOTSUPP)
                return iovirt_set_reason(reason, c.r, "%s %s", ifname, c.why);
        if (c.r == -ENOMEM)
                return iovirt_set_reason(reason, c.r, "Out of memory reading the VFs of %s", ifname);
        if (c.r < 0)
                return iovirt_set_reason(reason, c.r, "The kernel's description of %s is malformed: %s", ifname, c.why);

        *ret = TAKE_PTR(vfs);
        *n_ret = c.n;
        return c.r;
}

/* The settings in the order do_setvfinfo() applies them */
enum { STEP_MAC, STEP_VLAN, STEP_SPOOFCHK, STEP_TRUST, _STEP_MAX };

static const struct {
        const char *name;
        const char *ndo;
} steps[_STEP_MAX] = {
        [STEP_MAC] = { "MAC address", "ndo_set_vf_mac" },
        [STEP_VLAN] = { "VLAN", "ndo_set_vf_vlan" },
        [STEP_SPOOFCHK] = { "spoof checking", "ndo_set_vf_spoofchk" },
        [STEP_TRUST] = { "trust", "ndo_set_vf_trust" },
};

/* s reduced to the one setting of step; false if it does not set it. */
static bool step_settings(const IovirtVfSettings *s, unsigned step, IovirtVfSettings *ret) {
        *ret = (IovirtVfSettings) {};
        switch (step) {
        case STEP_MAC:
                ret->set_mac = s->set_mac;
                memcpy(ret->mac, s->mac, 6);
                return s->set_mac;
        case STEP_VLAN:
                ret->set_vlan = s->set_vlan;
                ret->vlan = s->vlan;
                return s->set_vlan;
        case STEP_SPOOFCHK:
                ret->set_spoofchk = s->set_spoofchk;
                ret->spoofchk = s->spoofchk;
                return s->set_spoofchk;
        case STEP_TRUST:
                ret->set_trust = s->set_trust;
                ret->trust = s->trust;
                return s->set_trust;
        }
        return false;
}

static const char *step_value(const IovirtVfSettings *s, unsigned step, char buf[static IOVIRT_MAC_STRING_MAX]) {
        switch (step) {
        case STEP_MAC:
                return iovirt_mac_format(s->mac, buf);
        case STEP_VLAN:
                snprintf(buf, IOVIRT_MAC_STRING_MAX, "%u", s->vlan);
                return buf;
        case STEP_SPOOFCHK:
                return s->spoofchk ? "on" : "off";
        case STEP_TRUST:
                return s->trust ? "on" : "off";
        }
        return "?";
}

static int step_error(char **reason, int error, const char *message, const char *ifname, unsigned vf,
                      const IovirtVfSettings *s, unsigned step, const char *applied) {
        char value[IOVIRT_MAC_STRING_MAX];
        const char *name = steps[step].name;
        const char *sep = *applied ? "; already applied: " : "";

        switch (error) {
        case -ENODEV:
                return iovirt_set_reason(reason, error, "No network interface %s in this network namespace%s%s", ifname,
                                         sep, applied);
        case -EOPNOTSUPP:
                return iovirt_set_reason(reason, error, "The driver of %s cannot set a VF's %s (%s)%s%s", ifname, name,
                                         steps[step].ndo, sep, applied);
        case -EPERM:
                return iovirt_set_reason(reason, error, "Setting a VF's %s on %s needs CAP_NET_ADMIN%s%s", name, ifname,
                                         sep, applied);
        case -EINVAL:
                if (message)
                        return iovirt_set_reason(reason, error, "%s refused to set VF %u's %s to %s: %s%s%s", ifname, vf,
                                                 name, step_value(s, step, value), message, sep, applied);
                return iovirt_set_reason(reason, error,
                                         "%s refused to set VF %u's %s to %s (invalid argument: does it have VF %u?)%s%s",
                                         ifname, vf, name, step_value(s, step, value), vf, sep, applied);
        default:
                return iovirt_set_reason(reason, error, "Setting VF %u's %s on %s failed: %s%s%s%s%s", vf, name, ifname,
                                         strerror(-error), message ? "; the kernel says: " : "", message ?: "", sep,
                                         applied);
        }
}

int iovirt_vf_configure(const char *ifname, unsigned vf, const IovirtVfSettings *s, char **reason) {
        char applied[64] = "";   /* the names of all steps, comma-separated, fit */
        const char *why;
        int r;

        r = iovirt_ifname_check(ifname, &why);
        if (r < 0)
                return iovirt_set_reason(reason, r, "Not a valid interface name: %s", why);
        if (vf >= INT_MAX)
                return iovirt_set_reason(reason, -EINVAL, "VF %u is out of range", vf);
        r = iovirt_vf_settings_check(s, &why);
        if (r < 0)
                return iovirt_set_reason(reason, r, "Cannot configure VF %u of %s: %s", vf, ifname, why);

        for (unsigned step = 0; step < _STEP_MAX; step++) {
                _Alignas(struct nlmsghdr) uint8_t req[IOVIRT_NETLINK_REQUEST_MAX];
                _cleanup_(iovirt_netlink_reply_clear) IovirtNetlinkReply reply = {};
                IovirtVfSettings one;

                if (!step_settings(s, step, &one))
                        continue;
                r = iovirt_vf_setlink_build(req, sizeof(req), next_seq(), ifname, vf, &one);
                if (r < 0)
                        return iovirt_set_reason(reason, r, "Could not build the request for %s: %s", ifname,
                                                 strerror(-r));
                r = netlink_transact((const struct nlmsghdr *) req, &reply);
                if (r < 0)
                        return iovirt_set_reason(reason, r, "Could not ask the kernel to set VF %u's %s on %s: %s%s%s", vf,
                                                 steps[step].name, ifname, strerror(-r),
                                                 *applied ? "; already applied: " : "", applied);
                if (reply.error < 0)
                        return step_error(reason, reply.error, reply.message, ifname, vf, &one, step, applied);
                size_t l = strlen(applied);
                snprintf(applied + l, sizeof(applied) - l, "%s%s", l ? ", " : "", steps[step].name);
        }
        return 0;
}
