"""`make run` installs what running Herald and its demo needs, and none of the
test toolchain: `run` depends on `deps-run`, which installs RUN_PKGS only;
RUN_PKGS holds the compiler, the libraries' -dev packages and PHP (php-fpm
and SQLite for the office demo's RPC script), and no test tool; and a dry run
of `make run` on this machine runs neither npm nor an install of the test
packages. `make deps` (and so `make test`) installs both lists."""
import os
import re
import subprocess

from makefile_vars import makefile_rule, makefile_var

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What the test suites use and a first run never does.
TEST_TOOLS = {"clang", "clang-format", "libclang-rt-14-dev", "chromium", "phpunit",
              "python3-pytest", "python3-websockets", "libcmocka-dev", "nodejs", "npm",
              "redis-server", "nginx", "nginx-light", "libnginx-mod-nchan"}
# Building Herald (LIBS: -lev -lfcgi -ljansson -linih -lssl -lcrypto -lhiredis, and
# uthash's headers) and running php-client/demo/run.sh (php -S, php-fpm, pdo_sqlite, pgrep).
RUN_NEEDS = {"gcc", "libc6-dev", "make", "pkg-config", "libev-dev", "libfcgi-dev", "libjansson-dev",
             "libinih-dev", "libssl-dev", "uthash-dev", "libhiredis-dev", "php-cli", "php-fpm",
             "php-sqlite3", "procps"}


def test_run_installs_only_the_run_packages():
    prereqs, recipe = makefile_rule(ROOT, "run")
    assert "deps-run" in prereqs and "deps" not in prereqs, prereqs
    _, install = makefile_rule(ROOT, "deps-run")
    assert install == ["@./tests/lib/install-deps.sh $(RUN_PKGS)"], install
    assert not any("npm" in line or "deps" in line.split() for line in recipe), recipe


def test_the_run_list_has_what_running_needs_and_no_test_tool():
    run = set(makefile_var(ROOT, "RUN_PKGS"))
    assert RUN_NEEDS <= run, "missing from RUN_PKGS: %s" % sorted(RUN_NEEDS - run)
    assert not run & TEST_TOOLS, "test tools in RUN_PKGS: %s" % sorted(run & TEST_TOOLS)
    test = set(makefile_var(ROOT, "TEST_PKGS"))
    assert not run & test, "in both lists: %s" % sorted(run & test)
    assert TEST_TOOLS - {"nginx", "nodejs", "npm", "libnginx-mod-nchan"} <= test
    # make deps (make test) installs everything.
    assert makefile_var(ROOT, "PKGS") == ["$(RUN_PKGS)", "$(TEST_PKGS)"]
    _, deps = makefile_rule(ROOT, "deps")
    assert "@./tests/lib/install-deps.sh $(PKGS)" in deps, deps


def test_a_dry_run_of_make_run_installs_no_test_package_and_runs_no_npm():
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "-n", "run"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    installs = [l.split()[1:] for l in lines if l.startswith("./tests/lib/install-deps.sh ")]
    assert installs == [makefile_var(ROOT, "RUN_PKGS")], r.stdout
    words = set(re.findall(r"[\w.+-]+", r.stdout))
    test_only = set(makefile_var(ROOT, "TEST_PKGS")) - {"python3", "curl", "openssl"}
    assert not words & (test_only | {"npm", "apt-get"}), r.stdout
    assert lines[-1].endswith("php-client/demo/run.sh build/herald"), r.stdout
