"""What every client engine reports, and nothing else.

Engines never print: they hand these small immutable events to a sink, and one
reporter (:mod:`poetrynow.report`) turns them into the articles' lines, JSON or a
picture. ``t`` is seconds on the engine's clock (``time.monotonic`` unless a test
passes another), so the reporter can compute every duration itself; ``thread``
and ``began`` say who did the work and how long it took, for Part 1's pictures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from poetrynow.address import Address, ConnectFailed


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """What every event says: which task, which server, and when (the engine's clock).

    Events are keyword-only, so that no engine can put ``t`` where ``nbytes`` goes;
    ``kind`` names the event in ``--json`` and the reporter's ``on_<kind>`` method.
    """

    kind: ClassVar[str] = "event"
    task: int
    address: Address
    t: float
    #: The thread that handled it (``threading.current_thread().name``), for the timeline's lanes.
    thread: str = ""
    #: When the engine began handling it (a read: from the moment it had the data, or, for the
    #: select loop, from the moment select said it could read); ``t - began`` is the work.
    began: float | None = None
    #: For the actors engine, the Erlang-style process that did the work (``<0.5.0>``).
    process: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Started(Event):
    """A task begins: the engine is about to connect to ``address``."""

    kind: ClassVar[str] = "started"


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(Event):
    kind: ClassVar[str] = "connected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Received(Event):
    """``nbytes`` bytes of the poem arrived in one read (or one batch of reads)."""

    kind: ClassVar[str] = "received"
    nbytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished(Event):
    """The server closed the connection: ``poem`` is every byte it sent."""

    kind: ClassVar[str] = "finished"
    poem: bytes

    @property
    def text(self) -> str:
        # Decoded once, whole, so a character split across reads survives.
        return self.poem.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed(Event):
    """The task ended without a poem; ``received`` bytes had arrived before."""

    kind: ClassVar[str] = "failed"
    reason: str
    received: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Transformed(Event):
    """The transform server answered; the Finished event that follows has its result."""

    kind: ClassVar[str] = "transformed"
    transform: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransformFailed(Event):
    """The transform failed; the task keeps the original poem and still finishes."""

    kind: ClassVar[str] = "transformfailed"
    transform: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PoemLine(Event):
    """The lazy engine hands whole lines of a poem on to be printed (in command-line order).

    ``text`` is every line that was ready at once: a line or a read's worth of
    them while the poem streams in, the whole poem when its turn comes after it
    was complete (as ``putStr`` writes an already evaluated string).
    """

    kind: ClassVar[str] = "poemline"
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Restarted(Event):
    """A supervised actor crashed and was started again; ``attempt`` counts the restarts."""

    kind: ClassVar[str] = "restarted"
    reason: str
    attempt: int
    limit: int


Sink = Callable[[Event], None]


def describe_error(error: BaseException) -> str:
    """A one-line reason for a socket error, without Python's noise."""
    if isinstance(error, ConnectFailed):
        return error.summary
    if isinstance(error, OSError):
        # The OS's words for the errno: asyncio's "Connect call failed (...)" is a
        # ConnectionRefusedError whose strerror hides that it was refused.
        if error.errno and error.errno > 0:
            return os.strerror(error.errno)
        if error.strerror:
            return error.strerror
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__
