"""The caching, cancelling proxy against real upstream servers in the test's reactor."""

from twisted.internet import defer, error
from twisted.logger import capturedLogs

from poetrynow.address import Address
from poetrynow.clients.get_poetry import get_poetry
from poetrynow.servers.proxy import PoetryProxyFactory, ProxyService
from tests.support import free_port
from tests.time_limit import TestCase
from tests.twisted_support import (
    TEST_POEM,
    CloseAtOnce,
    Endless,
    HalfThenAbort,
    WatchedSlowFactory,
    factory_of,
    listen,
)


class ProxyTests(TestCase):
    def proxy(self, upstream_port: int, **settings) -> tuple[ProxyService, int]:
        service = ProxyService(Address("127.0.0.1", upstream_port), **settings)
        return service, listen(self, PoetryProxyFactory(service))

    @defer.inlineCallbacks
    def test_two_clients_share_one_fetch_then_the_cache_serves(self):
        upstream = WatchedSlowFactory(num_bytes=10, delay=0.01)
        service, port = self.proxy(listen(self, upstream))
        with capturedLogs() as logs:
            first, second = yield defer.gatherResults(
                [get_poetry("127.0.0.1", port), get_poetry("127.0.0.1", port)]
            )
            third = yield get_poetry("127.0.0.1", port)
        self.assertEqual([first, second, third], [TEST_POEM] * 3)
        self.assertEqual(upstream.connections, 1)
        self.assertEqual(service.poem, TEST_POEM)
        messages = [event["log_format"] for event in logs]
        self.assertEqual(messages.count("Fetching poem from server."), 1)
        self.assertIn("Using cached poem.", messages)

    @defer.inlineCallbacks
    def test_the_only_client_hanging_up_cancels_the_upstream_fetch(self):
        upstream = WatchedSlowFactory(num_bytes=5, delay=10)  # would take minutes
        service, port = self.proxy(listen(self, upstream))
        with capturedLogs() as logs:
            client = get_poetry("127.0.0.1", port)
            yield upstream.connected
            client.cancel()
            yield self.assertFailure(client, defer.CancelledError)
            yield upstream.lost  # the slow server sees its connection closed
        self.assertIsNone(service.poem)
        self.assertIn("Canceling poem download.", [event["log_format"] for event in logs])

    @defer.inlineCallbacks
    def test_one_of_two_clients_hanging_up_keeps_the_fetch(self):
        upstream = WatchedSlowFactory(num_bytes=10, delay=0.02)
        _service, port = self.proxy(listen(self, upstream))
        leaving = get_poetry("127.0.0.1", port)
        staying = get_poetry("127.0.0.1", port)
        yield upstream.connected
        leaving.cancel()
        yield self.assertFailure(leaving, defer.CancelledError)
        poem = yield staying
        self.assertEqual(poem, TEST_POEM)
        self.assertEqual(upstream.connections, 1)

    @defer.inlineCallbacks
    def test_upstream_refusing_leaves_nothing_cached(self):
        service, port = self.proxy(free_port())
        with capturedLogs() as logs:
            yield self.assertFailure(get_poetry("127.0.0.1", port), error.ConnectionLost)
        self.assertIsNone(service.poem)
        warnings = [e for e in logs if e["log_format"].startswith("The poem download failed")]
        self.assertEqual(len(warnings), 1)

    @defer.inlineCallbacks
    def test_unclean_upstream_close_is_a_failure_not_a_poem(self):
        service, port = self.proxy(listen(self, factory_of(HalfThenAbort)))
        yield self.assertFailure(get_poetry("127.0.0.1", port), error.ConnectionLost)
        self.assertIsNone(service.poem)

    @defer.inlineCallbacks
    def test_an_empty_upstream_poem_is_a_failure_and_not_cached(self):
        service, port = self.proxy(listen(self, factory_of(CloseAtOnce)))
        yield self.assertFailure(get_poetry("127.0.0.1", port), error.ConnectionLost)
        self.assertIsNone(service.poem)

    @defer.inlineCallbacks
    def test_an_endless_upstream_is_cut_off_at_the_limit_and_nothing_cached(self):
        service, port = self.proxy(listen(self, factory_of(Endless)), max_bytes=200_000)
        with capturedLogs() as logs:
            yield self.assertFailure(get_poetry("127.0.0.1", port), error.ConnectionLost)
        self.assertIsNone(service.poem)
        warnings = [e for e in logs if e["log_format"].startswith("The poem download failed")]
        self.assertEqual([e["why"] for e in warnings], ["poem larger than 200000 bytes"])


class StreamingToAHalfClosedClientTests(TestCase):
    """A waiting client that half-closed is passed the poem as it comes, as its transport allows."""

    def test_a_client_that_does_not_read_is_passed_nothing_while_its_transport_is_full(self):
        from twisted.internet.testing import StringTransport

        service = ProxyService(Address("127.0.0.1", free_port()))
        service._fetch = defer.Deferred()  # a fetch under way: the client joins it
        protocol = PoetryProxyFactory(service).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.readConnectionLost()  # the client's FIN: from now on it is streamed to
        self.assertIs(transport.producer, protocol)
        service._came(b"first ")
        protocol.pauseProducing()  # the transport's buffer is full
        service._came(b"second ")
        self.assertEqual(transport.value(), b"first ")
        protocol.resumeProducing()
        self.assertEqual(transport.value(), b"first second ")
        service._fetched(b"first second third")
        self.assertEqual(transport.value(), b"first second third")
        self.assertIsNone(transport.producer)
        self.assertEqual(service.so_far, b"")  # the fetch's copy goes with the fetch
