"""The slow poetry server, Twisted edition: every client at once, each on its own schedule.

One :class:`Pacer` per server holds every connection's next deadline in a heap
and keeps a single reactor timer armed for the earliest one; when it fires it
serves every connection that is due. Ten thousand clients cost one timer, not ten
thousand LoopingCalls, and each deadline is measured from its connection's start
(:class:`~poetrynow.schedule.PoemSchedule`), so late ticks do not accumulate.

Each protocol is a streaming producer for its transport: a client that stops
reading pauses its own schedule once the transport's buffer is full, instead of
having chunk after chunk queued for it.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.schedule import PoemSchedule
from poetrynow.servers.listen import peer_name, reset_on_close


class Pacer:
    """Calls ``tick()`` on each registered protocol when its deadline comes."""

    def __init__(self, clock):
        self.clock = clock
        self._heap: list[tuple[float, int, SlowPoetryProtocol]] = []
        self._order = itertools.count()
        self._call = None
        self._armed_for = 0.0

    def at(self, due: float, protocol: SlowPoetryProtocol) -> None:
        heapq.heappush(self._heap, (due, next(self._order), protocol))
        self._arm()

    def _arm(self) -> None:
        if not self._heap:
            return
        first = self._heap[0][0]
        if self._call is not None and self._call.active():
            if self._armed_for <= first:
                return
            self._call.cancel()
        self._armed_for = first
        self._call = self.clock.callLater(max(0.0, first - self.clock.seconds()), self._tick)

    def _tick(self) -> None:
        self._call = None
        now = self.clock.seconds()
        while self._heap and self._heap[0][0] <= now:
            _, _, protocol = heapq.heappop(self._heap)
            protocol.tick()
        self._arm()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._heap.clear()


@implementer(IPushProducer)
class SlowPoetryProtocol(Protocol):
    transport: Any  # a TCP transport, which can also abort and take a producer

    log = Logger()

    def connectionMade(self):
        factory = self.factory
        self.clock = factory.clock
        self.schedule: PoemSchedule = factory.schedule
        self.poem: bytes = factory.service.poem
        self.start = self.clock.seconds()
        self.index = 0
        self.paused = False
        self.waiting = False
        self.done = False
        self.served = False  # the whole poem went out and we closed
        self.aborted = False  # the server cut it short as it stopped
        self.peer = peer_name(self.transport.getPeer())
        self.chatty = factory.log_clients
        factory.live.add(self)
        if self.chatty:
            self.log.info("Somebody at {peer} wants poetry!", peer=self.peer)
        self.transport.registerProducer(self, True)
        self.tick()  # the first chunk goes out on connection, as in the blocking edition

    def _wait(self) -> None:
        self.waiting = True
        self.factory.pacer.at(self.start + self.schedule.due(self.index), self)

    def tick(self) -> None:
        """Called by the Pacer when this connection's next chunk (or close) is due."""
        self.waiting = False
        if self.done or self.paused:
            return
        if self.index < self.schedule.chunks:
            begin, end = self.schedule.span(self.index)
            chunk = self.poem[begin:end]
            if self.chatty:
                self.log.debug("Sending {nbytes} bytes to {peer}", nbytes=len(chunk), peer=self.peer)
            self.transport.write(chunk)
            self.index += 1
            self._wait()
        else:
            self.done = self.served = True
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        if not self.waiting and not self.done:
            # Go on at the old pace from now: a stalled reader gets no burst of catch-up chunks.
            self.start = self.clock.seconds() - self.schedule.due(self.index)
            self._wait()

    def stopProducing(self):
        self.done = True

    def cut_short(self) -> None:
        """The server is stopping mid-poem: reset the connection, so the client sees a failure."""
        self.done = self.aborted = True
        self.log.info(
            "Cut short the poem to {peer} after {sent} of {size} bytes: the server is stopping.",
            peer=self.peer,
            sent=self.schedule.span(self.index)[0],
            size=len(self.poem),
        )
        handle = getattr(self.transport, "getHandle", None)  # a real socket, not a test's transport
        if handle is not None:
            reset_on_close(handle())
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.live.discard(self)
        if self.aborted:
            return  # cut short by the server, and said so
        if not self.served and self.chatty:
            self.log.info(
                "Client at {peer} hung up after {sent} of {size} bytes.",
                peer=self.peer,
                sent=self.schedule.span(self.index)[0],
                size=len(self.poem),
            )
        self.done = True


class SlowPoetryFactory(Factory):
    """Builds the protocols of one slow server; owns its Pacer."""

    protocol = SlowPoetryProtocol
    noisy = False

    def __init__(
        self, service, num_bytes: int = 10, delay: float = 0.1, clock=None, log_clients: bool = True
    ):
        if clock is None:
            from twisted.internet import reactor as clock
        self.service = service
        # Off with --quiet: ten thousand clients would log a line per chunk each.
        self.log_clients = log_clients
        self.clock = clock
        self.num_bytes = num_bytes
        self.delay = delay
        self.pacer = Pacer(clock)
        self.live: set[SlowPoetryProtocol] = set()  # connections open now
        self.cut_short = 0  # poems the server cut short when it stopped

    @property
    def schedule(self) -> PoemSchedule:
        return PoemSchedule(len(self.service.poem), self.num_bytes, self.delay)

    def stopFactory(self):
        # The server is stopping (it stopped listening): no poem under way may end as if whole.
        self.pacer.stop()
        for protocol in list(self.live):
            if not protocol.served:
                self.cut_short += 1
                protocol.cut_short()
