"""get_poetry: the article's two tests (Part 15), cancellation (Part 19), and more."""

from twisted.internet import defer, error, task
from twisted.internet.testing import StringTransport

from poetrynow.clients.errors import EmptyPoem
from poetrynow.clients.get_poetry import PoemTimeout, PoetryClientFactory, describe_failure, get_poetry
from tests.support import free_port
from tests.time_limit import SynchronousTestCase, TestCase
from tests.twisted_support import (
    TEST_POEM,
    CloseAtOnce,
    HalfThenAbort,
    WatchedSlowFactory,
    factory_of,
    fast_server,
    listen,
)


class PoetryTestCase(TestCase):
    def setUp(self):
        self.portnum = fast_server(self)

    def test_client(self):
        """The correct poem is returned by get_poetry."""
        d = get_poetry("127.0.0.1", self.portnum)
        d.addCallback(self.assertEqual, TEST_POEM)
        return d

    def test_failure(self):
        """The correct failure is returned by get_poetry when connecting to a port with no server."""
        return self.assertFailure(get_poetry("127.0.0.1", free_port()), error.ConnectionRefusedError)

    async def test_await_from_async_def(self):
        poem = await get_poetry("127.0.0.1", self.portnum)
        self.assertEqual(poem, TEST_POEM)

    def test_progress_callbacks(self):
        seen = []
        d = get_poetry(
            "127.0.0.1", self.portnum, on_connect=lambda: seen.append("connected"), on_data=seen.append
        )

        def check(poem):
            self.assertEqual(seen[0], "connected")
            self.assertEqual(sum(seen[1:]), len(TEST_POEM))

        return d.addCallback(check)


class CancelTests(TestCase):
    def test_cancel_before_connecting(self):
        d = get_poetry("127.0.0.1", fast_server(self))
        d.cancel()
        return self.assertFailure(d, defer.CancelledError)

    @defer.inlineCallbacks
    def test_cancel_mid_poem_closes_the_connection(self):
        server = WatchedSlowFactory(num_bytes=5, delay=10)  # the poem would take minutes
        port = listen(self, server)
        fired = []
        d = get_poetry("127.0.0.1", port)
        d.addBoth(lambda result: fired.append(result) or result)
        yield server.connected
        d.cancel()
        yield self.assertFailure(d, defer.CancelledError)
        reason = yield server.lost  # the server really sees the client go
        # Lost: it read the reset. Aborted: the reset came after a FIN (some TCP stacks
        # send both), and the server's GoneWatch dropped the broken connection itself.
        self.assertIn(reason, (error.ConnectionLost, error.ConnectionDone, error.ConnectionAborted))
        self.assertEqual(len(fired), 1)

    @defer.inlineCallbacks
    def test_cancel_after_it_fired_changes_nothing(self):
        d = get_poetry("127.0.0.1", fast_server(self))
        seen = []
        d.addBoth(lambda result: seen.append(result) or result)
        poem = yield d
        d.cancel()
        self.assertEqual(poem, TEST_POEM)
        self.assertEqual(seen, [TEST_POEM])


class FailureTests(TestCase):
    def test_unclean_close_is_a_failure_not_a_poem(self):
        d = get_poetry("127.0.0.1", listen(self, factory_of(HalfThenAbort)))
        return self.assertFailure(d, error.ConnectionLost)

    def test_a_clean_close_without_a_byte_is_a_failure(self):
        d = get_poetry("127.0.0.1", listen(self, factory_of(CloseAtOnce)))
        return self.assertFailure(d, EmptyPoem)

    def test_an_errno_is_worded_as_the_os_words_it(self):
        import errno

        self.assertEqual(describe_failure(error.ConnectError(osError=errno.EMFILE)), "Too many open files")
        self.assertEqual(
            describe_failure(ConnectionResetError(errno.ECONNRESET, "x")), "Connection reset by peer"
        )

    def test_reason_for_a_refused_connection(self):
        d = get_poetry("127.0.0.1", free_port())
        d.addErrback(lambda failure: describe_failure(failure))
        return d.addCallback(self.assertEqual, "Connection refused")


class TimeoutTests(SynchronousTestCase):
    """The idle timeout, driven by task.Clock: nothing here waits for real."""

    def test_silence_times_out(self):
        clock = task.Clock()
        factory = PoetryClientFactory(clock, timeout=2.0)
        d = factory.deferred
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        clock.advance(1.5)
        protocol.dataReceived(b"some")
        clock.advance(1.5)  # data reset the timer
        self.assertFalse(transport.disconnecting)
        clock.advance(1.0)
        self.assertTrue(transport.disconnecting or getattr(transport, "disconnected", False))
        protocol.connectionLost(error.ConnectionAborted())
        failure = self.failureResultOf(d, PoemTimeout)
        self.assertEqual(describe_failure(failure), "no data for 2 s")
