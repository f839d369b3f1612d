"""IOVIRT_TEST_WRAPPER: a command the tests put in front of iovirtd and
iovirtctl, never in front of the tools they check them with (lspci, busctl,
gdbus).  `meson test --setup valgrind` sets it to valgrind's memcheck
(root meson.build).

Under valgrind every run writes its own XML report (--xml-file, one file per
run), read back after the run: each <error> in it (an invalid read or write,
a jump on an uninitialised value, a bad free, a definite leak with
--errors-for-leak-kinds=definite) and each crash is a failure of the test,
whatever the program's exit code was and whether or not the test stops the
program itself or looks at its exit status.  A run that never finished its
report (SIGKILLed on purpose, as the crash tests do) still has its errors
up to the kill.

The environment, LD_PRELOAD with it, is the one the program would have had:
valgrind hands LD_PRELOAD to its client behind its own preloads, and its
launcher (a shell script and a dynamically linked valgrind.bin, which
execs the statically linked tool) touches neither /sys nor /dev, so
umockdev's preload and the emulator's do nothing there."""

import atexit
import os
import re
import shlex
import sys
import tempfile
import xml.etree.ElementTree as ET

ENV = "IOVIRT_TEST_WRAPPER"
LOGS_ENV = "IOVIRT_TEST_WRAPPER_LOGS"    # where the reports go (default: a temporary folder)

ARGV = shlex.split(os.environ.get(ENV, ""))
VALGRIND = bool(ARGV) and os.path.basename(ARGV[0]).startswith("valgrind")
# How many times longer a wrapped program may take: for the tests' bounded
# waits on a program (its start, its stop, one command), never for an
# assertion about speed.  Memcheck runs our code 10-50 times slower.
SLOW = 20 if VALGRIND else 3 if ARGV else 1

# signals that mean the program crashed; SIGKILL and SIGTERM are how tests stop it
CRASHES = {"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGSYS", "SIGTRAP"}

_runs = []          # [(program name, report path)] not yet judged
_procs = []         # programs started in the background (started())
_dir = None
_judged = 0


def active():
    return bool(ARGV)


def prefix(name):
    """The command to put in front of program NAME (iovirtd, iovirtctl): []
    without a wrapper.  Under valgrind it adds this run's report file."""
    global _dir
    if not VALGRIND:
        return list(ARGV)
    if _dir is None:
        base = os.environ.get(LOGS_ENV) or None
        if base:
            os.makedirs(base, exist_ok=True)
        # test-host.py's host name is its second argument; other tests' are paths
        tag = os.path.splitext(os.path.basename(sys.argv[0]))[0] or "test"
        if len(sys.argv) > 2 and re.fullmatch(r"[\w-]+", sys.argv[2]):
            tag += "." + sys.argv[2]
        _dir = tempfile.mkdtemp(prefix=tag + ".", dir=base)
    path = os.path.join(_dir, "%s.%d.xml" % (name, len(_runs) + _judged + 1))
    _runs.append((name, path))
    # --child-silent-after-fork: a child forked before an exec would write
    # into this run's XML and break it; the exec'd program itself is not
    # followed (no --trace-children)
    return ARGV + ["--xml=yes", "--xml-file=" + path, "--log-file=" + path[:-4] + ".log",
                   "--child-silent-after-fork=yes"]


def started(proc):
    """PROC (a subprocess.Popen of a wrapped program) is stopped, if the
    test left it running, before the judgment at exit: its report is
    whole only once it has exited."""
    if VALGRIND:
        _procs.append(proc)


def _describe(e):
    """An <error> or <fatal_signal> as text: what, then each stack (the
    access's, then the block's, "Address ... alloc'd") under its heading"""
    out = []
    for child in e:
        if child.tag in ("what", "auxwhat"):
            out.append(("  " if out else "") + (child.text or ""))
        elif child.tag == "xwhat":
            out.append(child.findtext("text") or "")
        elif child.tag == "signame":
            out.append("crashed: %s" % child.text)
        elif child.tag == "stack":
            for f in child.findall("frame")[:10]:
                fn = f.findtext("fn") or f.findtext("obj") or f.findtext("ip")
                where = f.findtext("file")
                out.append("    %s%s" % (fn, " (%s:%s)" % (where, f.findtext("line")) if where else ""))
    return "\n".join(out)


