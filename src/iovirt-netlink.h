/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/netlink.h>

/* SR-IOV VF settings of a physical function's network interface, read and
 * changed over rtnetlink (libmnl), as `ip link show DEV` and `ip link set
 * DEV vf N mac/vlan/spoofchk/trust` do.  Interfaces are named, never
 * numbered: the kernel resolves the name when it handles the request, in the
 * caller's network namespace.
 *
 * Message building, reply walking and reply parsing are pure functions of
 * buffers; only iovirt_vf_info_read() and iovirt_vf_configure() open a
 * socket (a new one each call, closed on return).
 *
 * Reasons: the parsers of user input point *reason at a static sentence;
 * iovirt_vf_info_read() and iovirt_vf_configure() replace *reason with an
 * allocated one (free() it; it stays NULL if it could not be made). */

/* One VF as the PF's driver reports it (struct ifla_vf_info). */
typedef struct IovirtVfInfo {
        unsigned index;       /* the VF number, as `ip link set DEV vf N` takes it */
        uint8_t mac[6];       /* 00:00:00:00:00:00: none set, the VF chooses */
        unsigned vlan, qos;   /* vlan 0: no port VLAN */
        int spoofchk, trust;  /* 0 or 1; -1 unknown (the driver did not say) */
        int link_state;       /* -1 unknown, else IFLA_VF_LINK_STATE_AUTO/ENABLE/DISABLE */
} IovirtVfInfo;

/* What iovirt_vf_configure() changes: only the fields whose set_ flag is on. */
typedef struct IovirtVfSettings {
        bool set_mac;
        uint8_t mac[6];       /* unicast, or all zero: let the driver choose */
        bool set_vlan;
        unsigned vlan;        /* 1-4095; 0 removes the port VLAN (QoS is always 0) */
        bool set_spoofchk;
        bool spoofchk;
        bool set_trust;
        bool trust;
} IovirtVfSettings;

/* "aa:bb:cc:dd:ee:ff" plus NUL */
#define IOVIRT_MAC_STRING_MAX 18
/* A request iovirt builds always fits in this many bytes. */
#define IOVIRT_NETLINK_REQUEST_MAX 512

/* The VFs of the PF interface ifname, in the order the kernel lists them
 * (a VF whose driver query fails is left out, so indexes may have gaps).
 * Returns how many; *ret is a new array (free()), NULL when there are none.
 * -ENODEV: no such interface here.  -EOPNOTSUPP: the interface has no VF
 * list (not a PCI function, or a driver without ndo_get_vf_config), or is
 * not Ethernet.  -EINVAL: not a valid interface name.  Else the kernel's
 * -errno. */
int iovirt_vf_info_read(const char *ifname, IovirtVfInfo **ret, size_t *n_ret, char **reason);

/* Changes VF vf of the PF interface ifname.  One RTM_SETLINK (with
 * NLM_F_ACK) per setting, in the order the kernel's do_setvfinfo() applies
 * them (MAC, VLAN, spoof checking, trust), so that a refusal names the
 * setting; the kernel does not undo settings of one request either, and the
 * reason says which settings were applied before the one that failed.
 * Nothing set: returns 0 without asking.  -EINVAL: bad name, VF number or
 * setting, or the driver refused (with the kernel's extended-ack message
 * when it gives one).  -EOPNOTSUPP: the driver has no ndo_set_vf_* for the
 * setting.  -ENODEV, -EPERM (needs CAP_NET_ADMIN), else the kernel's -errno. */
int iovirt_vf_configure(const char *ifname, unsigned vf, const IovirtVfSettings *s, char **reason);

/* -EINVAL with a static reason unless ifname could name an interface: 1-15
 * bytes, not "." or "..", no '/', ':', whitespace or control characters. */
int iovirt_ifname_check(const char *ifname, const char **reason);

/* -EINVAL with a static reason unless every setting that is set is valid. */
int iovirt_vf_settings_check(const IovirtVfSettings *s, const char **reason);

