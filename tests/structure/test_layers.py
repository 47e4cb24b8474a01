"""The C tree's shape: layers whose includes point down only, no include
cycle, no C file over MAX_LINES lines (docs/internals.md).

The layers and their order come from the Makefile's LAYERS line (lowest
first); src/ sits above them all. A module is a .c and its .h, named for
the file; module A depends on module B when A's .c or .h includes "B.h".
layers-known.txt lists the edges and files that break a rule today, each
with the change that removes it: they are left out of the checks, and a
listed edge or file that no longer breaks the rule fails the suite, so the
list only shrinks.
"""
import os
import re

import pytest

from makefile_vars import makefile_var

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KNOWN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layers-known.txt")
MAX_LINES = 1000
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)\.h"', re.M)


def scan(root, layers):
    """Modules {name: (rank, [files])} and edges {(a, b)}: a includes b.h."""
    modules, edges = {}, set()
    dirs = [("lib/" + l, i) for i, l in enumerate(layers)] + [("src", len(layers))]
    for d, rank in dirs:
        path = os.path.join(root, d)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            base, ext = os.path.splitext(name)
            if ext not in (".c", ".h"):
                continue
            if base in modules and modules[base][0] != rank:
                raise AssertionError("module %s is in two layers" % base)
            modules.setdefault(base, (rank, []))[1].append(os.path.join(d, name))
    for base, (_, files) in modules.items():
        for rel in files:
            with open(os.path.join(root, rel)) as f:
                for inc in INCLUDE.findall(f.read()):
                    if inc in modules and inc != base:
                        edges.add((base, inc))
    return modules, edges


def upward(modules, edges):
    """Edges from a lower layer to a higher one."""
    return sorted((a, b) for a, b in edges if modules[b][0] > modules[a][0])


def find_cycle(edges):
    """One include cycle as a list of modules (first repeated last), or None."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, [])):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def reaches(edges, start, goal):
    """Whether goal can be reached from start along edges."""
    seen, todo = {start}, [start]
    while todo:
        v = todo.pop()
        if v == goal:
            return True
        for a, b in edges:
            if a == v and b not in seen:
                seen.add(b)
                todo.append(b)
    return False


def long_files(root, modules):
    """C files over MAX_LINES lines, with their length."""
    out = []
    for _, files in modules.values():
        for rel in files:
            if rel.endswith(".c"):
                with open(os.path.join(root, rel)) as f:
                    n = sum(1 for _ in f)
                if n > MAX_LINES:
                    out.append((rel, n))
    return sorted(out)


def known():
    """(edges, files) listed in layers-known.txt."""
    edges, files = set(), set()
    with open(KNOWN) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.match(r"(\w+)\s*->\s*(\w+)$", line)
            if m:
                edges.add((m.group(1), m.group(2)))
            elif line.startswith("long "):
                files.add(line[5:].strip())
            else:
                raise AssertionError("layers-known.txt: cannot read %r" % line)
    return edges, files


@pytest.fixture(scope="module")
def tree():
    layers = makefile_var(ROOT, "LAYERS")
    modules, edges = scan(ROOT, layers)
    return modules, edges


def test_no_include_points_to_a_higher_layer(tree):
    modules, edges = tree
    k_edges, _ = known()
    bad = [e for e in upward(modules, edges) if e not in k_edges]
    assert not bad, "includes from a lower layer to a higher one: " + ", ".join(
        "%s (%s) -> %s (%s)" % (a, modules[a][1][0], b, modules[b][1][0]) for a, b in bad)


def test_no_include_cycle(tree):
    _, edges = tree
    k_edges, _ = known()
    cycle = find_cycle(edges - k_edges)
    assert cycle is None, "include cycle: " + " -> ".join(cycle)


def test_no_c_file_over_the_limit(tree):
    modules, _ = tree
    _, k_files = known()
    bad = [(f, n) for f, n in long_files(ROOT, modules) if f not in k_files]
    assert not bad, "C files over %d lines: %s" % (MAX_LINES, bad)


def test_every_known_exception_still_breaks_a_rule(tree):
    """Fixed exceptions leave the list, so it only shrinks."""
    modules, edges = tree
    k_edges, k_files = known()
    ups = set(upward(modules, edges))
    for a, b in sorted(k_edges):
        assert (a, b) in edges, "layers-known.txt: %s -> %s is gone; remove it" % (a, b)
        assert (a, b) in ups or reaches(edges, b, a), \
            "layers-known.txt: %s -> %s points down and closes no cycle; remove it" % (a, b)
    longs = dict(long_files(ROOT, modules))
    for f in sorted(k_files):
        assert f in longs, "layers-known.txt: %s is within %d lines; remove it" % (f, MAX_LINES)


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_the_checks_catch_an_upward_include_a_cycle_and_a_long_file(tmp_path):
    """The rules as they apply to a small tree that breaks each one."""
    root = str(tmp_path)
    write(root, "Makefile", "LAYERS = low high\n")
    write(root, "lib/low/a.h", '#include "b.h"\n')
    write(root, "lib/low/a.c", '#include "a.h"\n#include "c.h"\n')
    write(root, "lib/low/c.h", '#include "a.h"\n')
    write(root, "lib/high/b.h", "")
    write(root, "lib/high/b.c", '#include "a.h"\n' + "int x;\n" * MAX_LINES)
    write(root, "src/main.c", '#include "b.h"\n')
    modules, edges = scan(root, makefile_var(root, "LAYERS"))
    assert upward(modules, edges) == [("a", "b")]
    assert find_cycle(edges) is not None
    assert reaches(edges, "c", "a") and not reaches(edges, "c", "main")
    assert find_cycle({("a", "b"), ("b", "a")}) == ["a", "b", "a"]
    assert find_cycle({("b", "a"), ("main", "b")}) is None
    assert long_files(root, modules) == [("lib/high/b.c", MAX_LINES + 1)]
