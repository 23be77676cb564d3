"""The fast path of fastpoetry and the proxy's cache hits: OneWritePort and its fallbacks.

Real sockets on 127.0.0.1 in the test's reactor; the clients are blocking sockets
in a thread, so the test knows each client's own port for the log line.
"""

from __future__ import annotations

import os
import socket
import struct

from twisted.internet import defer, reactor, threads
from twisted.logger import capturedLogs, formatEvent

from poetrynow.address import Address
from poetrynow.servers.common.sending import STREAM_THRESHOLD
from poetrynow.servers.fast.onewrite import OneWritePort
from poetrynow.servers.fast.plain import PoetryFactory, PoetryService
from poetrynow.servers.proxy import PoetryProxyFactory, ProxyService
from tests.support import temp_dir, write_poem
from tests.time_limit import TestCase
from tests.twisted_support import TEST_POEM, WatchedSlowFactory, listen


def fetch(port: int, host: str = "127.0.0.1") -> tuple[bytes, int]:
    """A blocking client: everything the server sends until it closes, and the client's port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(30)
        sock.connect((host, port))
        own = sock.getsockname()[1]
        parts = []
        while chunk := sock.recv(65536):
            parts.append(chunk)
    return b"".join(parts), own


class CountingFactory(PoetryFactory):
    """A fast factory that counts the connections that took Twisted's ordinary path."""

    built = 0

    def buildProtocol(self, addr):
        self.built += 1
        return super().buildProtocol(addr)


def lines(logs) -> list[str]:
    return [formatEvent(event) for event in logs if "poetry to" in (event.get("log_format") or "")]


class OneWritePortTests(TestCase):
    def serve(self, poem: bytes, log_clients: bool = True, host: str = "127.0.0.1") -> OneWritePort:
        service = PoetryService(write_poem(temp_dir(self), "poem.txt", poem))
        service.load()
        port = OneWritePort(0, CountingFactory(service, log_clients), 50, host, reactor)
        port.startListening()
        self.addCleanup(port.stopListening)
        return port

    @defer.inlineCallbacks
    def test_a_short_poem_goes_out_in_the_accept_loop_with_its_log_line(self):
        port = self.serve(TEST_POEM)
        with capturedLogs() as logs:
            poem, own = yield threads.deferToThread(fetch, port.getHost().port)
        self.assertEqual(poem, TEST_POEM)
        self.assertEqual(port.factory.built, 0)  # no protocol, no transport
        self.assertEqual(lines(logs), [f"sending {len(TEST_POEM)} bytes of poetry to 127.0.0.1:{own}"])

    @defer.inlineCallbacks
    def test_quiet_logs_nothing(self):
        port = self.serve(TEST_POEM, log_clients=False)
        with capturedLogs() as logs:
            poem, _ = yield threads.deferToThread(fetch, port.getHost().port)
        self.assertEqual(poem, TEST_POEM)
        self.assertEqual(lines(logs), [])

    @defer.inlineCallbacks
    def test_a_write_the_kernel_takes_only_partly_is_finished_by_a_transport(self):
        poem = b"".join(b"line %05d of a poem the kernel takes only partly\n" % i for i in range(100))
        port = self.serve(poem)
        port.write_answer = lambda fd, data: os.write(fd, data[:100])
        with capturedLogs() as logs:
            got, own = yield threads.deferToThread(fetch, port.getHost().port)
        self.assertEqual(got, poem)
        self.assertEqual(lines(logs), [f"sending {len(poem)} bytes of poetry to 127.0.0.1:{own}"])

    @defer.inlineCallbacks
    def test_a_write_the_kernel_refuses_is_sent_whole_by_a_transport(self):
        port = self.serve(TEST_POEM)

        def full(fd, data):
            raise BlockingIOError(11, "Resource temporarily unavailable")

        port.write_answer = full
        got, _ = yield threads.deferToThread(fetch, port.getHost().port)
        self.assertEqual(got, TEST_POEM)

    @defer.inlineCallbacks
    def test_a_client_that_resets_before_the_write_costs_nothing_else(self):
        port = self.serve(TEST_POEM)
        port.stopReading()  # the reset client waits in the accept queue, as under load
        with socket.create_connection(("127.0.0.1", port.getHost().port)) as hasty:
            hasty.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        port.startReading()
        with capturedLogs() as logs:
            got, own = yield threads.deferToThread(fetch, port.getHost().port)
        self.assertEqual(got, TEST_POEM)
        self.assertEqual(lines(logs), [f"sending {len(TEST_POEM)} bytes of poetry to 127.0.0.1:{own}"])
        self.assertEqual(port.factory.built, 0)

    @defer.inlineCallbacks
    def test_a_poem_larger_than_the_socket_buffer_goes_the_ordinary_way(self):
        poem = os.urandom(256 << 10)
        port = self.serve(poem)
        self.assertLess(port.quick_limit, len(poem))
        with capturedLogs() as logs:
            got, own = yield threads.deferToThread(fetch, port.getHost().port)
        self.assertEqual(got, poem)
        self.assertEqual(port.factory.built, 1)
        self.assertEqual(lines(logs), [f"sending {len(poem)} bytes of poetry to 127.0.0.1:{own}"])

    @defer.inlineCallbacks
    def test_a_poem_past_the_stream_threshold_goes_by_producer_to_several_clients(self):
        poem = os.urandom(STREAM_THRESHOLD + 12345)
        port = self.serve(poem, log_clients=False)
        got = yield defer.gatherResults([threads.deferToThread(fetch, port.getHost().port) for _ in range(3)])
        self.assertEqual([data for data, _ in got], [poem] * 3)

    @defer.inlineCallbacks
    def test_ipv6(self):
        try:
            port = self.serve(TEST_POEM, host="::1")
        except Exception as problem:  # no IPv6 on this machine
            raise self.skipTest(f"no IPv6 loopback: {problem}") from None
        with capturedLogs() as logs:
            got, own = yield threads.deferToThread(fetch, port.getHost().port, "::1")
        self.assertEqual(got, TEST_POEM)
        self.assertEqual(lines(logs), [f"sending {len(TEST_POEM)} bytes of poetry to ::1:{own}"])


