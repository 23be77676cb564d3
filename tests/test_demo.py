"""The demo's table and closing sentence, on made-up runs: whole poems only, and only what is true."""

from __future__ import annotations

from poetrynow.address import Address
from poetrynow.demo import Outcome, results_table, verdict
from poetrynow.events import Finished
from poetrynow.report import Summary
from poetrynow.schedule import PoemSchedule
from tests.time_limit import SynchronousTestCase

POEMS = [b"a" * 300, b"b" * 100, b"c" * 100]
SCHEDULES = [PoemSchedule(300, 30, 0.1), PoemSchedule(100, 10, 0.1), PoemSchedule(100, 10, 0.1)]  # 1 s each


def run(engine: str, elapsed: float, poems=POEMS) -> Outcome:
    finished = [
        Finished(task=n, address=Address("127.0.0.1", 10000 + n), poem=poem, t=elapsed)
        for n, poem in enumerate(poems, 1)
    ]
    return Outcome(engine, Summary(elapsed=elapsed, finished=finished), POEMS)


class WholePoemsTests(SynchronousTestCase):
    def test_a_cut_short_poem_is_not_a_poem(self):
        short = run("select", 0.5, [POEMS[0][:162], POEMS[1], POEMS[2]])  # closed cleanly, too early
        self.assertEqual((short.whole, short.complete), (2, False))
        self.assertEqual(short.short(), ["select: task 1's poem is not whole: 162 of 300 bytes"])

    def test_a_run_without_every_whole_poem_is_not_ranked(self):
        table = results_table(
            [run("blocking", 3.1), run("select", 0.5, [b"", POEMS[1], POEMS[2]])], SCHEDULES
        )
        rows = [line.split() for line in table.splitlines()[1:]]
        self.assertEqual(rows[0][:2], ["1", "blocking"])
        self.assertEqual((rows[1][0], rows[1][1], rows[1][-1]), ("-", "select", "2/3"))
        words = verdict([run("blocking", 3.1), run("select", 0.5, [b"", POEMS[1], POEMS[2]])], SCHEDULES)
        self.assertIn("Not ranked: select did not get every whole poem.", words)
        self.assertNotIn("times as long", words)


class VerdictTests(SynchronousTestCase):
    def test_blocking_against_a_concurrent_engine(self):
        words = verdict([run("blocking", 3.1), run("select", 1.04)], SCHEDULES)
        self.assertTrue(words.startswith("blocking took 2.98 times as long as select: a client that waits"))

    def test_two_concurrent_engines_are_not_said_to_wait_on_one_server_at_a_time(self):
        words = verdict([run("select", 1.03), run("lazy", 1.04)], SCHEDULES)
        self.assertNotIn("times as long", words)
        self.assertIn("Every engine here waits on all the servers at once", words)
        self.assertIn("from 1.03 s to 1.04 s", words)

    def test_one_engine_says_what_it_waited_for(self):
        self.assertIn("the sum of their schedules (3.00 s)", verdict([run("blocking", 3.1)], SCHEDULES))
        self.assertIn("as long as the slowest server (1.00 s)", verdict([run("asyncio", 1.1)], SCHEDULES))


class ServerStartTests(SynchronousTestCase):
    """The demo's servers say their port first; one that says nothing is not waited for for ever."""

    def test_a_silent_server_is_given_up_on(self):
        import subprocess
        import sys
        import time

        from poetrynow.demo_servers import first_line

        silent = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True
        )
        self.addCleanup(silent.wait)
        self.addCleanup(silent.kill)
        started = time.monotonic()
        self.assertEqual(first_line(silent.stdout, 0.5), "")
        self.assertLess(time.monotonic() - started, 30)  # its deadline, not the child's minute

    def test_the_first_line_and_only_it(self):
        import subprocess
        import sys

        from poetrynow.demo_servers import first_line

        talker = subprocess.Popen(
            [sys.executable, "-c", "print('Serving kettle on port 10000.'); print('more')"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(talker.wait)
        self.assertEqual(first_line(talker.stdout, 30), "Serving kettle on port 10000.\n")

    def test_the_command_says_so_in_one_line(self):
        import io
        import signal
        from contextlib import redirect_stderr, redirect_stdout

        from poetrynow import demo
        from poetrynow.cli import poetrynow
        from poetrynow.demo_servers import ServerDidNotStart

        def silent(*args, **kwargs):
            raise ServerDidNotStart("slowpoetry did not start: it said nothing within 30 s")

        self.patch(demo, "start_slow_server", silent)
        for signum in (signal.SIGINT, signal.SIGTERM):  # the command installs its own
            self.addCleanup(signal.signal, signum, signal.getsignal(signum))
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = poetrynow.main(["demo", "--no-timeline"])
        self.assertEqual(status, 1)
        self.assertEqual(
            err.getvalue(), "poetrynow: error: slowpoetry did not start: it said nothing within 30 s\n"
        )


class EngineLineTests(SynchronousTestCase):
    """The demo's progress line: redrawn in place at most ten times a second on a terminal, and
    printed once, finished, elsewhere."""

    def events(self):
        from poetrynow.events import Failed, Received

        here = Address("127.0.0.1", 10000)
        return [
            Received(task=1, address=here, t=0.0, nbytes=30),
            Received(task=1, address=here, t=0.0, nbytes=30),
            Finished(task=1, address=here, t=0.0, poem=b"x" * 60),
            Failed(task=2, address=here, t=0.0, reason="reset"),
        ]

    def line(self, live: bool):
        import io

        from poetrynow.demo_line import EngineLine

        now = [0.0]
        out = io.StringIO()
        line = EngineLine("select", 120, 2, out, live=live, width=8, clock=lambda: now[0])
        line.columns = 200  # (a terminal that wide: nothing cut)
        return line, out, now

    def test_on_a_terminal_it_is_redrawn_but_not_for_every_read(self):
        line, out, now = self.line(live=True)
        for event in self.events():
            line.event(event)  # all in the same instant: one redraw
            now[0] += 0.01
        # One redraw for the reads of one instant, and the row cleared for the failure's own line.
        self.assertEqual(
            out.getvalue().split("\r")[1:],
            ["select   [######------------------]     30/120 bytes  0/2 poems   0.0 s", "\x1b[K"],
        )
        now[0] = 2.0
        line.end()
        line.end()  # (once only)
        last = out.getvalue().rsplit("\r", 1)[1]
        self.assertEqual(
            last, "select   [############------------]     60/120 bytes  1/2 poems, 1 failed   2.0 s\x1b[K\n"
        )

    def test_a_narrow_terminal_gets_the_line_cut_not_wrapped(self):
        line, out, _ = self.line(live=True)
        line.columns = 40
        line.end()
        self.assertEqual(out.getvalue(), "\r" + "select   [------------------------]      "[:40] + "\x1b[K\n")

    def test_an_output_that_is_gone_costs_the_line_not_the_run(self):
        import io

        from poetrynow.demo_line import EngineLine

        class Gone(io.StringIO):
            def write(self, text):
                raise BrokenPipeError(32, "Broken pipe")

        line = EngineLine("select", 120, 2, Gone(), live=True)
        for event in self.events():
            line.event(event)  # no exception into the engine's sink
        line.end()
        self.assertTrue(line.ended)

    def test_elsewhere_it_is_one_finished_line(self):
        line, out, now = self.line(live=False)
        for event in self.events():
            line.event(event)
        self.assertEqual(out.getvalue(), "")
        now[0] = 1.5
        line.end()
        self.assertEqual(
            out.getvalue(),
            "select   [############------------]     60/120 bytes  1/2 poems, 1 failed   1.5 s\n",
        )
