"""Seeing the loop wait: how each engine hands its waits to a trace (``--trace``).

An asynchronous engine spends most of a slow download waiting in one call, the
one that asks the kernel which sockets are ready. Each engine exposes that call
differently, so each is watched its own way, and an engine with no watch set
runs exactly as before:

- the select loop, and asyncio's own loop, wait in a :mod:`selectors` selector;
  :class:`TimedSelector` is the default selector, timing its ``select``. asyncio
  takes a selector publicly (``SelectorEventLoop(selector)``); uvloop waits
  inside libuv, out of Python's sight, so a traced asyncio run uses asyncio's
  own loop and says so;
- the Twisted reactor waits in its poller's ``poll``. The poller is the private
  ``_poller``: :func:`watch_reactor` times it only after checking that it is
  there and has a ``poll``, and otherwise falls back to timing each whole
  ``doIteration`` (the wait and the work it wakes, one slice, the reads inside
  it); docs/design.md lists the name;
- the blocking and threads engines wait in ``recv``: :func:`timed_recv`.
"""

from __future__ import annotations

import select
import selectors
import socket
from collections.abc import Callable
from typing import Any, Protocol


class LoopWatch(Protocol):
    """What an engine tells about its waits (:class:`poetrynow.tracing.RunTrace` is one)."""

    clock: Callable[[], float]

    def waited(self, began: float, ended: float, call: str, ready: int | None = None) -> None: ...


def call_name(selector: selectors.BaseSelector) -> str:
    """The system call a selector waits in: ``epoll``, ``kqueue``, ``poll``, ``select``, ``devpoll``."""
    for cls in type(selector).__mro__:
        name = cls.__name__
        if cls.__module__ == "selectors" and name.endswith("Selector") and not name.startswith("Base"):
            return name[: -len("Selector")].lower() or "select"
    return type(selector).__name__


def timed_wait(watch: LoopWatch, call: str, wait: Callable[..., Any], *args: Any) -> Any:
    """``wait(*args)``, a loop's wait for ready sockets, told to ``watch`` with how many it
    returned (or none, if it raised)."""
    began = watch.clock()
    ready = None
    try:
        ready = wait(*args)
        return ready
    finally:
        watch.waited(began, watch.clock(), call, None if ready is None else len(ready))


class TimedSelector(selectors.DefaultSelector):
    """The platform's default selector, telling ``watch`` how long each ``select`` waited."""

    def __init__(self, watch: LoopWatch):
        super().__init__()
        self.watch = watch
        self.call = call_name(self)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return timed_wait(self.watch, self.call, super().select, timeout)


class TimedPoller:
    """A reactor's poller, timing ``poll``; everything else is the poller's own."""

    def __init__(self, poller: Any, watch: LoopWatch, call: str):
        self.poller, self.watch, self.call = poller, watch, call

    def poll(self, *args: Any) -> Any:
        return timed_wait(self.watch, self.call, self.poller.poll, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.poller, name)


#: The pollers a reactor's ``_poller`` may be and still be timed: epoll's, and poll's.
POLLERS: tuple[type, ...] = tuple(
    kind
    for kind in (getattr(select, "epoll", None), type(select.poll()) if hasattr(select, "poll") else None)
    if kind
)

#: The slice a reactor's iteration is traced as when its poller cannot be reached.
ITERATION = "reactor iteration (wait and work)"


def watch_reactor(reactor: Any, watch: LoopWatch) -> Callable[[], None]:
    """Time ``reactor``'s waits for ``watch``; returns what undoes it (before the reactor is closed).

    The poller is private: only a ``_poller`` the reactor holds itself, and that
    is an epoll or poll object (whose ``poll`` returns the ready list), is
    wrapped. Otherwise each ``doIteration`` (the reactor's public loop step,
    which ``mainLoop`` looks up on each pass) is timed whole.
    """
    poller = vars(reactor).get("_poller")
    if isinstance(poller, POLLERS):
        call = type(poller).__name__.lower()  # epoll, poll
        reactor._poller = TimedPoller(poller, watch, call)

        def undo() -> None:
            reactor._poller = poller

        return undo
    return _watch_iterations(reactor, watch)


def _watch_iterations(reactor: Any, watch: LoopWatch) -> Callable[[], None]:
    """The public way: each of the reactor's iterations, as one slice."""
    iterate = reactor.doIteration

    def timed(delay: float | None) -> None:
        began = watch.clock()
        try:
            iterate(delay)
        finally:
            watch.waited(began, watch.clock(), ITERATION)

    reactor.doIteration = timed

    def undo() -> None:
        del reactor.doIteration

    return undo


def timed_recv(sock: socket.socket, size: int, watch: LoopWatch | None) -> bytes:
    """``sock.recv(size)``, its wait told to ``watch`` when there is one."""
    if watch is None:
        return sock.recv(size)
    began = watch.clock()
    try:
        return sock.recv(size)
    finally:
        watch.waited(began, watch.clock(), "recv")
