"""Ctrl-C (SIGINT) and SIGTERM, sent to the real commands mid-run.

Every engine, the demo and every server: exit 130 or 143, one line on stderr saying
what was cut short, no traceback, and nothing left open (the servers the client was
reading from see their connections go; a stopped server's port refuses).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

from twisted.internet.threads import blockingCallFromThread
from twisted.trial.unittest import SynchronousTestCase

from poetrynow.clients import ENGINES
from tests.support import Editions, Server, ServersInAThread, command, plain_twin

SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def start(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )


def read_until(process: subprocess.Popen, wanted, limit: float = 20.0) -> list[str]:
    """stdout lines until one satisfies ``wanted`` (or the process ends)."""
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if wanted(line):
            return lines
    raise AssertionError(f"never saw the line: {lines!r}")


def finish(process: subprocess.Popen, limit: float = 10.0) -> tuple[str, str]:
    """Wait for the process, then the rest of its output through the same buffered files.

    communicate() would read the pipes' descriptors directly and lose what readline()
    had already buffered.
    """
    assert process.stdout is not None and process.stderr is not None
    process.wait(limit)
    return process.stdout.read(), process.stderr.read()


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


class EngineSignalTests(SynchronousTestCase):
    """get-poetry with each engine: one poem in (a fast server), one crawling (a slow one)."""

    def test_every_engine_on_each_signal(self):
        servers = ServersInAThread(self)
        fast = servers.fast("kettle")
        slow_tree_port = servers.slow("lighthouse", 10, 0.05)  # 15 s: it is always mid-poem
        slow = next(t for t in servers.trees if t.listener.port == slow_tree_port).listener.factory
        for engine in ENGINES:
            for signum, status in SIGNALS.items():
                with self.subTest(engine=engine, signal=signum.name):
                    process = start(
                        *command("get-poetry"), "--engine", engine, "--json", str(fast), str(slow_tree_port)
                    )
                    seen = read_until(process, lambda line: '"received"' in line and '"task": 2' in line)
                    time.sleep(0.1)  # the fast poem is in by now, whichever engine
                    process.send_signal(signum)
                    out, err = finish(process)
                    self.assertEqual(process.returncode, status, err)
                    self.assertNotIn("Traceback", err)
                    self.assertEqual(
                        err.splitlines()[-1],
                        f"get-poetry: stopped by {signum.name}: 1 of 2 poems had arrived; "
                        "the rest were cut short",
                    )
                    finished = [json.loads(line) for line in seen + out.splitlines() if '"finished"' in line]
                    self.assertEqual([r["task"] for r in finished], [1])
                    # The slow server's connection to the client went with it.
                    deadline = time.monotonic() + 3
                    while (
                        blockingCallFromThread(servers.reactor, len, slow.live)
                        and time.monotonic() < deadline
                    ):
                        time.sleep(0.02)
                    self.assertEqual(blockingCallFromThread(servers.reactor, len, slow.live), 0)


class DemoSignalTests(SynchronousTestCase):
    def test_the_demo_stops_its_servers(self):
        for signum, status in SIGNALS.items():
            with self.subTest(signal=signum.name):
                process = start(*command("poetrynow"), "demo", "--delay", "0.05", "--engines", "select")
                lines = read_until(process, lambda line: line.startswith("== get-poetry --engine select"))
                ports = [
                    int(line.rsplit(" ", 1)[1].rstrip(".\n")) for line in lines if line.startswith("Serving ")
                ]
                read_until(process, lambda line: "got" in line)
                process.send_signal(signum)
                _, err = finish(process)
                self.assertEqual(process.returncode, status, err)
                self.assertNotIn("Traceback", err)
                self.assertRegex(
                    err.splitlines()[-1],
                    rf"^poetrynow: stopped by {signum.name}: during --engine select, "
                    r"0 of 3 poems had arrived; the rest were cut short; its servers are stopped$",
                )
                self.assertEqual(len(ports), 3)
                self.assertTrue(all(refused(port) for port in ports))


class ServerSignalTests(Editions, SynchronousTestCase):
    """Each server stopped while a client is mid-poem (the slow ones) or idle (the others)."""

    def stop_mid_poem(self, server: Server, signum: int) -> bytes | Exception:
        """Connect, read a little, stop the server: what the client got after that."""
        client = socket.create_connection(("127.0.0.1", server.port))
        self.addCleanup(client.close)
        client.recv(10)
        server.stop(signum)
        got = b""
        try:
            while data := client.recv(65536):
                got += data
        except OSError as problem:
            return problem
        return got

    def test_slow_servers_reset_the_clients_they_cut_short(self):
        for edition in (["kettle"], ["kettle", "--concurrent"]):
            for signum, status in SIGNALS.items():
                with self.subTest(edition=edition, signal=signum.name):
                    server = self.server(*edition, "--num-bytes", "10", "--delay", "0.05", "--quiet")
                    outcome = self.stop_mid_poem(server, signum)
                    self.assertIsInstance(outcome, ConnectionResetError)  # not a clean end of a short poem
                    self.assertEqual(server.process.returncode, status, server.stderr)
                    self.assertNotIn("Traceback", server.stderr)
                    cut = "a client was cut short at " if len(edition) == 1 else "1 client cut short mid-poem"
                    self.assertIn(f"slowpoetry: stopped by {signum.name}: {cut}", server.stderr)
                    self.assertTrue(refused(server.port))

    def test_twisted_servers_stop_quietly_with_one_line(self):
        cases = [
            ("fastpoetry", ["kettle"]),
            ("transformedpoetry", []),
            ("poetry-proxy", ["127.0.0.1:9"]),
        ]
        for name, argv in cases:
            for signum, status in SIGNALS.items():
                with self.subTest(server=name, signal=signum.name):
                    server = self.server(*argv, command_name=name)
                    self.assertEqual(server.stop(signum), status)
                    self.assertEqual(
                        server.stderr, f"{name}: stopped by {signum.name}: no client was cut short\n"
                    )
                    self.assertNotIn("Closed)", server.stdout)  # Twisted's "(TCP Port N Closed)"
                    self.assertNotIn("Main loop terminated", server.stdout)
                    self.assertIn("No longer ", server.stdout)  # the server's own word for it
                    self.assertTrue(refused(server.port))


PlainServerSignalTests = plain_twin(ServerSignalTests)


class AsyncioStopTests(SynchronousTestCase):
    def test_a_stop_raised_inside_another_task_still_ends_every_task(self):
        # The signal can come while any task runs, not only the main one; every task is
        # then cancelled and waited for, and the stop comes out, within a second or two.
        import asyncio

        from poetrynow.clients import aio
        from poetrynow.stopping import Interrupted

        ended = []

        async def holds_on():
            try:
                await asyncio.sleep(30)
            finally:
                ended.append("holds_on")

        async def interrupted():  # as if the signal came while this task was running
            await asyncio.sleep(0.01)
            raise Interrupted(signal.SIGINT)

        async def main():
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(holds_on()), loop.create_task(interrupted())]
            await asyncio.sleep(30)
            return tasks

        started = time.monotonic()
        with self.assertRaises(Interrupted):
            aio.run(main(), aio.loop_factory())
        self.assertEqual(ended, ["holds_on"])
        self.assertLess(time.monotonic() - started, 2)
