"""The slow servers' pacing, as plain arithmetic any server can drive.

Part 2's server sends ``num_bytes`` every ``delay`` seconds and, after the last
chunk, waits one more delay before it finds nothing left and closes. So a poem of
``size`` bytes is served in ``ceil(size / num_bytes) * delay`` seconds: 3003 bytes
at 30 a chunk takes 10.1 s, which is the article's 10.126 s. Chunk ``i`` is due at
``i * delay`` from the connection's start; measuring from that start, not from the
previous send, keeps the schedule from drifting.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class PoemSchedule:
    size: int
    num_bytes: int = 10
    delay: float = 0.1

    def __post_init__(self):
        if self.num_bytes < 1:
            raise ValueError("num_bytes must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    @property
    def chunks(self) -> int:
        return math.ceil(self.size / self.num_bytes)

    @property
    def duration(self) -> float:
        """Seconds from connection to close."""
        return self.chunks * self.delay

    def due(self, index: int) -> float:
        """When chunk ``index`` is due; ``index == chunks`` is when to close."""
        return index * self.delay

    def span(self, index: int) -> tuple[int, int]:
        """``(start, end)`` byte offsets of chunk ``index``; past the last chunk, empty at the end."""
        start = min(index * self.num_bytes, self.size)
        return start, min(start + self.num_bytes, self.size)

    def slices(self) -> Iterator[tuple[int, int]]:
        """``(start, end)`` byte offsets of each chunk, in order."""
        return (self.span(index) for index in range(self.chunks))


def ideal_total(schedules, concurrent: bool, per_poem: float = 0.0, cores: int | None = None) -> float:
    """The fastest a client could possibly be against these servers.

    A blocking client waits for each server in turn (the sum); a concurrent one
    only for the slowest (the maximum). ``per_poem``: seconds each poem costs once
    it has arrived (a transform of Part 20), at best overlapped with the others;
    with ``cores`` (CPU work), at most that many at once: each poem, in the order
    they arrive, on the core free first (for transforms of one length, none faster).
    """
    durations = [s.duration for s in schedules]
    if not durations:
        return 0.0
    if not concurrent:
        return sum(d + per_poem for d in durations)
    if cores is None or per_poem <= 0:
        return max(durations) + per_poem
    free = [0.0] * max(1, cores)  # when each core is next free
    for arrived in sorted(durations):
        first = free.index(min(free))
        free[first] = max(free[first], arrived) + per_poem
    return max(free)
