"""``get_poetry`` and ``TransformProxy``: the Twisted client API (clients 3.0 to 8.0).

``get_poetry`` returns a Deferred that fires with the poem's bytes once the server
closes the connection cleanly. It can be cancelled for real (Part 19): the
canceller drops the connection at once and the Deferred fails with
CancelledError, and nothing fires later. A connection lost uncleanly is a failure
even if bytes had arrived: half a poem is not a poem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, error
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from poetrynow.clients import no_data
from poetrynow.clients.errors import NO_ANSWER, PoemTimeout, TransformFailed
from poetrynow.netstring import DEFAULT_MAX_LENGTH, NetstringDecoder, NetstringError, encode

__all__ = ["PoemTimeout", "TransformFailed", "TransformProxy", "describe_failure", "get_poetry"]


class OneShotClientFactory(ClientFactory):
    """A client factory whose single Deferred fires once, and can be cancelled for real.

    Cancelling forgets the Deferred first, so that the connection's loss cannot fire
    it again, then aborts the connection (or stops the connection attempt).
    """

    noisy = False

    def __init__(self):
        #: What the caller is given; ``deferred`` is forgotten once it has fired or been cancelled.
        self.result: defer.Deferred = defer.Deferred(lambda d: self.cancel())
        self.deferred: defer.Deferred | None = self.result
        self.connector = None
        self.protocol_instance = None

    def buildProtocol(self, addr):
        self.protocol_instance = super().buildProtocol(addr)
        return self.protocol_instance

    def cancel(self):
        self.deferred = None
        if self.protocol_instance is not None and self.protocol_instance.transport:
            self.protocol_instance.transport.abortConnection()
        elif self.connector is not None:
            self.connector.disconnect()

    def _fire(self, fire, value):
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            fire(deferred, value)

    def clientConnectionFailed(self, connector, reason):
        self._fire(defer.Deferred.errback, reason)


class PoetryClientProtocol(Protocol, TimeoutMixin):
    """Collects the poem in ``dataReceived``; the factory decides what it means."""

    transport: Any  # a TCP transport, which can also abort and take a producer

    def connectionMade(self):
        self.chunks: list[bytes] = []
        self.callLater = self.factory.reactor.callLater  # type: ignore[method-assign]  # our reactor's
        self.setTimeout(self.factory.timeout)
        self.factory.connected()

    def dataReceived(self, data: bytes):
        self.resetTimeout()
        self.chunks.append(data)
        self.factory.received(len(data))

    def timeoutConnection(self):
        self.factory.timed_out = True
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self.factory.poem_finished(b"".join(self.chunks), reason)


class PoetryClientFactory(OneShotClientFactory):
    protocol = PoetryClientProtocol

    def __init__(
        self,
        reactor,
        timeout: float | None = None,
        on_connect: Callable[[], None] | None = None,
        on_data: Callable[[int], None] | None = None,
    ):
        super().__init__()
        self.reactor = reactor
        self.timeout = timeout
        self.timed_out = False
        self.on_connect = on_connect
        self.on_data = on_data

    def connected(self):
        if self.on_connect and self.deferred is not None:
            self.on_connect()

    def received(self, nbytes: int):
        if self.on_data and self.deferred is not None:
            self.on_data(nbytes)

    def poem_finished(self, poem: bytes, reason):
        if self.timed_out:
            self._fire(defer.Deferred.errback, PoemTimeout(no_data(self.timeout)))
        elif reason.check(error.ConnectionDone):
            self._fire(defer.Deferred.callback, poem)
        else:
            self._fire(defer.Deferred.errback, reason)


def get_poetry(
    host: str,
    port: int,
    reactor=None,
    timeout: float | None = None,
    on_connect: Callable[[], None] | None = None,
    on_data: Callable[[int], None] | None = None,
) -> defer.Deferred:
    """Download a poem; the Deferred fires with its bytes.

    ``on_connect()`` and ``on_data(nbytes)`` report progress (the engines turn
    them into events); ``timeout`` fails the download after that many seconds
    with no data.
    """
    if reactor is None:
        from twisted.internet import reactor
    factory = PoetryClientFactory(reactor, timeout, on_connect, on_data)
    factory.connector = reactor.connectTCP(host, port, factory)
    return factory.result


class TransformClientProtocol(Protocol):
    """Sends ``name.poem`` as one netstring; the answer is one netstring back."""

    transport: Any  # a TCP transport, which can also abort and take a producer

    def connectionMade(self):
        self.decoder = NetstringDecoder(self.factory.max_length)
        self.answer: bytes | None = None
        self.transport.write(encode(self.factory.request))

    def dataReceived(self, data: bytes):
        try:
            payloads = self.decoder.feed(data)
        except NetstringError as problem:
            self.factory.problem = str(problem)
            self.transport.abortConnection()
            return
        if payloads and self.answer is None:
            self.answer = payloads[0]
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.finished(self.answer)


class TransformClientFactory(OneShotClientFactory):
    protocol = TransformClientProtocol

    def __init__(self, name: str, poem: bytes, max_length: int):
        super().__init__()
        self.request = name.encode("utf-8") + b"." + poem
        self.max_length = max_length
        self.problem = NO_ANSWER

    def finished(self, answer: bytes | None):
        if answer is None:
            self._fire(defer.Deferred.errback, TransformFailed(self.problem))
        else:
            self._fire(defer.Deferred.callback, answer)


class TransformProxy:
    """A client of the transform service: ``xform(name, poem)`` -> Deferred of bytes."""

    def __init__(self, host: str, port: int, reactor=None, max_length: int = DEFAULT_MAX_LENGTH):
        if reactor is None:
            from twisted.internet import reactor
        self.host, self.port, self.reactor, self.max_length = host, port, reactor, max_length

    def xform(self, name: str, poem: bytes) -> defer.Deferred:
        factory = TransformClientFactory(name, poem, self.max_length)
        factory.connector = self.reactor.connectTCP(self.host, self.port, factory)
        return factory.result


def expected_failure(problem: BaseException) -> bool:
    """Whether a download or transform failed the way networks fail (not by a bug)."""
    return isinstance(
        problem,
        (
            error.ConnectError,
            error.ConnectionLost,
            error.ConnectionDone,
            defer.CancelledError,
            PoemTimeout,
            TransformFailed,
            OSError,
        ),
    )


def describe_failure(failure) -> str:
    """A one-line reason for a Failure or exception, in the words of the select engine."""
    exc = getattr(failure, "value", failure)
    if isinstance(exc, error.ConnectionRefusedError):
        return "Connection refused"
    if isinstance(exc, (error.ConnectionLost, error.ConnectionAborted)):
        return "Connection lost before the poem was complete"
    if isinstance(exc, error.DNSLookupError):
        return "Unknown host"
    if isinstance(exc, defer.CancelledError):
        return "Cancelled"
    if isinstance(exc, error.ConnectError) and exc.osError:
        return str(exc.osError)
    return str(exc) or type(exc).__name__
