"""The Makefile's variables the structure tests read (LAYERS, FORMAT_SRC)."""
import os
import re


def makefile_var(root, name):
    """The words of the `NAME = ...` line of root's Makefile."""
    with open(os.path.join(root, "Makefile")) as f:
        for line in f:
            m = re.match(r"%s\s*=\s*(.*)" % re.escape(name), line)
            if m:
                return m.group(1).split()
    raise AssertionError("no %s line in the Makefile" % name)