def read_report(path):
    """([problem text], finished) of one run's XML report"""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return ["no report at %s: valgrind did not start?" % path], False
    problems = []
    # element by element: a report cut short by SIGKILL is not a whole document
    for block in re.findall(r"<error>.*?</error>", text, re.S):
        e = ET.fromstring(block)
        problems.append("%s: %s" % (e.findtext("kind"), _describe(e)))
    for block in re.findall(r"<fatal_signal>.*?</fatal_signal>", text, re.S):
        e = ET.fromstring(block)
        if e.findtext("signame") in CRASHES:
            problems.append(_describe(e))
    return problems, "</valgrindoutput>" in text


def judge():
    """(runs, unfinished, {program: n}, [problems]) over the runs since the
    last judgment.  Call it once the programs have exited: a report is whole
    only then.  Reports without problems are removed."""
    global _judged
    runs, unfinished, per, problems = len(_runs), 0, {}, []
    for name, path in _runs:
        per[name] = per.get(name, 0) + 1
        found, finished = read_report(path)
        unfinished += not finished
        if found:
            problems += ["%s (%s):\n%s" % (name, path, p) for p in found]
        else:
            for p in (path, path[:-4] + ".log"):
                if os.path.exists(p):
                    os.unlink(p)
    _judged += len(_runs)
    del _runs[:]
    if _dir and not os.listdir(_dir):
        os.rmdir(_dir)
    return runs, unfinished, per, problems


def summary(runs, unfinished, per):
    return "valgrind memcheck over %s: no errors, no definite leaks%s" % (
        ", ".join("%d runs of %s" % (n, p) for p, n in sorted(per.items())),
        " (%d cut short on purpose, checked up to then)" % unfinished if unfinished else "")


def _at_exit():
    """For tests that cannot report it as a TAP line of their own: errors
    found in runs nobody judged turn into a TAP bail-out and exit status 1,
    both of which meson counts as a failed test."""
    if not _runs:
        return
    for p in _procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(60 * SLOW)
            except Exception:
                p.kill()
                p.wait()
    runs, unfinished, per, problems = judge()
    sys.stdout.flush()
    if problems:
        print("Bail out! valgrind found %d problem(s) in %d runs; reports kept in %s" % (len(problems), runs, _dir))
        for p in problems[:20]:
            for line in p.splitlines():
                print("#   " + line)
        sys.stdout.flush()
        os._exit(1)
    print("# " + summary(runs, unfinished, per), flush=True)


def judge_at_exit():
    """Registers the judgment of every run not judged before the test's end."""
    if VALGRIND:
        atexit.register(_at_exit)


_probed = {}


def lacks_pidfd_open():
    """The reason a wrapped program cannot open a pidfd, or None: valgrind
    3.19 (Debian 12) answers pidfd_open(2) with ENOSYS, so iovirtd under it
    refuses every pid: consumer (fail closed: it cannot pin the process).
    For the tests of pid: consumers to skip under such a wrapper, saying so."""
    if not ARGV:
        return None
    if "pidfd_open" not in _probed:
        import subprocess
        probe = ("import os, sys\n"
                 "try:\n    os.close(os.pidfd_open(os.getpid()))\n"
                 "except OSError as e:\n    sys.exit(str(e))\n")
        p = subprocess.run(ARGV + ["-q", "--xml=no", "--log-file=/dev/null", sys.executable, "-c", probe]
                           if VALGRIND else ARGV + [sys.executable, "-c", probe],
                           capture_output=True, text=True, timeout=120 * SLOW)
        _probed["pidfd_open"] = None if p.returncode == 0 else \
            "%s cannot open a pidfd (%s): iovirtd under it cannot pin a pid: consumer" % (
                os.path.basename(ARGV[0]), (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1])
    return _probed["pidfd_open"]
