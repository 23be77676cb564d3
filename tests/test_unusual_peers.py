"""Legal but unusual clients of the real commands (issue 22, items 1 and 2).

A client that shuts down its sending side at once (``nc -N``, ``shutdown(SHUT_WR)``)
has said all it will say; it has not gone, and must get the whole poem. A client
that sends a few bytes first (a greeting, a newline typed into telnet) must get the
whole poem and a clean end (a FIN), not a reset. Every server runs as a real
subprocess on 127.0.0.1, port 0; each client reads until the end with a timeout.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

from poetrynow.netstring import encode
from poetrynow.poems import load_poem
from poetrynow.transforms import cummingsify
from tests.support import Editions, Server, connect, exchange, plain_twin, read_to_end, temp_dir, write_poem
from tests.test_twistd import SERVING, Foreground
from tests.time_limit import SynchronousTestCase

CLEAN = "closed"  # how read_to_end says the stream ended in a FIN


def whole(poem: str) -> tuple[bytes, str]:
    """What a client of ``poem`` must end with: every byte of it, then a clean EOF."""
    return load_poem(poem).data, CLEAN


def big_poem(case) -> str:
    """The path of a poem of 8 MB, more than any socket buffer takes in one write."""
    data = b"".join(b"line %07d of a poem too long for one write\n" % i for i in range(190_000))
    return write_poem(temp_dir(case), "epic.txt", data)


def transform_request(poem: bytes) -> bytes:
    return encode(b"cummingsify." + poem)


def transformed(poem: bytes) -> tuple[bytes, str]:
    return encode(cummingsify(poem.decode("utf-8")).encode("utf-8")), CLEAN


class HalfClosingClientTests(SynchronousTestCase):
    """The servers with one edition, and a client that half-closes at once."""

    def started(self, *args: str, command_name: str) -> Server:
        server = Server(*args, command_name=command_name)
        self.addCleanup(server.stop)
        return server

    def test_blocking_slowpoetry_sends_every_chunk(self):
        # 3073 bytes in 11 chunks, 0.01 s apart: a FIN is not a hang-up between them.
        server = self.started(
            "lighthouse", "--num-bytes", "300", "--delay", "0.01", command_name="slowpoetry"
        )
        self.assertEqual(exchange(server.port, half_close=True), whole("lighthouse"))
        self.assertEqual(exchange(server.port, half_close=True), whole("lighthouse"))  # and still serving

    def test_transformedpoetry_answers_a_request_followed_by_a_fin(self):
        server = self.started("--port", "0", command_name="transformedpoetry")
        poem = load_poem("caffe").data
        self.assertEqual(exchange(server.port, transform_request(poem), half_close=True), transformed(poem))

    def test_twistd_transformedpoetry(self):
        server = Foreground(self, "transformedpoetry", "--port", "0")
        port = int(server.wait_for(SERVING).group(1))
        poem = load_poem("caffe").data
        self.assertEqual(exchange(port, transform_request(poem), half_close=True), transformed(poem))


class HalfClosingClientEditionTests(Editions, SynchronousTestCase):
    """The Twisted servers in this class's edition, and a client that half-closes at once."""

    def started(self, *args: str, command_name: str = "slowpoetry") -> Server:
        server = self.server(*args, command_name=command_name)
        self.addCleanup(server.stop)
        return server

    def slow_upstream(self) -> int:
        """A concurrent slow server of lighthouse whose poem takes a moment (11 chunks, 0.02 s apart)."""
        return self.started(
            "lighthouse", "--concurrent", "--num-bytes", "300", "--delay", "0.02", "--quiet"
        ).port

    def twistd(self, *args: str) -> int:
        server = Foreground(self, args[0], *self.plugin_edition(), "--port", "0", *args[1:])
        return int(server.wait_for(SERVING).group(1))

    def test_concurrent_slowpoetry(self):
        port = self.slow_upstream()
        self.assertEqual(exchange(port, half_close=True), whole("lighthouse"))

    def test_fastpoetry(self):
        server = self.started("kettle", "--quiet", command_name="fastpoetry")
        self.assertEqual(exchange(server.port, half_close=True), whole("kettle"))

    def test_fastpoetry_with_a_poem_larger_than_one_write(self):
        path = big_poem(self)
        server = self.started(path, "--quiet", command_name="fastpoetry")
        data, end = exchange(server.port, half_close=True)
        self.assertEqual((len(data), end), (os.path.getsize(path), CLEAN))
        self.assertEqual(data, load_poem(path).data)

    def test_poetry_proxy_cold_then_cached(self):
        proxy = self.started(str(self.slow_upstream()), "--quiet", command_name="poetry-proxy")
        self.assertEqual(exchange(proxy.port, half_close=True), whole("lighthouse"), "cold: fetched upstream")
        self.assertEqual(exchange(proxy.port, half_close=True), whole("lighthouse"), "cached")

    def test_poetry_proxy_cold_to_several_clients_sharing_one_fetch(self):
        proxy = self.started(str(self.slow_upstream()), "--quiet", command_name="poetry-proxy")
        clients = [connect(proxy.port, half_close=True) for _ in range(3)] + [connect(proxy.port)]
        for client in clients:
            with client:
                self.assertEqual(read_to_end(client), whole("lighthouse"))

    def test_poetry_proxy_cached_after_an_ordinary_client(self):
        proxy = self.started(str(self.slow_upstream()), "--quiet", command_name="poetry-proxy")
        self.assertEqual(exchange(proxy.port), whole("lighthouse"))
        for _ in range(3):
            self.assertEqual(exchange(proxy.port, half_close=True), whole("lighthouse"))

    def test_twistd_slowpoetry(self):
        port = self.twistd(
            "slowpoetry", "--poem", "relay", "--num-bytes", "100", "--delay", "0.01", "--quiet"
        )
        self.assertEqual(exchange(port, half_close=True), whole("relay"))

    def test_twistd_fastpoetry(self):
        port = self.twistd("fastpoetry", "--poem", "kettle", "--quiet")
        self.assertEqual(exchange(port, half_close=True), whole("kettle"))

    def test_twistd_poetryproxy_cold_then_cached(self):
        port = self.twistd("poetryproxy", "--quiet", f"127.0.0.1:{self.slow_upstream()}")
        self.assertEqual(exchange(port, half_close=True), whole("lighthouse"), "cold: fetched upstream")
        self.assertEqual(exchange(port, half_close=True), whole("lighthouse"), "cached")


