"""The articles' small Deferred programs (Parts 16-19), run and checked against what they print.

Each expected output is the article's, changed only where today's Python and
Twisted print differently; each such change is said next to it.
- Python 3 prints strings in reprs as Python 2 did, but exception classes live in
  ``builtins``, not ``exceptions``, and a Failure's repr now names the exception
  and its message: ``<twisted.python.failure.Failure builtins.Exception: d2 failure>``
  where the article shows ``<twisted.python.failure.Failure <type 'exceptions.Exception'>>``.
- Twisted now puts a blank line after "Unhandled error in Deferred:", and one after the failure.
- Object addresses differ from run to run: ``<Deferred at 0x...>`` is matched as a pattern.
Where the article describes a program's output without printing it, the expected
lines below are that description, made exact.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.time_limit import SynchronousTestCase

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CANCELLED = (
    "[Failure instance: Traceback (failure with no frames): "
    "<class 'twisted.internet.defer.CancelledError'>: \n]"
)
DEFERRED = re.compile(r"<Deferred at 0x[0-9a-f]+>")
ARTICLE_GEN = ["starting up", "1", "workin'", "2", "still workin'", "3", "done"]


def run_example(name: str, fast: bool = False) -> str:
    """Run examples/NAME.py; stdout and stderr together, as a terminal would show them."""
    env = dict(os.environ)
    if fast:
        env["POETRYNOW_TIME_SCALE"] = "0.01"  # 5 s delays become 50 ms
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        cwd=EXAMPLES,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def same_lines(text: str) -> list[str]:
    return DEFERRED.sub("<Deferred at 0x...>", text).splitlines()


class GeneratorTests(SynchronousTestCase):
    def test_gen_1_interleaves_the_generator_with_the_loop(self):
        self.assertEqual(run_example("gen-1").splitlines(), ARTICLE_GEN)

    def test_gen_2_the_same_with_next_by_hand(self):
        self.assertEqual(run_example("gen-2").splitlines(), ARTICLE_GEN)  # gen.next() is next(gen) now

    def test_gen_3_two_generators_take_turns(self):
        expected = []
        for a, b in zip(["starting up", "workin'", "still workin'"], ["1", "2", "3"]):
            expected += [f"a: {a}", b, f"b: {a}", b]
        self.assertEqual(run_example("gen-3").splitlines(), expected + ["a: done", "b: done"])

    def test_gen_4_send_and_throw(self):
        self.assertEqual(
            run_example("gen-4").splitlines(),
            ["starting up", "1", "got: 10", "2", "got: 20", "3", "malfunction!", "4", "done"],
        )


class InlineCallbacksTests(SynchronousTestCase):
    def test_inline_callbacks_1(self):
        self.assertEqual(
            run_example("inline-callbacks-1", fast=True).splitlines(),
            [
                "first callback",
                "second callback got 1",
                "third callback got 2",
                "fourth callback got Exception(3)",  # Python 2 printed Exception(3,)
            ],
        )

    def test_inline_callbacks_2_returns_and_raises(self):
        self.assertEqual(
            run_example("inline-callbacks-2").splitlines(),
            ["callback got: the value", "errback got: the error"],
        )

    def test_inline_callbacks_tb_shows_the_reactor_calling_the_generator(self):
        lines = run_example("inline-callbacks-tb", fast=True).splitlines()
        self.assertEqual(lines[0], "resumed with a result")
        frames = [line.strip() for line in lines if line.startswith('  File "')]
        self.assertIn("in <module>", frames[0])
        self.assertEqual(lines[2].strip(), "reactor.run()")  # the reactor at the top...
        self.assertIn("in my_callbacks", frames[-1])  # ...our generator at the bottom
        self.assertTrue(any("_inlineCallbacks" in frame for frame in frames))


class DeferredListTests(SynchronousTestCase):
    def test_1_empty(self):
        self.assertEqual(
            run_example("deferred-list-1").splitlines(), ["Empty List.", "Adding Callback.", "We got: []"]
        )

    def test_2_one(self):
        self.assertEqual(
            run_example("deferred-list-2").splitlines(),
            ["One Deferred.", "Adding Callback.", "Firing d1.", "We got: [(True, 'd1 result')]"],
        )

    def test_3_two(self):
        self.assertEqual(
            run_example("deferred-list-3").splitlines(),
            [
                "Two Deferreds.",
                "Adding Callback.",
                "Firing d1.",
                "Firing d2.",
                "We got: [(True, 'd1 result'), (True, 'd2 result')]",
            ],
        )

    def test_4_results_in_list_order(self):
        self.assertEqual(
            run_example("deferred-list-4").splitlines(),
            [
                "Two Deferreds.",
                "Adding Callback.",
                "Firing d2.",
                "Firing d1.",
                "We got: [(True, 'd1 result'), (True, 'd2 result')]",
            ],
        )

    def test_5_a_failure_in_the_list(self):
        self.assertEqual(
            run_example("deferred-list-5").splitlines(),
            [
                "Firing d1.",
                "Firing d2 with errback.",
                "We got: [(True, 'd1 result'), (False, <twisted.python.failure.Failure builtins.Exception: "
                "d2 failure>)]",
            ],
        )

    def test_6_unhandled_without_consume_errors(self):
        self.assertEqual(
            run_example("deferred-list-6").splitlines(),
            [
                "Firing d1.",
                "Firing d2 with errback.",
                "We got: [(True, 'd1 result'), (False, <twisted.python.failure.Failure builtins.Exception: "
                "d2 failure>)]",
                "Unhandled error in Deferred:",
                "",
                "Traceback (most recent call last):",
                "Failure: builtins.Exception: d2 failure",
                "",  # exceptions.Exception in Python 2
            ],
        )

    def test_7_our_own_errback_handles_it(self):
        out = run_example("deferred-list-7")
        self.assertEqual(out.splitlines()[-1], "d2 errback got: d2 failure")
        self.assertNotIn("Unhandled error", out)


class CancelTests(SynchronousTestCase):
    def test_1_unhandled_cancelled_error(self):
        self.assertEqual(
            run_example("defer-cancel-1").splitlines(),
            [
                "done",
                "Unhandled error in Deferred:",
                "",
                "Traceback (most recent call last):",
                "Failure: twisted.internet.defer.CancelledError: ",
                "",
            ],
        )

    def test_2_the_errback_gets_it(self):
        self.assertEqual(run_example("defer-cancel-2"), f"errback got: {CANCELLED}\ndone\n")

    def test_3_cancel_after_firing_does_nothing(self):
        self.assertEqual(run_example("defer-cancel-3"), "callback got: result\ndone\n")

    def test_4_firing_after_cancel_is_ignored(self):
        self.assertEqual(run_example("defer-cancel-4"), f"errback got: {CANCELLED}\ndone\n")

    def test_5_the_canceller_runs_first(self):
        self.assertEqual(
            same_lines(run_example("defer-cancel-5")),
            [
                "I need to cancel this deferred: <Deferred at 0x...>",
                *f"errback got: {CANCELLED}".splitlines(),
                "done",
            ],
        )

    def test_6_the_canceller_fails_it_with_its_own_error(self):
        self.assertEqual(
            same_lines(run_example("defer-cancel-6")),
            [
                "I need to cancel this deferred: <Deferred at 0x...>",
                "Firing the deferred with a different error.",
                "errback got: I was cancelled!",
                "done",
            ],
        )

    def test_7_the_canceller_gives_a_result(self):
        self.assertEqual(
            same_lines(run_example("defer-cancel-7")),
            [
                "I need to cancel this deferred: <Deferred at 0x...>",
                "Firing the deferred with a result.",
                "callback got: An alternative result",
                "done",
            ],
        )

    def test_8_no_canceller_once_fired(self):
        self.assertEqual(run_example("defer-cancel-8"), "callback got: result\ndone\n")

    def test_9_a_poem_later(self):
        self.assertEqual(
            run_example("defer-cancel-9", fast=True).splitlines(),
            ["Sending poem", "I got a poem: Once upon a midnight dreary"],
        )

    def test_10_cancel_without_a_canceller_lets_the_work_go_on(self):
        self.assertEqual(
            run_example("defer-cancel-10", fast=True), f"get_poem failed: {CANCELLED}\nSending poem\n"
        )

    def test_11_a_real_cancel(self):
        self.assertEqual(run_example("defer-cancel-11", fast=True), f"get_poem failed: {CANCELLED}\n")

    def test_12_cancelling_the_outer_cancels_the_inner(self):
        self.assertEqual(
            run_example("defer-cancel-12").splitlines(),
            [
                "first outer callback, returning inner deferred",
                "canceling outer deferred.",
                "inner cancel callback.",
                *f"outer errback got: {CANCELLED}".splitlines(),
                "done",
            ],
        )


class LogTests(SynchronousTestCase):
    def test_log_messages_and_an_error_with_its_traceback(self):
        lines = run_example("log").splitlines()
        stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} \[-\] "
        self.assertRegex(lines[0], stamp + r"Log opened\.$")
        self.assertRegex(lines[1], stamp + r"This is logged to stdout\.$")
        self.assertRegex(lines[2], stamp + r"This error is logged with its traceback:$")
        self.assertIn("\tbuiltins.ZeroDivisionError: division by zero", lines)
        self.assertNotIn("This is not logged", "\n".join(lines))


class ExamplesReadmeTests(SynchronousTestCase):
    def test_every_program_is_listed_once(self):
        readme = (EXAMPLES / "README.md").read_text()
        programs = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
        for name in programs:
            self.assertEqual(readme.count(f"`{name}.py`"), 1, name)


class AsyncioExampleTests(SynchronousTestCase):
    def test_asyncio_example_awaits_get_poetry(self):
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "asyncio_get_poetry.py")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^asyncio got 610 bytes of poetry from 127\.0\.0\.1:\d+\n")
        self.assertIn("Al caffè della stazione", result.stdout)
