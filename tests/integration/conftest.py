"""
conftest.py -- shared fixtures for tests/integration.

  herald     one running Herald per test module, configured by the module's
             HERALD_CONFIG dict (extra [herald] INI keys), HERALD_WORKERS and
             HERALD_SITES; with HERALD_PHPFPM = True, its RPC and hooks go to
             the module's php-fpm (phpfpm.herald()); stopped with SIGTERM at
             the end of the module, which asserts exit status 0 and a clean
             stderr (no sanitizer report, no token).
  phpfpm     one private php-fpm per test module running
             tests/integration/php/rpc.php (tests/lib/phpfpm.py), with the
             module's PHPFPM_CHILDREN children (default 6).
  driver     a tests/js/herald-js-driver.js process for one test
             (tests/lib/jsdriver.py), which must exit 0 at the end.
  bystander  a client of that Herald connected before the test body runs; call
             bystander.check() after the bad input to prove others still get
             their messages.
  run        run(coro) == asyncio.run(coro) with an overall timeout, so async
             tests need no pytest-asyncio.

Every test also runs under an alarm (HERALD_TEST_TIMEOUT seconds, default 60),
so a hang fails that test instead of stalling the suite; SIGTERM (from the
timeout(1) in tests/run.sh) becomes KeyboardInterrupt, so fixtures still stop
their daemons.
"""

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from herald import Bystander, Herald  # noqa: E402
from jsdriver import Driver  # noqa: E402
from phpfpm import PhpFpm  # noqa: E402

TEST_TIMEOUT = int(os.environ.get("HERALD_TEST_TIMEOUT", "60"))


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded %ds" % TEST_TIMEOUT)


def _term(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _term)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def phpfpm(request):
    """One php-fpm per test module (PHPFPM_CHILDREN children), removed at its end."""
    with PhpFpm(children=getattr(request.module, "PHPFPM_CHILDREN", 6)) as f:
        yield f


@pytest.fixture(scope="module")
def herald(request):
    """The module's Herald: HERALD_CONFIG, HERALD_WORKERS, HERALD_SITES and HERALD_PHPFPM."""
    cfg = getattr(request.module, "HERALD_CONFIG", {})
    workers = getattr(request.module, "HERALD_WORKERS", 2)
    if getattr(request.module, "HERALD_PHPFPM", False):
        h = request.getfixturevalue("phpfpm").herald(cfg, workers)
    else:
        h = Herald(config=cfg, workers=workers,
                   sites=getattr(request.module, "HERALD_SITES", None)).start()
    try:
        yield h
        h.stop()
    finally:
        h.cleanup()


@pytest.fixture
def driver():
    d = Driver()
    try:
        yield d
        assert d.finish() == 0, d.dump()
    finally:
        d.kill()


@pytest.fixture
def bystander(herald):
    b = Bystander(herald)
    yield b
    b.close()


@pytest.fixture
def run():
    def _run(coro, timeout=30):
        return asyncio.run(asyncio.wait_for(coro, timeout))
    return _run
