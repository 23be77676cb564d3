"""Every test has a time limit under trial too (tests/time_limit.py), and it fires."""

from __future__ import annotations

import importlib
import pkgutil
import signal
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

    def test_trial_and_pytest_have_the_same_limit(self):
        import tomllib
        from pathlib import Path

        pyproject = Path(tests.__file__).resolve().parent.parent / "pyproject.toml"
        options = tomllib.loads(pyproject.read_text())["tool"]["pytest"]["ini_options"]
        self.assertEqual(float(options["timeout"]), time_limit.LIMIT)


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
        self.assertFalse(issubclass(TimeLimitExceeded, Exception))  # no "except Exception" takes it


class SilentChildTests(SynchronousTestCase):
    """tests/support.py's reader of a child's output keeps its deadline while the child says nothing."""

    def test_a_silent_child_costs_its_deadline_not_for_ever(self):
        import sys

        from tests.support import Child

        child = Child([sys.executable, "-c", "import time; print('one', flush=True); time.sleep(60)"])
        self.addCleanup(child.stop, signal.SIGKILL)
        self.assertEqual(child.out.next_line(), "one\n")
        started = time.monotonic()
        with self.assertRaises(TimeoutError):
            child.out.next_line(0.5)
        with self.assertRaises(AssertionError):
            child.out.until(lambda line: "two" in line, 0.5)
        self.assertLess(time.monotonic() - started, 30)  # the deadlines, not the child's minute

    def test_nothing_is_lost_between_the_lines_taken_and_the_rest(self):
        import sys

        from tests.support import Child

        child = Child([sys.executable, "-c", "print('\\n'.join(map(str, range(1000))))"])
        self.assertEqual(child.out.until(lambda line: line == "2\n"), ["0\n", "1\n", "2\n"])
        out, err = child.finish()
        self.assertEqual(out, "".join(f"{n}\n" for n in range(3, 1000)))
        self.assertEqual((child.process.returncode, err), (0, ""))
