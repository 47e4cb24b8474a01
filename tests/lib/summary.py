"""
summary.py -- one summary for every suite tests/run.sh ran.

    /usr/bin/python3 tests/lib/summary.py MANIFEST

MANIFEST has one tab-separated line per component run: suite label, component
name, result file (a glob), and the component's exit status. Result files are
JUnit XML (cmocka, pytest and phpunit all write it). Prints one line per suite,
"unit build: 120 passed, 0 failed", then the failures by name, and last exactly
one line "N passed, N failed".

A testcase passes only if it has no <failure>, <error>, <skipped> or <warning>:
skips count as failures. A component also fails (as one more failure) when it
left no result file (crashed or timed out), or exited non-zero while its
results show no failure (a sanitizer report at exit, a leak, a timeout after
the file was written). The exit status is 1 if anything failed or if no test
ran at all, else 0.
"""

import glob
import sys
import xml.etree.ElementTree as ET

BAD = ("failure", "error", "skipped", "warning")


def testcases(path):
    """[(name, None or (kind, message))] for every testcase in a JUnit file."""
    root = ET.parse(path).getroot()
    out = []
    for tc in root.iter("testcase"):
        name = tc.get("name", "?")
        cls = tc.get("classname") or tc.get("class")
        if cls:
            name = "%s::%s" % (cls, name)
        problem = None
        for child in tc:
            if child.tag in BAD:
                msg = (child.get("message") or child.text or "").strip().splitlines()
                problem = (child.tag, msg[0][:160] if msg else "")
                break
        out.append((name, problem))
    return out


def main(manifest):
    suites = {}  # label -> [passed, failed, [failure lines]]
    order = []
    with open(manifest) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for row in rows:
        label, component, pattern, rc = row[0], row[1], row[2], int(row[3])
        if label not in suites:
            suites[label] = [0, 0, []]
            order.append(label)
        s = suites[label]
        files = sorted(glob.glob(pattern)) if pattern else []
        cases = []
        broken = []
        for p in files:
            try:
                cases += testcases(p)
            except (ET.ParseError, OSError) as e:
                broken.append("%s: unreadable result file %s (%s)" % (component, p, e))
        failed_here = 0
        for name, problem in cases:
            if problem is None:
                s[0] += 1
            else:
                s[1] += 1
                failed_here += 1
                s[2].append("%s: %s [%s] %s" % (component, name, problem[0], problem[1]))
        for b in broken:
            s[1] += 1
            s[2].append(b)
        if not pattern:
            s[1] += 1
            s[2].append(component)
        elif not files:
            s[1] += 1
            why = "timed out" if rc in (124, 137) else "crashed or never ran"
            s[2].append("%s: no result file, %s (exit status %d)" % (component, why, rc))
        elif rc != 0 and failed_here == 0 and not broken:
            s[1] += 1
            if rc in (124, 137):
                s[2].append("%s: timed out (exit status %d)" % (component, rc))
            else:
                s[2].append("%s: exit status %d although its results show no failure"
                            " (sanitizer report or leak at exit?)" % (component, rc))

    total_pass = sum(s[0] for s in suites.values())
    total_fail = sum(s[1] for s in suites.values())
    for label in order:
        s = suites[label]
        print("%s: %d passed, %d failed" % (label, s[0], s[1]))
    for label in order:
        for line in suites[label][2]:
            print("FAILED %s: %s" % (label, line))
    if total_pass + total_fail == 0:
        print("no test ran")
    print("%d passed, %d failed" % (total_pass, total_fail))
    return 1 if total_fail or total_pass == 0 else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: summary.py MANIFEST\n")
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
