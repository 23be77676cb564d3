"""What every client engine reports, and nothing else.

Engines never print: they hand these small immutable events to a sink, and one
reporter (:mod:`poetrynow.report`) turns them into the articles' lines, JSON or a
picture. ``t`` is seconds on the engine's clock (``time.monotonic`` unless a test
passes another), so the reporter can compute every duration itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Union

from poetrynow.address import Address


@dataclass(frozen=True)
class Started:
    """A task begins: the engine is about to connect to ``address``."""

    task: int
    address: Address
    t: float


@dataclass(frozen=True)
class Connected:
    task: int
    address: Address
    t: float


@dataclass(frozen=True)
class Received:
    """``nbytes`` bytes of the poem arrived in one read (or one batch of reads)."""

    task: int
    address: Address
    nbytes: int
    t: float


@dataclass(frozen=True)
class Finished:
    """The server closed the connection: ``poem`` is every byte it sent."""

    task: int
    address: Address
    poem: bytes
    t: float

    @property
    def text(self) -> str:
        # Decoded once, whole, so a character split across reads survives.
        return self.poem.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Failed:
    """The task ended without a poem; ``received`` bytes had arrived before."""

    task: int
    address: Address
    reason: str
    t: float
    received: int = 0


@dataclass(frozen=True)
class Transformed:
    """The transform server answered; the Finished event that follows has its result."""

    task: int
    address: Address
    transform: str
    t: float


@dataclass(frozen=True)
class TransformFailed:
    """The transform failed; the task keeps the original poem and still finishes."""

    task: int
    address: Address
    transform: str
    reason: str
    t: float


@dataclass(frozen=True)
class PoemLine:
    """The lazy engine hands one line of a poem on to be printed (in command-line order)."""

    task: int
    address: Address
    text: str
    t: float


@dataclass(frozen=True)
class Restarted:
    """A supervised actor crashed and was started again; ``attempt`` counts the restarts."""

    task: int
    address: Address
    reason: str
    attempt: int
    limit: int
    t: float


Event = Union[Started, Connected, Received, Transformed, TransformFailed, Finished, Failed, PoemLine,
              Restarted]
Sink = Callable[[Event], None]


def describe_error(error: BaseException) -> str:
    """A one-line reason for a socket error, without Python's noise."""
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
