"""
61-herald-js-package.py -- the browser client as an npm package (php-client/js/package.json,
"herald-client"): one source, two builds, and types that match the code.

  - herald.js is generated from herald.mjs by php-client/js/build.js and is up to date; the build
    refuses a herald.mjs whose exports the global build could not match.
  - package.json: the daemon's version (HERALD_VERSION), no dependencies or scripts, Debian 12's
    node in engines, every entry point present; `npm pack` holds exactly the client, its types
    and README.md.
  - Installed from the tarball into a fresh project (offline), Node 18 `import`s it (named and
    default exports) and `require`s it, from an ES module project and a CommonJS one, and the
    client works from both (a stand-in WebSocket, fed by hand).
  - tests/js/dts-check.js: every name herald.d.ts declares exists at run time and the reverse;
    a tampered copy of either side must fail it, naming the name.
TypeScript compiling typed code against the package is 63-herald-js-types.py.
"""

import json
import os
import re
import shutil
import tempfile

import pytest

from jsdriver import NODE, ROOT
from jspackage import JS_DIR, Package, require_typescript, run

BUILD_JS = os.path.join(JS_DIR, "build.js")
DTS_CHECK = os.path.join(ROOT, "tests", "js", "dts-check.js")
EXPORTS = "export { Herald, HeraldError };\nexport default Herald;\n"
SHIPPED = ["README.md", "herald.d.mts", "herald.d.ts", "herald.js", "herald.mjs", "package.json"]

# Run in an installed project: each entry point, what it exports, and a client on a stand-in
# WebSocket that opens and gets one event. Prints one JSON line.
USE_ESM = r"""
import { Herald, HeraldError } from 'herald-client';
import HeraldDefault from 'herald-client';
import Global from 'herald-client/herald.js';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const cjs = require('herald-client');
const meta = require('herald-client/package.json');

function Stub(url, protocols) { Stub.made.push(this); this.url = url; this.protocols = protocols; }
Stub.made = [];
Stub.prototype.send = function () {};
Stub.prototype.close = function () {};

async function use(H) {
    Stub.made = [];
    const seen = [];
    const h = new H('ws://127.0.0.1:9/ws', { WebSocket: Stub, token: 'jwt' });
    h.on('ping', (data, event) => seen.push([event, data]));
    while (Stub.made.length === 0) await new Promise((r) => setTimeout(r, 1));
    Stub.made[0].onopen({});
    Stub.made[0].onmessage({ data: JSON.stringify({ event: 'ping', data: { n: 1 } }) });
    const state = h.state;
    const p = h.rpc('m').catch((e) => e);
    h.close();
    const e = await p;
    return { state, seen, url: Stub.made[0].url, error: [e instanceof H.HeraldError, e.code] };
}

console.log(JSON.stringify({
    esm: [typeof Herald, HeraldDefault === Herald, HeraldError === Herald.HeraldError],
    cjs: [typeof cjs, cjs.Herald === cjs, cjs.default === cjs, typeof cjs.HeraldError],
    global: Global === cjs, twoCopies: cjs !== Herald, version: meta.version,
    useEsm: await use(Herald), useCjs: await use(cjs),
}));
"""

USE_CJS = r"""
const Herald = require('herald-client');
const { Herald: Named, HeraldError } = require('herald-client');
import('herald-client').then((m) => {
    console.log(JSON.stringify({
        require: [typeof Herald, Named === Herald, HeraldError === Herald.HeraldError],
        import: [typeof m.Herald, m.default === m.Herald, m.Herald !== Herald],
    }));
});
"""


@pytest.fixture(scope="module")
def package():
    pkg = Package()
    try:
        yield pkg
    finally:
        pkg.cleanup()


