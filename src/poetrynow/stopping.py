"""Stopping on SIGINT (Ctrl-C) and SIGTERM: one exception, and two ways to get to it.

Python runs a signal handler in the main thread, between two steps of whatever
that thread was doing. What the handler may do there depends on what kind of
program it interrupts, and so there are two ways, one for each kind:

- A blocking program waits inside one call (a ``recv``, a ``sleep``, a ``select``)
  and only an exception gets it out of there. :func:`interrupt_on_signals` makes
  both signals raise :class:`Interrupted` wherever the main thread is; the
  ``finally`` blocks on the way out close sockets and stop servers.
  ``get-poetry``, ``poetrynow demo`` and the blocking ``slowpoetry`` install it
  before they start: the blocking, threads and select engines, the demo and the
  blocking server are stopped that way.
- An event loop must be stopped from inside the loop. An exception raised in the
  handler would land in the middle of the loop's own bookkeeping: Twisted's
  reactor logs it and goes on, and asyncio can be left with a task that waits for
  ever. While :func:`loop_stopped_by_signals` is in force (the twisted engine, the
  Twisted servers' ``serve``, and ``clients.aio.run`` under the asyncio, actors and
  lazy engines), a signal is only noted, and the loop is handed, through its
  thread-safe way in, the call that stops it: ``reactor.stop``, or a cancel of the
  main task. Once the loop has returned, the caller raises (or reports)
  Interrupted for the signal noted.

A second signal while the first one's stop is under way (Ctrl-C pressed again,
SIGTERM after SIGINT) finishes the same stop: it is noted and changes nothing,
in either way. The stop is short and bounded (the reactor closes what it holds,
asyncio's tasks get :data:`~poetrynow.clients.aio.STOP_WITHIN`), it ends with the
one line that says what was cut short and the first signal's status (130 or
143), and it resets the connections a server cuts short; forcing the exit at
once would lose the line, and would let the kernel close those connections
cleanly, so that a client takes half a poem for a whole one. Handing the loop
its stop a second time was worse: Twisted's second ``reactor.stop`` raises
ReactorNotRunning, and a signal raised after the loop lands anywhere, in the
interpreter's shutdown too.

A stop under way belongs to the run it stopped. :func:`begin` forgets it when a
new run starts: a process that goes on after one stop (the tests, the demo's
runs) reports the next run's failures, and stops on its next signal.

Over 300 lines as one piece: every way a process of the project is told to stop (a
signal in a blocking program, a signal in a loop, its parent's death) ends in the same
Interrupted and the same :func:`begin`, so that a reader checking that nothing
outlives its owner reads them side by side.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
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

#: The signals that have asked the run under way to stop, the first one first: once one
#: has, what an engine's shutdown does to the downloads under way is not news (the
#: command says it in one line), and a later signal only finishes the same stop.
requested: list[int] = []


def begin() -> None:
    """A new run starts with no stop under way: forget the signals that stopped an earlier one.

    Only in the main thread, which is where the signals are handled; a run in
    another thread leaves the main thread's stop alone.
    """
    if threading.current_thread() is threading.main_thread():
        requested.clear()


def _again(signum: int) -> bool:
    """Note ``signum``; True when a stop was under way already, so that this one changes nothing."""
    under_way = bool(requested)
    requested.append(signum)
    return under_way


def interrupt_on_signals() -> None:
    """Make SIGINT and SIGTERM raise :class:`Interrupted` in the main thread: for blocking programs.

    Only the first: one that comes while the stop is under way (in an ``except``
    or a ``finally`` on the way out, in the interpreter's own shutdown) must not
    raise there too.
    """
    begin()
    stacks_on_sigusr1()
    # Before the handlers: a starter already gone ends this process by SIGTERM's default, at
    # once, before it has started anything (after them, Interrupted would be raised here,
    # outside the command's own handling of it).
    end_with_parent()

    def interrupt(signum, frame):
        if not _again(signum):
            raise Interrupted(signum)

    for signum in STOPPING:
        signal.signal(signum, interrupt)


#: Set by a program that starts one of our commands as its helper (the demo's servers):
#: the pid that the command must not outlive.
END_WITH = "POETRYNOW_END_WITH"


def end_with_parent() -> bool:
    """A helper whose starter dies gets SIGTERM, and stops as for Ctrl-C; True when so armed.

    Only when :data:`END_WITH` names this process's parent; the variable is taken out
    of the environment once read, so that what this process starts does not inherit
    it. On Linux through ``PR_SET_PDEATHSIG``, asked of the C library: nothing runs
    meanwhile, no thread and no timer (a live second thread slows a burst's accepts:
    docs/benchmarks.md, "A cold burst"). The starter must start its helpers from a
    thread that lives as long as it does (the kernel's signal follows the thread), as
    the demo's main thread does. A starter that died before the request was made is
    seen at once. Elsewhere (macOS), or where the C library refuses, a thread watches
    the parent's pid (:func:`end_when_orphaned`), armed once per process.
    """
    global _watching
    wanted = os.environ.pop(END_WITH, "")
    if not wanted.isdecimal():
        return _watching
    parent = int(wanted)
    if sys.platform.startswith("linux") and parent_death_signal(signal.SIGTERM):
        _watching = True
        if os.getppid() != parent:  # it died first: the signal will never come
            os.kill(os.getpid(), signal.SIGTERM)
        return True
    if not _watching:
        end_when_orphaned(parent, lambda: os.kill(os.getpid(), signal.SIGTERM))
        _watching = True
    return True


#: Whether :func:`end_with_parent` has armed a watch (the kernel's, or a pid watch) already.
_watching = False


def parent_death_signal(signum: int) -> bool:
    """Ask Linux for ``signum`` when this process's parent thread ends; False where it will not."""
    prctl = prctl_call()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0


PR_SET_PDEATHSIG = 1


def prctl_call() -> Callable[..., int] | None:
    """The C library's prctl, declared, or None off Linux: looked up before a fork, so that a
    child between fork and exec only calls it (no import, no dlopen there)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        prctl.restype = ctypes.c_int
        return prctl
    except (OSError, AttributeError):
        return None


#: How often a watch looks for its parent: a parent killed outright takes its children
#: with it within this (and whatever the child is in the middle of).
PARENT_CHECK_EVERY = 0.5


def end_when_orphaned(
    parent: int, end: Callable[[], object], check_every: float = PARENT_CHECK_EVERY
) -> threading.Thread:
    """Call ``end`` once ``parent`` is no longer this process's parent, from a thread of its own.

    A parent killed by SIGKILL (or by a crash) has no stop to pass on; the kernel gives
    its orphans a new parent, so the parent's pid changing is the sign, on Linux and
    macOS alike.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(check_every)
        end()

    thread = threading.Thread(target=watch, name="parent watch", daemon=True)
    thread.start()
    return thread


def stacks_on_sigusr1() -> None:
    """SIGUSR1 prints every thread's stack on stderr, and the command goes on.

    For a command that does not stop when asked (it should never happen): ``kill
    -USR1 PID`` shows where it is; the tests send it to a child that outlives its
    deadline before they kill it, so the failure says where it hung.
    """
    import faulthandler
    import sys

    if not hasattr(signal, "SIGUSR1") or threading.current_thread() is not threading.main_thread():
        return
    if sys.__stderr__ is None:  # started with stderr closed: nowhere to print them
        return
    try:  # the process's own stderr, even while sys.stderr is a test's buffer
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    except (AttributeError, ValueError, OSError, RuntimeError):  # no stderr with a descriptor (pythonw)
        pass


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait (in this thread) until the block is done, then arrive.

    For a few writes that must not be cut in two, a file's closing lines say: a
    Ctrl-C that lands between them would leave it broken. Where the system cannot
    hold signals, the block runs as it is.
    """
    hold = getattr(signal, "pthread_sigmask", None)
    if hold is None:
        yield
        return
    before = hold(signal.SIG_BLOCK, STOPPING)
    try:
        yield
    finally:
        hold(signal.SIG_SETMASK, before)


#: How a loop watches a descriptor: ``watch(fd, on_readable)`` calls ``on_readable()`` from
#: the loop whenever ``fd`` can be read, until the function it returns is called.
Watch = Callable[[int, Callable[[], None]], Callable[[], None]]


@contextmanager
def loop_stopped_by_signals(
    call_in_loop: Callable[[Callable[[], object]], object],
    stop: Callable[[], object],
    watch: Watch,
) -> Iterator[list[int]]:
    """While inside, SIGINT and SIGTERM have an event loop call ``stop()``; the list says which came.

    ``call_in_loop`` is the loop's way in from a signal handler:
    ``reactor.callFromThread`` or ``loop.call_soon_threadsafe``; ``watch`` is how
    the loop watches a descriptor (:data:`Watch`), so that a signal wakes it
    (:func:`loop_woken_by_signals`). The handlers in place before (in a command,
    those of :func:`interrupt_on_signals`) come back after. Only in the main
    thread, where Python runs signal handlers; elsewhere nothing changes. The loop
    is handed ``stop`` once: a later signal finishes the same stop.
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    begin()
    previous = {signum: signal.getsignal(signum) for signum in STOPPING}

    def handle(number, frame):
        if _again(number):
            return
        caught.append(number)
        call_in_loop(stop)

    for signum in STOPPING:
        signal.signal(signum, handle)
    try:
        with loop_woken_by_signals(watch):
            yield caught
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def loop_woken_by_signals(watch: Watch) -> Iterator[None]:
    """While inside, a signal wakes the loop, whichever thread the kernel gave it to.

    Python runs a signal's handler in the main thread, when that thread next runs
    Python code. The kernel may hand the signal to any thread (a resolver's, a
    thread pool's); then nothing interrupts the main thread's wait in epoll, and
    the handler waits with it, until some other event comes: a server with no
    clients stopped only when the next one connected. So the signal's number is
    also written to a pipe (``signal.set_wakeup_fd``) that the loop itself watches:
    the loop wakes, empties the pipe, and the handler runs. Twisted's own signal
    handling does the same with its waker.

    The loop, not a thread of ours, reads the pipe: a thread alive beside a server
    made every growth of its descriptor table wait for the other CPUs (see
    :mod:`poetrynow.descriptors`), and a cold server fell behind a burst of
    connections. The process keeps the threads it had.
    """
    read_end, write_end = os.pipe()
    for end in (read_end, write_end):
        os.set_blocking(end, False)  # the C handler must never block; the loop never waits on it
    try:
        before = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except ValueError:  # not the main thread, after all: nothing to wake
        os.close(read_end)
        os.close(write_end)
        yield
        return

    def empty() -> None:
        """The waking was the point; the handler runs as soon as the loop is back in Python."""
        try:
            while os.read(read_end, 512):
                pass
        except OSError:  # empty for now (EAGAIN), interrupted, or closed under it: nothing to do
            pass

    try:
        unwatch = watch(read_end, empty)
        try:
            yield
        finally:
            unwatch()
    finally:
        signal.set_wakeup_fd(before)
        os.close(write_end)
        os.close(read_end)
