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
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from poetrynow.relay.stages import Sink, Stage, fate
from poetrynow.relay.toxics import Toxic


class Connection(Protocol):
    """What a direction needs of the relayed connection it belongs to (``relay.connection``'s,
    named here so that the two modules do not import each other)."""

    ended: bool
    open: bool
    clock: Any

    def guarded(self, call: Any, *args: Any) -> None: ...
    def finished(self, direction: Direction) -> None: ...
    def close(self) -> None: ...
    def reset(self) -> None: ...


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
            self.direction.writer.write(data)

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
        writer.registerProducer(self, True)

    # -- the data path

    def head(self) -> Sink:
        return self.stages[0][1] if self.stages else self.end

    def data(self, data: bytes) -> None:
        self.head().write(data)
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
        if self.writer.producer is self:
            self.writer.unregisterProducer()

    # -- the toxics, while the connection is open

    def _link(self) -> None:
        for (_, stage), (_, after) in zip(self.stages, self.stages[1:]):
            stage.next = after
        if self.stages:
            self.stages[-1][1].next = self.end

    def add(self, toxic: Toxic, draw: random.Random, chooser: random.Random) -> None:
        """``toxic`` joins the chain; ``draw`` decides its fate, ``chooser`` its randomness."""
        stage = fate(toxic, draw)(self, dict(toxic.attributes), chooser)
        self.stages.append((toxic, stage))
        self._link()

    def _index(self, name: str) -> int | None:
        return next((i for i, (toxic, _) in enumerate(self.stages) if toxic.name == name), None)

    def remove(self, name: str) -> None:
        index = self._index(name)
        if index is None:
            return
        _, stage = self.stages.pop(index)
        self._link()
        chunks, finishing = stage.detach()
        after: Sink = self.stages[index][1] if index < len(self.stages) else self.end
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
            stage.retune(dict(toxic.attributes))
            self.stages[index] = (toxic, stage)
            return
        self.remove(old.name)
        self.stages.insert(index, (toxic, kind(self, dict(toxic.attributes), chooser)))
        self._link()

    def stop(self) -> None:
        """The connection is gone: every stage's timers stop, what they held is dropped."""
        for _, stage in self.stages:
            stage.detach()
        self.release()

    # -- flow control

    def held(self) -> int:
        return sum(stage.held for _, stage in self.stages)

    def check(self) -> None:
        """Pause the reader while the writer is full or the stages hold too much; else resume it."""
        pause = self.writer_full or self.held() > self.limit
        if pause != self.reader_paused and self.connection.open and not self.read_ended:
            self.reader_paused = pause
            if pause:
                self.reader.pauseProducing()
            else:
                self.reader.resumeProducing()

    def pauseProducing(self) -> None:
        self.writer_full = True
        self.check()

    def resumeProducing(self) -> None:
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
