"""Each toxic type's stage (toxiproxy's toxics), built on :mod:`poetrynow.relay.stages`.

latency, bandwidth, slow_close, timeout, reset_peer, limit_data and slicer, with
toxiproxy's meaning for each attribute, and :func:`fate`: which stage a toxic puts
on one connection (its own, or one that lets everything through, by its toxicity).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from poetrynow.relay.httptoxics import HTTP_STAGES
from poetrynow.relay.stages import Hooks, Queued, Stage
from poetrynow.relay.toxics import Toxic

#: bandwidth sends a tenth of a second's worth at a time, as toxiproxy does.
BANDWIDTH_SLICE = 0.1


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
    for each version of the toxic, so that no fate depends on how the data came in reads). An HTTP
    toxic's stage is always there: it meets each message by the toxicity, not the connection."""
    if toxic.type in HTTP_STAGES:
        return HTTP_STAGES[toxic.type]
    return STAGES[toxic.type] if chooser.random() < toxic.toxicity else Stage


def stage_attributes(toxic: Toxic) -> dict[str, Any]:
    """What a stage is given of its toxic: its attributes; an HTTP toxic's also its toxicity and stream."""
    attributes: dict[str, Any] = dict(toxic.attributes)
    if toxic.type in HTTP_STAGES:
        attributes.update(toxicity=toxic.toxicity, stream=toxic.stream)
    return attributes
