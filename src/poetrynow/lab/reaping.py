"""How the lab learns that a child ended, without the reactor's own signal handlers.

The commands run the reactor with ``installSignalHandlers=False`` (:mod:`poetrynow.stopping`
has SIGINT and SIGTERM), and so without the SIGCHLD handler that tells a process protocol
its child ended. The lab sets one: it hands the reactor a reaper through
``callFromThread`` (safe from a signal handler, and it wakes the loop), with
``siginterrupt(SIGCHLD, False)`` as Twisted's own handler has it (Python retries an
interrupted call anyway, PEP 475; the loop's wait is woken all the same).

The reaper is ``twisted.internet.process.reapAllProcesses``, the module function
Twisted's own handler calls; it is in no interface, so :func:`reaper` checks it is
there and callable, and otherwise reaps each of the lab's children through its process
transport's ``reapProcess``, and failing that says so. A poll every :data:`BACKSTOP`
seconds reaps too, for a signal that came between a fork and its registration. The
handler in place before is put back when the lab stops.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import task
from twisted.logger import Logger

#: Seconds between reaps that no signal asked for.
BACKSTOP = 1.0

log = Logger()


def reaper(transports: Callable[[], Iterable[Any]]) -> Callable[[], None]:
    """Twisted's reaper of every child, or one that asks each of ``transports()`` to reap its own."""
    try:
        from twisted.internet import process

        found = getattr(process, "reapAllProcesses", None)
    except ImportError:
        found = None
    if callable(found):
        return found

    def reap_each() -> None:
        for transport in list(transports()):
            reap = getattr(transport, "reapProcess", None)
            if callable(reap):
                reap()

    log.warn("This Twisted has no reapAllProcesses: the lab reaps each of its children itself")
    return reap_each


class Reaping:
    """The lab's SIGCHLD handler and its backstop, from :meth:`start` to :meth:`stop`."""

    def __init__(self, reactor: Any, transports: Callable[[], Iterable[Any]]):
        self.reactor = reactor
        self.reap = reaper(transports)
        self.before: Any = None
        self.poll = task.LoopingCall(self.reap_now)
        self.poll.clock = reactor

    def reap_now(self) -> None:
        try:
            self.reap()
        except Exception:  # (a reaper that fails costs that reap; the next one tries again)
            log.failure("reaping the lab's children")

    def start(self) -> None:
        call = self.reactor.callFromThread
        before = signal.signal(signal.SIGCHLD, lambda signum, frame: call(self.reap_now))
        self.before = before if before is not None else signal.SIG_DFL  # (None: set outside Python)
        signal.siginterrupt(signal.SIGCHLD, False)
        self.poll.start(BACKSTOP, now=False).addErrback(lambda f: log.failure("the lab's reaping poll", f))

    def stop(self) -> None:
        if self.poll.running:
            self.poll.stop()
        if self.before is not None:
            signal.signal(signal.SIGCHLD, self.before)
            self.before = None
