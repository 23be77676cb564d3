"""``TransformProxy``: the Twisted client of the transform service (client 6.0 on, Parts 12-13).

Part 12's server takes one request, ``name.poem`` as a netstring, and answers
with one netstring, the poem transformed. Part 13's client puts that behind
``TransformProxy.xform(name, poem)``, a Deferred of the answer, so that the
client can chain it after ``get_poetry``; the twisted engine keeps the original
poem when it fails.

The request is a :class:`~poetrynow.clients.oneshot.OneShotClientFactory` (one
answer, a cancel that aborts the connection) whose protocol feeds what comes
back to the sans-I/O netstring decoder.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from poetrynow.address import Address
from poetrynow.clients import no_data
from poetrynow.clients.endpoint import client_endpoint
from poetrynow.clients.errors import NO_ANSWER, TransformFailed
from poetrynow.clients.oneshot import OneShotClientFactory
from poetrynow.netstring import DEFAULT_MAX_LENGTH, NetstringDecoder, NetstringError, encode


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
            self.failed(TransformFailed(self.problem))
        else:
            self.succeeded(answer)


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
