/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* NUMA: the host's nodes, their distances and sockets, where a consumer
 * runs, and OpenStack Nova's PCI NUMA affinity policies (plus none) judged
 * on those facts.  Gather, then judge: the readers fill IovirtNumaFacts, and
 * every decision is a pure function of it, testable on hand-built facts. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IOVIRT_NUMA_NODES_MAX 1024      /* the kernel's MAX_NUMNODES (NODES_SHIFT 10) */
#define IOVIRT_NUMA_CPUS_MAX 65536
#define IOVIRT_NUMA_LOCAL_DISTANCE 10   /* ACPI SLIT: a node to itself */

/* A set of small numbers (CPUs, nodes) */
typedef struct IovirtBitmap {
        uint64_t *words;
        size_t n_words;
} IovirtBitmap;

int iovirt_bitmap_set(IovirtBitmap *b, unsigned i);
bool iovirt_bitmap_test(const IovirtBitmap *b, unsigned i);
unsigned iovirt_bitmap_count(const IovirtBitmap *b);
/* The first member >= from, or -1 */
int iovirt_bitmap_next(const IovirtBitmap *b, unsigned from);
void iovirt_bitmap_clear(IovirtBitmap *b);
/* The kernel's list form, "0-3,8-11" ("" when empty); a new string */
int iovirt_bitmap_format(const IovirtBitmap *b, char **ret);

/* Parses a list as the kernel prints it ("0-3,8-11", "5", "" or "\n" for
 * none) into *ret (cleared first).  -EINVAL when malformed, -ERANGE past
 * the maximum (IOVIRT_NUMA_CPUS_MAX, IOVIRT_NUMA_NODES_MAX). */
int iovirt_numa_cpulist_parse(const char *s, IovirtBitmap *ret);
int iovirt_numa_nodelist_parse(const char *s, IovirtBitmap *ret);

typedef struct IovirtNumaNode {
        int id;
        IovirtBitmap cpus;
        int socket;             /* physical_package_id of its CPUs; -1: no CPUs (memory-only node) or unreadable */
        bool sockets_mixed;     /* its CPUs are in several packages; socket is the first CPU's */
        uint8_t *distance;      /* by node id: distance[j] to node j (0: unknown); NULL: unknown */
        size_t n_distance;
} IovirtNumaNode;

typedef struct IovirtNumaFacts {
        IovirtNumaNode *nodes;  /* by ascending id; none on a kernel without NUMA */
        size_t n_nodes;
} IovirtNumaFacts;

IovirtNumaFacts *iovirt_numa_facts_free(IovirtNumaFacts *f);

/* Reads SYSFS_NODE/node*: cpulist, distance, and the physical_package_id of
 * each node's CPUs (SYSFS_CPU/cpuN/topology).  Sysfs paths are used as they
 * are (umockdev redirects them); read_at puts prefix before them, for tests
 * on a plain directory.  No node directory (a kernel without NUMA) gives
 * facts with no node; an unreadable cpulist fails (-errno), an unreadable or
 * malformed distance row leaves that node's distances unknown. */
int iovirt_numa_facts_read(IovirtNumaFacts **ret);
int iovirt_numa_facts_read_at(const char *prefix, IovirtNumaFacts **ret);

const IovirtNumaNode *iovirt_numa_node(const IovirtNumaFacts *f, int id);
/* The distance from node a to node b, IOVIRT_NUMA_LOCAL_DISTANCE when a ==
 * b, -1 when unknown */
int iovirt_numa_distance(const IovirtNumaFacts *f, int a, int b);
/* The socket of node id, -1 when unknown */
int iovirt_numa_socket(const IovirtNumaFacts *f, int id);

/* A process's placement: Cpus_allowed_list and Mems_allowed_list of
 * $IOVIRT_ROOT/proc/PID/status.  -ENOENT when it is gone, -EBADMSG when a
 * list is missing or malformed. */
int iovirt_numa_process_read(pid_t pid, IovirtBitmap *cpus, IovirtBitmap *mems);

/* The nodes a consumer runs on, from the CPUs it may use and the memory
 * nodes it may allocate from (either may be NULL): the nodes of its CPUs,
 * narrowed to its memory nodes when they overlap; its memory nodes when no
 * CPU maps to a node. */
