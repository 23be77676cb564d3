"""The slow poetry server, Twisted edition: every client at once, each on its own schedule.

One :class:`Pacer` per server holds every connection's next deadline in a heap
and keeps a single reactor timer armed for the earliest one; when it fires it
serves every connection that is due. Ten thousand clients cost one timer, not ten
thousand LoopingCalls, and each deadline is measured from its connection's start
(its :func:`~poetrynow.faults.plan`, with or without faults), so late ticks do not
accumulate.

Each protocol is a streaming producer for its transport: a client that stops
reading pauses its own schedule once the transport's buffer is full, instead of
having chunk after chunk queued for it.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.faults import RESET, STALL, Faults, Plan, plan
from poetrynow.servers.listen import peer_name, reset_on_close
from poetrynow.servers.onewrite import SharedPort, bare_accepts, close_now, peer_of, send_now


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
        heap, order = self._heap, self._order
        # Each protocol says when it is due next; it goes straight back on the heap.
        while heap and heap[0][0] <= now:
            protocol = heapq.heappop(heap)[2]
            due = protocol.tick()
            if due is not None:
                heapq.heappush(heap, (due, next(order), protocol))
        self._arm()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._heap.clear()


@implementer(IPushProducer)
class SlowPoetryProtocol(Protocol):
    """One client's poem on its schedule: on its bare socket, or on a Twisted transport.

    A connection accepted by :class:`SlowPort` starts bare (``fd`` set): the
    chunks go straight from the Pacer into the socket. Only if the kernel does
    not take a chunk whole (the client stopped reading) does the connection
    get a Twisted transport, with the rest of the chunk in its buffer and this
    protocol as its producer, and go on as on any other listener.
    """

    transport: Any  # a TCP transport, which can also abort and take a producer

    log = Logger()
    fd: int | None = None  # the bare socket, until (unless) a transport takes it
    address: tuple = ()
    #: The port that accepted it bare: the one to hand it over through (``::1``'s or 127.0.0.1's).
    listener: Any = None

    def begin(self, factory: SlowPoetryFactory, now: float) -> None:
        self.factory = factory
        self.clock = factory.clock
        self.poem: bytes = factory.service.poem
        self.plan: Plan = factory.plan_for(factory.next_connection())
        self.chunks, self.dues = self.plan.chunks, self.plan.dues
        self.start = now
        self.index = 0
        self.paused = False
        self.waiting = False
        self.done = False
        self.served = False  # the plan was carried out: the whole poem (or the fault) and the end
        self.aborted = False  # the server cut it short as it stopped
        self.chatty = factory.log_clients
        factory.live.add(self)
        if self.chatty:
            self.log.info("Somebody at {peer} wants poetry!", peer=self.peer)

    @property
    def peer(self) -> str:
        if self.fd is not None or self.transport is None:
            return peer_of(self.address)
        return peer_name(self.transport.getPeer())

    def connectionMade(self):
        if self.fd is not None:  # a bare connection handed over, mid-poem
            self.fd = None
            self.transport.registerProducer(self, True)
            if self._rest:
                self.transport.write(self._rest)
            del self._rest
            return
        self.begin(self.factory, self.factory.clock.seconds())
        self.transport.registerProducer(self, True)
        self._wait(self.first_step())

    def first_step(self) -> float | None:
        """The first chunk goes out on connection, as in the blocking edition (unless held back)."""
        if self.dues[0] <= 0:
            return self.tick()
        self.waiting = True
        return self.start + self.dues[0]

    def _wait(self, due: float | None) -> None:
        if due is not None:
            self.factory.pacer.at(due, self)

    def tick(self) -> float | None:
        """Called by the Pacer when this connection's next chunk (or close) is due.

        Sends the chunk and returns when the next step is due, or None when
        there is none to wait for (closed, paused, or gone). This runs for every
        chunk of every client, so its data is ready-made by the factory: the
        chunks cut once, their due times from the start added up once.
        """
        self.waiting = False
        if self.done or self.paused:
            return None
        index = self.index
        if index < len(self.chunks):
            chunk = self.chunks[index]
            if self.chatty:
                self.log.debug("Sending {nbytes} bytes to {peer}", nbytes=len(chunk), peer=self.peer)
            if self.fd is not None:
                if not self._send_bare(chunk):
                    return None
            else:
                send_now(self.transport, chunk)
            self.index = index + 1
            self.waiting = True
            return self.start + self.dues[index + 1]
        self._end()
        return None

    def _end(self) -> None:
        """The plan's last step: a clean close (after the whole poem, or before), a reset, or a stall."""
        ending = self.plan.ending
        if self.factory.faults.any and self.chatty:
            self.log.info("client {peer}: {fate}", peer=self.peer, fate=self.plan.fate(len(self.poem)))
        if ending == STALL:
            # Hold the connection open, sending nothing, until the client gives up (or the
            # server stops). A bare socket gets a transport now, to hear the client leave.
            if self.fd is not None:
                self._hand_over(b"")
            return
        self.done = self.served = True
        if ending == RESET:
            self.aborted = True  # a reset by design: no "hung up" line
            self._reset()
            return
        if self.fd is not None:
            fd, self.fd = self.fd, None
            close_cleanly(fd)
            self.factory.live.discard(self)
            return
        self.transport.unregisterProducer()
        close_now(self.transport)

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), so the client sees a failure, not an end."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with socket.socket(fileno=fd) as bare:
                reset_on_close(bare)
            self.factory.live.discard(self)
            return
        handle = getattr(self.transport, "getHandle", None)  # a real socket, not a test's transport
        if handle is not None:
            reset_on_close(handle())
        self.transport.abortConnection()

    def _send_bare(self, chunk: bytes) -> bool:
        """Write a chunk to the bare socket; False if the client is gone."""
        try:
            sent = os.write(self.fd, chunk)  # type: ignore[arg-type]
        except BlockingIOError:
            sent = 0
        except OSError:  # EPIPE, ECONNRESET: it hung up
            self._gone()
            return False
        if sent < len(chunk):
            self._hand_over(chunk[sent:])
        return True

    def _gone(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
        self.connectionLost(Failure(ConnectionDone()))

    def _hand_over(self, rest: bytes) -> None:
        """The client stopped reading: a Twisted transport buffers the rest and pauses us."""
        self._rest = rest
        self.listener.hand_over(self.fd, self.address, self)

    @property
    def sent(self) -> int:
        """Bytes of the poem sent so far (the chunks written; some may wait in a buffer)."""
        return sum(len(chunk) for chunk in self.chunks[: self.index])

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        if not self.waiting and not self.done:
            # Go on at the old pace from now: a stalled reader gets no burst of catch-up chunks.
            self.start = self.clock.seconds() - self.dues[self.index]
            self.waiting = True
            self._wait(self.start + self.dues[self.index])

    def stopProducing(self):
        self.done = True

    def cut_short(self) -> None:
        """The server is stopping mid-poem: reset the connection, so the client sees a failure."""
        self.done = self.aborted = True
        self.log.info(
            "Cut short the poem to {peer} after {sent} of {size} bytes: the server is stopping.",
            peer=self.peer,
            sent=self.sent,
            size=len(self.poem),
        )
        self._reset()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
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


class SlowPort(SharedPort):
    """The slow server's listening port: each new client starts bare, in the accept loop.

    Twisted's own accept builds a transport, its addresses and log strings, and
    registers the socket with the reactor for each client; with ten thousand
    clients connecting at once that cost more than the kernel's work, and the
    clients' schedules started late. Here a client is accepted, made
    non-blocking, sent its first chunk and put on the Pacer: a protocol object
    and a descriptor, nothing else, until it needs a transport
    (:meth:`SlowPoetryProtocol._hand_over`).
    """

    factory: Any

    def startListening(self):
        SharedPort.startListening(self)
        self.factory.ports.append(self)

    def doRead(self):
        factory = self.factory
        now = factory.clock.seconds()
        at = factory.pacer.at
        for fd, address in bare_accepts(self):
            os.set_blocking(fd, False)
            protocol = SlowPoetryProtocol()
            protocol.fd, protocol.address, protocol.listener = fd, address, self
            protocol.begin(factory, now)
            due = protocol.first_step()
            if due is not None:
                at(due, protocol)
        return None


NO_FAULTS = Faults()

#: What a client may have sent that is read and dropped at the close, at most.
DRAIN_LIMIT = 1 << 20


def close_cleanly(fd: int) -> None:
    """Close a bare socket with a FIN, after dropping whatever the client sent.

    Nobody reads a bare connection, and the kernel answers the close of a socket
    with unread input with a reset, which can cost the client the end of its poem.
    A client that sent a little (a greeting, a stray newline) gets a clean end;
    one that sent more than DRAIN_LIMIT gets the reset it asked for.
    """
    with socket.socket(fileno=fd) as bare:
        drained = 0
        try:
            while drained < DRAIN_LIMIT and (data := bare.recv(65536, socket.MSG_DONTWAIT)):
                drained += len(data)
        except OSError:  # nothing more (BlockingIOError), or gone
            pass


class SlowPoetryFactory(Factory):
    """Builds the protocols of one slow server; owns its Pacer."""

    protocol = SlowPoetryProtocol
    port_class = SlowPort
    noisy = False

    def __init__(
        self,
        service,
        num_bytes: int = 10,
        delay: float = 0.1,
        clock=None,
        log_clients: bool = True,
        faults: Faults = NO_FAULTS,
        rate: float | None = None,
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
        self.ports: list[SlowPort] = []  # the SlowPorts that have listened with this factory
        self.faults, self.rate = faults, rate
        self.numbered = (
            0  # connections numbered as they come: with --seed, number N always gets the same faults
        )
        self._plan: tuple[bytes, Plan] | None = None

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

    def stopFactory(self):
        # The server is stopping (it stopped listening): no poem under way may end as if whole.
        self.pacer.stop()
        for protocol in list(self.live):
            if not protocol.served:
                self.cut_short += 1
                protocol.cut_short()
