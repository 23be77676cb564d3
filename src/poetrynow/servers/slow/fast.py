"""The slow server's fast edition: bare sockets and one timer for every client.

The plain edition (:mod:`poetrynow.servers.slow.plain`) gives each client a transport,
a protocol and a timer. With ten thousand clients connecting at once, Twisted's
accept (a transport, its addresses and log strings, a reactor registration per
client) and ten thousand timers cost more than the kernel's own work, and the
clients' schedules started late. Here :class:`SlowPort` accepts each client bare
(a descriptor), sends its first chunk and puts a :class:`BareClient` on the
:class:`Pacer`, which keeps every client's next deadline in a heap under a
single reactor timer. A client that stops reading (the kernel takes a chunk only
in part) or whose plan ends in a stall is handed to an ordinary transport with
the plain protocol, which carries on mid-poem.
"""

from __future__ import annotations

import heapq
import itertools
import os
from typing import Any

from twisted.logger import Logger

from poetrynow.faults import RESET, STALL, Plan
from poetrynow.servers.common.guard import BUG, reset_fd
from poetrynow.servers.common.logline import peer_of
from poetrynow.servers.fast.onewrite import BarePort, bare_accepts, close_cleanly, log
from poetrynow.servers.slow.plain import SlowPoetryProtocol


class Pacer:
    """Calls ``tick()`` on each registered client when its deadline comes: one timer for all."""

    def __init__(self, clock):
        self.clock = clock
        self._heap: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._call = None
        self._armed_for = 0.0

    def at(self, due: float, client: Any) -> None:
        heapq.heappush(self._heap, (due, next(self._order), client))
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
        try:
            # Each client says when it is due next; it goes straight back on the heap.
            while heap and heap[0][0] <= now:
                client = heapq.heappop(heap)[2]
                try:
                    due = client.tick()
                except Exception:
                    # One client's bug costs that client, not everyone's next chunk.
                    try:
                        client.failed()
                    except Exception:
                        log.failure("A bug while dropping a client after a bug")
                    continue
                if due is not None:
                    heapq.heappush(heap, (due, next(order), client))
        finally:
            self._arm()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._heap.clear()


