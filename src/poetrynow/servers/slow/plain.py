"""The slow poetry server, Twisted edition: every client at once, each on its own schedule.

This is the plain edition, the lesson of Parts 2 and 16 as Twisted writes it: a
Protocol per client that sends its poem a chunk at a time from ``callLater``
timers, a Factory that builds the protocols, and the poem held by a Service.
Each chunk is due at a fixed time from the connection's start (its
:func:`~poetrynow.faults.plan`, with or without faults), so late timers do not
pile up into drift. Each protocol is a streaming producer for its transport: a
client that stops reading pauses its own schedule once the transport's buffer is
full, instead of having chunk after chunk queued for it.

The fast edition (:mod:`poetrynow.servers.slow.fast`) serves the same
plans to ten thousand clients from one timer and bare sockets, and hands a
client that stops reading to this protocol, mid-poem (:meth:`SlowPoetryProtocol.resume`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer, IReactorFDSet
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.faults import RESET, STALL, Faults, Plan, plan
from poetrynow.servers.common.ending import Answering
from poetrynow.servers.common.gone import GoneWatch
from poetrynow.servers.common.guard import costs_one_connection, reset_transport
from poetrynow.servers.common.listen import peer_name

NO_FAULTS = Faults()


@implementer(IPushProducer)
class SlowPoetryProtocol(Answering):
    """One client's poem on its schedule: a chunk per timer, then the plan's ending.

    A client's FIN does not stop its poem (it may have half-closed); from then on
    the transport no longer watches the socket, so the factory's GoneWatch does,
    to drop the client at once if it turns out to have gone.
    """

    transport: Any  # a TCP transport, which can also abort and take a producer
    log = Logger()
    #: Set by :meth:`resume` for a connection the fast edition started.
    resumed: tuple[Plan, float, int, bytes, bool] | None = None
    # Until connectionMade sets them (a connection lost before it ran has sent nothing).
    call: Any = None
    plan: Plan = Plan((), (0.0,))
    index = 0
    poem = b""
    served = aborted = done = False
    chatty = False
    watched: int | None = None  # the descriptor the factory's GoneWatch watches, after the client's FIN

    @classmethod
    def resume(cls, plan: Plan, start: float, index: int, rest: bytes, holding: bool) -> SlowPoetryProtocol:
        """A protocol that takes over a poem under way: ``rest`` of chunk ``index - 1`` first,
        then chunk ``index`` on the old schedule; ``holding``: the plan ended in a stall."""
        protocol = cls()
        protocol.resumed = (plan, start, index, rest, holding)
        return protocol

    @costs_one_connection
    def connectionMade(self):
        factory = self.factory
        self.clock = factory.clock
        self.call: Any = None
        self.paused = False
        self.done = False
        self.holding = False  # the plan ended in a stall: nothing more is ever sent
        self.served = False  # the plan was carried out: the whole poem (or the fault) and the end
        self.aborted = False  # the server cut it short as it stopped
        self.chatty = factory.log_clients
        factory.live.add(self)
        self.transport.registerProducer(self, True)
        if self.resumed is not None:
            self.plan, self.start, self.index, rest, holding = self.resumed
            self.poem = factory.service.poem
            if rest:
                self.transport.write(rest)
            self.holding = holding
            if not holding:
                self._schedule()
            return
        self.poem = factory.service.poem
        self.plan = factory.plan_for(factory.next_connection())
        self.start = self.clock.seconds()
        self.index = 0
        if self.chatty:
            self.log.info("Somebody at {peer} wants poetry!", peer=self.peer)
        if self.plan.dues[0] <= 0:
            self._step()  # the first chunk goes out on connection, as in the blocking edition
        else:
            self._schedule()

    @property
    def peer(self) -> str:
        return peer_name(self.transport.getPeer())

    @property
    def sent(self) -> int:
        """Bytes of the poem sent so far (the chunks written; some may wait in a buffer)."""
        return sum(len(chunk) for chunk in self.plan.chunks[: self.index])

    def _schedule(self) -> None:
        """Set the timer for the next step, due at its time from the start (at once if that is past)."""
        due = self.start + self.plan.dues[self.index]
        self.call = self.clock.callLater(max(0.0, due - self.clock.seconds()), self._step)

    @costs_one_connection
    def _step(self) -> None:
        self.call = None
        if self.done or self.paused:
            return
        chunks = self.plan.chunks
        if self.index < len(chunks):
            chunk = chunks[self.index]
            if self.chatty:
                self.log.debug("Sending {nbytes} bytes to {peer}", nbytes=len(chunk), peer=self.peer)
            self.transport.write(chunk)
            self.index += 1
            self._schedule()
            return
        self._end()

    def _end(self) -> None:
        """The plan's last step: a clean close (after the whole poem, or before), a reset, or a stall."""
        ending = self.plan.ending
        if self.factory.faults.any and self.chatty:
            self.log.info("client {peer}: {fate}", peer=self.peer, fate=self.plan.fate(len(self.poem)))
        if ending == STALL:
            self.holding = True
            return  # hold the connection, sending nothing, until the client gives up or the server stops
        self.done = self.served = True
        if ending == RESET:
            self.aborted = True  # a reset by design: no "hung up" line
            self.reset()
            return
        self.transport.unregisterProducer()
        self.finish()

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), so the client sees a failure, not an end."""
        reset_transport(self.transport)

    def client_finished(self) -> None:
        """The client's FIN: go on with the poem, and have the factory watch for the client going."""
        fileno = getattr(self.transport, "fileno", None)  # a real socket, not a test's transport
        if fileno is not None and not self.done:
            self.watched = fileno()
            self.factory.watch_gone(self.watched, self._gone)

    def _gone(self) -> None:
        """The kernel says the client has gone (a reset, an unanswered keepalive)."""
        self.watched = None
        self.transport.abortConnection()

    # IPushProducer: the transport pauses us while its buffer is full.
    def pauseProducing(self):
        self.paused = True

    @costs_one_connection
    def resumeProducing(self):
        self.paused = False
        if self.call is None and not self.done and not self.holding:
            # Go on at the old pace from now: a stalled reader gets no burst of catch-up chunks.
            self.start = self.clock.seconds() - self.plan.dues[self.index]
            self._schedule()

    def stopProducing(self):
        self.done = True

    def cut_short(self) -> None:
        """The server is stopping mid-poem: reset the connection, so the client sees a failure."""
        self.done = self.aborted = True
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        self.log.info(
            "Cut short the poem to {peer} after {sent} of {size} bytes: the server is stopping.",
            peer=self.peer,
            sent=self.sent,
            size=len(self.poem),
        )
        self.reset()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        Answering.connectionLost(self, reason)
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        if self.watched is not None:
            self.factory.forget_gone(self.watched, closing=True)
            self.watched = None
        self.factory.live.discard(self)
        if self.aborted:
            return  # cut short by the server, and said so
        if not self.served and self.chatty:
            self.log.info(
                "Client at {peer} hung up after {sent} of {size} bytes.",
                peer=self.peer,
                sent=self.sent,
                size=len(self.poem),
            )
        self.done = True


