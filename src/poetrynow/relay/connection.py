"""One relayed connection: a client, its own connection to the upstream, and a direction each way.

The client's reading is paused until the upstream answers, so nothing it sends
is buffered meanwhile; an upstream that cannot be reached closes the client,
with one log line. Both sides are half-closeable: a FIN from one side goes
through the toxics (in order after the data) and is passed on as a FIN, so a
request/response protocol whose client half-closes still gets its answer; the
connection closes once each side has had the other's FIN. A close the relay
starts waits for what the transports hold to be written, but only for
:data:`~poetrynow.servers.common.ending.LINGER` seconds: a peer that never reads is
then aborted, so that it cannot keep a connection (and its buffers) for ever.

Its two ends, Twisted protocols (TLS ones too), are :mod:`poetrynow.relay.sides`.
One fault costs one connection: what a protocol method raises is logged and
resets that side (:func:`~poetrynow.servers.common.guard.costs_one_connection`), which
resets the other; what a toxic's timer raises resets both.
"""

from __future__ import annotations

import random
import typing
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from poetrynow.relay.httpledger import DownTap, Ledger, Tap, UpTap
from poetrynow.relay.httpstage import HttpStage
from poetrynow.relay.httptoxics import HTTP_STAGES
from poetrynow.relay.pipe import Direction
from poetrynow.relay.toxics import DOWNSTREAM, Toxic
from poetrynow.servers.common.ending import LINGER, can_half_close
from poetrynow.servers.common.guard import reset_transport

# The sides (poetrynow.relay.sides) import this module: here they are only their roles.
Side = Any
ClientSide = Any
UpstreamSide = Any


class Relay(typing.Protocol):
    """What a connection needs of the relay that accepted it (``relay.relay``'s, named here so
    that the two modules do not import each other)."""

    name: str
    upstream: str
    reactor: Any
    clock: Any
    toxics: list[Toxic]
    tls: Any  # a TlsSettings, or None
    not_http: str | None  # why its stream is not HTTP, once a connection has shown it

    def chooser(self, number: int, key: str) -> random.Random: ...
    def upstream_factory(self, connection: Connection, host: str) -> Any: ...
    def forget(self, connection: Connection) -> None: ...
    def accepted(self, client: ClientSide) -> Connection: ...
    def upstream_address(self) -> tuple[str, int]: ...


log = Logger(namespace="poetrynow.relay")

#: The toxic a direction's HTTP watcher stands for: no name a toxic may have.
TAP = Toxic("", "http_watch")


