"""``get_poetry``: the Twisted poetry client's API (clients 3.0 to 8.0, Parts 17-19).

``get_poetry`` returns a Deferred that fires with the poem's bytes once the server
closes the connection cleanly. It can be cancelled for real (Part 19): the
canceller drops the connection at once and the Deferred fails with
CancelledError, and nothing fires later. A connection lost uncleanly is a failure
even if bytes had arrived: half a poem is not a poem. ``get_poetry_at`` takes any
address, a client endpoint description (``unix:/tmp/poetry.sock``) included.

The rest of the Twisted client API sits beside it, and its names can be imported
from here too: the factory whose Deferred fires once and cancels for real
(:mod:`poetrynow.clients.oneshot`), the transform client ``TransformProxy``
(:mod:`poetrynow.clients.transform_proxy`), and the twisted engine's way of
handing Twisted a socket dialled in advance (:mod:`poetrynow.clients.adopt`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, error
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from poetrynow.address import Address
from poetrynow.clients import no_data
from poetrynow.clients.adopt import ConnectWaiter, adopt
from poetrynow.clients.connect import Dialled
from poetrynow.clients.endpoint import TWISTED_FAILURES, client_endpoint, describe_failure
from poetrynow.clients.errors import (
    DEFAULT_MAX_BYTES,
    EmptyPoem,
    PoemTimeout,
    PoemTooLarge,
    TransformFailed,
)
from poetrynow.clients.oneshot import OneShotClientFactory
from poetrynow.clients.transform_proxy import TransformClientFactory, TransformClientProtocol, TransformProxy

# With what moved beside this module (ConnectWaiter, OneShotClientFactory, the transform
# client), importable from here as it always was.
__all__ = [
    "TWISTED_FAILURES",
    "ConnectWaiter",
    "OneShotClientFactory",
    "PoemTimeout",
    "TransformClientFactory",
    "TransformClientProtocol",
    "TransformFailed",
    "TransformProxy",
    "describe_failure",
    "get_poetry",
    "get_poetry_at",
]


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
        self.buffer = bytearray()  # one buffer, not a list of reads (see clients/task.py)
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
            self.buffer = bytearray()  # memory stays bounded: the poem is lost anyway
            self.transport.abortConnection()
            return
        self.buffer += data
        self.factory.received(len(data))
        if self.factory.on_bytes is not None and self.factory.deferred is not None:
            self.factory.on_bytes(data)

    def timeoutConnection(self):
        self.factory.timed_out = True
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.idle is not None and self.idle.active():
            self.idle.cancel()
        self.idle = None
        self.factory.poem_finished(bytes(self.buffer), reason)


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
        #: Given each read's bytes as they come (the proxy passes them on to a client that half-closed).
        self.on_bytes: Callable[[bytes], None] | None = None

    def connected(self):
        if self.on_connect and self.deferred is not None:
            self.on_connect()

    def received(self, nbytes: int):
        if self.on_data and self.deferred is not None:
            self.on_data(nbytes)

    def poem_finished(self, poem: bytes, reason):
        if self.timed_out:
            self.failed(PoemTimeout(no_data(self.timeout)))
        elif self.too_large:
            self.failed(PoemTooLarge(self.max_bytes or 0))
        elif reason.check(error.ConnectionDone) and not poem:
            self.failed(EmptyPoem())
        elif reason.check(error.ConnectionDone):
            self.succeeded(poem)
        else:
            self.failed(reason)


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
    on_bytes: Callable[[bytes], None] | None = None,
) -> defer.Deferred:
    """:func:`get_poetry` for any address, a client endpoint description (``unix:/path``) included.

    ``on_data`` is told how many bytes each read brought, ``on_bytes`` given them.
    """
    if reactor is None:
        from twisted.internet import reactor
    factory = PoetryClientFactory(reactor, timeout, on_connect, on_data, max_bytes)
    factory.on_bytes = on_bytes
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
    a socket to take over (:func:`~poetrynow.clients.adopt.adopt`), the failure to connect, or
    None (then the usual endpoint)."""
    if dialled is None:
        return get_poetry_at(address, reactor, timeout, on_connect, on_data, max_bytes)
    if isinstance(dialled, OSError):
        return defer.fail(dialled)
    factory = PoetryClientFactory(reactor, timeout, on_connect, on_data, max_bytes)
    return adopt(factory, dialled, reactor, timeout or 30)
