"""
63-herald-js-types.py -- php-client/js/herald.d.ts under TypeScript (tests/js's pinned
typescript), in a project that installed the npm package from its tarball, as a front-end
developer would (tests/lib/jspackage.py).

  - tests/js/types/ok.ts (an ES module) and ok-require.cts (CommonJS) use the whole API with an
    event map and compile under --strict (module nodenext, which checks the package's "exports"
    and both declaration files, and the declarations themselves: no skipLibCheck); then node
    runs what tsc wrote, and each prints what the client did: the types lead to working code.
  - ok.ts compiles for a bundler too (module esnext, moduleResolution bundler).
  - Every tests/js/types/bad-*.ts misuses the API once (a wrong event name, payload type,
    option, missing argument ...) and marks each line that must fail with
    `// error: TS<code>`: tsc must report exactly those codes on exactly those lines, so a file
    cannot pass by failing for another reason.
"""

import glob
import json
import os
import re
import shutil

import pytest

from jsdriver import NODE, ROOT
from jspackage import Package, run, tsc

TYPES_DIR = os.path.join(ROOT, "tests", "js", "types")
NODENEXT = {"module": "nodenext", "moduleResolution": "nodenext"}
MARK = re.compile(r"// error: (TS\d+)\s*$")


@pytest.fixture(scope="module")
def project():
    """An ES module project with herald-client installed and tests/js/types copied in."""
    pkg = Package()
    try:
        path = pkg.project("typed-app", "module")
        for f in os.listdir(TYPES_DIR):
            shutil.copy(os.path.join(TYPES_DIR, f), path)
        yield path
    finally:
        pkg.cleanup()


def run_json(project, script):
    p = run([NODE, os.path.join(project, script)], project, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_typed_use_compiles_strict_and_the_output_runs(project):
    status, found, out = tsc(project, ["ok.ts", "ok-require.cts"], noEmit=False, outDir="out",
                             **NODENEXT)
    assert status == 0 and not found, out
    got = run_json(project, "out/ok.js")
    assert got["before"] == {"state": "open", "url": "ws://127.0.0.1:9/ws", "backoffMax": 5000}
    assert got["after"] == "closed"
    assert got["socket"] == ["ws://127.0.0.1:9/ws?since=", ["herald", "herald.token.jwt"],
                             ["subscribe", "unsubscribe", "publish", "rpc"]]
    assert got["seen"] == ["order.shipped 7 orders:1 - e1:3", 'order.shipped {"order":7}',
                           "close 1000 null"]
    assert got["errors"] == ["HeraldError disconnected room:1", "HeraldError disconnected team:2",
                             "HeraldError disconnected chat:1", "HeraldError disconnected -"]
    assert got["states"] == ["connecting", "open", "close"]
    assert got["where"] == {"user": None, "channels": {"room:1": None}}
    assert got["sameDefault"] is True and got["direct"] == ["timeout", "made here", True]
    assert run_json(project, "out/ok-require.cjs") == {"code": "disconnected", "same": True,
                                                       "state": "closed"}


def test_typed_use_compiles_for_a_bundler(project):
    status, found, out = tsc(project, ["ok.ts"], module="esnext", moduleResolution="bundler")
    assert status == 0 and not found, out


def expected_errors(path):
    """{(line, code)} a bad-*.ts file marks with `// error: TS<code>`."""
    with open(path) as f:
        return {(n, m.group(1)) for n, line in enumerate(f, 1) for m in [MARK.search(line)] if m}


def test_each_misuse_fails_with_its_own_error_code(project):
    bad = sorted(os.path.basename(p) for p in glob.glob(os.path.join(TYPES_DIR, "bad-*.ts")))
    assert len(bad) >= 10, bad
    want = {name: expected_errors(os.path.join(TYPES_DIR, name)) for name in bad}
    assert all(want.values()), "a bad-*.ts file marks no error: %r" % want
    status, found, out = tsc(project, bad, **NODENEXT)
    assert status != 0
    assert {d["file"] for d in found} <= set(bad), "errors outside the bad files:\n" + out
    got = {name: {(d["line"], d["code"]) for d in found if d["file"] == name} for name in bad}
    assert got == want, out
