"""The slow server's bare connections (SlowPort) and their fallbacks, on real sockets."""

from __future__ import annotations

import os
import socket
import time

from twisted.internet import defer, reactor, threads
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SkipTest

from poetrynow.servers.slow.fast import SlowPort
from poetrynow.servers.slow.plain import SlowPoetryFactory
from tests.support import DEADLINE
from tests.time_limit import TestCase
from tests.twisted_support import TEST_POEM, poetry_service


def read_all(
    port: int, pause: float = 0.0, stop_after: int | None = None, host: str = "127.0.0.1"
) -> tuple[bytes, int, str]:
    """A blocking client: wait ``pause`` before reading, stop after ``stop_after`` bytes.

    Returns what it read, its own port, and how the stream ended ("closed" or the error).
    A reset that lands before this thread sees its connect complete (a busy machine) fails
    the connect itself: the stream ended the same way, before its first byte (port 0).
    """
    try:
        connected = socket.create_connection((host, port), timeout=30)
    except ConnectionResetError as problem:
        return b"", 0, os.strerror(problem.errno or 0)
    with connected as sock:
        own = sock.getsockname()[1]
        time.sleep(pause)
        parts: list[bytes] = []
        size = 0
        try:
            while chunk := sock.recv(65536):
                parts.append(chunk)
                size += len(chunk)
                if stop_after is not None and size >= stop_after:
                    return b"".join(parts), own, "hung up"
        except OSError as problem:
            return b"".join(parts), own, os.strerror(problem.errno or 0)
    return b"".join(parts), own, "closed"


class SlowPortTests(TestCase):
    def serve(self, poem: bytes, num_bytes: int, delay: float, *also: str) -> SlowPoetryFactory:
        """A SlowPort on 127.0.0.1, port 0, and one on each of ``also`` on the same port, one factory."""
        factory = SlowPoetryFactory(poetry_service(poem), num_bytes, delay, clock=reactor)
        factory.doStart()
        # Last of the cleanups: the pacer's timer, which a tick may have left armed after the
        # last client went, is cancelled, and no test leaves it to the next.
        self.addCleanup(lambda: factory.numPorts and factory.doStop())
        self.port = 0
        self.ports: list[SlowPort] = []
        for interface in ("127.0.0.1", *also):
            port = SlowPort(self.port, factory, 50, interface, reactor)
            port.startListening()
            self.addCleanup(port.stopListening)
            self.ports.append(port)
            self.port = port.getHost().port
        return factory

    @defer.inlineCallbacks
    def test_bare_connections_get_the_poem_on_schedule_without_a_transport(self):
        factory = self.serve(TEST_POEM, 10, 0.01)
        started = time.monotonic()
        got = yield defer.gatherResults([threads.deferToThread(read_all, self.port) for _ in range(5)])
        self.assertGreaterEqual(time.monotonic() - started, 0.05)  # 5 chunks, 0.01 s apart
        self.assertEqual([(data, end) for data, _, end in got], [(TEST_POEM, "closed")] * 5)
        self.assertEqual(self.ports[0].sessionno, 0)  # no transport was ever made
        self.assertEqual(factory.live, set())

    @defer.inlineCallbacks
    def test_a_client_that_stops_reading_gets_a_transport_and_the_whole_poem(self):
        poem = os.urandom(8 << 20)
        self.serve(poem, 1 << 20, 0.001)
        data, _, end = yield threads.deferToThread(read_all, self.port, 0.5)
        self.assertEqual((len(data), end), (len(poem), "closed"))
        self.assertEqual(data, poem)
        self.assertEqual(self.ports[0].sessionno, 1)  # handed over once the kernel's buffers were full

    @defer.inlineCallbacks
    def test_a_client_is_handed_over_through_the_port_that_accepted_it(self):
        # localhost is two ports, 127.0.0.1's and ::1's, with one factory: an IPv4 client's
        # descriptor must become an IPv4 transport of its own port, not of the last to listen.
        try:
            poem = os.urandom(8 << 20)
            self.serve(poem, 1 << 20, 0.001, "::1")
        except Exception as problem:
            raise SkipTest(f"no IPv6 loopback here: {problem}") from None
        data, _, end = yield threads.deferToThread(read_all, self.port, 0.5)
        self.assertEqual((len(data), end), (len(poem), "closed"))
        self.assertEqual(data, poem)
        self.assertEqual([port.sessionno for port in self.ports], [1, 0])

    @defer.inlineCallbacks
    def test_a_client_that_hangs_up_is_logged_and_forgotten(self):
        poem = b"x" * 1000
        factory = self.serve(poem, 10, 0.005)
        with capturedLogs() as logs:
            _, own, end = yield threads.deferToThread(read_all, self.port, 0.0, 30)
            deadline = time.monotonic() + DEADLINE
            while factory.live and time.monotonic() < deadline:
                yield deferLater(0.01)
        said = [formatEvent(e) for e in logs]  # all of it, for a failure to show
        self.assertEqual(end, "hung up", said)
        self.assertEqual(factory.live, set(), said)
        lines = [formatEvent(e) for e in logs if "hung up" in (e.get("log_format") or "")]
        self.assertEqual(len(lines), 1, said)
        self.assertRegex(lines[0], rf"^Client at 127\.0\.0\.1:{own} hung up after \d+ of 1000 bytes\.$")

    @defer.inlineCallbacks
    def test_stopping_mid_poem_resets_bare_connections(self):
        factory = self.serve(b"y" * 1000, 10, 0.05)
        reading = threads.deferToThread(read_all, self.port)
        deadline = time.monotonic() + DEADLINE  # a hang detector: a loaded machine may be slow
        while not factory.live and time.monotonic() < deadline:
            yield deferLater(0.01)
        factory.stopFactory()
        data, _, end = yield reading
        self.assertEqual(end, "Connection reset by peer")
        self.assertLess(len(data), 1000)
        self.assertEqual(factory.cut_short, 1)


def deferLater(seconds: float) -> defer.Deferred:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


class ChattyClientTests(TestCase):
    @defer.inlineCallbacks
    def test_a_client_that_sends_something_still_gets_a_clean_end(self):
        # Nobody reads a bare connection; its close must not turn the unread bytes into a reset.
        factory = SlowPoetryFactory(poetry_service(TEST_POEM), 10, 0.005, clock=reactor)
        factory.doStart()
        port = SlowPort(0, factory, 50, "127.0.0.1", reactor)
        port.startListening()
        self.addCleanup(port.stopListening)

        def chatty() -> tuple[bytes, str]:
            with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=30) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                parts = []
                try:
                    while chunk := sock.recv(65536):
                        parts.append(chunk)
                except OSError as problem:
                    return b"".join(parts), os.strerror(problem.errno or 0)
            return b"".join(parts), "closed"

        data, end = yield threads.deferToThread(chatty)
        self.assertEqual((data, end), (TEST_POEM, "closed"))