int iovirt_numa_placement(const IovirtNumaFacts *f, const IovirtBitmap *cpus, const IovirtBitmap *mems,
                          IovirtBitmap *ret);

typedef enum IovirtNumaPolicy {
        IOVIRT_NUMA_NONE,       /* no NUMA rule */
        IOVIRT_NUMA_LEGACY,     /* on one of the consumer's nodes; a device of unknown node allowed */
        IOVIRT_NUMA_REQUIRED,   /* on one of the consumer's nodes; unknown refused */
        IOVIRT_NUMA_PREFERRED,  /* local first, else any, nearest by distance */
        IOVIRT_NUMA_SOCKET,     /* on a node of the same socket as one of the consumer's nodes */
        _IOVIRT_NUMA_POLICY_MAX,
} IovirtNumaPolicy;

extern const char *const iovirt_numa_policy_names[_IOVIRT_NUMA_POLICY_MAX];
const char *iovirt_numa_policy_to_string(IovirtNumaPolicy p);
/* -EINVAL for an unknown name */
int iovirt_numa_policy_from_string(const char *s);

/* Why a device was allowed or refused; machine-readable under --json */
typedef enum IovirtNumaReason {
        IOVIRT_NUMA_REASON_NO_POLICY,           /* allowed: policy none */
        IOVIRT_NUMA_REASON_ONE_NODE,            /* allowed: the host has one NUMA node (or none) */
        IOVIRT_NUMA_REASON_LOCAL,               /* allowed: on one of the consumer's nodes */
        IOVIRT_NUMA_REASON_SAME_SOCKET,         /* allowed (socket): another node of a consumer's socket */
        IOVIRT_NUMA_REASON_REMOTE_ALLOWED,      /* allowed (preferred): on another node */
        IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN_ALLOWED,   /* allowed (legacy, preferred) */
        IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN_ALLOWED,      /* allowed (legacy, preferred) */
        IOVIRT_NUMA_REASON_REMOTE,              /* refused (required, legacy) */
        IOVIRT_NUMA_REASON_OTHER_SOCKET,        /* refused (socket) */
        IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN, /* refused (required, socket) */
        IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN,    /* refused (required, socket) */
        _IOVIRT_NUMA_REASON_MAX,
} IovirtNumaReason;

const char *iovirt_numa_reason_to_string(IovirtNumaReason r);
bool iovirt_numa_reason_allows(IovirtNumaReason r);

/* The decision alone: device_node -1 when the device has none;
 * consumer_nodes NULL or empty when where the consumer runs is unknown. */
IovirtNumaReason iovirt_numa_decide(const IovirtNumaFacts *f, IovirtNumaPolicy policy, int device_node,
                                    const IovirtBitmap *consumer_nodes);

/* Names for the sentence; consumer and pool may be NULL */
typedef struct IovirtNumaSubject {
        const char *device;     /* "0000:af:00.2" */
        const char *consumer;   /* "vm-web" */
        const char *pool;       /* "nics" */
} IovirtNumaSubject;

typedef struct IovirtNumaVerdict {
        bool allowed;
        IovirtNumaReason reason;
        char *sentence;         /* "0000:af:00.2 is on NUMA node 1; vm-web runs on node 0; pool 'nics' requires the same node" */
} IovirtNumaVerdict;

void iovirt_numa_verdict_clear(IovirtNumaVerdict *v);

/* Decides and says why.  0, -EINVAL for a policy out of range, -ENOMEM
 * when the sentence cannot be made (nothing is returned then). */
int iovirt_numa_judge(const IovirtNumaFacts *f, IovirtNumaPolicy policy, int device_node,
                      const IovirtBitmap *consumer_nodes, const IovirtNumaSubject *subject,
                      IovirtNumaVerdict *ret);

/* Orders n candidate devices (device_nodes[i]: the node of candidate i, -1
 * unknown) for a consumer: order[] receives candidate indexes, those the
 * policy allows first, each part nearest first (the smallest distance from
 * the device's node to any of the consumer's nodes; unknown distances and
 * nodes last; ties keep the given order).  Returns how many are allowed
 * (the first ones in order), -ENOMEM. */
int iovirt_numa_choose(const IovirtNumaFacts *f, IovirtNumaPolicy policy, const IovirtBitmap *consumer_nodes,
                       const int *device_nodes, size_t n, size_t *order);
