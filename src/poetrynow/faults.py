"""Faults on demand for the slow server: each connection's life as a plan, without I/O.

A client tester wants a server that misbehaves the same way every time: one that
stalls after 300 bytes, closes early, resets, jitters its pace, holds a new
connection before the first byte, or takes its time over the close, for every
connection or for a share of them. :func:`plan` turns the server's pace
(``num_bytes`` every ``delay`` seconds, or ``rate`` bytes a second) and the
:class:`Faults` asked for into one connection's whole life: the chunks to send,
when each is due from the connection's start, and how it ends. The slow
server's protocol only carries the plan out, so the faults are tested with
task.Clock, and ``seed`` makes the same connections (by their number since the
server started) fail the same way on every run.

The plan keeps the schedule's shape (:mod:`poetrynow.schedule`): the first chunk
as the client connects, one every delay after, and the close one delay after the
last.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: How a connection ends.
CLOSE, RESET, STALL = "close", "reset", "stall"


@dataclass(frozen=True)
class Faults:
    """What ``slowpoetry --concurrent`` was asked to do wrong (all off by default)."""

    jitter: float = 0.0  # each gap varies uniformly by up to this many seconds, either way
    stall_after: int | None = None  # bytes; then send nothing...
    stall_for: float | None = None  # ...for this long, then go on (None: until the client gives up)
    close_after: int | None = None  # bytes; then a clean close: a truncated poem
    reset_after: int | None = None  # bytes; then a TCP reset
    slow_close: float = 0.0  # seconds between the last byte and the close
    accept_delay: float = 0.0  # seconds between the connection and its first byte
    faulty: float = 1.0  # the share of connections the faults apply to
    seed: int | None = None  # the same connections fail the same way on every run

    @property
    def any(self) -> bool:
        """Whether any fault was asked for (else every connection shares one plan)."""
        return bool(
            self.jitter
            or self.stall_after is not None
            or self.close_after is not None
            or self.reset_after is not None
            or self.slow_close
            or self.accept_delay
        )

    def chooser(self, connection: int) -> random.Random:
        """The random numbers of connection number ``connection``: fixed by the seed, if any."""
        return random.Random(f"{self.seed}:{connection}") if self.seed is not None else random.Random()


@dataclass(frozen=True)
class Plan:
    """One connection's life: ``chunks[i]`` at ``dues[i]`` seconds from its start, then ``ending``
    at ``dues[-1]`` (``dues`` has one more entry than ``chunks``)."""

    chunks: tuple[bytes, ...]
    dues: tuple[float, ...]
    ending: str = CLOSE
    faulty: bool = False

    @property
    def sent(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    def fate(self, size: int) -> str:
        """One line for the log: what this connection was given."""
        sent = self.sent
        if self.ending == RESET:
            return f"reset after {sent} bytes"
        if self.ending == STALL:
            return f"stalled after {sent} bytes, until the client gives up"
        if sent < size:
            return f"closed after {sent} of {size} bytes"
        return f"whole poem, {size} bytes"


def gap_after(chunk: int, delay: float, rate: float | None) -> float:
    """Seconds from a chunk of ``chunk`` bytes to the next: ``delay``, or by bandwidth at ``rate``."""
    return chunk / rate if rate else delay


def plan(
    poem: bytes,
    num_bytes: int,
    delay: float,
    faults: Faults = Faults(),
    connection: int = 0,
    rate: float | None = None,
) -> Plan:
    """Connection number ``connection``'s plan for ``poem``, with its share of ``faults``."""
    chooser = faults.chooser(connection)
    faulty = faults.any and chooser.random() < faults.faulty
    if not faulty:
        faults = Faults()
    cuts = sorted(
        {cut for cut in (faults.stall_after, faults.close_after, faults.reset_after) if cut is not None}
    )
    chunks: list[bytes] = []
    dues: list[float] = []
    t = faults.accept_delay
    sent = 0
    stalled = False
    while sent < len(poem):
        if faults.stall_after is not None and sent >= faults.stall_after and not stalled:
            if faults.stall_for is None:
                return Plan(tuple(chunks), (*dues, t), STALL, faulty)
            stalled = True
            t += faults.stall_for
        for cut, ending in ((faults.reset_after, RESET), (faults.close_after, CLOSE)):
            if cut is not None and sent >= cut:
                return Plan(tuple(chunks), (*dues, t), ending, faulty)
        # A chunk ends early at a fault's byte count, so the count is exact.
        end = min([sent + num_bytes, len(poem)] + [cut for cut in cuts if cut > sent])
        chunks.append(poem[sent:end])
        dues.append(t)
        sent = end
        t += gap_after(len(chunks[-1]), delay, rate)
        if faults.jitter:
            t = max(dues[-1], t + chooser.uniform(-faults.jitter, faults.jitter))
    if faults.reset_after is not None and sent >= faults.reset_after:
        return Plan(tuple(chunks), (*dues, t), RESET, faulty)
    return Plan(tuple(chunks), (*dues, t + faults.slow_close), CLOSE, faulty)
