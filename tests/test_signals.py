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

from poetrynow.clients import ENGINES
from poetrynow.poems import load_poem
from tests.support import DEADLINE, Child, Editions, Server, ServersInAThread, command, plain_twin
from tests.time_limit import SynchronousTestCase

SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def start(case, *argv: str) -> Child:
    """``argv`` running, killed after the test if it has not ended by then."""
    child = Child(list(argv))
    case.addCleanup(child.stop, signal.SIGKILL)
    return child


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


#: Chunks of the slow poem to see after the last byte of the fast one: see :class:`FastPoemIn`.
SETTLE = 10


class FastPoemIn:
    """A predicate on get-poetry --json's lines: true once the fast poem (task 1) is surely in,
    and the slow one (task 2) under way.

    Most engines say so in a "finished" line. The actors engine cannot: its main process
    reports the poems it collected at the end of the run (Part 20), so the last byte of
    the fast poem is all its output shows. Ten chunks of the slow poem after that byte
    are ten more rounds of the servers' reactor, which closed the fast connection in the
    round it sent the poem, and ten more wake-ups of the client's loop, which read that
    end in the first of them; the worker's poem message then precedes, in the main
    process's mailbox, the chunks it prints after. Counted in events, not seconds.
    """

    def __init__(self, size: int):
        self.size, self.fast_bytes, self.finished = size, 0, False
        self.slow_chunks = self.slow_chunks_after = 0

    def __call__(self, line: str) -> bool:
        record = json.loads(line)
        if record["event"] == "finished" and record["task"] == 1:
            self.finished = True
        elif record["event"] == "received" and record["task"] == 1:
            self.fast_bytes += record["bytes"]
        elif record["event"] == "received" and record["task"] == 2:
            self.slow_chunks += 1
            self.slow_chunks_after += self.fast_bytes >= self.size
        # The slow poem under way too: the signal cuts it short.
        return (self.finished and self.slow_chunks > 0) or self.slow_chunks_after >= SETTLE


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
                    child = start(
                        self,
                        *command("get-poetry"),
                        "--engine",
                        engine,
                        "--json",
                        str(fast),
                        str(slow_tree_port),
                    )
                    # The fast poem in, and the slow one under way: the events themselves, not
                    # a pause that a loaded machine outlasts.
                    seen = child.out.until(FastPoemIn(len(load_poem("kettle").data)))
                    child.process.send_signal(signum)
                    # A hang detector, not a speed test: the stop is quick, but a loaded machine
                    # may take seconds to schedule an interpreter's exit.
                    out, err = child.finish()
                    self.assertEqual(child.process.returncode, status, err)
                    self.assertNotIn("Traceback", err)
                    self.assertEqual(
                        err.splitlines()[-1],
                        f"get-poetry: stopped by {signum.name}: 1 of 2 poems had arrived; "
                        "the rest were cut short",
                    )
                    finished = [json.loads(line) for line in seen + out.splitlines() if '"finished"' in line]
                    self.assertEqual([r["task"] for r in finished], [1])
                    # The slow server's connection to the client went with it.
                    deadline = time.monotonic() + DEADLINE
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
                child = start(
                    self, *command("poetrynow"), "demo", "--delay", "0.05", "--engines", "select", "--reads"
                )
                lines = child.out.until(lambda line: line.startswith("== get-poetry --engine select"))
                ports = [
                    int(line.rsplit(" ", 1)[1].rstrip(".\n")) for line in lines if line.startswith("Serving ")
                ]
                child.out.until(lambda line: "got" in line)
                child.process.send_signal(signum)
                _, err = child.finish()
                self.assertEqual(child.process.returncode, status, err)
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
                    self.assertEqual(server.stop(signum), status, server.stderr[-4000:])
                    self.assertEqual(
                        server.stderr,
                        f"{name}: stopped by {signum.name}: no client was cut short\n",
                        server.stderr,  # whole: a stack dump says where a slow stop waited
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
        self.assertLess(time.monotonic() - started, 15)  # not the 30 s sleeps: a hang, not a speed, test


def volley(process: subprocess.Popen, signum: int, limit: float = 10.0) -> None:
    """``signum`` again and again until the process ends, so that later ones land in every part of its stop.

    Two signals sent back to back are often one (the kernel keeps one pending); sent
    every fifth of a millisecond until the process is gone, some land while the loop
    stops, some after it, some in the interpreter's own shutdown. What the test waits
    for is the exit itself.
    """
    deadline = time.monotonic() + limit
    while process.poll() is None and time.monotonic() < deadline:
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            break
        time.sleep(0.0002)


def stopped_by_sigint(returncode: int) -> bool:
    """130, or death by SIGINT itself (the shell's convention allows either)."""
    return returncode in (130, -signal.SIGINT)


def assert_one_quiet_stop(case, returncode: int, out: str, err: str, line: str) -> None:
    """Stopped by SIGINT (130, or death by it), one line on stderr, no traceback anywhere."""
    case.assertTrue(stopped_by_sigint(returncode), (returncode, err))
    for text in (out, err):
        case.assertNotIn("Traceback", text)
        case.assertNotIn("ReactorNotRunning", text)
        case.assertNotIn("Can't stop reactor", text)  # its words in a server's log
    case.assertNotIn("Exception ignored", err)  # one raised in the interpreter's shutdown
    case.assertEqual(err.count(line), 1, err)


class SecondSignalServerTests(Editions, SynchronousTestCase):
    """Ctrl-C again and again while a Twisted server stops: the same stop (stopping.py)."""

    def test_twisted_servers(self):
        servers = ServersInAThread(self)
        upstream = servers.fast("kettle")
        cases = [
            ("slowpoetry", ["kettle", "--concurrent", "--num-bytes", "10", "--delay", "0.05", "--quiet"]),
            ("fastpoetry", ["kettle"]),
            ("poetry-proxy", [str(upstream)]),
            ("transformedpoetry", []),
        ]
        for name, argv in cases:
            with self.subTest(server=name):
                server = self.server(*argv, command_name=name)  # its listening line is out
                if name == "slowpoetry":  # clients mid-poem: the stop has some to cut short
                    for _ in range(20):
                        client = socket.create_connection(("127.0.0.1", server.port))
                        self.addCleanup(client.close)
                        client.recv(10)
                volley(server.process, signal.SIGINT)
                server.stop()
                assert_one_quiet_stop(
                    self,
                    server.process.returncode,
                    server.stdout,
                    server.stderr,
                    f"{name}: stopped by SIGINT: ",
                )


PlainSecondSignalServerTests = plain_twin(SecondSignalServerTests)


class SecondSignalEngineTests(SynchronousTestCase):
    """Ctrl-C again and again while get-poetry stops, with each engine that runs an event loop."""

    def test_get_poetry_on_an_event_loop(self):
        servers = ServersInAThread(self)
        slow = servers.slow("lighthouse", 10, 0.05)  # always mid-poem
        for engine in ("twisted", "asyncio", "actors", "lazy"):
            with self.subTest(engine=engine):
                child = start(self, *command("get-poetry"), "--engine", engine, "--json", str(slow))
                child.out.until(lambda line: '"received"' in line)  # the first chunk is in
                volley(child.process, signal.SIGINT)
                out, err = child.finish()
                assert_one_quiet_stop(
                    self, child.process.returncode, out, err, "get-poetry: stopped by SIGINT: "
                )


class SecondSignalInTheLoopTests(SynchronousTestCase):
    """In this process: the second signal sent from inside the first one's stop, where it used to
    hand the loop its stop again."""

    def send_sigint(self) -> None:
        import os

        os.kill(os.getpid(), signal.SIGINT)  # the handler runs in this thread before the next line

    def test_a_reactor_stopping_is_not_stopped_again(self):
        from twisted.internet import task
        from twisted.logger import globalLogPublisher

        from poetrynow.clients.reactors import close_reactor, watching
        from poetrynow.clients.twisted_engine import new_reactor
        from poetrynow.stopping import loop_stopped_by_signals

        logged: list = []
        observer = logged.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        reactor = new_reactor()
        self.addCleanup(close_reactor, reactor)
        stops: list = []

        def stop():
            stops.append(reactor.running)
            reactor.stop()

        def stopping():  # a service that takes a moment to stop, as a listening port does
            self.send_sigint()
            return task.deferLater(reactor, 0.01, lambda: None)

        reactor.addSystemEventTrigger("before", "shutdown", stopping)
        reactor.callWhenRunning(self.send_sigint)
        with loop_stopped_by_signals(reactor.callFromThread, stop, watching(reactor)) as caught:
            reactor.run(installSignalHandlers=False)
        self.assertEqual((caught, len(stops)), ([signal.SIGINT], 1))
        self.assertEqual([e for e in logged if e.get("log_failure") is not None], [])

    def test_an_asyncio_run_cancelled_is_not_cancelled_again(self):
        import asyncio

        from poetrynow.clients import aio
        from poetrynow.stopping import Interrupted

        cancels: list[int] = []

        async def main():
            task = asyncio.current_task()
            self.send_sigint()
            try:
                await asyncio.sleep(30)
            finally:  # stopping: the second signal comes now
                self.send_sigint()
                await asyncio.sleep(0)
                cancels.append(task.cancelling())

        with self.assertRaises(Interrupted) as stop:
            aio.run(main(), aio.loop_factory())
        self.assertEqual((stop.exception.signum, cancels), (signal.SIGINT, [1]))

    def test_a_later_run_reports_its_failures_and_stops_on_its_signal(self):
        import io

        from poetrynow import stopping
        from poetrynow.address import Address
        from poetrynow.clients import EngineOptions
        from poetrynow.session import fetch
        from poetrynow.stopping import Interrupted
        from tests.support import free_port

        servers = ServersInAThread(self)
        slow = Address("127.0.0.1", servers.slow("lighthouse", 10, 0.05))
        refused = Address("127.0.0.1", free_port())
        out, err = io.StringIO(), io.StringIO()

        from poetrynow.clients.task import PoemTask

        got, counted = PoemTask.got, PoemTask.counted
        armed: list[bool] = []

        def sigint_on_the_first_chunk(original):
            def chunk(task, *args, **kwargs):
                original(task, *args, **kwargs)
                if armed:  # inside the engine's loop, in this thread
                    armed.clear()
                    self.send_sigint()

            return chunk

        self.patch(PoemTask, "got", sigint_on_the_first_chunk(got))
        self.patch(PoemTask, "counted", sigint_on_the_first_chunk(counted))

        for engine in ("twisted", "asyncio"):
            with self.subTest(engine=engine):
                armed.append(True)
                with self.assertRaises(Interrupted):
                    fetch(engine, [slow], EngineOptions(), out=io.StringIO(), err=io.StringIO())
                self.assertEqual(stopping.requested, [signal.SIGINT])
                # The same process goes on: the next run's refusal is reported.
                summary = fetch(engine, [refused], EngineOptions(), out=out, err=err)
                self.assertEqual(summary.exit_status, 1)
                self.assertIn("Connection refused", err.getvalue())
                self.assertEqual(stopping.requested, [])


class SignalInAnotherThreadTests(SynchronousTestCase):
    """The kernel may hand a signal to any thread: the loop must wake all the same.

    Python runs the handler in the main thread, and only once that thread runs Python
    code again; a reactor asleep in epoll with no other event would wait for ever
    (a server with no clients, its resolver's threads about). ``pthread_kill`` hands the
    signal to a thread of the test's choosing.
    """

    def test_a_reactor_asleep_is_woken_by_a_signal_given_to_another_thread(self):
        import threading

        from poetrynow.clients.reactors import close_reactor, stop_reactor, watching
        from poetrynow.clients.twisted_engine import new_reactor
        from poetrynow.stopping import loop_stopped_by_signals

        reactor = new_reactor()
        backstop: list[bool] = []

        def hang_detector() -> None:  # not a timing: only a run that never woke gets here
            backstop.append(True)
            stop_reactor(reactor)

        def give_it_a_signal() -> None:
            # A pause for the main thread to be asleep in epoll (were it not yet, the handler
            # would run at once and the test pass anyway: never a false failure).
            time.sleep(0.2)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)

        def signal_elsewhere() -> None:
            threading.Thread(target=give_it_a_signal, daemon=True).start()

        reactor.callLater(DEADLINE, hang_detector)
        reactor.callWhenRunning(signal_elsewhere)
        try:
            with loop_stopped_by_signals(
                reactor.callFromThread, lambda: stop_reactor(reactor), watching(reactor)
            ) as caught:
                reactor.run(installSignalHandlers=False)
        finally:
            close_reactor(reactor)
        self.assertEqual((caught, backstop), ([signal.SIGINT], []))
