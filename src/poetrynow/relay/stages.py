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

Only a stage that must wait holds bytes (``held``): the direction pauses its
reader while its stages hold more than a limit, so a toxic's queue is bounded
like every other buffer. And only a stage with something to wait for has a
timer: an idle connection through any toxic costs no wake-ups.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Protocol

from poetrynow.relay.toxics import Toxic

#: bandwidth sends a tenth of a second's worth at a time, as toxiproxy does.
BANDWIDTH_SLICE = 0.1


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


class Stage:
    """A toxic that lets everything through at once: the base, and a toxic that missed its toxicity."""

    held = 0  # bytes this stage holds, for the direction's limit
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


class Latency(Queued):
    """Each chunk waits latency ± jitter ms; later chunks never overtake earlier ones."""

    def __init__(self, hooks: Hooks, attributes: dict[str, int], chooser: random.Random):
        self.dues: deque[float] = deque()
        super().__init__(hooks, attributes, chooser)

    def delay(self) -> float:
        latency, jitter = self.attributes["latency"], self.attributes["jitter"]
        wobble = self.chooser.uniform(-jitter, jitter) if jitter else 0.0
        return max(latency + wobble, 0) / 1000

    def hold_until(self, data: bytes | None, due: float) -> None:
        if self.dues:
            due = max(due, self.dues[-1])
        self.dues.append(due)
        self.hold(data)
        if self.idle():
            self.arm(due - self.hooks.now(), self.send)

    def write(self, data: bytes) -> None:
        delay = self.delay()
        if not delay and not self.queue:
            self.next.write(data)
            return
        self.hold_until(data, self.hooks.now() + delay)

    def finish(self) -> None:
        if not self.queue:
            self.next.finish()
            return
        self.hold_until(None, self.dues[-1])

    def send(self) -> None:
        self.timer = None
        now = self.hooks.now()
        while self.queue and self.dues[0] <= now:
            if self.queue[0] is not None and self.stall():
                return
            self.dues.popleft()
            self.pop()
        if self.queue and self.timer is None:
            self.arm(self.dues[0] - now, self.send)

    def detach(self) -> tuple[list[bytes], bool]:
        self.dues.clear()
        return super().detach()


class Bandwidth(Queued):
    """At most ``rate`` KB (1000 bytes) a second: a tenth of a second's worth, then a wait."""

    def write(self, data: bytes) -> None:
        self.paced(data, bool(self.attributes["rate"]))

    def send(self) -> None:
        self.timer = None
        rate = self.attributes["rate"] * 1000
        while self.queue:
            if self.queue[0] is None:
                self.pop()
                return
            if self.stall():
                return
            if rate:
                sent = self.take(max(int(rate * BANDWIDTH_SLICE), 1))
                self.arm(sent / rate, self.send)
                return
            self.pop()  # the rate was updated to 0: no limit


class SlowClose(Queued):
    """The FIN waits ``delay`` ms; the data goes on at once."""

    def finish(self) -> None:
        if self.queue:  # (a FIN already held: a second one is no news)
            return
        self.hold(None)
        self.arm(self.attributes["delay"] / 1000, self.pop)


class Timeout(Queued):
    """Nothing gets through; ``timeout`` ms after the toxic meets the connection it is closed, and
    at the reader's FIN too, as toxiproxy's timeout does: what later toxics hold goes first.

    With 0 the connection stays open, its data dropped, until the toxic is removed
    or the reader's FIN comes.
    """

    expired = False

    def retune(self, attributes: dict[str, int]) -> None:
        super().retune(attributes)
        self.disarm()
        if attributes["timeout"] and not self.expired:
            self.arm(attributes["timeout"] / 1000, self.expire)

    def write(self, data: bytes) -> None:
        pass

    def finish(self) -> None:
        self.expire()

    def expire(self) -> None:
        self.disarm()
        if not self.expired:
            self.expired = True
            self.hooks.closing()
            self.next.finish()


class ResetPeer(Queued):
    """At the first data (or FIN) after the toxic meets the connection, the data is dropped and,
    ``timeout`` ms later, the connection reset, as toxiproxy's reset_peer does."""

    def write(self, data: bytes) -> None:
        if self.timer is None:
            self.arm(self.attributes["timeout"] / 1000, self.hooks.reset)

    def finish(self) -> None:
        self.write(b"")


class LimitData(Stage):
    """``bytes`` bytes get through (counted across updates), then a FIN that closes the connection
    once it is written: what later toxics hold goes first, as toxiproxy's EOF down the chain does."""

    passed = 0
    ended = False

    def write(self, data: bytes) -> None:
        if self.ended:
            return
        room = max(self.attributes["bytes"] - self.passed, 0)
        if room:
            self.passed += min(room, len(data))
            self.next.write(data[:room])
        if self.passed >= self.attributes["bytes"]:
            self.ended = True
            self.hooks.closing()
            self.next.finish()

    def finish(self) -> None:
        if not self.ended:
            self.ended = True
            self.next.finish()


class Slicer(Queued):
    """Chunks cut into slices of average_size ± size_variation bytes, ``delay`` µs apart.

    A slice is cut as it is sent, so a chunk held costs one object, whatever the slice size.
    """

    def size(self) -> int:
        average, variation = self.attributes["average_size"], self.attributes["size_variation"]
        if not average:
            return 1 << 62  # the whole chunk
        return max(average + (self.chooser.randint(-variation, variation) if variation else 0), 1)

    def write(self, data: bytes) -> None:
        self.paced(data, bool(self.attributes["average_size"]))

    def send(self) -> None:
        self.timer = None
        while self.queue and not self.detached:
            if self.queue[0] is None:
                self.pop()
                return
            if self.stall():
                return
            self.take(self.size())
            if self.attributes["delay"]:
                if self.queue:
                    self.arm(self.attributes["delay"] / 1_000_000, self.send)
                return


STAGES: dict[str, type[Stage]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "limit_data": LimitData,
    "slicer": Slicer,
}


def fate(toxic: Toxic, chooser: random.Random) -> type[Stage]:
    """The stage ``toxic`` puts on a connection: its own, or one that lets all through when the
    connection falls outside the toxic's toxicity (decided by ``chooser``, a generator of its own
    for each version of the toxic, so that no fate depends on how the data came in reads)."""
    return STAGES[toxic.type] if chooser.random() < toxic.toxicity else Stage
