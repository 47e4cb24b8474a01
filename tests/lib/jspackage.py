"""
jspackage.py -- php-client/js as the npm package a front-end developer installs: `npm pack` into
a temp directory, then `npm install <tarball>` into a fresh project there (offline: the package
has no dependencies), and TypeScript's tsc (tests/js's pinned typescript) run in that project.

Used by 61-herald-js-package.py (the package, import and require, the types against the code)
and 63-herald-js-types.py (tests/js/types compiled against the installed package). Needs node,
npm and `npm ci --prefix tests/js`.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

from jsdriver import NODE, ROOT

JS_DIR = os.path.join(ROOT, "php-client", "js")
TYPESCRIPT = os.path.join(ROOT, "tests", "js", "node_modules", "typescript")
TSC = os.path.join(TYPESCRIPT, "bin", "tsc")
NPM = shutil.which("npm") or "/usr/bin/npm"
# tsc --pretty false: "file(line,col): error TS2345: message" (more lines may follow).
DIAGNOSTIC = re.compile(r"^(?P<file>[^(\s][^(]*)\((?P<line>\d+),(?P<col>\d+)\): "
                        r"error (?P<code>TS\d+): (?P<text>.*)$")


def require_typescript():
    assert os.path.exists(os.path.join(TYPESCRIPT, "package.json")), \
        "typescript is missing: run `npm ci --prefix tests/js` in the repository root"


def run(argv, cwd, timeout=120):
    """Run argv in cwd; its CompletedProcess (text), which the caller checks."""
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


def ok(argv, cwd, timeout=120):
    """Run argv in cwd, which must succeed; its stdout."""
    p = run(argv, cwd, timeout)
    assert p.returncode == 0, "%s failed (%d):\n%s\n%s" % (argv, p.returncode, p.stdout,
                                                         p.stderr)
    return p.stdout


class Package:
    """php-client/js packed (tarball, the `npm pack --json` report) under a temp directory."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="herald-npm-")
        out = ok([NPM, "pack", "--json", "--pack-destination", self.tmp], JS_DIR)
        self.report = json.loads(out)[0]
        self.tarball = os.path.join(self.tmp, self.report["filename"])
        assert os.path.isfile(self.tarball), self.report

    def files(self):
        """The paths the tarball holds, relative to the package root."""
        return sorted(f["path"] for f in self.report["files"])

    def project(self, name, module_type=None):
        """A fresh project under the temp dir with the tarball installed; its path."""
        path = os.path.join(self.tmp, name)
        os.mkdir(path)
        meta = {"name": name, "version": "1.0.0", "private": True}
        if module_type:
            meta["type"] = module_type
        with open(os.path.join(path, "package.json"), "w") as f:
            json.dump(meta, f)
        ok([NPM, "install", "--offline", "--no-audit", "--no-fund", self.tarball], path)
        return path

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def tsc(project, files, **options):
    """tsc --strict on files in project with a tsconfig of options; (exit status, diagnostics,
    output), each diagnostic a dict of file, line, col, code, text."""
    require_typescript()
    compiler = {"strict": True, "target": "es2022", "lib": ["es2022", "dom"], "types": [],
                "noEmit": True}
    compiler.update(options)
    config = os.path.join(project, "tsconfig.json")
    with open(config, "w") as f:
        json.dump({"compilerOptions": compiler, "files": list(files)}, f)
    p = run([NODE, TSC, "-p", config, "--pretty", "false"], project, timeout=180)
    found = [m.groupdict() for m in map(DIAGNOSTIC.match, p.stdout.splitlines()) if m]
    for d in found:
        d["line"] = int(d["line"])
    return p.returncode, found, p.stdout + p.stderr
