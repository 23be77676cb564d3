"""A cold server has room for a burst: one thread, and its descriptor table made in advance.

A second thread alive beside a server made every doubling of its descriptor table
wait for an RCU grace period on Linux (10-25 ms each, measured with ``strace -T -e
accept4``): a cold server fell behind a burst of 10,000 connects and the listen
queue overflowed (docs/benchmarks.md, "A cold burst"). These tests guard the two
causes directly: the serving commands start no thread of their own, and they make
their table as big as their limit (up to PRESIZE_AT_MOST) before the first client.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading
import time
import unittest
from pathlib import Path

from poetrynow.descriptors import PRESIZE_AT_MOST, presize_descriptor_table
from tests.support import Server
from tests.time_limit import SynchronousTestCase

LINUX = sys.platform.startswith("linux")


def status(pid: int | str) -> dict[str, str]:
    """/proc/PID/status as a dict of its fields."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


@unittest.skipUnless(LINUX, "FDSize and the per-thread list are Linux's /proc")
class DescriptorTableTests(SynchronousTestCase):
    def test_the_table_is_made_for_the_limit_and_nothing_in_use_is_touched(self):
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        kept = os.open(os.devnull, os.O_RDONLY)
        self.addCleanup(os.close, kept)
        size = presize_descriptor_table(soft)
        self.assertEqual(size, min(soft, PRESIZE_AT_MOST))
        self.assertGreaterEqual(int(status("self")["FDSize"]), size)
        os.fstat(kept)  # still open, still ours
        with self.assertRaises(OSError):  # the duplicate that made the room is closed again
            os.fstat(size - 1)

    def test_a_limit_past_the_process_own_is_refused_and_changes_nothing(self):
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft + 10 > PRESIZE_AT_MOST:
            self.skipTest("the limit is past what a table is made for")
        self.assertEqual(presize_descriptor_table(soft + 10), 0)


@unittest.skipUnless(LINUX, "FDSize and the per-thread list are Linux's /proc")
class ServingProcessTests(SynchronousTestCase):
    """The Twisted servers, as their commands run them: one thread, a table made for a burst."""

    COMMANDS = (
        ("slowpoetry", ("kettle", "--concurrent", "--quiet")),
        ("slowpoetry", ("kettle", "--concurrent", "--quiet", "--plain")),
        ("fastpoetry", ("kettle", "--quiet")),
    )

    def test_each_server_serves_with_one_thread_and_a_table_made_in_advance(self):
        for name, args in self.COMMANDS:
            with self.subTest(command=name, args=args):
                server = Server(*args, command_name=name)
                try:
                    pid = server.process.pid
                    threads = sorted(os.listdir(f"/proc/{pid}/task"))
                    self.assertEqual(threads, [str(pid)], "a thread beside the server slows every burst")
                    limit = int(Path(f"/proc/{pid}/limits").read_text().split("Max open files")[1].split()[0])
                    self.assertGreaterEqual(int(status(pid)["FDSize"]), min(limit, PRESIZE_AT_MOST))
                finally:
                    server.stop()


class SignalWakesEveryLoopTests(SynchronousTestCase):
    """The loop itself reads the wake-up pipe: asyncio is woken too, with no thread of ours."""

    def test_an_asyncio_loop_asleep_is_woken_by_a_signal_given_to_another_thread(self):
        import asyncio

        from poetrynow.clients import aio
        from poetrynow.stopping import Interrupted

        def give_it_a_signal() -> None:
            time.sleep(0.2)  # were the loop not asleep yet, the handler runs at once: never a false failure
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

        async def sleeps() -> None:
            threading.Thread(target=give_it_a_signal, daemon=True).start()
            await asyncio.sleep(30)  # the backstop: a loop never woken ends here, and the test fails

        with self.assertRaises(Interrupted) as stopped:
            aio.run(sleeps())
        self.assertEqual(stopped.exception.signum, signal.SIGTERM)
        self.assertFalse([t for t in threading.enumerate() if t.name == "signal wake-up"])
