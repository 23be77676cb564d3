"""Stopping and closing a reactor of one's own, as the twisted engine runs one per run.

A reactor opens three descriptors when it is made: its poller (an epoll
descriptor) and its waker (a pipe, which another thread or a signal handler
writes to wake the loop). Nothing in Twisted closes them when the reactor
stops: the global reactor lives as long as the process. A reactor per run
must close them itself, or each run costs three descriptors until the
collector frees the reactor, and the waker's two for good.

The waker is the reactor's ``waker`` attribute, an IReadDescriptor whose
``connectionLost`` closes its pipe. The attribute is in no interface of
Twisted's, so it is checked too: used only when it provides IReadDescriptor,
else left to the collector. The poller is not public either:
:func:`private_poller` checks, reactor by reactor, that ``_poller`` is still an
epoll object, and if it is not, leaves it to the collector, which closes an
epoll object when it frees it (docs/design.md, private names).
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

from twisted.internet.error import ConnectionDone, ReactorNotRunning
from twisted.internet.interfaces import IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer


def stop_reactor(reactor: Any) -> None:
    """``reactor.stop()``, unless it is stopping already (a signal came as the run ended by itself)."""
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


def private_poller(reactor: Any) -> Any | None:
    """The reactor's epoll object when its private ``_poller`` is one, else None."""
    epoll = getattr(select, "epoll", None)
    poller = getattr(reactor, "_poller", None)
    if epoll is not None and isinstance(poller, epoll):
        return poller
    return None


def close_reactor(reactor: Any) -> None:
    """Close the descriptors a stopped reactor still holds: its waker's pipe and its poller."""
    waker = getattr(reactor, "waker", None)
    if IReadDescriptor.providedBy(waker):
        reactor.removeReader(waker)
        waker.connectionLost(Failure(ConnectionDone()))
        reactor.waker = None
    poller = private_poller(reactor)
    if poller is not None:
        poller.close()


@implementer(IReadDescriptor)
class Readable:
    """A descriptor the reactor watches for us, calling ``on_readable`` when it can be read.

    Not a transport: it owns nothing, and whoever watches it closes the descriptor.
    The reactor drops every reader when it shuts down (``disconnectAll``), calling
    ``connectionLost``; after that it is simply no longer watched.
    """

    def __init__(self, fd: int, on_readable: Callable[[], None]):
        self.fd, self.on_readable = fd, on_readable

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        self.on_readable()

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "signal wake-up"


def watching(reactor: Any) -> Callable[[int, Callable[[], None]], Callable[[], None]]:
    """``reactor`` as a :data:`poetrynow.stopping.Watch`: addReader, and removeReader to stop."""

    def watch(fd: int, on_readable: Callable[[], None]) -> Callable[[], None]:
        readable = Readable(fd, on_readable)
        reactor.addReader(readable)
        return lambda: reactor.removeReader(readable)

    return watch
