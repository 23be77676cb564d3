"""One relayed connection: a client, its own connection to the upstream, and a direction each way.

The client's reading is paused until the upstream answers, so nothing it sends
is buffered meanwhile; an upstream that cannot be reached closes the client,
with one log line. Both sides are half-closeable: a FIN from one side goes
through the toxics (in order after the data) and is passed on as a FIN, so a
request/response protocol whose client half-closes still gets its answer; the
connection closes once each side has had the other's FIN.

One fault costs one connection: what a protocol method raises is logged and
resets that side (:func:`~poetrynow.servers.guard.costs_one_connection`), which
resets the other; what a toxic's timer raises resets both.
"""

from __future__ import annotations

import random
import typing
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.relay.pipe import Direction
from poetrynow.relay.toxics import DOWNSTREAM, Toxic
from poetrynow.servers.ending import can_half_close
from poetrynow.servers.guard import costs_one_connection, reset_transport


class Relay(typing.Protocol):
    """What a connection needs of the relay that accepted it (``relay.relay``'s, named here so
    that the two modules do not import each other)."""

    name: str
    upstream: str
    reactor: Any
    toxics: list[Toxic]

    def chooser(self, number: int, toxic: str) -> random.Random: ...
    def forget(self, connection: Connection) -> None: ...
    def accepted(self, client: ClientSide) -> Connection: ...
    def upstream_address(self) -> tuple[str, int]: ...


log = Logger(namespace="poetrynow.relay")


class Connection:
    """Connection number ``number`` (from 1) of ``relay``; see the module."""

    open = False  # both sides connected, the directions built
    ended = False  # closed, reset or dropped by the relay

    def __init__(self, relay: Relay, number: int, client: ClientSide):
        self.relay, self.number, self.client = relay, number, client
        self.clock = relay.reactor
        self.upstream: UpstreamSide | None = None
        self.connector: Any = None
        self.choosers: dict[str, random.Random] = {}
        self.up: Direction | None = None  # client → upstream
        self.down: Direction | None = None  # upstream → client

    def chooser(self, toxic: str) -> random.Random:
        """The random numbers ``toxic`` uses on this connection: fixed by the relay's seed, if any."""
        if toxic not in self.choosers:
            self.choosers[toxic] = self.relay.chooser(self.number, toxic)
        return self.choosers[toxic]

    def connected(self, upstream: UpstreamSide) -> None:
        self.upstream = upstream
        self.up = Direction(self, self.client.transport, upstream.transport, paused=True)
        self.down = Direction(self, upstream.transport, self.client.transport, paused=False)
        self.open = True
        for toxic in self.relay.toxics:
            self.add(toxic)
        self.up.check()  # the client may speak now

    # -- the relay's toxics, as they change

    def direction(self, toxic: Toxic) -> Direction | None:
        return self.down if toxic.stream == DOWNSTREAM else self.up

    def add(self, toxic: Toxic) -> None:
        if (direction := self.direction(toxic)) is not None:
            self.guarded(direction.add, toxic, self.chooser(toxic.name))

    def update(self, toxic: Toxic) -> None:
        if (direction := self.direction(toxic)) is not None:
            self.guarded(direction.update, toxic, self.chooser(toxic.name))

    def remove(self, toxic: Toxic) -> None:
        if (direction := self.direction(toxic)) is not None:
            self.guarded(direction.remove, toxic.name)

    # -- how it ends

    def finished(self, direction: Direction) -> None:
        """A side's FIN came through its direction: the other side gets it, as a FIN."""
        if self.ended or self.up is None or self.down is None:
            return
        if self.up.done and self.down.done:
            self.close()
        elif can_half_close(direction.writer):
            direction.writer.loseWriteConnection()
        else:
            self.close()

    def _end(self) -> list[Any]:
        """Mark the end; the transports still to be closed."""
        if self.ended:
            return []
        self.ended, self.open = True, False
        for direction in (self.up, self.down):
            if direction is not None:
                direction.stop()
        if self.connector is not None and self.upstream is None:
            self.connector.disconnect()
        sides = [self.client, self.upstream]
        return [side.transport for side in sides if side is not None and not side.gone]

    def close(self) -> None:
        """Both sides closed with a FIN, after what their transports hold is written."""
        for transport in self._end():
            transport.loseConnection()

    def reset(self) -> None:
        """Both sides closed with a reset."""
        for transport in self._end():
            reset_transport(transport)

    def drop(self) -> None:
        """Both sides closed at once, what is unsent dropped: the relay was disabled or deleted."""
        for transport in self._end():
            transport.abortConnection()

    def lost(self, side: Side, reason: Failure) -> None:
        side.gone = True
        if not self.ended:
            # The peer went without the FIN a half-close would have shown: a reset, usually.
            if reason.check(ConnectionDone):
                self.close()
            else:
                self.reset()
        if self.client.gone and (self.upstream is None or self.upstream.gone):
            self.relay.forget(self)

    def guarded(self, call: Any, *args: Any) -> None:
        """Run ``call``: what it raises is logged with its traceback and costs this connection only."""
        try:
            call(*args)
        except Exception:
            log.failure(
                "A bug in relay {relay}'s connection {number}; it is reset, the relay goes on",
                relay=self.relay.name,
                number=self.number,
            )
            self.reset()


@implementer(IHalfCloseableProtocol)
class Side(Protocol):
    """Either end of a relayed connection."""

    connection: Connection
    transport: Any  # a TCP transport, which can also half-close, pause and abort
    gone = False

    def reading(self) -> Direction | None:
        raise NotImplementedError

    @costs_one_connection
    def dataReceived(self, data: bytes) -> None:
        if (direction := self.reading()) is not None:
            direction.data(data)

    @costs_one_connection
    def readConnectionLost(self) -> None:
        if (direction := self.reading()) is not None:
            direction.eof()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if getattr(self, "connection", None) is not None:  # (None: its connectionMade failed)
            self.connection.lost(self, reason)


class ClientSide(Side):
    """The client's end: accepted by the relay, it dials the upstream."""

    factory: Any  # a RelayFactory

    @costs_one_connection
    def connectionMade(self) -> None:
        relay = self.factory.relay
        self.connection = relay.accepted(self)
        self.transport.pauseProducing()
        host, port = relay.upstream_address()
        self.connection.connector = relay.reactor.connectTCP(host, port, UpstreamFactory(self.connection))

    def reading(self) -> Direction | None:
        return self.connection.up


class UpstreamSide(Side):
    """The upstream's end, dialled for one client."""

    @costs_one_connection
    def connectionMade(self) -> None:
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
