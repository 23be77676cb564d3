"""Servers run inside the test's own reactor, for trial tests that return Deferreds."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol

from poetrynow.servers.fast.plain import PoetryFactory, PoetryService
from poetrynow.servers.slow.plain import SlowPoetryFactory, SlowPoetryProtocol

TEST_POEM = "This is a test.\nThis is only a test. Ça va.\n".encode()


def poetry_service(poem: bytes = TEST_POEM) -> PoetryService:
    service = PoetryService("<test>")
    service.poem = poem  # as startService would have loaded it
    return service


def listen(test_case, factory) -> int:
    """Listen on 127.0.0.1, port 0; stop listening when the test ends."""
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    test_case.addCleanup(port.stopListening)
    return port.getHost().port


def fast_server(test_case, poem: bytes = TEST_POEM) -> int:
    return listen(test_case, PoetryFactory(poetry_service(poem)))


class WatchedSlowProtocol(SlowPoetryProtocol):
    def connectionMade(self):
        super().connectionMade()
        self.factory.connections += 1
        self.factory.connected.callback(self)
        self.factory.connected = defer.Deferred()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.factory.lost.callback(reason.type)  # the type: a Failure would errback
        self.factory.lost = defer.Deferred()


class WatchedSlowFactory(SlowPoetryFactory):
    """A slow server whose connections a test can count and wait on."""

    protocol = WatchedSlowProtocol

    def __init__(self, poem: bytes = TEST_POEM, num_bytes: int = 10, delay: float = 0.01):
        super().__init__(poetry_service(poem), num_bytes, delay)
        self.connections = 0
        self.connected = defer.Deferred()
        self.lost = defer.Deferred()


class HalfThenAbort(Protocol):
    """Sends half the poem, then drops the connection uncleanly."""

    def connectionMade(self):
        self.transport.write(TEST_POEM[: len(TEST_POEM) // 2])
        self.transport.abortConnection()


class Silent(Protocol):
    """Accepts and says nothing."""


def factory_of(protocol_class) -> Factory:
    return Factory.forProtocol(protocol_class)


class CloseAtOnce(Protocol):
    """Accepts and closes cleanly without a byte: an empty poem."""

    def connectionMade(self):
        self.transport.loseConnection()


class Endless(Protocol):
    """Sends poetry without end, as fast as the client reads: for the clients' size limit."""

    CHUNK = b"and on, " * 8192  # 64 KiB

    def connectionMade(self):
        from twisted.internet.interfaces import IPullProducer
        from zope.interface import implementer

        transport = self.transport

        @implementer(IPullProducer)
        class Forever:
            def resumeProducing(self):
                transport.write(Endless.CHUNK)

            def stopProducing(self):
                pass

        transport.registerProducer(Forever(), False)