class Connection:
    """Connection number ``number`` (from 1) of ``relay``; see the module."""

    open = False  # both sides connected, the directions built
    ended = False  # closed, reset or dropped by the relay

    def __init__(self, relay: Relay, number: int, client: ClientSide):
        self.relay, self.number, self.client = relay, number, client
        self.clock = relay.clock
        self.reactor = relay.reactor  # (the kernel path's watches: a reactor, never a test's clock)
        self.lingers: dict[Side, Any] = {}  # the abort armed for each side a close waits on
        self.upstream: UpstreamSide | None = None
        self.connector: Any = None
        self.choosers: dict[str, random.Random] = {}
        self.up: Direction | None = None  # client → upstream
        self.down: Direction | None = None  # upstream → client
        self.ledger: Ledger | None = None  # its requests and their answers, once an HTTP toxic comes
        self.ticks = 0  # reads so far, both ways: which side spoke last
        self.http_off = False  # an HTTP toxic joined while a request was under way: none acts here

    def chooser(self, toxic: Toxic) -> random.Random:
        """The random numbers ``toxic`` uses on this connection (jitter, slice sizes): fixed by the
        relay's seed, if any, and drawn as the data comes, read by read."""
        if toxic.name not in self.choosers:
            self.choosers[toxic.name] = self.relay.chooser(self.number, toxic.name)
        return self.choosers[toxic.name]

    def draw(self, toxic: Toxic) -> random.Random:
        """The generator that decides whether ``toxic``, as of its latest update, meets this
        connection: its own, so that the fate does not depend on what the data drew before."""
        return self.relay.chooser(self.number, f"{toxic.name}:fate:{toxic.version}")

    def connected(self, upstream: UpstreamSide) -> None:
        self.upstream = upstream
        self.up = Direction(self, self.client.transport, upstream.transport, paused=True)
        self.down = Direction(self, upstream.transport, self.client.transport, paused=False)
        self.open = True
        for toxic in self.relay.toxics:
            self.add(toxic)
        for side, direction in ((self.client, self.up), (upstream, self.down)):
            side.deliver_early(direction)
        if not self.ended:
            self.up.check()  # the client may speak now

    # -- the relay's toxics, as they change

    def direction(self, toxic: Toxic) -> Direction | None:
        return self.down if toxic.stream == DOWNSTREAM else self.up

    # (An ended connection takes no change: its stages are detached, and would arm timers.)

    def add(self, toxic: Toxic) -> None:
        if not self.ended and (direction := self.direction(toxic)) is not None:
            if toxic.type in HTTP_STAGES:
                self.guarded(self.watch_http)
            self.guarded(direction.add, toxic, self.draw(toxic), self.chooser(toxic))

    def update(self, toxic: Toxic) -> None:
        if not self.ended and (direction := self.direction(toxic)) is not None:
            self.guarded(direction.update, toxic, self.draw(toxic), self.chooser(toxic))

    def remove(self, toxic: Toxic) -> None:
        if not self.ended and (direction := self.direction(toxic)) is not None:
            self.guarded(direction.remove, toxic.name)
            if toxic.type in HTTP_STAGES:
                self.guarded(self.unwatch)

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

    def _end(self, keep: bool = False) -> list[Side]:
        """Mark the end; the sides still to be closed. ``keep``: a close, which writes what a
        splice's pipe held before its FIN (a reset or a drop throws it away, unread)."""
        if self.ended:
            return []
        self.ended, self.open = True, False
        for direction in (self.up, self.down):
            if direction is not None:
                direction.stop(keep)
        if self.connector is not None and self.upstream is None:
            self.connector.disconnect()
        sides = [self.client, self.upstream]
        return [side for side in sides if side is not None and not side.gone]

    def close(self) -> None:
        """Both sides closed with a FIN, after what their transports hold is written, for at most
        :data:`LINGER` seconds each: a peer that does not read is then aborted."""
        for side in self._end(keep=True):
            side.transport.loseConnection()
            if not side.gone:  # (a transport may lose its connection at once)
                self.lingers[side] = self.clock.callLater(LINGER, side.transport.abortConnection)

    def reset(self) -> None:
        """Both sides closed with a reset."""
        for side in self._end():
            reset_transport(side.transport)

    def drop(self) -> None:
        """Both sides closed at once, what is unsent dropped: the relay was disabled or deleted.

        A connection already closing (its sides lingering, :meth:`close`) is dropped too:
        "drops the open ones" includes those still writing to a slow peer.
        """
        sides = self._end()
        if not sides:
            sides = [side for side in self.lingers if not side.gone]
        for side in sides:
            linger = self.lingers.pop(side, None)
            if linger is not None and linger.active():
                linger.cancel()
            side.transport.abortConnection()

    def lost(self, side: Side, reason: Failure) -> None:
        side.gone = True
        linger = self.lingers.pop(side, None)
        if linger is not None and linger.active():
            linger.cancel()
        if not self.ended:
            # The peer went without the FIN a half-close would have shown: a reset, usually.
            if reason.check(ConnectionDone):
                self.close()
            else:
                self.reset()
        if self.client.gone and (self.upstream is None or self.upstream.gone):
            self.relay.forget(self)

    def watch_http(self) -> None:
        """An HTTP toxic comes: a watcher at the head of each direction, once (see httpledger)."""
        if self.ledger is not None or self.up is None or self.down is None:
            return
        up, down = self.up, self.down
        for direction in (down, up):  # (a splice reads in the kernel: it may be what came last)
            if direction.splice is not None:
                direction.last_read = self.tick()
        self.ledger = Ledger(self.resolve, down.over, self.unwatch)
        taps = UpTap(up, self.ledger), DownTap(down, self.ledger)
        up.join(TAP, taps[0], first=True)
        down.join(TAP, taps[1], first=True)
        if up.carried and up.last_read > down.last_read:
            # The client spoke last: a request may be under way that no watcher saw, and a response
            # would be matched to the next one's. This connection is not read as HTTP.
            self.http_off = True
            for tap in taps:
                tap.behind()

    def unwatch(self) -> None:
        """The last HTTP toxic has left this connection: so do its watchers (what they hold goes on)."""
        if self.ledger is None or self.up is None or self.down is None:
            return
        if any(
            stage.framing() and not isinstance(stage, Tap)
            for d in (self.up, self.down)
            for _, stage in d.stages
        ):
            return
        down = self.ledger.down
        if down is not None and not down.raw and any(a.answer is not None for a in self.ledger.asked):
            return  # (answers wait for their turn: the watchers go once the last has gone)
        ledger, self.ledger = self.ledger, None
        self.http_off = False
        ledger.stop()
        for direction, tap in ((self.up, ledger.up), (self.down, ledger.down)):
            if tap is not None:
                direction.leave_now(tap)
            direction.to_kernel()

    def tick(self) -> int:
        self.ticks += 1
        return self.ticks

    def resolve(self, asked: Any, status: int) -> None:
        """A CONNECT or Upgrade request was answered: the request side's framers read on, or go raw."""
        for _, stage in list(self.up.stages if self.up is not None else []):
            if isinstance(stage, HttpStage):
                stage.resolve(asked, status)

    def answer(self, asked: Any, data: bytes, code: int) -> None:
        """An answer of the relay's own (http_status's), for the client, in its turn."""
        if not self.ended and self.ledger is not None:
            self.ledger.answered(asked, data, code)
            if self.up is not None:
                self.up.check()

    def forget(self, asked: Any) -> None:
        """A request a toxic swallowed will never be answered: it waits no more."""
        if self.ledger is not None:
            self.ledger.done(asked)

    def drained(self, direction: Direction) -> None:
        """The responses' direction may hold less now: requests held back may go on."""
        if self.ledger is not None and direction is self.down:
            self.ledger.room()

    def http_fault(self, why: str, malformed: bool | None) -> None:
        """An HTTP toxic's stream is malformed (the connection is reset), is not HTTP (its bytes go
        on untouched, and the relay refuses HTTP toxics from now on), or was joined mid-message
        (``None``: this connection's bytes go on untouched): one line each way."""
        log.warn(
            "Relay {relay}'s connection {number}: {why}", relay=self.relay.name, number=self.number, why=why
        )
        if malformed:
            self.reset()
        elif malformed is False:
            self.relay.not_http = f"connection {self.number}: {why.split(';')[0]}"

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
