"""What the verdict words promise, checked on iovirtctl's own output.

Shared by test-host.py (every emulated host) and tests/e2e/guest.py (the
real kernel): for every group, the word is one of ours; isolated is one
endpoint and no peers, shared several and no peers, leaky an endpoint with
peers, bridges exactly a group without an endpoint, unknown names what it
could not read; list-groups, tree and show say the same word in text and
JSON; show's Assignment line follows the verdict and names the option that
overrides a refusal (--accept-leaky, and only for leaky)."""

import re

WORDS = ("isolated", "shared", "leaky", "bridges", "unknown")

# rule -> what a check on it is called
RULES = [
    ("word", "every verdict is one of " + ", ".join(WORDS)),
    ("isolated", "isolated means one endpoint and no peers"),
    ("shared", "shared means several endpoints and no peers"),
    ("leaky", "leaky means an endpoint with peers"),
    ("bridges", "bridges means exactly a group without an endpoint"),
    ("unknown", "unknown names what could not be read"),
    ("members", "endpoints and bridges are the group's members, bridges by their flag"),
    ("table", "list-groups prints each group's word"),
    ("tree", "tree tags every function with its group's word"),
    ("tree-json", "tree --json gives every function its group's word"),
    ("show", "show's Isolation is the group's word"),
    ("assignment", "show's Assignment line follows the group's verdict"),
]


def field_text(out, name):
    """The value of field NAME ("Assignment:") in show's text, its wrapped
    lines joined; None when it is not there."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  %-14s " % name):
            text = [line[17:].strip()]
            for more in lines[i + 1:]:
                if not more.startswith(" " * 17) or not more.strip():
                    break
                text.append(more.strip())
            return " ".join(text)
    return None


def assignment_problem(g, d, line):
    """What is wrong with show's Assignment line LINE for device D (a
    list-groups device) of group G, or None."""
    if line is None:
        return "no Assignment line"
    word, endpoints = g["isolation"], g["viability"]["endpoints"]
    others = [e for e in endpoints if e != d["address"]]
    if ("--accept-leaky" in line) != (word == "leaky"):
        return "names --accept-leaky exactly when the group is leaky"
    if word == "bridges":
        return None if line.startswith("nothing to assign") else "a group of bridges must say nothing to assign"
    if word in ("leaky", "unknown") and ("refused" not in line or "goes to a VM" in line):
        return "a %s group is refused" % word
    if word in ("isolated", "shared") and "refused" in line:
        return "an %s group is not refused" % word
    if any(o not in line for o in others):
        return "the other endpoints %s must be named" % others
    if d["bridge"]:
        return None if line.startswith("a bridge: stays with the host") else "a bridge must stay with the host"
    if word != "unknown" and "to a VM" not in line:
        return "an endpoint of an %s group goes to a VM" % word
    if word != "unknown" and ("alone" in line) != (not others):
        return "alone only when the group has one endpoint"
    return None


def problems(groups, devs, table, tree, show, show_all=True):
    """{rule: [what breaks it]} for RULES.  GROUPS is list-groups --json,
    DEVS tree --json's devices, TABLE and TREE the text of list-groups and
    tree, SHOW(address) show's text for one function.  Show is asked for
    every function, or with SHOW_ALL false for the first of each kind
    (word, bridge or not)."""
    bad = {rule: [] for rule, _ in RULES}
    tree_json = {d["address"]: d for d in devs}
    rows = {int(m.group(1)): m.group(2) for m in re.finditer(r"^ *(\d+)  (\S+) ", table, re.M)}
    tags = {m.group(1): (int(m.group(2)), m.group(3))
            for m in re.finditer(r"([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) \[group (\d+) (\w+)\]", tree)}
    shown = set()
    for g in groups["groups"]:
        num, word, peers = g["group"], g["isolation"], g["peers"]
        ends, brs = g["viability"]["endpoints"], g["viability"]["bridges"]
        members = [d["address"] for d in g["devices"]]
        if word not in WORDS:
            bad["word"].append((num, word))
        if word == "isolated" and (len(ends) != 1 or peers):
            bad["isolated"].append((num, ends, peers))
        if word == "shared" and (len(ends) < 2 or peers):
            bad["shared"].append((num, ends, peers))
        if word == "leaky" and (not peers or not ends):
            bad["leaky"].append((num, ends, peers))
        if (word == "bridges") != (not ends):
            bad["bridges"].append((num, word, ends))
        if word == "unknown" and not g["unknown_because"]:
            bad["unknown"].append(num)
        if sorted(ends + brs) != sorted(members) or \
                sorted(brs) != sorted(d["address"] for d in g["devices"] if d["bridge"]):
            bad["members"].append((num, ends, brs, members))
        if rows.get(num) != word:
            bad["table"].append((num, word, rows.get(num)))
        for d in g["devices"]:
            a = d["address"]
            if tags.get(a) != (num, word):
                bad["tree"].append((a, word, tags.get(a)))
            got = (tree_json.get(a) or {}).get("group") or {}
            if got.get("isolation") != word:
                bad["tree-json"].append((a, word, got.get("isolation")))
            if not show_all and (word, d["bridge"]) in shown:
                continue
            shown.add((word, d["bridge"]))
            out = show(a)
            said = field_text(out, "Isolation:")
            if said is None or said.split()[0] != word:
                bad["show"].append((a, word, said))
            line = field_text(out, "Assignment:")
            problem = assignment_problem(g, d, line)
            if problem:
                bad["assignment"].append((a, word, problem, line))
    return bad
