"""
66-node-engines.py -- every Node package the tests (and the benchmark peer) use runs on
Debian 12's nodejs: 18.19.0, the floor our package.json files declare, and 18.20.4, what a fresh
Debian 12 installs today (bookworm-security).

`make deps` installs Debian's nodejs and npm only where no npm is on the PATH, so a machine with
a newer Node (NodeSource's 20, say) runs packages that a fresh Debian 12 cannot: playwright-core
1.62 and later declare node >=20 and refuse to start on 18.19, which broke 90-browser.py there
while it passed here. This suite reads the `engines.node` range of every package, in two places:
each entry of tests/js/package-lock.json and bench/peers/node/package-lock.json (what `npm ci`
installs anywhere), and the package.json of every package installed under tests/js/node_modules
(and bench/peers/node/node_modules, when there is one: what this machine runs). Each range must
admit both versions, by npm's own semver package (a devDependency of tests/js, run by
/usr/bin/node).
A package without engines.node claims nothing and passes; a range semver cannot read fails.
"""

import json
import os
import subprocess

from jsdriver import NODE, ROOT

DEBIAN_12_NODES = ("18.19.0", "18.20.4")
PREFIXES = (os.path.join(ROOT, "tests", "js"), os.path.join(ROOT, "bench", "peers", "node"))
SEMVER = os.path.join(ROOT, "tests", "js", "node_modules", "semver")

# semver.satisfies() for each range, or "invalid" for one semver cannot read.
SATISFIES_JS = """
const semver = require(process.argv[1]);
const [version, ranges] = JSON.parse(process.argv[2]);
console.log(JSON.stringify(ranges.map((r) =>
    semver.validRange(r) === null ? 'invalid' : semver.satisfies(version, r))));
"""


def satisfies(version, ranges):
    """{range: True, False or "invalid"} for `version`, by npm's semver under node."""
    assert os.path.exists(os.path.join(SEMVER, "package.json")), \
        "semver is missing: run `npm ci --prefix tests/js` in the repository root"
    p = subprocess.run([NODE, "-e", SATISFIES_JS, SEMVER, json.dumps([version, ranges])],
                       capture_output=True, timeout=30, cwd=ROOT)
    assert p.returncode == 0, p.stderr.decode()
    return dict(zip(ranges, json.loads(p.stdout)))


def engines_node(meta):
    """The engines.node range a package.json (or lock entry) declares, or None."""
    engines = meta.get("engines")
    return engines.get("node") if isinstance(engines, dict) else None


def locked(prefix):
    """(where, name@version, range) for every entry of prefix's package-lock.json."""
    with open(os.path.join(prefix, "package-lock.json")) as f:
        lock = json.load(f)
    assert lock.get("lockfileVersion", 0) >= 2, "a lock without per-package engines"
    for path, meta in sorted(lock["packages"].items()):
        name = path.rpartition("node_modules/")[2] or meta.get("name", "(root)")
        yield ("%s/package-lock.json" % os.path.relpath(prefix, ROOT),
               "%s@%s" % (name, meta.get("version", "")), engines_node(meta))


def package_roots(node_modules):
    """The directory of every package under node_modules: scoped, and nested ones too."""
    for entry in sorted(os.listdir(node_modules)):
        path = os.path.join(node_modules, entry)
        if entry.startswith(".") or not os.path.isdir(path):
            continue                     # .bin, .package-lock.json
        subs = [os.path.join(path, s) for s in sorted(os.listdir(path))] \
            if entry.startswith("@") else [path]
        for pkg in subs:
            yield pkg
            nested = os.path.join(pkg, "node_modules")
            if os.path.isdir(nested):
                yield from package_roots(nested)


def installed(prefix):
    """(where, name@version, range) for every package installed under prefix/node_modules."""
    node_modules = os.path.join(prefix, "node_modules")
    if not os.path.isdir(node_modules):
        return
    for pkg in package_roots(node_modules):
        with open(os.path.join(pkg, "package.json")) as f:
            meta = json.load(f)
        yield (os.path.relpath(pkg, ROOT), "%s@%s" % (meta["name"], meta["version"]),
               engines_node(meta))


def test_the_check_itself_tells_ranges_apart():
    # Known answers, so a check that admits everything cannot pass unnoticed.
    want = {">=18": True, ">=18.19": True, ">=10.0.0": True, "^18.19.0 || >=20": True,
            "18.x": True, ">=20": False, ">=18.20": False, "<18.19": False, "^20.9.0": False,
            "not a range": "invalid"}
    assert satisfies("18.19.0", list(want)) == want


def test_our_packages_declare_debian_12_node():
    for prefix in PREFIXES:
        with open(os.path.join(prefix, "package.json")) as f:
            assert engines_node(json.load(f)) == ">=18.19", prefix


def test_every_locked_and_installed_package_runs_on_debian_12_node():
    packages = [p for prefix in PREFIXES for p in list(locked(prefix)) + list(installed(prefix))]
    names = {nv.rpartition("@")[0] for where, nv, _ in packages
             if where.startswith("tests/js/node_modules")}
    assert {"playwright-core", "ws", "semver"} <= names, \
        "tests/js/node_modules is incomplete: run `npm ci --prefix tests/js` (%s)" % names
    ranges = sorted({r for _, _, r in packages if r is not None})
    bad = []
    for version in DEBIAN_12_NODES:
        verdict = satisfies(version, ranges)
        bad += ["%s in %s: engines.node %r %s" % (
                    nv, where, r, "is unreadable" if verdict[r] == "invalid" else
                    "excludes " + version)
                for where, nv, r in packages if r is not None and verdict[r] is not True]
    assert not bad, "packages Debian 12's nodejs cannot run:\n  " + "\n  ".join(bad)
