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

Under pytest the first alarm is pytest-timeout's (pytest sets ``PYTEST_CURRENT_TEST``
while a test runs; a second SIGALRM handler would replace its own), and only the second
is armed here: pytest-timeout's exception, like ours, is only logged by a Twisted
reactor running in the test's thread, and then nothing else would end the test. An
xdist worker that ends this way is reported as crashed, with the test's name, and
replaced.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import unittest as pyunit

from twisted.trial import unittest

#: Seconds a test may run: pytest-timeout's ``timeout`` in pyproject.toml, which says why.
#: Above trial's own ``TestCase.timeout`` (120 s), which fails a Deferred that takes too long
#: first, inside the reactor, where an exception from a signal handler would only be logged.
LIMIT = 240.0
#: Seconds after :data:`LIMIT` before a test that did not stop on its exception ends the process.
GRACE = 120.0


class TimeLimitExceeded(BaseException):
    """A test ran past its time limit: raised in its thread by SIGALRM.

    A BaseException, as pytest's own outcomes are, so that no ``except Exception`` in
    the code under test takes it for one more failure of its own and goes on.
    """


def pytest_limits_it() -> bool:
    """Whether pytest runs this test, whose pytest-timeout has set its own limit."""
    return "PYTEST_CURRENT_TEST" in os.environ


class TimeLimited:
    """A test case mixin: each test's run is limited to ``time_limit`` seconds (see the module)."""

    time_limit = LIMIT

    def run(self, result):  # the unittest protocol's entry point: setUp, the test, cleanups
        if threading.current_thread() is not threading.main_thread():
            return super().run(result)  # type: ignore[misc]
        backstop = self.time_limit + GRACE
        if pytest_limits_it():
            faulthandler.dump_traceback_later(backstop, exit=True, file=sys.__stderr__)  # type: ignore[arg-type]
            try:
                return super().run(result)  # type: ignore[misc]
            finally:
                faulthandler.cancel_dump_traceback_later()
        previous = signal.signal(signal.SIGALRM, self._out_of_time)
        outer = signal.setitimer(signal.ITIMER_REAL, self.time_limit)  # a test run inside a test
        faulthandler.dump_traceback_later(backstop, exit=True, file=sys.__stderr__)  # type: ignore[arg-type]
        self._running = True
        try:
            return super().run(result)  # type: ignore[misc]
        finally:
            self._running = False  # an alarm from here on is too late to raise anywhere useful
            faulthandler.cancel_dump_traceback_later()
            signal.setitimer(signal.ITIMER_REAL, *outer)
            signal.signal(signal.SIGALRM, previous)

    _running = False

    def _out_of_time(self, signum, frame) -> None:
        if self._running:
            raise TimeLimitExceeded(f"{self.id()} still running after {self.time_limit:g} s")  # type: ignore[attr-defined]


class SynchronousTestCase(TimeLimited, unittest.SynchronousTestCase):
    pass


class TestCase(TimeLimited, unittest.TestCase):
    pass


class PyUnitTestCase(TimeLimited, pyunit.TestCase):
    """The standard library's TestCase, for the few modules written to it (trial runs them too)."""
