"""The C code is as clang-format makes it (.clang-format); `make format`
rewrites it so. The files are those `make format` formats."""
import glob
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATTERNS = ("src/*.c", "lib/*/*.[ch]", "tests/*/*.[ch]", "bench/*.[ch]")


def unformatted(root, files):
    """The files clang-format would change, each with its first complaint."""
    bad = []
    for rel in files:
        r = subprocess.run(["clang-format", "--dry-run", "--Werror", rel], cwd=root,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            bad.append("%s: %s" % (rel, (r.stderr.splitlines() or ["?"])[0]))
    return bad


def test_every_c_file_is_formatted():
    files = sorted(os.path.relpath(f, ROOT) for p in PATTERNS
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
