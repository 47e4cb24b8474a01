"""The C code is as clang-format makes it (.clang-format); `make format`
rewrites it so. The files are the Makefile's FORMAT_SRC, which `make
format` formats."""
import glob
import os
import re
import shutil
import subprocess

from makefile_vars import makefile_var

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def unformatted(root, files):
    """The files clang-format would change, each with its first complaint (one run for all)."""
    r = subprocess.run(["clang-format", "--dry-run", "--Werror"] + list(files), cwd=root,
                       capture_output=True, text=True, timeout=120)
    first = {}
    for line in r.stderr.splitlines():
        m = re.match(r"([^:]+):\d+:\d+: (?:error|warning): ", line)
        if m and m.group(1) in files:
            first.setdefault(m.group(1), line)
    assert r.returncode == 0 or first, "clang-format failed: " + r.stderr[-500:]
    return ["%s: %s" % (f, first[f]) for f in files if f in first]


def test_every_c_file_is_formatted():
    files = sorted(os.path.relpath(f, ROOT) for p in makefile_var(ROOT, "FORMAT_SRC")
                   for f in glob.glob(os.path.join(ROOT, p)))
    assert len(files) > 100
    bad = unformatted(ROOT, files)
    assert not bad, "run `make format`; clang-format would change:\n" + "\n".join(bad)


def test_the_check_catches_a_misformatted_file(tmp_path):
    shutil.copy(os.path.join(ROOT, ".clang-format"), tmp_path)
    (tmp_path / "good.c").write_text("int f(void)\n{\n    return 1;\n}\n")
    (tmp_path / "bad.c").write_text("int f(void) {\n  return 1; }\n")
    bad = unformatted(str(tmp_path), ["good.c", "bad.c"])
    assert len(bad) == 1 and bad[0].startswith("bad.c: ")
