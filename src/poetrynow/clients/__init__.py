"""Client engines: each turns addresses into events, and none of them prints.

:data:`ENGINES` is the one table of what an engine is: the module that runs it,
the reporter style it prints in, whether it fetches every poem at once, and
which of the optional settings it honours. The CLI, the reporter, the demo and
the benchmarks all read it, so a new engine is a new module and one row here.
Modules are imported only when used, so that a blocking run never loads Twisted.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from poetrynow.address import Address
from poetrynow.clients.errors import DEFAULT_MAX_BYTES, NETWORK_FAILURES
from poetrynow.collector import few_collections
from poetrynow.events import Sink, describe_error

if TYPE_CHECKING:
    from poetrynow.clients.watching import LoopWatch

#: Bytes asked for in one read, by every engine.
READ_SIZE = 65536

log = logging.getLogger("poetrynow.clients")


def no_data(timeout: float | None) -> str:
    """The one-line reason every engine gives when a server goes silent too long."""
    return f"no data for {timeout:g} s"


def read_failure(error: OSError, timeout: float | None) -> str:
    """Why a read ended early: silence past the timeout (a TimeoutError), or the OS's words."""
    return no_data(timeout) if isinstance(error, TimeoutError) else describe_error(error)


def unexpected(problem: BaseException, expected: tuple[type[BaseException], ...] = NETWORK_FAILURES) -> None:
    """Log a catch-all's exception with its traceback, at debug level, unless it is ``expected``.

    A catch-all keeps one task's bug from ending the run, but a bug must not pass
    for a network failure: ``get-poetry --debug`` shows where it came from.
    """
    if not isinstance(problem, expected):
        log.debug("unexpected error in an engine", exc_info=problem)


@dataclass
class EngineOptions:
    """What every engine honours.

    ``timeout``: seconds with no data before a task fails. ``xform``: the transform
    server to send each poem to, and ``transform`` the name to ask it for.
    ``max_bytes``: the largest poem taken; past it the task fails and the
    connection is closed. ``ordered`` and ``supervise`` are the actors engine's: poems in command-line
    order, and how many times a crashed process is restarted.
    """

    timeout: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic)
    xform: Address | None = None
    transform: str = "cummingsify"
    ordered: bool = False
    supervise: int = 0
    max_bytes: int | None = DEFAULT_MAX_BYTES
    #: A poem of any other length fails its task (``--expect-bytes``).
    expect_bytes: int | None = None
    #: Told of each wait in the engine's loop, for a trace (``--trace``); None: not watched.
    watch: LoopWatch | None = None


class Engine(Protocol):
    """What an engine module provides."""

    def run(self, addresses: Sequence[Address], sink: Sink, options: EngineOptions) -> None: ...

    # An engine that runs an event loop may also say which, for ``--json``'s summary
    # (uvloop or asyncio, the reactor's class): ``def event_loop(options=None) -> str``.


#: The optional settings an engine may honour (the names of EngineOptions fields).
XFORM, ORDERED, SUPERVISE = "xform", "ordered", "supervise"
#: Addresses that are client endpoint descriptions (``unix:/path``, ``ssl:...``), not plain TCP.
ENDPOINTS = "endpoints"


@dataclass(frozen=True)
class EngineInfo:
    """One row of the engine table.

    ``style`` is the reporter's output style (:mod:`poetrynow.report`);
    ``concurrent`` engines fetch every poem at once, so their ideal time is the
    slowest schedule, not the sum; ``takes`` names the optional settings it honours.
    """

    name: str
    module_name: str  # under poetrynow.clients
    style: str
    concurrent: bool
    model: str
    takes: AbstractSet[str] = frozenset()

    @property
    def module(self) -> str:
        return f"{__name__}.{self.module_name}"

    def load(self) -> Engine:
        """Import the module (Twisted, for one, takes a noticeable fraction of a second)."""
        return cast(Engine, importlib.import_module(self.module))


def _table(*rows: EngineInfo) -> dict[str, EngineInfo]:
    return {row.name: row for row in rows}


# fmt: off
ENGINES = _table(
    #          name        module          style      concurrent  the model                 settings
    EngineInfo("blocking", "blocking",     "blocking", False, "one poem after another, blocking sockets"),
    EngineInfo("threads",  "threads",      "select",   True,  "a thread per poem, blocking sockets", {XFORM}),
    EngineInfo("select",   "select_loop",  "select",   True,  "one loop over non-blocking sockets"),
    EngineInfo("twisted",  "twisted_engine", "twisted", True, "Deferreds, inlineCallbacks, a DeferredList",
               {XFORM, ENDPOINTS}),
    EngineInfo("asyncio",  "asyncio_engine", "select",  True, "async/await over asyncio streams", {XFORM}),
    EngineInfo("actors",   "actors",       "actors",   True,  "Erlang-style processes, messages, monitors",
               {XFORM, ORDERED, SUPERVISE}),
    EngineInfo("lazy",     "lazy",         "lazy",     True,  "Haskell-style lazy streams of lines", {XFORM}),
)
# fmt: on


def engines_taking(setting: str) -> list[str]:
    """The names of the engines that honour ``setting``, sorted."""
    return sorted(name for name, info in ENGINES.items() if setting in info.takes)


def load_engine(name: str) -> Engine:
    return ENGINES[name].load()


def run_engine(
    name: str, addresses: Sequence[Address], sink: Sink, options: EngineOptions | None = None
) -> None:
    engine = load_engine(name)
    with few_collections():
        engine.run(list(addresses), sink, options or EngineOptions())
