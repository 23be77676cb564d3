"""``get_poetry`` and ``TransformProxy``: the Twisted client API (clients 3.0 to 8.0).

``get_poetry`` returns a Deferred that fires with the poem's bytes once the server
closes the connection cleanly. It can be cancelled for real (Part 19): the
canceller drops the connection at once and the Deferred fails with
CancelledError, and nothing fires later. A connection lost uncleanly is a failure
even if bytes had arrived: half a poem is not a poem. ``get_poetry_at`` takes any
address, a client endpoint description (``unix:/tmp/poetry.sock``) included.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, error
from twisted.internet.interfaces import IWriteDescriptor
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.address import Address
from poetrynow.clients import no_data
from poetrynow.clients.connect import Dialled, connect_error, is_connected
from poetrynow.clients.endpoint import TWISTED_FAILURES, client_endpoint, describe_failure
from poetrynow.clients.errors import (
    DEFAULT_MAX_BYTES,
    NO_ANSWER,
    EmptyPoem,
    PoemTimeout,
    PoemTooLarge,
    TransformFailed,
)
from poetrynow.netstring import DEFAULT_MAX_LENGTH, NetstringDecoder, NetstringError, encode

__all__ = [
    "TWISTED_FAILURES",
    "PoemTimeout",
    "TransformFailed",
    "TransformProxy",
    "describe_failure",
    "get_poetry",
    "get_poetry_at",
]


class OneShotClientFactory(Factory):
    """A client factory whose single Deferred fires once, and can be cancelled for real.

    It connects through an endpoint. Cancelling forgets the Deferred first, so that
    the connection's loss cannot fire it again, then aborts the connection (or
    cancels the connection attempt).
    """

    noisy = False

    def __init__(self):
        #: What the caller is given; ``deferred`` is forgotten once it has fired or been cancelled.
        self.result: defer.Deferred = defer.Deferred(lambda d: self.cancel())
        self.deferred: defer.Deferred | None = self.result
        self.connecting: defer.Deferred | None = None
        self.protocol_instance = None

    def connect(self, endpoint) -> defer.Deferred:
        """Connect through ``endpoint``; the Deferred the caller gets."""
        self.connecting = endpoint.connect(self)
        self.connecting.addErrback(self._connection_failed)
        return self.result

    def buildProtocol(self, addr):
        self.protocol_instance = super().buildProtocol(addr)
        return self.protocol_instance

    def cancel(self):
        self.deferred = None
        if self.protocol_instance is not None and self.protocol_instance.transport:
            self.protocol_instance.transport.abortConnection()
        elif self.connecting is not None:
            self.connecting.cancel()

    def adopt(self, sock: socket.socket, reactor, connect_timeout: float) -> defer.Deferred:
        """Take over a socket :func:`~poetrynow.clients.connect.dial` started; the caller's Deferred.

        Connected already (loopback nearly always is), it becomes a transport
        now, through ``adoptStreamConnection``; still connecting, it is waited
        for first, for up to ``connect_timeout`` seconds.
        """
        if is_connected(sock):
            self._adopt(sock, reactor)
            return self.result

        def connected(problem: Exception | None) -> None:
            self.connecting = None
            if problem is None:
                self._adopt(sock, reactor)
            else:
                sock.close()
                self._connection_failed(Failure(problem))

        waiter = ConnectWaiter(sock, reactor, connect_timeout, connected)
        self.connecting = defer.Deferred(lambda _: waiter.cancel())
        self.connecting.addErrback(lambda _: None)
        return self.result

    def _adopt(self, sock: socket.socket, reactor) -> None:
        try:
            reactor.adoptStreamConnection(sock.fileno(), sock.family, self)  # on a copy of the descriptor
        except OSError as problem:
            self._connection_failed(Failure(problem))
        finally:
            sock.close()

    def _fire(self, fire, value):
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            fire(deferred, value)

    def _connection_failed(self, reason: Failure) -> None:
        self._fire(defer.Deferred.errback, reason)


@implementer(IWriteDescriptor)
class ConnectWaiter:
    """Waits, on the reactor, for a connect already asked of the kernel to end.

    ``done(None)`` once connected; ``done(problem)`` if it failed, timed out or
    was cancelled. Called once.
    """

    def __init__(
        self, sock: socket.socket, reactor, timeout: float, done: Callable[[Exception | None], None]
    ):
        self.sock, self.reactor, self.done = sock, reactor, done
        self.timer = reactor.callLater(timeout, self._end, error.TimeoutError())
        reactor.addWriter(self)

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "ConnectWaiter"

    def doWrite(self) -> None:
        self._end(connect_error(self.sock))

    def connectionLost(self, reason: Failure) -> None:
        # An error on the socket (a refusal): the reactor says the connection is lost; the socket says why.
        problem: Exception | None = connect_error(self.sock)
        if problem is None:
            problem = reason.value if isinstance(reason.value, Exception) else error.ConnectionLost()
        self._end(problem)

    def cancel(self) -> None:
        self._end(defer.CancelledError())

    def _end(self, problem: Exception | None) -> None:
        if self.done is None:
            return
        done, self.done = self.done, None  # type: ignore[assignment]
        self.reactor.removeWriter(self)
        if self.timer.active():
            self.timer.cancel()
        done(problem)


class PoetryClientProtocol(Protocol):
    """Collects the poem in ``dataReceived``; the factory decides what it means.

    Its idle timeout is one timer per connection that, when it fires, looks at
    when data last came and sleeps again for the rest: TimeoutMixin moves its
    timer on every read, which for ten thousand downloads was a tenth of the
    cost of reading.
    """

    transport: Any  # a TCP transport, which can also abort and take a producer
    idle: Any = None  # the timer, while the timeout is on

    def connectionMade(self):
        self.chunks: list[bytes] = []
        self.size = 0
        reactor, timeout = self.factory.reactor, self.factory.timeout
        self.seconds = reactor.seconds
        self.last_data = self.seconds()
        if timeout:
            self.idle = reactor.callLater(timeout, self._idle_check)
        self.factory.connected()

    def _idle_check(self):
        timeout = self.factory.timeout
        quiet = self.seconds() - self.last_data
        if quiet >= timeout:
            self.idle = None
            self.timeoutConnection()
        else:
            self.idle = self.factory.reactor.callLater(timeout - quiet, self._idle_check)

    def dataReceived(self, data: bytes):
        if self.factory.too_large:
            return  # aborting: nothing more is kept
        self.last_data = self.seconds()
        self.size += len(data)
        if self.factory.max_bytes is not None and self.size > self.factory.max_bytes:
            self.factory.too_large = True
            self.chunks.clear()  # memory stays bounded: the poem is lost anyway
            self.transport.abortConnection()
            return
        self.chunks.append(data)
        self.factory.received(len(data))

    def timeoutConnection(self):
        self.factory.timed_out = True
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.idle is not None and self.idle.active():
            self.idle.cancel()
        self.idle = None
        self.factory.poem_finished(b"".join(self.chunks), reason)


class PoetryClientFactory(OneShotClientFactory):
    protocol = PoetryClientProtocol

    def __init__(
        self,
        reactor,
        timeout: float | None = None,
        on_connect: Callable[[], None] | None = None,
        on_data: Callable[[int], None] | None = None,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ):
        super().__init__()
        self.reactor = reactor
        self.timeout = timeout
        self.timed_out = False
        self.max_bytes = max_bytes
        self.too_large = False
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
        elif self.too_large:
            self._fire(defer.Deferred.errback, PoemTooLarge(self.max_bytes or 0))
        elif reason.check(error.ConnectionDone) and not poem:
            self._fire(defer.Deferred.errback, EmptyPoem())
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
    return get_poetry_at(Address(host, port), reactor, timeout, on_connect, on_data)


def get_poetry_at(
    address: Address,
    reactor=None,
    timeout: float | None = None,
    on_connect: Callable[[], None] | None = None,
    on_data: Callable[[int], None] | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> defer.Deferred:
    """:func:`get_poetry` for any address, a client endpoint description (``unix:/path``) included."""
    if reactor is None:
        from twisted.internet import reactor
    factory = PoetryClientFactory(reactor, timeout, on_connect, on_data, max_bytes)
    return factory.connect(client_endpoint(reactor, address, timeout))


def get_poetry_dialled(
    dialled: Dialled,
    address: Address,
    reactor,
    timeout: float | None = None,
    on_connect: Callable[[], None] | None = None,
    on_data: Callable[[int], None] | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> defer.Deferred:
    """:func:`get_poetry_at` on what :func:`~poetrynow.clients.connect.dial` gave for ``address``:
    a socket to take over, the failure to connect, or None (then the usual endpoint)."""
    if dialled is None:
        return get_poetry_at(address, reactor, timeout, on_connect, on_data, max_bytes)
    if isinstance(dialled, OSError):
        return defer.fail(dialled)
    factory = PoetryClientFactory(reactor, timeout, on_connect, on_data, max_bytes)
    return factory.adopt(dialled, reactor, timeout or 30)


class TransformClientProtocol(Protocol, TimeoutMixin):
    """Sends ``name.poem`` as one netstring; the answer is one netstring back.

    A transform server that goes silent for the client's timeout is given up on,
    as a poetry server is: the task keeps its poem.
    """

    transport: Any  # a TCP transport, which can also abort and take a producer

    def connectionMade(self):
        self.callLater = self.factory.reactor.callLater  # type: ignore[method-assign]  # our reactor's
        self.setTimeout(self.factory.timeout)
        self.decoder = NetstringDecoder(self.factory.max_length)
        self.answer: bytes | None = None
        self.transport.write(encode(self.factory.request))

    def timeoutConnection(self):
        self.factory.problem = no_data(self.factory.timeout)
        self.transport.abortConnection()

    def dataReceived(self, data: bytes):
        self.resetTimeout()
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
        self.setTimeout(None)
        self.factory.finished(self.answer)


class TransformClientFactory(OneShotClientFactory):
    protocol = TransformClientProtocol

    def __init__(self, name: str, poem: bytes, max_length: int, reactor=None, timeout: float | None = None):
        super().__init__()
        self.reactor, self.timeout = reactor, timeout
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

    def __init__(
        self,
        host: str | Address,
        port: int = 0,
        reactor=None,
        max_length: int = DEFAULT_MAX_LENGTH,
        timeout: float | None = None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self.address = host if isinstance(host, Address) else Address(host, port)
        self.reactor, self.max_length, self.timeout = reactor, max_length, timeout

    def xform(self, name: str, poem: bytes) -> defer.Deferred:
        factory = TransformClientFactory(name, poem, self.max_length, self.reactor, self.timeout)
        return factory.connect(client_endpoint(self.reactor, self.address, self.timeout))
