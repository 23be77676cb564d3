"""Every engine against a slow server with each fault, on real sockets: each reports the same.

Which task, what happened, how many bytes had arrived: the words and the counts are
the same whichever engine met the fault.
"""

from __future__ import annotations

import re
import subprocess

from poetrynow.address import Address
from poetrynow.clients import ENGINES, EngineOptions, run_engine
from poetrynow.events import Failed, Finished, Received
from poetrynow.faults import Faults
from poetrynow.poems import load_poem
from poetrynow.servers.deploy import slow_poetry
from tests.support import Server, ServersInAThread, command
from tests.time_limit import SynchronousTestCase

KETTLE = load_poem("kettle").data  # 636 bytes


class FaultContract:
    """Mixed into one TestCase per engine; ``engine`` names it."""

    engine = ""

    def setUp(self):
        self.servers = ServersInAThread(self)

    def faulty(self, **faults) -> Address:
        port = self.servers.start(
            slow_poetry, "kettle", 100, 0.01, log_clients=False, faults=Faults(**faults)
        )
        return Address("127.0.0.1", port)

    def fetch(self, address: Address, **options) -> list:
        events: list = []
        run_engine(self.engine, [address], events.append, EngineOptions(**options))
        return events

    def failure(self, events: list) -> tuple[int, str, int]:
        [failed] = [e for e in events if isinstance(e, Failed)]
        self.assertEqual([e for e in events if isinstance(e, Finished)], [])
        return failed.task, failed.reason, failed.received

    def test_a_reset_fails_the_task_with_the_bytes_that_came(self):
        events = self.fetch(self.faulty(reset_after=250))
        self.assertEqual(self.failure(events), (1, "Connection reset by peer", 250))

    def test_a_truncated_close_fails_only_against_the_expected_length(self):
        address = self.faulty(close_after=250)
        [poem] = [e.poem for e in self.fetch(address) if isinstance(e, Finished)]
        self.assertEqual(poem, KETTLE[:250])  # a clean close: the client cannot tell by itself
        events = self.fetch(address, expect_bytes=len(KETTLE))
        self.assertEqual(self.failure(events), (1, "250 bytes, not the 636 expected", 250))

    def test_a_stall_times_out_with_timeout_and_ends_when_the_stall_does(self):
        # --timeout 2: the 300 bytes before the stall come every 0.01 s from a server in a
        # thread of this process, never two seconds apart, however loaded the machine.
        events = self.fetch(self.faulty(stall_after=300), timeout=2)
        self.assertEqual(self.failure(events), (1, "no data for 2 s", 300))
        [poem] = [
            e.poem for e in self.fetch(self.faulty(stall_after=300, stall_for=0.3)) if isinstance(e, Finished)
        ]
        self.assertEqual(poem, KETTLE)  # without --timeout the client waits the stall out

    def test_jitter_keeps_the_poem_whole(self):
        events = self.fetch(self.faulty(jitter=0.01, seed=3))
        [poem] = [e.poem for e in events if isinstance(e, Finished)]
        self.assertEqual(poem, KETTLE)
        self.assertEqual(sum(e.nbytes for e in events if isinstance(e, Received)), len(KETTLE))


def _cases() -> dict[str, type]:
    return {
        f"{name.capitalize()}FaultTests": type(
            f"{name.capitalize()}FaultTests",
            (FaultContract, SynchronousTestCase),
            {"engine": name, "__module__": __name__},
        )
        for name in ENGINES
    }


globals().update(_cases())


class CommandTests(SynchronousTestCase):
    """The real commands: slowpoetry's fault options and fate lines, get-poetry's exit status."""

    def get_poetry(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command("get-poetry"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def test_a_reset_is_one_line_and_exit_1_and_the_server_logs_the_fate(self):
        server = Server(
            "kettle", "--concurrent", "--num-bytes", "100", "--delay", "0.01", "--reset-after", "300"
        )
        try:
            result = self.get_poetry("--engine", "select", str(server.port))
        finally:
            server.stop()
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.splitlines(),
            [f"Task 1: failed to get poetry from 127.0.0.1:{server.port}: Connection reset by peer"],
        )
        self.assertRegex(server.stdout, r"client 127\.0\.0\.1:\d+: reset after 300 bytes\n")

    def test_expect_bytes_turns_a_short_poem_into_a_failure(self):
        server = Server(
            "kettle", "--concurrent", "--num-bytes", "100", "--delay", "0.01", "--close-after", "250"
        )
        try:
            short = self.get_poetry("--json", str(server.port))
            expected = self.get_poetry("--expect-bytes", "636", str(server.port))
        finally:
            server.stop()
        self.assertEqual(short.returncode, 0)
        summary = short.stdout.splitlines()[-1]
        self.assertRegex(summary, r'"bytes": 250')
        self.assertEqual(expected.returncode, 1)
        self.assertTrue(expected.stderr.endswith(": 250 bytes, not the 636 expected\n"), expected.stderr)
        self.assertEqual(len(re.findall(r"closed after 250 of 636 bytes", server.stdout)), 2)

    def test_a_quarter_faulty_with_a_seed_is_the_same_every_run(self):
        fates = []
        for _ in range(2):
            server = Server(
                "kettle", "--concurrent", "--num-bytes", "700", "--delay", "0",
                "--reset-after", "0", "--faulty", "0.25", "--seed", "9",
            )  # fmt: skip
            try:
                results = [self.get_poetry(str(server.port)).returncode for _ in range(12)]
            finally:
                server.stop()
            fates.append(results)
        self.assertEqual(fates[0], fates[1])
        self.assertIn(1, fates[0])
        self.assertIn(0, fates[0])

    def test_fault_options_need_concurrent_and_stall_for_needs_stall_after(self):
        for args, words in (
            (["kettle", "--reset-after", "10"], "the fault options and --rate are for --concurrent"),
            (["kettle", "--concurrent", "--stall-for", "1"], "--stall-for needs --stall-after"),
            (["kettle", "--concurrent", "--faulty", "2"], "must be from 0 to 1"),
        ):
            result = subprocess.run(
                [*command("slowpoetry"), *args], capture_output=True, text=True, timeout=30
            )
            self.assertEqual(result.returncode, 2, args)
            self.assertIn(words, result.stderr.splitlines()[-1])
