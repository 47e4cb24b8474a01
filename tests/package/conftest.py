"""
conftest.py -- tests/package: SIGTERM (from the timeout(1) in tests/run.sh) becomes
KeyboardInterrupt, so the module's fixture still stops Herald and deletes the root.
"""

import signal


def _term(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _term)
