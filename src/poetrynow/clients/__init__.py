"""Client engines: each turns addresses into events, and none of them prints.

An engine module has ``run(addresses, sink, options)``; ``ENGINES`` maps the
names ``get-poetry --engine`` accepts to those modules, imported only when used
so that a blocking run never loads Twisted.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from poetrynow.address import Address
from poetrynow.events import Event, Sink

ENGINES = {
    "blocking": "poetrynow.clients.blocking",
    "threads": "poetrynow.clients.threads",
    "select": "poetrynow.clients.select_loop",
    "twisted": "poetrynow.clients.twisted_engine",
    "asyncio": "poetrynow.clients.asyncio_engine",
    "actors": "poetrynow.clients.actors",
    "lazy": "poetrynow.clients.lazy",
}

#: Engines that can send each poem to a transform server (``--xform``).
XFORM = {"threads", "twisted", "asyncio", "actors", "lazy"}

#: Engines that download every poem at once; their ideal is the slowest schedule.
CONCURRENT = {"threads", "select", "twisted", "asyncio", "actors", "lazy"}


@dataclass
class EngineOptions:
    """What every engine honours.

    ``timeout``: seconds with no data before a task fails. ``xform``: the transform
    server to send each poem to, and ``transform`` the name to ask it for.
    ``ordered`` and ``supervise`` are the actors engine's: poems in command-line
    order, and how many times a crashed process is restarted.
    """

    timeout: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic)
    xform: Address | None = None
    transform: str = "cummingsify"
    ordered: bool = False
    supervise: int = 0


def load_engine(name: str):
    """Import an engine's module (Twisted, for one, takes a noticeable fraction of a second)."""
    return importlib.import_module(ENGINES[name])


def run_engine(name: str, addresses: Sequence[Address], sink: Sink,
               options: EngineOptions | None = None) -> None:
    load_engine(name).run(list(addresses), sink, options or EngineOptions())


def drain(events: Iterable[Event], sink: Sink) -> None:
    """Feed a generator engine's events to a sink."""
    for event in events:
        sink(event)
