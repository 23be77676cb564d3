"""Stopping on SIGINT (Ctrl-C) and SIGTERM: one exception every command and engine shares.

The commands install :func:`interrupt_on_signals`; the signal then raises
:class:`Interrupted` in the main thread wherever it is (a blocking recv, a select
loop, asyncio's loop), and the ``finally`` blocks on the way out close sockets and
stop servers. Event loops that swallow exceptions from signal handlers (Twisted's
reactor logs and goes on) use :func:`on_signals` to stop themselves instead, and
raise Interrupted once they have.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM arrived: the command stops, closing what it holds on the way out.

    A KeyboardInterrupt, so that no ``except Exception`` takes it for a failure and
    goes on, and so that asyncio, which swallows any other exception raised while a
    transport reads ("Fatal read error"), lets it through as it does Ctrl-C. The exit
    status is the shell's: 128 + the signal (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def status(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


STOPPING = (signal.SIGINT, signal.SIGTERM)

#: The signals that have asked this process to stop: once one has, what an engine's
#: shutdown does to the downloads under way is not news (the command says it in one line).
requested: list[int] = []


def interrupt_on_signals() -> None:
    """Make SIGINT and SIGTERM raise :class:`Interrupted` in the main thread."""

    def interrupt(signum, frame):
        requested.append(signum)
        raise Interrupted(signum)

    for signum in STOPPING:
        signal.signal(signum, interrupt)


@contextmanager
def on_signals(stop: Callable[[int], None]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``stop(signum)`` instead; the old handlers come back after.

    Only in the main thread, where Python runs signal handlers; elsewhere it does nothing.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOPPING}

    def handle(number, frame):
        requested.append(number)
        stop(number)

    for signum in STOPPING:
        signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def reactor_stopped_by_signals(reactor) -> Iterator[list[int]]:
    """While inside, SIGINT and SIGTERM stop ``reactor``; the list says which signal came, if any.

    Twisted's reactor logs an exception raised in a signal handler and goes on, so
    the signal is remembered and the reactor stopped (closing every connection); the
    caller raises or reports it once the reactor has returned.
    """
    caught: list[int] = []

    def stop(signum: int) -> None:
        caught.append(signum)
        reactor.callFromThread(reactor.stop)

    with on_signals(stop):
        yield caught
