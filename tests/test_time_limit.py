"""Every test has a time limit under trial too (tests/time_limit.py), and it fires."""

from __future__ import annotations

import importlib
import pkgutil
import time
import unittest

import tests
from tests import time_limit
from tests.time_limit import SynchronousTestCase, TimeLimited, TimeLimitExceeded


class EveryTestTests(SynchronousTestCase):
    def test_every_test_class_is_time_limited(self):
        # A class from twisted.trial.unittest directly would run without a limit under trial.
        unlimited = []
        for module_info in pkgutil.iter_modules(tests.__path__):
            if not module_info.name.startswith("test_"):
                continue
            module = importlib.import_module(f"tests.{module_info.name}")
            for name, value in vars(module).items():
                is_test = isinstance(value, type) and issubclass(value, unittest.TestCase)
                if is_test and not issubclass(value, TimeLimited):
                    unlimited.append(f"{module_info.name}.{name}")
        self.assertEqual(unlimited, [])


class LimitTests(SynchronousTestCase):
    def test_a_hung_test_fails_with_its_name_and_the_run_goes_on(self):
        class Hangs(SynchronousTestCase):  # in here: no runner collects it
            time_limit = 0.5

            def test_hang(self):
                time.sleep(60)  # a blocking call, as a hung recv or wait is

        self.patch(time_limit, "pytest_limits_it", lambda: False)  # as under trial
        result = unittest.TestResult()
        started = time.monotonic()
        Hangs("test_hang").run(result)
        self.assertLess(time.monotonic() - started, 30)  # the limit, not the minute's sleep
        [(_, traceback)] = result.errors
        self.assertIn("TimeLimitExceeded", traceback)
        self.assertIn("Hangs.test_hang still running after 0.5 s", traceback)
        self.assertTrue(issubclass(TimeLimitExceeded, Exception))