/* Message building: the request in buf (size bytes, 4-byte aligned).  Returns
 * its length; -ENOBUFS when it does not fit, -EINVAL for a bad name, VF
 * number (at most INT_MAX - 1, as the kernel checks) or setting.  Both carry
 * NLM_F_ACK and name the interface with IFLA_IFNAME (ifi_index 0). */
int iovirt_vf_getlink_build(void *buf, size_t size, uint32_t seq, const char *ifname);
/* One IFLA_VFINFO_LIST / IFLA_VF_INFO with an attribute per setting that is
 * set: IFLA_VF_MAC, IFLA_VF_VLAN, IFLA_VF_SPOOFCHK, IFLA_VF_TRUST.  -EINVAL
 * when nothing is set. */
int iovirt_vf_setlink_build(void *buf, size_t size, uint32_t seq, const char *ifname, unsigned vf,
                            const IovirtVfSettings *s);

/* Reply parsing: the VFs of one RTM_NEWLINK message (nlh->nlmsg_len bytes
 * at nlh, already checked to fit the datagram).  Returns the count and a new
 * array as iovirt_vf_info_read() does.  -EOPNOTSUPP when there is no VF list
 * or the link is not Ethernet, with a static *reason that reads after the
 * interface's name ("reports no VF list: ..."); -EBADMSG with a static
 * sentence when the message is malformed (an attribute runs past its container, a
 * VF attribute is short, a VF lacks IFLA_VF_MAC or appears twice). */
int iovirt_vf_info_parse(const struct nlmsghdr *nlh, IovirtVfInfo **ret, size_t *n_ret, const char **reason);

/* The state of one request's reply, fed datagram by datagram. */
typedef struct IovirtNetlinkReply {
        uint32_t seq;      /* the request's */
        uint32_t portid;   /* our socket's: the kernel addresses replies to it */
        /* Called for each message of the reply that is not a control
         * message (NLMSG_ERROR, NLMSG_DONE...); a negative return stops the
         * walk and is returned.  NULL: such messages are ignored. */
        int (*handler)(const struct nlmsghdr *nlh, void *userdata);
        void *userdata;
        bool done;         /* the ack, an error or NLMSG_DONE arrived */
        int error;         /* the kernel's answer: 0 or a negative errno */
        char *message;     /* the kernel's extended-ack message with an error, or NULL */
} IovirtNetlinkReply;

/* Walks one datagram (len bytes at buf, 4-byte aligned): messages with
 * another sequence number or port id are skipped, and so is anything after
 * the end of the reply.  Returns 0 (look at done and error), -EBADMSG when
 * the datagram or a control message is malformed, -ENOBUFS for
 * NLMSG_OVERRUN, -ENOMEM, or the handler's error. */
int iovirt_netlink_reply_feed(IovirtNetlinkReply *r, const void *buf, size_t len);
void iovirt_netlink_reply_clear(IovirtNetlinkReply *r);

/* User input.  Each returns 0, or -EINVAL and (when reason is not NULL) a
 * static sentence saying what is wrong. */

/* Six pairs of hex digits (either case) separated by ':' or all by '-'.
 * Multicast and broadcast addresses are refused (a VF needs a unicast
 * address); 00:00:00:00:00:00 is accepted: it lets the driver choose. */
int iovirt_mac_parse(const char *s, uint8_t mac[static 6], const char **reason);
/* A decimal VLAN ID 0-4095 (0: no VLAN); no sign, spaces or other bases. */
int iovirt_vlan_parse(const char *s, unsigned *ret, const char **reason);
/* on/off, yes/no, true/false, 1/0, in any case.  -EINVAL otherwise. */
int iovirt_onoff_parse(const char *s, bool *ret);

/* "aa:bb:cc:dd:ee:ff", lower case; returns buf. */
char *iovirt_mac_format(const uint8_t mac[static 6], char buf[static IOVIRT_MAC_STRING_MAX]);