def node(script, cwd, suffix):
    """Write script as use.<suffix> in cwd, run it with node, return its JSON line."""
    path = os.path.join(cwd, "use." + suffix)
    with open(path, "w") as f:
        f.write(script)
    p = run([NODE, path], cwd, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def build_check(src, out):
    """build.js --check SRC OUT: (exit status, stderr)."""
    p = run([NODE, BUILD_JS, "--check", src, out], ROOT, timeout=30)
    return p.returncode, p.stderr


def test_herald_js_is_generated_from_herald_mjs_and_up_to_date():
    status, err = build_check(os.path.join(JS_DIR, "herald.mjs"),
                              os.path.join(JS_DIR, "herald.js"))
    assert status == 0, "herald.js is stale: run node php-client/js/build.js\n" + err
    with open(os.path.join(JS_DIR, "herald.js")) as f:
        js = f.read()
    assert "GENERATED from herald.mjs by build.js" in js.split("*/")[0]
    assert not re.search(r"^\s*(import|export)\b", js, re.M), "herald.js has ES module syntax"


def test_build_refuses_a_stale_output_and_exports_the_global_build_lacks():
    with open(os.path.join(JS_DIR, "herald.mjs")) as f:
        source = f.read()
    tmp = tempfile.mkdtemp(prefix="herald-build-")
    try:
        def check(text):
            src = os.path.join(tmp, "herald.mjs")
            with open(src, "w") as f:
                f.write(text)
            return build_check(src, os.path.join(JS_DIR, "herald.js"))

        code = source[:-len(EXPORTS)]
        assert source.endswith("\n\n" + EXPORTS)
        # One changed line of code: herald.js no longer matches.
        changed = source.replace("backoffBase: 500,", "backoffBase: 501,", 1)
        assert changed != source
        status, err = check(changed)
        assert status == 1 and "herald.js is stale" in err, (status, err)
        # A name the global build would not have, an import, a missing export block: refused.
        for bad, why in [(code + "export var extra = 1;\n" + EXPORTS, "must end with"),
                         (source + "export var extra = 1;\n", "must end with"),
                         ("import x from './x.mjs';\n" + source, "must open with"),
                         (code.rstrip("\n") + "\n", "must end with"),
                         (source.replace("\nvar DEFAULTS", "\nimport './x.mjs';\nvar DEFAULTS"),
                          "import or export")]:
            status, err = check(bad)
            assert status == 2 and why in err, (why, status, err)
    finally:
        shutil.rmtree(tmp)


def test_package_json_describes_the_client():
    with open(os.path.join(JS_DIR, "package.json")) as f:
        meta = json.load(f)
    with open(os.path.join(ROOT, "lib", "cfg", "cfg.h")) as f:
        version = re.search(r'#define HERALD_VERSION "([^"]+)"', f.read()).group(1)
    assert meta["name"] == "herald-client" and meta["version"] == version
    assert meta["engines"] == {"node": ">=18.19"}
    for key in ("dependencies", "devDependencies", "peerDependencies", "scripts", "private"):
        assert key not in meta, key
    assert meta["type"] == "commonjs" and meta["main"] == "./herald.js"
    assert meta["module"] == "./herald.mjs" and meta["types"] == "./herald.d.ts"
    dot = meta["exports"]["."]
    assert dot["import"] == {"types": "./herald.d.mts", "default": "./herald.mjs"}
    assert dot["require"] == {"types": "./herald.d.ts", "default": "./herald.js"}
    assert sorted(meta["files"] + ["package.json"]) == SHIPPED
    for name in meta["files"]:
        assert os.path.isfile(os.path.join(JS_DIR, name)), name


def test_npm_pack_holds_the_client_its_types_and_readme(package):
    assert package.report["name"] == "herald-client"
    assert package.files() == SHIPPED
    assert os.path.basename(package.tarball) == "herald-client-%s.tgz" % package.report["version"]


def test_an_es_module_project_imports_and_requires_the_installed_package(package):
    project = package.project("esm-app", "module")
    got = node(USE_ESM, project, "mjs")
    assert got["esm"] == ["function", True, True]
    assert got["cjs"] == ["function", True, True, "function"]
    assert got["global"] is True and got["twoCopies"] is True
    assert got["version"] == package.report["version"]
    for use in ("useEsm", "useCjs"):
        assert got[use] == {"state": "open", "seen": [["ping", {"n": 1}]],
                            "url": "ws://127.0.0.1:9/ws?since=",
                            "error": [True, "disconnected"]}, got


def test_a_commonjs_project_requires_and_imports_the_installed_package(package):
    project = package.project("cjs-app")
    got = node(USE_CJS, project, "js")
    assert got == {"require": ["function", True, True], "import": ["function", True, True]}


def dts_check(directory=None):
    """Run tests/js/dts-check.js (on a directory, else php-client/js): (exit status, report)."""
    require_typescript()
    p = run([NODE, DTS_CHECK] + ([directory] if directory else []), ROOT, timeout=60)
    return p.returncode, json.loads(p.stdout.strip().splitlines()[-1])


def test_every_declared_name_exists_at_run_time_and_the_reverse():
    status, report = dts_check()
    assert status == 0 and report["ok"] is True, report
    compared = report["compared"]
    assert {"on", "off", "onState", "subscribe", "publish", "rpc", "members", "close",
            "position", "state", "url", "options"} <= set(compared["instance"]["declared"])
    assert compared["importExports"]["declared"] == ["Herald", "HeraldError", "default"]
    assert compared["error"]["declared"] == ["channel", "code", "name"]


def test_the_name_check_fails_when_either_side_has_a_name_the_other_lacks():
    tmp = tempfile.mkdtemp(prefix="herald-dts-")
    try:
        names = ["herald.d.ts", "herald.d.mts", "herald.mjs", "herald.js"]

        def tampered(name, old, new):
            for n in names:
                shutil.copy(os.path.join(JS_DIR, n), tmp)
            path = os.path.join(tmp, name)
            with open(path) as f:
                text = f.read()
            assert old in text, old
            with open(path, "w") as f:
                f.write(text.replace(old, new, 1))
            return dts_check(tmp)

        status, report = tampered("herald.d.ts", "    close(): void;\n",
                                  "    close(): void;\n    reconnect(): void;\n")
        assert status == 1 and report["problems"] == [
            "Herald instance: reconnect is declared but does not exist at run time"], report
        status, report = tampered("herald.mjs", "\nexport { Herald, HeraldError };",
                                  "\nHerald.prototype.pause = function () {};\n"
                                  "\nexport { Herald, HeraldError };")
        assert status == 1 and report["problems"] == [
            "Herald instance: pause exists at run time but is not declared"], report
        status, report = tampered("herald.d.ts", "    readonly backoffMax: number;\n", "")
        assert status == 1 and report["problems"] == [
            "HeraldSettings vs herald.options: backoffMax exists at run time but is not "
            "declared"], report
    finally:
        shutil.rmtree(tmp)
