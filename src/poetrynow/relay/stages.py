"""What each toxic does to one direction of one connection, as a stage between a reader and a writer.

A direction of a relayed connection is a chain: the reader's bytes go into the
first stage, each stage passes what it lets through to the next, and the last
one writes to the other peer. A stage sees three things, ``write(data)``,
``finish()`` (the reader's FIN, in order after its data) and, when its toxic is
removed or a connection ends, ``detach()``; it acts through :class:`Hooks`: a
clock for its timers, ``close`` and ``reset`` for the whole connection,
``closing`` to make the FIN it passes on close the connection once written (so
later toxics let out what they hold first, as toxiproxy's EOF down the chain
does), ``moved`` to say that bytes it held have gone on (so a paused reader may
resume), and ``blocked`` to learn that the writer is full (then a stage sends
nothing until ``resume``). No sockets here, so each toxic is tested with task.Clock.
Here are the stage every toxic builds on and the queue most of them share; what
each toxic type does is :mod:`poetrynow.relay.kinds`.

Only a stage that must wait holds bytes (``held``): the direction pauses its
reader while its stages hold more than a limit, so a toxic's queue is bounded
like every other buffer. And only a stage with something to wait for has a
timer: an idle connection through any toxic costs no wake-ups.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Protocol


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...
    def finish(self) -> None: ...


class Hooks(Protocol):
    """What a stage may ask of its direction and its connection."""

    def later(self, seconds: float, call: Any) -> Any: ...  # an IDelayedCall
    def now(self) -> float: ...
    def close(self) -> None: ...  # the whole connection, with FINs
    def closing(self) -> None: ...  # the FIN passed on next closes the connection when it is written
    def reset(self) -> None: ...  # the whole connection, with RSTs
    def moved(self) -> None: ...  # held bytes went on
    def blocked(self) -> bool: ...  # the writer is full: held bytes wait until resume()
    def answer(self, asked: Any, data: bytes, code: int) -> None: ...  # an HTTP answer, in its turn
    def framer_after(self, stage: Any) -> Any: ...  # the next HTTP stage that frames, or None
    def leave(self, stage: Any) -> None: ...  # a stage whose toxic was removed goes, its message over
    def forget(self, asked: Any) -> None: ...  # a request swallowed will never be answered
    def http_fault(
        self, why: str, malformed: bool | None
    ) -> None: ...  # not HTTP (passed on), or malformed (reset)


class Stage:
    """A toxic that lets everything through at once: the base, and a toxic that missed its toxicity."""

    held = 0  # bytes this stage holds, for the direction's limit
    joined = False  # it joined a direction that had carried bytes already
    leaving = False  # its toxic was removed; it stays until the message under way ends
    next: Sink

    def __init__(self, hooks: Hooks, attributes: dict[str, int], chooser: random.Random):
        self.hooks, self.chooser = hooks, chooser
        self.retune(attributes)

    def retune(self, attributes: dict[str, int]) -> None:
        """The toxic was updated: its new attributes apply to what comes next."""
        self.attributes = attributes

    def write(self, data: bytes) -> None:
        self.next.write(data)

    def finish(self) -> None:
        self.next.finish()

    def resume(self) -> None:
        """The writer has drained: what waited for it may go on."""

    def throttled(self) -> bool:
        """Whether it holds the reader back (the relay's HTTP watcher, its ledger full)."""
        return False

    def framing(self) -> bool:
        """Whether it frames HTTP messages (an HTTP toxic's stage, until its stream is raw)."""
        return False

    def holds(self) -> bool:
        """Whether it holds bytes (or anything else) not yet passed on."""
        return self.held > 0

    def behind(self) -> None:
        """It joined a chain whose stages before it held messages under way (see HttpStage)."""

    def lingers(self) -> bool:
        """Whether, its toxic removed, it must stay until the message under way has ended."""
        return False

    def detach(self) -> tuple[list[bytes], bool]:
        """The stage leaves (its toxic removed, the connection gone): its timers stop, and what it
        held comes back, with whether the reader's FIN was among it, for the next stage to take."""
        return [], False


class Queued(Stage):
    """A stage that holds chunks (and the FIN, as ``None``) and sends them on from one timer.

    While the writer is full (``hooks.blocked()``) it sends nothing: a timer that
    fires then stalls the stage, and :meth:`resume` carries on when the writer
    drains, so what a direction holds stays within its limit. The first chunk may
    be sent in pieces (bandwidth, slicer): ``offset`` is how much of it has gone,
    so a piece costs a slice of the chunk, not a copy of the rest.
    """

    def __init__(self, hooks: Hooks, attributes: dict[str, int], chooser: random.Random):
        self.queue: deque[bytes | None] = deque()
        self.offset = 0
        self.timer: Any = None
        self.detached = False
        self.stalled = False
        super().__init__(hooks, attributes, chooser)

    def hold(self, data: bytes | None) -> None:
        self.queue.append(data)
        self.held += len(data) if data else 0

    def take(self, size: int) -> int:
        """Send on at most ``size`` bytes of the first chunk held; how many went."""
        first = self.queue[0]
        assert first is not None
        piece = first[self.offset : self.offset + size]
        self.offset += len(piece)
        if self.offset >= len(first):
            self.queue.popleft()
            self.offset = 0
        self.held -= len(piece)
        self.next.write(piece)
        self.hooks.moved()
        return len(piece)

    def pop(self) -> None:
        """Send the first thing held on."""
        first = self.queue[0]
        if first is None:
            self.queue.popleft()
            self.next.finish()
            return
        self.take(len(first) - self.offset)

    def stall(self) -> bool:
        """Whether data must wait for the writer to drain; if so the stage waits for resume()."""
        self.stalled = self.hooks.blocked()
        return self.stalled

    def send(self) -> None:
        """Send on what is due (each stage's own pace)."""

    def resume(self) -> None:
        if self.stalled and not self.detached:
            self.stalled = False
            self.send()

    def arm(self, seconds: float, call: Any) -> None:
        if not self.detached:  # (what it just sent on may have ended the connection)
            self.timer = self.hooks.later(max(seconds, 0.0), call)

    def disarm(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def holds(self) -> bool:
        return bool(self.queue)

    def idle(self) -> bool:
        """Nothing is paced: a new chunk or FIN may start the sending."""
        return self.timer is None and not self.stalled

    def paced(self, data: bytes, active: bool) -> None:
        """Hold ``data`` and send it in its turn (:meth:`send`); straight on while the toxic
        is set to do nothing (rate 0, size 0) and holds nothing from before."""
        if not active and not self.queue:
            self.next.write(data)
            return
        self.hold(data)
        if self.idle():
            self.send()

    def finish(self) -> None:
        """The FIN goes on at once when nothing is held or paced, else after what is held."""
        if not self.queue and self.idle():
            self.next.finish()
            return
        self.hold(None)

    def detach(self) -> tuple[list[bytes], bool]:
        self.detached = True
        self.disarm()
        chunks = [data for data in self.queue if data is not None]
        if chunks and self.offset:
            chunks[0] = chunks[0][self.offset :]
        finishing = None in self.queue
        self.queue.clear()
        self.offset = self.held = 0
        return chunks, finishing