class ProxyHitTests(TestCase):
    def proxy(self, upstream: int, log_clients: bool = True) -> tuple[ProxyService, OneWritePort]:
        service = ProxyService(Address("127.0.0.1", upstream), log_clients=log_clients)
        port = OneWritePort(0, PoetryProxyFactory(service), 50, "127.0.0.1", reactor)
        port.startListening()
        self.addCleanup(port.stopListening)
        return service, port

    @defer.inlineCallbacks
    def test_the_first_client_fetches_the_rest_are_answered_in_the_accept_loop(self):
        upstream = WatchedSlowFactory(num_bytes=50, delay=0.001)
        service, port = self.proxy(listen(self, upstream))
        with capturedLogs() as logs:
            first, _ = yield threads.deferToThread(fetch, port.getHost().port)
            second, _ = yield threads.deferToThread(fetch, port.getHost().port)
            third, _ = yield threads.deferToThread(fetch, port.getHost().port)
        self.assertEqual([first, second, third], [TEST_POEM] * 3)
        self.assertEqual(upstream.connections, 1)
        self.assertEqual(service.cache_hits, 2)
        messages = [event["log_format"] for event in logs]
        self.assertEqual(messages.count("Fetching poem from server."), 1)
        self.assertEqual(messages.count("Using cached poem."), 2)

    @defer.inlineCallbacks
    def test_quiet_counts_the_hits_without_a_line(self):
        upstream = WatchedSlowFactory(num_bytes=50, delay=0.001)
        service, port = self.proxy(listen(self, upstream), log_clients=False)
        yield threads.deferToThread(fetch, port.getHost().port)
        with capturedLogs() as logs:
            for _ in range(3):
                got, _ = yield threads.deferToThread(fetch, port.getHost().port)
                self.assertEqual(got, TEST_POEM)
        self.assertEqual(service.cache_hits, 3)
        self.assertEqual([e for e in logs if e.get("log_format") == "Using cached poem."], [])