class BareClient:
    """One client's poem on its bare socket, until it needs a transport (or ends)."""

    log = Logger(namespace="poetrynow.servers.slow.plain")

    def __init__(self, fd: int, address: tuple, port: SlowPort, now: float):
        factory = port.factory
        self.fd: int | None = fd
        self.address, self.port, self.factory = address, port, factory
        self.poem: bytes = factory.service.poem
        self.plan: Plan = factory.plan_for(factory.next_connection())
        self.chunks, self.dues = self.plan.chunks, self.plan.dues
        self.start = now
        self.index = 0
        self.served = False  # the plan was carried out: the whole poem (or the fault) and the end
        self.chatty = factory.log_clients
        self.sent_in_all: int | None = None  # once the descriptor is let go: the plan is dropped

    def enter(self) -> None:
        """Enter the factory's bookkeeping (after the constructor, which has no such effects:
        a client that fails half-made leaves nothing behind)."""
        factory = self.factory
        factory.live.add(self)
        factory.watch_gone(self.fd, self._gone)
        if self.chatty:
            self.log.info("Somebody at {peer} wants poetry!", peer=self.peer)

    def _release(self, closing: bool = True) -> int | None:
        """Take this client's descriptor out of its bookkeeping, to close it (or hand it on).

        Closing, its plan goes too: a gone client may wait on the Pacer's heap until its
        next step was due, and with faults or a rate its plan holds its own copy of the poem.
        """
        fd, self.fd = self.fd, None
        self.factory.live.discard(self)
        if fd is not None:
            self.factory.forget_gone(fd, closing)
        if closing and self.sent_in_all is None:
            self.sent_in_all = self.sent
            self.chunks = ()
        return fd

    @property
    def peer(self) -> str:
        return peer_of(self.address)

    @property
    def sent(self) -> int:
        if self.sent_in_all is not None:
            return self.sent_in_all
        return sum(len(chunk) for chunk in self.chunks[: self.index])

    def first_step(self) -> float | None:
        """The first chunk goes out on connection, as in the blocking edition (unless held back)."""
        if self.dues[0] <= 0:
            return self.tick()
        return self.start + self.dues[0]

    def tick(self) -> float | None:
        """Called by the Pacer when the next chunk (or the end) is due; when the step after is due.

        This runs for every chunk of every client, so its data is ready-made by
        the factory: the chunks cut once, their due times added up once.
        """
        if self.fd is None:
            return None
        index = self.index
        if index < len(self.chunks):
            chunk = self.chunks[index]
            if self.chatty:
                self.log.debug("Sending {nbytes} bytes to {peer}", nbytes=len(chunk), peer=self.peer)
            try:
                sent = os.write(self.fd, chunk)
            except BlockingIOError:
                sent = 0
            except OSError:  # EPIPE, ECONNRESET: it hung up
                self._gone()
                return None
            self.index = index + 1
            if sent < len(chunk):
                self._hand_over(chunk[sent:], holding=False)
                return None
            return self.start + self.dues[index + 1]
        self._end()
        return None

    def _end(self) -> None:
        ending = self.plan.ending
        if self.factory.faults.any and self.chatty:
            self.log.info("client {peer}: {fate}", peer=self.peer, fate=self.plan.fate(len(self.poem)))
        if ending == STALL:
            # Hold the connection open, sending nothing: a transport hears the client leave.
            self._hand_over(b"", holding=True)
            return
        self.served = True
        fd = self._release()
        if ending == RESET:
            reset_fd(fd)  # type: ignore[arg-type]
        else:
            close_cleanly(fd)  # type: ignore[arg-type]

    def _gone(self) -> None:
        fd = self._release()
        if fd is None:
            return
        os.close(fd)
        if self.chatty:
            self.log.info(
                "Client at {peer} hung up after {sent} of {size} bytes.",
                peer=self.peer,
                sent=self.sent,
                size=len(self.poem),
            )

    def _hand_over(self, rest: bytes, holding: bool) -> None:
        """The plain protocol takes over on a transport of the port that accepted this client."""
        fd = self._release(closing=False)
        protocol = SlowPoetryProtocol.resume(self.plan, self.start, self.index, rest, holding)
        try:
            self.port.hand_over(fd, self.address, protocol)  # type: ignore[arg-type]
        except OSError:  # no transport could be made of it (hand_over closed it): the client is gone
            pass

    def cut_short(self) -> None:
        """The server is stopping mid-poem: reset the connection, so the client sees a failure."""
        self.log.info(
            "Cut short the poem to {peer} after {sent} of {size} bytes: the server is stopping.",
            peer=self.peer,
            sent=self.sent,
            size=len(self.poem),
        )
        fd = self._release()
        if fd is not None:
            reset_fd(fd)

    def failed(self) -> None:
        """A bug in this client's handling (logged here): reset its connection, and no more."""
        self.log.failure(BUG, peer=self.peer)
        fd = self._release()
        if fd is not None:
            reset_fd(fd)


class SlowPort(BarePort):
    """The slow server's listening port: each new client starts bare, in the accept loop."""

    factory: Any

    def startListening(self):
        BarePort.startListening(self)
        factory = self.factory
        if getattr(factory, "pacer", None) is None:
            factory.pacer = Pacer(factory.clock)
            factory.on_stop.append(factory.pacer.stop)

    def doRead(self):
        # Nothing here is guarded by Twisted (see OneWritePort.doRead): a bug costs one
        # client, or outside any client this one wake-up, never the listening port.
        try:
            factory = self.factory
            now = factory.clock.seconds()
            at = factory.pacer.at
            for fd, address in bare_accepts(self):
                client = None
                try:
                    os.set_blocking(fd, False)
                    client = BareClient(fd, address, self, now)
                    client.enter()
                    due = client.first_step()
                    if due is not None:
                        at(due, client)
                except Exception:
                    if client is not None:
                        client.failed()
                    else:
                        log.failure(BUG, peer=peer_of(address))
                        reset_fd(fd)
        except Exception:
            log.failure("A bug while accepting on {port}; the port goes on listening", port=self.logPrefix())
        return None
