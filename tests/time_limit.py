"""Trial's test case classes, with a time limit on every test: a hang fails one test, not CI.

Every test module takes ``SynchronousTestCase`` and ``TestCase`` from here, not from
``twisted.trial.unittest`` (nor ``unittest``: :class:`PyUnitTestCase`);
tests/test_time_limit.py checks that every test class does. Under pytest,
pytest-timeout limits each test (``timeout`` in pyproject.toml); under trial, nothing
did: trial's ``TestCase.timeout`` only bounds a Deferred the test returns, and a
``SynchronousTestCase``, or any test blocked in a ``recv`` or a ``wait``, could hold
CI for its 90 minutes. So each test runs with two alarms:

- after :data:`LIMIT` seconds, SIGALRM raises :class:`TimeLimitExceeded` in the test's
  thread, as pytest-timeout's signal method does: a blocking call is interrupted, the
  test fails with its own name and traceback, its cleanups run, and the run goes on;
- :data:`GRACE` seconds later, if the test has still not ended (code under test
  swallowed the exception, or a Twisted reactor logged it and spun on), faulthandler
  writes every thread's stack to stderr and ends the process. Under ``trial -j`` that is
  one worker, whose ``_trial_temp/N/err.log`` names the test; the run ends instead of
  waiting.

Under pytest these classes stand aside: pytest-timeout has armed SIGALRM already
(pytest sets ``PYTEST_CURRENT_TEST`` while a test runs), and a second handler would
replace its own.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import unittest as pyunit

from twisted.trial import unittest

#: Seconds a test may run: pytest-timeout's ``timeout`` in pyproject.toml, which says why.
#: Above trial's own ``TestCase.timeout`` (120 s), which fails a Deferred that takes too long
#: first, inside the reactor, where an exception from a signal handler would only be logged.
LIMIT = 240.0
#: Seconds after :data:`LIMIT` before a test that did not stop on its exception ends the process.
GRACE = 60.0


class TimeLimitExceeded(Exception):
    """A test ran past its time limit: raised in its thread by SIGALRM."""


def pytest_limits_it() -> bool:
    """Whether pytest runs this test, whose pytest-timeout has set its own limit."""
    return "PYTEST_CURRENT_TEST" in os.environ


class TimeLimited:
    """A test case mixin: each test's run is limited to ``time_limit`` seconds (see the module)."""

    time_limit = LIMIT

    def run(self, result):  # the unittest protocol's entry point: setUp, the test, cleanups
        if pytest_limits_it() or threading.current_thread() is not threading.main_thread():
            return super().run(result)  # type: ignore[misc]
        previous = signal.signal(signal.SIGALRM, self._out_of_time)
        outer = signal.setitimer(signal.ITIMER_REAL, self.time_limit)  # a test run inside a test
        faulthandler.dump_traceback_later(self.time_limit + GRACE, exit=True)
        try:
            return super().run(result)  # type: ignore[misc]
        finally:
            faulthandler.cancel_dump_traceback_later()
            signal.setitimer(signal.ITIMER_REAL, *outer)
            signal.signal(signal.SIGALRM, previous)

    def _out_of_time(self, signum, frame) -> None:
        raise TimeLimitExceeded(f"{self.id()} still running after {self.time_limit:g} s")  # type: ignore[attr-defined]


class SynchronousTestCase(TimeLimited, unittest.SynchronousTestCase):
    pass


class TestCase(TimeLimited, unittest.TestCase):
    pass


class PyUnitTestCase(TimeLimited, pyunit.TestCase):
    """The standard library's TestCase, for the few modules written to it (trial runs them too)."""
