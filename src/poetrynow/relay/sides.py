"""The two ends of a relayed connection, as Twisted protocols, and their factories.

:class:`ClientSide` is accepted by the relay and dials the upstream;
:class:`UpstreamSide` is that dial's end. Both are half-closeable, and both hand
what they read to their :class:`~poetrynow.relay.connection.Connection`'s direction.
Over TLS (:mod:`poetrynow.relay.tls`), the client side dials once its handshake is
done and the upstream side joins the connection once its own is: a handshake has
:data:`~poetrynow.relay.tls.HANDSHAKE_WITHIN` seconds, or the connection is closed with
one log line, and a failed one (a certificate refused) says why in one line too.

One fault costs one connection: what a protocol method raises is logged and resets
that side (:func:`~poetrynow.servers.common.guard.costs_one_connection`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol, IHandshakeListener
from twisted.internet.protocol import ClientFactory, Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.relay.connection import Connection, Relay
from poetrynow.relay.pipe import Direction
from poetrynow.relay.tls import HANDSHAKE_WITHIN
from poetrynow.relay.transport import READ_SIZE
from poetrynow.servers.common.guard import costs_one_connection, tcp_of

log = Logger(namespace="poetrynow.relay")


#: Bytes a side may send before its connection has both ends (over TLS), held until it has.
EARLY_LIMIT = 256 * 1024


@implementer(IHalfCloseableProtocol, IHandshakeListener)
class Side(Protocol):
    """Either end of a relayed connection.

    Over TLS a side may hear its peer before its connection has both ends (the client's
    first bytes come with the end of its handshake, before the upstream is dialled);
    those are held, at most :data:`EARLY_LIMIT` bytes, and go first once it has.
    """

    connection: Connection
    transport: Any  # a TCP transport, which can also half-close, pause and abort; or TLS over one
    gone = False
    shaking: Any = None  # the timer a TLS handshake must beat, while it goes on
    early: bytearray | None = None
    early_eof = False

    def reading(self) -> Direction | None:
        raise NotImplementedError

    # A bug in a direction resets the whole connection (Connection.guarded), not this side alone:
    # a side reset alone would leave the other direction writing into a socket about to be reset.
    @costs_one_connection
    def dataReceived(self, data: bytes) -> None:
        if (direction := self.reading()) is not None:
            self.connection.guarded(direction.data, data)
            return
        if self.early is None:
            self.early = bytearray()
        self.early += data
        if len(self.early) > EARLY_LIMIT:
            log.warn(
                "Relay {relay}'s connection {number} sent over {limit} bytes before its upstream "
                "answered; it is reset",
                relay=self.connection.relay.name, number=self.connection.number, limit=EARLY_LIMIT,
            )  # fmt: skip
            self.early = None
            self.connection.reset()

    @costs_one_connection
    def readConnectionLost(self) -> None:
        if (direction := self.reading()) is not None:
            self.connection.guarded(direction.eof)
        else:
            self.early_eof = True

    def deliver_early(self, direction: Direction) -> None:
        """What came before the connection had both ends, now through ``direction``."""
        early, self.early = self.early, None
        if early and not self.connection.ended:
            self.connection.guarded(direction.data, bytes(early))
        if self.early_eof and not self.connection.ended:
            self.connection.guarded(direction.eof)

    def writeConnectionLost(self) -> None:
        pass

    # -- TLS

    def start_handshake(self) -> None:
        self.shaking = self.connection.clock.callLater(
            HANDSHAKE_WITHIN, self.connection.guarded, self.too_slow
        )

    @costs_one_connection
    def handshakeCompleted(self) -> None:
        if self.shaking is not None and self.shaking.active():
            self.shaking.cancel()
        self.shaking = None
        if not self.connection.ended:
            self.shaken()

    def shaken(self) -> None:
        """The TLS handshake is done: the side goes on (each side its own way)."""

    def too_slow(self) -> None:
        self.shaking = None
        log.warn(
            "Relay {relay}'s connection {number}: the TLS handshake with its {side} did not finish "
            "within {within:g} s; the connection is closed",
            relay=self.connection.relay.name, number=self.connection.number, side=self.who,
            within=HANDSHAKE_WITHIN,
        )  # fmt: skip
        self.connection.drop()

    who = "peer"

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        shaking = self.shaking is not None and self.shaking.active()  # (a handshake under way)
        if shaking:
            self.shaking.cancel()
        connection = getattr(self, "connection", None)
        if connection is None:  # (its connectionMade failed)
            return
        # (a peer that sent nothing, a port probe's connect and close, failed no handshake: no line)
        if shaking and not connection.ended and getattr(self.transport, "heard", True):
            log.warn(
                "Relay {relay}'s connection {number}: TLS with its {side} failed: {why}",
                relay=connection.relay.name, number=connection.number, side=self.who,
                why=reason.getErrorMessage(),
            )  # fmt: skip
        self.shaking = None
        connection.lost(self, reason)


class ClientSide(Side):
    """The client's end: accepted by the relay, it dials the upstream (over TLS, once its own
    handshake is done)."""

    factory: Any  # a RelayFactory
    who = "client"

    @costs_one_connection
    def connectionMade(self) -> None:
        relay = self.factory.relay
        tcp_of(self.transport).bufferSize = READ_SIZE  # (beneath TLS: the TLS one reads nothing itself)
        self.connection = relay.accepted(self)
        if relay.tls is not None and relay.tls.listen:
            self.start_handshake()  # (read on: a handshake needs the client's bytes)
        else:
            self.dial()

    def shaken(self) -> None:
        self.dial()

    def dial(self) -> None:
        relay = self.connection.relay
        self.transport.pauseProducing()
        host, port = relay.upstream_address()
        self.connection.connector = relay.reactor.connectTCP(
            host, port, relay.upstream_factory(self.connection, host)
        )

    def reading(self) -> Direction | None:
        return self.connection.up


class UpstreamSide(Side):
    """The upstream's end, dialled for one client; over TLS, joined once its handshake is done."""

    who = "upstream"

    @costs_one_connection
    def connectionMade(self) -> None:
        tcp_of(self.transport).bufferSize = READ_SIZE
        relay = self.connection.relay
        if relay.tls is not None and relay.tls.upstream:
            self.start_handshake()
        else:
            self.connection.connected(self)

    def shaken(self) -> None:
        self.connection.connected(self)

    def reading(self) -> Direction | None:
        return self.connection.down


class UpstreamFactory(ClientFactory):
    noisy = False

    def __init__(self, connection: Connection):
        self.connection = connection

    def buildProtocol(self, addr: Any) -> UpstreamSide:
        side = UpstreamSide()
        side.connection = self.connection
        return side

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        connection = self.connection
        if not connection.ended:
            log.warn(
                "Relay {relay} could not reach its upstream {upstream} for connection {number}: {why}",
                relay=connection.relay.name,
                upstream=connection.relay.upstream,
                number=connection.number,
                why=reason.getErrorMessage(),
            )
            connection.close()


class RelayFactory(Factory):
    protocol = ClientSide
    noisy = False

    def __init__(self, relay: Relay):
        self.relay = relay
