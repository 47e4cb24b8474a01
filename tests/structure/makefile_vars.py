"""The Makefile as the structure tests read it: a variable's words (LAYERS,
FORMAT_SRC, RUN_PKGS, ...) and a rule's prerequisites and recipe."""
import os
import re


def makefile_lines(root):
    """The Makefile's logical lines: each backslash-continued line joined into one."""
    with open(os.path.join(root, "Makefile")) as f:
        text = f.read()
    return re.sub(r"\\\n", " ", text).splitlines()


def makefile_var(root, name):
    """The words of the `NAME = ...` line of root's Makefile (not expanded)."""
    for line in makefile_lines(root):
        m = re.match(r"%s\s*=\s*(.*)" % re.escape(name), line)
        if m:
            return m.group(1).split()
    raise AssertionError("no %s line in the Makefile" % name)


def makefile_rule(root, target):
    """(prerequisites, recipe lines) of the explicit rule `target:` in root's Makefile."""
    lines = makefile_lines(root)
    for i, line in enumerate(lines):
        m = re.match(r"%s\s*:(?!=)(.*)" % re.escape(target), line)
        if m:
            recipe = []
            for body in lines[i + 1:]:
                if not body.startswith("\t"):
                    break
                recipe.append(body.strip())
            return m.group(1).split(), recipe
    raise AssertionError("no rule for %s in the Makefile" % target)