class SlowPoetryFactory(Factory):
    """Builds the protocols of one slow server; knows every connection open, to cut them short at the end."""

    protocol = SlowPoetryProtocol
    noisy = False
    #: The fast edition's port: bare sockets paced by one timer.
    fast_port = "slow"
    #: TCP keepalive on the accepted connections: a client that has gone is found
    #: within about a minute and a half, however long the wait for its next chunk.
    keep_alive = True

    def __init__(
        self,
        service,
        num_bytes: int = 10,
        delay: float = 0.1,
        clock=None,
        log_clients: bool = True,
        faults: Faults = NO_FAULTS,
        rate: float | None = None,
        plain: bool = False,
    ):
        if clock is None:
            from twisted.internet import reactor as clock
        self.service = service
        self.plain = plain
        # Off with --quiet: ten thousand clients would log a line per chunk each.
        self.log_clients = log_clients
        self.clock = clock
        self.num_bytes = num_bytes
        self.delay = delay
        self.live: set = set()  # connections open now (protocols, and the fast edition's bare clients)
        self.cut_short = 0  # poems the server cut short when it stopped
        self.faults, self.rate = faults, rate
        # Connections numbered as they come: with --seed, number N always gets the same faults.
        self.numbered = 0
        self._plan: tuple[bytes, Plan] | None = None
        #: Called when the factory stops (the fast edition stops its timer here).
        self.on_stop: list = []
        self.gone_watch: GoneWatch | None = None
        self.stopped = False

    def watch_gone(self, fd: int, gone) -> None:
        """Have ``gone()`` called if the client on ``fd`` turns out to have gone (see common/gone.py)."""
        if self.gone_watch is None:
            if self.stopped or not IReactorFDSet.providedBy(self.clock):
                return  # stopped (its watch with it), or a test's clock: nothing to watch with
            self.gone_watch = GoneWatch(self.clock)
            self.on_stop.append(self._stop_watching)
        self.gone_watch.watch(fd, gone)

    def _stop_watching(self) -> None:
        watch, self.gone_watch = self.gone_watch, None
        if watch is not None:
            watch.stop()

    def forget_gone(self, fd: int, closing: bool = False) -> None:
        if self.gone_watch is not None:
            self.gone_watch.forget(fd, closing)

    def next_connection(self) -> int:
        self.numbered += 1
        return self.numbered

    def plan_for(self, connection: int) -> Plan:
        """Connection number ``connection``'s plan: the shared one, or its own with faults or a rate.

        Without faults every connection shares one plan, the poem cut into its
        chunks and their due times added up once.
        """
        poem = self.service.poem
        if self.faults.any or self.rate:
            return plan(poem, self.num_bytes, self.delay, self.faults, connection, self.rate)
        if self._plan is None or self._plan[0] is not poem:
            self._plan = (poem, plan(poem, self.num_bytes, self.delay))
        return self._plan[1]

    def startFactory(self):
        self.stopped = False

    def stopFactory(self):
        # The server is stopping (it stopped listening): no poem under way may end as if whole.
        self.stopped = True
        for stop in self.on_stop:
            stop()
        for protocol in list(self.live):
            if not protocol.served:
                self.cut_short += 1
                protocol.cut_short()