#: Connections per test of a client that speaks first: a reset is a race, so try it often.
SPEAKERS = 20
GREETING = b"hello\r\n"


@contextmanager
def stopped(server: Server):
    """The server process stopped (SIGSTOP) until the block ends, then continued (SIGCONT).

    While it is stopped the kernel still completes each handshake and queues what a
    client sends, so every greeting is in the socket before the server accepts it.
    """
    server.process.send_signal(signal.SIGSTOP)
    try:
        os.waitpid(server.process.pid, os.WUNTRACED)  # returns once it has stopped
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


class SpeakingFirstTests(Editions, SynchronousTestCase):
    """A client that sends a few bytes before it reads: the whole poem, then a FIN, never a reset."""

    def started(self, *args: str, command_name: str) -> Server:
        server = self.server(*args, command_name=command_name)
        self.addCleanup(server.stop)
        return server

    def cached_proxy(self) -> Server:
        upstream = self.started("kettle", "--concurrent", "--num-bytes", "100", "--delay", "0.01", "--quiet",
                                command_name="slowpoetry")  # fmt: skip
        proxy = self.started(str(upstream.port), "--quiet", command_name="poetry-proxy")
        self.assertEqual(exchange(proxy.port), whole("kettle"))  # now the poem is cached
        return proxy

    def assert_greeted_before_accept_ends_cleanly(self, server: Server) -> None:
        with stopped(server):
            clients = [connect(server.port, GREETING) for _ in range(SPEAKERS)]
        for client in clients:
            with client:
                self.assertEqual(read_to_end(client), whole("kettle"))

    def assert_greeted_ends_cleanly(self, server: Server) -> None:
        for _ in range(SPEAKERS):
            self.assertEqual(exchange(server.port, GREETING), whole("kettle"))

    def test_fastpoetry_greeted_before_it_accepts(self):
        self.assert_greeted_before_accept_ends_cleanly(
            self.started("kettle", "--quiet", command_name="fastpoetry")
        )

    def test_fastpoetry_greeted(self):
        self.assert_greeted_ends_cleanly(self.started("kettle", "--quiet", command_name="fastpoetry"))

    def test_proxy_cache_hit_greeted_before_it_accepts(self):
        self.assert_greeted_before_accept_ends_cleanly(self.cached_proxy())

    def test_proxy_cache_hit_greeted(self):
        self.assert_greeted_ends_cleanly(self.cached_proxy())


PlainHalfClosingClientEditionTests = plain_twin(HalfClosingClientEditionTests)
PlainSpeakingFirstTests = plain_twin(SpeakingFirstTests)
