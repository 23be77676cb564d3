"""One direction of a relayed connection: the reader's bytes through the toxics' stages to the writer.

The direction is the writer transport's producer (Twisted's flow control): when
the writer's buffer fills (a peer that reads slowly), the writer pauses the
direction, which pauses the reader transport, so the relay holds one transport
buffer, not whatever the fast side sends. The stages' own queues count too:
while they hold more than :data:`HELD_LIMIT` bytes (latency keeps data for a
while, bandwidth lets it out slowly), the reader stays paused, and while the
writer is full they send nothing (their timers stall until it drains). A reader
whose FIN has come is never resumed: Twisted would read its end again, and pass
on a second FIN.

A toxic added while the connection is open joins the end of the chain; one
removed hands what it held to the stage after it, so nothing is lost or
reordered; one updated is retuned in place, or swapped when its new toxicity
decides otherwise for this connection.

A direction with no toxic that has carried a stream's worth of bytes
(:data:`~poetrynow.relay.kernel.STREAM_AFTER`) moves them in the kernel
(:mod:`poetrynow.relay.kernel`): once the writer's transport has written what the user-space path gave it (a
:class:`Drained` watch waits for that, the reader paused), a splice takes over
the reader; the first toxic added stops it, and what its pipe held goes to the
writer first, then the stages take the reader's next bytes.

Over 300 lines as one piece: a direction's flow control (pause, resume, FIN, the
move to the kernel and back) is one state machine, and its transitions are checked
against each other or not at all.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Protocol

from twisted.internet.interfaces import IPullProducer, IPushProducer, IReactorFDSet
from twisted.logger import Logger
from zope.interface import implementer

from poetrynow.relay import kernel
from poetrynow.relay.kinds import fate, stage_attributes
from poetrynow.relay.stages import Sink, Stage
from poetrynow.relay.toxics import Toxic
from poetrynow.relay.transport import buffered, handle, is_tls, send_now


class Connection(Protocol):
    """What a direction needs of the relayed connection it belongs to (``relay.connection``'s,
    named here so that the two modules do not import each other)."""

    ended: bool
    open: bool
    http_off: bool
    clock: Any
    reactor: Any

    def guarded(self, call: Any, *args: Any) -> None: ...
    def finished(self, direction: Direction) -> None: ...
    def close(self) -> None: ...
    def reset(self) -> None: ...
    def answer(self, asked: Any, data: bytes, code: int) -> None: ...
    def forget(self, asked: Any) -> None: ...
    def drained(self, direction: Direction) -> None: ...
    def tick(self) -> int: ...
    def unwatch(self) -> None: ...
    def http_fault(self, why: str, malformed: bool | None) -> None: ...


#: The bytes a direction's stages may hold before its reader is paused.
HELD_LIMIT = 1 << 20

log = Logger(namespace="poetrynow.relay")


class End:
    """The last sink of a direction: the writer transport."""

    def __init__(self, direction: Direction):
        self.direction = direction

    def write(self, data: bytes) -> None:
        # Once the connection is ended (a toxic closed it), nothing more is written: a transport
        # that is closing would still send what it is given.
        if data and not self.direction.connection.ended:
            send_now(self.direction.writer, data)

    def finish(self) -> None:
        if self.direction.connection.ended:
            return
        if self.direction.close_at_end:  # a toxic's FIN (limit_data, timeout): the connection ends
            self.direction.connection.close()
        else:
            self.direction.finished()


@implementer(IPushProducer)
class Direction:
    """``reader`` → stages → ``writer``, for one connection (see the module)."""

    def __init__(
        self, connection: Connection, reader: Any, writer: Any, paused: bool, limit: int = HELD_LIMIT
    ):
        self.connection, self.reader, self.writer, self.limit = connection, reader, writer, limit
        self.stages: list[tuple[Toxic, Stage]] = []
        self.end = End(self)
        self.writer_full = False
        self.reader_paused = paused  # (the client is, until its upstream answers)
        self.done = False  # the reader's FIN has reached the writer
        self.read_ended = False  # the reader's FIN has come (it is read once, and passed on once)
        self.close_at_end = False  # the FIN in the chain is a toxic's: it closes the connection
        self.splice: kernel.Splice | None = None  # the kernel path, while it serves
        self.carried = 0  # bytes the user-space path has read: past splice_after, a stream
        self.splice_after: float = (
            kernel.STREAM_AFTER
        )  # put off by a stream's worth when a splice cannot start
        self.drained_watch: Drained | None = None  # registered while a splice waits for the writer
        self.last_read = 0  # when its reader last gave bytes, in the connection's ticks
        writer.registerProducer(self, True)

    # -- the data path

    def head(self) -> Sink:
        return self.stages[0][1] if self.stages else self.end

    def data(self, data: bytes) -> None:
        if self.splice is not None:
            # A read the reactor had already under way when the splice took the reader: Twisted
            # runs every event of a poll, also for a transport paused by an earlier one. It came
            # before anything the splice reads (whose watch starts on the next poll): written
            # first, and the splice waits for the writer to empty again.
            came_with_fin = self.to_user()
            self.head().write(data)
            if came_with_fin:
                self.eof()
            else:
                self.to_kernel()
            self.check()  # (nothing while the splice or its wait has the reader)
            return
        self.carried += len(data)
        self.last_read = self.connection.tick()
        self.head().write(data)
        if self.carried >= self.splice_after and not self.stages:
            self.to_kernel()
        self.check()

    def eof(self) -> None:
        if not self.read_ended:
            self.read_ended = True
            self.head().finish()

    def finished(self) -> None:
        self.done = True
        self.release()
        self.connection.finished(self)

    def release(self) -> None:
        """Nothing more to write: stop being the writer's producer. (A transport that has paused its
        producer resumes it when its buffer drains, instead of carrying out a close asked for.)"""
        writer: Any = self.writer
        if is_tls(writer):
            # Twisted's TLS transport holds a wrapper of its producer (its ``producer`` is its TCP
            # transport's), and puts off a close until the producer is gone; it has only ours
            # (no kernel path over TLS), and unregistering is a no-op once done.
            writer.unregisterProducer()
        else:
            producer = self.writer.producer
            if producer is not None and (producer is self or producer is self.drained_watch):
                self.writer.unregisterProducer()
        self.drained_watch = None

    # -- the kernel path

    def to_kernel(self) -> None:
        """Hand the reader to a splice, if nothing needs user space: no stage, an open connection,
        a reader still to be read, a splice that works here, the writer's buffer empty (waited for)."""
        if self.stages or self.splice is not None or self.drained_watch is not None:
            return
        if self.carried < self.splice_after:
            return
        if not kernel.room():
            self.put_off()
            return
        if not self.connection.open or self.connection.ended or self.read_ended:
            return
        if kernel.unavailable() is not None:
            return
        # The kernel's own sockets on both sides: a TLS transport hands its TCP one's names
        # through, and a splice there would carry the ciphertext past the TLS layer.
        if handle(self.reader) is None or handle(self.writer) is None:
            return
        if not IReactorFDSet.providedBy(self.connection.reactor):
            return
        held = buffered(self.writer)
        if held is None:
            return
        self.pause_reader()
        if held:  # the writer still owes bytes of this direction: they go first
            self.release()
            self.drained_watch = Drained(self)
            self.writer.registerProducer(self.drained_watch, False)
            return
        self.splice_now()

    def splice_now(self) -> None:
        try:
            self.splice = kernel.Splice(self, self.connection.reactor)
        except OSError:  # no descriptor to spare, or a poller that refuses: user space serves
            self.splice = None
            self.put_off()
            self.check()

    def put_off(self) -> None:
        """A splice could not start: the next try is a stream's worth of bytes later, not every read."""
        self.splice_after = self.carried + kernel.STREAM_AFTER

    def drained_now(self) -> None:
        """The writer's buffer went empty while a splice waited: produce for it again, and splice."""
        if self.drained_watch is None:
            return
        if buffered(self.writer) != 0:
            return
        self.produce_again()
        if self.stages or not self.connection.open or self.connection.ended:
            self.check()
            return
        self.splice_now()

    def to_user(self) -> bool:
        """Stop the kernel path before a toxic joins: what its pipe held goes to the writer first.
        True when the reader's FIN came with it, for the chain to pass on after the toxic joins."""
        if self.drained_watch is not None:
            self.produce_again()
        if self.splice is None:
            return False
        splice, self.splice = self.splice, None
        held = splice.handed_back()
        if held:
            self.writer.write(held)
        return splice.eof and not self.read_ended

    def produce_again(self) -> None:
        """The Drained watch leaves: this direction is the writer's producer again, and not paused
        (the writer paused it, if it did, before the watch came; its resume went to the watch)."""
        self.writer.unregisterProducer()
        self.drained_watch = None
        self.writer_full = False
        self.writer.registerProducer(self, True)

    def pause_reader(self) -> None:
        if not self.reader_paused:
            self.reader_paused = True
            self.reader.pauseProducing()

    def spliced_eof(self) -> None:
        """The splice met the reader's FIN, and has written every byte before it."""
        self.splice = None
        self.connection.guarded(self.eof)

    def spliced_refused(self, error: OSError, held: bytes = b"") -> None:
        """splice(2) does not take this socket (it said so before a byte went through it): user
        space serves this direction from now on, what the pipe held first, and the relay says so once."""
        self.splice = None
        self.splice_after = float("inf")
        kernel.refused_once(error)
        if held:
            self.writer.write(held)
        self.check()

    def spliced_error(self, error: OSError) -> None:
        """The splice met a reset (or another error) on either socket: as the transport would."""
        self.splice = None
        if not self.connection.ended:
            self.connection.reset()

    # -- the toxics, while the connection is open

    def _link(self) -> None:
        for (_, stage), (_, after) in zip(self.stages, self.stages[1:]):
            stage.next = after
        if self.stages:
            self.stages[-1][1].next = self.end

    def add(self, toxic: Toxic, draw: random.Random, chooser: random.Random) -> None:
        """``toxic`` joins the chain; ``draw`` decides its fate, ``chooser`` its randomness."""
        self.join(toxic, fate(toxic, draw)(self, stage_attributes(toxic), chooser))

    def join(self, toxic: Toxic, stage: Stage, first: bool = False) -> None:
        """``stage`` joins the chain, at its end (or ``first``: the relay's HTTP watcher)."""
        came_with_fin = self.to_user()
        stage.joined = self.carried > 0 or self.splice is not None  # (an HTTP toxic's: mid-stream?)
        behind = not first and stage.framing()
        behind = behind and (self.connection.http_off or any(each.holds() for _, each in self.stages))
        self.stages.insert(0 if first else len(self.stages), (toxic, stage))
        self._link()
        if behind:  # (messages under way before it: it cannot know what they are)
            stage.behind()
        if came_with_fin:
            self.eof()
        self.check()

    def _index(self, name: str) -> int | None:
        return next((i for i, (toxic, _) in enumerate(self.stages) if toxic.name == name), None)

    def remove(self, name: str) -> None:
        self._remove(name)
        self.to_kernel()

    def _remove(self, name: str) -> None:
        index = self._index(name)
        if index is None:
            return
        toxic, stage = self.stages[index]
        if stage.lingers():  # (it swallows a message under way: it goes once that has ended)
            stage.leaving = True
            self.stages[index] = (replace(toxic, name=""), stage)  # (no name a toxic may have)
            return
        self._drop(index)

    def leave(self, stage: Stage) -> None:
        """A stage whose toxic was removed mid-message leaves, that message over."""
        if self.leave_now(stage):
            self.connection.unwatch()
            self.to_kernel()

    def leave_now(self, stage: Stage) -> bool:
        index = next((i for i, (_, each) in enumerate(self.stages) if each is stage), None)
        if index is not None:
            self._drop(index)
        return index is not None

    def _drop(self, index: int) -> None:
        _, stage = self.stages[index]
        framer = self.framer_after(stage)  # (the next to learn what the heads it leaves are)
        self.stages.pop(index)
        self._link()
        chunks, finishing = stage.detach()
        after: Sink = self.stages[index][1] if index < len(self.stages) else self.end
        if framer is not None:
            framer.inbox.extend(getattr(stage, "orphans", ()))
        for chunk in chunks:
            after.write(chunk)
        if finishing:
            after.finish()
        self.check()

    def update(self, toxic: Toxic, draw: random.Random, chooser: random.Random) -> None:
        index = self._index(toxic.name)
        if index is None:
            return
        old, stage = self.stages[index]
        kind = fate(toxic, draw)
        if kind is type(stage):  # the same fate as before: its state kept, its new attributes
            stage.retune(stage_attributes(toxic))
            self.stages[index] = (toxic, stage)
            return
        self._remove(old.name)  # (not remove: the chain is not empty for long, no splice between)
        self.stages.insert(index, (toxic, kind(self, stage_attributes(toxic), chooser)))
        self._link()

    def stop(self, keep: bool = False) -> None:
        """The connection is gone: every stage's timers stop, what they held is dropped. What a
        splice's pipe held goes to the writer when ``keep`` (a close writes it before its FIN)."""
        if self.splice is not None:
            splice, self.splice = self.splice, None
            held = splice.handed_back() if keep else b""
            splice.stop()
            if held:
                self.writer.write(held)
        for _, stage in self.stages:
            stage.detach()
        self.release()

    # -- flow control

    def held(self) -> int:
        return sum(stage.held for _, stage in self.stages)

    def check(self) -> None:
        """Pause the reader while the writer is full or the stages hold too much; else resume it."""
        if self.splice is not None or self.drained_watch is not None:
            return  # the kernel path has the reader (or will have it once the writer is empty)
        pause = self.writer_full or self.over() or any(stage.throttled() for _, stage in self.stages)
        if pause != self.reader_paused and self.connection.open and not self.read_ended:
            self.reader_paused = pause
            if pause:
                self.reader.pauseProducing()
            else:
                self.reader.resumeProducing()
        self.connection.drained(self)

    def pauseProducing(self) -> None:
        self.writer_full = True
        self.connection.guarded(self.check)

    def resumeProducing(self) -> None:
        self.connection.guarded(self.resumed)

    def resumed(self) -> None:
        self.writer_full = False
        for _, stage in reversed(list(self.stages)):  # the stages nearest the writer first
            if self.writer_full or self.connection.ended:
                break
            stage.resume()
        self.check()

    def stopProducing(self) -> None:
        pass  # the writer's connection is lost: the connection hears of it and stops the direction

    # -- Hooks, for the stages

    def later(self, seconds: float, call: Any) -> Any:
        return self.connection.clock.callLater(seconds, self.connection.guarded, call)

    def now(self) -> float:
        return self.connection.clock.seconds()

    def close(self) -> None:
        self.connection.close()

    def closing(self) -> None:
        self.close_at_end = True

    def blocked(self) -> bool:
        return self.writer_full

    def reset(self) -> None:
        self.connection.reset()

    def moved(self) -> None:
        self.check()

    def answer(self, asked: Any, data: bytes, code: int) -> None:
        """An HTTP answer the relay gives the reader's own peer itself: through the other direction,
        in its turn (:mod:`poetrynow.relay.httpledger`), through its toxics."""
        self.connection.answer(asked, data, code)

    def forget(self, asked: Any) -> None:
        self.connection.forget(asked)

    def over(self) -> bool:
        """Its stages hold more than its limit."""
        return self.held() > self.limit

    def framer_after(self, stage: Any) -> Any:
        """The HTTP stage after ``stage`` that still frames, if any: the next to learn each head's request."""
        seen = False
        for _, each in self.stages:
            if seen and each.framing():
                return each
            seen = seen or each is stage
        return None

    def http_fault(self, why: str, malformed: bool | None) -> None:
        self.connection.http_fault(why, malformed)


@implementer(IPullProducer)
class Drained:
    """Registered with the writer as a pull producer while a splice waits for its buffer to empty:
    Twisted asks a pull producer for more each time the buffer has been written out."""

    def __init__(self, direction: Direction):
        self.direction = direction

    def resumeProducing(self) -> None:
        self.direction.connection.guarded(self.direction.drained_now)

    def stopProducing(self) -> None:
        pass  # the writer's connection is lost: the connection hears of it and stops the direction
